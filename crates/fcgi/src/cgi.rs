//! The CGI response a responder writes at the start of STDOUT (FastCGI §6.2, CGI/1.1 RFC 3875
//! §6): header lines, a blank line, then the body.
//!
//! The header block is a stream like any other, so it may arrive split over any number of
//! STDOUT records (h2o once failed on PHP headers over 8 KB in several records, h2o#958).
//! [`HeadParser`] gathers it, bounded by [`Limits::max_response_head`], and hands back the
//! parsed [`ResponseHead`] with whatever body bytes came in the same chunk.
//!
//! The status comes from a `Status:` header; without one it is 302 when there is a `Location:`
//! and 200 otherwise (RFC 3875 §6.3.3, and what nginx does). Repeated headers such as
//! `Set-Cookie` stay separate lines, never joined with commas (h2o#427).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::LimitExceeded;
use crate::limits::Limits;

/// A response header block that is not CGI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CgiError {
    #[error("CGI response header block too long: {0}")]
    TooLong(LimitExceeded),
    #[error("CGI response header line is not `Name: value`: {0:?}")]
    BadLine(String),
    #[error("CGI `Status:` header is not a 3-digit code and reason: {0:?}")]
    BadStatus(String),
}

impl From<LimitExceeded> for CgiError {
    fn from(error: LimitExceeded) -> Self {
        Self::TooLong(error)
    }
}

/// The parsed header block of a CGI response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase of the `Status:` header, empty when there was none.
    pub reason: String,
    /// Every header but `Status:`, in order, names as sent.
    pub headers: Vec<(String, Bytes)>,
}

impl ResponseHead {
    /// A head with this status and no headers.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            reason: String::new(),
            headers: Vec::new(),
        }
    }

    /// Parses a complete header block, with or without its final blank line.
    pub fn parse(block: &[u8]) -> Result<Self, CgiError> {
        let mut head = Self::new(200);
        let mut status = None;
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let bad_line = || CgiError::BadLine(String::from_utf8_lossy(line).into_owned());
            let colon = line.iter().position(|&b| b == b':').ok_or_else(bad_line)?;
            let name = std::str::from_utf8(&line[..colon]).map_err(|_| bad_line())?;
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(bad_line());
            }
            let value = line[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case("Status") {
                status = Some(parse_status(value)?);
            } else {
                head.headers
                    .push((name.to_owned(), Bytes::copy_from_slice(value)));
            }
        }
        match status {
            Some((code, reason)) => {
                head.status = code;
                head.reason = reason;
            }
            None if head.get("Location").is_some() => head.status = 302,
            None => {}
        }
        Ok(head)
    }

    /// The first value of header `name`, compared without case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }

    /// Removes every header `name` and returns their values.
    pub fn remove(&mut self, name: &str) -> Vec<Bytes> {
        let mut removed = Vec::new();
        self.headers.retain(|(n, v)| {
            let hit = n.eq_ignore_ascii_case(name);
            if hit {
                removed.push(v.clone());
            }
            !hit
        });
        removed
    }

    /// Adds a header line at the end.
    pub fn push(&mut self, name: &str, value: impl Into<Bytes>) {
        self.headers.push((name.to_owned(), value.into()));
    }

    /// The block as CGI: `Status:` first, then the headers, then the blank line.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.headers.len() * 32);
        out.put_slice(format!("Status: {}", self.status).as_bytes());
        if !self.reason.is_empty() {
            out.put_u8(b' ');
            out.put_slice(self.reason.as_bytes());
        }
        out.put_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_status(value: &[u8]) -> Result<(u16, String), CgiError> {
    let text = std::str::from_utf8(value).ok();
    let bad = || CgiError::BadStatus(String::from_utf8_lossy(value).into_owned());
    let text = text.ok_or_else(bad)?;
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=999).contains(&code) {
        return Err(bad());
    }
    Ok((code, reason.trim().to_owned()))
}

/// Gathers STDOUT bytes until the header block is complete.
#[derive(Debug)]
pub struct HeadParser {
    buf: BytesMut,
    /// Where the search for the blank line resumes, so each byte is scanned once.
    scanned: usize,
    limit: usize,
}

