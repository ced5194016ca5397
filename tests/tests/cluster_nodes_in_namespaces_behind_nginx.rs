//! Three `plexer serve` nodes, each in a network namespace of its own and each with the same
//! accounts (in an accounts_dir of its own, until the registry lives in PostgreSQL), behind one
//! nginx that places accounts on nodes by consistent hashing of the routing cookie's account:
//! an account's requests always reach the same node, whatever its cookie; the accounts spread
//! over every node; and when a node is SIGKILLed under load its accounts are served by the
//! others within seconds, no other account moves, and only requests in flight on it may fail.
//! The PostgreSQL the registry will live in answers each namespace on its own link only, and
//! again after it was stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use plexer_tests::cluster::{self, Node, NodeSetup};
use plexer_tests::netns::Netns;
use plexer_tests::postgres::Postgres;
use plexer_tests::{HelloAnswer, Nginx, Scratch, http, run, tools};

const NODES: usize = 3;
/// Enough that, wherever the hash puts the nodes' addresses, every node gets one: a node left
/// out has odds of about 3 × (2/3)^24 < 1/5000.
const ACCOUNTS: usize = 24;
/// How long the front may take to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The nodes, nginx in front, and a cookie per account. Fields drop in order: nginx, then the
/// nodes (each killed before its namespace goes), then the directory holding their logs.
struct Cluster {
    front: Nginx,
    nodes: Vec<Node>,
    /// (account, its routing cookie)
    accounts: Vec<(String, String)>,
    _scratch: Scratch,
}

impl Cluster {
    fn start() -> Self {
        let scratch = Scratch::new();
        let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i:02}")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "{}")).collect();
        let nodes: Vec<Node> = (1..=NODES)
            .map(|i| {
                let setup = NodeSetup::new(&format!("node{i}")).accounts_dir(&files);
                Node::start(&scratch, Netns::create(), &setup)
            })
            .collect();
        let front = Nginx::start_with_own_site(&scratch, &cluster::front_site(&nodes));
        let accounts = names
            .iter()
            .map(|name| (name.clone(), nodes[0].cookie(name)))
            .collect();
        Self {
            front,
            nodes,
            accounts,
            _scratch: scratch,
        }
    }

    /// The node that served `account`'s GET through the front, or what went wrong.
    fn node_of(&self, account: &str, cookie: &str) -> Result<String, String> {
        served_by(self.front.port, account, cookie)
    }

    /// Where each account lands now, asked once each.
    fn placement(&self) -> BTreeMap<String, String> {
        self.accounts
            .iter()
            .map(|(account, cookie)| {
                let node = self
                    .node_of(account, cookie)
                    .unwrap_or_else(|err| panic!("{err}"));
                (account.clone(), node)
            })
            .collect()
    }
}

/// The node (hello's greeting) that answered a GET of `account` with `cookie` through nginx
/// on `port`; an error for anything but a 200 from that account's worker.
fn served_by(port: u16, account: &str, cookie: &str) -> Result<String, String> {
    let response = http::try_get(port, "/which", &[("Cookie", cookie)], REQUEST_TIMEOUT)
        .map_err(|err| format!("GET for {account}: {err}"))?;
    if response.status != 200 {
        return Err(format!(
            "GET for {account}: status {}: {}",
            response.status,
            response.text()
        ));
    }
    let answer = HelloAnswer::parse(&response.body);
    if answer.fields.get("account").map(String::as_str) != Some(account) {
        return Err(format!("GET for {account} answered by {:?}", answer.fields));
    }
    Ok(answer.get("greeting").to_owned())
}

#[test]
fn each_account_stays_on_one_node_whatever_its_cookie_and_every_node_gets_some() {
    let cluster = Cluster::start();
    let placement = cluster.placement();
    for (account, cookie) in &cluster.accounts {
        // Cookies signed for users of the account differ in every part but the account.
        let for_users: Vec<String> = ["ann", "bo"]
            .iter()
            .map(|user| cluster.nodes[1].cookie_for_user(account, user))
            .collect();
        for round in 0..3 {
            for cookie in std::iter::once(cookie).chain(&for_users) {
                let node = cluster.node_of(account, cookie).unwrap();
                assert_eq!(node, placement[account], "{account}, round {round}");
            }
        }
    }
    let used: BTreeSet<&String> = placement.values().collect();
    let all: BTreeSet<String> = cluster.nodes.iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(
        used,
        all.iter().collect(),
        "accounts on each node: {placement:?}"
    );
}

/// One request of the load: which account, when it started and ended (since the load's
/// start), and which node served it.
struct Sample {
    account: String,
    started: Duration,
    ended: Duration,
    served: Result<String, String>,
}

/// How long the load runs before the kill, and after it.
const BEFORE_KILL: Duration = Duration::from_millis(1500);
const AFTER_KILL: Duration = Duration::from_secs(5);
/// Clients, each with at most one request in flight.
const CLIENTS: usize = 4;
/// A bound on each client's requests, whatever the timing.
const MAX_REQUESTS_PER_CLIENT: usize = 5000;
/// How soon after the kill each of the killed node's accounts must be served elsewhere.
const MOVED_WITHIN: Duration = Duration::from_secs(3);

