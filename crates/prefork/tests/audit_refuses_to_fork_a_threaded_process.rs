//! The prefork parent forks only while it runs a single thread, and says how many it found.

use std::path::Path;
use std::sync::mpsc;

use plexer_prefork::audit::{AuditPolicy, ForkRefused, assert_fork_safe, check_single_threaded};

fn fake_task_dir(threads: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tid in threads {
        std::fs::create_dir(dir.path().join(tid)).unwrap();
    }
    dir
}

#[test]
fn one_thread_may_fork() {
    let dir = fake_task_dir(&["4242"]);
    check_single_threaded(dir.path()).unwrap();
}

#[test]
fn several_threads_are_refused_with_their_count() {
    let dir = fake_task_dir(&["4242", "4243", "4244"]);
    let err = check_single_threaded(dir.path()).unwrap_err();
    assert!(
        matches!(err, ForkRefused::Threaded { threads: 3 }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("runs 3 threads"), "{message}");
    assert!(
        message.contains("must not run threads or an async runtime"),
        "{message}"
    );
}

#[test]
fn an_unreadable_task_dir_is_refused() {
    let err = check_single_threaded(Path::new("/nonexistent/task")).unwrap_err();
    assert!(
        matches!(err, ForkRefused::CannotCountThreads { .. }),
        "{err:?}"
    );
    let empty = fake_task_dir(&[]);
    let err = check_single_threaded(empty.path()).unwrap_err();
    assert!(
        matches!(err, ForkRefused::CannotCountThreads { .. }),
        "{err:?}"
    );
}

#[test]
fn this_threaded_test_process_is_refused() {
    // The harness may or may not run this test on a thread of its own; one more makes sure.
    let (stop, parked) = mpsc::channel::<()>();
    let extra = std::thread::spawn(move || parked.recv());

    let real = check_single_threaded(Path::new("/proc/self/task")).unwrap_err();
    let refused = assert_fork_safe(&AuditPolicy::new()).unwrap_err();

    drop(stop);
    let _ = extra.join();
    let ForkRefused::Threaded { threads } = real else {
        panic!("{real:?}")
    };
    assert!(threads >= 2, "{threads}");
    let ForkRefused::Threaded { threads } = refused else {
        panic!("{refused:?}")
    };
    assert!(
        refused
            .to_string()
            .contains(&format!("runs {threads} threads"))
    );
}
