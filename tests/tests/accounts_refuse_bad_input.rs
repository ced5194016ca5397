//! Every bad change to the accounts is refused whole, with a message naming the file, the line
//! and the problem, and leaves the running set and the registry on disk as they were.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use plexer_tests::log_events::{Event, find};
use plexer_tests::{PlexerServe, Scratch, ServeSetup, build, run, wait_for};

fn plexer(scratch: &Scratch) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            config_extra: "login: { account: login }\nsocket_dirs: [/srv/apps]\n",
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    )
}

fn listing(plexer: &PlexerServe) -> String {
    let listed = plexer.accounts(&["list"]);
    listed.assert_success();
    listed.stdout_text()
}

#[test]
fn each_bad_add_is_refused_with_its_reason_and_changes_nothing() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let before = listing(&plexer);
    let runtime_socket = format!("unix:{}", plexer.path("run/workers/bob.1/0.sock").display());
    let long_name = "a".repeat(63);
    let cases: [(&[&str], &str); 8] = [
        (&["add", "Bob"], "bad account name \"Bob\""),
        (&["add", "../etc"], "bad account name"),
        (
            &["add", "carol", "--set", "max_childs=2"],
            "carol.yaml:1:1: unknown field `max_childs`",
        ),
        (
            &["add", "carol", "--set", "max_children=many"],
            "carol.yaml:1:15: max_children: invalid type",
        ),
        (
            &["add", "carol", "--user", "bob"],
            "user \"bob\" already belongs to account bob",
        ),
        (
            &["add", "carol", "--socket", &runtime_socket],
            "is inside runtime_dir",
        ),
        (
            &["add", "carol", "--socket", "unix:/tmp/elsewhere/app.sock"],
            "is outside socket_dirs (/srv/apps)",
        ),
        (
            &["add", &long_name],
            "a unix socket path may have: use a shorter runtime_dir",
        ),
    ];
    for (args, expected) in cases {
        let refused = plexer.accounts(args);
        refused.assert_failure();
        let said = refused.stderr_text();
        assert!(said.contains(expected), "{args:?}: {said}");
        assert!(
            !plexer.account_file("carol").exists(),
            "{args:?} wrote a file"
        );
    }
    assert_eq!(listing(&plexer), before);
    assert!(!plexer.account_file(&long_name).exists());
    // The same checks pass a good one.
    plexer
        .accounts(&["add", "carol", "--socket", "unix:/srv/apps/carol.sock"])
        .assert_success();
}

#[test]
fn a_bad_file_dropped_in_is_refused_and_named_until_it_is_fixed() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let eve = plexer.cookie("eve");
    let bob = plexer.cookie("bob");
    std::fs::write(plexer.account_file("eve"), "users: [eve\n").unwrap();
    assert!(
        wait_for(
            || {
                let refused = |e: &Event| {
                    e.text("refused")
                        .is_some_and(|why| why.contains("eve.yaml:2:1"))
                };
                find(&plexer.log(), refused).is_some()
            },
            Duration::from_secs(5)
        ),
        "the refusal names the file and the line: {}",
        plexer.log()
    );
    assert_eq!(plexer.account_of(Some(&eve)), "login");
    assert_eq!(plexer.account_of(Some(&bob)), "bob");
    // A file that takes another account's user is refused too, and bob keeps it.
    std::fs::write(plexer.account_file("eve"), "users: [bob]\n").unwrap();
    assert!(
        wait_for(
            || {
                let refused = |e: &Event| {
                    e.text("refused").is_some_and(|why| {
                        why.contains("user \"bob\" already belongs to account bob")
                    })
                };
                find(&plexer.log(), refused).is_some()
            },
            Duration::from_secs(5)
        ),
        "{}",
        plexer.log()
    );
    assert_eq!(plexer.account_of(Some(&eve)), "login");
    std::fs::write(plexer.account_file("eve"), "users: [eve]\n").unwrap();
    assert!(
        wait_for(
            || plexer.account_of(Some(&eve)) == "eve",
            Duration::from_secs(5)
        ),
        "the fixed file adds the account"
    );
}

#[test]
fn a_registry_that_cannot_be_written_leaves_the_old_state() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    // plexer writes NAME.yaml through a hidden temporary file named after its pid: a directory
    // in its way fails the write as a full or read-only disk would.
    let blocker = plexer
        .path("accounts.d")
        .join(format!(".carol.yaml.{}.tmp", plexer.pid()));
    std::fs::create_dir(&blocker).unwrap();
    let carol = plexer.cookie("carol");
    let refused = plexer.accounts(&["add", "carol", "--user", "carol"]);
    refused.assert_failure();
    let said = refused.stderr_text();
    assert!(said.contains("cannot write"), "{said}");
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(!plexer.account_file("carol").exists());
    assert_eq!(plexer.account_of(Some(&carol)), "login");
    std::fs::remove_dir(&blocker).unwrap();
    plexer
        .accounts(&["add", "carol", "--user", "carol"])
        .assert_success();
    assert_eq!(plexer.account_of(Some(&carol)), "carol");
}

