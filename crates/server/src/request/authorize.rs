//! Asking the authorizer (`route.by: authorizer`): its cached decision, or one FastCGI round
//! trip in the AUTHORIZER role to a worker of its account (or its `socket:` app). What the
//! answer means is [`crate::authorizer`]'s; this is the I/O, and what a failure costs the
//! request: a 503 when the authorizer cannot be reached or is too slow, a 502 when its answer
//! is not one, never another account.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use plexer_fcgi::cgi::HeadParser;
use plexer_fcgi::{ClientConnection, ClientEvent, Limits, Params, Role};
use plexer_prefork::pool::Outcome;
use plexer_prefork::supervisor::Lease;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::UnixStream;

use super::unless_front_closes;
use crate::account::AccountName;
use crate::authorizer::{self, Allowed, MAX_ANSWER, Verdict, cache};
use crate::live::{Snapshot, State, Target};
use crate::relay::{self, Front};
use crate::responses;

/// What asking the authorizer gave.
pub(super) enum Asked {
    /// Its 200 (perhaps kept from an earlier request).
    Allowed(Arc<Allowed>),
    /// What the client gets instead: the authorizer's own denial, or plexer's 502/503.
    Answer(Bytes),
    /// The client left while the request waited for the authorizer's worker.
    ClientGone,
}

/// Why the authorizer gave no answer.
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("the authorizer could not be reached: {0}")]
    Unreachable(String),
    #[error("the authorizer did not answer within authorizer.timeout ({0:?})")]
    TooSlow(std::time::Duration),
    #[error("the authorizer's answer is not one: {0}")]
    Garbage(String),
}

impl Failed {
    fn answer(&self) -> Bytes {
        match self {
            Failed::Garbage(_) => responses::bad_gateway(&self.to_string()),
            _ => responses::unavailable(&self.to_string()),
        }
    }
}

/// Asks the authorizer about a request with `params`, or finds its decision in the cache.
pub(super) async fn ask<R, W>(
    front: &mut Front<R, W>,
    params: &Params,
    state: &State,
    snapshot: &Snapshot,
) -> Asked
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = snapshot
        .config
        .authorizer
        .as_ref()
        .expect("route.by: authorizer is refused without authorizer:");
    let cached = config
        .cache
        .as_ref()
        .map(|c| (state.authorizer.cache_for(c), c.cookie.as_str()));
    let key = cached
        .as_ref()
        .and_then(|(_, cookie)| cache::key(params, cookie));
    if let (Some((cache, _)), Some(key)) = (&cached, key)
        && let Some(allowed) = cache.get(key, Instant::now())
    {
        return Asked::Allowed(allowed);
    }
    state.authorizer.asked.fetch_add(1, Ordering::Relaxed);
    let sent = authorizer::authorizer_params(params);
    let round_trip = round_trip(front, &sent, state, snapshot, &config.account);
    let Some(answered) = round_trip.await else {
        return Asked::ClientGone;
    };
    let exchanged = match answered {
        Ok(exchanged) => exchanged,
        Err(failed) => {
            state.authorizer.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(authorizer = %config.account, "{failed}: the request gets {}", if matches!(failed, Failed::Garbage(_)) { 502 } else { 503 });
            return Asked::Answer(failed.answer());
        }
    };
    match exchanged {
        Verdict::Allow(allowed) => {
            if !allowed.dropped.is_empty() {
                tracing::warn!(authorizer = %config.account, dropped = ?allowed.dropped, "the authorizer's variables that may not reach an app were dropped (HTTP_*, PLEXER_*, names other than letters, digits and _)");
            }
            if let (Some((cache, _)), Some(key)) = (&cached, key) {
                cache.put(key, Arc::clone(&allowed), Instant::now());
            }
            Asked::Allowed(allowed)
        }
        Verdict::Deny(answer) => Asked::Answer(answer),
    }
}

/// One exchange with the authorizer's account, on a worker leased for it (or a connection to
/// its app); `None` when the client left while it waited for one.
async fn round_trip<R, W>(
    front: &mut Front<R, W>,
    params: &Params,
    state: &State,
    snapshot: &Snapshot,
    account: &str,
) -> Option<Result<Verdict, Failed>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let timeout = snapshot
        .config
        .authorizer
        .as_ref()
        .map(|a| a.timeout.0)
        .unwrap_or_default();
    let running = AccountName::new(account)
        .ok()
        .and_then(|name| snapshot.running.get(&name).cloned());
    let Some(running) = running else {
        let why = format!("its account {account} is not running");
        return Some(Err(Failed::Unreachable(why)));
    };
    let limits = &state.limits;
    Some(match &running.target {
        Target::Pool(pool) => {
            let lease = match unless_front_closes(front, pool.acquire()).await? {
                Ok(lease) => lease,
                Err(refusal) => return Some(Err(Failed::Unreachable(refusal.to_string()))),
            };
            on_worker(lease, params, limits, timeout).await
        }
        Target::External(app) => {
            let mut leased = match app.connection().await {
                Ok(leased) => leased,
                Err(err) => return Some(Err(Failed::Unreachable(err.to_string()))),
            };
            let verdict = within(timeout, exchange(&mut leased.stream, params, limits)).await;
            if verdict.is_ok() {
                app.keep(leased);
            }
            verdict
        }
        Target::Stopped { why } => Err(Failed::Unreachable(format!("its account stopped: {why}"))),
    })
}

