//! The status page as one HTML document (`?html`): a dashboard. At the top a summary of all
//! accounts (requests and errors per second, busy and idle workers, the queue, slow requests
//! in the last minute) and charts of plexer's last 15 minutes; then one row per account
//! (state, rate, p50/p99, busy/max, queue, errors, memory), sorted, filtered and paged by the
//! server (`&sort=COL&desc&q=TEXT&page=N`, [`super::view`]) so that 10,000 accounts cost one
//! page; then the account files refused. `&account=NAME` is one account's page: its charts,
//! every field of the report, and with `&full` its workers. The last slow requests, with their dumps, follow the table.
//!
//! No external assets, and readable without JavaScript: links sort and page, a form filters,
//! and `<noscript>` refreshes every 5 s. The inline script only makes it quicker: it sorts and
//! filters the rows in place and refreshes keeping what was typed.
//!
//! Built from [`super::report`]'s JSON alone. Everything written is HTML-escaped, and what
//! goes into a link is percent-encoded first: account names come from files, reasons from
//! errors, the filter from the query string.

use serde_json::{Map, Value};

use super::chart::{Series, chart};
use super::view::{self, Column, Row, View};

/// Seconds between reloads of the page.
const REFRESH_SECONDS: u32 = 5;

/// Slow requests shown, newest first: each may carry a 64 KiB dump, and the page reloads
/// every few seconds; `?json` has all those kept.
const SLOW_SHOWN: usize = 10;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1em 0 .4em}\
nav a,.pager a{margin-right:.8em}.summary b{font-size:1.15em;margin-left:.8em}\
.charts{display:flex;flex-wrap:wrap;gap:1em;margin:.8em 0}\
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:.4em;width:22em}\
figcaption{font-weight:600;color:#555}svg{width:100%;height:6em;display:block}\
svg path{fill:none;stroke-width:1.5}svg .axis{stroke:#bbb}svg text{font-size:9px;fill:#666}\
.s1{stroke:#1f5fa8;color:#1f5fa8}.s2{stroke:#c05a00;color:#c05a00}.legend span{margin-right:1em}\
table{border-collapse:collapse}th,td{padding:.2em .6em;text-align:left;vertical-align:top}\
th{font-weight:600;color:#555}th a{color:inherit}tbody tr:nth-child(even){background:#f4f4f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.fields{max-width:60em}.ok{color:#176117}.warn{color:#8a5a00}.bad{color:#a11}form{margin:.6em 0}";

/// Sorting and filtering in place, and the refresh that keeps the filter typed. Sorting in
/// place only when every row is on the page; otherwise the header links ask the server.
const SCRIPT: &str = "(function(){\
var t=document.getElementById('accounts'),f=document.getElementById('filter');\
if(t&&t.dataset.pages==='1'){t.querySelectorAll('th a').forEach(function(a){\
a.addEventListener('click',function(e){e.preventDefault();var th=a.parentNode,\
i=Array.prototype.indexOf.call(th.parentNode.children,th),b=t.tBodies[0],\
d=th.dataset.dir==='asc'?'desc':'asc';th.dataset.dir=d;\
var r=Array.prototype.slice.call(b.rows);r.sort(function(x,y){\
var p=x.cells[i].dataset.v,q=y.cells[i].dataset.v,n=parseFloat(p)-parseFloat(q);\
var c=isNaN(n)?String(p).localeCompare(String(q)):n;return d==='asc'?c:-c});\
r.forEach(function(row){b.appendChild(row)});history.replaceState(null,'',a.href)})})}\
if(t&&f){var q=f.elements.q;q.addEventListener('input',function(){\
var v=q.value.toLowerCase();Array.prototype.forEach.call(t.tBodies[0].rows,function(row){\
row.hidden=v!==''&&row.dataset.account.toLowerCase().indexOf(v)<0})})}\
setInterval(function(){if(f&&document.activeElement===f.elements.q)return;\
var u=new URL(location.href);if(f){if(f.elements.q.value)u.searchParams.set('q',f.elements.q.value);\
else u.searchParams.delete('q')}location.replace(u.toString())},REFRESH_MS)})();";

/// The whole page; `rows` are the accounts' rows when read without the report's accounts
/// (10,000 accounts), otherwise they are read from it.
pub(crate) fn html(report: &Value, rows: Option<&[Row]>, view: &View) -> String {
    let from_report: Vec<Row>;
    let rows = match rows {
        Some(rows) => rows,
        None => {
            from_report = report["accounts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Row::from_report)
                .collect();
            &from_report
        }
    };
    let mut out = head(report, rows.len());
    match view.account.as_deref() {
        Some(name) => account_page(&mut out, report, name),
        None => dashboard(&mut out, report, rows, view),
    }
    out.push_str("</div>\n");
    slow_section(
        &mut out,
        report["slow"].as_array().map_or(&[][..], Vec::as_slice),
    );
    refused_section(
        &mut out,
        report["refused"].as_array().map_or(&[][..], Vec::as_slice),
    );
    let script = SCRIPT.replace("REFRESH_MS", &(REFRESH_SECONDS * 1000).to_string());
    out.push_str(&format!("<script>{script}</script>\n</body></html>\n"));
    out
}

fn head(report: &Value, accounts: usize) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <noscript><meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"></noscript>\
         <title>plexer status</title><style>{STYLE}</style></head><body>\n\
         <h1>plexer status</h1>\n<p>up {} &middot; {accounts} accounts &middot; refreshes every \
         {REFRESH_SECONDS}s</p>\n<nav><a href=\"?html\">dashboard</a><a href=\"?json\">json</a>\
         <a href=\"?openmetrics\">openmetrics</a><a href=\"?\">text</a></nav>\n",
        duration(report["uptime_seconds"].as_u64().unwrap_or(0)),
    )
}

/// The summary, plexer's charts, and a page of the accounts table.
fn dashboard(out: &mut String, report: &Value, rows: &[Row], view: &View) {
    let s = &report["summary"];
    let rate = |key: &str| format!("{:.1}", s[key].as_f64().unwrap_or(0.0));
    let count = |key: &str| s[key].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "<p class=\"summary\" id=\"summary\"><b>{}</b> req/s <b>{}</b> errors/s \
         <b>{}</b> busy <b>{}</b> idle workers <b>{}</b> queued <b>{}</b> in flight \
         <b>{}</b> slow in the last minute</p>\n",
        rate("requests_per_second"),
        rate("errors_per_second"),
        count("busy"),
        count("idle"),
        count("queue"),
        count("in_flight"),
        count("slow"),
    ));
    charts(out, "all", &report["history"], report);
    let page = view::select(rows, view);
    filter_form(out, view);
    accounts_table(out, &page, view);
    pager(out, &page, view);
}

/// Requests per second, p50 and p99, and busy workers, of one history (`samples`).
fn charts(out: &mut String, prefix: &str, samples: &Value, report: &Value) {
    let interval = report["sample_interval_seconds"].as_f64().unwrap_or(10.0);
    let samples = samples.as_array().map_or(&[][..], Vec::as_slice);
    let field = |key: &str, scale: f64| -> Vec<Option<f64>> {
        samples
            .iter()
            .map(|s| s[key].as_f64().map(|v| v * scale))
            .collect()
    };
    let minutes = interval * crate::metrics::SLOTS as f64 / 60.0;
    out.push_str(&format!(
        "<h2>the last {minutes:.0} minutes</h2><div class=\"charts\">"
    ));
    let one = |name, class, points| Series {
        name,
        class,
        points,
    };
    let requests = field("requests", 1.0 / interval);
    let busy = field("busy", 1.0);
    let p50 = field("p50_seconds", 1000.0);
    let p99 = field("p99_seconds", 1000.0);
    out.push_str(&chart(
        &format!("{prefix}-requests"),
        "requests/s",
        "/s",
        &[one("requests/s", "s1", requests)],
    ));
    out.push_str(&chart(
        &format!("{prefix}-latency"),
        "p50 and p99",
        "ms",
        &[one("p50", "s1", p50), one("p99", "s2", p99)],
    ));
    out.push_str(&chart(
        &format!("{prefix}-busy"),
        "busy workers",
        "",
        &[one("busy", "s1", busy)],
    ));
    out.push_str("</div>\n");
}

/// The filter: a GET form, so it works without JavaScript; the sort is kept.
fn filter_form(out: &mut String, view: &View) {
    out.push_str(&format!(
        "<form id=\"filter\" method=\"get\" action=\"\"><input type=\"hidden\" name=\"html\" \
         value=\"\"><input type=\"hidden\" name=\"sort\" value=\"{}\">{}\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"account name contains\" \
         aria-label=\"filter accounts by name\"> <button>filter</button></form>\n",
        view.sort.key(),
        if view.descending {
            "<input type=\"hidden\" name=\"desc\" value=\"\">"
        } else {
            ""
        },
        escape(&view.filter),
    ));
}

/// One page of accounts; each header sorts by its column (again: the other way).
fn accounts_table(out: &mut String, page: &view::Page<'_>, view: &View) {
    out.push_str(&format!(
        "<table id=\"accounts\" data-pages=\"{}\"><thead><tr>",
        page.pages
    ));
    for column in Column::ALL {
        let descending = if view.sort == column {
            !view.descending
        } else {
            column.descending_first()
        };
        let link = view.query(|v| {
            v.sort = column;
            v.descending = descending;
            v.page = 1;
        });
        out.push_str(&format!(
            "<th data-col=\"{}\"><a href=\"?{}\">{}</a></th>",
            column.key(),
            escape(&link),
            column.title()
        ));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in &page.rows {
        account_row(out, row);
    }
    out.push_str("</tbody></table>\n");
}

fn account_row(out: &mut String, row: &Row) {
    let name = escape(&row.account);
    let href = escape(&format!("?html&account={}", view::encode(&row.account)));
    let ms = |s: Option<f64>| s.map(|s| s * 1000.0);
    let busy = match row.max_children {
        Some(max) => format!("{}/{max}", row.busy),
        None => row.busy.to_string(),
    };
    let mib = row.rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0));
    out.push_str(&format!(
        "<tr data-account=\"{name}\"><td data-v=\"{name}\"><a href=\"{href}\">{name}</a></td>\
         <td data-v=\"{state}\" class=\"{class}\">{state}</td>{}{}{}\
         <td class=\"num\" data-v=\"{}\">{busy}</td>{}\
         <td class=\"num\" data-v=\"{}\" title=\"{} since the start\">{}</td>{}</tr>\n",
        number_cell(Some(row.rate), 1, ""),
        number_cell(ms(row.p50_seconds), 0, " ms"),
        number_cell(ms(row.p99_seconds), 0, " ms"),
        row.busy,
        number_cell(Some(row.queue as f64), 0, ""),
        row.errors_recent,
        row.errors,
        row.errors_recent,
        number_cell(mib, 1, ""),
        state = escape(&row.state),
        class = state_class(&row.state),
    ));
}

