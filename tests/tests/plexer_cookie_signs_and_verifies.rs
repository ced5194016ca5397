//! `plexer cookie sign` makes a value that `plexer cookie verify` accepts with the same config,
//! and refuses with another key, after tampering, or for a name that is not an account name;
//! `--user NAME` signs the user in (the four-part form), which `verify` shows, and a user name
//! too long for a cookie is refused; a value expiring further ahead than `route.max_age` allows
//! does not verify.

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

#[test]
fn a_cookie_signed_with_a_user_shows_the_user_and_overlong_names_are_refused() {
    let scratch = Scratch::new();
    let ours = config(&scratch, "a");
    for user in ["bob", "Zoë b.o@example.com", "a|b.c"] {
        let signed = plexer(&["sign", "bob", "--user", user], &ours);
        signed.assert_success();
        let value = String::from_utf8(signed.stdout).unwrap().trim().to_owned();
        assert_eq!(value.split('.').count(), 4, "{user}: {value}");
        let verified = plexer(&["verify", &value], &ours);
        verified.assert_success();
        assert_eq!(
            String::from_utf8_lossy(&verified.stdout),
            format!("bob\nuser: {user}\n")
        );
    }

    let long = "x".repeat(257);
    let refused = plexer(&["sign", "bob", "--user", &long], &ours);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--user") && stderr.contains("257 bytes long"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty(), "no cookie");
}

#[test]
fn a_cookie_expiring_further_ahead_than_max_age_does_not_verify() {
    let scratch = Scratch::new();
    let short = config(&scratch, "a");
    // The same key, a longer max_age: what was signed before max_age was shortened.
    let long = scratch.write(
        "long.yaml",
        "listen: unix:plexer.sock\naccounts_dir: accounts.d\nruntime_dir: run\n\
         secret_file: a.key\nroute: { max_age: 2h }\n",
    );
    for args in [&["sign", "bob"][..], &["sign", "bob", "--user", "bob"]] {
        let signed = plexer(args, &long);
        signed.assert_success();
        let value = String::from_utf8(signed.stdout).unwrap().trim().to_owned();
        assert!(plexer(&["verify", &value], &long).status.success());
        let refused = plexer(&["verify", &value], &short);
        assert_eq!(refused.status.code(), Some(1), "{value}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("further ahead than route.max_age"),
            "{value}"
        );
    }
}
