//! `plexer accounts list|add|remove|reload` and `plexer status`: talk to a running
//! `plexer serve` through its control socket (`--control PATH`, or `-c FILE` to take it from
//! the config). A change is on disk and applied when the command reports success.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use plexer_fcgi::Address;
use plexer_server::config::Config;
use plexer_server::control::client;
use plexer_server::control::protocol::{AddAccount, Request, Response};
use plexer_server::slowlog::Entry;
use serde_json::Value;

/// Where the control socket is.
#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// The control socket: a path, or `unix:PATH` as addresses are written in the config.
    #[arg(
        long = "control",
        value_name = "PATH",
        conflicts_with = "config",
        global = true
    )]
    control: Option<PathBuf>,
    /// The config file, to find the control socket in.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

impl ControlArgs {
    fn socket(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.control {
            return control_path(path);
        }
        let Some(file) = &self.config else {
            bail!("say where plexer listens for control: --control PATH or -c CONFIG");
        };
        match Config::control_socket_of(file)? {
            Address::Unix(path) => Ok(path),
            Address::Tcp(_) => bail!("the control socket is a unix socket"),
        }
    }
}

/// `--control`'s value: `/run/plexer/control.sock` or `unix:/run/plexer/control.sock`; a TCP
/// address is refused, since the control socket is a unix socket only.
fn control_path(given: &Path) -> anyhow::Result<PathBuf> {
    let Some(text) = given.to_str() else {
        return Ok(given.to_owned());
    };
    if let Some(path) = text.strip_prefix("unix:") {
        return Ok(PathBuf::from(path));
    }
    if text.starts_with("tcp:") {
        bail!("--control {text}: the control socket is a unix socket; give its path");
    }
    Ok(given.to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct AccountsArgs {
    #[command(flatten)]
    control: ControlArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Every account, its users, its state and its generation.
    List {
        /// Print the JSON the control socket answers.
        #[arg(long)]
        json: bool,
    },
    /// Write NAME's account file and start it; routable when this returns.
    Add {
        name: String,
        /// An app someone else runs, instead of workers plexer runs.
        #[arg(long, value_name = "ADDR")]
        socket: Option<String>,
        /// An environment variable for the workers (repeatable).
        #[arg(long, value_name = "K=V", value_parser = key_value)]
        env: Vec<(String, String)>,
        /// A user name that maps to this account (repeatable).
        #[arg(long = "user", value_name = "NAME")]
        users: Vec<String>,
        /// A pool key, e.g. max_children=8 or pm=static (repeatable).
        #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
    },
    /// Remove NAME's file and account; its requests in flight finish, then its workers stop.
    Remove { name: String },
    /// Start a new generation of NAME from its file (clears a crash loop or an audit stop);
    /// without NAME, reload the config and every account as SIGHUP does.
    Reload { name: Option<String> },
    /// Copy the account files of DIR into the registry's table (needs -c CONFIG with
    /// registry:); names already in the table keep their rows.
    Import { dir: PathBuf },
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Every worker too.
    #[arg(long)]
    full: bool,
    /// Only the last slow requests, each with its worker's wchan, kernel stack and dump, as
    /// the slowlog file has them (with --json, as JSON).
    #[arg(long, conflicts_with = "full")]
    slow: bool,
    /// Every node sharing this node's registry: its accounts, its workers, when it was seen.
    #[arg(long, conflicts_with_all = ["full", "slow"])]
    cluster: bool,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub(crate) fn run(args: AccountsArgs) -> anyhow::Result<ExitCode> {
    if let Action::Import { dir } = &args.action {
        let Some(config) = &args.control.config else {
            bail!("accounts import needs -c CONFIG: the config names the registry's table");
        };
        return super::import::run(config, dir);
    }
    let socket = args.control.socket()?;
    let (request, json) = match args.action {
        Action::List { json } => (Request::List, json),
        Action::Add {
            name,
            socket,
            env,
            users,
            set,
        } => {
            let env: BTreeMap<String, String> = env.into_iter().collect();
            let add = AddAccount {
                name,
                socket,
                env,
                users,
                set,
            };
            (Request::Add(add), false)
        }
        Action::Remove { name } => (Request::Remove { name }, false),
        Action::Reload { name } => (Request::Reload { name }, false),
        Action::Import { .. } => unreachable!("import does not use the control socket"),
    };
    let listing = matches!(request, Request::List);
    let response = client::call(&socket, &request)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&response)?)?;
    } else if listing && response.ok {
        print_list(&mut stdout, response.data.as_ref())?;
    } else {
        return finish(&response);
    }
    Ok(exit_code(&response))
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let socket = args.control.socket()?;
    if args.cluster {
        return super::cluster::status(&socket, args.json);
    }
    let response = client::call(&socket, &Request::Status { full: args.full })?;
    if !response.ok {
        return finish(&response);
    }
    let data = response.data.context("the status answer has no data")?;
    let mut stdout = std::io::stdout().lock();
    if args.slow {
        print_slow(&mut stdout, &data["slow"], args.json)?;
    } else if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&data)?)?;
    } else {
        write!(stdout, "{}", plexer_server::status::text(&data))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The slowlog's entries, oldest first, as the slowlog file has them, or as JSON.
fn print_slow(out: &mut impl Write, slow: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(slow)?)?;
        return Ok(());
    }
    let entries: Vec<Entry> = match slow {
        Value::Null => Vec::new(), // a plexer from before the slowlog
        slow => serde_json::from_value(slow.clone())
            .context("the status answer's slow entries do not read")?,
    };
    if entries.is_empty() {
        writeln!(out, "no slow requests recorded")?;
    }
    for entry in entries {
        write!(out, "{}", entry.text())?;
    }
    Ok(())
}

