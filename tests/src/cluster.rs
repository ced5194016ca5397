//! Several `plexer serve` nodes, each in a network namespace of its own ([`Netns`]) and
//! listening on TCP at the namespace's address, behind one nginx in the root namespace that
//! places accounts on nodes by consistent hashing ([`front_site`]): the shape of CONTRACT.md's
//! "Many nodes, one registry", on one machine.
//!
//! A node's config is made here up to the registry: where it listens, its own runtime
//! directory, the secret every node shares (so any node's cookie routes on all), and a `hello`
//! pool whose workers answer `greeting: NODE`, so that every answer says which node served it.
//! Where the accounts come from is the test's: [`NodeSetup::accounts_dir`] writes account files
//! and says `accounts_dir:`; [`NodeSetup::config_extra`] adds any other lines (`registry:`,
//! `node:`).
//!
//! ```no_run
//! use plexer_tests::cluster::{self, Node, NodeSetup};
//! use plexer_tests::{Nginx, Scratch, netns::Netns};
//!
//! let scratch = Scratch::new();
//! let accounts = [("acct1", "{}"), ("acct2", "{}")];
//! let nodes: Vec<Node> = (1..=3)
//!     .map(|i| {
//!         let setup = NodeSetup::new(&format!("node{i}")).accounts_dir(&accounts);
//!         Node::start(&scratch, Netns::create(), &setup)
//!     })
//!     .collect();
//! let front = Nginx::start_with_own_site(&scratch, &cluster::front_site(&nodes));
//! let cookie = nodes[0].cookie("acct1");
//! // http::get(front.port, "/", &[("Cookie", &cookie)]) answers `greeting: nodeN`.
//! ```

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::netns::Netns;
use crate::postgres::Postgres;
use crate::{Running, Scratch, ServeFiles, build, serve, wait};

/// The port every node listens on, at its namespace's address.
pub const NODE_PORT: u16 = 9000;

/// How long a node may take to listen and load its accounts.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(15);

/// What one node runs, beyond what every node has.
#[derive(Clone, Debug, Default)]
pub struct NodeSetup {
    /// The node's name: the greeting of its workers, its directory, its log's name.
    pub name: String,
    /// Top-level config lines (each ending in a newline): `accounts_dir: accounts.d` for
    /// [`accounts_dir`](Self::accounts_dir), or `registry:` and `node:`.
    pub config_extra: String,
    /// Lines of the `pool:` template, indented by two spaces (no `env:`: the node sets it).
    pub pool_extra: String,
    /// Account files written in the node's `accounts.d/`, as (name, text).
    pub accounts: Vec<(String, String)>,
    /// Extra arguments of `plexer` (`--log-format json`, say).
    pub args: Vec<String>,
}

impl NodeSetup {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// The node reads its accounts from `accounts.d/`, holding `accounts` (name, file text).
    pub fn accounts_dir(mut self, accounts: &[(&str, &str)]) -> Self {
        self.config_extra += "accounts_dir: accounts.d\n";
        self.accounts = accounts
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        self
    }

    /// Adds top-level config text (ending in a newline).
    pub fn config(mut self, text: &str) -> Self {
        self.config_extra += text;
        self
    }

    /// The node's config file text, listening at `inside`.
    fn config_text(&self, inside: SocketAddr) -> String {
        format!(
            "listen: tcp:{inside}\nruntime_dir: run\nsecret_file: secret\ndrain_timeout: 5s\n\
             {extra}pool:\n  command: [{hello}]\n  pm: ondemand\n  max_children: 4\n  \
             queue_timeout: 3s\n  env: {{ HELLO_GREETING: {name} }}\n{pool_extra}",
            extra = self.config_extra,
            hello = build::hello().display(),
            name = self.name,
            pool_extra = self.pool_extra,
        )
    }
}

/// A `plexer serve` node in its own namespace. Fields drop in order: the process is killed
/// before its namespace is deleted.
pub struct Node {
    name: String,
    files: ServeFiles,
    args: Vec<String>,
    log: PathBuf,
    /// `None` once [`kill`](Self::kill)ed.
    process: Option<Running>,
    netns: Netns,
}

