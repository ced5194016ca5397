//! The development HTTP/1.1 front of `plexer serve --http ADDR` (CONTRACT.md, "The binary"): a
//! browser or curl reaches the accounts with no web server installed.
//!
//! It acts like a tiny nginx in front of plexer, and goes through the same door nginx would:
//! each HTTP request opens a FastCGI connection to plexer's own `listen` address, sends
//! BEGIN_REQUEST and the params nginx's `fastcgi_params` would send (RFC 3875 §4.1, plus an
//! `HTTP_*` param per request header, §4.1.18), streams the body as STDIN, and turns the CGI
//! response (§6) back into HTTP. Routing, cookies, the status page and every error page are
//! plexer's; the front adds nothing but the translation, so what works here works behind nginx.
//!
//! Choices, and why:
//! - The app is mounted at `/`: `SCRIPT_NAME` is empty and `PATH_INFO` is the decoded path,
//!   the way WSGI servers and Django's nginx recipe pass it, so Django behind flup routes by
//!   path. (`DOCUMENT_URI` is the decoded path too, as nginx sends it; plexer matches its
//!   status and ping paths on it.) There is no document root, so no `SCRIPT_FILENAME`.
//! - A request body needs a `Content-Length`: CGI hands the app `CONTENT_LENGTH`, and a chunked
//!   body could only get one by being buffered whole. It gets 411, as nginx answers with
//!   request buffering off.
//! - Header names with `_` are dropped, as nginx does by default: `X_Plexer_User` would
//!   otherwise become the same `HTTP_X_PLEXER_USER` param as `X-Plexer-User`.
//! - Neither direction is read while the other's pending bytes are above
//!   [`relay::HIGH_WATER`], and response chunks pass through a channel of [`BODY_CHUNKS`], so
//!   a 1 GiB upload or download passes in constant memory.
//! - Whatever fails before the response head is out becomes a 502 with a short text; after
//!   it, the HTTP connection is cut, so the client sees a truncated response, not a complete one.
//! - STDERR records are not logged here: plexer already logged each line with its account and
//!   worker before forwarding it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use plexer_fcgi::cgi::{CgiError, HeadParser, ResponseHead};
use plexer_fcgi::{
    Address, ClientConnection, ClientEvent, Limits, Outbox, Params, ProtocolError, RequestParams,
    Role, UsageError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::gauge::{Gauge, OverLimit};
use crate::host::host_without_port;
use crate::relay::{self, HIGH_WATER};
use crate::upstream;

/// Response chunks queued between the FastCGI side and hyper, each up to a read's worth.
pub(crate) const BODY_CHUNKS: usize = 4;
/// How long a client may take to send a request head (slow-loris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Response headers that describe one HTTP hop, not the resource; hyper writes its own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Why the front could not start. The OS error is part of the message rather than a source,
/// so that it reads in order: where, why, what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for HTTP on {addr}: {error}; give --http a free address, e.g. 127.0.0.1:8080"
)]
pub struct FrontError {
    pub addr: SocketAddr,
    pub error: io::Error,
}

