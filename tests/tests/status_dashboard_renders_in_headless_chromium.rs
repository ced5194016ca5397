//! The status page's dashboard (`?html`) in a real browser: Debian's headless Chromium loads it
//! from `plexer serve --http`, and the DOM it rendered has a row per account (bob's showing
//! its one busy worker, on a slow request), the summary, and charts with lines drawn from the
//! history; an account's own page has its charts too. A screenshot is kept in the scratch
//! directory (its path is in every failure message; `PLEXER_KEEP_SCRATCH=1` keeps it).

use std::path::Path;
use std::time::Duration;

use plexer_tests::chromium::Chromium;
use plexer_tests::{Addr, PlexerRequest, PlexerServe, Scratch, ServeSetup, wait_for_value};

/// Every account file says something or `{}` for every default.
const ACCOUNTS: &[(&str, &str)] = &[
    ("login", "{}"),
    ("bob", "users: [bob]"),
    ("sue", "users: [sue]"),
    ("ann", "{}"),
];

/// The `<svg id="chart-ID"…</svg>` element of `dom`.
fn chart<'a>(dom: &'a str, id: &str, context: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"chart-{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}: {context}"));
    let end = dom[start..].find("</svg>").expect("the svg ends") + start;
    &dom[start..end]
}

/// The `<tr data-account="NAME">` row of `dom`.
fn row<'a>(dom: &'a str, account: &str, context: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr data-account=\"{account}\""))
        .unwrap_or_else(|| panic!("no row for {account}: {context}"));
    let end = dom[start..].find("</tr>").expect("the row ends") + start;
    &dom[start..end]
}

fn shot_context(shot: &Path, dom: &str) -> String {
    format!(
        "screenshot: {} (PLEXER_KEEP_SCRATCH=1 keeps it)\n--- DOM ---\n{dom}",
        shot.display()
    )
}

#[test]
fn the_dashboard_renders_rows_a_busy_account_and_charts_in_chromium() {
    let scratch = Scratch::new();
    let Addr::Tcp(http) = Addr::free_tcp_port() else {
        unreachable!("free_tcp_port gives a TCP address")
    };
    let front = http.to_string();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: ACCOUNTS,
            config_extra: "login: { account: login }\nstatus_sample_interval: 1s\n",
            args: &["--http", &front],
            ..ServeSetup::default()
        },
    );
    // Busy past both pages' dumps: Chromium on a loaded 2-core machine took longer than 8 s
    // (the worker was idle again when the first page was read).
    let slow_uri = "/slow?sleep=20000";
    let slow = PlexerRequest::new(plexer.addr(), slow_uri)
        .cookie(&plexer.cookie("bob"))
        .timeout(Duration::from_secs(40));
    let slow = std::thread::spawn(move || slow.run());
    let sue = plexer.cookie("sue");
    for _ in 0..5 {
        plexer.get(Some(&sue), "/fast");
    }
    plexer.wait_busy("bob");
    // Two samples at least, the second with bob's busy worker in it.
    let sampled = || {
        let json = plexer.status_json();
        (json["history"].as_array()?.len() >= 2).then_some(())
    };
    wait_for_value(sampled, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no samples in the history: {}", plexer.log()));

    let browser = Chromium::new(&scratch);
    let page = format!("http://{front}/plexer-status?html");
    let shot = scratch.join("dashboard.png");
    browser.screenshot(&page, &shot);
    let dom = browser.dump_dom(&page);
    let context = shot_context(&shot, &dom);
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "{context}"
    );
    assert_eq!(dom.matches("<tr data-account=").count(), 4, "{context}");
    let bob = row(&dom, "bob", &context);
    assert!(
        bob.contains(">1/4</td>"),
        "bob's one busy worker of 4: {bob}\n{context}"
    );
    assert!(bob.contains("href=\"?html&amp;account=bob\""), "{context}");
    assert!(
        row(&dom, "sue", &context).contains(">0/4</td>"),
        "{context}"
    );
    assert!(dom.contains("<b>1</b> busy"), "{context}");
    assert!(dom.contains("page 1 of 1 (4 accounts)"), "{context}");
    for id in ["all-requests", "all-latency", "all-busy"] {
        let svg = chart(&dom, id, &context);
        assert!(
            svg.contains("<path class=\"s1\""),
            "chart {id} has no line: {svg}\n{context}"
        );
    }

    let page = format!("http://{front}/plexer-status?html&account=bob");
    let shot = scratch.join("bob.png");
    browser.screenshot(&page, &shot);
    let dom = browser.dump_dom(&page);
    let context = shot_context(&shot, &dom);
    assert!(dom.contains("<h2 id=\"account\">bob</h2>"), "{context}");
    let busy = chart(&dom, "account-busy", &context);
    assert!(busy.contains("<path class=\"s1\""), "{busy}\n{context}");
    assert!(
        !dom.contains(slow_uri.split_once('?').unwrap().1),
        "the query string is never shown: {context}"
    );

    slow.join().unwrap().assert_success();
}
