//! What the dashboard shows, decided without I/O: the query (`page`, `sort`, `desc`, `q`,
//! `account`) read into a [`View`], each account of the report read into a [`Row`], and the
//! rows filtered, sorted and cut into a [`Page`]. The server pages so that 10,000 accounts
//! cost one page of HTML, and a browser without JavaScript gets the same table.

use std::cmp::Ordering;

use serde_json::Value;

/// Rows on one page: enough to scan, few enough that the page stays a few tens of KiB.
pub(crate) const PAGE_ROWS: usize = 50;

/// The longest filter kept: account names are short; a longer one matches nothing anyway.
const MAX_FILTER: usize = 128;

/// A column of the accounts table, and what it sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Account,
    State,
    Rate,
    P50,
    P99,
    Busy,
    Queue,
    Errors,
    Memory,
}

impl Column {
    pub(crate) const ALL: [Column; 9] = [
        Column::Account,
        Column::State,
        Column::Rate,
        Column::P50,
        Column::P99,
        Column::Busy,
        Column::Queue,
        Column::Errors,
        Column::Memory,
    ];

    /// The name in `sort=`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Column::Account => "account",
            Column::State => "state",
            Column::Rate => "rate",
            Column::P50 => "p50",
            Column::P99 => "p99",
            Column::Busy => "busy",
            Column::Queue => "queue",
            Column::Errors => "errors",
            Column::Memory => "memory",
        }
    }

    /// The header a person reads.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Column::Account => "account",
            Column::State => "state",
            Column::Rate => "req/s",
            Column::P50 => "p50",
            Column::P99 => "p99",
            Column::Busy => "busy/max",
            Column::Queue => "queue",
            Column::Errors => "errors/min",
            Column::Memory => "memory MiB",
        }
    }

    fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// Names read best A to Z; numbers largest first, where the trouble is.
    pub(crate) fn descending_first(self) -> bool {
        !matches!(self, Column::Account | Column::State)
    }
}

/// The dashboard's query, read from the status page's query string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct View {
    /// 1-based; past the last page shows the last.
    pub(crate) page: usize,
    pub(crate) sort: Column,
    pub(crate) descending: bool,
    /// Accounts whose name contains it (case-insensitive); empty: all.
    pub(crate) filter: String,
    /// One account's page, with its charts.
    pub(crate) account: Option<String>,
}

impl Default for View {
    fn default() -> Self {
        Self {
            page: 1,
            sort: Column::Account,
            descending: false,
            filter: String::new(),
            account: None,
        }
    }
}

impl View {
    /// Reads `page=N&sort=COL&desc&q=TEXT&account=NAME`; what it does not know it leaves at
    /// the default, never an error: the page is for people typing URLs.
    pub(crate) fn parse(query: &str) -> Self {
        let mut view = View::default();
        for part in query.split('&') {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match key {
                "page" => view.page = value.parse().unwrap_or(1).max(1),
                "sort" => view.sort = Column::parse(value).unwrap_or(Column::Account),
                "desc" => view.descending = value != "0",
                "q" => view.filter = decode(value).chars().take(MAX_FILTER).collect(),
                "account" => view.account = Some(decode(value)).filter(|a| !a.is_empty()),
                _ => {}
            }
        }
        view
    }

    /// The query of this view with `change` applied, for a link; percent-encoded.
    pub(crate) fn query(&self, change: impl FnOnce(&mut View)) -> String {
        let mut view = self.clone();
        change(&mut view);
        let mut query = format!("html&sort={}", view.sort.key());
        if view.descending {
            query.push_str("&desc");
        }
        if !view.filter.is_empty() {
            query.push_str("&q=");
            query.push_str(&encode(&view.filter));
        }
        if view.page > 1 {
            query.push_str(&format!("&page={}", view.page));
        }
        query
    }
}

