//! `scheduling:`: how Linux schedules plexer's relaying threads, and so its workers.
//!
//! A worker writes its answer in pieces (PHP in records of 8 KiB, one `write` each), and every
//! piece makes plexer's relaying thread runnable. Under the normal policy a woken thread that
//! has waited longer than the one running on its core takes the core at once (wakeup
//! preemption), so on a busy machine plexer ran once per piece: a 256 KB page cost it 28-47
//! context switches and 780-817 µs of CPU, 73 % of that in the kernel (docs/benchmarks.md,
//! "Real pages"). `SCHED_BATCH` takes away only the wakeup preemption: plexer runs when the
//! core's current task blocks or its slice ends, finds the pieces waiting together and reads
//! them in one go, and nginx gets fewer, larger writes too. On an idle core nothing changes (a
//! woken thread runs at once either way); on a busy one a request may wait up to a slice.
//!
//! The policy belongs to a thread and is inherited by what it starts, so each relaying thread
//! sets it on itself, and the workers (and the slowlog's helpers) are put back under the normal
//! policy before they exec ([`WorkerScheduling::Normal`]). No `SCHED_RESET_ON_FORK`: it would
//! also reset a negative nice the operator gave plexer, in every thread it starts.
//!
//! Decided once, on the first thread, before it starts the supervisor and the other relaying
//! threads (which inherit its policy): batch only when plexer was started under the normal
//! policy. Another one (systemd's `CPUSchedulingPolicy=`, `chrt`) is
//! the operator's for the whole service, and stays, workers included.

use std::io;

use nix::libc;
use plexer_prefork::spawn::WorkerScheduling;
use serde::Deserialize;

/// `scheduling:` in the config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// `SCHED_BATCH` for the relaying threads, when plexer starts under the normal policy.
    #[default]
    Batch,
    /// The policy plexer was started with, for every thread and worker.
    Normal,
}

/// What plexer does with the policies of its threads and workers, decided at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relaying {
    /// Each relaying thread runs under `SCHED_BATCH`; workers and helpers start under
    /// `SCHED_OTHER`.
    Batch,
    /// Threads, workers and helpers keep the policy plexer was started with.
    AsStarted,
}

impl Relaying {
    /// Decides from the config and the calling thread's policy, and logs a policy kept over
    /// `batch`. Call it on the first thread, before it starts the threads that relay with it.
    pub fn decide(scheduling: Scheduling) -> Self {
        let started = policy_of_this_thread();
        let relaying = Self::decide_from(scheduling, started);
        if scheduling == Scheduling::Batch && relaying == Relaying::AsStarted {
            tracing::info!(
                policy = policy_name(started),
                "scheduling: batch not applied: plexer was started under another policy than \
                 the normal one (systemd's CPUSchedulingPolicy= or chrt), which plexer, its \
                 threads and its workers keep"
            );
        }
        relaying
    }

    /// The decision, from the policy plexer was started with (`sched_getscheduler`'s answer,
    /// -1 when it failed).
    fn decide_from(scheduling: Scheduling, started: libc::c_int) -> Self {
        match (scheduling, started) {
            (Scheduling::Batch, libc::SCHED_OTHER) => Relaying::Batch,
            _ => Relaying::AsStarted,
        }
    }

    /// Applies the decision to the calling thread; each relaying thread calls it as it starts.
    /// A refusal (a seccomp filter, say) is a warning, never a reason not to serve.
    pub fn apply_to_this_thread(self, thread: &str) {
        if self == Relaying::AsStarted {
            return;
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain syscall on the calling thread; it only reads `param`.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
            let err = io::Error::last_os_error();
            tracing::warn!(
                thread,
                error = %err,
                "scheduling: batch could not be set on this thread, which relays under the \
                 policy it had; give `scheduling: normal` to stop trying"
            );
        }
    }

    /// Under which policy workers start.
    pub fn workers(self) -> WorkerScheduling {
        match self {
            Relaying::Batch => WorkerScheduling::Normal,
            Relaying::AsStarted => WorkerScheduling::Inherited,
        }
    }
}

/// The calling thread's policy, without the reset-on-fork flag; -1 when it cannot be read.
fn policy_of_this_thread() -> libc::c_int {
    // SAFETY: no pointer; 0 is the calling thread.
    match unsafe { libc::sched_getscheduler(0) } {
        -1 => -1,
        policy => policy & !libc::SCHED_RESET_ON_FORK,
    }
}

fn policy_name(policy: libc::c_int) -> &'static str {
    match policy {
        libc::SCHED_OTHER => "SCHED_OTHER",
        libc::SCHED_BATCH => "SCHED_BATCH",
        libc::SCHED_IDLE => "SCHED_IDLE",
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_DEADLINE => "SCHED_DEADLINE",
        -1 => "unknown (sched_getscheduler failed)",
        _ => "another",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_only_over_the_normal_policy() {
        use libc::{SCHED_BATCH, SCHED_FIFO, SCHED_IDLE, SCHED_OTHER};
        let decide = Relaying::decide_from;
        assert_eq!(decide(Scheduling::Batch, SCHED_OTHER), Relaying::Batch);
        for operators in [SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, -1] {
            assert_eq!(
                decide(Scheduling::Batch, operators),
                Relaying::AsStarted,
                "{}",
                policy_name(operators)
            );
        }
        for started in [SCHED_OTHER, SCHED_BATCH] {
            assert_eq!(decide(Scheduling::Normal, started), Relaying::AsStarted);
        }
        assert_eq!(Relaying::Batch.workers(), WorkerScheduling::Normal);
        assert_eq!(Relaying::AsStarted.workers(), WorkerScheduling::Inherited);
    }

    /// On a thread of its own, so that nothing else runs under the policy it sets.
    #[test]
    fn applied_batch_is_the_calling_threads_policy_and_its_nice_is_kept() {
        std::thread::spawn(|| {
            // SAFETY: plain syscalls on this thread (a tid of 0 is the caller); raising nice
            // needs no privilege.
            let nice_before = unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 3);
                libc::getpriority(libc::PRIO_PROCESS, 0)
            };
            Relaying::Batch.apply_to_this_thread("test");
            assert_eq!(policy_of_this_thread(), libc::SCHED_BATCH);
            // SAFETY: as above.
            assert_eq!(
                unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
                nice_before
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn as_started_leaves_the_thread_alone() {
        std::thread::spawn(|| {
            let before = policy_of_this_thread();
            Relaying::AsStarted.apply_to_this_thread("test");
            assert_eq!(policy_of_this_thread(), before);
        })
        .join()
        .unwrap();
    }
}
