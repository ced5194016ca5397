//! The exchange's transitions, with real codecs at both ends and no socket: the web server's
//! end encodes into plexer's front codec, the app's end answers plexer's backend codec.

use bytes::{Buf, Bytes};
use plexer_fcgi::{ClientConnection, Limits, Outbox, Params, Role, ServerConfig, ServerConnection};

use super::*;

/// The four codecs of one relayed request, and the exchange between the middle two.
struct Wire {
    /// The web server's end.
    web: ClientConnection,
    web_id: u16,
    /// plexer's end facing the web server.
    front: ServerConnection,
    /// plexer's end facing the app.
    back: ClientConnection,
    /// The app's end.
    app: ServerConnection,
    exchange: Exchange,
    /// The request's params, as plexer received them.
    params: Params,
    /// Bytes plexer encoded for the app and has not written.
    back_pending: Outbox,
}

fn drain(outbox: &mut Outbox) -> Vec<u8> {
    let mut bytes = Vec::new();
    while !outbox.is_empty() {
        let mut slices = [io::IoSlice::new(&[]); 16];
        let count = outbox.io_slices(&mut slices);
        let n: usize = slices[..count].iter().map(|s| s.len()).sum();
        for slice in &slices[..count] {
            bytes.extend_from_slice(slice);
        }
        outbox.advance(n);
    }
    bytes
}

fn params(method: &str) -> Params {
    let mut params = Params::new();
    params.push("REQUEST_METHOD", method.to_owned());
    params.push("REQUEST_URI", "/x");
    params
}

impl Wire {
    fn new(method: &str, kept: bool) -> Self {
        Self::resuming(method, kept, Resend::default())
    }

    fn resuming(method: &str, kept: bool, earlier: Resend) -> Self {
        let limits = Limits::default();
        let mut web = ClientConnection::new(limits.clone());
        let web_id = web
            .begin_request(Role::Responder, true, &params(method))
            .unwrap();
        let mut front = ServerConnection::new(ServerConfig::default());
        front.receive(&drain(web.outbox()));
        let Ok(Some(ServerEvent::Request(head))) = front.poll_event() else {
            panic!("the front codec takes the request");
        };
        let mut back = ClientConnection::new(limits.clone());
        let exchange =
            Exchange::begin(head.id, &head.params, &limits, kept, earlier, &mut back).unwrap();
        let mut back_pending = Outbox::new();
        exchange.queue_for_backend(&mut back, &mut back_pending);
        Wire {
            web,
            web_id,
            front,
            back,
            app: ServerConnection::new(ServerConfig::default()),
            exchange,
            params: head.params,
            back_pending,
        }
    }

    /// The app's connection closed (`why`; `unread`: with the request unread).
    fn closed(&mut self, why: &str, unread: bool) -> Result<Ended, Unsent> {
        self.exchange
            .backend_closed(why.into(), unread, &self.params)
    }

    /// The web server sends `body` (and ends it when `end`); plexer takes it.
    fn web_sends(&mut self, body: &'static [u8], end: bool) -> FrontStep {
        if !body.is_empty() {
            self.web
                .stdin(self.web_id, Bytes::from_static(body))
                .unwrap();
        }
        if end {
            self.web.stdin_end(self.web_id).unwrap();
        }
        self.web_delivers()
    }

    fn web_delivers(&mut self) -> FrontStep {
        self.front.receive(&drain(self.web.outbox()));
        let step = self.exchange.front_events(&mut self.front, &mut self.back);
        self.exchange
            .queue_for_backend(&mut self.back, &mut self.back_pending);
        step
    }

    /// plexer writes what waits for the app, which reads it: the app's events.
    fn app_reads(&mut self) -> Vec<ServerEvent> {
        let bytes = drain(&mut self.back_pending);
        if !bytes.is_empty() {
            self.exchange.backend_wrote();
        }
        self.app.receive(&bytes);
        std::iter::from_fn(|| self.app.poll_event().unwrap()).collect()
    }

