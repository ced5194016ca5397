use super::*;

fn row(account: &str, rate: f64, p99: Option<f64>) -> Row {
    Row {
        account: account.to_owned(),
        state: "running".to_owned(),
        rate,
        p99_seconds: p99,
        ..Row::default()
    }
}

fn names(page: &Page<'_>) -> Vec<String> {
    page.rows.iter().map(|r| r.account.clone()).collect()
}

#[test]
fn the_query_is_read_leniently() {
    assert_eq!(View::parse("html"), View::default());
    let view = View::parse("html&page=3&sort=p99&desc&q=B%C3%B6b+x&account=sue");
    assert_eq!(view.page, 3);
    assert_eq!(view.sort, Column::P99);
    assert!(view.descending);
    assert_eq!(view.filter, "Böb x");
    assert_eq!(view.account.as_deref(), Some("sue"));
    let view = View::parse("html&page=0&page=x&sort=nope&desc=0&account=");
    assert_eq!(view, View::default());
    assert_eq!(
        View::parse(&format!("q={}", "a".repeat(1000))).filter.len(),
        MAX_FILTER
    );
}

#[test]
fn percent_decoding_keeps_what_is_not_an_escape() {
    assert_eq!(decode("a%2Fb+c"), "a/b c");
    assert_eq!(decode("100%"), "100%");
    assert_eq!(decode("%zz%4"), "%zz%4");
    assert_eq!(decode("%FF"), "\u{FFFD}");
    assert_eq!(encode("a b/<\"é"), "a%20b%2F%3C%22%C3%A9");
}

#[test]
fn links_keep_the_sort_and_filter_and_drop_the_first_page() {
    let view = View::parse("html&sort=rate&desc&q=a%26b&page=4");
    assert_eq!(view.query(|_| {}), "html&sort=rate&desc&q=a%26b&page=4");
    assert_eq!(view.query(|v| v.page = 1), "html&sort=rate&desc&q=a%26b");
}

#[test]
fn rows_are_filtered_by_name_sorted_with_ties_by_name_and_paged() {
    let rows = vec![
        row("carol", 2.0, None),
        row("Bob", 5.0, Some(0.2)),
        row("alice", 2.0, Some(0.9)),
        row("dave", 0.0, Some(0.1)),
    ];
    let page = select(&rows, &View::default());
    assert_eq!(names(&page), ["Bob", "alice", "carol", "dave"]);
    let view = |query: &str| View::parse(query);
    let page = select(&rows, &view("sort=rate&desc"));
    assert_eq!(names(&page), ["Bob", "alice", "carol", "dave"]);
    let page = select(&rows, &view("sort=rate"));
    assert_eq!(names(&page), ["dave", "alice", "carol", "Bob"]);
    // An account without a p99 sorts below every value.
    let page = select(&rows, &view("sort=p99&desc"));
    assert_eq!(names(&page), ["alice", "Bob", "dave", "carol"]);
    let page = select(&rows, &view("q=B"));
    assert_eq!(names(&page), ["Bob"], "case-insensitive");
    assert_eq!((page.page, page.pages, page.matching), (1, 1, 1));
    let page = select(&rows, &view("q=nobody&page=7"));
    assert_eq!((page.rows.len(), page.page, page.pages), (0, 1, 1));
}

#[test]
fn ten_thousand_accounts_are_pages_of_fifty() {
    let rows: Vec<Row> = (0..10_000)
        .map(|i| row(&format!("acct{i:05}"), f64::from(i % 7), None))
        .collect();
    let page = select(&rows, &View::parse("page=2"));
    assert_eq!((page.page, page.pages, page.matching), (2, 200, 10_000));
    assert_eq!(page.rows.len(), PAGE_ROWS);
    assert_eq!(page.rows[0].account, "acct00050");
    let page = select(&rows, &View::parse("page=999"));
    assert_eq!(page.page, 200, "past the last page is the last");
    assert_eq!(page.rows.last().unwrap().account, "acct09999");
    let page = select(&rows, &View::parse("q=acct0999"));
    assert_eq!(page.matching, 10);
}

#[test]
fn a_row_is_read_from_the_report() {
    let report = crate::status::sample_report::sample_report();
    let bob = Row::from_report(&report["accounts"][0]);
    assert_eq!(bob.account, "bob");
    assert_eq!((bob.busy, bob.max_children, bob.queue), (1, Some(2), 3));
    assert_eq!((bob.rate, bob.p50_seconds), (0.5, Some(0.25)));
    assert_eq!(bob.rss_bytes, Some(3_145_728));
    let sue = Row::from_report(&report["accounts"][1]);
    assert_eq!(
        (sue.max_children, sue.p99_seconds, sue.rss_bytes),
        (None, None, None)
    );
}
