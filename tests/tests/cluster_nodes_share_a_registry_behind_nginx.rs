//! Three `plexer serve` nodes, each in a network namespace of its own, sharing one registry in
//! PostgreSQL (CONTRACT.md, "Many nodes, one registry"), behind nginx as
//! examples/cluster/nginx.conf ships it: consistent hashing on the routing cookie's account.
//! An account's requests always reach the same node, whatever its cookie, and the accounts
//! spread over every node; 100 accounts added through node 1 are routed through nginx within a
//! second each; edits and removals through node 3 reach all; accounts churn under load with no
//! failed request; PostgreSQL stopped for 10 s under load costs no request, changes are
//! refused meanwhile and accepted after; a node SIGKILLed under load has its accounts served by
//! the others within seconds (only requests in flight on it may fail), and takes them back
//! when it returns. The PostgreSQL answers each namespace on its own link only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use plexer_tests::cluster::{self, Node, served_by};
use plexer_tests::netns::Netns;
use plexer_tests::postgres::Postgres;
use plexer_tests::{Nginx, Scratch, run, tools, wait_for};

const NODES: usize = 3;
/// Enough that, wherever the hash puts the nodes' addresses, every node gets one: a node left
/// out has odds of about 3 × (2/3)^24 < 1/5000.
const ACCOUNTS: usize = 24;
/// How soon a change made through one node must be routed through the front (CONTRACT.md).
const PROPAGATION: Duration = Duration::from_secs(1);

/// The nodes, nginx in front, the registry, and a cookie per account. Fields drop in order:
/// nginx, then the nodes (each killed before its namespace goes), then PostgreSQL, then the
/// directory holding their logs.
struct Cluster {
    front: Nginx,
    nodes: Vec<Node>,
    postgres: Postgres,
    /// (account, its routing cookie)
    accounts: Vec<(String, String)>,
    _scratch: Scratch,
}

