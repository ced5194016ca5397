//! systemd's conventions for `plexer serve`: socket activation (sd_listen_fds(3)) and readiness
//! (sd_notify(3)); see examples/systemd/ for the units.
//!
//! - Socket activation: when `LISTEN_PID` is this process and `LISTEN_FDS` is at least 1,
//!   descriptor 3 is the listening socket, unix or TCP (told apart by its address family), and
//!   plexer serves it instead of binding `listen:`. The socket file belongs to the .socket unit,
//!   so plexer neither chowns nor removes it. `LISTEN_PID` and `LISTEN_FDS` are removed from the
//!   environment as the descriptor is taken, so nothing plexer starts mistakes them for its own;
//!   workers also start without any systemd variable (see plexer-prefork's spawn module), so
//!   none of them can send a notification for plexer.
//! - Readiness: `READY=1` once the socket listens and every account's pool is set up, with a
//!   `STATUS=` line `systemctl status` shows; `STOPPING=1` when a stop begins. Without
//!   `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) nothing is sent.

use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;

use listenfd::ListenFd;
use nix::sys::socket::{getsockopt, sockopt};
use sd_notify::NotifyState;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// The listening socket systemd passed.
#[derive(Debug)]
pub enum Activated {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A socket-activation environment plexer cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    #[error(
        "LISTEN_FDS={0:?} is not a count of descriptors: start plexer from a .socket unit, or \
         unset LISTEN_FDS and LISTEN_PID to have it bind `listen:` itself"
    )]
    BadCount(String),
    #[error(
        "descriptor {LISTEN_FDS_START} from systemd is not a unix or TCP stream socket \
         ({unix}; {tcp}): give the .socket unit a ListenStream= line"
    )]
    NotAStreamSocket { unix: io::Error, tcp: io::Error },
    #[error(
        "descriptor {LISTEN_FDS_START} from systemd is a socket that does not listen: use \
         ListenStream= with Accept=no in the .socket unit"
    )]
    NotListening,
}

/// Takes the socket systemd passed, if it passed one to this process.
///
/// Call it before any thread starts: it edits the environment (`LISTEN_PID`, `LISTEN_FDS`),
/// which is only sound while nothing can read it concurrently.
pub fn take_activated_listener() -> Result<Option<Activated>, ActivationError> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let Some(count) = std::env::var_os("LISTEN_FDS") else {
        return Ok(None);
    };
    if !ours {
        // Meant for another process (our parent's, inherited): not ours to take.
        return Ok(None);
    }
    let count = count.to_string_lossy().into_owned();
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| ActivationError::BadCount(count.clone()))?;
    if count == 0 {
        return Ok(None);
    }
    if count > 1 {
        tracing::warn!(
            count,
            "systemd passed {count} sockets; plexer serves descriptor {LISTEN_FDS_START} only"
        );
    }
    // listenfd checks the descriptor's type and family, marks it close-on-exec, and removes
    // LISTEN_PID and LISTEN_FDS from the environment.
    let mut fds = ListenFd::from_env();
    let activated = match fds.take_unix_listener(0) {
        Ok(Some(listener)) => Activated::Unix(listener),
        Ok(None) => return Ok(None),
        Err(unix) => match fds.take_tcp_listener(0) {
            Ok(Some(listener)) => Activated::Tcp(listener),
            Ok(None) => return Ok(None),
            Err(tcp) => return Err(ActivationError::NotAStreamSocket { unix, tcp }),
        },
    };
    let listening = match &activated {
        Activated::Unix(l) => getsockopt(l, sockopt::AcceptConn),
        Activated::Tcp(l) => getsockopt(l, sockopt::AcceptConn),
    };
    if !listening.unwrap_or(false) {
        return Err(ActivationError::NotListening);
    }
    Ok(Some(activated))
}

/// Tells systemd that plexer serves (`READY=1`), with a status line.
pub fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd that plexer is stopping (`STOPPING=1`), with a status line.
pub fn notify_stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
        tracing::warn!(
            error = %err,
            notify_socket = %socket.to_string_lossy(),
            "cannot notify systemd"
        );
    }
}
