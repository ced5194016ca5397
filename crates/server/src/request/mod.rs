//! One request from the web server, from its params to its end: routed into a value
//! ([`route`]), relayed to its backend (a leased worker or an app someone else runs), and
//! ended into the worker's outcome ([`outcome`]), the counters and the access log.

mod authorize;
mod outcome;
mod route;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use plexer_fcgi::RequestHead;
use plexer_fcgi::cgi::ResponseHead;
use plexer_prefork::supervisor::Lease;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::UnixStream;

use crate::in_flight::Slow;
use crate::live::{Generation, State};
use crate::relay::{self, ConnectFailed, Ended, Front, Relay, Stalled};
use crate::responses::{self, HeadContext};
use crate::router;
use crate::upstream::{self, External};
use outcome::WorkerRelease;
use route::{Routed, Routing};

/// What the web server's connection does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterRequest {
    /// Read the next request.
    Next,
    /// Close it: the client left, or a response was cut short.
    Close,
}

impl AfterRequest {
    fn from_sent(sent: bool) -> Self {
        if sent {
            AfterRequest::Next
        } else {
            AfterRequest::Close
        }
    }
}

/// Where a routed request goes.
pub(crate) enum Backend {
    /// A worker of the account's pool, leased for this request.
    Worker(Lease),
    /// An app someone else runs (`socket:`).
    External(Arc<External>),
}

impl Backend {
    /// Gives a backend back that was never sent the request.
    fn release_unused(self) {
        if let Backend::Worker(lease) = self {
            lease.release(plexer_prefork::pool::Outcome::Done);
        }
    }
}

/// Adds what plexer tells the app (`PLEXER_ACCOUNT`, `PLEXER_USER`, the authorizer's
/// variables) and checks the params still fit what a worker accepts.
fn add_plexers_params(
    params: &mut plexer_fcgi::Params,
    routed: &Routed,
    limits: &plexer_fcgi::Limits,
) -> Result<(), OverLimits> {
    params.push("PLEXER_ACCOUNT", routed.account.as_str().to_owned());
    if let Some(user) = &routed.user {
        params.push("PLEXER_USER", user.clone());
    }
    // The authorizer's variables: it is trusted over the client, so each replaces a param of
    // its name.
    for (name, value) in routed.granted.iter().flat_map(|allowed| &allowed.params) {
        params.set(name.clone(), value.clone());
    }
    within_limits(params, limits)
}

/// The params, with plexer's own added, do not fit what a worker accepts.
#[derive(Debug, thiserror::Error)]
enum OverLimits {
    #[error(
        "the request's params with plexer's own are {bytes} bytes, over the {limit}-byte limit \
         (max_params_bytes)"
    )]
    Bytes { bytes: usize, limit: usize },
    #[error(
        "the request has {count} params with plexer's own, over the limit of {limit} \
         (max_params_count)"
    )]
    Count { count: usize, limit: usize },
    #[error(transparent)]
    Unencodable(#[from] plexer_fcgi::UsageError),
}

/// Whether the params, with plexer's own added, still fit what a worker accepts (the same
/// [`Limits`](plexer_fcgi::Limits) plexer reads the web server's with).
fn within_limits(
    params: &plexer_fcgi::Params,
    limits: &plexer_fcgi::Limits,
) -> Result<(), OverLimits> {
    let bytes = params.encoded_len()?;
    if bytes > limits.max_params_bytes {
        let limit = limits.max_params_bytes;
        return Err(OverLimits::Bytes { bytes, limit });
    }
    if params.len() > limits.max_params_count {
        let (count, limit) = (params.len(), limits.max_params_count);
        return Err(OverLimits::Count { count, limit });
    }
    Ok(())
}

/// What the status page shows of the request a worker serves.
struct Serving<'a> {
    uri: &'a str,
    since: Instant,
}

/// How relaying to the backend went.
enum Relayed {
    /// The request ran (or failed) on the backend; `worker` is its pid, for the logs, and
    /// `slow` whether the slowlog recorded it while it ran.
    Ended {
        ended: Ended,
        worker: Option<i32>,
        slow: Slow,
    },
    /// plexer answers instead: the app's connections are all busy.
    Refused(Bytes),
    /// The client left while its request waited for a connection.
    ClientGone,
}