impl Cluster {
    /// Three nodes on one table holding `ACCOUNTS` accounts, written by SQL as an operator
    /// would, and seen by every node.
    fn start() -> Self {
        let scratch = Scratch::new();
        let (postgres, nodes) = cluster::registry_nodes(&scratch, NODES, ACCOUNTS);
        let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i:02}")).collect();
        let front = Nginx::start_with_own_site(&scratch, &cluster::front_site(&nodes));
        let accounts = names
            .iter()
            .map(|name| (name.clone(), nodes[0].cookie(name)))
            .collect();
        Self {
            front,
            nodes,
            postgres,
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
        cluster::placement(self.front.port, &self.accounts)
    }
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
fn a_killed_nodes_accounts_move_to_the_others_within_seconds_and_come_back_with_it() {
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

    // The node comes back (reading the table first): once nginx's fail_timeout is over, its
    // accounts go to it again.
    let restarted = Instant::now();
    cluster.nodes[victim_index].start_again();
    for (account, cookie) in &cluster.accounts {
        if placement[account] != victim {
            continue;
        }
        let home = || cluster.node_of(account, cookie).as_ref() == Ok(&victim);
        assert!(
            wait_for(home, Duration::from_secs(15)),
            "{account} never went back to {victim}: {:?}",
            cluster.node_of(account, cookie)
        );
    }
    eprintln!(
        "{victim} took its accounts back {:?} after its restart",
        restarted.elapsed()
    );
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

/// The accounts `node` runs (refused rows left out), by `plexer accounts list --json`.
fn listed(node: &Node) -> Vec<serde_json::Value> {
    let list = node.accounts(&["list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    let entries = json["data"].as_array().cloned().unwrap_or_default();
    entries
        .into_iter()
        .filter(|entry| entry["state"] != "refused")
        .collect()
}

/// What the front answers for `account` (hello's greeting), waited for until `wanted`
/// (`None`: the account is not routed at all); how long that took.
fn until_served(cluster: &Cluster, account: &str, wanted: Option<&str>) -> Duration {
    let cookie = cluster.nodes[0].cookie(account);
    let started = Instant::now();
    let reached = wait_for(
        || {
            served_by(cluster.front.port, account, &cookie)
                .ok()
                .as_deref()
                == wanted
        },
        Duration::from_secs(5),
    );
    assert!(
        reached,
        "{account} never answered {wanted:?} through the front: {:?}",
        served_by(cluster.front.port, account, &cookie)
    );
    started.elapsed()
}

/// The median and the largest of `times`.
fn median_and_max(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

#[test]
fn a_hundred_accounts_added_through_node_one_are_routed_within_a_second_and_node_three_edits_and_removes()
 {
    let cluster = Cluster::start();
    let (one, three) = (&cluster.nodes[0], &cluster.nodes[2]);
    let mut took = Vec::new();
    for i in 0..100 {
        let name = format!("new{i:03}");
        let started = Instant::now();
        one.accounts(&["add", &name]).assert_success();
        // Served by whichever node the front places it on, with that node's greeting.
        let cookie = one.cookie(&name);
        let routed = wait_for(
            || served_by(cluster.front.port, &name, &cookie).is_ok(),
            PROPAGATION * 5,
        );
        assert!(
            routed,
            "{name} was never routed: {:?}",
            served_by(cluster.front.port, &name, &cookie)
        );
        took.push(started.elapsed());
    }
    let (median, max) = median_and_max(&mut took);
    eprintln!("add through node1 to routed through nginx: median {median:?}, max {max:?}");
    assert!(max < PROPAGATION, "an account took {max:?}");

    // Edited by SQL and reloaded through node 3: every node starts the new spec.
    postgres_edit(&cluster, "new007", "edited");
    three.accounts(&["reload", "new007"]).assert_success();
    let edited = until_served(&cluster, "new007", Some("edited"));
    assert!(edited < PROPAGATION, "an edit took {edited:?}");
    // Removed through node 3: no node routes them, whichever holds them.
    for name in ["new001", "new050", "new099"] {
        three.accounts(&["remove", name]).assert_success();
        let gone = until_served(&cluster, name, None);
        assert!(gone < PROPAGATION, "a removal took {gone:?}");
    }
    for node in &cluster.nodes {
        let count = || listed(node).len() == ACCOUNTS + 97;
        assert!(
            wait_for(count, PROPAGATION),
            "{} lists {}",
            node.name(),
            listed(node).len()
        );
    }
}

/// Sets `account`'s spec by SQL, as an operator would, to a greeting of its own.
fn postgres_edit(cluster: &Cluster, account: &str, greeting: &str) {
    cluster.postgres.query(&format!(
        "update plexer_accounts set spec = 'env: {{ HELLO_GREETING: {greeting} }}' \
         where name = '{account}'"
    ));
}

/// A bound on each client's requests in [`load_until`], far above what the clients send
/// before they are stopped: a test checks that no client reached it, so the load spanned
/// what it was meant to.
const LOAD_CAP_PER_CLIENT: usize = 100_000;

/// Requests to the stable accounts through the front until `stop` is set (bounded by
/// `LOAD_CAP_PER_CLIENT` and `limit`); every failure, described.
fn load_until(
    cluster: &Cluster,
    stop: &Arc<AtomicBool>,
    limit: Duration,
) -> Vec<thread::JoinHandle<(usize, Vec<String>)>> {
    let accounts = Arc::new(cluster.accounts.clone());
    (0..CLIENTS)
        .map(|client| {
            let (accounts, stop) = (Arc::clone(&accounts), Arc::clone(stop));
            let port = cluster.front.port;
            thread::spawn(move || {
                let (started, mut served, mut failures) = (Instant::now(), 0, Vec::new());
                let walk = accounts.iter().cycle().skip(client * ACCOUNTS / CLIENTS);
                for (account, cookie) in walk.take(LOAD_CAP_PER_CLIENT) {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > limit {
                        break;
                    }
                    match served_by(port, account, cookie) {
                        Ok(_) => served += 1,
                        Err(err) => failures.push(format!("{:?}: {err}", started.elapsed())),
                    }
                }
                (served, failures)
            })
        })
        .collect()
}

/// Joins the load's clients: requests served, and every failure.
fn finish(clients: Vec<thread::JoinHandle<(usize, Vec<String>)>>) -> (usize, Vec<String>) {
    clients
        .into_iter()
        .map(|client| client.join().expect("a load client"))
        .fold((0, Vec::new()), |(served, mut failures), (s, f)| {
            failures.extend(f);
            (served + s, failures)
        })
}

#[test]
fn accounts_churn_through_every_node_under_load_and_no_request_fails() {
    let cluster = Cluster::start();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load_until(&cluster, &stop, Duration::from_secs(30));
    // Every 300 ms an account is added through one node and an older one removed through
    // another, for 12 rounds.
    let mut changes = 0;
    for round in 0..12 {
        let adder = &cluster.nodes[round % NODES];
        let remover = &cluster.nodes[(round + 1) % NODES];
        adder
            .accounts(&["add", &format!("churn{round}")])
            .assert_success();
        if round >= 2 {
            remover
                .accounts(&["remove", &format!("churn{}", round - 2)])
                .assert_success();
        }
        changes += 1;
        thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let (served, failures) = finish(clients);
    eprintln!(
        "{served} requests during {changes} rounds of churn, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(served > 100, "only {served} requests were sent");
    assert!(
        served < CLIENTS * LOAD_CAP_PER_CLIENT,
        "the load stopped before the churn"
    );
    // Every node ends with the stable accounts and the last two churned ones.
    for node in &cluster.nodes {
        let settled = || listed(node).len() == ACCOUNTS + 2;
        assert!(
            wait_for(settled, PROPAGATION),
            "{} lists {}",
            node.name(),
            listed(node).len()
        );
    }
}

#[test]
fn postgres_stopped_under_load_costs_no_request_and_changes_wait_for_it() {
    let mut cluster = Cluster::start();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load_until(&cluster, &stop, Duration::from_secs(60));
    thread::sleep(Duration::from_millis(500));
    cluster.postgres.stop();
    let stopped = Instant::now();
    // While it is down, a change through any node is refused, saying why.
    let node = &cluster.nodes[1];
    let refused = || {
        let add = node.accounts(&["add", "during"]);
        add.code() == Some(1) && add.stderr_text().contains("unreachable")
    };
    assert!(
        wait_for(refused, Duration::from_secs(5)),
        "{}",
        node.accounts(&["add", "during"])
    );
    let shown = node.accounts(&["add", "during"]);
    eprintln!(
        "refused while PostgreSQL is down: {}",
        shown.stderr_text().trim()
    );
    thread::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed()));
    cluster.postgres.start_again();
    let back = Instant::now();
    // Written before the nodes are connected again (they retry every 5 s at most): no node
    // is listening, so only the whole read after the reconnection brings it.
    cluster.postgres.query(
        "insert into plexer_accounts (name, spec) values \
         ('while_away', 'env: { HELLO_GREETING: read after the reconnection }')",
    );
    // Accepted again once the node has reconnected (it retries every 5 s at most).
    let accepted = || node.accounts(&["add", "after"]).code() == Some(0);
    assert!(
        wait_for(accepted, Duration::from_secs(10)),
        "{}",
        node.log()
    );
    eprintln!(
        "changes accepted {:?} after PostgreSQL came back",
        back.elapsed()
    );
    until_served(&cluster, "after", Some(&placement_of(&cluster, "after")));
    until_served(&cluster, "while_away", Some("read after the reconnection"));
    for node in &cluster.nodes {
        let all = || listed(node).len() == ACCOUNTS + 2;
        assert!(
            wait_for(all, PROPAGATION),
            "{} lists {}",
            node.name(),
            listed(node).len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (served, failures) = finish(clients);
    eprintln!(
        "{served} requests while PostgreSQL was down for 10 s, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert_eq!(
        cluster
            .postgres
            .query("select count(*) from plexer_accounts where name = 'during'"),
        "0"
    );
}

/// The node the front sends `account` to (its greeting), asked until it answers.
fn placement_of(cluster: &Cluster, account: &str) -> String {
    let cookie = cluster.nodes[0].cookie(account);
    let mut last = Err(String::new());
    wait_for(
        || {
            last = served_by(cluster.front.port, account, &cookie);
            last.is_ok()
        },
        Duration::from_secs(5),
    );
    last.unwrap_or_else(|err| panic!("{account} is not routed: {err}"))
}