impl HeadParser {
    pub fn new(limits: &Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            limit: limits.max_response_head,
        }
    }

    /// Adds STDOUT bytes. Once the blank line is in, returns the head and the body bytes that
    /// followed it in `data` (maybe none); the parser is then spent. A head that arrives in one
    /// record, as almost every one does, is parsed where it lies: the body bytes after it are
    /// a slice of `data`, not a copy.
    pub fn push(&mut self, data: Bytes) -> Result<Option<(ResponseHead, Bytes)>, CgiError> {
        if self.buf.is_empty()
            && let Some((at, len)) = find_blank_line(&data)
        {
            if at > self.limit {
                return Err(LimitExceeded::ResponseHead { limit: self.limit }.into());
            }
            let head = ResponseHead::parse(&data[..at + len])?;
            return Ok(Some((head, data.slice(at + len..))));
        }
        self.buf.extend_from_slice(&data);
        let from = self.scanned.saturating_sub(3);
        let end = find_blank_line(&self.buf[from..]).map(|(at, len)| (from + at, len));
        let Some((at, len)) = end else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limit {
                return Err(LimitExceeded::ResponseHead { limit: self.limit }.into());
            }
            return Ok(None);
        };
        if at > self.limit {
            return Err(LimitExceeded::ResponseHead { limit: self.limit }.into());
        }
        let block = self.buf.split_to(at + len);
        let head = ResponseHead::parse(&block)?;
        Ok(Some((head, std::mem::take(&mut self.buf).freeze())))
    }

    /// Bytes held so far; for a response that ended before its blank line.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Where the header block ends: the offset of the blank line and its length (`\r\n\r\n` or
/// `\n\n`, or the mixed forms some CGI scripts write).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        let rest = &buf[at + 1..];
        if rest.starts_with(b"\n") {
            return Some((at, 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((at, 3));
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_status_then_location_then_200() {
        let head =
            ResponseHead::parse(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert_eq!(head.get("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(ResponseHead::parse(b"Location: /x\n").unwrap().status, 302);
        assert_eq!(ResponseHead::parse(b"X-A: 1\n").unwrap().status, 200);
    }

    #[test]
    fn repeated_headers_stay_separate() {
        let head = ResponseHead::parse(b"Set-Cookie: a=1\nSet-Cookie: b=2\n").unwrap();
        assert_eq!(head.headers.len(), 2);
        let encoded = head.encode();
        assert_eq!(
            &encoded[..],
            b"Status: 200\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        );
    }

    #[test]
    fn the_head_may_arrive_one_byte_at_a_time() {
        let wire = b"Status: 201 Created\r\nX-Plexer-User: bob\r\n\r\nbody";
        let mut parser = HeadParser::new(&Limits::default());
        let mut done = None;
        for (i, byte) in wire.iter().enumerate() {
            if let Some(got) = parser.push(Bytes::copy_from_slice(&[*byte])).unwrap() {
                done = Some((i, got));
                break;
            }
        }
        let (i, (mut head, rest)) = done.expect("head completes");
        assert_eq!(i, wire.len() - 5, "complete at the blank line");
        assert!(rest.is_empty());
        assert_eq!(head.status, 201);
        assert_eq!(head.remove("x-plexer-user"), [Bytes::from_static(b"bob")]);
    }

    #[test]
    fn body_bytes_after_the_blank_line_are_returned() {
        let mut parser = HeadParser::new(&Limits::default());
        let record = Bytes::from_static(b"A: 1\n\nhello");
        let (head, rest) = parser.push(record.clone()).unwrap().unwrap();
        assert_eq!(head.get("A"), Some(&b"1"[..]));
        assert_eq!(&rest[..], b"hello");
        assert_eq!(
            rest.as_ptr(),
            record[6..].as_ptr(),
            "the record's bytes, not a copy"
        );
    }

    #[test]
    fn bad_heads_are_named() {
        assert_eq!(
            ResponseHead::parse(b"no colon here\n"),
            Err(CgiError::BadLine("no colon here".into()))
        );
        assert_eq!(
            ResponseHead::parse(b"Status: ok\n"),
            Err(CgiError::BadStatus("ok".into()))
        );
        let limits = Limits {
            max_response_head: 16,
            ..Limits::default()
        };
        let mut parser = HeadParser::new(&limits);
        let err = parser
            .push(Bytes::from_static(b"X-Long-Header: 0123456789\n"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CGI response header block too long: a CGI response header block over the \
             16-byte limit (max_response_head)"
        );
    }
}