fn open_to_everyone(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_control_socket_is_private_and_refuses_another_uid() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let control = plexer.path("run/control.sock");
    let mode = std::fs::metadata(&control).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    if !nix::unistd::Uid::effective().is_root() {
        // Another uid needs root to become; as a normal user the mode check above is the test.
        return;
    }
    for dir in [scratch.path(), &plexer.path(""), &plexer.path("run")] {
        open_to_everyone(dir);
    }
    let as_nobody = || {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "nobody", "--"])
            .arg(build::plexer())
            .args(["accounts", "--control"])
            .arg(&control)
            .arg("list");
        run(&mut command, b"", Duration::from_secs(10))
    };
    let denied = as_nobody();
    denied.assert_failure();
    assert!(
        denied.stderr_text().contains("Permission denied"),
        "{denied}"
    );
    // Even when the mode lets it connect, the peer's uid is refused.
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = as_nobody();
    refused.assert_failure();
    assert!(
        refused
            .stderr_text()
            .contains("refused: uid 65534 may not control this plexer"),
        "{refused}"
    );
    let logged = find(&plexer.log(), |e| e.has("refused_uid", "65534"));
    assert!(
        logged.is_some_and(|e| e.level() == "WARN"),
        "{}",
        plexer.log()
    );
}

#[test]
fn a_relative_config_path_still_keeps_sockets_out_of_runtime_dir() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let inside = plexer.path("run/workers/bob.1/0.sock");
    std::fs::write(
        plexer.path("accounts.d/evil.yaml"),
        format!("socket: unix:{}\n", inside.display()),
    )
    .unwrap();
    // `-c plexer.yaml` from the config's own directory: runtime_dir `run` is made absolute
    // before the check, so the absolute socket path is seen to be inside it.
    let mut command = build::serve_command(build::plexer());
    command
        .args(["--check", "-c", "plexer.yaml"])
        .current_dir(plexer.path(""));
    let checked = run(&mut command, b"", Duration::from_secs(10));
    checked.assert_failure();
    assert!(
        checked.stderr_text().contains("is inside runtime_dir"),
        "{checked}"
    );
    // The options of `plexer accounts` go before or after the action.
    let mut command = Command::new(build::plexer());
    command
        .args(["accounts", "list", "-c"])
        .arg(plexer.config_path());
    run(&mut command, b"", Duration::from_secs(10)).assert_success();
}

/// php-fpm's rule: plexer run as root refuses a pool that would run its tenant as root, unless
/// the account says `user: root` or plexer was started with --allow-root.
#[test]
fn a_pool_that_would_run_as_root_is_refused_unless_asked_for() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test starts plexer as root (make test runs as root in CI)"
    );
    let scratch = Scratch::new();
    let files = plexer_tests::ServeFiles::write(&scratch, &ServeSetup::default());
    let check = |extra: &[&str]| {
        let mut command = Command::new(build::plexer());
        command
            .args(["serve", "--check", "-c"])
            .arg(&files.config)
            .args(extra);
        run(&mut command, b"", Duration::from_secs(10))
    };
    let refused = check(&[]);
    refused.assert_failure();
    let said = refused.stderr_text();
    assert!(
        said.contains("its workers would run as root") && said.contains("--allow-root"),
        "{said}"
    );
    check(&["--allow-root"]).assert_success();
    // Written in the account file, root is the operator's choice.
    for name in ["login", "bob", "sue"] {
        let file = files.dir.join("accounts.d").join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap();
        // `{}` (every default) is a flow mapping: a key cannot follow it.
        let text = text.trim().trim_start_matches("{}");
        std::fs::write(&file, format!("{text}\nuser: root\n")).unwrap();
    }
    check(&[]).assert_success();
}

/// A FIFO named like an account file would stall whoever reads it: it is refused as not a
/// regular file, and plexer keeps answering.
#[test]
fn an_account_file_that_is_not_a_regular_file_is_refused_without_a_stall() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let fifo = plexer.account_file("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let refused = plexer.accounts(&["reload", "fifo"]);
    refused.assert_failure();
    let said = refused.stderr_text();
    assert!(said.contains("is not a regular file"), "{said}");
    // The watcher saw it too, and plexer still answers at once.
    let listed = plexer.accounts(&["list"]);
    listed.assert_success();
    assert_eq!(plexer.account_of(Some(&plexer.cookie("bob"))), "bob");
    let logged = |e: &Event| {
        e.text("refused")
            .is_some_and(|why| why.contains("fifo.yaml is not a regular file"))
    };
    assert!(
        wait_for(
            || find(&plexer.log(), logged).is_some(),
            Duration::from_secs(5)
        ),
        "{}",
        plexer.log()
    );
}
