//! The status page as one HTML document (`?html`): a table per account, and with `&full` a
//! table of its workers, then the last slow requests with their dumps, then a table of the
//! account files refused, refreshed every 5 seconds, with no external assets.
//!
//! Built from [`super::report`]'s JSON alone: rows and columns are the report's keys, so a
//! field added to the report shows up here too. Everything written, keys included, is
//! HTML-escaped: account names come from config and URIs from requests.

use serde_json::{Map, Value};

/// Seconds between reloads of the page.
const REFRESH_SECONDS: u32 = 5;

/// Slow requests shown, newest first: each may carry a 64 KiB dump, and the page reloads
/// every few seconds; `?json` has all those kept.
const SLOW_SHOWN: usize = 10;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:0 0 .4em}\
nav a{margin-right:.8em}\
.accounts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin-top:1em}\
section{border:1px solid #ccc;border-radius:6px;padding:.8em}\
table{border-collapse:collapse}th,td{padding:.15em .6em;text-align:left;vertical-align:top}\
th{font-weight:600;color:#555}.workers{margin-top:.8em}.workers tr:nth-child(even){background:#f4f4f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#176117}.warn{color:#8a5a00}.bad{color:#a11}";

/// The whole page.
pub(crate) fn html(report: &Value) -> String {
    let accounts = report["accounts"].as_array().map_or(&[][..], Vec::as_slice);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>plexer status</title><style>{STYLE}</style></head><body>\n\
         <h1>plexer status</h1>\n<p>up {} &middot; {} accounts &middot; refreshes every \
         {REFRESH_SECONDS}s</p>\n<nav><a href=\"?html\">html</a><a href=\"?html&amp;full\">\
         html, every worker</a><a href=\"?json\">json</a><a href=\"?openmetrics\">openmetrics</a>\
         <a href=\"?\">text</a></nav>\n<div class=\"accounts\">\n",
        duration(report["uptime_seconds"].as_u64().unwrap_or(0)),
        accounts.len()
    );
    for account in accounts {
        if let Value::Object(fields) = account {
            account_section(&mut out, fields);
        }
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
    out.push_str("</body></html>\n");
    out
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

/// One account: its fields as rows, then its workers (with `&full`) as a table of their own.
fn account_section(out: &mut String, fields: &Map<String, Value>) {
    let name = fields.get("account").and_then(Value::as_str).unwrap_or("");
    out.push_str(&format!("<section><h2>{}</h2>\n<table>", escape(name)));
    for (key, value) in fields {
        if key == "account" || key == "workers" {
            continue;
        }
        out.push_str(&format!(
            "<tr><th>{}</th>{}</tr>",
            escape(&key.replace('_', " ")),
            cell(key, value)
        ));
    }
    out.push_str("</table>\n");
    if let Some(workers) = fields.get("workers").and_then(Value::as_array) {
        workers_table(out, workers);
    }
    out.push_str("</section>\n");
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
fn escape(text: &str) -> String {
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
