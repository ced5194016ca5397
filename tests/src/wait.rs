//! Polling with a deadline: the only way a test waits for something to happen.
//!
//! The poll interval starts at 2 ms and doubles up to 50 ms, so a condition that holds quickly
//! costs little and a slow one does not spin.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` until it returns true (`true`) or `timeout` passes (`false`).
pub fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    wait_for_value(|| cond().then_some(()), timeout).is_some()
}

/// Polls `probe` until it returns `Some`, or `timeout` passes (`None`). `probe` runs at least
/// once, and once more at the deadline.
pub fn wait_for_value<T>(mut probe: impl FnMut() -> Option<T>, timeout: Duration) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Like [`wait_for`], but panics naming `what` was awaited when `timeout` passes.
pub fn wait_until(what: &str, cond: impl FnMut() -> bool, timeout: Duration) {
    assert!(
        wait_for(cond, timeout),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Waits until a unix socket takes connections. Its file appears at `bind()`, before `listen()`,
/// so the file alone is not ready: a connect in between is refused.
pub fn wait_until_listening(what: &str, socket: &std::path::Path, timeout: Duration) {
    wait_until(
        what,
        || std::os::unix::net::UnixStream::connect(socket).is_ok(),
        timeout,
    );
}