/// A right-aligned number with `decimals`, its raw value in `data-v` for sorting; a dash
/// for none.
fn number_cell(value: Option<f64>, decimals: usize, unit: &str) -> String {
    match value {
        Some(v) => format!("<td class=\"num\" data-v=\"{v}\">{v:.decimals$}{unit}</td>"),
        None => "<td class=\"num\" data-v=\"-1\">\u{2013}</td>".to_owned(),
    }
}

/// "page 2 of 200 (9,950 accounts)", with links to the neighbours.
fn pager(out: &mut String, page: &view::Page<'_>, view: &View) {
    out.push_str(&format!(
        "<p class=\"pager\" id=\"pager\">page {} of {} ({} accounts) ",
        page.page, page.pages, page.matching
    ));
    for (label, to) in [("previous", page.page - 1), ("next", page.page + 1)] {
        if (1..=page.pages).contains(&to) {
            let link = view.query(|v| v.page = to);
            out.push_str(&format!("<a href=\"?{}\">{label}</a>", escape(&link)));
        }
    }
    out.push_str("</p>\n");
}

/// One account: its charts, its fields as rows, and its workers with `&full`.
fn account_page(out: &mut String, report: &Value, name: &str) {
    let account = report["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["account"].as_str() == Some(name));
    out.push_str(&format!(
        "<h2 id=\"account\">{}</h2><p><a href=\"?html\">all accounts</a> \
         <a href=\"?html&amp;full&amp;account={}\">with every worker</a></p>\n",
        escape(name),
        escape(&view::encode(name)),
    ));
    let Some(Value::Object(fields)) = account else {
        out.push_str("<p class=\"bad\">no such account</p>\n");
        return;
    };
    charts(
        out,
        "account",
        fields.get("history").unwrap_or(&Value::Null),
        report,
    );
    out.push_str("<table class=\"fields\">");
    for (key, value) in fields {
        if matches!(value, Value::Object(_) | Value::Array(_)) || key == "account" {
            continue;
        }
        out.push_str(&format!(
            "<tr><th>{}</th>{}</tr>",
            escape(&key.replace('_', " ")),
            cell(key, value)
        ));
    }
    for (class, count) in fields
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "<tr><th>responses {}</th>{}</tr>",
            escape(class),
            cell(class, count)
        ));
    }
    out.push_str("</table>\n");
    if let Some(workers) = fields.get("workers").and_then(Value::as_array) {
        workers_table(out, workers);
    }
}

