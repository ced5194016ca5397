//! `plexer --log-format json serve`: every log line is one JSON object, and the lines an
//! operator greps for carry their context as fields. A request line has the account, the
//! worker's pid and the URI; each line a worker writes to its stderr is one event with the pool,
//! the pid and the stream, whole even when it took several pipe reads, and a last line without
//! its newline is still logged when the worker dies; each line of an app's FastCGI STDERR is
//! one event with the account and the worker.

use std::time::Duration;

use plexer_tests::{CgiResponse, HelloAnswer, PlexerRequest, PlexerServe, Scratch, ServeSetup};
use serde_json::Value;

/// The log's lines, each parsed; panics on a line that is not a JSON object.
fn events(plexer: &PlexerServe) -> Vec<Value> {
    plexer
        .log()
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("a log line that is not JSON ({err}): {line:?}"));
            assert!(event.is_object(), "{line:?}");
            event
        })
        .collect()
}

/// A field as text, whether it was logged as a string or a number.
fn field(event: &Value, name: &str) -> Option<String> {
    match &event["fields"][name] {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The first event that has `message` and `stream`, waited for up to 10 s.
fn await_event(plexer: &PlexerServe, stream: &str, message: &str) -> Value {
    plexer_tests::wait_for_value(
        || {
            events(plexer).into_iter().find(|e| {
                field(e, "stream").as_deref() == Some(stream)
                    && field(e, "message").as_deref() == Some(message)
            })
        },
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| {
        panic!(
            "no {stream} event {:?} in the log:\n{}",
            &message[..message.len().min(80)],
            plexer.log()
        )
    })
}

#[test]
fn request_and_output_lines_are_json_objects_with_their_context() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    // Longer than one read of the supervisor's 8 KiB buffer, shorter than MAX_LOG_LINE.
    let long_line = format!("{}<end>", "L".repeat(12_000));
    let uri =
        format!("/logs?stderr=fcgi%20first%0Afcgi%20second%0A&log={long_line}%0Ashort%20line%0A");
    let out = PlexerRequest::new(plexer.addr(), &uri).run();
    out.assert_success();
    let pid = HelloAnswer::parse(&CgiResponse::parse(&out.stdout).body)
        .pid()
        .to_string();

    for message in [long_line.as_str(), "short line"] {
        let event = await_event(&plexer, "stderr", message);
        assert_eq!(field(&event, "pool").as_deref(), Some("login"), "{event}");
        assert_eq!(field(&event, "pid"), Some(pid.clone()), "{event}");
        assert_eq!(field(&event, "continued"), None, "a whole line: {event}");
    }
    for message in ["fcgi first", "fcgi second"] {
        let event = await_event(&plexer, "fcgi_stderr", message);
        assert_eq!(
            field(&event, "account").as_deref(),
            Some("login"),
            "{event}"
        );
        assert_eq!(field(&event, "worker"), Some(pid.clone()), "{event}");
    }
    let request = plexer_tests::wait_for_value(
        || {
            events(&plexer)
                .into_iter()
                .find(|e| field(e, "message").as_deref() == Some("request"))
        },
        Duration::from_secs(10),
    )
    .expect("a request line");
    assert_eq!(field(&request, "account").as_deref(), Some("login"));
    assert_eq!(field(&request, "worker"), Some(pid));
    assert_eq!(field(&request, "uri"), Some(uri));
    assert_eq!(
        field(&request, "status").as_deref(),
        Some("200"),
        "{request}"
    );
    let bytes: u64 = field(&request, "bytes").unwrap().parse().unwrap();
    assert!(bytes > 0, "{request}");
    assert!(field(&request, "micros").is_some(), "{request}");
    assert!(
        !request.to_string().contains("plexer_account="),
        "no cookie in the access log: {request}"
    );

    // The worker dies mid-line: its last words are still one event.
    let _ = PlexerRequest::new(plexer.addr(), "/die?log=last%20words&crash=1").run();
    let event = await_event(&plexer, "stderr", "last words");
    assert_eq!(field(&event, "continued"), None, "{event}");
    assert_eq!(field(&event, "pool").as_deref(), Some("login"), "{event}");

    events(&plexer); // every line so far, start-up notes included, is a JSON object
}