/// Answers one request.
pub(crate) async fn handle<R, W>(
    front: &mut Front<R, W>,
    head: RequestHead,
    state: &State,
) -> AfterRequest
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let started = Instant::now();
    let id = head.id;
    let mut params = head.params;
    let stripped = router::strip_claims(&mut params);
    if stripped > 0 {
        tracing::info!(stripped, "dropped client-supplied PLEXER_* params");
    }
    let now = route::unix_now();
    let (routed, backend) = match route::route(front, &params, state, now, started).await {
        Routing::Answer(response) => return answer(front, id, response).await,
        Routing::ClientGone => return AfterRequest::Close,
        Routing::To(routed, backend) => (routed, backend),
    };
    count(&routed.running, false);
    let counters = &routed.running.counters;
    let _in_flight = counters.in_flight.enter();
    // Slow is the app's time, as php-fpm counts it: not the wait for a worker.
    let sent = routed.backend_at;
    // The web server's params fit the limits, but perhaps not with plexer's added: the app
    // would refuse them, and a worker must never be lost for a client's input.
    if let Err(why) = add_plexers_params(&mut params, &routed, &state.limits) {
        tracing::info!(account = %routed.account, "{why}: 431");
        backend.release_unused();
        counters.answered(431, started.elapsed());
        return answer(front, id, responses::params_too_large(&why.to_string())).await;
    }
    let rewrite = rewriter(&routed, &params, now);
    let uri = params.get_str("REQUEST_URI").unwrap_or("-");
    let relay = Relay {
        front_id: id,
        account: routed.account.as_str(),
        worker: None,
        params: &params,
        limits: &state.limits,
        // One deadline for the request, a second attempt on a new connection included.
        deadline: sent + routed.running.request_timeout,
        rewrite: &rewrite,
    };
    let relayed = match backend {
        Backend::Worker(lease) => {
            // The status page shows the path only: a query string may carry a tenant's data.
            let path = uri.split_once('?').map_or(uri, |(path, _)| path);
            let serving = Serving {
                uri: path,
                since: sent,
            };
            to_worker(front, lease, &routed.running, serving, relay).await
        }
        Backend::External(app) => to_external(front, &app, relay).await,
    };
    let (ended, worker, slow) = match relayed {
        Relayed::Ended {
            ended,
            worker,
            slow,
        } => (ended, worker, slow),
        Relayed::Refused(response) => {
            count(&routed.running, true);
            counters.answered(503, started.elapsed());
            return answer(front, id, response).await;
        }
        Relayed::ClientGone => {
            tracing::info!(account = %routed.account, waited_for = "the app", "the client went away while its request waited");
            return AfterRequest::Close;
        }
    };
    let took = started.elapsed();
    if let Some(status) = outcome::status_of(&ended) {
        counters.answered(status, took);
    }
    let request = Finished {
        routed: &routed,
        params: &params,
        log: &state.access_log,
        worker,
        uri,
        started,
        sent,
        slow,
        took,
    };
    request.log_slow();
    match request.end(ended) {
        Ending::Done => AfterRequest::Next,
        Ending::Close => AfterRequest::Close,
        Ending::Answer(response) => answer(front, id, response).await,
        Ending::AnswerThenClose(response) => {
            answer(front, id, response).await;
            AfterRequest::Close
        }
        Ending::CutShort => cut_short(front).await,
        Ending::AbortAnswered => answer_abort(front, id).await,
    }
}

/// The head rewrite of this request's response (cookies, the login app's choice).
fn rewriter<'a>(
    routed: &'a Routed,
    params: &plexer_fcgi::Params,
    now: u64,
) -> impl Fn(&mut ResponseHead) + Sync + 'a {
    let config = &routed.snapshot.config;
    // With the authorizer choosing, the routing cookie is neither read nor set: no app, the
    // login app included, chooses an account by its headers.
    let login = config.route.by != crate::config::RouteBy::Authorizer
        && config.login.account.as_deref() == Some(routed.account.as_str());
    let https = params
        .get_str("HTTPS")
        .is_some_and(|v| v.eq_ignore_ascii_case("on"));
    move |head: &mut ResponseHead| {
        let cx = HeadContext {
            config: &routed.snapshot.config,
            keys: &routed.snapshot.keys,
            registry: &routed.snapshot.registry,
            from_login_app: login,
            https,
            now,
            account: routed.account.as_str(),
        };
        if let Some(note) = responses::rewrite_head(head, &cx) {
            tracing::info!(account = %routed.account, "{note}");
        }
    }
}

