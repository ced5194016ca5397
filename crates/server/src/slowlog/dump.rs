//! Runs a pool's `slowlog_dump` for one worker: started by the supervisor (which reaps every
//! child of plexer, so `tokio::process` cannot be used beside it), read on the runtime without
//! blocking it, bounded in time ([`DUMP_TIMEOUT`], then killed with its process group) and in
//! size ([`MAX_DUMP_OUTPUT`], the rest counted and dropped, so a dumper that prints without end
//! neither grows plexer nor blocks on a full pipe).

use std::time::Duration;

use plexer_prefork::supervisor::Supervisor;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::entry::Dump;
use crate::config::DumpCommand;

/// How long a dump may run before it is killed: py-spy and gdb take well under a second.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a dump's output kept: 64 KiB is hundreds of frames.
pub const MAX_DUMP_OUTPUT: usize = 64 * 1024;

/// A dump's output as it arrives: the first [`MAX_DUMP_OUTPUT`] bytes kept, the rest counted.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    kept: Vec<u8>,
    left_out: u64,
}

impl Capture {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = MAX_DUMP_OUTPUT - self.kept.len();
        let (keep, drop) = bytes.split_at(bytes.len().min(room));
        self.kept.extend_from_slice(keep);
        self.left_out += drop.len() as u64;
    }

    /// The text kept (bytes that are not UTF-8 replaced), and how many bytes were left out.
    pub(crate) fn finish(self) -> (String, u64) {
        (
            String::from_utf8_lossy(&self.kept).into_owned(),
            self.left_out,
        )
    }
}

/// Runs `command` for the worker `pid` and says how it went.
pub(crate) async fn run(supervisor: &Supervisor, command: &DumpCommand, pid: i32) -> Dump {
    let shown = command.shown(pid);
    let (program, args) = command.for_pid(pid);
    let cannot_start = |error: String| Dump::CannotStart {
        command: shown.clone(),
        error,
    };
    let mut helper = match supervisor.spawn_helper(&program, &args) {
        Ok(helper) => helper,
        Err(err) => return cannot_start(err.to_string()),
    };
    let output = helper.take_output().expect("a new helper has its output");
    let mut output = match pipe::Receiver::from_owned_fd(output) {
        Ok(output) => output,
        Err(err) => {
            helper.kill();
            return cannot_start(format!("cannot read its output: {err}"));
        }
    };
    let mut capture = Capture::default();
    let ran = tokio::time::timeout(DUMP_TIMEOUT, async {
        let mut buf = vec![0u8; 16 * 1024];
        // Until every holder of the pipe closed it; an error ends the output as well.
        while let Ok(n @ 1..) = output.read(&mut buf).await {
            capture.push(&buf[..n]);
        }
        helper.exited().await
    })
    .await;
    match ran {
        Ok(exit) => {
            let (output, bytes_left_out) = capture.finish();
            Dump::Exited {
                command: shown,
                status: exit.map_or("its exit was not seen (plexer is stopping)".into(), |e| {
                    e.to_string()
                }),
                output,
                bytes_left_out,
            }
        }
        Err(_) => {
            helper.kill();
            let (output, bytes_left_out) = capture.finish();
            Dump::Killed {
                command: shown,
                after_seconds: DUMP_TIMEOUT.as_secs(),
                output,
                bytes_left_out,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_64_kib_and_the_rest_counted() {
        let mut capture = Capture::default();
        for _ in 0..100 {
            capture.push(&[b'x'; 1024]);
        }
        capture.push(b"");
        let (text, left_out) = capture.finish();
        assert_eq!(text.len(), MAX_DUMP_OUTPUT);
        assert_eq!(left_out, 100 * 1024 - MAX_DUMP_OUTPUT as u64);
    }

    #[test]
    fn output_under_the_bound_is_kept_whole_and_bad_utf8_replaced() {
        let mut capture = Capture::default();
        capture.push(b"Thread 1 (idle)\n");
        capture.push(b"  f (a.py:1) \xff\n");
        let (text, left_out) = capture.finish();
        assert_eq!(text, "Thread 1 (idle)\n  f (a.py:1) \u{fffd}\n");
        assert_eq!(left_out, 0);
    }
}
