//! Worker stdout and stderr, logged line by line with the pool, the pid and the stream.
//!
//! Reading is non-blocking on the supervisor's side, so a chatty worker never blocks the
//! supervisor, and the pipe is drained as fast as the worker writes (php-fpm's blocking stderr
//! pipe left workers stuck in `write`, php-src #11447).

use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe;

/// A longer line is logged in pieces of this size, each marked as continued.
pub const MAX_LOG_LINE: usize = 16 * 1024;

pub(super) fn forward(pool: &str, pid: Pid, stream: &'static str, pipe_end: impl Into<OwnedFd>) {
    let receiver = match pipe::Receiver::from_owned_fd(pipe_end.into()) {
        Ok(receiver) => receiver,
        Err(err) => {
            tracing::warn!(pool, %pid, stream, error = %err, "cannot read the worker's output");
            return;
        }
    };
    let pool = pool.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::new(receiver);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LOG_LINE as u64)
                .read_until(b'\n', &mut line)
                .await;
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let whole = line.last() == Some(&b'\n');
            let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line));
            let text = text.trim_end_matches('\r');
            if whole {
                tracing::info!(pool = %pool, %pid, stream, "{text}");
            } else {
                tracing::info!(pool = %pool, %pid, stream, continued = true, "{text}");
            }
        }
    });
}