/// One account as the table shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Row {
    pub(crate) account: String,
    pub(crate) state: String,
    /// Requests per second over the last minute.
    pub(crate) rate: f64,
    pub(crate) p50_seconds: Option<f64>,
    pub(crate) p99_seconds: Option<f64>,
    pub(crate) busy: u64,
    /// For the summary.
    pub(crate) idle: u64,
    pub(crate) in_flight: u64,
    pub(crate) max_children: Option<u64>,
    pub(crate) queue: u64,
    /// Errors plexer answered in the last minute, and since the start.
    pub(crate) errors_recent: u64,
    pub(crate) errors: u64,
    pub(crate) rss_bytes: Option<u64>,
}

impl Row {
    /// The row of one account of [`super::report`].
    pub(crate) fn from_report(account: &Value) -> Self {
        let recent = &account["recent"];
        Row {
            account: account["account"].as_str().unwrap_or_default().to_owned(),
            state: account["state"]
                .as_str()
                .unwrap_or("not running")
                .to_owned(),
            rate: recent["requests_per_second"].as_f64().unwrap_or(0.0),
            p50_seconds: recent["p50_seconds"].as_f64(),
            p99_seconds: recent["p99_seconds"].as_f64(),
            busy: account["busy"].as_u64().unwrap_or(0),
            idle: account["idle"].as_u64().unwrap_or(0),
            in_flight: account["in_flight"].as_u64().unwrap_or(0),
            max_children: account["max_children"].as_u64(),
            queue: account["queue"].as_u64().unwrap_or(0),
            errors_recent: recent["errors"].as_u64().unwrap_or(0),
            errors: account["errors"].as_u64().unwrap_or(0),
            rss_bytes: account["rss_bytes"].as_u64(),
        }
    }

    fn compare(&self, other: &Row, column: Column) -> Ordering {
        let number = |a: Option<f64>, b: Option<f64>| {
            // An account with no value sorts below every value.
            a.unwrap_or(-1.0).total_cmp(&b.unwrap_or(-1.0))
        };
        match column {
            Column::Account => self.account.cmp(&other.account),
            Column::State => self.state.cmp(&other.state),
            Column::Rate => self.rate.total_cmp(&other.rate),
            Column::P50 => number(self.p50_seconds, other.p50_seconds),
            Column::P99 => number(self.p99_seconds, other.p99_seconds),
            Column::Busy => self.busy.cmp(&other.busy),
            Column::Queue => self.queue.cmp(&other.queue),
            Column::Errors => {
                (self.errors_recent, self.errors).cmp(&(other.errors_recent, other.errors))
            }
            Column::Memory => self.rss_bytes.cmp(&other.rss_bytes),
        }
    }
}

/// The rows of one page, and where it is among the others.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub(crate) rows: Vec<&'a Row>,
    /// 1-based, within `1..=pages`.
    pub(crate) page: usize,
    pub(crate) pages: usize,
    /// Rows the filter kept, on every page.
    pub(crate) matching: usize,
}

/// The rows `view` asks for: filtered by name, sorted (ties by name, so the order is stable
/// from one refresh to the next), and cut to its page.
pub(crate) fn select<'a>(rows: &'a [Row], view: &View) -> Page<'a> {
    let filter = view.filter.to_lowercase();
    let mut kept: Vec<&Row> = rows
        .iter()
        .filter(|row| filter.is_empty() || row.account.to_lowercase().contains(&filter))
        .collect();
    kept.sort_by(|a, b| {
        let by_column = a.compare(b, view.sort);
        let by_column = if view.descending {
            by_column.reverse()
        } else {
            by_column
        };
        by_column.then_with(|| a.account.cmp(&b.account))
    });
    let matching = kept.len();
    let pages = matching.div_ceil(PAGE_ROWS).max(1);
    let page = view.page.min(pages);
    let rows = kept
        .into_iter()
        .skip((page - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .collect();
    Page {
        rows,
        page,
        pages,
        matching,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is. Bytes that are not UTF-8 become U+FFFD.
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes all but unreserved characters (RFC 3986 §2.3), for a query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
