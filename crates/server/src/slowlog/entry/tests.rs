use super::*;

fn entry(dump: Dump) -> Entry {
    Entry {
        time: "2026-12-03T11:27:52Z".into(),
        account: "bob".into(),
        generation: 3,
        pid: 4321,
        uri: "/report".into(),
        seconds: 1.25,
        wchan: Some("hrtimer_nanosleep".into()),
        kernel_stack: Some(
            "[<0>] hrtimer_nanosleep+0xb5/0x130\n[<0>] common_nsleep+0x30/0x60\n".into(),
        ),
        dump,
    }
}

#[test]
fn an_entry_reads_as_a_header_line_then_indented_details() {
    let text = entry(Dump::Exited {
        command: "py-spy dump --pid 4321".into(),
        status: "exited with status 0".into(),
        output: "Thread 4321 (idle): \"MainThread\"\n    stuck_in_a_known_function (app.py:12)\n"
            .into(),
        bytes_left_out: 0,
    })
    .text();
    assert_eq!(
        text,
        "[2026-12-03T11:27:52Z] slow request: account bob, worker pid 4321, uri /report, \
         running for 1.2s\n\
         \x20 wchan: hrtimer_nanosleep\n\
         \x20 kernel stack:\n\
         \x20   [<0>] hrtimer_nanosleep+0xb5/0x130\n\
         \x20   [<0>] common_nsleep+0x30/0x60\n\
         \x20 dump: py-spy dump --pid 4321: exited with status 0\n\
         \x20   Thread 4321 (idle): \"MainThread\"\n\
         \x20       stuck_in_a_known_function (app.py:12)\n\n"
    );
}

#[test]
fn what_the_app_prints_cannot_forge_an_entry_or_reach_a_terminal() {
    let forged = "ok\n[2026-12-03T00:00:00Z] slow request: account eve\r\n\x1b[2Jcleared";
    let mut slow = entry(Dump::Exited {
        command: "dumper".into(),
        status: "exited with status 1".into(),
        output: forged.into(),
        bytes_left_out: 0,
    });
    slow.uri = "/a\nb\x1b".into();
    slow.wchan = None;
    slow.kernel_stack = None;
    let text = slow.text();
    let starts: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(starts.len(), 1, "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert!(text.contains("uri /a\\nb\\u{1b}, "), "{text}");
    assert!(text.contains("    \\u{1b}[2Jcleared\n"), "{text}");
    assert!(text.contains("  wchan: not readable\n"), "{text}");
    assert!(text.contains("  kernel stack: not readable"), "{text}");
}

#[test]
fn a_dumper_that_hangs_fails_or_is_missing_says_so() {
    let killed = entry(Dump::Killed {
        command: "sleep 30".into(),
        after_seconds: 5,
        output: String::new(),
        bytes_left_out: 0,
    })
    .text();
    assert!(
        killed.contains("  dump: sleep 30: killed after 5 s, still running"),
        "{killed}"
    );
    let missing = entry(Dump::CannotStart {
        command: "no-such-dumper 4321".into(),
        error: "No such file or directory (os error 2)".into(),
    })
    .text();
    assert!(
        missing.contains("  dump: no-such-dumper 4321: cannot be started: No such file"),
        "{missing}"
    );
    let cut = entry(Dump::Exited {
        command: "gdb".into(),
        status: "exited with status 0".into(),
        output: "#0 main".into(),
        bytes_left_out: 1000,
    })
    .text();
    assert!(
        cut.contains("    #0 main\n    [1000 more bytes left out]\n"),
        "{cut}"
    );
    let none = entry(Dump::NotConfigured).text();
    assert!(none.contains("  dump: none"), "{none}");
}

#[test]
fn entries_are_json_with_the_dumps_outcome_as_a_tag() {
    let slow = entry(Dump::Killed {
        command: "sleep 30".into(),
        after_seconds: 5,
        output: "x".into(),
        bytes_left_out: 0,
    });
    let json = serde_json::to_value(&slow).unwrap();
    assert_eq!(json["dump"]["outcome"], "killed");
    assert_eq!(json["pid"], 4321);
    assert_eq!(json["uri"], "/report");
    let back: Entry = serde_json::from_value(json).unwrap();
    assert_eq!(back, slow);
}

#[test]
fn times_are_utc_dates_leap_days_included() {
    let at = |seconds: u64| utc(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
    assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
}
