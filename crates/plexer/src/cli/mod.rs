//! The command line (CONTRACT.md, "The binary"): one module per subcommand.

mod accounts;
mod audit_fds;
mod cluster;
mod cookie;
mod import;
mod request;
mod serve;
mod spawn;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "plexer",
    version,
    about = "A FastCGI process manager that routes each request \
    by signed cookie to its account's workers"
)]
pub(crate) struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the plexer: route each request by signed cookie to its account's workers.
    Serve(serve::ServeArgs),
    /// Send one request to any FastCGI server and print its CGI response, like cgi-fcgi.
    Request(request::RequestArgs),
    /// Print a process's open descriptors, classified; exit 1 where one is a database handle.
    AuditFds(audit_fds::AuditFdsArgs),
    /// Bind a socket and keep N workers of an app on it, like spawn-fcgi with supervision.
    Spawn(spawn::SpawnArgs),
    /// Make or check a routing cookie value with the configured keys.
    Cookie(cookie::CookieArgs),
    /// Change the live account set of a running plexer: list, add, remove, reload.
    Accounts(accounts::AccountsArgs),
    /// The status page's data from a running plexer.
    Status(accounts::StatusArgs),
}

impl Command {
    /// The subcommand's name, for the prefix of error lines.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Serve(_) => "serve",
            Self::Request(_) => "request",
            Self::AuditFds(_) => "audit-fds",
            Self::Spawn(_) => "spawn",
            Self::Cookie(_) => "cookie",
            Self::Accounts(_) => "accounts",
            Self::Status(_) => "status",
        }
    }
}

pub(crate) fn run(command: Command, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args, log_format),
        Command::Request(args) => request::run(args),
        Command::AuditFds(args) => audit_fds::run(args),
        Command::Spawn(args) => spawn::run(args),
        Command::Cookie(args) => cookie::run(args),
        Command::Accounts(args) => accounts::run(args),
        Command::Status(args) => accounts::status(args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
