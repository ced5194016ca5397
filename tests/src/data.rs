//! Test bodies, and the checksum `hello` reports for them.

/// FNV-1a 64 (the `body_fnv1a64:` line of hello's answer, which prints it as 16 hex digits).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `len` bytes that look random (every byte value occurs, no repeating period a lost or
/// duplicated record could hide in), the same for the same `seed`.
pub fn pattern_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift64*: tiny, and good enough to make every chunk of a body distinct.
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pattern_bytes_are_reproducible_and_seed_dependent() {
        assert_eq!(pattern_bytes(1000, 7), pattern_bytes(1000, 7));
        assert_ne!(pattern_bytes(1000, 7), pattern_bytes(1000, 8));
        assert_eq!(pattern_bytes(13, 1).len(), 13);
    }
}