    /// The app answers `stdout` (and ends the request when `end`); plexer relays it.
    fn app_answers(&mut self, stdout: &'static [u8], end: bool) -> Option<Ended> {
        self.app_reads();
        let id = 1;
        if !stdout.is_empty() {
            self.app.stdout(id, Bytes::from_static(stdout)).unwrap();
        }
        if end {
            self.app.end_request(id, 0).unwrap();
        }
        self.back.receive(&drain(self.app.outbox()));
        self.exchange.backend_answered();
        let mut stderr = StderrLines::new("bob", Some(7));
        let rewrite =
            |head: &mut ResponseHead| head.headers.push(("X-Rewritten".into(), "yes".into()));
        let unsent = !self.back_pending.is_empty();
        self.exchange.backend_events(
            &mut self.back,
            &mut self.front,
            &rewrite,
            &mut stderr,
            unsent,
        )
    }

    /// What the web server receives.
    fn web_receives(&mut self) -> String {
        self.web.receive(&drain(self.front.outbox()));
        let mut text = String::new();
        while let Some(event) = self.web.poll_event().unwrap() {
            if let ClientEvent::Stdout { data, .. } = event {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        text
    }
}

#[test]
fn the_request_and_its_body_reach_the_app_and_the_rewritten_response_comes_back() {
    let mut wire = Wire::new("GET", false);
    assert_eq!(wire.web_sends(b"hello", true), FrontStep::Continue);
    let events = wire.app_reads();
    assert!(
        matches!(&events[0], ServerEvent::Request(head) if head.params.get_str("REQUEST_URI") == Some("/x"))
    );
    assert!(matches!(&events[1], ServerEvent::Stdin { data, .. } if &data[..] == b"hello"));
    assert!(matches!(events[2], ServerEvent::StdinEnd { .. }));
    assert!(wire.exchange.reached_backend());

    assert!(
        wire.app_answers(b"Status: 201 Made\r\n\r\nbo", false)
            .is_none()
    );
    let ended = wire.app_answers(b"dy", true);
    let Some(Ended::Completed {
        status,
        body_bytes,
        reusable,
        ..
    }) = ended
    else {
        panic!("{ended:?}");
    };
    assert_eq!((status, body_bytes, reusable), (201, 4, true));
    let got = wire.web_receives();
    assert!(got.contains("X-Rewritten: yes"), "{got}");
    assert!(got.ends_with("\r\n\r\nbody"), "{got}");
}

#[test]
fn a_response_ended_before_its_body_was_read_leaves_the_connection_unusable() {
    let mut wire = Wire::new("POST", false);
    wire.web_sends(b"part", false);
    wire.app_reads();
    // The app answers before the body ended: the connection still owes it the rest.
    let ended = wire.app_answers(b"Status: 200\r\n\r\n", true);
    assert!(
        matches!(
            ended,
            Some(Ended::Completed {
                reusable: false,
                ..
            })
        ),
        "{ended:?}"
    );
}

#[test]
fn an_app_that_stops_reading_gets_nothing_more_and_is_not_reused() {
    let mut wire = Wire::new("POST", false);
    wire.app_reads();
    wire.exchange.backend_refused_input(false);
    wire.web_sends(b"more", true);
    assert!(wire.back_pending.is_empty(), "dropped, not queued");
    let ended = wire.app_answers(b"Status: 413\r\n\r\n", true);
    assert!(
        matches!(
            ended,
            Some(Ended::Completed {
                status: 413,
                reusable: false,
                ..
            })
        ),
        "{ended:?}"
    );
}

#[test]
fn an_end_before_any_head_is_a_failure_before_the_head() {
    let mut wire = Wire::new("GET", false);
    wire.web_sends(b"", true);
    let ended = wire.app_answers(b"", true);
    assert!(
        matches!(&ended, Some(Ended::BackendFailed { head_sent: false, why }) if why.contains("without a response head")),
        "{ended:?}"
    );
}

#[test]
fn a_malformed_head_fails_the_request() {
    let mut wire = Wire::new("GET", false);
    let ended = wire.app_answers(b"no colon here\r\n\r\n", false);
    assert!(
        matches!(&ended, Some(Ended::BackendFailed { head_sent: false, why }) if why.starts_with("its response head")),
        "{ended:?}"
    );
}

#[test]
fn after_the_head_a_timeout_or_failure_says_the_head_went_out() {
    let mut wire = Wire::new("GET", false);
    assert!(matches!(
        wire.exchange.timed_out(),
        Ended::TimedOut { head_sent: false }
    ));
    wire.app_answers(b"Status: 200\r\n\r\nsome", false);
    assert!(matches!(
        wire.exchange.timed_out(),
        Ended::TimedOut { head_sent: true }
    ));
    assert!(matches!(
        wire.exchange.failed("x".into()),
        Ended::BackendFailed {
            head_sent: true,
            ..
        }
    ));
}

#[test]
fn an_abort_from_the_web_server_ends_the_request_and_not_the_connection() {
    let mut wire = Wire::new("GET", false);
    assert!(
        !wire.exchange.reached_backend(),
        "nothing written yet: the worker never saw it"
    );
    wire.web.abort(wire.web_id).unwrap();
    assert_eq!(wire.web_delivers(), FrontStep::Aborted);
}

#[test]
fn a_kept_connection_closed_before_any_answer_sends_an_idempotent_request_again() {
    let mut wire = Wire::new("GET", true);
    wire.web_sends(b"body", true);
    wire.app_reads();
    let Err(unsent) = wire.closed("it closed the connection", false) else {
        panic!("a GET goes again");
    };
    assert_eq!(unsent.why, "it closed the connection");

    // The next attempt sends what the first took from the web server.
    let mut again = Wire::resuming("GET", false, unsent.resend);
    let events = again.app_reads();
    assert!(matches!(&events[1], ServerEvent::Stdin { data, .. } if &data[..] == b"body"));
    assert!(matches!(events[2], ServerEvent::StdinEnd { .. }));
}

#[test]
fn a_post_goes_again_only_when_the_app_never_read_it() {
    let mut read = Wire::new("POST", true);
    read.web_sends(b"order", true);
    read.app_reads();
    assert!(matches!(
        read.closed("it closed the connection", false),
        Ok(Ended::BackendFailed {
            head_sent: false,
            ..
        })
    ));

    let mut unread = Wire::new("POST", true);
    unread.web_sends(b"order", true);
    unread.exchange.backend_refused_input(true);
    assert!(unread.closed("reset", false).is_err());
}

#[test]
fn once_the_app_answered_the_request_never_goes_again() {
    let mut wire = Wire::new("GET", true);
    wire.app_answers(b"Status: 200\r\n", false);
    assert!(wire.closed("closed", true).is_ok());
}

#[test]
fn a_new_connection_or_a_long_body_is_never_sent_again() {
    let mut fresh = Wire::new("GET", false);
    assert!(fresh.closed("closed", true).is_ok());

    let mut long = Wire::new("PUT", true);
    static BIG: [u8; RESEND_LIMIT + 1] = [b'x'; RESEND_LIMIT + 1];
    long.web_sends(&BIG, false);
    assert!(long.closed("closed", true).is_ok());
}

/// A head whose header lines (up to the blank line's newlines) are `len` bytes: one long
/// header, then the blank line.
fn head_of(len: usize) -> Vec<u8> {
    let fixed = "Status: 200\r\nX-Big: \r".len();
    format!("Status: 200\r\nX-Big: {}\r\n\r\n", "a".repeat(len - fixed)).into_bytes()
}

#[test]
fn a_response_head_over_64_kib_is_a_failure_and_one_at_the_limit_passes() {
    let limit = Limits::DEFAULT_MAX_RESPONSE_HEAD;
    assert_eq!(limit, 64 * 1024);
    let mut at_limit = Wire::new("GET", false);
    at_limit.web_sends(b"", true);
    let head: &'static [u8] = Vec::leak(head_of(limit));
    assert!(at_limit.app_answers(head, false).is_none());
    assert!(matches!(
        at_limit.app_answers(b"", true),
        Some(Ended::Completed { status: 200, .. })
    ));

    let mut over = Wire::new("GET", false);
    over.web_sends(b"", true);
    let head: &'static [u8] = Vec::leak(head_of(limit + 1));
    let ended = over.app_answers(head, false);
    assert!(
        matches!(&ended, Some(Ended::BackendFailed { head_sent: false, why }) if why.starts_with("its response head")),
        "{ended:?}"
    );
}
