//! A process's name in /proc/PID/stat is cut at 15 bytes, through a multi-byte character if
//! need be; such a process must still be found in its worker's pool (shared_stop relies on it
//! to know whether a worker is serving, the pool audit to look at every process).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::unistd::Pid;
use plexer_prefork::audit::ProcessTable;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_name_cut_through_a_character_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    // 14 bytes and a two-byte 'é': the kernel keeps 15 bytes, half of the 'é'.
    let program = dir.path().join("aaaaaaaaaaaaaaé-sleep");
    std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
    let child = Killed(
        Command::new(&program)
            .arg("30")
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = Pid::from_raw(child.0.id() as i32);
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
    assert!(
        String::from_utf8(stat).is_err(),
        "the test needs a name cut mid-character"
    );

    let members = ProcessTable::read().members(&[pid]);

    assert_eq!(members, vec![pid]);
}
