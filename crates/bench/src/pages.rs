//! The real pages of `plexer-bench-pages` (issue 15), and how the benchmark checks that they
//! are what it says before it measures them:
//! - a PHP page that renders an HTML table from an array of 3,000 rows, about 2 ms of CPU
//!   (`pages/table.php`); its `?check` reports whether OPcache is on and caching in the
//!   worker that answered, and the page's own CPU time, from `getrusage()`;
//! - Django's hello view under flup (`pages/django_hello.py`), with the notes example's
//!   middleware; its `?check` reports Django's version.
//!
//! Both files are written into the benchmark's temporary directory, so that a run does not
//! depend on where the source tree is; only the Python virtualenv is the repository's.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The PHP page.
pub const TABLE_PHP: &str = include_str!("../pages/table.php");
/// The Django worker.
pub const DJANGO_HELLO: &str = include_str!("../pages/django_hello.py");

/// How long a check request may take: the PHP check renders the page 50 times.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a page's check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the check request failed: {0}")]
    Io(#[from] io::Error),
    #[error("the check answered HTTP status {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the check's answer has no {field:?} line: {body}")]
    Missing { field: &'static str, body: String },
    #[error("the check's answer says {field} is {value:?}: {why}")]
    Wrong {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

/// What the PHP page's `?check` said.
#[derive(Clone, Debug)]
pub struct PhpCheck {
    /// `cgi-fcgi` for php-cgi, `fpm-fcgi` for php-fpm.
    pub sapi: String,
    /// Requests OPcache has served from its cache so far, in the answering worker's cache.
    pub opcache_hits: u64,
    pub page_bytes: u64,
    /// The median CPU time of one page, measured in the worker.
    pub page_cpu: Duration,
}

impl PhpCheck {
    /// Asks the page behind nginx on `port`; fails unless OPcache is on and has cached the
    /// script already (so the benchmark must warm the workers first).
    pub fn ask(port: u16, path: &str) -> Result<Self, CheckError> {
        let fields = check_fields(port, path)?;
        let get = |field: &'static str| {
            fields
                .get(field)
                .cloned()
                .ok_or_else(|| CheckError::Missing {
                    field,
                    body: format!("{fields:?}"),
                })
        };
        let number = |field: &'static str| -> Result<u64, CheckError> {
            let value = get(field)?;
            value.parse().map_err(|_| CheckError::Wrong {
                field,
                value,
                why: "not a whole number",
            })
        };
        let enabled = get("opcache_enabled")?;
        if enabled != "yes" {
            return Err(CheckError::Wrong {
                field: "opcache_enabled",
                value: enabled,
                why: "OPcache must be on for both sides (opcache.enable=1, the opcache module loaded)",
            });
        }
        let hits = number("opcache_hits")?;
        if hits == 0 {
            return Err(CheckError::Wrong {
                field: "opcache_hits",
                value: "0".into(),
                why: "OPcache is on but has not served the page from its cache",
            });
        }
        Ok(Self {
            sapi: get("sapi")?,
            opcache_hits: hits,
            page_bytes: number("page_bytes")?,
            page_cpu: Duration::from_micros(number("page_cpu_us_median")?),
        })
    }
}

/// Asks the Django page behind nginx on `port` for its `?check`: Django's version.
pub fn django_version(port: u16, path: &str) -> Result<String, CheckError> {
    let fields = check_fields(port, path)?;
    fields
        .get("django")
        .cloned()
        .ok_or_else(|| CheckError::Missing {
            field: "django",
            body: format!("{fields:?}"),
        })
}

/// GETs `path` and reads the body's `name: value` lines.
fn check_fields(port: u16, path: &str) -> Result<HashMap<String, String>, CheckError> {
    let (status, body) = get(port, path)?;
    if status != 200 {
        return Err(CheckError::Status { status, body });
    }
    Ok(body
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// One HTTP/1.0 GET to 127.0.0.1:`port`, read to the end: the status and the body.
fn get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(CHECK_TIMEOUT))?;
    stream.set_write_timeout(Some(CHECK_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("no end of the response head in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// The Python of the virtualenv with Django and flup: `$PLEXER_VENV/bin/python`, or `.venv`
/// at the repository's root, where `make deps` (and `make bench`) make it.
pub fn venv_python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("PLEXER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    let ready = python.is_file()
        && Command::new(&python)
            .args(["-c", "import django, flup.server.fcgi_single"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    if ready {
        Ok(python)
    } else {
        Err(format!(
            "{} with Django and flup is missing: `make deps` makes it, or pass --python",
            python.display()
        ))
    }
}
