//! `plexer request` talks to Debian's `php-cgi -b`, the FastCGI server most operators already
//! run: params from the URI and `-p`, the body from `--body`, and php's response (a `Status:`
//! line, repeated `Set-Cookie` headers, the body) printed as php sent it.

use std::process::Command;
use std::time::Duration;

use plexer_tests::{CgiResponse, PhpCgi, PlexerRequest, Scratch, fnv1a64, pattern_bytes, run};

/// Echoes what it received and answers with a status, a header and two cookies.
const SCRIPT: &str = r#"<?php
http_response_code(201);
header('X-Test: 1');
setcookie('first', 'one');
setcookie('second', 'two');
$body = file_get_contents('php://input');
echo "method: ", $_SERVER['REQUEST_METHOD'], "\n";
echo "q: ", $_GET['q'] ?? '-', "\n";
echo "uri: ", $_SERVER['REQUEST_URI'], "\n";
echo "body_len: ", strlen($body), "\n";
echo "body_md5: ", md5($body), "\n";
echo "body_fnv1a64: ", hash('fnv1a64', $body), "\n";
"#;

/// md5 of `path`, by coreutils' md5sum: a second opinion that shares nothing with php.
fn md5sum(path: &std::path::Path) -> String {
    let out = run(
        Command::new("md5sum").arg(path),
        b"",
        Duration::from_secs(10),
    );
    out.assert_success();
    out.stdout_text()
        .split_whitespace()
        .next()
        .expect("md5sum prints the digest first")
        .to_owned()
}

#[test]
fn a_post_gets_php_s_status_header_both_cookies_and_the_body_digest() {
    let scratch = Scratch::new();
    let script = scratch.write("t.php", SCRIPT);
    let body = pattern_bytes(200_000, 3);
    let body_file = scratch.write("body.bin", &body);
    let php = PhpCgi::start(&scratch);

    let out = PlexerRequest::new(php.addr(), "/t.php?q=1")
        .param("SCRIPT_FILENAME", script.to_str().expect("UTF-8 path"))
        .method("POST")
        .body_file(&body_file)
        .run();
    out.assert_success();

    let cgi = CgiResponse::parse(&out.stdout);
    assert_eq!(cgi.status(), Some("201 Created"), "{out}");
    assert_eq!(cgi.header("X-Test"), Some("1"), "{out}");
    assert_eq!(
        cgi.headers_named("Set-Cookie"),
        vec!["first=one", "second=two"],
        "each cookie on its own line: {out}"
    );
    let text = cgi.body_text();
    assert!(text.contains("method: POST\n"), "{out}");
    assert!(text.contains("q: 1\n"), "{out}");
    assert!(text.contains("uri: /t.php?q=1\n"), "{out}");
    assert!(text.contains("body_len: 200000\n"), "{out}");
    assert!(
        text.contains(&format!("body_md5: {}\n", md5sum(&body_file))),
        "{out}"
    );
    assert!(
        text.contains(&format!("body_fnv1a64: {:016x}\n", fnv1a64(&body))),
        "{out}"
    );
}

#[test]
fn a_get_reaches_php_with_no_body() {
    let scratch = Scratch::new();
    let script = scratch.write("t.php", SCRIPT);
    let php = PhpCgi::start(&scratch);

    let out = PlexerRequest::new(php.addr(), "/t.php?q=hello%20world")
        .param("SCRIPT_FILENAME", script.to_str().expect("UTF-8 path"))
        .run();
    out.assert_success();

    let cgi = CgiResponse::parse(&out.stdout);
    let text = cgi.body_text();
    assert!(text.contains("method: GET\n"), "{out}");
    assert!(text.contains("q: hello world\n"), "{out}");
    assert!(text.contains("body_len: 0\n"), "{out}");
    // md5 of the empty string.
    assert!(
        text.contains("body_md5: d41d8cd98f00b204e9800998ecf8427e\n"),
        "{out}"
    );
}

#[test]
fn without_script_filename_php_answers_404_and_plexer_request_still_exits_0() {
    let scratch = Scratch::new();
    let php = PhpCgi::start(&scratch);

    let out = PlexerRequest::new(php.addr(), "/t.php").run();

    // A response the application chose is a success for the client; only the protocol
    // failing is an error.
    out.assert_success();
    let cgi = CgiResponse::parse(&out.stdout);
    assert_eq!(cgi.status(), Some("404 Not Found"), "{out}");
    assert!(
        cgi.body_text().contains("No input file specified."),
        "{out}"
    );
}