/// The account files refused, one row each: their accounts do not run as the files stand.
fn refused_section(out: &mut String, refused: &[Value]) {
    if refused.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<section class=\"refused\"><h2>{} refused account files</h2>\n<table><tr><th>file</th>\
         <th>account</th><th>line</th><th>reason</th></tr>\n",
        refused.len()
    ));
    for file in refused {
        out.push_str(&format!(
            "<tr>{}{}{}<td class=\"bad\">{}</td></tr>\n",
            cell("file", &file["file"]),
            cell("account", &file["account"]),
            cell("line", &file["line"]),
            escape(&shown(&file["reason"]))
        ));
    }
    out.push_str("</table></section>\n");
}

/// The last slow requests, newest first, each dump folded away.
fn slow_section(out: &mut String, slow: &[Value]) {
    if slow.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<section class=\"slow\"><h2>slow requests: the last {} of {} (all in ?json)</h2>\n\
         <table><tr><th>time</th><th>account</th><th>pid</th><th>uri</th><th>seconds</th>\
         <th>wchan</th><th>dump</th></tr>\n",
        slow.len().min(SLOW_SHOWN),
        slow.len()
    ));
    for entry in slow.iter().rev().take(SLOW_SHOWN) {
        let dump = &entry["dump"];
        let said = ["status", "error", "command"]
            .iter()
            .find_map(|key| dump[*key].as_str())
            .unwrap_or("");
        let outcome = dump["outcome"].as_str().unwrap_or("").replace('_', " ");
        out.push_str(&format!(
            "<tr>{}{}{}{}{}{}<td><details><summary>{}</summary><pre>{}\n{}</pre></details>\
             </td></tr>\n",
            cell("time", &entry["time"]),
            cell("account", &entry["account"]),
            cell("pid", &entry["pid"]),
            cell("uri", &entry["uri"]),
            cell("seconds", &entry["seconds"]),
            cell("wchan", &entry["wchan"]),
            escape(&outcome),
            escape(said),
            escape(dump["output"].as_str().unwrap_or(""))
        ));
    }
    out.push_str("</table></section>\n");
}

