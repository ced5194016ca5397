//! `scheduling:`: how the kernel schedules plexer's own relaying threads, never its workers.
//!
//! A worker writes its answer in pieces (PHP in records of 8 KiB, one `write` each), and every
//! piece wakes plexer. Under Linux's normal policy a woken thread preempts the one running on
//! its core when it has waited less, so on a busy machine plexer interrupts the worker after
//! each piece: a 256 KB page cost 28-47 context switches and 780-817 µs of plexer's CPU, 73 %
//! of it in the kernel (docs/benchmarks.md, "Real pages"). `SCHED_BATCH` takes away only that
//! wakeup preemption: plexer runs when the worker blocks or its slice ends, finds the pieces
//! waiting together and reads them in one go, and nginx gets fewer, larger writes as well. On
//! an idle core nothing changes: a woken thread runs at once either way.
//!
//! `SCHED_RESET_ON_FORK` goes with it, to say that what a relaying thread starts must not
//! inherit the policy: the kernel itself resets only real-time policies, so the workers'
//! spawn (plexer_prefork::spawn) puts each worker back under `SCHED_OTHER` before its exec.
//! plexer's own threads started from a relaying one (tokio's blocking threads) keep it.
//! Unprivileged: Linux lets any thread choose between `SCHED_OTHER` and `SCHED_BATCH`.

use std::io;

use nix::libc;
use serde::Deserialize;

/// `scheduling:` in the config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// `SCHED_BATCH` for the relaying threads, when they start under the normal policy.
    #[default]
    Batch,
    /// The policy plexer was started with, untouched.
    Normal,
}

/// What [`Scheduling::apply_to_this_thread`] did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The thread now runs under `SCHED_BATCH`.
    Batch,
    /// `scheduling: normal`: nothing was changed.
    Untouched,
    /// plexer was started under another policy than the normal one (systemd's
    /// `CPUSchedulingPolicy=`, `chrt`): the operator's choice is kept.
    KeptPolicy(libc::c_int),
}

impl Scheduling {
    /// Applies the choice to the calling thread only: a policy belongs to a thread, so each
    /// relaying thread calls this as it starts.
    pub fn apply_to_this_thread(self) -> io::Result<Applied> {
        if self == Scheduling::Normal {
            return Ok(Applied::Untouched);
        }
        // SAFETY: no pointer; 0 is the calling thread.
        let current = unsafe { libc::sched_getscheduler(0) };
        if current < 0 {
            return Err(io::Error::last_os_error());
        }
        let current = current & !libc::SCHED_RESET_ON_FORK;
        match current {
            libc::SCHED_OTHER => {}
            libc::SCHED_BATCH => return Ok(Applied::Batch),
            other => return Ok(Applied::KeptPolicy(other)),
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` lives across the call, which only reads it.
        let set = unsafe {
            libc::sched_setscheduler(0, libc::SCHED_BATCH | libc::SCHED_RESET_ON_FORK, &param)
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Applied::Batch)
    }
}

/// Applies `scheduling` to the calling thread and says what came of it in the log; a refusal
/// (a seccomp filter, say) is a warning, never a reason not to serve.
pub fn apply_and_log(scheduling: Scheduling, thread: &str) {
    match scheduling.apply_to_this_thread() {
        Ok(Applied::Batch) => tracing::debug!(thread, "relaying under SCHED_BATCH"),
        Ok(Applied::Untouched) => {}
        Ok(Applied::KeptPolicy(policy)) => tracing::info!(
            thread,
            policy,
            "scheduling: batch left alone: plexer was started under another policy than the \
             normal one (systemd's CPUSchedulingPolicy= or chrt), which is kept"
        ),
        Err(err) => tracing::warn!(
            thread,
            error = %err,
            "scheduling: batch could not be set; relaying under the normal policy (give \
             `scheduling: normal` to silence this)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test changes the policy of a thread it started, so nothing else runs under it.
    fn policy_of_this_thread() -> libc::c_int {
        // SAFETY: no pointer; 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn batch_sets_sched_batch_with_reset_on_fork() {
        std::thread::spawn(|| {
            assert_eq!(
                Scheduling::Batch.apply_to_this_thread().unwrap(),
                Applied::Batch
            );
            assert_eq!(
                policy_of_this_thread(),
                libc::SCHED_BATCH | libc::SCHED_RESET_ON_FORK
            );
            // Asked again (a second runtime on the same thread): nothing to do.
            assert_eq!(
                Scheduling::Batch.apply_to_this_thread().unwrap(),
                Applied::Batch
            );
        })
        .join()
        .unwrap();
        assert_eq!(
            policy_of_this_thread(),
            libc::SCHED_OTHER,
            "the thread that started it is untouched"
        );
    }

    #[test]
    fn normal_leaves_the_thread_as_it_was() {
        std::thread::spawn(|| {
            assert_eq!(
                Scheduling::Normal.apply_to_this_thread().unwrap(),
                Applied::Untouched
            );
            assert_eq!(policy_of_this_thread(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_policy_plexer_was_started_with_is_kept() {
        std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as above; SCHED_IDLE needs no privilege.
            assert_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) },
                0
            );
            assert_eq!(
                Scheduling::Batch.apply_to_this_thread().unwrap(),
                Applied::KeptPolicy(libc::SCHED_IDLE)
            );
            assert_eq!(policy_of_this_thread(), libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }
}
