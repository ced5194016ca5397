//! Name-value pairs (§3.4): the body of the PARAMS stream and of GET_VALUES(_RESULT).
//!
//! Each length takes one byte up to 127 and four bytes above, the high bit of the first byte
//! marking the long form: `((B3 & 0x7f) << 24) + (B2 << 16) + (B1 << 8) + B0`. The decoder also
//! accepts the long form for short lengths (the spec does not forbid it); the encoder always
//! writes the canonical form, and the long form above 127 (nginx once wrote one byte for names of
//! 128 and more, and php-cgi reset the connection: nginx/nginx#1648).
//!
//! A pair may straddle records, because a stream's value "is independent of how it is split
//! into records" (§3.3). [`StreamCollector`] therefore gathers the whole stream, bounded by
//! [`Limits::max_params_bytes`], and the pairs are parsed once it ends. Every announced length is
//! checked against what is left of the stream and against [`Limits::max_name_value_len`] before
//! anything is allocated for it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{LimitExceeded, ProtocolError, UsageError};
use crate::limits::Limits;
use crate::protocol::RecordType;

/// The largest length the 31-bit form can carry.
pub const MAX_NAME_VALUE_LEN: usize = 0x7fff_ffff;

/// Appends one pair in canonical form.
pub fn encode_pair(dst: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), UsageError> {
    for len in [name.len(), value.len()] {
        if len > MAX_NAME_VALUE_LEN {
            return Err(UsageError::NameValueTooLong(len));
        }
    }
    dst.reserve(8 + name.len() + value.len());
    put_length(dst, name.len());
    put_length(dst, value.len());
    dst.put_slice(name);
    dst.put_slice(value);
    Ok(())
}

fn put_length(dst: &mut BytesMut, len: usize) {
    if len <= 127 {
        dst.put_u8(len as u8);
    } else {
        dst.put_u32(len as u32 | 0x8000_0000);
    }
}

/// Request parameters in the order they arrived, names and values as raw bytes (CGI does not
/// promise UTF-8). Duplicate names are kept; [`Params::get`] returns the last one, as php-fpm
/// does, and a router that must not be fooled by duplicates drops every copy with
/// [`Params::remove_all`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(Bytes, Bytes)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a complete name-value stream; `stream` names it in errors.
    pub fn decode(body: Bytes, stream: RecordType, limits: &Limits) -> Result<Self, crate::Error> {
        // Sized for a typical web server's request (nginx sends some 30 params) in one go.
        let mut pairs = Vec::with_capacity(48);
        let mut at = 0;
        while at < body.len() {
            let name_len = read_length(&body, &mut at, stream)?;
            let value_len = read_length(&body, &mut at, stream)?;
            for len in [name_len, value_len] {
                if len > limits.max_name_value_len {
                    return Err(LimitExceeded::NameValueLength {
                        len,
                        limit: limits.max_name_value_len,
                    }
                    .into());
                }
            }
            let end = at + name_len + value_len;
            if end > body.len() {
                return Err(ProtocolError::TruncatedNameValue {
                    stream,
                    missing: end - body.len(),
                }
                .into());
            }
            // A GET_VALUES record is one record, 64 KiB at most: only a PARAMS stream can grow.
            if stream == RecordType::Params && pairs.len() == limits.max_params_count {
                return Err(LimitExceeded::ParamsCount {
                    limit: limits.max_params_count,
                }
                .into());
            }
            let name = body.slice(at..at + name_len);
            let value = body.slice(at + name_len..end);
            pairs.push((name, value));
            at = end;
        }
        Ok(Self { pairs })
    }

    /// Appends the canonical encoding of every pair to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), UsageError> {
        let len = self.encoded_len()?;
        self.encode_checked(dst, len);
        Ok(())
    }

    /// [`encode`](Self::encode) once [`encoded_len`](Self::encoded_len) returned `len`: the
    /// lengths are known to fit, so the room is made once and each pair is copied without a
    /// check of its own (this runs once per request relayed).
    pub(crate) fn encode_checked(&self, dst: &mut BytesMut, len: usize) {
        dst.reserve(len);
        for (name, value) in &self.pairs {
            put_length(dst, name.len());
            put_length(dst, value.len());
            dst.extend_from_slice(name);
            dst.extend_from_slice(value);
        }
    }

    /// The length of [`Params::encode`]'s output, so a caller can size or frame it first;
    /// fails, as `encode` would, on a name or value too long for the 31-bit form.
    pub fn encoded_len(&self) -> Result<usize, UsageError> {
        let length = |len: usize| match len {
            0..=127 => Ok(1 + len),
            128..=MAX_NAME_VALUE_LEN => Ok(4 + len),
            _ => Err(UsageError::NameValueTooLong(len)),
        };
        self.pairs
            .iter()
            .map(|(n, v)| Ok(length(n.len())? + length(v.len())?))
            .sum()
    }

    /// Adds a pair at the end.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// Replaces every pair of this name with one pair at the end.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        self.pairs.retain(|(n, _)| *n != name);
        self.pairs.push((name, value.into()));
    }

    /// The last value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n[..] == *name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    /// The last value of `name` when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes every pair of this name.
    pub fn remove_all(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n[..] != *name.as_bytes());
    }

    /// Keeps only the pairs for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        self.pairs.retain(|(n, v)| keep(n, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(n, v)| (&n[..], &v[..]))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl<N: Into<Bytes>, V: Into<Bytes>> FromIterator<(N, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            pairs: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

