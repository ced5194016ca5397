//! `plexer-bench-table [CRITERION_DIR]`: prints the last `cargo bench` run of plexer-bench as
//! a markdown table, ours beside each peer.
//!
//! It reads what criterion saved for each benchmark (`<id>/new/benchmark.json` for the id and
//! throughput, `<id>/new/estimates.json` for the median) under `CRITERION_DIR`, by default
//! where criterion wrote: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
//! workspace's `target/criterion`. In each group, the
//! function `plexer-fcgi` is ours and every other function is a peer (or the `floor`); the last
//! column says how many times more requests per second ours served than that row at the same
//! response size (above 1: ours is faster).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// The function name our benchmarks use.
const OURS: &str = "plexer-fcgi";
/// The function name of the no-codec baseline, listed last.
const FLOOR: &str = "floor";

/// One benchmark's saved result.
#[derive(Debug)]
struct Result {
    group: String,
    function: String,
    parameter: String,
    median_ns: f64,
    elements: Option<f64>,
    bytes: Option<f64>,
}

impl Result {
    fn per_second(&self, per_iteration: Option<f64>) -> Option<f64> {
        per_iteration.map(|n| n * 1e9 / self.median_ns)
    }
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(default_dir);
    let mut results = Vec::new();
    if let Err(err) = collect(&dir, &mut results) {
        eprintln!(
            "plexer-bench-table: cannot read criterion's results under {}: {err}; run `cargo bench -p plexer-bench` first",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    if results.is_empty() {
        eprintln!(
            "plexer-bench-table: no results under {}; run `cargo bench -p plexer-bench` first",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    match print_table(&results, &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-table: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Where criterion writes, in criterion's own order of precedence.
fn default_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).join("criterion"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion"),
    }
}

/// Finds every `new/benchmark.json` under `dir` (baselines live in other folders).
fn collect(dir: &Path, results: &mut Vec<Result>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|name| name == "new") {
            if path.join("benchmark.json").is_file() {
                results.push(read_result(&path)?);
            }
        } else {
            collect(&path, results)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> io::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {err}", path.display()),
        )
    })
}

fn read_result(new: &Path) -> io::Result<Result> {
    let id = read_json(&new.join("benchmark.json"))?;
    let estimates = read_json(&new.join("estimates.json"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let median_ns = estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no median", new.join("estimates.json").display()),
            )
        })?;
    // Criterion saves `{"ElementsAndBytes": {"elements": 1, "bytes": 100}}`, `{"Elements": 1}`
    // or `{"Bytes": 100}`, alone or in a one-element list.
    let mut throughput = &id["throughput"];
    if let Some(first) = throughput.as_array().and_then(|list| list.first()) {
        throughput = first;
    }
    let (elements, bytes) = if let Some(both) = throughput.get("ElementsAndBytes") {
        (both["elements"].as_f64(), both["bytes"].as_f64())
    } else {
        (
            throughput.get("Elements").and_then(Value::as_f64),
            throughput.get("Bytes").and_then(Value::as_f64),
        )
    };
    Ok(Result {
        group: text(&id["group_id"]),
        function: text(&id["function_id"]),
        parameter: text(&id["value_str"]),
        median_ns,
        elements,
        bytes,
    })
}

fn print_table(results: &[Result], out: &mut impl Write) -> io::Result<()> {
    // By group, then by response size; ours first, the peers by name, the floor last.
    let mut rows: BTreeMap<(&str, u64, &str), Vec<&Result>> = BTreeMap::new();
    for result in results {
        let size = result.bytes.unwrap_or_default() as u64;
        rows.entry((&result.group, size, &result.parameter))
            .or_default()
            .push(result);
    }
    writeln!(
        out,
        "| group | implementation | response | median | requests/s | MiB/s | ours ÷ this (requests/s) |"
    )?;
    writeln!(out, "|---|---|---|---:|---:|---:|---:|")?;
    for ((group, _, parameter), mut row) in rows {
        row.sort_by_key(|r| {
            let rank = match r.function.as_str() {
                OURS => 0,
                FLOOR => 2,
                _ => 1,
            };
            (rank, r.function.clone())
        });
        let ours = row.iter().find(|r| r.function == OURS);
        for result in row.iter() {
            let ratio = match ours {
                Some(ours) if result.function != OURS => {
                    format!("{:.2}×", result.median_ns / ours.median_ns)
                }
                _ => "—".to_owned(),
            };
            writeln!(
                out,
                "| {group} | {} | {parameter} | {} | {} | {} | {ratio} |",
                result.function,
                format_time(result.median_ns),
                result
                    .per_second(result.elements)
                    .map_or("—".to_owned(), |n| format!("{n:.0}")),
                result
                    .per_second(result.bytes)
                    .map_or("—".to_owned(), |n| format!(
                        "{:.1}",
                        n / f64::from(1u32 << 20)
                    )),
            )?;
        }
    }
    Ok(())
}

fn format_time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}
