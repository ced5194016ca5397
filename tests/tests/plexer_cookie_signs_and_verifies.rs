//! `plexer cookie sign` makes a value that `plexer cookie verify` accepts with the same config,
//! and refuses with another key, after tampering, or for a name that is not an account name.

use std::process::Command;
use std::time::Duration;

use plexer_tests::{Scratch, build, run};

fn config(scratch: &Scratch, secret: &str) -> std::path::PathBuf {
    let key = scratch.write(format!("{secret}.key"), format!("{}\n", secret.repeat(40)));
    plexer_tests::scratch::make_private(&key);
    scratch.write(
        format!("{secret}.yaml"),
        format!(
            "listen: unix:plexer.sock\naccounts_dir: accounts.d\nruntime_dir: run\n\
             secret_file: {secret}.key\nroute: {{ max_age: 1h }}\n"
        ),
    )
}

fn plexer(args: &[&str], config: &std::path::Path) -> plexer_tests::Finished {
    let mut command = Command::new(build::plexer());
    command.arg("cookie").args(args).arg("-c").arg(config);
    run(&mut command, b"", Duration::from_secs(10))
}

#[test]
fn a_signed_cookie_verifies_with_its_key_only() {
    let scratch = Scratch::new();
    let ours = config(&scratch, "a");
    let theirs = config(&scratch, "b");
    let signed = plexer(&["sign", "bob"], &ours);
    signed.assert_success();
    let value = String::from_utf8(signed.stdout).unwrap().trim().to_owned();
    let (account, rest) = value.split_once('.').unwrap();
    assert_eq!(account, "bob");
    let expiry: u64 = rest.split('.').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 3590..=now + 3610).contains(&expiry),
        "route.max_age: 1h"
    );

    let verified = plexer(&["verify", &value], &ours);
    verified.assert_success();
    assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), "bob");

    let other_key = plexer(&["verify", &value], &theirs);
    assert_eq!(other_key.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other_key.stderr).contains("not valid"));

    let tampered = value.replacen("bob.", "sue.", 1);
    assert_eq!(plexer(&["verify", &tampered], &ours).status.code(), Some(1));

    let bad_name = plexer(&["sign", "../etc"], &ours);
    assert!(!bad_name.status.success());
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("bad account name"));
}
