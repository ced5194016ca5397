//! An audit that cannot look into a process (another user's, as plexer without root) leaves it
//! out with a note saying so and what to do, and goes on: it is never an error that stops a
//! pool. The test runs itself again as `nobody` against a process of root's.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::unistd::{Pid, Uid, User};
use plexer_prefork::audit::{AuditNote, AuditPolicy, AuditRound, NoteLog};

const TEST: &str = "another_users_process_is_a_note_not_an_error";
const ROOTS_PID: &str = "PLEXER_TEST_ROOTS_PID";

#[test]
fn another_users_process_is_a_note_not_an_error() {
    if let Some(pid) = std::env::var_os(ROOTS_PID) {
        // The second run, as nobody.
        let roots = Pid::from_raw(pid.to_str().unwrap().parse().unwrap());
        let mut round = AuditRound::start();
        let found = round.audit_pool(&[roots], &AuditPolicy::new()).unwrap();
        assert!(found.is_empty(), "{found:?}");
        let notes = NoteLog::default().first_time(round.take_notes());
        assert!(
            matches!(&notes[..], [AuditNote::Uninspectable { pid, .. }] if *pid == roots),
            "{notes:?}"
        );
        let said = notes[0].to_string();
        assert!(
            said.contains(&format!("cannot list the descriptors of pid {roots}")),
            "{said}"
        );
        assert!(said.contains("run plexer as root"), "{said}");
        #[allow(clippy::print_stdout)] // the parent reads it: the proof this branch ran
        {
            println!("checked as nobody");
        }
        return;
    }
    assert!(
        Uid::effective().is_root(),
        "this test becomes nobody, which needs root (make test runs as root in CI)"
    );
    let nobody = User::from_name("nobody").unwrap().expect("the nobody user");
    let mut roots = Command::new("sleep").arg("30").spawn().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture"])
        .env(ROOTS_PID, roots.id().to_string())
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = roots.kill();
    let _ = roots.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("checked as nobody"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
