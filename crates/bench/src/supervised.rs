//! plexer's supervisor as the supervisor benchmark drives it: pools of `hello` on private
//! per-worker sockets, one request per lease with the `fastcgi-client` crate (as the plexer
//! will relay it), and a guard that kills the workers if the benchmark fails before draining.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use plexer_prefork::pool::{Outcome, PoolSettings, WorkerState};
use plexer_prefork::spawn::WorkerCommand;
use plexer_prefork::supervisor::{PoolHandle, Sockets, Supervisor};

use crate::fcgi_get;

/// How long a lease or a request may take before the benchmark gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool of hello workers; its workers are killed on drop unless it was drained.
pub struct HelloPool {
    pool: PoolHandle,
}

impl HelloPool {
    /// Adds a pool named `name`, its worker sockets in `dir/name`.
    pub fn start(
        supervisor: &Supervisor,
        hello: &Path,
        dir: &Path,
        name: &str,
        settings: PoolSettings,
    ) -> io::Result<Self> {
        let command = WorkerCommand {
            program: hello.to_owned(),
            ..WorkerCommand::default()
        };
        let pool = supervisor
            .add_pool(name, settings, command, Sockets::PerWorker(dir.join(name)))
            .map_err(io::Error::other)?;
        Ok(Self { pool })
    }

    pub fn handle(&self) -> &PoolHandle {
        &self.pool
    }

    /// Acquires a worker, sends `GET uri`, releases it as done.
    pub async fn serve(&self, uri: &str) -> io::Result<Vec<u8>> {
        serve(&self.pool, uri).await
    }

    /// Workers that are not stopping.
    pub fn live_workers(&self) -> usize {
        self.pool
            .status()
            .workers
            .iter()
            .filter(|w| !w.state.is_leaving())
            .count()
    }

    /// Pids of the workers that are idle.
    pub fn idle_pids(&self) -> Vec<nix::unistd::Pid> {
        self.pool
            .status()
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Idle)
            .filter_map(|w| w.pid)
            .collect()
    }

    /// Pids of every worker that has a process.
    pub fn pids(&self) -> Vec<nix::unistd::Pid> {
        self.pool
            .status()
            .workers
            .iter()
            .filter_map(|w| w.pid)
            .collect()
    }

    /// Stops the pool and waits (bounded) for its last worker to exit.
    pub async fn drain(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(15),
            self.pool.drain(Duration::from_secs(5)),
        )
        .await;
    }
}

impl Drop for HelloPool {
    fn drop(&mut self) {
        for pid in self.pids() {
            // Each worker leads its own process group; after a drain there are none left.
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

/// Acquires a worker of `pool`, sends `GET uri`, releases it as done (or broken on error).
pub async fn serve(pool: &PoolHandle, uri: &str) -> io::Result<Vec<u8>> {
    let lease = tokio::time::timeout(REQUEST_TIMEOUT, pool.acquire())
        .await
        .map_err(|_| io::Error::other("no worker within the timeout"))?
        .map_err(|refusal| io::Error::other(format!("the pool refused: {refusal:?}")))?;
    let answer = tokio::time::timeout(
        REQUEST_TIMEOUT,
        fcgi_get::get(lease.socket(), uri, &PathBuf::from("/hello")),
    )
    .await
    .map_err(|_| io::Error::other("hello did not answer within the timeout"))?;
    match answer {
        Ok(stdout) => {
            lease.release(Outcome::Done);
            Ok(stdout)
        }
        Err(err) => {
            lease.release(Outcome::Broken);
            Err(err)
        }
    }
}

/// Polls `cond` every 5 ms until it holds, for at most `timeout`.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> io::Result<()> {
    let started = Instant::now();
    while !cond() {
        if started.elapsed() > timeout {
            return Err(io::Error::other(format!(
                "timed out after {timeout:?} waiting until {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