impl Node {
    /// Writes the node's files in `scratch/NAME/` and starts it in `netns`; returns once it
    /// takes connections from the root namespace and has loaded its accounts.
    pub fn start(scratch: &Scratch, netns: Netns, setup: &NodeSetup) -> Self {
        let inside = SocketAddr::from((netns.inside(), NODE_PORT));
        let accounts: Vec<(&str, &str)> = setup
            .accounts
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let files = ServeFiles::in_dir(
            &scratch.join(&setup.name),
            &setup.config_text(inside),
            &accounts,
        );
        let mut node = Self {
            name: setup.name.clone(),
            files,
            args: setup.args.clone(),
            log: scratch.unique(&setup.name, "log"),
            process: None,
            netns,
        };
        node.start_again();
        node
    }

    /// Starts the node again on the same files, after [`kill`](Self::kill): a node that comes
    /// back.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "{} is running", self.name);
        let mut command = build::serve_command(build::plexer());
        command.arg("-c").arg(&self.files.config).args(&self.args);
        let mut process = self.netns.spawn(
            &format!("plexer serve ({})", self.name),
            &command,
            &self.log,
        );
        let addr = self.addr();
        wait::wait_until(
            &format!("{} listens on {addr}", self.name),
            || {
                process.assert_running();
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            },
            NODE_START_TIMEOUT,
        );
        // It listens before it has read its accounts; the control socket answers after.
        wait::wait_until(
            &format!("{} answers `plexer accounts list`", self.name),
            || {
                process.assert_running();
                self.accounts(&["list"]).code() == Some(0)
            },
            NODE_START_TIMEOUT,
        );
        self.process = Some(process);
    }

    /// SIGKILLs the node's plexer (its workers are left to notice), as a crash would, and
    /// reaps it. Its namespace stays: connections to its address are refused from now on.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("the node is running");
        process.signal(Signal::SIGKILL);
        assert!(
            process.wait_exit(Duration::from_secs(10)).is_some(),
            "{} survived SIGKILL",
            self.name
        );
        // The guard's drop now kills what is left of its process group: its workers.
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the node listens: its namespace's address, [`NODE_PORT`].
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.netns.inside(), NODE_PORT))
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn config_path(&self) -> &Path {
        &self.files.config
    }

    /// The node's directory (its config, secret, accounts.d and runtime directory).
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// A routing cookie header value for `account`, signed with the key every node shares.
    pub fn cookie(&self, account: &str) -> String {
        serve::sign_cookie(&self.files.config, &[account])
    }

    /// A routing cookie for `account` that signs `user` in.
    pub fn cookie_for_user(&self, account: &str, user: &str) -> String {
        serve::sign_cookie(&self.files.config, &[account, "--user", user])
    }

    /// `plexer accounts ARGS… -c CONFIG` through this node's control socket.
    pub fn accounts(&self, args: &[&str]) -> crate::Finished {
        serve::accounts(&self.files.config, args)
    }

    /// `plexer status --json` of this node, or `null`.
    pub fn status_json(&self) -> serde_json::Value {
        serve::status_json(&self.files.config)
    }

    /// Everything the node's plexer wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

