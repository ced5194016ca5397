//! `scheduling:`: plexer's relaying threads run under SCHED_BATCH (a worker's output makes them
//! runnable without taking the worker's core), its workers under the normal policy, and
//! `normal` leaves every thread and worker under the policy plexer was started with.

use plexer_tests::{PlexerServe, Scratch, ServeSetup};

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// The scheduling policy of thread `tid` of process `pid` (field 41 of its `stat`).
fn policy(pid: u32, tid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    // The fields after the command's closing parenthesis start at field 3.
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(41 - 3).unwrap().parse().unwrap()
}

/// Every thread of `pid` by name, with its policy.
fn threads(pid: u32) -> Vec<(String, u32)> {
    let mut threads: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|task| {
            let tid: u32 = task.file_name().to_str().unwrap().parse().unwrap();
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap();
            (comm.trim().to_owned(), policy(pid, tid))
        })
        .collect();
    threads.sort();
    threads
}

fn start(scratch: &Scratch, scheduling: &str) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]")],
            config_extra: &format!("login: {{ account: login }}\nthreads: 2\n{scheduling}"),
            ..ServeSetup::default()
        },
    )
}

#[test]
fn the_relaying_threads_run_batch_and_the_workers_normal() {
    let scratch = Scratch::new();
    let plexer = start(&scratch, "");
    let cookie = plexer.cookie("bob");
    let (_, answer) = plexer.get(Some(&cookie), "/");
    let pid = plexer.pid();
    let all = threads(pid);
    let relaying: Vec<_> = all
        .iter()
        .filter(|(name, _)| name == "plexer" || name == "plexer-1")
        .collect();
    assert_eq!(relaying.len(), 2, "the first thread and plexer-1: {all:?}");
    for (name, policy) in &relaying {
        assert_eq!(
            *policy, SCHED_BATCH,
            "{name} relays under SCHED_BATCH: {all:?}"
        );
    }
    let worker = answer.pid();
    assert_eq!(
        policy(worker, worker),
        SCHED_OTHER,
        "a worker is cloned from a relaying thread and starts under the normal policy again"
    );
}

#[test]
fn normal_leaves_every_thread_and_worker_under_the_policy_plexer_started_with() {
    let scratch = Scratch::new();
    let plexer = start(&scratch, "scheduling: normal\n");
    let cookie = plexer.cookie("bob");
    let (_, answer) = plexer.get(Some(&cookie), "/");
    // plexer inherits this test's policy (the normal one, unless the tests run under chrt).
    let ours = policy(std::process::id(), std::process::id());
    let all = threads(plexer.pid());
    assert!(all.iter().all(|(_, policy)| *policy == ours), "{all:?}");
    assert_eq!(policy(answer.pid(), answer.pid()), ours);
}

#[test]
fn a_policy_plexer_was_started_with_is_kept_for_it_and_its_workers() {
    // The test's thread starts plexer, which inherits its policy as from `chrt -b`.
    set_this_threads_policy_to_batch();
    let scratch = Scratch::new();
    let plexer = start(&scratch, "");
    let cookie = plexer.cookie("bob");
    let (_, answer) = plexer.get(Some(&cookie), "/");
    let all = threads(plexer.pid());
    assert!(
        all.iter().all(|(_, policy)| *policy == SCHED_BATCH),
        "{all:?}"
    );
    assert_eq!(
        policy(answer.pid(), answer.pid()),
        SCHED_BATCH,
        "the operator's policy is the whole service's, workers included"
    );
    assert!(
        plexer.log().contains("scheduling: batch not applied"),
        "{}",
        plexer.log()
    );
}

/// `chrt -b -p 0` on the calling thread (Linux lets any thread choose SCHED_BATCH).
fn set_this_threads_policy_to_batch() {
    let status = std::process::Command::new("chrt")
        .args(["-b", "-p", "0"])
        .arg(nix::unistd::gettid().to_string())
        .status()
        .expect("chrt (util-linux) runs");
    assert!(status.success());
}
