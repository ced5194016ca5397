//! A request past its pool's `request_slowlog_timeout` is recorded once, while it still runs,
//! with its worker's wchan, kernel stack and the output of the pool's `slowlog_dump`: in the
//! `slowlog:` file, on the status page (`?json` key `slow`) and in `plexer status --slow`. A
//! dumper that hangs is killed after 5 s, one that cannot be started says so, and plexer serves
//! other requests meanwhile.

use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plexer_tests::django::venv_python;
use plexer_tests::{
    PlexerServe, Scratch, ServeSetup, build, examples, procfs, run, wait_for_value,
};
use serde_json::Value;

/// The slowlog config every test here runs with: a file, and a 1 s threshold.
const CONFIG: &str = "slowlog: slow.log\n";
const POOL: &str = "  request_slowlog_timeout: 1s\n";

/// `?json`'s `slow` entries of `account`, from the status page plexer answers itself.
fn slow_entries(serve: &PlexerServe, account: &str) -> Vec<Value> {
    let (page, _) = serve.get(None, "/plexer-status?json");
    let report: Value = serde_json::from_slice(&page.body).expect("?json is JSON");
    let slow = report["slow"].as_array().cloned().unwrap_or_default();
    slow.into_iter()
        .filter(|e| e["account"] == account)
        .collect()
}

/// Waits until `account` has an entry whose dump `ready` accepts; the entry.
fn wait_entry(serve: &PlexerServe, account: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let found = wait_for_value(
        || slow_entries(serve, account).into_iter().find(|e| ready(e)),
        Duration::from_secs(15),
    );
    found.unwrap_or_else(|| panic!("no slowlog entry for {account}: {}", serve.log()))
}

/// A GET of `uri` for `account` on a thread of its own: the slow request the test looks at.
fn get_in_background(serve: &PlexerServe, account: &str, uri: &str) -> JoinHandle<String> {
    let (socket, cookie, uri) = (serve.addr(), serve.cookie(account), uri.to_owned());
    std::thread::spawn(move || {
        let mut command = Command::new(build::plexer());
        command.args(["request", "--connect", &socket, "--cookie", &cookie, &uri]);
        let finished = run(&mut command, b"", Duration::from_secs(60));
        finished.assert_success();
        String::from_utf8_lossy(&finished.stdout).into_owned()
    })
}

/// `plexer status --slow -c CONFIG`: the entries as text.
fn status_slow(serve: &PlexerServe) -> String {
    let mut command = Command::new(build::plexer());
    command
        .args(["status", "--slow", "-c"])
        .arg(serve.config_path());
    let finished = run(&mut command, b"", Duration::from_secs(10));
    finished.assert_success();
    String::from_utf8_lossy(&finished.stdout).into_owned()
}

fn py_spy() -> PathBuf {
    let py_spy = venv_python().with_file_name("py-spy");
    assert!(
        py_spy.is_file(),
        "{} is missing: `make deps` installs it (tests/requirements.txt)",
        py_spy.display()
    );
    py_spy
}

