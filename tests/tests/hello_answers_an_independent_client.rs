//! `hello`, started the way spawn-fcgi starts an application, answers a FastCGI client that
//! shares no code with plexer: the `fastcgi-client` crate. This is what keeps plexer-fcgi's
//! server side honest, since its own tests talk to its own client side.

use std::time::Duration;

use fastcgi_client::{Client, Params, Request, Response, io};
use plexer_tests::{CgiResponse, Hello, HelloAnswer, Scratch, fnv1a64, pattern_bytes};
use tokio::net::UnixStream;

/// Every exchange must finish well within this; a hang fails the test instead of the run.
const DEADLINE: Duration = Duration::from_secs(10);

fn params(method: &str, uri: &str) -> Params<'static> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    Params::default()
        .request_method(method.to_owned())
        .request_uri(uri.to_owned())
        .query_string(query.to_owned())
        .script_name(path.to_owned())
        .document_uri(path.to_owned())
        .remote_addr("127.0.0.1")
        .server_name("localhost")
        .server_port(80)
}

async fn connect(hello: &Hello) -> UnixStream {
    let path = hello
        .addr()
        .unix_path()
        .expect("hello listens on a unix socket");
    UnixStream::connect(path)
        .await
        .unwrap_or_else(|err| panic!("connect to {path:?}: {err}"))
}

/// One request on its own connection. fastcgi-client 0.12 writes a second empty STDIN record
/// after the body's end; on a connection without FCGI_KEEP_CONN, hello answers and closes as
/// soon as it has read the first, and that extra write then fails with EPIPE now and then. So
/// the request asks to keep the connection: hello ignores the stray record (spec §3.3) and the
/// connection is dropped afterwards. Keep-alive proper has its own test below.
async fn one_request(hello: &Hello, params: Params<'_>, body: &[u8]) -> Response {
    let mut client = Client::new_keep_alive_tokio(connect(hello).await);
    let request = Request::new(params, io::Cursor::new(body));
    tokio::time::timeout(DEADLINE, client.execute(request))
        .await
        .expect("hello answered in time")
        .expect("hello answered a well-formed response")
}

fn parse(response: &Response) -> (CgiResponse, HelloAnswer) {
    let stdout = response.stdout.as_deref().expect("a response on STDOUT");
    let cgi = CgiResponse::parse(stdout);
    let answer = HelloAnswer::parse(&cgi.body);
    (cgi, answer)
}

#[tokio::test]
async fn a_get_is_answered_with_the_pid_and_the_uri() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);

    let response = one_request(&hello, params("GET", "/some/path?x=1"), b"").await;
    let (cgi, answer) = parse(&response);

    assert_eq!(cgi.header("Content-Type"), Some("text/plain"));
    assert_eq!(cgi.header("X-Hello-Pid"), Some(&*hello.pid().to_string()));
    assert_eq!(answer.pid(), hello.pid());
    assert_eq!(answer.get("uri"), "/some/path?x=1");
    assert_eq!(answer.get("account"), "-");
    assert_eq!(response.stderr, None);
}

#[tokio::test]
async fn a_one_mebibyte_post_body_arrives_whole_and_in_order() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);
    let body = pattern_bytes(1 << 20, 42);

    let params = params("POST", "/upload")
        .content_type("application/octet-stream")
        .content_length(body.len());
    let response = one_request(&hello, params, &body).await;
    let (_, answer) = parse(&response);

    assert_eq!(answer.body_bytes(), 1 << 20);
    assert_eq!(answer.body_fnv1a64(), format!("{:016x}", fnv1a64(&body)));
}

#[tokio::test]
async fn keep_alive_requests_are_served_in_turn_by_one_process() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);
    let mut client = Client::new_keep_alive_tokio(connect(&hello).await);

    let mut seen = Vec::new();
    for n in 0..5 {
        let uri = format!("/keep-alive/{n}");
        let request = Request::new(params("GET", &uri), io::empty());
        let response = tokio::time::timeout(DEADLINE, client.execute(request))
            .await
            .expect("hello answered in time")
            .expect("hello answered on the kept connection");
        let (_, answer) = parse(&response);
        assert_eq!(answer.get("uri"), uri);
        seen.push((answer.pid(), answer.requests()));
    }

    let pids: Vec<u32> = seen.iter().map(|(pid, _)| *pid).collect();
    assert_eq!(pids, vec![hello.pid(); 5], "one process served them all");
    let counters: Vec<u64> = seen.iter().map(|(_, requests)| *requests).collect();
    assert!(
        counters.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the requests: counter goes up by one per request: {counters:?}"
    );
}

#[tokio::test]
async fn bytes_5000000_answers_exactly_that_many_body_bytes() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);

    let response = one_request(&hello, params("GET", "/big?bytes=5000000"), b"").await;
    let stdout = response.stdout.as_deref().expect("a response on STDOUT");
    let cgi = CgiResponse::parse(stdout);

    assert_eq!(cgi.header("Content-Length"), Some("5000000"));
    assert_eq!(cgi.body.len(), 5_000_000);
    let alphabet: Vec<u8> = (b'a'..=b'z').collect();
    assert!(
        cgi.body
            .chunks(26)
            .all(|chunk| chunk == &alphabet[..chunk.len()]),
        "the body is abc…z repeated, with nothing lost or doubled at record boundaries"
    );
}
