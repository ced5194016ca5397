//! The parts of an HTTP/1.1 response (RFC 9112) a load client needs to stay on a kept-alive
//! connection: where the head ends, the status, how the body is framed, whether the server
//! closes. Pure functions over bytes; the client does the reading.

use std::io;

/// A response head's parts the client acts on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// `Connection: close`, or an HTTP/1.0 answer.
    pub(crate) close: bool,
}

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Chunked,
    Length(usize),
    /// Neither: the body runs to the connection's end, which a kept-alive client cannot use.
    Unframed,
}

/// Where `needle` first occurs in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The end of a response head in `buf` (just past its blank line), once it is all there.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    find(buf, b"\r\n\r\n").map(|end| end + 4)
}

/// Reads a response head (status line and header lines, up to the blank line).
pub(crate) fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = status_line.starts_with("HTTP/1.0");
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding frames the message ("gzip, chunked").
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = last.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length when both are present.
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::Unframed,
    };
    Ok(Head {
        status,
        framing,
        close,
    })
}

/// The size of a chunk from its size line (`1a3f;ext=1`, without the CRLF).
pub(crate) fn chunk_size(line: &[u8]) -> io::Result<usize> {
    let text = String::from_utf8_lossy(line);
    let size = text.split(';').next().unwrap_or_default().trim();
    usize::from_str_radix(size, 16).map_err(|_| invalid(format!("bad chunk size line {text:?}")))
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_head_is_read() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(head.framing == Framing::Chunked && !head.close && head.status == 200);
    }

    #[test]
    fn nginx_heads_are_read() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\n\
              Connection: keep-alive\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.framing == Framing::Chunked && !head.close);
    }

    #[test]
    fn transfer_encoding_wins_over_content_length_in_either_order() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n"[..],
        ] {
            assert_eq!(parse_head(raw).unwrap().framing, Framing::Chunked);
        }
    }

    #[test]
    fn a_length_an_http_1_0_answer_and_a_close_are_read() {
        let head = parse_head(b"HTTP/1.0 404 Not Found\r\ncontent-length: 12\r\n\r\n").unwrap();
        assert_eq!(
            head,
            Head {
                status: 404,
                framing: Framing::Length(12),
                close: true
            }
        );
        let head = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").unwrap();
        assert!(head.close && head.framing == Framing::Unframed);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn chunk_sizes_are_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0;name=value").unwrap(), 0);
        assert!(chunk_size(b"zz").is_err());
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
    }
}
