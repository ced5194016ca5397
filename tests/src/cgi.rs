//! CGI on both ends of a responder: the params a web server derives from a request line
//! (RFC 3875 §4.1), and the response an application writes to STDOUT (headers, a blank line,
//! the body; RFC 3875 §6).

/// A CGI response split into its header lines and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgiResponse {
    /// Header lines in order, names as sent; repeated headers (Set-Cookie) stay separate.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CgiResponse {
    /// Splits at the first blank line (`\r\n\r\n`, or `\n\n` from sloppy applications).
    /// Panics when there is none: a response without a header block is a broken one.
    pub fn parse(stdout: &[u8]) -> Self {
        let crlf = find(stdout, b"\r\n\r\n").map(|at| (at, at + 4));
        let lf = find(stdout, b"\n\n").map(|at| (at, at + 2));
        let (head_end, body_start) = match (crlf, lf) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or_else(|| {
                panic!(
                    "no blank line after the CGI headers in {:?}",
                    String::from_utf8_lossy(&stdout[..stdout.len().min(2000)])
                )
            }),
        };
        let head = String::from_utf8_lossy(&stdout[..head_end]);
        let headers = head
            .lines()
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("CGI header line without a colon: {line:?}"));
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        Self {
            headers,
            body: stdout[body_start..].to_vec(),
        }
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    /// Every value of header `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `Status:` header (`201 Created`), if the application sent one.
    pub fn status(&self) -> Option<&str> {
        self.header("Status")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The params nginx's `fastcgi_params` would send for `METHOD uri` with a body of
/// `body_len` bytes, from a client at 127.0.0.1 to a server `localhost:80`.
pub fn params_for(method: &str, uri: &str, body_len: usize) -> Vec<(String, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut params = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
        ("REQUEST_METHOD", method.to_owned()),
        ("REQUEST_URI", uri.to_owned()),
        ("QUERY_STRING", query.to_owned()),
        ("SCRIPT_NAME", path.to_owned()),
        ("DOCUMENT_URI", path.to_owned()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
        ("SERVER_NAME", "localhost".to_owned()),
        ("SERVER_PORT", "80".to_owned()),
    ];
    if body_len > 0 {
        params.push(("CONTENT_LENGTH", body_len.to_string()));
    }
    params
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
