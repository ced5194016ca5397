//! The two ways the front benchmark runs plexer as a user would, as processes of the `plexer`
//! binary:
//! - `plexer serve` with one account, `app`, that gets every request (it is the login account,
//!   and requests carry no cookie): nginx → plexer → the account's workers, a hop per request;
//! - `plexer spawn -F N -- APP`: spawn-fcgi's model, nginx connecting to the workers' shared
//!   socket itself, no hop. The periodic fork-safety audit is off (`--audit off`), since
//!   spawn-fcgi has none and this is the baseline without plexer on the request path.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::guard::Server;

/// A running `plexer serve` or `plexer spawn`, and the socket nginx connects to.
#[derive(Debug)]
pub struct PlexerProcess {
    pub server: Server,
    pub socket: PathBuf,
}

/// How a bench's `plexer serve` relays: its workers, `threads:` and `scheduling:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeShape {
    pub workers: usize,
    pub threads: usize,
    /// `scheduling: normal` rather than the default `batch`.
    pub normal_scheduling: bool,
}

impl ServeShape {
    /// `workers` workers, plexer's defaults otherwise.
    pub fn workers(workers: usize) -> Self {
        Self {
            workers,
            threads: 1,
            normal_scheduling: false,
        }
    }

    pub fn threads(self, threads: usize) -> Self {
        Self { threads, ..self }
    }

    pub fn normal_scheduling(self) -> Self {
        Self {
            normal_scheduling: true,
            ..self
        }
    }
}

/// `plexer serve` under `dir` (created), shaped by `shape`: one account whose pool runs
/// `command` with `pm: static` and workers that are never recycled.
pub fn serve(
    plexer: &Path,
    dir: &Path,
    command: &[&Path],
    shape: ServeShape,
    env: &[(&str, &str)],
) -> io::Result<PlexerProcess> {
    let ServeShape {
        workers,
        threads,
        normal_scheduling,
    } = shape;
    let scheduling = if normal_scheduling { "normal" } else { "batch" };
    fs::create_dir_all(dir.join("accounts.d"))?;
    fs::write(dir.join("accounts.d/app.yaml"), "{}\n")?;
    fs::write(
        dir.join("secret"),
        format!("{}\n", "bench-secret-".repeat(4)),
    )?;
    // plexer refuses a secret every user may read.
    fs::set_permissions(
        dir.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let socket = dir.join("plexer.sock");
    let argv: Vec<String> = command
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let mut config = format!(
        "listen: unix:{socket}\nlisten_mode: \"0666\"\naccounts_dir: accounts.d\n\
         runtime_dir: run\nsecret_file: secret\ndrain_timeout: 5s\nlogin: {{ account: app }}\n\
         threads: {threads}\nscheduling: {scheduling}\n\
         pool:\n  command: [{argv}]\n  pm: static\n  max_children: {workers}\n  \
         max_requests: 0\n  queue_timeout: 10s\n  request_timeout: 30s\n",
        socket = socket.display(),
        argv = argv.join(", "),
    );
    if !env.is_empty() {
        config.push_str("  env:\n");
        for (name, value) in env {
            let _ = writeln!(config, "    {name}: {value:?}");
        }
    }
    let config_path = dir.join("plexer.yaml");
    fs::write(&config_path, config)?;
    let mut cmd = plexer_tests::build::serve_command(plexer);
    cmd.arg("-c").arg(&config_path);
    start("plexer serve", cmd, dir, socket)
}

/// `plexer spawn -s dir/app.sock -F workers --audit off -- command`, with `env` added to the
/// environment, which `plexer spawn` passes on to its workers as spawn-fcgi does.
pub fn spawn(
    plexer: &Path,
    dir: &Path,
    command: &[&Path],
    workers: usize,
    env: &[(&str, &str)],
) -> io::Result<PlexerProcess> {
    fs::create_dir_all(dir)?;
    let socket = dir.join("app.sock");
    let mut cmd = Command::new(plexer);
    cmd.arg("spawn")
        .arg("-s")
        .arg(&socket)
        .arg("-F")
        .arg(workers.to_string())
        .args(["--audit", "off", "--"])
        .args(command)
        .envs(env.iter().copied());
    start("plexer spawn", cmd, dir, socket)
}

fn start(name: &str, mut cmd: Command, dir: &Path, socket: PathBuf) -> io::Result<PlexerProcess> {
    let mut server = Server::spawn(
        name,
        &mut cmd,
        &dir.join(format!("{}.log", name.replace(' ', "-"))),
    )?;
    // The socket file appears at bind(), before listen(): connecting is the test of ready.
    server.wait_ready("listening", || UnixStream::connect(&socket).is_ok())?;
    Ok(PlexerProcess { server, socket })
}