#[test]
fn a_stuck_python_request_is_recorded_with_its_function_name_while_it_runs() {
    let scratch = Scratch::new();
    let app = examples::repo_root().join("tests/apps/slow_flup_app.py");
    let account = format!(
        "command: [\"{}\", \"{}\"]\nslowlog_dump: [\"{}\", dump, --pid, \"{{pid}}\"]\n",
        venv_python().display(),
        app.display(),
        py_spy().display()
    );
    let accounts = [("login", "{}"), ("pyapp", account.as_str())];
    let setup = ServeSetup {
        accounts: &accounts,
        config_extra: &format!("login: {{ account: login }}\n{CONFIG}"),
        pool_extra: POOL,
        ..ServeSetup::default()
    };
    let serve = PlexerServe::start(&scratch, setup);
    let started = Instant::now();
    let request = get_in_background(&serve, "pyapp", "/stuck?seconds=12&token=secret");
    let entry = wait_entry(&serve, "pyapp", |e| e["dump"]["outcome"] == "exited");
    assert!(
        !request.is_finished(),
        "the entry came after the request ended"
    );
    assert!(started.elapsed() < Duration::from_secs(12));
    let output = entry["dump"]["output"].as_str().unwrap_or_default();
    assert!(output.contains("stuck_in_a_known_function"), "{entry:#}");
    assert_eq!(
        entry["uri"], "/stuck",
        "the path only, never the query string"
    );
    assert!(entry["seconds"].as_f64().unwrap() >= 1.0, "{entry:#}");
    // The same entry in `plexer status --slow` and in the file, also while the request runs.
    let text = status_slow(&serve);
    assert!(text.contains("stuck_in_a_known_function"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let file = std::fs::read_to_string(serve.path("slow.log")).expect("the slowlog file");
    assert!(file.contains("stuck_in_a_known_function"), "{file}");
    assert!(file.starts_with('['), "{file}");
    assert!(
        !request.is_finished(),
        "the request ended before the checks"
    );
    // Counted once, as it passed the timeout.
    let status = serve.status_json();
    let pyapp = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "pyapp");
    assert_eq!(pyapp.unwrap()["slow_requests"], 1, "{status:#}");
    assert!(request.join().unwrap().contains("done"));
    assert_eq!(
        slow_entries(&serve, "pyapp").len(),
        1,
        "one entry per request"
    );
}

#[test]
fn a_stuck_native_request_without_a_dumper_has_its_wchan() {
    let scratch = Scratch::new();
    let setup = ServeSetup {
        config_extra: &format!("login: {{ account: login }}\n{CONFIG}"),
        pool_extra: POOL,
        ..ServeSetup::default()
    };
    let serve = PlexerServe::start(&scratch, setup);
    let request = get_in_background(&serve, "bob", "/native?sleep=4000");
    let entry = wait_entry(&serve, "bob", |_| true);
    assert!(!request.is_finished());
    let wchan = entry["wchan"].as_str().unwrap_or_default();
    // A worker asleep in the kernel: the function it sleeps in, never "0" (running).
    assert!(!wchan.is_empty() && wchan != "0", "{entry:#}");
    assert_eq!(entry["dump"]["outcome"], "not_configured", "{entry:#}");
    assert_eq!(entry["uri"], "/native");
    let file = std::fs::read_to_string(serve.path("slow.log")).expect("the slowlog file");
    assert!(file.contains(&format!("  wchan: {wchan}\n")), "{file}");
    assert!(request.join().unwrap().contains("account: bob"));
}

#[test]
fn sigusr1_reopens_the_slowlog_file_after_a_rotation() {
    let scratch = Scratch::new();
    let setup = ServeSetup {
        config_extra: &format!("login: {{ account: login }}\n{CONFIG}"),
        pool_extra: POOL,
        ..ServeSetup::default()
    };
    let serve = PlexerServe::start(&scratch, setup);
    let (file, rotated) = (serve.path("slow.log"), serve.path("slow.log.1"));
    get_in_background(&serve, "bob", "/before?sleep=1500")
        .join()
        .unwrap();
    wait_entry(&serve, "bob", |e| e["uri"] == "/before");
    std::fs::rename(&file, &rotated).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.pid() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    wait_for_value(|| file.exists().then_some(()), Duration::from_secs(10))
        .expect("SIGUSR1 opened a new slowlog file");
    get_in_background(&serve, "bob", "/after?sleep=1500")
        .join()
        .unwrap();
    wait_entry(&serve, "bob", |e| e["uri"] == "/after");
    let wrote = |path: &PathBuf| {
        let text = || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|t| t.contains("/after"))
        };
        wait_for_value(text, Duration::from_secs(5))
    };
    assert!(wrote(&file).is_some(), "{}", serve.log());
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("uri /before,") && !old.contains("/after"),
        "{old}"
    );
}

#[test]
fn a_dumper_that_hangs_is_killed_and_one_missing_is_reported_while_plexer_serves_on() {
    let scratch = Scratch::new();
    let accounts = [
        ("login", "{}"),
        ("bob", "users: [bob]\nslowlog_dump: [sleep, \"30\"]\n"),
        (
            "sue",
            "users: [sue]\nslowlog_dump: [/nonexistent/dumper, \"{pid}\"]\n",
        ),
    ];
    let setup = ServeSetup {
        accounts: &accounts,
        config_extra: &format!("login: {{ account: login }}\n{CONFIG}"),
        pool_extra: POOL,
        ..ServeSetup::default()
    };
    let serve = PlexerServe::start(&scratch, setup);
    let hung = get_in_background(&serve, "bob", "/hang?sleep=9000");
    let missing = get_in_background(&serve, "sue", "/missing?sleep=3000");
    let entry = wait_entry(&serve, "sue", |_| true);
    assert_eq!(entry["dump"]["outcome"], "cannot_start", "{entry:#}");
    assert!(status_slow(&serve).contains("/nonexistent/dumper"));
    // While bob's dumper hangs, plexer answers others at once.
    let cookie = serve.cookie("sue");
    for _ in 0..5 {
        let asked = Instant::now();
        let (response, answer) = serve.get(Some(&cookie), "/quick");
        assert_eq!(response.status(), Some("200"));
        assert_eq!(
            answer.fields.get("account").map(String::as_str),
            Some("sue")
        );
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }
    let entry = wait_entry(&serve, "bob", |e| e["dump"]["outcome"] == "killed");
    assert_eq!(entry["dump"]["after_seconds"], 5, "{entry:#}");
    let text = status_slow(&serve);
    assert!(text.contains("dump: sleep 30: killed after 5 s"), "{text}");
    assert!(text.contains("cannot be started"), "{text}");
    // The dumper's process is gone: killed, and reaped (no child of plexer is `sleep`).
    let sleeping: Vec<u32> = procfs::children_of(serve.pid())
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .collect();
    assert!(sleeping.is_empty(), "{sleeping:?}");
    assert!(hung.join().unwrap().contains("account: bob"));
    assert!(missing.join().unwrap().contains("account: sue"));
}
