use serde_json::json;

use super::{duration, html};
use crate::status::sample_report::sample_report;
use crate::status::view::View;

fn dashboard(query: &str) -> String {
    html(&sample_report(), None, &View::parse(query))
}

#[test]
fn a_dashboard_with_a_summary_charts_and_a_row_per_account() {
    let page = dashboard("html");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.ends_with("</body></html>\n"), "{page}");
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
    assert!(page.contains("up 1h 2m 5s"), "{page}");
    assert!(
        page.contains(
            "<b>1.5</b> req/s <b>0.1</b> errors/s <b>1</b> busy <b>1</b> idle workers \
             <b>3</b> queued <b>2</b> in flight <b>1</b> slow in the last minute"
        ),
        "{page}"
    );
    for chart in ["all-requests", "all-latency", "all-busy"] {
        assert!(
            page.contains(&format!("<svg id=\"chart-{chart}\"")),
            "{page}"
        );
    }
    assert_eq!(page.matches("<tr data-account=").count(), 3, "{page}");
    // bob's row: rate, p50 and p99 in ms, busy/max, queue, errors in the last minute, MiB.
    assert!(
        page.contains(
            "<td class=\"num\" data-v=\"0.5\">0.5</td><td class=\"num\" data-v=\"250\">250 ms</td>\
             <td class=\"num\" data-v=\"500\">500 ms</td><td class=\"num\" data-v=\"1\">1/2</td>"
        ),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"num\" data-v=\"3\">3.0</td></tr>"),
        "{page}"
    );
    assert!(page.contains("page 1 of 1 (3 accounts)"), "{page}");
    // No external assets: nothing is loaded from anywhere.
    for fetch in ["src=", "<link", "@import", "url(", "http:", "https:"] {
        assert!(!page.contains(fetch), "{fetch} in {page}");
    }
}

#[test]
fn headers_sort_by_their_column_and_the_filter_keeps_rows_by_name() {
    let page = dashboard("html&sort=errors&desc");
    let first = page.find("data-account=\"ann\"").unwrap();
    assert!(first < page.find("data-account=\"bob\"").unwrap(), "{page}");
    // Clicking the sorted column again sorts the other way.
    assert!(page.contains("<th data-col=\"errors\"><a href=\"?html&amp;sort=errors\">"));
    assert!(page.contains("<th data-col=\"rate\"><a href=\"?html&amp;sort=rate&amp;desc\">"));
    let page = dashboard("html&q=u");
    assert_eq!(page.matches("<tr data-account=").count(), 1, "{page}");
    assert!(page.contains("data-account=\"sue\""), "{page}");
    assert!(page.contains("value=\"u\""), "{page}");
}

#[test]
fn an_account_page_has_its_charts_every_field_and_its_workers() {
    let page = dashboard("html&full&account=bob");
    assert!(page.contains("<h2 id=\"account\">bob</h2>"), "{page}");
    assert!(
        page.contains("<svg id=\"chart-account-requests\""),
        "{page}"
    );
    assert!(page.contains("<tr><th>max children reached</th><td class=\"num\">2</td></tr>"));
    assert!(page.contains("<tr><th>responses 5xx</th><td class=\"num\">1</td></tr>"));
    assert!(
        page.contains("<th>pid</th><th>state</th><th>seconds in state</th>"),
        "{page}"
    );
    assert!(page.contains(
        "<td class=\"num\">101</td><td class=\"ok\">busy</td><td class=\"num\">2.5</td>"
    ));
    assert!(
        page.contains("<td>\u{2013}</td><td class=\"warn\">starting</td>"),
        "{page}"
    );
    assert!(dashboard("html&full&account=ann").contains("<p class=\"workers\">no workers</p>"));
    assert!(dashboard("html&account=nobody").contains("no such account"));
}