/// A bound front, not serving yet: binding first lets `plexer serve` refuse to start on a busy
/// port before any worker runs.
pub(crate) struct HttpFront {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Binds the front's TCP listener.
pub(crate) async fn bind(addr: SocketAddr) -> Result<HttpFront, FrontError> {
    let failed = |error| FrontError { addr, error };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok(HttpFront { listener, addr })
}

impl HttpFront {
    /// Accepts HTTP connections until the task is dropped; each is served in its own task.
    pub(crate) async fn serve(self, upstream: Address, max_connections: usize) {
        if !self.addr.ip().is_loopback() {
            tracing::warn!(
                http = %self.addr,
                "the HTTP front is for development: it has no TLS and no limits meant for the \
                 internet; put nginx or lighttpd in front of plexer for production"
            );
        }
        tracing::info!(http = %self.addr, upstream = %upstream, "HTTP front listening");
        let upstream = std::sync::Arc::new(upstream);
        let (open, mut over_limit) = (Gauge::default(), OverLimit::default());
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(counted) = open.enter_below(max_connections) else {
                over_limit.refused(max_connections, "the HTTP front");
                continue; // dropped: closed
            };
            let _ = stream.set_nodelay(true);
            let ends = Ends {
                peer,
                local: stream.local_addr().unwrap_or(self.addr),
                upstream: std::sync::Arc::clone(&upstream),
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let ends = ends.clone();
                    async move { Ok::<_, Infallible>(handle(request, &ends).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(err) = served {
                    tracing::debug!(%peer, error = %err, "HTTP connection ended");
                }
                drop(counted);
            });
        }
    }
}

/// Both ends of one HTTP connection, and where its requests go.
#[derive(Clone)]
struct Ends {
    peer: SocketAddr,
    local: SocketAddr,
    upstream: std::sync::Arc<Address>,
}

/// Answers one HTTP request by way of plexer.
async fn handle(request: Request<Incoming>, ends: &Ends) -> Response<FrontBody> {
    let Some(body_len) = request.body().size_hint().exact() else {
        return text(
            StatusCode::LENGTH_REQUIRED,
            "a request body needs a Content-Length: FastCGI passes CONTENT_LENGTH to the app\n",
        );
    };
    let has_length = request.headers().contains_key(header::CONTENT_LENGTH);
    let params = cgi_params(&request, ends, has_length.then_some(body_len));
    let limits = Limits::default();
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body_rx) = mpsc::channel(BODY_CHUNKS);
    let exchange = Exchange {
        params,
        body: request.into_body(),
        head: head_tx,
        chunks: body_tx,
        limits,
    };
    match upstream::connect(&ends.upstream).await {
        Ok(stream) => drop(tokio::spawn(exchange.run(stream))),
        Err(source) => {
            let why = Failure::Connect {
                address: (*ends.upstream).clone(),
                source,
            };
            tracing::warn!("HTTP front: {why}");
            return bad_gateway(&why);
        }
    }
    let head = match head_rx.await {
        Ok(Ok(head)) => head,
        Ok(Err(why)) => {
            tracing::warn!("HTTP front: {why}");
            return bad_gateway(&why);
        }
        Err(_) => return bad_gateway(&Failure::NoResponse),
    };
    match http_response(head, FrontBody::Stream(body_rx)) {
        Ok(response) => response,
        Err(why) => {
            tracing::warn!("HTTP front: {why}");
            bad_gateway(&why)
        }
    }
}

/// The CGI params of `request`, as nginx's `fastcgi_params` and `fastcgi_pass_request_headers`
/// make them.
fn cgi_params(request: &Request<Incoming>, ends: &Ends, body_len: Option<u64>) -> Params {
    let uri = request.uri();
    let request_uri = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = percent_decode(uri.path().as_bytes());
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map_or(&b""[..], HeaderValue::as_bytes);
    let server_name = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .map_or_else(|| ends.local.ip().to_string(), str::to_owned);
    let protocol = match request.version() {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut params = RequestParams {
        software: concat!("plexer/", env!("CARGO_PKG_VERSION"), " (dev HTTP front)"),
        protocol,
        scheme: "http",
        method: request.method().as_str(),
        uri: request_uri,
        server_name: &server_name,
        server: ends.local,
        remote: ends.peer,
        script_name: "",
        document_uri: path.clone(),
        path_info: Some(path),
        content_length: body_len,
        content_type: Bytes::copy_from_slice(content_type),
    }
    .params();
    push_header_params(&mut params, headers);
    params
}

/// An `HTTP_NAME` param per request header, repeated headers joined as nginx joins them.
fn push_header_params(params: &mut Params, headers: &HeaderMap) {
    for name in headers.keys() {
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue; // CONTENT_TYPE and CONTENT_LENGTH carry them (RFC 3875 §4.1.18)
        }
        if name.as_str().contains('_') {
            continue;
        }
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, part) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(separator);
            }
            value.extend_from_slice(part.as_bytes());
        }
        let param = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        params.push(param, value);
    }
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
fn percent_decode(bytes: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            // from_str_radix alone would take "+A" as a number.
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out.into()
}

/// The HTTP response for a CGI head: the status, and every header but the hop-by-hop ones, in
/// order, repeated ones (Set-Cookie) kept apart.
fn http_response(head: ResponseHead, body: FrontBody) -> Result<Response<FrontBody>, Failure> {
    if head.status < 200 {
        return Err(Failure::NotFinal(head.status));
    }
    let status = StatusCode::from_u16(head.status).map_err(|_| Failure::BadStatus(head.status))?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if !head.reason.is_empty()
        && status.canonical_reason() != Some(head.reason.as_str())
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(head.reason.clone())
    {
        response.extensions_mut().insert(reason);
    }
    let headers = response.headers_mut();
    for (name, value) in head.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        let bad = || Failure::BadHeader(name.clone());
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let header_value = HeaderValue::from_maybe_shared(value).map_err(|_| bad())?;
        headers.append(header_name, header_value);
    }
    Ok(response)
}