/// Relays to a leased worker, on the connection it kept from its last request or a new one,
/// and gives the worker back with what the request's end says of it.
async fn to_worker<R, W>(
    front: &mut Front<R, W>,
    lease: Lease,
    running: &Generation,
    serving: Serving<'_>,
    relay: Relay<'_>,
) -> Relayed
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let worker = lease.pid().map(|p| p.as_raw());
    let serving = worker.map(|worker| running.in_flight.begin(worker, serving.uri, serving.since));
    let connect = async || {
        UnixStream::connect(lease.socket())
            .await
            .map_err(|source| ConnectFailed {
                to: "its worker".into(),
                source,
            })
    };
    let kept = lease.take_connection();
    let was_kept = kept.is_some();
    let connection = match kept {
        Some(kept) => Ok(kept),
        None => connect().await,
    };
    let (ended, connection) = match connection {
        Ok(mut backend) => {
            let relay = Relay { worker, ..relay };
            let ended = relay::relay(front, &mut backend, was_kept, relay, connect).await;
            (ended, Some(backend))
        }
        Err(failed) => {
            let ended = Ended::BackendFailed {
                head_sent: false,
                why: failed.to_string(),
            };
            (ended, None)
        }
    };
    let slow = serving.map_or(Slow::NotYet, |serving| serving.end());
    match (WorkerRelease::after(&ended), connection) {
        (WorkerRelease::KeepConnection, Some(connection)) => lease.release_keeping(connection),
        (release, _) => lease.release(release.outcome()),
    }
    Relayed::Ended {
        ended,
        worker,
        slow,
    }
}

/// Relays to an app someone else runs, on one of its kept connections or a new one.
async fn to_external<R, W>(front: &mut Front<R, W>, app: &External, relay: Relay<'_>) -> Relayed
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(connection) = unless_front_closes(front, app.connection()).await else {
        return Relayed::ClientGone;
    };
    let ended = match connection {
        Ok(mut leased) => {
            let reconnect = async || {
                upstream::connect(&app.address)
                    .await
                    .map_err(|source| ConnectFailed {
                        to: app.address.to_string(),
                        source,
                    })
            };
            let kept = leased.kept;
            let ended = relay::relay(front, &mut leased.stream, kept, relay, reconnect).await;
            if let Ended::Completed { reusable: true, .. } = ended {
                app.keep(leased);
            }
            ended
        }
        Err(upstream::ConnectError::Busy(..)) => {
            return Relayed::Refused(responses::unavailable("the app's connections are all busy"));
        }
        Err(err) => Ended::BackendFailed {
            head_sent: false,
            why: format!("cannot connect to {}: {err}", app.address),
        },
    };
    Relayed::Ended {
        ended,
        worker: None,
        slow: Slow::NotYet,
    }
}

/// A relayed request, ended: what the logs and the counters say of it.
struct Finished<'a> {
    routed: &'a Routed,
    params: &'a plexer_fcgi::Params,
    log: &'a crate::access_log::AccessLog,
    worker: Option<i32>,
    uri: &'a str,
    started: Instant,
    sent: Instant,
    slow: Slow,
    /// From routing to the end, read once for the histogram and the log.
    took: std::time::Duration,
}

impl Finished<'_> {
    /// Counts and logs a slow request the slowlog did not record while it ran: one of an app
    /// plexer does not run (no worker to look at), or one that ended between passing
    /// `request_slowlog_timeout` and the slowlog's next tick.
    fn log_slow(&self) {
        let running = &self.routed.running;
        if self.slow == Slow::NotYet
            && running
                .slow_request
                .is_some_and(|after| self.sent.elapsed() >= after)
        {
            running.counters.slow.fetch_add(1, Ordering::Relaxed);
            let (account, worker, uri) = (&self.routed.account, self.worker, self.uri);
            let took = self.started.elapsed();
            tracing::warn!(target: "plexer::slow", account = %account, worker, uri, ?took, "slow request: longer than request_slowlog_timeout");
        }
    }

    /// Logs how the request ended, and decides what the web server gets: nothing more, the
    /// answer plexer writes for the app, or a cut-short response.
    fn end(&self, ended: Ended) -> Ending {
        let (account, worker, uri) = (&self.routed.account, self.worker, self.uri);
        let took = self.took;
        match ended {
            Ended::Completed {
                app_status,
                status,
                body_bytes,
                ..
            } => {
                // The access log: what identifies the request, never a cookie or a header.
                let param = |name| self.params.get_str(name).unwrap_or("-");
                self.log.record(&crate::access_log::Line {
                    remote_addr: param("REMOTE_ADDR"),
                    user: self.routed.user.as_deref(),
                    method: param("REQUEST_METHOD"),
                    uri,
                    protocol: param("SERVER_PROTOCOL"),
                    status,
                    bytes: body_bytes,
                    account: account.as_str(),
                    worker,
                    app_status,
                    micros: took.as_micros() as u64,
                    queue_micros: self.routed.queue_wait.as_micros() as u64,
                });
                Ending::Done
            }
            Ended::ClientGone { worker_free } => {
                let worker_is = if worker_free { "free again" } else { "stopped" };
                tracing::info!(account = %account, worker, uri, ?took, worker_free, "the client went away; the worker is {worker_is}");
                Ending::Close
            }
            Ended::Aborted { worker_free } => {
                let worker_is = if worker_free { "free again" } else { "stopped" };
                tracing::info!(account = %account, worker, uri, ?took, worker_free, aborted = true, "the web server aborted the request; the worker is {worker_is}");
                Ending::AbortAnswered
            }
            Ended::TimedOut { head_sent } => {
                count(&self.routed.running, true);
                tracing::warn!(account = %account, worker, uri, ?took, "request_timeout passed: 504, worker killed");
                match head_sent {
                    true => Ending::CutShort,
                    false => Ending::Answer(responses::timeout()),
                }
            }
            Ended::BackendFailed { head_sent, why } => {
                count(&self.routed.running, true);
                tracing::warn!(account = %account, worker, uri, ?took, "the application failed: {why}");
                match head_sent {
                    true => Ending::CutShort,
                    false => Ending::Answer(responses::bad_gateway(&why)),
                }
            }
            Ended::Stalled {
                stalled,
                head_sent,
                worker_free,
            } => {
                let (what, key) = match stalled {
                    Stalled::Request => ("stopped sending the request", "body_timeout"),
                    Stalled::Answer => ("stopped taking the answer", "send_timeout"),
                };
                tracing::warn!(account = %account, worker, uri, ?took, worker_free, "the web server {what} for {key}: the request is given up");
                match (stalled, head_sent) {
                    (Stalled::Request, false) => {
                        Ending::AnswerThenClose(responses::request_timeout())
                    }
                    (Stalled::Request, true) => Ending::CutShort,
                    (Stalled::Answer, _) => Ending::Close,
                }
            }
        }
    }
}