/// Prints the answer's message: on stdout when it succeeded, on stderr with exit 1 when not.
fn finish(response: &Response) -> anyhow::Result<ExitCode> {
    if response.ok {
        writeln!(std::io::stdout().lock(), "{}", response.message)?;
    } else {
        writeln!(std::io::stderr().lock(), "plexer: {}", response.message)?;
    }
    Ok(exit_code(response))
}

fn exit_code(response: &Response) -> ExitCode {
    if response.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_list(out: &mut impl Write, data: Option<&Value>) -> anyhow::Result<()> {
    let accounts = data.and_then(Value::as_array).cloned().unwrap_or_default();
    writeln!(
        out,
        "{:<24} {:>4} {:<24} {:<20} users",
        "account", "gen", "state", "kind"
    )?;
    let (refused, accounts): (Vec<Value>, Vec<Value>) = accounts
        .into_iter()
        .partition(|account| account["state"] == "refused");
    for account in accounts {
        let users: Vec<&str> = account["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        writeln!(
            out,
            "{:<24} {:>4} {:<24} {:<20} {}",
            account["account"].as_str().unwrap_or("-"),
            account["generation"],
            account["state"].as_str().unwrap_or("-"),
            account["kind"].as_str().unwrap_or("-"),
            users.join(",")
        )?;
    }
    // Refused files last, each with its reason (which names the file and the line).
    for file in refused {
        writeln!(out, "refused: {}", file["reason"].as_str().unwrap_or("-"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_is_a_path_or_a_unix_address() {
        let path = |text: &str| control_path(Path::new(text));
        assert_eq!(
            path("/run/p/control.sock").unwrap(),
            Path::new("/run/p/control.sock")
        );
        assert_eq!(
            path("unix:/run/p/control.sock").unwrap(),
            Path::new("/run/p/control.sock")
        );
        assert_eq!(
            path("unix:run/control.sock").unwrap(),
            Path::new("run/control.sock")
        );
        let tcp = path("tcp:127.0.0.1:9000").unwrap_err().to_string();
        assert!(tcp.contains("is a unix socket"), "{tcp}");
    }
}