/// Each client walks through the accounts from its own offset, one request after another,
/// until `stop` (since `start`) or its request bound.
fn load(cluster: &Cluster, start: Instant, stop: Duration) -> Vec<thread::JoinHandle<Vec<Sample>>> {
    let accounts = Arc::new(cluster.accounts.clone());
    (0..CLIENTS)
        .map(|client| {
            let accounts = Arc::clone(&accounts);
            let port = cluster.front.port;
            thread::spawn(move || {
                let mut samples = Vec::new();
                let walk = accounts.iter().cycle().skip(client * ACCOUNTS / CLIENTS);
                for (account, cookie) in walk.take(MAX_REQUESTS_PER_CLIENT) {
                    let started = start.elapsed();
                    if started >= stop {
                        break;
                    }
                    let served = served_by(port, account, cookie);
                    samples.push(Sample {
                        account: account.clone(),
                        started,
                        ended: start.elapsed(),
                        served,
                    });
                }
                samples
            })
        })
        .collect()
}

#[test]
fn a_killed_nodes_accounts_move_to_the_others_within_seconds_and_no_other_account_moves() {
    let mut cluster = Cluster::start();
    let placement = cluster.placement();
    let victim = placement[&cluster.accounts[0].0].clone();
    let victim_index = cluster
        .nodes
        .iter()
        .position(|node| node.name() == victim)
        .unwrap();

    let start = Instant::now();
    let clients = load(&cluster, start, BEFORE_KILL + AFTER_KILL);
    thread::sleep(BEFORE_KILL);
    let kill_sent = start.elapsed();
    cluster.nodes[victim_index].kill();
    let killed = start.elapsed();
    let samples: Vec<Sample> = clients
        .into_iter()
        .flat_map(|client| client.join().expect("a load client"))
        .collect();

    let on_victim = |account: &str| placement[account] == victim;
    let failures: Vec<&Sample> = samples.iter().filter(|s| s.served.is_err()).collect();
    eprintln!(
        "{} requests, {} failed; {victim} (killed between {kill_sent:?} and {killed:?}) held {} \
         of {ACCOUNTS} accounts",
        samples.len(),
        failures.len(),
        placement.values().filter(|node| **node == victim).count()
    );
    // Only a request in flight on the killed node may fail: one per client at most, of the
    // killed node's accounts, started before the node was gone.
    assert!(failures.len() <= CLIENTS, "too many failed requests");
    for failure in &failures {
        assert!(
            on_victim(&failure.account) && failure.started < killed,
            "a request that was not in flight on {victim} failed ({:?}..{:?}): {:?}",
            failure.started,
            failure.ended,
            failure.served
        );
    }

    let mut moved_to: BTreeMap<&str, &str> = BTreeMap::new();
    let mut first_after_kill: BTreeMap<&str, Duration> = BTreeMap::new();
    for sample in &samples {
        let Ok(node) = &sample.served else { continue };
        let account = sample.account.as_str();
        if !on_victim(account) {
            assert_eq!(
                node, &placement[account],
                "{account} moved, at {:?}",
                sample.started
            );
        } else if sample.ended < kill_sent {
            assert_eq!(node, &victim, "{account} moved before the kill");
        } else if sample.started > killed {
            assert_ne!(node, &victim, "{account} served by the killed node");
            // Every request after the kill goes to the same survivor: the next on the ring.
            let first = moved_to.entry(account).or_insert(node);
            assert_eq!(first, node, "{account} moved twice");
            first_after_kill.entry(account).or_insert(sample.ended);
        }
    }
    for (account, node) in &placement {
        if *node == victim {
            let served = first_after_kill
                .get(account.as_str())
                .unwrap_or_else(|| panic!("{account} of {victim} was never served after the kill"));
            assert!(
                *served - killed <= MOVED_WITHIN,
                "{account} took {:?} to be served elsewhere",
                *served - killed
            );
        }
    }
    let survivors: BTreeSet<&str> = moved_to.values().copied().collect();
    eprintln!("{victim}'s accounts moved to {survivors:?}: {moved_to:?}");
}

/// `select 1` by psql inside `netns`, connecting to `host`:`port`: its output, or psql's error.
fn psql_from(netns: &Netns, host: std::net::Ipv4Addr, port: u16) -> Result<String, String> {
    let mut psql = netns.command(tools::require("psql", "postgresql-client"));
    psql.env("PGCONNECT_TIMEOUT", "2")
        .arg("-h")
        .arg(host.to_string())
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-At", "-c", "select 1"]);
    let finished = run(&mut psql, b"", Duration::from_secs(20));
    if finished.status.success() {
        Ok(finished.stdout_text().trim().to_owned())
    } else {
        Err(finished.stderr_text())
    }
}

#[test]
fn postgres_answers_each_namespace_on_its_own_link_only_and_again_after_a_stop() {
    let scratch = Scratch::new();
    let spaces = [Netns::create(), Netns::create()];
    let mut postgres = Postgres::start_on_addresses(
        &scratch,
        &spaces.each_ref().map(Netns::host),
        &spaces.each_ref().map(Netns::link),
    );
    let port = postgres.port();
    for netns in &spaces {
        assert_eq!(psql_from(netns, netns.host(), port), Ok("1".into()));
    }
    // No route leads out of a namespace but its own link: not to the other's host end, not
    // to the root namespace's loopback.
    let [first, second] = &spaces;
    for host in [second.host(), std::net::Ipv4Addr::LOCALHOST] {
        let refused = psql_from(first, host, port);
        assert!(refused.is_err(), "{} reached {host}", first.name());
    }

    postgres.stop();
    assert!(psql_from(first, first.host(), port).is_err());
    postgres.start_again();
    assert_eq!(psql_from(first, first.host(), port), Ok("1".into()));
    assert_eq!(postgres.query("select 2"), "2");
}
