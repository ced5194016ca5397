//! `plexer serve -c FILE [--http ADDR] [--check]`: runs the plexer in the foreground (see
//! plexer-server's `serve` module), or with `--check` validates the config, the keys and every
//! account file and exits, non-zero with the problem named, as `nginx -t` and `php-fpm -t` do.
//! `--http` adds the development HTTP/1.1 front (plexer-server's `http_front`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use plexer_server::access_log::AccessFormat;
use plexer_server::config::AccountsFrom;
use plexer_server::serve::{self, ServeOptions};
use plexer_server::systemd;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The config file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: PathBuf,
    /// Validate the config and the accounts, then exit.
    #[arg(long)]
    check: bool,
    /// Let pools without `user:` run as root, plexer's own user (refused otherwise, as php-fpm
    /// refuses it).
    #[arg(long)]
    allow_root: bool,
    /// Also answer HTTP/1.1 on IP:PORT, for a browser or curl with no web server (development).
    #[arg(long, value_name = "ADDR", value_parser = parse_http_addr)]
    http: Option<SocketAddr>,
}

fn parse_http_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not IP:PORT; write e.g. 127.0.0.1:8080 or [::1]:8080"))
}

pub(crate) fn run(args: ServeArgs, log_format: super::LogFormat) -> anyhow::Result<ExitCode> {
    if args.check {
        return check(&args);
    }
    // Taken while plexer has one thread: it edits the environment.
    let options = ServeOptions {
        http: args.http,
        activated: systemd::take_activated_listener()?,
        allow_root: args.allow_root,
        // The access log's lines take the shape of the rest of the log.
        access_format: match log_format {
            super::LogFormat::Text => AccessFormat::Text,
            super::LogFormat::Json => AccessFormat::Json,
        },
    };
    // One thread relays every request: the work is the workers', and on a small machine a
    // request handed between runtime threads cost more than it gained (docs/benchmarks.md).
    // Workers are forked (then exec'd) from this thread, which lives as long as the process:
    // PR_SET_PDEATHSIG follows the forking thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve::run(&args.config, options))?;
    Ok(ExitCode::SUCCESS)
}

/// `--check`: every refused account file on stderr with its reason, and exit 1 if there is
/// one (a start would serve the others, but a check is asked whether everything is right).
fn check(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let (config, _keys, loaded) = serve::check(&args.config, args.allow_root)?;
    let (dir, entries) = match config.accounts_from() {
        AccountsFrom::Dir(dir) => (dir.display().to_string(), "files"),
        AccountsFrom::Table(registry) => (format!("table {}", registry.table), "rows"),
    };
    let accounts = loaded.registry.len();
    if loaded.refused.is_empty() {
        let config = args.config.display();
        writeln!(
            std::io::stdout().lock(),
            "{config}: ok, {accounts} accounts in {dir}"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stderr = std::io::stderr().lock();
    for refused in &loaded.refused {
        writeln!(stderr, "plexer: refused: {refused}")?;
    }
    writeln!(
        stderr,
        "plexer: {} account {entries} refused, {accounts} accounts ok in {dir}: fix or remove \
         the refused {entries} (a start would serve the others and refuse these)",
        loaded.refused.len()
    )?;
    Ok(ExitCode::FAILURE)
}