#[test]
fn text_from_config_requests_and_the_query_is_escaped() {
    let page = dashboard("html&full&account=bob");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;?a=1&amp;b=&quot;2&quot;")
    );
    let page = dashboard("html");
    assert!(page.contains(
        "<td data-v=\"failed: exited with status 1 &lt;before accepting&gt; &amp; &quot;gave up&quot;\" \
         class=\"bad\">failed: exited with status 1 &lt;before accepting&gt; &amp; &quot;gave up&quot;</td>"
    ), "{page}");
    // A filter with HTML in it is shown escaped, and put in links percent-encoded.
    let page = dashboard("html&q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&page=2");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{page}"
    );
    assert!(
        page.contains("q=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"),
        "{page}"
    );
    let report = json!({
        "uptime_seconds": 0,
        "accounts": [{ "account": "<b>x</b>", "state": "running", "a<key>": "&" }],
    });
    let page = html(&report, None, &View::parse("html"));
    assert!(page.contains(">&lt;b&gt;x&lt;/b&gt;</a>"), "{page}");
    assert!(
        page.contains("?html&amp;account=%3Cb%3Ex%3C%2Fb%3E"),
        "{page}"
    );
    let page = html(&report, None, &View::parse("html&account=%3Cb%3Ex%3C/b%3E"));
    assert!(
        page.contains("<th>a&lt;key&gt;</th><td>&amp;</td>"),
        "{page}"
    );
    assert!(page.contains("up 0s"), "{page}");
}

#[test]
fn durations_read_as_days_hours_minutes_seconds() {
    assert_eq!(duration(0), "0s");
    assert_eq!(duration(59), "59s");
    assert_eq!(duration(3600), "1h 0m 0s");
    assert_eq!(duration(90_061), "1d 1h 1m 1s");
}

#[test]
fn refused_account_files_get_a_section_with_file_line_and_reason() {
    let page = dashboard("html");
    assert!(
        page.contains("<section class=\"refused\"><h2>2 refused account files</h2>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<tr><td>/etc/plexer/accounts.d/eve.yaml</td><td>eve</td><td class=\"num\">2</td>\
             <td class=\"bad\">/etc/plexer/accounts.d/eve.yaml:2:1: did not find expected \
             &#39;,&#39; or &#39;]&#39;</td></tr>"
        ),
        "{page}"
    );
    assert!(
        page.contains("bad account name &quot;Bad&quot; &lt;b&gt;</td>"),
        "{page}"
    );
    let none = json!({ "uptime_seconds": 0, "accounts": [], "refused": [] });
    assert!(!html(&none, None, &View::default()).contains("refused"));
}

#[test]
fn slow_requests_show_newest_first_with_their_dumps_escaped() {
    let mut report = sample_report();
    let entry = |pid: u32, output: &str| {
        json!({
            "time": "2026-12-03T11:27:52Z", "account": "bob", "generation": 1, "pid": pid,
            "uri": "/slow<b>", "seconds": 1.25, "wchan": "hrtimer_nanosleep",
            "kernel_stack": null,
            "dump": {
                "outcome": "exited", "command": "py-spy dump --pid 1",
                "status": "exited with status 0", "output": output, "bytes_left_out": 0,
            },
        })
    };
    report["slow"] = json!([entry(201, "older"), entry(202, "<script>stuck()</script>")]);
    let page = html(&report, None, &View::default());
    assert!(
        page.contains("<h2>slow requests: the last 2 of 2 (all in ?json)</h2>"),
        "{page}"
    );
    let at = |pid: &str| page.find(&format!("<td class=\"num\">{pid}</td>")).unwrap();
    let (newer, older) = (at("202"), at("201"));
    assert!(newer < older, "{page}");
    assert!(page.contains("<td>/slow&lt;b&gt;</td>"), "{page}");
    assert!(page.contains("<summary>exited</summary><pre>exited with status 0\n&lt;script&gt;stuck()&lt;/script&gt;</pre>"), "{page}");
    assert!(!page.contains("<script>stuck()"), "{page}");
    // None kept: no section.
    assert!(!html(&sample_report(), None, &View::default()).contains("slow requests:"));
}
