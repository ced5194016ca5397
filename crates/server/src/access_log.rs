//! The access log: one line per request that plexer relayed, in the shape nginx users read
//! (`$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent`, then
//! plexer's own fields), or with `--log-format json` a JSON line shaped like every other line
//! of plexer's JSON log (`target: plexer::access`).
//!
//! Lines gather in a buffer and go out in one write when it holds [`FLUSH_AT`] bytes, every
//! second ([`run_flusher`]) and at exit: the tracing formatter this replaces cost about a fifth
//! of plexer's instructions per request. `access_log: off` writes nothing; `access_log: PATH`
//! appends to a file, reopened on SIGUSR1 like the other logs; by default, stderr.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::AccessLogTo;

/// Bytes gathered before a write.
const FLUSH_AT: usize = 32 * 1024;
/// The longest a line waits in the buffer.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessFormat {
    /// nginx's combined shape, plexer's fields after it.
    #[default]
    Text,
    /// One JSON object per line, like `--log-format json`'s other lines.
    Json,
}

/// Where lines go.
#[derive(Debug, Default)]
enum Sink {
    Off,
    #[default]
    Stderr,
    File {
        path: PathBuf,
        file: File,
    },
}

/// What one line says of a request: what identifies it, never a cookie or a header.
pub(crate) struct Line<'a> {
    pub remote_addr: &'a str,
    pub user: Option<&'a str>,
    pub method: &'a str,
    pub uri: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub account: &'a str,
    pub worker: Option<i32>,
    pub app_status: u32,
    pub micros: u64,
    pub queue_micros: u64,
}

/// The access log of a plexer: its sink, its format and the lines not yet written.
#[derive(Debug, Default)]
pub(crate) struct AccessLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sink: Sink,
    format: AccessFormat,
    buf: Vec<u8>,
    /// The second `stamp` was made for, so a busy second formats its time once.
    second: u64,
    stamp: String,
}

/// The access log's file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("access_log: cannot open {}: {error}; give a path plexer may append to, or off", path.display())]
pub struct AccessLogError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl AccessLog {
    /// Sets where lines go (`access_log:` as the config says) and how they look. What was
    /// gathered goes out first.
    pub(crate) fn configure(
        &self,
        to: &AccessLogTo,
        format: AccessFormat,
    ) -> Result<(), AccessLogError> {
        let sink = match to {
            AccessLogTo::Stderr => Sink::Stderr,
            AccessLogTo::Off => Sink::Off,
            AccessLogTo::File(path) => open(path)?,
        };
        let mut inner = self.lock();
        inner.write_out();
        inner.sink = sink;
        inner.format = format;
        Ok(())
    }

    /// Opens the file again at its path (SIGUSR1, after logrotate moved it).
    pub(crate) fn reopen(&self) -> Result<(), AccessLogError> {
        let path = match &self.lock().sink {
            Sink::File { path, .. } => path.clone(),
            _ => return Ok(()),
        };
        let reopened = open(&path)?;
        let mut inner = self.lock();
        inner.write_out();
        inner.sink = reopened;
        Ok(())
    }

    /// Adds a request's line; writes the buffer out once it is full.
    pub(crate) fn record(&self, line: &Line<'_>) {
        let mut inner = self.lock();
        if matches!(inner.sink, Sink::Off) {
            return;
        }
        inner.refresh_stamp(SystemTime::now());
        let Inner {
            buf, stamp, format, ..
        } = &mut *inner;
        match format {
            AccessFormat::Text => text_line(buf, stamp, line),
            AccessFormat::Json => json_line(buf, stamp, line),
        }
        if inner.buf.len() >= FLUSH_AT {
            inner.write_out();
        }
    }

    /// Writes out what was gathered.
    pub(crate) fn flush(&self) {
        self.lock().write_out();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes the access log out every [`FLUSH_EVERY`], until the task is dropped.
pub(crate) async fn run_flusher(state: std::sync::Arc<crate::live::State>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        state.access_log.flush();
    }
}

impl Inner {
    fn refresh_stamp(&mut self, now: SystemTime) {
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second || self.stamp.is_empty() {
            self.second = second;
            self.stamp = crate::slowlog::utc(now);
        }
    }

    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A log that cannot be written loses its lines, never a request.
        let _ = match &mut self.sink {
            Sink::Off => Ok(()),
            Sink::Stderr => std::io::stderr().lock().write_all(&self.buf),
            Sink::File { file, .. } => file.write_all(&self.buf),
        };
        self.buf.clear();
    }
}

fn open(path: &Path) -> Result<Sink, AccessLogError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| AccessLogError {
            path: path.to_owned(),
            error,
        })?;
    Ok(Sink::File {
        path: path.to_owned(),
        file,
    })
}

