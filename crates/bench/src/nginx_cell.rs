//! One measured cell of the benchmarks behind nginx (`plexer-bench-front`,
//! `plexer-bench-pages`): a fresh nginx in front of one FastCGI socket, a warm-up, then a
//! closed loop of kept-alive HTTP/1.1 clients for a fixed time, every request given a deadline,
//! with the CPU time of the load generator (this process), of nginx and of the server with its
//! workers read from `/proc` around it. And the medians over interleaved rounds that the
//! benchmarks print.
//!
//! A fresh nginx per cell, so that no cell inherits another's upstream connections.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plexer_tests::load::{self, LoadPlan, LoadReport};
use plexer_tests::procfs;

use crate::nginx::Nginx;
use crate::timing::human;

/// What one cell runs.
#[derive(Clone, Debug)]
pub struct CellPlan<'a> {
    /// The nginx binary.
    pub nginx: &'a Path,
    /// The FastCGI socket nginx passes every request to.
    pub upstream: &'a Path,
    /// The `SCRIPT_FILENAME` nginx sends (PHP needs one; the other workers ignore it).
    pub script: &'a Path,
    /// The path every client asks for.
    pub path: &'a str,
    /// nginx's upstream keepalive (`keepalive` in the upstream, `fastcgi_keep_conn on`).
    pub keepalive: bool,
    pub connections: usize,
    /// Not measured: connections opened, workers and caches warm.
    pub warm_up: Duration,
    pub duration: Duration,
    /// A request not answered within this is a timeout.
    pub request_timeout: Duration,
    /// The roots of the process trees whose CPU time is the server's (the server and its
    /// workers, or a relay and the server behind it).
    pub server_pids: Vec<u32>,
}

/// Why a cell has no figures.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    #[error("cannot start nginx under {dir}: {source}")]
    Nginx { dir: PathBuf, source: io::Error },
    #[error(
        "no request was answered during the warm-up (first error: {first_error:?}); \
         nginx's error log:\n{nginx_log}"
    )]
    NoAnswer {
        first_error: Option<String>,
        nginx_log: String,
    },
}

/// Every figure of one cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub per_second: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub timeouts: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Client connections that got at least one answer.
    pub progressed: usize,
    /// CPU time per answered request: the load generator, nginx, the server and its workers.
    pub cpu_per_request: [Option<Duration>; 3],
    /// CPU used by all three over the cell, in cores.
    pub cores: f64,
}

impl Cell {
    /// The CPU time of the whole run (load generator, nginx, server and workers) per answered
    /// request, when every part of it is known.
    pub fn total_cpu_per_request(&self) -> Option<Duration> {
        self.cpu_per_request
            .iter()
            .copied()
            .sum::<Option<Duration>>()
    }
}

/// Runs one cell under `dir` (nginx's files go there).
pub async fn measure(plan: &CellPlan<'_>, dir: &Path) -> Result<Cell, CellError> {
    let nginx = Nginx::start(plan.nginx, dir, plan.upstream, plan.script, plan.keepalive).map_err(
        |source| CellError::Nginx {
            dir: dir.to_owned(),
            source,
        },
    )?;
    let mut load = LoadPlan {
        port: nginx.port,
        path: plan.path.to_owned(),
        headers: Vec::new(),
        connections: plan.connections,
        duration: plan.warm_up,
        request_timeout: plan.request_timeout,
    };
    let warm = load::drive(&load).await;
    if warm.ok() == 0 {
        return Err(CellError::NoAnswer {
            first_error: warm.first_error().map(str::to_owned),
            nginx_log: std::fs::read_to_string(dir.join("error.log")).unwrap_or_default(),
        });
    }
    load.duration = plan.duration;
    let me = std::process::id();
    let cpu = || {
        [
            procfs::cpu_ticks(me).unwrap_or(0),
            procfs::tree_cpu_ticks(nginx.server.pid()),
            plan.server_pids
                .iter()
                .copied()
                .map(procfs::tree_cpu_ticks)
                .sum(),
        ]
    };
    let before = cpu();
    let report = load::drive(&load).await;
    let after = cpu();
    drop(nginx);
    Ok(summarise(&report, before, after))
}

