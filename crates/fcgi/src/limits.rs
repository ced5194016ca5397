//! The bounds on everything a peer's input can make us allocate.
//!
//! FastCGI lets a peer announce 31-bit name and value lengths (§3.4), open request ids without
//! end (Go's net/http/fcgi kept 1 KiB per BEGIN_REQUEST forever), and send any amount of stdin.
//! Each of those is capped here; going past a cap is a [`crate::LimitExceeded`] error that closes
//! the one connection, never a panic and never unbounded memory.

/// Per-connection bounds. The defaults are safe for a public-facing web server: nginx sends at
/// most 64 KiB of params, one request at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of one request's PARAMS stream.
    pub max_params_bytes: usize,
    /// Length of one name or one value in a name-value pair.
    pub max_name_value_len: usize,
    /// Name-value pairs of one stream: an empty pair is two bytes, so the byte limit alone
    /// would let 1 MiB of them become half a million entries.
    pub max_params_count: usize,
    /// Requests active at once on one connection (only above 1 when multiplexing).
    pub max_requests_per_connection: usize,
    /// Stdin bytes a driver may hold for a request before its handler reads them.
    pub max_stdin_buffered: usize,
    /// Bytes of a CGI response's header block (status line and headers) before the body.
    pub max_response_head: usize,
}

impl Limits {
    /// 1 MiB: sixteen times what nginx can send, far below what could hurt.
    pub const DEFAULT_MAX_PARAMS_BYTES: usize = 1 << 20;
    /// 256 KiB: a cookie header near the browsers' 4 KiB-per-cookie limits fits many times.
    pub const DEFAULT_MAX_NAME_VALUE_LEN: usize = 256 << 10;
    /// 1024: nginx sends some 30 params and one per request header, and refuses a request
    /// head over 8 KiB by default, far fewer than that.
    pub const DEFAULT_MAX_PARAMS_COUNT: usize = 1024;
    /// 16: enough for any real multiplexing peer, small enough that ids cost nothing.
    pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 16;
    /// 1 MiB.
    pub const DEFAULT_MAX_STDIN_BUFFERED: usize = 1 << 20;
    /// 64 KiB, the most nginx accepts with the largest `fastcgi_buffer_size` people set.
    pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 << 10;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params_bytes: Self::DEFAULT_MAX_PARAMS_BYTES,
            max_name_value_len: Self::DEFAULT_MAX_NAME_VALUE_LEN,
            max_params_count: Self::DEFAULT_MAX_PARAMS_COUNT,
            max_requests_per_connection: Self::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_stdin_buffered: Self::DEFAULT_MAX_STDIN_BUFFERED,
            max_response_head: Self::DEFAULT_MAX_RESPONSE_HEAD,
        }
    }
}