/// `127.0.0.1 - alice [2026-12-03T12:00:00Z] "GET /x HTTP/1.1" 200 67 account=bob worker=4242
/// rt=0.000512 qw=0.000010 app_status=0`
fn text_line(buf: &mut Vec<u8>, stamp: &str, line: &Line<'_>) {
    let put = |buf: &mut Vec<u8>, text: &str| quoted_bytes(buf, text);
    put(buf, line.remote_addr);
    buf.extend_from_slice(b" - ");
    put(buf, line.user.unwrap_or("-"));
    let _ = write!(buf, " [{stamp}] \"");
    put(buf, line.method);
    buf.push(b' ');
    put(buf, line.uri);
    buf.push(b' ');
    put(buf, line.protocol);
    let _ = write!(buf, "\" {} {} account=", line.status, line.bytes);
    put(buf, line.account);
    match line.worker {
        Some(pid) => {
            let _ = write!(buf, " worker={pid}");
        }
        None => buf.extend_from_slice(b" worker=-"),
    }
    let _ = writeln!(
        buf,
        " rt={}.{:06} qw={}.{:06} app_status={}",
        line.micros / 1_000_000,
        line.micros % 1_000_000,
        line.queue_micros / 1_000_000,
        line.queue_micros % 1_000_000,
        line.app_status
    );
}

/// Client text as nginx logs it: `"`, `\`, spaces in user names, control and non-ASCII bytes
/// as `\xHH`, so that a line is always one line and its fields stay apart.
fn quoted_bytes(buf: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            buf.push(b);
        } else {
            let _ = write!(buf, "\\x{b:02X}");
        }
    }
}

/// The JSON shape of plexer's other log lines, `target: plexer::access`.
fn json_line(buf: &mut Vec<u8>, stamp: &str, line: &Line<'_>) {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        message: &'static str,
        account: &'a str,
        worker: Option<i32>,
        uri: &'a str,
        method: &'a str,
        remote_addr: &'a str,
        user: Option<&'a str>,
        status: u16,
        bytes: u64,
        app_status: u32,
        micros: u64,
        queue_micros: u64,
    }
    #[derive(serde::Serialize)]
    struct Event<'a> {
        timestamp: &'a str,
        level: &'static str,
        fields: Fields<'a>,
        target: &'static str,
    }
    let event = Event {
        timestamp: stamp,
        level: "INFO",
        fields: Fields {
            message: "request",
            account: line.account,
            worker: line.worker,
            uri: line.uri,
            method: line.method,
            remote_addr: line.remote_addr,
            user: line.user,
            status: line.status,
            bytes: line.bytes,
            app_status: line.app_status,
            micros: line.micros,
            queue_micros: line.queue_micros,
        },
        target: "plexer::access",
    };
    if serde_json::to_writer(&mut *buf, &event).is_ok() {
        buf.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(uri: &'a str, user: Option<&'a str>) -> Line<'a> {
        Line {
            remote_addr: "127.0.0.1",
            user,
            method: "GET",
            uri,
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 67,
            account: "bob",
            worker: Some(4242),
            app_status: 0,
            micros: 1_500_512,
            queue_micros: 10,
        }
    }

    #[test]
    fn a_text_line_reads_like_nginx_and_client_text_cannot_break_it() {
        let mut buf = Vec::new();
        text_line(
            &mut buf,
            "2026-12-03T12:00:00Z",
            &line("/x?a=1", Some("alice")),
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "127.0.0.1 - alice [2026-12-03T12:00:00Z] \"GET /x?a=1 HTTP/1.1\" 200 67 \
             account=bob worker=4242 rt=1.500512 qw=0.000010 app_status=0\n"
        );
        let mut buf = Vec::new();
        text_line(&mut buf, "t", &line("/x\" 500 0\nforged", Some("Zoë b")));
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("/x\\x22\\x20500\\x200\\x0Aforged"), "{text}");
        assert!(text.contains(" - Zo\\xC3\\xAB\\x20b ["), "{text}");
    }

    #[test]
    fn a_json_line_has_the_shape_of_plexers_json_log() {
        let mut buf = Vec::new();
        json_line(&mut buf, "2026-12-03T12:00:00Z", &line("/x\n", None));
        let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(value["target"], "plexer::access");
        assert_eq!(value["fields"]["uri"], "/x\n");
        assert_eq!(value["fields"]["status"], 200);
        assert_eq!(value["fields"]["queue_micros"], 10);
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn lines_gather_until_flushed_and_off_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::default();
        log.configure(&AccessLogTo::File(path.clone()), AccessFormat::Text)
            .unwrap();
        log.record(&line("/one", None));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "gathered, not written"
        );
        log.flush();
        assert!(std::fs::read_to_string(&path).unwrap().contains("/one"));
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.reopen().unwrap();
        log.record(&line("/two", None));
        log.flush();
        assert!(
            std::fs::read_to_string(&path).unwrap().contains("/two"),
            "reopened"
        );
        log.configure(&AccessLogTo::Off, AccessFormat::Text)
            .unwrap();
        log.record(&line("/three", None));
        log.flush();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("/three"));
        let err = log
            .configure(
                &AccessLogTo::File("/nonexistent/dir/access.log".into()),
                AccessFormat::Text,
            )
            .unwrap_err();
        assert!(err.to_string().contains("access_log: cannot open"), "{err}");
    }
}
