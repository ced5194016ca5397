//! Accounts are added, reloaded and removed while `plexer serve` runs: with `plexer accounts`
//! through the control socket, with files dropped in, touched or deleted in accounts_dir, and
//! with SIGHUP for the config. Each change applies whole or not at all.

use std::time::Duration;

use nix::sys::signal::Signal;
use plexer_tests::log_events::{Event, find};
use plexer_tests::procfs::running;
use plexer_tests::{PlexerServe, Scratch, ServeSetup, wait_for, wait_until};

fn plexer(scratch: &Scratch) -> PlexerServe {
    let setup = ServeSetup {
        args: &["--log-format", "json"],
        ..ServeSetup::default()
    };
    PlexerServe::start(scratch, setup)
}

fn generation(plexer: &PlexerServe, account: &str) -> Option<u64> {
    let listed = plexer.accounts(&["list", "--json"]);
    listed.assert_success();
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == account)
        .and_then(|a| a["generation"].as_u64())
}

#[test]
fn an_added_account_is_routable_when_the_command_returns() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let carol = plexer.cookie("carol");
    assert_eq!(plexer.account_of(Some(&carol)), "login");
    let added = plexer.accounts(&[
        "add",
        "carol",
        "--user",
        "carol",
        "--env",
        "HELLO_GREETING=hi carol",
        "--set",
        "max_children=2",
    ]);
    added.assert_success();
    assert!(added.stdout_text().contains("added carol"), "{added}");
    let (response, answer) = plexer.get(Some(&carol), "/first");
    assert!(
        matches!(response.status(), None | Some("200")),
        "{}",
        response.body_text()
    );
    assert_eq!(answer.get("account"), "carol");
    assert_eq!(answer.get("greeting"), "hi carol");
    let file = std::fs::read_to_string(plexer.account_file("carol")).unwrap();
    assert!(file.contains("users: [\"carol\"]"), "{file}");
    let listed = plexer.accounts(&["list"]).stdout_text();
    assert!(listed.lines().any(|l| l.starts_with("carol ")), "{listed}");
    // The second add of the same name is refused and changes nothing.
    let again = plexer.accounts(&["add", "carol"]);
    again.assert_failure();
    assert!(
        again.stderr_text().contains("account carol exists"),
        "{again}"
    );
}

#[test]
fn a_removed_account_goes_to_login_after_its_request_in_flight_finished() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let bob = plexer.cookie("bob");
    let (_, answer) = plexer.get(Some(&bob), "/warm");
    let worker = answer.pid();
    let slow = std::thread::scope(|s| {
        let slow = s.spawn(|| plexer.get(Some(&bob), "/slow?sleep=1500"));
        plexer.wait_busy("bob");
        let removed = plexer.accounts(&["remove", "bob"]);
        removed.assert_success();
        assert!(!plexer.account_file("bob").exists());
        assert_eq!(plexer.account_of(Some(&bob)), "login");
        slow.join().unwrap()
    });
    assert_eq!(
        slow.1.get("account"),
        "bob",
        "the request in flight finished"
    );
    wait_until(
        "bob's worker stops",
        || !running(worker),
        Duration::from_secs(10),
    );
    let gone = plexer.accounts(&["remove", "bob"]);
    gone.assert_failure();
    assert!(gone.stderr_text().contains("there is no account bob"));
}

#[test]
fn a_reload_moves_traffic_to_a_new_generation_and_the_old_one_stops() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let bob = plexer.cookie("bob");
    let before = plexer.get(Some(&bob), "/a").1.pid();
    let first = generation(&plexer, "bob").unwrap();
    std::fs::write(
        plexer.account_file("bob"),
        "users: [bob]\nenv: { HELLO_GREETING: second }\n",
    )
    .unwrap();
    let reloaded = plexer.accounts(&["reload", "bob"]);
    reloaded.assert_success();
    let (_, answer) = plexer.get(Some(&bob), "/b");
    assert_ne!(answer.pid(), before);
    assert_eq!(answer.get("greeting"), "second");
    assert!(generation(&plexer, "bob").unwrap() > first);
    wait_until(
        "the old worker stops",
        || !running(before),
        Duration::from_secs(10),
    );
}