fn summarise(report: &LoadReport, before: [u64; 3], after: [u64; 3]) -> Cell {
    let ok = report.ok();
    let spent: [Duration; 3] =
        std::array::from_fn(|i| procfs::ticks_to_duration(after[i].saturating_sub(before[i])));
    let per_request = |d: Duration| (ok > 0).then(|| d.div_f64(ok as f64));
    Cell {
        per_second: report.per_second(),
        p50: report.latency(0.5),
        p99: report.latency(0.99),
        timeouts: report.timeouts(),
        errors: report.errors(),
        first_error: report.first_error().map(str::to_owned),
        progressed: report.progressed(),
        cpu_per_request: spent.map(per_request),
        cores: spent.iter().sum::<Duration>().as_secs_f64() / report.elapsed.as_secs_f64(),
    }
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median<T: Copy + PartialOrd + Into<f64>>(values: impl Iterator<Item = T>) -> Option<f64> {
    let mut v: Vec<f64> = values.map(Into::into).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median of the durations that are known.
pub fn median_duration(values: impl Iterator<Item = Option<Duration>>) -> Option<Duration> {
    median(values.flatten().map(|d| d.as_secs_f64())).map(Duration::from_secs_f64)
}

/// The medians over the rounds of one setup with one keepalive setting.
#[derive(Clone, Copy, Debug)]
pub struct Medians {
    pub per_second: Option<f64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Medians {
    pub fn of<'a>(cells: impl Iterator<Item = &'a Cell> + Clone) -> Self {
        Self {
            per_second: median(cells.clone().map(|c| c.per_second)),
            p50: median_duration(cells.clone().map(|c| c.p50)),
            p99: median_duration(cells.map(|c| c.p99)),
        }
    }
}

/// The head of the table of cells that the benchmarks behind nginx print: one row per setup
/// and upstream keepalive setting, medians over the rounds.
pub const TABLE_HEAD: &str = "| setup | upstream keepalive | requests/s | each round | p50 | p99 \
     | timeouts | errors | clients served (fewest in a round) | CPU per request: load generator \
     / nginx / server + workers | CPU used (cores) |\n\
     |---|---|---:|---|---:|---:|---:|---:|---:|---|---:|";

/// One row of [`TABLE_HEAD`]'s table: `cells` are one setup's, one per round, with
/// `connections` clients each.
pub fn table_row(label: &str, keepalive: bool, cells: &[&Cell], connections: usize) -> String {
    let m = Medians::of(cells.iter().copied());
    let rounds: Vec<String> = cells
        .iter()
        .map(|c| format!("{:.0}", c.per_second))
        .collect();
    let cpu: Vec<String> = (0..3)
        .map(|i| or_dash(median_duration(cells.iter().map(|c| c.cpu_per_request[i]))))
        .collect();
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {}/{connections} | {} | {} |",
        on_off(keepalive),
        m.per_second.map_or("—".into(), |r| format!("{r:.0}")),
        rounds.join(" / "),
        or_dash(m.p50),
        or_dash(m.p99),
        cells.iter().map(|c| c.timeouts).sum::<u64>(),
        cells.iter().map(|c| c.errors).sum::<u64>(),
        cells.iter().map(|c| c.progressed).min().unwrap_or(0),
        cpu.join(" / "),
        median(cells.iter().map(|c| c.cores)).map_or("—".into(), |c| format!("{c:.2}")),
    )
}

/// `on` or `off`, as the tables print nginx's upstream keepalive.
pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn or_dash(d: Option<Duration>) -> String {
    d.map_or("—".into(), human)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), Some(2.5));
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median(std::iter::empty::<f64>()), None);
    }

    #[test]
    fn cpu_per_request_is_the_ticks_spent_over_the_answers() {
        let report = LoadReport {
            connections: vec![load::ConnectionTally {
                ok: 100,
                latencies: vec![Duration::from_millis(1); 100],
                ..Default::default()
            }],
            elapsed: Duration::from_secs(1),
        };
        // 10 ticks of 10 ms over 100 answers: 1 ms each.
        let cell = summarise(&report, [0, 5, 20], [10, 15, 40]);
        assert_eq!(
            cell.cpu_per_request,
            [
                Some(Duration::from_millis(1)),
                Some(Duration::from_millis(1)),
                Some(Duration::from_millis(2))
            ]
        );
        assert_eq!(cell.total_cpu_per_request(), Some(Duration::from_millis(4)));
        assert!((cell.cores - 0.4).abs() < 1e-9, "{}", cell.cores);
    }
}
