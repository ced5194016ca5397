//! Debian's php-fpm as the peer of plexer's supervisor: started in the foreground with its own
//! configuration, log and unix socket under a temporary directory (never a system port), and
//! stopped when the guard is dropped, also when a benchmark fails.
//!
//! The pool settings mirror what the benchmark gives plexer's pool (research/php-fpm.md §1.1
//! for their meanings). Everything else is php-fpm's default, and php.ini is Debian's
//! (`/etc/php/8.2/fpm/php.ini`, OPcache on), as a user would run it.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use plexer_tests::procfs;

/// The line php-fpm logs when its event loop starts.
const READY: &str = "ready to handle connections";
/// How long php-fpm gets to start, and to stop after SIGTERM before SIGKILL.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// php-fpm's `pm` and its limits.
#[derive(Clone, Copy, Debug)]
pub enum FpmPm {
    Static {
        max_children: usize,
    },
    Ondemand {
        max_children: usize,
        /// `pm.process_idle_timeout`, in whole seconds: php-fpm takes no finer unit.
        idle_timeout_s: u64,
    },
    Dynamic {
        start: usize,
        min_spare: usize,
        max_spare: usize,
        max_children: usize,
    },
}

/// The php-fpm binary: `php-fpm8.2` or `php-fpm` on the PATH, else `/usr/sbin/php-fpm*`.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .collect::<Vec<_>>();
    for name in ["php-fpm8.2", "php-fpm"] {
        if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Some(found);
        }
    }
    let mut versioned: Vec<PathBuf> = fs::read_dir("/usr/sbin")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    versioned.sort();
    versioned.pop()
}

/// `PHP 8.2.36 (fpm-fcgi) …`: the first line of `php-fpm -v`.
pub fn version(program: &Path) -> String {
    Command::new(program)
        .arg("-v")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown version".to_owned())
}

/// The PHP script both benchmarks run: `?sleep=MS` waits (`usleep`), then it answers with its
/// pid, as hello does.
pub const SCRIPT: &str = "<?php\n\
    $ms = (int)($_GET['sleep'] ?? 0);\n\
    if ($ms > 0) { usleep($ms * 1000); }\n\
    header('Content-Type: text/plain');\n\
    echo 'pid: ', getmypid(), \"\\n\";\n";

/// A running php-fpm master; stopped (SIGTERM, then SIGKILL to its process group) on drop.
pub struct PhpFpm {
    child: Child,
    pid: Pid,
    socket: PathBuf,
    log: PathBuf,
}

impl std::fmt::Debug for PhpFpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhpFpm")
            .field("pid", &self.pid)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl PhpFpm {
    /// Writes a configuration for one pool named `name` under `dir` (created), starts
    /// `program -F -y CONF -p DIR` (`-R` when root) and waits for php-fpm's "ready" line.
    pub async fn start(program: &Path, dir: &Path, name: &str, pm: FpmPm) -> io::Result<Self> {
        Self::start_with_ini(program, dir, name, pm, &[]).await
    }

    /// [`PhpFpm::start`] with php.ini settings overridden on the command line (`-d NAME=VALUE`
    /// for each of `ini`), as php-cgi takes them.
    pub async fn start_with_ini(
        program: &Path,
        dir: &Path,
        name: &str,
        pm: FpmPm,
        ini: &[String],
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let conf = dir.join(format!("{name}.conf"));
        let root = nix::unistd::geteuid().is_root();
        fs::write(&conf, config(dir, name, &socket, &log, pm, root))?;
        let output = fs::File::create(dir.join(format!("{name}.out")))?;
        let mut command = Command::new(program);
        command
            .arg("-F")
            .arg("-y")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            // Its own process group, so that the guard can stop the master and its children
            // together.
            .process_group(0);
        for setting in ini {
            command.arg("-d").arg(setting);
        }
        if root {
            command.arg("-R");
        }
        let child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let fpm = Self {
            child,
            pid,
            socket,
            log,
        };
        fpm.wait_ready(dir, name).await?;
        Ok(fpm)
    }

    async fn wait_ready(&self, dir: &Path, name: &str) -> io::Result<()> {
        let started = Instant::now();
        loop {
            if self.log().contains(READY) && self.socket.exists() {
                // The line is logged just before the event loop's first wait; give it that.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Ok(());
            }
            let exited = !procfs::running(self.child.id());
            if exited || started.elapsed() > START_TIMEOUT {
                let what = if exited {
                    "exited before it was ready".to_owned()
                } else {
                    format!("was not ready within {START_TIMEOUT:?}")
                };
                let out = fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "php-fpm ({}) {what}; its log:\n{}\nits output:\n{out}",
                    self.pid,
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The master's running children: its workers.
    pub fn workers(&self) -> usize {
        procfs::running_children_of(self.child.id()).len()
    }

    /// Everything php-fpm logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(Some(_)) => true,
            Ok(None) => false,
            // ECHILD: plexer's supervisor in this process (a subreaper reaping with
            // waitpid(-1)) reaped it already.
            Err(_) => !procfs::running(self.child.id()),
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.exited()
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        // SIGTERM: php-fpm terminates its children, reaps them, then exits.
        let _ = kill(self.pid, Signal::SIGTERM);
        if !self.wait_exit(STOP_TIMEOUT) {
            let _ = killpg(self.pid, Signal::SIGKILL);
            self.wait_exit(STOP_TIMEOUT);
        }
        // Anything left in its group (a child whose master was killed) goes too.
        match killpg(self.pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => eprintln!("php-fpm {}: cannot kill its group: {err}", self.pid),
        }
    }
}

fn config(dir: &Path, name: &str, socket: &Path, log: &Path, pm: FpmPm, root: bool) -> String {
    let mut conf = String::new();
    let _ = writeln!(conf, "[global]");
    let _ = writeln!(conf, "pid = {}", dir.join(format!("{name}.pid")).display());
    let _ = writeln!(conf, "error_log = {}", log.display());
    let _ = writeln!(conf, "log_level = notice");
    let _ = writeln!(conf, "daemonize = no");
    let _ = writeln!(conf, "[{name}]");
    let _ = writeln!(conf, "listen = {}", socket.display());
    let _ = writeln!(conf, "listen.mode = 0600");
    if root {
        // Allowed only with -R; the workers then run as the benchmark's user, as hello does.
        let _ = writeln!(conf, "user = root\ngroup = root");
    }
    match pm {
        FpmPm::Static { max_children } => {
            let _ = writeln!(conf, "pm = static");
            let _ = writeln!(conf, "pm.max_children = {max_children}");
        }
        FpmPm::Ondemand {
            max_children,
            idle_timeout_s,
        } => {
            let _ = writeln!(conf, "pm = ondemand");
            let _ = writeln!(conf, "pm.max_children = {max_children}");
            let _ = writeln!(conf, "pm.process_idle_timeout = {idle_timeout_s}s");
        }
        FpmPm::Dynamic {
            start,
            min_spare,
            max_spare,
            max_children,
        } => {
            let _ = writeln!(conf, "pm = dynamic");
            let _ = writeln!(conf, "pm.start_servers = {start}");
            let _ = writeln!(conf, "pm.min_spare_servers = {min_spare}");
            let _ = writeln!(conf, "pm.max_spare_servers = {max_spare}");
            let _ = writeln!(conf, "pm.max_children = {max_children}");
        }
    }
    let _ = writeln!(conf, "pm.max_requests = 0");
    let _ = writeln!(conf, "pm.status_path = /fpm-status");
    conf
}
