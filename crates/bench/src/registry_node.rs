//! `plexer serve` as the cluster benchmark runs it: a node whose accounts are in a
//! PostgreSQL table that other nodes share (CONTRACT.md, "Many nodes, one registry"), or,
//! to compare with, in an accounts_dir. Each node has a directory of its own, the same secret
//! as every other (a cookie signed for one verifies on all, as behind a real front), `hello`
//! as every account's app with `pm: ondemand`, and is stopped on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plexer_server::control::client;
use plexer_server::control::protocol::Request as Control;
use plexer_server::cookie::Keys;
use plexer_tests::Postgres;

use crate::guard::Server;

/// Every node's secret: the same, so that a cookie signed for one node routes on another.
const SECRET: &str = "bench-cluster-secret-bench-cluster-secret";

/// The table every node of a benchmark shares.
pub const TABLE: &str = "plexer_accounts";

/// Where a node's accounts are.
pub enum Registry<'a> {
    /// The shared table in `postgres`, as the node `name`.
    Table {
        postgres: &'a Postgres,
        name: &'a str,
    },
    /// `accounts_dir: accounts.d`, with `files` accounts `a1`..=`aN` written before the start.
    Dir { files: usize },
}

/// A running node.
pub struct Node {
    /// Before `dir`: fields drop in order, so the server stops before its directory goes.
    pub server: Server,
    dir: tempfile::TempDir,
    keys: Keys,
    /// When `plexer serve` was spawned, after its directory was written.
    pub spawned_at: Instant,
}

impl Node {
    /// Writes the node's directory and spawns `plexer serve`.
    pub fn spawn(plexer: &Path, hello: &Path, registry: Registry<'_>) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("plexer-bench-node-")
            .tempdir_in(node_base())?;
        let root = dir.path();
        std::fs::write(root.join("secret"), SECRET)?;
        // plexer refuses a secret every user may read.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(root.join("secret"), private)?;
        let accounts = match registry {
            Registry::Table { postgres, name } => format!(
                "node: {name}\nregistry:\n  postgres: \"host={} port={} user=postgres \
                 dbname=postgres\"\n  table: {TABLE}\n  check_interval: 1s\n",
                postgres.socket_dir().display(),
                postgres.port()
            ),
            Registry::Dir { files } => {
                std::fs::create_dir(root.join("accounts.d"))?;
                for i in 1..=files {
                    // What each row of the table holds, so both nodes load the same accounts.
                    std::fs::write(root.join(format!("accounts.d/a{i}.yaml")), "{}")?;
                }
                "accounts_dir: accounts.d\n".to_owned()
            }
        };
        // A short idle_timeout: the propagation benchmark starts a worker for each of its
        // hundreds of accounts, and they need not outlive their first request by much.
        std::fs::write(
            root.join("plexer.yaml"),
            format!(
                "listen: unix:{root}/plexer.sock\n{accounts}runtime_dir: run\n\
                 secret_file: secret\npool:\n  command: [{hello:?}]\n  pm: ondemand\n  \
                 max_children: 1\n  idle_timeout: 5s\n",
                root = root.display(),
                hello = hello.display().to_string(),
            ),
        )?;
        let mut command = plexer_tests::build::serve_command(plexer);
        // Errors only: run as root (--allow-root), a node warns for every account that its
        // workers run as root, and 10,000 such lines would be timed in every start.
        command
            .arg("-c")
            .arg(root.join("plexer.yaml"))
            .env("RUST_LOG", "error");
        let keys = Keys::load(&root.join("secret")).map_err(io::Error::other)?;
        let spawned_at = Instant::now();
        let server = Server::spawn("plexer serve", &mut command, &root.join("plexer.log"))?;
        Ok(Self {
            server,
            dir,
            keys,
            spawned_at,
        })
    }

    /// The control socket (`plexer accounts --control`).
    pub fn control(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    /// The FastCGI socket a web server would connect to.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("plexer.sock")
    }

    /// Waits until the control socket answers and lists `count` accounts or more (0: until it
    /// answers at all); fails with the node's log if it exits first or takes longer than
    /// `within`.
    pub fn wait_for_accounts(&mut self, count: usize, within: Duration) -> io::Result<()> {
        let control = self.control();
        self.server
            .wait_until(&format!("{count} accounts listed"), within, || {
                listed_at(&control).is_some_and(|listed| listed >= count)
            })
    }

    /// The `Cookie` header that routes to `account` on this node, or on any other.
    pub fn cookie(&self, account: &str) -> String {
        crate::routed::cookie(&self.keys, account)
    }

    /// The node's resident memory, from /proc/PID/status.
    pub fn rss_kib(&self) -> Option<u64> {
        plexer_tests::procfs::rss_kib(self.server.pid())
    }
}

/// Where nodes' directories go: tmpfs, as `runtime_dir` is in production (/run/plexer). A node
/// makes a socket directory for every account as it starts; on this machine's ext4 (no
/// journal) each mkdir scans the inodes deleted in the last minutes, so 10,000 of them after a
/// round that deleted 20,000 files took seconds and made the figures measure the disk, not the
/// registry.
fn node_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// How many accounts the control socket at `control` lists; `None` while it does not answer.
fn listed_at(control: &Path) -> Option<usize> {
    client::call(control, &Control::List)
        .ok()
        .and_then(|r| r.data)
        .and_then(|d| d.as_array().map(Vec::len))
}
