//! A bad account file is refused alone: at start every valid account serves and each bad file
//! is named (with its line) in the log, `plexer accounts list`, the status page and
//! `plexer serve --check`, which still fails; a file that goes bad while plexer runs leaves its
//! account running as it was, shown as refused until the file is fixed.

use std::time::Duration;

use plexer_tests::log_events::{Event, find};
use plexer_tests::{CgiResponse, PlexerRequest, PlexerServe, Scratch, ServeSetup, build, run};
use plexer_tests::{wait_for_value, wait_until};
use serde_json::Value;

/// bob and sue are good; eve's YAML is broken on line 2, zed claims bob's user (and sorts
/// after bob), half is empty, as an editor leaves a file between truncation and write.
const ACCOUNTS: &[(&str, &str)] = &[
    ("login", "{}"),
    ("bob", "users: [bob]"),
    ("sue", "users: [sue]"),
    ("eve", "users: [eve\n"),
    ("zed", "users: [zed, bob]\n"),
    ("half", ""),
];

fn plexer(scratch: &Scratch) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: ACCOUNTS,
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    )
}

/// The status page's `refused`, as (file name, line, reason).
fn refused(plexer: &PlexerServe) -> Vec<(String, Value, String)> {
    let status = plexer.status_json();
    let refused = status["refused"].as_array().cloned().unwrap_or_default();
    refused
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap_or_default();
            let name = file.rsplit('/').next().unwrap_or_default().to_owned();
            let reason = r["reason"].as_str().unwrap_or_default().to_owned();
            (name, r["line"].clone(), reason)
        })
        .collect()
}

fn listed(plexer: &PlexerServe) -> Vec<Value> {
    let listed = plexer.accounts(&["list", "--json"]);
    listed.assert_success();
    let json: Value = serde_json::from_slice(&listed.stdout).unwrap();
    json["data"].as_array().cloned().unwrap_or_default()
}

fn openmetrics(plexer: &PlexerServe) -> String {
    let finished = PlexerRequest::new(plexer.addr(), "/plexer-status?openmetrics").run();
    finished.assert_success();
    CgiResponse::parse(&finished.stdout).body_text()
}

#[test]
fn a_bad_account_file_is_refused_alone_and_the_others_serve() {
    let scratch = Scratch::new();
    let plexer = plexer(&scratch);
    assert_eq!(plexer.account_of(Some(&plexer.cookie("bob"))), "bob");
    assert_eq!(plexer.account_of(Some(&plexer.cookie("sue"))), "sue");
    assert_eq!(plexer.account_of(Some(&plexer.cookie("eve"))), "login");
    assert_eq!(plexer.account_of(Some(&plexer.cookie("half"))), "login");

    let refused = refused(&plexer);
    let files: Vec<&str> = refused.iter().map(|(f, ..)| f.as_str()).collect();
    assert_eq!(files, ["eve.yaml", "half.yaml", "zed.yaml"], "{refused:?}");
    assert_eq!(refused[0].1, 2, "eve's line: {refused:?}");
    assert!(refused[0].2.contains("eve.yaml:2:1:"), "{refused:?}");
    assert!(refused[1].2.contains("half.yaml is empty"), "{refused:?}");
    assert!(
        refused[2]
            .2
            .contains("user \"bob\" already belongs to account bob"),
        "{refused:?}"
    );
    // bob keeps its user: the later file in sorted order is the one refused.
    assert_eq!(plexer.account_of(Some(&plexer.cookie("zed"))), "login");

    let list = listed(&plexer);
    let state_of = |file: &str| {
        list.iter()
            .filter(|a| a["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(state_of("/bob.yaml"), ["running"], "{list:?}");
    assert_eq!(state_of("/eve.yaml"), ["refused"], "{list:?}");
    assert_eq!(state_of("/zed.yaml"), ["refused"], "{list:?}");
    let text = plexer.accounts(&["list"]).stdout_text();
    assert!(text.contains("eve.yaml:2:1"), "{text}");

    assert!(
        openmetrics(&plexer)
            .lines()
            .any(|l| l == "plexer_accounts_refused 3"),
        "{}",
        openmetrics(&plexer)
    );
    let logged = |e: &Event| {
        e.level() == "ERROR"
            && e.text("refused")
                .is_some_and(|why| why.contains("eve.yaml:2:1"))
    };
    assert!(find(&plexer.log(), logged).is_some(), "{}", plexer.log());

    // --check says no, naming every refused file.
    let mut command = build::serve_command(build::plexer());
    command.args(["--check", "-c"]).arg(plexer.config_path());
    let checked = run(&mut command, b"", Duration::from_secs(10));
    checked.assert_failure();
    let said = checked.stderr_text();
    for file in [
        "eve.yaml:2:1",
        "half.yaml is empty",
        "zed.yaml: user \"bob\"",
    ] {
        assert!(said.contains(file), "{file}: {said}");
    }

    // Removing a refused file takes its refusal away; fixing one adds its account.
    plexer.accounts(&["remove", "half"]).assert_success();
    assert!(!plexer.account_file("half").exists());
    std::fs::write(plexer.account_file("eve"), "users: [eve]\n").unwrap();
    wait_until(
        "eve's fixed file is applied",
        || plexer.account_of(Some(&plexer.cookie("eve"))) == "eve",
        Duration::from_secs(5),
    );
    let files: Vec<String> = self::refused(&plexer).into_iter().map(|r| r.0).collect();
    assert_eq!(files, ["zed.yaml"]);
}

#[test]
fn a_file_that_goes_bad_keeps_its_account_running_and_shows_the_refusal() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    let bob = plexer.cookie("bob");
    let worker = plexer.get(Some(&bob), "/a").1.pid();
    for (bad, expected) in [
        ("", "bob.yaml is empty"),
        (
            "users: [bob]\nmax_children: [\n",
            "bob.yaml:2:15: max_children",
        ),
    ] {
        std::fs::write(plexer.account_file("bob"), bad).unwrap();
        let reason = wait_for_value(
            || {
                let refused = refused(&plexer);
                let bob = refused.iter().find(|r| r.0 == "bob.yaml")?;
                bob.2.contains(expected).then(|| bob.2.clone())
            },
            Duration::from_secs(5),
        );
        assert!(reason.is_some(), "{expected}: {:?}", refused(&plexer));
        // The account runs as it was: same workers, same users.
        let (_, answer) = plexer.get(Some(&bob), "/b");
        assert_eq!(answer.get("account"), "bob");
        assert_eq!(answer.pid(), worker);
        let list = listed(&plexer);
        let states: Vec<&str> = list
            .iter()
            .filter(|a| a["account"] == "bob")
            .filter_map(|a| a["state"].as_str())
            .collect();
        assert_eq!(states, ["running", "refused"], "{list:?}");
    }
    std::fs::write(plexer.account_file("bob"), "users: [bob]\n").unwrap();
    wait_until(
        "the fixed file clears the refusal",
        || refused(&plexer).is_empty(),
        Duration::from_secs(5),
    );
    assert_eq!(plexer.account_of(Some(&bob)), "bob");
    // A reload by name of a bad file is refused and shown the same way.
    std::fs::write(plexer.account_file("bob"), "users: [bob\n").unwrap();
    let reloaded = plexer.accounts(&["reload", "bob"]);
    reloaded.assert_failure();
    assert!(
        reloaded.stderr_text().contains("bob.yaml:2:1"),
        "{reloaded}"
    );
    assert_eq!(refused(&plexer).len(), 1);
    assert_eq!(plexer.account_of(Some(&bob)), "bob");
}