/// `count` nodes (`node1`…) in network namespaces of their own, sharing one registry in a
/// PostgreSQL listening on the namespaces' links (checked every 500 ms behind LISTEN), with
/// `accounts` accounts (`acct00`…, each `{}`) written by SQL as an operator would, and seen by
/// every node when this returns. The namespaces are made first: PostgreSQL listens on their
/// root-side addresses.
pub fn registry_nodes(scratch: &Scratch, count: usize, accounts: usize) -> (Postgres, Vec<Node>) {
    let spaces: Vec<Netns> = (0..count).map(|_| Netns::create()).collect();
    let hosts: Vec<_> = spaces.iter().map(Netns::host).collect();
    let links: Vec<_> = spaces.iter().map(Netns::link).collect();
    let postgres = Postgres::start_on_addresses(scratch, &hosts, &links);
    let nodes: Vec<Node> = spaces
        .into_iter()
        .enumerate()
        .map(|(i, netns)| {
            let name = format!("node{}", i + 1);
            let registry = format!(
                "registry: {{ postgres: \"{}\", check_interval: 500ms }}\nnode: {name}\n",
                postgres.url(netns.host())
            );
            Node::start(scratch, netns, &NodeSetup::new(&name).config(&registry))
        })
        .collect();
    postgres.query(&format!(
        "insert into plexer_accounts (name, spec) \
         select 'acct' || lpad(i::text, 2, '0'), '{{}}' from generate_series(0, {}) i",
        accounts.saturating_sub(1)
    ));
    for node in &nodes {
        let running = || {
            let list = node.accounts(&["list", "--json"]);
            let json: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
            let entries = json["data"].as_array().cloned().unwrap_or_default();
            entries.iter().filter(|e| e["state"] != "refused").count() == accounts
        };
        assert!(
            wait::wait_for(running, Duration::from_secs(5)),
            "{} never ran the {accounts} accounts: {}",
            node.name(),
            node.log()
        );
    }
    (postgres, nodes)
}

/// The node (hello's greeting, which each node's pool sets to its name) that answered a GET
/// of `account` with `cookie` through the front listening on `port`; an error for anything but
/// a 200 from that account's worker.
pub fn served_by(port: u16, account: &str, cookie: &str) -> Result<String, String> {
    let response = crate::http::try_get(port, "/which", &[("Cookie", cookie)], REQUEST_TIMEOUT)
        .map_err(|err| format!("GET for {account}: {err}"))?;
    if response.status != 200 {
        return Err(format!(
            "GET for {account}: status {}: {}",
            response.status,
            response.text()
        ));
    }
    let answer = crate::HelloAnswer::parse(&response.body);
    if answer.fields.get("account").map(String::as_str) != Some(account) {
        return Err(format!("GET for {account} answered by {:?}", answer.fields));
    }
    Ok(answer.get("greeting").to_owned())
}

/// Where each of `accounts` (name, cookie) lands through the front on `port` now, asked once
/// each; panics with what went wrong when one is not served.
pub fn placement(
    port: u16,
    accounts: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    accounts
        .iter()
        .map(|(account, cookie)| {
            let node = served_by(port, account, cookie).unwrap_or_else(|err| panic!("{err}"));
            (account.clone(), node)
        })
        .collect()
}

/// How long a front may take to answer one request of [`served_by`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// examples/cluster/haproxy.cfg as shipped (with `bind :80`, for [`crate::haproxy::HaProxy`]),
/// its three example nodes replaced by `nodes`.
pub fn haproxy_front(nodes: &[Node]) -> String {
    let servers: String = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            format!(
                "    server web{} {} proto fcgi check inter 1s fall 1 rise 1\n",
                i + 1,
                node.addr()
            )
        })
        .collect();
    let example = |n: u8| {
        format!("    server web{n} 10.0.0.1{n}:9000 proto fcgi check inter 1s fall 1 rise 1\n")
    };
    let (first, second, third) = (example(1), example(2), example(3));
    crate::examples::render(
        "cluster/haproxy.cfg",
        &[(&first, &servers), (&second, ""), (&third, "")],
    )
}

/// examples/cluster/nginx.conf as shipped (with `listen 80;`, for
/// [`crate::Nginx::start_with_own_site`]), its three example nodes replaced by `nodes`: one
/// upstream with consistent hashing on the routing cookie's account, and quick failover to
/// the next node on the ring when a node is down.
pub fn front_site(nodes: &[Node]) -> String {
    let addrs: Vec<SocketAddr> = nodes.iter().map(Node::addr).collect();
    front_site_for(&addrs)
}

/// [`front_site`] for nodes given by address.
pub fn front_site_for(nodes: &[SocketAddr]) -> String {
    let servers: String = nodes
        .iter()
        .map(|addr| format!("    server {addr} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    let example = |n: u8| format!("    server 10.0.0.1{n}:9000 max_fails=1 fail_timeout=5s;\n");
    let (first, second, third) = (example(1), example(2), example(3));
    crate::examples::render(
        "cluster/nginx.conf",
        &[(&first, &servers), (&second, ""), (&third, "")],
    )
}
