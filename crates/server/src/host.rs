//! The host of a `Host` header (or `SERVER_NAME`), without its port: one reading for the
//! router and the HTTP front, IPv6 included.

/// `name[:port]`, `[v6]:port` or `[v6]` → the name or the address; a bare IPv6 address (more
/// than one colon, no brackets) is taken whole, and so is a "port" that is not digits.
pub(crate) fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(v6, _)| v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_goes_and_the_rest_stays_whatever_the_form() {
        for (host, name) in [
            ("example.org:8080", "example.org"),
            ("example.org", "example.org"),
            ("[::1]:8080", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("fe80::1:8080", "fe80::1:8080"),
            ("bob.example.org:http", "bob.example.org:http"),
            ("bob:", "bob"),
        ] {
            assert_eq!(host_without_port(host), name, "{host}");
        }
    }
}
