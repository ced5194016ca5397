//! Where a request goes, decided into a value: an answer plexer writes itself, or an account
//! and its backend (a worker leased for the request, or the app someone else runs).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use plexer_fcgi::Params;
use plexer_prefork::pool::Refusal;
use tokio::io::{AsyncRead, AsyncWrite};

use super::authorize::{self, Asked};
use super::{Backend, count, unless_front_closes};
use crate::account::AccountName;
use crate::authorizer::Allowed;
use crate::live::{Generation, Snapshot, State, Target};
use crate::relay::{Entry, Front};
use crate::responses;
use crate::router::{self, Decision};
use crate::status;

/// How often a request that met a generation being retired is routed again.
const REROUTES: usize = 3;

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What routing decided.
pub(super) enum Routing {
    /// plexer answers: ping, the status page, a refusal, a redirect, an account that cannot
    /// take the request.
    Answer(Bytes),
    /// The client left while its request waited for a worker.
    ClientGone,
    /// To an account's backend.
    To(Routed, Backend),
}

/// A request routed to an account, with the snapshot it was routed by.
pub(super) struct Routed {
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) account: AccountName,
    /// The signed-in user, when the route knows it.
    pub(super) user: Option<String>,
    /// What the authorizer allowed, its variables for the app among it.
    pub(super) granted: Option<Arc<Allowed>>,
    pub(super) running: Arc<Generation>,
    /// How long the request waited for a worker (zero for an app someone else runs).
    pub(super) queue_wait: Duration,
    /// When the backend was in hand: the app's time starts here.
    pub(super) backend_at: Instant,
}

/// The account a decision names (and its user), or the answer plexer writes itself.
async fn answer_or_account(
    decision: Decision,
    snapshot: &Arc<Snapshot>,
    state: &State,
) -> Result<(AccountName, Option<String>), Bytes> {
    Err(match decision {
        Decision::Login { account } => return Ok((account, None)),
        Decision::Account { account, user } => return Ok((account, user)),
        Decision::Ping => responses::plain(200, "OK", &[], "pong"),
        Decision::Status {
            format,
            full,
            query,
        } => status::render(Arc::clone(snapshot), state, format, full, &query).await,
        Decision::StatusForbidden | Decision::Forbidden | Decision::AskAuthorizer => {
            responses::forbidden()
        }
        Decision::NoSuchAccount(named) => {
            tracing::warn!(named = %named.escape_debug(), "the authorizer named an account that does not exist: 403");
            responses::forbidden()
        }
        Decision::Duplicated(name) => {
            tracing::warn!(param = name, "refused a request carrying {name} twice");
            responses::bad_request(&format!("the request carries {name} twice"))
        }
        Decision::Redirect(url) => responses::redirect(&url),
    })
}

/// Routes with one snapshot; a request that meets a generation being retired (a reload or a
/// removal published meanwhile) is routed again with the newer one, [`REROUTES`] times at most.
pub(super) async fn route<R, W>(
    front: &mut Front<R, W>,
    params: &Params,
    state: &State,
    now: u64,
    started: Instant,
) -> Routing
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reroutes = 0;
    loop {
        let snapshot = state.snapshot();
        let decision = match front.entry {
            Entry::Listen => router::route(
                &snapshot.config,
                &snapshot.keys,
                &snapshot.registry,
                params,
                now,
            ),
            Entry::Status => router::route_status_socket(&snapshot.config, params),
        };
        let (decision, granted) = match decision {
            Decision::AskAuthorizer => {
                match authorize::ask(front, params, state, &snapshot).await {
                    Asked::Allowed(allowed) => {
                        let config = &snapshot.config;
                        let decision =
                            router::after_authorizer(config, &snapshot.registry, &allowed);
                        (decision, Some(allowed))
                    }
                    Asked::Answer(response) => return Routing::Answer(response),
                    Asked::ClientGone => return Routing::ClientGone,
                }
            }
            decision => (decision, None),
        };
        let (account, user) = match answer_or_account(decision, &snapshot, state).await {
            Ok(routed) => routed,
            Err(response) => return Routing::Answer(response),
        };
        let Some(running) = snapshot.running.get(&account).cloned() else {
            return Routing::Answer(responses::unavailable("the account is not running"));
        };
        let asked = Instant::now();
        let (backend, queue_wait) = match &running.target {
            Target::Pool(pool) => match unless_front_closes(front, pool.acquire()).await {
                None => {
                    tracing::info!(account = %account, waited_for = "a worker", "the client went away while its request waited");
                    return Routing::ClientGone;
                }
                Some(Ok(lease)) => {
                    let waited = asked.elapsed();
                    running.counters.queue_wait.observe(waited);
                    (Backend::Worker(lease), waited)
                }
                Some(Err(Refusal::Draining))
                    if reroutes < REROUTES && !state.is_current(&snapshot) =>
                {
                    reroutes += 1;
                    continue;
                }
                Some(Err(refusal)) => {
                    running.counters.queue_wait.observe(asked.elapsed());
                    refused(&running, started);
                    return Routing::Answer(responses::unavailable(&refusal.to_string()));
                }
            },
            Target::Stopped { why } => {
                refused(&running, started);
                return Routing::Answer(responses::unavailable(why));
            }
            Target::External(app) => (Backend::External(Arc::clone(app)), Duration::ZERO),
        };
        let routed = Routed {
            snapshot,
            account,
            user,
            granted,
            running,
            queue_wait,
            backend_at: asked + queue_wait,
        };
        return Routing::To(routed, backend);
    }
}

/// plexer answered a routed request with a 503 itself: an error, and a response counted.
fn refused(running: &Generation, started: Instant) {
    count(running, true);
    running.counters.answered(503, started.elapsed());
}