#[test]
fn a_generation_that_cannot_start_leaves_the_old_one_serving_and_reload_clears_a_failure() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let bob = plexer.cookie("bob");
    let serving = plexer.get(Some(&bob), "/a").1.pid();
    std::fs::write(
        plexer.account_file("bob"),
        "users: [bob]\ncommand: [/nonexistent/app]\n",
    )
    .unwrap();
    let reloaded = plexer.accounts(&["reload", "bob"]);
    reloaded.assert_failure();
    let said = reloaded.stderr_text();
    assert!(said.contains("did not start"), "{said}");
    assert!(said.contains("the old ones go on serving"), "{said}");
    assert_eq!(plexer.get(Some(&bob), "/b").1.pid(), serving);
    // A fixed file and a reload: the operator's way out of a failure.
    std::fs::write(plexer.account_file("bob"), "users: [bob]\n").unwrap();
    plexer.accounts(&["reload", "bob"]).assert_success();
    assert_eq!(plexer.account_of(Some(&bob)), "bob");
}

#[test]
fn files_dropped_in_touched_and_deleted_apply_without_a_command() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let dave = plexer.cookie("dave");
    std::fs::write(plexer.account_file("dave"), "users: [dave]\n").unwrap();
    assert!(
        wait_for(
            || plexer.account_of(Some(&dave)) == "dave",
            Duration::from_secs(5)
        ),
        "a new file adds the account"
    );
    let first = generation(&plexer, "dave").unwrap();
    // A touch (a new mtime, the same text) reloads it.
    std::thread::sleep(Duration::from_millis(20));
    let file = std::fs::File::options()
        .append(true)
        .open(plexer.account_file("dave"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    assert!(
        wait_for(
            || generation(&plexer, "dave").is_some_and(|g| g > first),
            Duration::from_secs(5)
        ),
        "a touched file reloads the account"
    );
    std::fs::remove_file(plexer.account_file("dave")).unwrap();
    assert!(
        wait_for(
            || plexer.account_of(Some(&dave)) == "login",
            Duration::from_secs(5)
        ),
        "a deleted file removes the account"
    );
}

#[test]
fn sighup_applies_a_changed_config_and_refuses_a_bad_one_whole() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    let bob = plexer.cookie("bob");
    let sue = plexer.cookie("sue");
    assert_eq!(plexer.get(Some(&bob), "/a").1.get("greeting"), "-");
    let config = std::fs::read_to_string(plexer.config_path()).unwrap();
    let greeting = format!("{config}  env: {{ HELLO_GREETING: \"for {{account}}\" }}\n");
    std::fs::write(plexer.config_path(), &greeting).unwrap();
    plexer.process.signal(Signal::SIGHUP);
    assert!(
        wait_for(
            || plexer.get(Some(&bob), "/b").1.get("greeting") == "for bob",
            Duration::from_secs(10)
        ),
        "the new template reaches bob: {}",
        plexer.log()
    );
    assert_eq!(plexer.get(Some(&sue), "/c").1.get("greeting"), "for sue");
    // A config that does not validate changes nothing.
    let generation_before = generation(&plexer, "bob");
    std::fs::write(plexer.config_path(), format!("{greeting}  max_childs: 3\n")).unwrap();
    plexer.process.signal(Signal::SIGHUP);
    wait_until(
        "the refusal is logged",
        || {
            let refused = |e: &Event| {
                e.text("refused")
                    .is_some_and(|why| why.contains("unknown field `max_childs`"))
            };
            find(&plexer.log(), refused).is_some()
        },
        Duration::from_secs(5),
    );
    assert_eq!(generation(&plexer, "bob"), generation_before);
    assert_eq!(plexer.get(Some(&bob), "/d").1.get("greeting"), "for bob");
}