fn text(status: StatusCode, body: &str) -> Response<FrontBody> {
    let mut response = Response::new(FrontBody::Whole(Some(Bytes::copy_from_slice(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn bad_gateway(why: &Failure) -> Response<FrontBody> {
    text(
        StatusCode::BAD_GATEWAY,
        &format!("502 Bad Gateway: {why}\n"),
    )
}

/// A response body: a text the front wrote, or the application's, chunk by chunk.
#[derive(Debug)]
pub(crate) enum FrontBody {
    Whole(Option<Bytes>),
    Stream(mpsc::Receiver<io::Result<Bytes>>),
}

impl Body for FrontBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(chunks) => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Whole(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

/// One HTTP request's FastCGI exchange with plexer, run in a task of its own so that the
/// response body streams after hyper has the head.
struct Exchange {
    params: Params,
    body: Incoming,
    /// Where the parsed response head (or why there is none) goes, once.
    head: HeadReply,
    chunks: mpsc::Sender<io::Result<Bytes>>,
    limits: Limits,
}

/// Why the front could not give the client plexer's response.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot connect to plexer at {address}: {source}")]
    Connect { address: Address, source: io::Error },
    #[error("the request cannot be sent: {0}")]
    Unsendable(UsageError),
    #[error("plexer broke the connection: {0}")]
    Truncated(ProtocolError),
    #[error("plexer closed the connection before END_REQUEST")]
    Closed,
    #[error("reading from plexer: {0}")]
    Read(io::Error),
    #[error("plexer broke the protocol: {0}")]
    Protocol(plexer_fcgi::Error),
    #[error("the response head: {0}")]
    Head(CgiError),
    #[error("the response ended before its head was complete")]
    EndedBeforeHead,
    #[error("the FastCGI exchange ended without a response")]
    NoResponse,
    #[error("the application answered status {0}, which is not a final response")]
    NotFinal(u16),
    #[error("the application answered status {0}")]
    BadStatus(u16),
    #[error("the application sent a header HTTP cannot carry: {0:?}")]
    BadHeader(String),
}

/// Where the response head (or why there is none) goes, once.
type HeadReply = oneshot::Sender<Result<ResponseHead, Failure>>;

/// Where the response stands.
enum Stage {
    /// Gathering the CGI header block.
    Head(HeadParser, HeadReply),
    /// The head went to hyper; STDOUT is the body.
    Body,
    /// END_REQUEST arrived; the body chunks still queued go out, then the body ends.
    Ended,
}

impl Exchange {
    async fn run<S: AsyncRead + AsyncWrite + Send + 'static>(self, upstream: S) {
        let Self {
            params,
            mut body,
            head,
            chunks,
            limits,
        } = self;
        let mut conn = ClientConnection::new(limits.clone());
        let id = match conn.begin_request(Role::Responder, false, &params) {
            Ok(id) => id,
            Err(err) => {
                let _ = head.send(Err(Failure::Unsendable(err)));
                return;
            }
        };
        let (mut rd, mut wr) = tokio::io::split(upstream);
        let mut stage = Stage::Head(HeadParser::new(&limits), head);
        let mut pending = Outbox::new();
        let mut queued: VecDeque<Bytes> = VecDeque::new();
        let mut upload_open = true;
        let mut room = relay::ReadRoom::new();
        let mut upstream_writable = true;
        let failure = loop {
            // What plexer sent becomes the head, then body chunks.
            let step = drain_events(&mut conn, &mut stage, &mut queued);
            if let Err(why) = step {
                break why;
            }
            if matches!(stage, Stage::Ended) && queued.is_empty() {
                return; // dropping `chunks` ends the body
            }
            if upstream_writable {
                pending.append(conn.outbox());
            } else {
                // plexer stopped reading the body (the app answered without it, §6.2): what the
                // client still sends is dropped, not kept.
                *conn.outbox() = Outbox::new();
            }
            room.make(conn.read_buf());
            let reading_upload =
                upload_open && !matches!(stage, Stage::Ended) && pending.len() < HIGH_WATER;
            let reading_upstream = queued.is_empty() && !matches!(stage, Stage::Ended);
            tokio::select! {
                frame = next_frame(&mut body), if reading_upload => {
                    match upload(frame, &mut conn, id) {
                        Upload::More => {}
                        Upload::Ended => upload_open = false,
                        // The client went away mid-body: dropping the connection tells plexer.
                        Upload::ClientGone => return,
                    }
                }
                read = rd.read_buf(conn.read_buf()), if reading_upstream => match read {
                    Ok(0) => break conn.on_eof().map_or_else(Failure::Truncated, |()| Failure::Closed),
                    Ok(n) => room.after_read(n),
                    Err(err) => break Failure::Read(err),
                },
                written = relay::write_some(&mut wr, &mut pending),
                    if upstream_writable && !pending.is_empty() =>
                {
                    if written.is_err() {
                        upstream_writable = false;
                        pending = Outbox::new();
                    }
                }
                permit = chunks.reserve(), if !queued.is_empty() => match permit {
                    Ok(permit) => permit.send(Ok(queued.pop_front().expect("checked non-empty"))),
                    Err(_) => return, // the client went away; dropping the connection aborts
                },
            }
        };
        fail(stage, failure, &chunks).await;
    }
}

/// Says why the exchange failed: to the client as a 502 before the head went out, and by
/// cutting the body short after.
async fn fail(stage: Stage, failure: Failure, chunks: &mpsc::Sender<io::Result<Bytes>>) {
    match stage {
        Stage::Head(_, head) => {
            let _ = head.send(Err(failure));
        }
        Stage::Body | Stage::Ended => {
            tracing::warn!(
                cut_short = true,
                "HTTP front: response cut short: {failure}"
            );
            // An error, not the end: hyper then cuts the connection instead of ending the body
            // as if it were complete.
            let _ = chunks.send(Err(io::Error::other(failure))).await;
        }
    }
}

/// What a frame of the client's body did.
enum Upload {
    More,
    Ended,
    ClientGone,
}

/// Sends a frame of the client's body on as STDIN; the end of the body as its end.
fn upload(
    frame: Option<Result<Frame<Bytes>, hyper::Error>>,
    conn: &mut ClientConnection,
    id: u16,
) -> Upload {
    match frame {
        Some(Ok(frame)) => {
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                let _ = conn.stdin(id, data);
            }
            Upload::More
        }
        None => {
            let _ = conn.stdin_end(id);
            Upload::Ended
        }
        Some(Err(_)) => Upload::ClientGone,
    }
}

/// Takes every complete event out of `conn`; an error names what broke.
fn drain_events(
    conn: &mut ClientConnection,
    stage: &mut Stage,
    queued: &mut VecDeque<Bytes>,
) -> Result<(), Failure> {
    loop {
        let event = conn.poll_event().map_err(Failure::Protocol)?;
        match event {
            None => return Ok(()),
            Some(ClientEvent::Stdout { data, .. }) => match stage {
                Stage::Head(parser, _) => {
                    let parsed = parser.push(data).map_err(Failure::Head)?;
                    if let Some((head, rest)) = parsed {
                        let Stage::Head(_, reply) = std::mem::replace(stage, Stage::Body) else {
                            unreachable!("matched Stage::Head above")
                        };
                        let _ = reply.send(Ok(head));
                        if !rest.is_empty() {
                            queued.push_back(rest);
                        }
                    }
                }
                Stage::Body | Stage::Ended => queued.push_back(data),
            },
            Some(ClientEvent::End { .. }) => {
                if matches!(stage, Stage::Head(..)) {
                    return Err(Failure::EndedBeforeHead);
                }
                *stage = Stage::Ended;
            }
            // Logged by plexer with the account and worker; see the module docs.
            Some(ClientEvent::Stderr { .. }) => {}
            Some(ClientEvent::Values(_) | ClientEvent::UnknownType(_)) => {}
        }
    }
}

/// The next frame of the request body.
async fn next_frame(body: &mut Incoming) -> Option<Result<Frame<Bytes>, hyper::Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(
            &percent_decode(b"/a%20b/%e2%82%ac")[..],
            "/a b/€".as_bytes()
        );
        assert_eq!(&percent_decode(b"/100%/%zz/%4")[..], b"/100%/%zz/%4");
        assert_eq!(&percent_decode(b"/a%+A/%-1")[..], b"/a%+A/%-1");
    }

    #[test]
    fn repeated_set_cookie_headers_stay_apart_and_hop_by_hop_ones_go() {
        let head = ResponseHead::parse(
            b"Status: 201 Made\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
              Transfer-Encoding: chunked\r\nX-Other: x\r\n",
        )
        .unwrap();
        let response = http_response(head, FrontBody::Whole(None)).unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(response.headers().get("transfer-encoding").is_none());
        assert_eq!(response.headers()["x-other"], "x");
        let reason = response.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(reason.map(|r| r.as_bytes()), Some(&b"Made"[..]));
    }

    #[test]
    fn a_header_http_cannot_carry_is_named() {
        let head = ResponseHead {
            status: 200,
            reason: String::new(),
            headers: vec![("X-Bad".into(), Bytes::from_static(b"a\x00b"))],
        };
        let err = http_response(head, FrontBody::Whole(None)).unwrap_err();
        assert!(err.to_string().contains("\"X-Bad\""), "{err}");
        let early = ResponseHead::new(101);
        assert!(http_response(early, FrontBody::Whole(None)).is_err());
    }
}
