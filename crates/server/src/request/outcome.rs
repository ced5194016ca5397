//! What the end of a request says of the worker that served it: the one place an [`Ended`]
//! becomes the pool's [`Outcome`], and the status its client got, for the counters.

use plexer_prefork::pool::Outcome;

use crate::relay::{Ended, Stalled};

/// The status the web server got for a relayed request that ended so: the app's, or the one
/// plexer answered in its place (504 once request_timeout passed, also when the app's head
/// had gone out, as the log says; 502; 408 for a request the web server stopped sending).
/// `None`: nobody got an answer (the client left, the web server aborted or stopped reading).
#[inline]
pub(super) fn status_of(ended: &Ended) -> Option<u16> {
    match ended {
        Ended::Completed { status, .. } => Some(*status),
        Ended::TimedOut { .. } => Some(504),
        Ended::BackendFailed { .. } => Some(502),
        Ended::Stalled {
            stalled: Stalled::Request,
            head_sent: false,
            ..
        } => Some(408),
        Ended::Stalled { .. } | Ended::ClientGone { .. } | Ended::Aborted { .. } => None,
    }
}

/// How a leased worker goes back to its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WorkerRelease {
    /// Served, and its connection may carry the next request.
    KeepConnection,
    /// Served, or the request was abandoned and the worker ended it in time: free again.
    Done,
    /// `request_timeout` passed: the pool kills it.
    TimedOut,
    /// It failed, or did not end an abandoned request in time: not trusted again.
    Broken,
}

impl WorkerRelease {
    #[inline]
    pub(super) fn after(ended: &Ended) -> Self {
        match ended {
            Ended::Completed { reusable: true, .. } => WorkerRelease::KeepConnection,
            Ended::Completed { .. } => WorkerRelease::Done,
            Ended::TimedOut { .. } => WorkerRelease::TimedOut,
            // Ended, but the connection may hold the rest of its output: not kept.
            Ended::ClientGone { worker_free: true }
            | Ended::Aborted { worker_free: true }
            | Ended::Stalled {
                worker_free: true, ..
            } => WorkerRelease::Done,
            Ended::ClientGone { worker_free: false }
            | Ended::Aborted { worker_free: false }
            | Ended::Stalled {
                worker_free: false, ..
            }
            | Ended::BackendFailed { .. } => WorkerRelease::Broken,
        }
    }

    /// The pool's outcome, for a release without the connection (there is none to keep).
    #[inline]
    pub(super) fn outcome(self) -> Outcome {
        match self {
            WorkerRelease::KeepConnection | WorkerRelease::Done => Outcome::Done,
            WorkerRelease::TimedOut => Outcome::TimedOut,
            WorkerRelease::Broken => Outcome::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_counted_is_the_one_the_web_server_got() {
        let stalled = |stalled, head_sent| Ended::Stalled {
            stalled,
            head_sent,
            worker_free: true,
        };
        let cases = [
            (completed(true), Some(200)),
            (Ended::TimedOut { head_sent: true }, Some(504)),
            (
                Ended::BackendFailed {
                    head_sent: false,
                    why: "refused".into(),
                },
                Some(502),
            ),
            (stalled(Stalled::Request, false), Some(408)),
            (stalled(Stalled::Request, true), None),
            (stalled(Stalled::Answer, false), None),
            (Ended::ClientGone { worker_free: true }, None),
            (Ended::Aborted { worker_free: false }, None),
        ];
        for (ended, status) in cases {
            assert_eq!(status_of(&ended), status, "{ended:?}");
        }
    }

    fn completed(reusable: bool) -> Ended {
        Ended::Completed {
            app_status: 0,
            status: 200,
            body_bytes: 2,
            reusable,
        }
    }

    #[test]
    fn every_way_a_request_ends_gives_the_worker_back_as_it_is() {
        let cases = [
            (
                completed(true),
                WorkerRelease::KeepConnection,
                Outcome::Done,
            ),
            (completed(false), WorkerRelease::Done, Outcome::Done),
            (
                Ended::ClientGone { worker_free: true },
                WorkerRelease::Done,
                Outcome::Done,
            ),
            (
                Ended::ClientGone { worker_free: false },
                WorkerRelease::Broken,
                Outcome::Broken,
            ),
            (
                Ended::Aborted { worker_free: true },
                WorkerRelease::Done,
                Outcome::Done,
            ),
            (
                Ended::Aborted { worker_free: false },
                WorkerRelease::Broken,
                Outcome::Broken,
            ),
            (
                Ended::Stalled {
                    stalled: Stalled::Request,
                    head_sent: false,
                    worker_free: true,
                },
                WorkerRelease::Done,
                Outcome::Done,
            ),
            (
                Ended::Stalled {
                    stalled: Stalled::Answer,
                    head_sent: true,
                    worker_free: false,
                },
                WorkerRelease::Broken,
                Outcome::Broken,
            ),
            (
                Ended::TimedOut { head_sent: true },
                WorkerRelease::TimedOut,
                Outcome::TimedOut,
            ),
            (
                Ended::BackendFailed {
                    head_sent: false,
                    why: "it closed the connection".into(),
                },
                WorkerRelease::Broken,
                Outcome::Broken,
            ),
        ];
        for (ended, release, outcome) in cases {
            assert_eq!(WorkerRelease::after(&ended), release, "{ended:?}");
            assert_eq!(release.outcome(), outcome, "{ended:?}");
        }
    }
}
