//! `hello` answers libfcgi's reference client, `cgi-fcgi -bind -connect SOCK` (Debian's
//! libfcgi-bin): cgi-fcgi turns its environment into FastCGI params and its stdin into the
//! request body, as a CGI-to-FastCGI bridge.

use std::process::Command;
use std::time::Duration;

use plexer_tests::{CgiResponse, Hello, HelloAnswer, Scratch, fnv1a64, pattern_bytes, run, tools};

/// `cgi-fcgi -bind -connect` to hello, with only `env` in its environment and `body` on stdin.
fn cgi_fcgi(hello: &Hello, env: &[(&str, &str)], body: &[u8]) -> plexer_tests::Finished {
    let mut command = Command::new(tools::cgi_fcgi());
    command
        .args(["-bind", "-connect"])
        .arg(hello.addr().bare())
        .env_clear()
        .envs(env.iter().copied());
    run(&mut command, body, Duration::from_secs(10))
}

#[test]
fn cgi_fcgi_sends_its_environment_as_params_and_its_stdin_as_the_body() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);
    let body = pattern_bytes(300_000, 7);
    let length = body.len().to_string();

    let out = cgi_fcgi(
        &hello,
        &[
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/form?x=1"),
            ("QUERY_STRING", "x=1"),
            ("CONTENT_LENGTH", &length),
            ("PLEXER_ACCOUNT", "bob"),
            ("PLEXER_USER", "bob@example.com"),
        ],
        &body,
    );
    out.assert_success();

    let cgi = CgiResponse::parse(&out.stdout);
    assert_eq!(cgi.header("X-Hello-Account"), Some("bob"));
    let answer = HelloAnswer::parse(&cgi.body);
    assert_eq!(answer.pid(), hello.pid());
    assert_eq!(answer.get("uri"), "/form?x=1");
    assert_eq!(answer.get("account"), "bob");
    assert_eq!(answer.get("user"), "bob@example.com");
    assert_eq!(answer.body_bytes(), 300_000);
    assert_eq!(answer.body_fnv1a64(), format!("{:016x}", fnv1a64(&body)));
    assert!(out.stderr.is_empty(), "no STDERR records: {out}");
}

#[test]
fn stderr_text_reaches_cgi_fcgis_stderr_and_the_answer_still_comes() {
    let scratch = Scratch::new();
    let hello = Hello::start(&scratch);

    let out = cgi_fcgi(
        &hello,
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/log?stderr=something%20went%20wrong"),
            ("QUERY_STRING", "stderr=something%20went%20wrong"),
        ],
        b"",
    );
    out.assert_success();

    assert_eq!(out.stderr_text(), "something went wrong");
    let answer = HelloAnswer::parse(&CgiResponse::parse(&out.stdout).body);
    assert_eq!(answer.get("uri"), "/log?stderr=something%20went%20wrong");
}
