//! `plexer audit-fds`: the fork-safety audit as a command. Prints every open descriptor of a
//! process, classified, and exits 1 when one is a database handle that a fork would share.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use nix::unistd::Pid;
use plexer_prefork::audit::{AuditPolicy, TcpEndpoint, audit_process};

#[derive(Debug, Args)]
pub(crate) struct AuditFdsArgs {
    /// The process to audit (default: this one).
    #[arg(long)]
    pid: Option<i32>,
    /// Also counts connections to this endpoint as database handles (repeatable): a port
    /// (6432) or an address (10.0.0.5:6432).
    #[arg(long = "database", value_name = "ENDPOINT")]
    databases: Vec<TcpEndpoint>,
}

pub(crate) fn run(args: AuditFdsArgs) -> anyhow::Result<ExitCode> {
    let policy = AuditPolicy::new().declaring(&args.databases);
    let report = audit_process(args.pid.map(Pid::from_raw), &policy)?;
    write!(std::io::stdout().lock(), "{report}")?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