/// What the web server gets once a relayed request ended.
#[derive(Debug)]
enum Ending {
    /// The response went out whole.
    Done,
    /// Nothing more: its client left.
    Close,
    /// plexer's own answer (504, 502): nothing of the app's went out.
    Answer(Bytes),
    /// plexer's own answer, and the connection closes: what the web server still sends of
    /// the request belongs to no request.
    AnswerThenClose(Bytes),
    /// The app's head went out: what was relayed is flushed, then the connection closes.
    CutShort,
    /// The web server aborted the request: it gets the END_REQUEST it waits for (§5.4), and
    /// the connection goes on when it asked to keep it.
    AbortAnswered,
}

/// Waits for `wait` (a worker, a connection to the app) while watching the web server's
/// connection: `None` when it closed first, its client having left while the request waited,
/// so no worker ever runs a request nobody wants. What the web server sends meanwhile (the
/// request's body) stays in the connection's read buffer for the relay.
async fn unless_front_closes<R, W, T>(
    front: &mut Front<R, W>,
    wait: impl Future<Output = T>,
) -> Option<T>
where
    R: AsyncRead + Unpin,
{
    let closed = async {
        loop {
            if front.conn.read_buf().len() >= relay::HIGH_WATER {
                // Enough is buffered: the rest waits in the socket, and so does the close.
                return std::future::pending().await;
            }
            front.conn.read_buf().reserve(4 * 1024);
            match front.rd.read_buf(front.conn.read_buf()).await {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    };
    tokio::select! {
        got = wait => Some(got),
        () = closed => None,
    }
}

/// Counts a request routed to an account, or an error plexer answered for it.
fn count(running: &Generation, error: bool) {
    let counter = if error {
        &running.counters.errors
    } else {
        &running.counters.requests
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Ends a response whose head went out: what was relayed still goes to the web server, then
/// the connection closes, so the client sees the response cut short; dropped, the relayed part
/// would never arrive.
async fn cut_short<R, W: AsyncWrite + Unpin>(front: &mut Front<R, W>) -> AfterRequest {
    let _ = relay::flush_front(front).await;
    AfterRequest::Close
}

/// Ends an aborted request with its END_REQUEST; the connection goes on unless the web server
/// did not ask to keep it.
async fn answer_abort<R, W>(front: &mut Front<R, W>, id: u16) -> AfterRequest
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ended = front.conn.end_request(id, 0).is_ok();
    front.pending.append(front.conn.outbox());
    let flushed = relay::flush_front(front).await.is_ok();
    AfterRequest::from_sent(ended && flushed && !front.conn.is_closing())
}

/// Sends a whole response that plexer made itself.
async fn answer<R, W>(front: &mut Front<R, W>, id: u16, response: Bytes) -> AfterRequest
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sent = front.conn.stdout(id, response).is_ok() && front.conn.end_request(id, 0).is_ok();
    front.pending.append(front.conn.outbox());
    let flushed = relay::flush_front(front).await.is_ok();
    AfterRequest::from_sent(sent && flushed)
}
