use super::*;

fn db(inode: u64) -> Shared {
    Shared::for_test(inode, true, true)
}

fn stops(verdicts: &[Verdict]) -> usize {
    verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Stop(_)))
        .count()
}

#[test]
fn a_shared_database_stops_a_strict_pool_on_the_second_sighting() {
    let mut auditor = PoolAuditor::new(AuditMode::Strict);
    assert_eq!(auditor.judge(vec![db(1)]), vec![]);
    assert!(auditor.awaits_confirmation());
    let verdicts = auditor.judge(vec![db(1)]);
    assert_eq!(stops(&verdicts), 1);
    assert!(matches!(&verdicts[0], Verdict::Stop(m) if m.contains("(PostgreSQL) is shared")));
}

#[test]
fn what_was_shared_for_a_moment_is_forgotten() {
    let mut auditor = PoolAuditor::new(AuditMode::Strict);
    assert_eq!(auditor.judge(vec![db(1)]), vec![]);
    // The fork-and-exec of a subprocess is over: the connection is the worker's alone.
    assert_eq!(auditor.judge(vec![]), vec![]);
    assert!(!auditor.awaits_confirmation());
    assert_eq!(auditor.judge(vec![db(1)]), vec![]);
}

#[test]
fn warn_mode_and_unknown_peers_warn_once_and_never_stop() {
    let mut warn = PoolAuditor::new(AuditMode::Warn);
    warn.judge(vec![db(1)]);
    assert!(matches!(&warn.judge(vec![db(1)])[..], [Verdict::Warn(_)]));
    assert_eq!(warn.judge(vec![db(1)]), vec![]);

    let mut strict = PoolAuditor::new(AuditMode::Strict);
    let unknown = || Shared::for_test(2, false, true);
    let possible = || Shared::for_test(3, true, false);
    strict.judge(vec![unknown(), possible()]);
    let verdicts = strict.judge(vec![unknown(), possible()]);
    assert_eq!(verdicts.len(), 2);
    assert_eq!(stops(&verdicts), 0);
    assert_eq!(strict.judge(vec![unknown(), possible()]), vec![]);
}

#[test]
fn a_stop_comes_before_any_warning_of_the_same_round() {
    let mut auditor = PoolAuditor::new(AuditMode::Strict);
    let round = || vec![Shared::for_test(2, false, true), db(1)];
    auditor.judge(round());
    let verdicts = auditor.judge(round());
    assert!(matches!(verdicts[0], Verdict::Stop(_)));
    assert!(matches!(verdicts[1], Verdict::Warn(_)));
}

#[test]
fn off_looks_at_nothing() {
    let mut auditor = PoolAuditor::new(AuditMode::Off);
    auditor.judge(vec![db(1)]);
    assert_eq!(auditor.judge(vec![db(1)]), vec![]);
}

#[test]
fn modes_parse_and_print_as_written() {
    for name in AuditMode::NAMES {
        assert_eq!(name.parse::<AuditMode>().unwrap().to_string(), name);
    }
    let err = "loud".parse::<AuditMode>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown audit mode \"loud\": use strict, warn or off"
    );
}

#[test]
fn each_kind_of_note_is_given_once() {
    let mut log = NoteLog::default();
    let hidden = || AuditNote::PeersHidden;
    assert_eq!(log.first_time(vec![hidden(), hidden()]).len(), 1);
    assert_eq!(log.first_time(vec![hidden()]), vec![]);
}
