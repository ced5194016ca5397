use serde_json::json;

use super::{duration, html};
use crate::status::sample_report::sample_report;

#[test]
fn a_page_that_refreshes_itself_with_a_table_per_account() {
    let page = html(&sample_report());
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.ends_with("</body></html>\n"), "{page}");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(page.contains("up 1h 2m 5s"), "{page}");
    for name in ["bob", "sue", "ann"] {
        assert!(page.contains(&format!("<h2>{name}</h2>")), "{page}");
    }
    assert_eq!(page.matches("<section>").count(), 3);
    assert!(page.contains("<tr><th>max children reached</th><td class=\"num\">2</td></tr>"));
    assert!(page.contains("<tr><th>socket</th><td>unix:/run/sue.sock</td></tr>"));
    assert!(
        page.contains("<th>state</th><td class=\"ok\">running</td>"),
        "{page}"
    );
    // No external assets: nothing is loaded from anywhere.
    for fetch in ["src=", "<link", "@import", "url("] {
        assert!(!page.contains(fetch), "{fetch} in {page}");
    }
}

#[test]
fn full_adds_a_worker_table_with_every_field() {
    let page = html(&sample_report());
    assert!(
        page.contains("<th>pid</th><th>state</th><th>seconds in state</th>"),
        "{page}"
    );
    assert!(
        page.contains("<th>rss bytes</th><th>uri</th></tr>"),
        "{page}"
    );
    assert!(page.contains(
        "<td class=\"num\">101</td><td class=\"ok\">busy</td><td class=\"num\">2.5</td>"
    ));
    // The worker without a pid yet, and ann's empty pool.
    assert!(
        page.contains("<td>\u{2013}</td><td class=\"warn\">starting</td>"),
        "{page}"
    );
    assert!(page.contains("<p class=\"workers\">no workers</p>"));
}

#[test]
fn text_from_config_and_requests_is_escaped() {
    let page = html(&sample_report());
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;?a=1&amp;b=&quot;2&quot;")
    );
    assert!(page.contains(
        "<td class=\"bad\">failed: exited with status 1 &lt;before accepting&gt; &amp; &quot;gave up&quot;</td>"
    ));
    let report = json!({
        "uptime_seconds": 0,
        "accounts": [{ "account": "<b>x</b>", "state": "running", "a<key>": "&" }],
    });
    let page = html(&report);
    assert!(page.contains("<h2>&lt;b&gt;x&lt;/b&gt;</h2>"), "{page}");
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
    let page = html(&sample_report());
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
    assert!(!html(&none).contains("refused"));
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
    let page = html(&report);
    assert!(
        page.contains("<h2>slow requests: the last 2 of 2 (all in ?json)</h2>"),
        "{page}"
    );
    let at = |pid: &str| page.find(&format!("<td class=\"num\">{pid}</td>")).unwrap();
    let (newer, older) = (at("202"), at("201"));
    assert!(newer < older, "{page}");
    assert!(page.contains("<td>/slow&lt;b&gt;</td>"), "{page}");
    assert!(page.contains("<summary>exited</summary><pre>exited with status 0\n&lt;script&gt;stuck()&lt;/script&gt;</pre>"), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    // None kept: no section.
    assert!(!html(&sample_report()).contains("slow requests:"));
}