fn read_length(body: &[u8], at: &mut usize, stream: RecordType) -> Result<usize, ProtocolError> {
    let truncated = |missing| ProtocolError::TruncatedNameValue { stream, missing };
    let first = *body.get(*at).ok_or(truncated(1))?;
    if first & 0x80 == 0 {
        *at += 1;
        return Ok(usize::from(first));
    }
    let Some(long) = body.get(*at..*at + 4) else {
        return Err(truncated(*at + 4 - body.len()));
    };
    *at += 4;
    Ok(u32::from_be_bytes([long[0] & 0x7f, long[1], long[2], long[3]]) as usize)
}

/// Gathers the records of one stream (PARAMS) until its empty end record, bounded.
///
/// One-record streams, which is all nginx sends, are kept as the record's own `Bytes`; only a
/// stream split over several records is copied into one buffer.
#[derive(Debug, Default)]
pub struct StreamCollector {
    first: Option<Bytes>,
    joined: BytesMut,
    len: usize,
}

impl StreamCollector {
    /// Adds one non-empty record body; fails once the stream passes `limit` bytes.
    pub fn push(&mut self, body: Bytes, limit: usize) -> Result<(), LimitExceeded> {
        self.len += body.len();
        if self.len > limit {
            return Err(LimitExceeded::ParamsBytes { limit });
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(body),
            first => {
                if let Some(first) = first {
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&body);
            }
        }
        Ok(())
    }

    /// The whole stream, once its end record arrived.
    pub fn finish(self) -> Bytes {
        match self.first {
            Some(only) => only,
            None => self.joined.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Params, crate::Error> {
        Params::decode(
            Bytes::copy_from_slice(bytes),
            RecordType::Params,
            &Limits::default(),
        )
    }

    #[test]
    fn a_flood_of_empty_pairs_is_refused_at_the_count_limit() {
        let limits = Limits::default();
        // 1 MiB of `00 00`: within the byte limit, half a million empty pairs.
        let flood = vec![0u8; Limits::DEFAULT_MAX_PARAMS_BYTES];
        let err = Params::decode(Bytes::from(flood), RecordType::Params, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FastCGI peer exceeded a limit: more than 1024 name-value pairs (max_params_count)"
        );
        let at_limit = vec![0u8; 2 * limits.max_params_count];
        let params = Params::decode(Bytes::from(at_limit), RecordType::Params, &limits).unwrap();
        assert_eq!(params.iter().count(), limits.max_params_count);
    }

    #[test]
    fn all_four_length_forms_decode() {
        let long = [b'x'; 200];
        for (name, value) in [
            (&b"N"[..], &b"v"[..]),
            (&b"N"[..], &long[..]),
            (&long[..], &b"v"[..]),
            (&long[..], &long[..]),
        ] {
            let mut wire = BytesMut::new();
            encode_pair(&mut wire, name, value).unwrap();
            let params = decode(&wire).unwrap();
            let (n, v) = params.iter().next().unwrap();
            assert_eq!((n, v), (name, value));
        }
    }

    #[test]
    fn the_long_form_is_used_from_128_and_accepted_below() {
        let mut wire = BytesMut::new();
        encode_pair(&mut wire, &[b'a'; 127], b"").unwrap();
        assert_eq!(wire[0], 127);
        wire.clear();
        encode_pair(&mut wire, &[b'a'; 128], b"").unwrap();
        assert_eq!(&wire[..4], &[0x80, 0, 0, 128]);
        // Non-canonical: a 4-byte length for a 1-byte name.
        let params = decode(&[0x80, 0, 0, 1, 0x80, 0, 0, 2, b'N', b'v', b'w']).unwrap();
        assert_eq!(params.get("N"), Some(&b"vw"[..]));
    }

    #[test]
    fn a_length_past_the_stream_is_an_error_not_an_allocation() {
        // Announces a 2 GiB value in a 10-byte stream.
        let err = decode(&[1, 0xff, 0xff, 0xff, 0xff, b'N']).unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::Limit(LimitExceeded::NameValueLength { .. })
            ),
            "{err}"
        );
        let err = decode(&[1, 5, b'N', b'v']).unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::Protocol(ProtocolError::TruncatedNameValue { missing: 4, .. })
            ),
            "{err}"
        );
        let err = decode(&[0x80, 0]).unwrap_err();
        assert!(matches!(err, crate::Error::Protocol(_)), "{err}");
    }

    #[test]
    fn duplicates_are_kept_and_the_last_wins() {
        let params: Params = [("A", "1"), ("B", "2"), ("A", "3")].into_iter().collect();
        assert_eq!(params.get("A"), Some(&b"3"[..]));
        let mut params = params;
        params.remove_all("A");
        assert_eq!(params.len(), 1);
    }

    #[test]
    fn collector_keeps_one_record_and_joins_several() {
        let one = Bytes::from_static(b"abc");
        let mut c = StreamCollector::default();
        c.push(one.clone(), 10).unwrap();
        assert_eq!(c.finish().as_ptr(), one.as_ptr());
        let mut c = StreamCollector::default();
        c.push(Bytes::from_static(b"ab"), 10).unwrap();
        c.push(Bytes::from_static(b"cd"), 10).unwrap();
        assert_eq!(&c.finish()[..], b"abcd");
        let mut c = StreamCollector::default();
        c.push(Bytes::from_static(b"abcdef"), 10).unwrap();
        assert_eq!(
            c.push(Bytes::from_static(b"ghijk"), 10),
            Err(LimitExceeded::ParamsBytes { limit: 10 })
        );
    }
}