/// The exchange on the leased worker: on the connection it kept from its last request, and
/// once more on a new one when the worker had closed that (an app recycling itself closes its
/// kept connections: the race every keep-alive client meets). Asking again is harmless: an
/// authorizer's answer changes nothing.
async fn on_worker(
    lease: Lease,
    params: &Params,
    limits: &Limits,
    timeout: std::time::Duration,
) -> Result<Verdict, Failed> {
    let mut kept = lease.take_connection();
    loop {
        let was_kept = kept.is_some();
        let connection = match kept.take() {
            Some(connection) => Ok(connection),
            None => UnixStream::connect(lease.socket()).await,
        };
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(err) => {
                lease.release(Outcome::Broken);
                return Err(Failed::Unreachable(err.to_string()));
            }
        };
        match within(timeout, exchange(&mut connection, params, limits)).await {
            Err(Failed::Unreachable(_)) if was_kept => continue,
            Ok(verdict) => {
                lease.release_keeping(connection);
                return Ok(verdict);
            }
            Err(failed) => {
                let outcome = match failed {
                    Failed::TooSlow(_) => Outcome::TimedOut,
                    _ => Outcome::Broken,
                };
                lease.release(outcome);
                return Err(failed);
            }
        }
    }
}

async fn within(
    timeout: std::time::Duration,
    exchange: impl Future<Output = Result<Verdict, Failed>>,
) -> Result<Verdict, Failed> {
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(Failed::TooSlow(timeout)))
}

/// Sends the AUTHORIZER request (its params, an empty body) on `stream`, asking to keep the
/// connection, and reads the answer to its END_REQUEST.
async fn exchange<S>(stream: &mut S, params: &Params, limits: &Limits) -> Result<Verdict, Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let garbage = |why: String| Failed::Garbage(why);
    let mut conn = ClientConnection::new(limits.clone());
    let id = conn
        .begin_request(Role::Authorizer, true, params)
        .map_err(|err| garbage(err.to_string()))?;
    let _ = conn.stdin_end(id);
    relay::flush(stream, conn.outbox())
        .await
        .map_err(|err| Failed::Unreachable(err.to_string()))?;
    let mut answer = Answer::new(limits);
    loop {
        while let Some(event) = conn.poll_event().map_err(|err| garbage(err.to_string()))? {
            match event {
                ClientEvent::Stdout { data, .. } => answer.push(data)?,
                ClientEvent::End { .. } => return answer.end(),
                // Its log lines go where a worker's stderr goes; not to the client.
                ClientEvent::Stderr { .. }
                | ClientEvent::Values(_)
                | ClientEvent::UnknownType(_) => {}
            }
        }
        conn.read_buf().reserve(8 * 1024);
        let read = stream.read_buf(conn.read_buf()).await;
        match read {
            Ok(0) => {
                return Err(Failed::Unreachable(
                    "it closed the connection before answering".into(),
                ));
            }
            Ok(_) => {}
            Err(err) => return Err(Failed::Unreachable(err.to_string())),
        }
    }
}

/// The authorizer's answer as it comes: its head, then a body of at most [`MAX_ANSWER`].
struct Answer {
    parser: HeadParser,
    head: Option<plexer_fcgi::cgi::ResponseHead>,
    body: BytesMut,
}

impl Answer {
    fn new(limits: &Limits) -> Self {
        Self {
            parser: HeadParser::new(limits),
            head: None,
            body: BytesMut::new(),
        }
    }

    fn push(&mut self, data: Bytes) -> Result<(), Failed> {
        let rest = match &self.head {
            Some(_) => data,
            None => match self.parser.push(data) {
                Ok(Some((head, rest))) => {
                    self.head = Some(head);
                    rest
                }
                Ok(None) => return Ok(()),
                Err(err) => return Err(Failed::Garbage(format!("its head: {err}"))),
            },
        };
        if self.body.len() + rest.len() > MAX_ANSWER {
            return Err(Failed::Garbage(format!(
                "an answer over {MAX_ANSWER} bytes"
            )));
        }
        self.body.extend_from_slice(&rest);
        Ok(())
    }

    fn end(self) -> Result<Verdict, Failed> {
        let head = self.head.ok_or_else(|| {
            Failed::Garbage("it ended the request without a response head".into())
        })?;
        Ok(authorizer::read_answer(head, self.body.freeze()))
    }
}