/// Columns are every key any worker has, in the order first seen.
fn workers_table(out: &mut String, workers: &[Value]) {
    if workers.is_empty() {
        out.push_str("<p class=\"workers\">no workers</p>\n");
        return;
    }
    let mut columns: Vec<&str> = Vec::new();
    for key in workers
        .iter()
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
    {
        if !columns.contains(&key.as_str()) {
            columns.push(key);
        }
    }
    out.push_str("<table class=\"workers\"><tr>");
    for column in &columns {
        out.push_str(&format!("<th>{}</th>", escape(&column.replace('_', " "))));
    }
    out.push_str("</tr>\n");
    for worker in workers {
        out.push_str("<tr>");
        for column in &columns {
            out.push_str(&cell(column, &worker[*column]));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// One `<td>`: states coloured, numbers aligned right.
fn cell(key: &str, value: &Value) -> String {
    let text = escape(&shown(value));
    let class = match value {
        Value::String(state) if key == "state" => state_class(state),
        Value::Number(_) => "num",
        _ => "",
    };
    if class.is_empty() {
        format!("<td>{text}</td>")
    } else {
        format!("<td class=\"{class}\">{text}</td>")
    }
}

/// A value as a person reads it: strings bare, nothing as a dash, fractions to 0.1.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "\u{2013}".to_owned(),
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

/// A fixed class name, never text from the report, so attributes need no escaping.
fn state_class(state: &str) -> &'static str {
    match state.split(':').next().unwrap_or("") {
        "running" | "idle" | "busy" | "external" => "ok",
        "failed" | "not running" => "bad",
        _ => "warn",
    }
}

/// `3725` as `1h 2m 5s`.
fn duration(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    let parts = [
        (days, "d"),
        (hours, "h"),
        (minutes, "m"),
        (seconds % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escapes text for element content and quoted attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
