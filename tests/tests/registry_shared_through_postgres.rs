//! Accounts in a PostgreSQL table that two `plexer serve` nodes share (CONTRACT.md, "Many
//! nodes, one registry"): a change made through one node, or by SQL, reaches the other
//! within a second; a bad row is refused by every node, by name, and the rest serve on; an
//! accounts_dir moves into the table with `plexer accounts import`; every node shows in
//! `plexer status --cluster`. (Nodes in network namespaces behind nginx, and the faults, are
//! tests/tests/cluster_*.rs.)

use std::time::{Duration, Instant};

use plexer_tests::pgbouncer::PgBouncer;
use plexer_tests::postgres::Postgres;
use plexer_tests::{PlexerServe, Scratch, build, wait_for};

/// A node of the registry in `scratch`, named `node`, with `hello` as every account's app.
fn node(scratch: &Scratch, postgres: &Postgres, node: &str) -> PlexerServe {
    let config = format!(
        "listen: unix:{}\nlisten_mode: \"0666\"\nnode: {node}\n\
         registry:\n  postgres: \"host={} port={} user=postgres dbname=postgres\"\n  \
         check_interval: 500ms\n\
         runtime_dir: run\nsecret_file: secret\ndrain_timeout: 5s\n\
         pool:\n  command: [{}]\n  pm: ondemand\n  max_children: 2\n  queue_timeout: 3s\n",
        PlexerServe::socket_in(scratch).display(),
        postgres.socket_dir().display(),
        postgres.port(),
        build::hello().display(),
    );
    PlexerServe::start_with_config(scratch, &config, &[])
}

/// The greeting `account`'s hello answers with through `plexer`, or `None` when the request
/// does not reach that account.
fn greeting(plexer: &PlexerServe, account: &str) -> Option<String> {
    let cookie = plexer.cookie(account);
    let (_, answer) = plexer.get(Some(&cookie), "/");
    (answer.fields.get("account").map(String::as_str) == Some(account))
        .then(|| answer.fields.get("greeting").cloned().unwrap_or_default())
}

/// Waits until `plexer` routes `account` with the greeting `wanted` (`None`: not at all);
/// how long it took.
fn until_greeting(plexer: &PlexerServe, account: &str, wanted: Option<&str>) -> Duration {
    let started = Instant::now();
    let reached = wait_for(
        || greeting(plexer, account).as_deref() == wanted,
        Duration::from_secs(5),
    );
    assert!(
        reached,
        "{account} never answered {wanted:?}: {:?}\n{}",
        greeting(plexer, account),
        plexer.log()
    );
    started.elapsed()
}

fn listed(plexer: &PlexerServe) -> serde_json::Value {
    let list = plexer.accounts(&["list", "--json"]);
    list.assert_success();
    serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap()["data"].clone()
}

struct Cluster {
    postgres: Postgres,
    one: PlexerServe,
    two: PlexerServe,
    _scratches: [Scratch; 3],
}

fn cluster() -> Cluster {
    let (db, a, b) = (Scratch::new(), Scratch::new(), Scratch::new());
    let postgres = Postgres::start(&db);
    let one = node(&a, &postgres, "one");
    let two = node(&b, &postgres, "two");
    Cluster {
        postgres,
        one,
        two,
        _scratches: [db, a, b],
    }
}

#[test]
fn a_change_through_one_node_reaches_the_other_within_a_second() {
    let Cluster {
        postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    let added = one.accounts(&["add", "carol", "--env", "HELLO_GREETING=hi carol"]);
    added.assert_success();
    // Routable on the node that added it when the command returns.
    assert_eq!(greeting(&one, "carol").as_deref(), Some("hi carol"));
    let took = until_greeting(&two, "carol", Some("hi carol"));
    assert!(
        took < Duration::from_secs(1),
        "reached node two after {took:?}"
    );
    let row = postgres.query("select name, spec from plexer_accounts");
    assert!(
        row.starts_with("carol|") && row.contains("hi carol"),
        "{row}"
    );

    // Edited by SQL: both nodes start a new generation with the new spec.
    postgres.query(
        "update plexer_accounts set spec = 'env: { HELLO_GREETING: \"hello again\" }' \
         where name = 'carol'",
    );
    for node in [&one, &two] {
        let took = until_greeting(node, "carol", Some("hello again"));
        assert!(took < Duration::from_secs(1), "an SQL edit took {took:?}");
    }

    // Removed through node two: node one stops routing it too.
    two.accounts(&["remove", "carol"]).assert_success();
    assert_eq!(greeting(&two, "carol"), None);
    let took = until_greeting(&one, "carol", None);
    assert!(took < Duration::from_secs(1), "a removal took {took:?}");
    assert_eq!(postgres.query("select count(*) from plexer_accounts"), "0");

    // A name the table has is refused, whichever node is asked.
    one.accounts(&["add", "dave"]).assert_success();
    let again = two.accounts(&["add", "dave"]);
    assert_eq!(again.code(), Some(1), "{again}");
    assert!(
        again
            .stderr_text()
            .contains("exists in table plexer_accounts"),
        "{again}"
    );
}

#[test]
fn a_bad_row_is_refused_by_every_node_by_name_and_the_rest_serve() {
    let Cluster {
        postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    one.accounts(&["add", "good", "--env", "HELLO_GREETING=fine"])
        .assert_success();
    postgres.query("insert into plexer_accounts (name, spec) values ('broken', 'pm: [')");
    postgres.query("insert into plexer_accounts (name, spec) values ('../evil', '{}')");
    for node in [&one, &two] {
        let refused = || {
            let list = listed(node);
            let names: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|entry| entry["state"] == "refused")
                .map(|entry| entry["file"].as_str().unwrap_or("").to_owned())
                .collect();
            names.len() == 2
        };
        assert!(
            wait_for(refused, Duration::from_secs(3)),
            "{}",
            listed(node)
        );
        let list = listed(node).to_string();
        assert!(list.contains("plexer_accounts/broken"), "{list}");
        assert!(list.contains("bad account name"), "{list}");
        // The row named ../evil is never taken for an account named evil.
        assert_eq!(greeting(node, "evil"), None);
        assert_eq!(greeting(node, "good").as_deref(), Some("fine"));
    }
    // `serve --check` reads the table as a start would, and names the refused rows.
    let mut check = std::process::Command::new(build::plexer());
    check
        .args(["serve", "--check", "--allow-root", "-c"])
        .arg(one.config_path());
    let checked = plexer_tests::run(&mut check, b"", Duration::from_secs(30));
    assert_eq!(checked.code(), Some(1), "{checked}");
    assert!(
        checked.stderr_text().contains("plexer_accounts/broken"),
        "{checked}"
    );
    assert!(
        checked
            .stderr_text()
            .contains("2 account rows refused, 1 accounts ok in table plexer_accounts"),
        "{checked}"
    );
    // A bad spec through `plexer accounts add` is refused before anything is written.
    let bad = one.accounts(&["add", "worse", "--set", "pm=sometimes"]);
    assert_eq!(bad.code(), Some(1), "{bad}");
    assert_eq!(
        postgres.query("select count(*) from plexer_accounts where name = 'worse'"),
        "0"
    );
    // Fixing the row by SQL brings the account up on every node.
    postgres.query("update plexer_accounts set spec = '{}' where name = 'broken'");
    for node in [&one, &two] {
        until_greeting(node, "broken", Some("-")); // hello's greeting when none is set
    }
}

#[test]
fn the_periodic_check_finds_a_change_whose_notification_never_came() {
    let Cluster {
        postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    // As if LISTEN had silently stopped delivering (or a pooler ate the notifications).
    postgres.query("alter table plexer_accounts disable trigger plexer_accounts_notify");
    postgres.query(
        "insert into plexer_accounts (name, spec) values \
         ('quiet', 'env: { HELLO_GREETING: unannounced }')",
    );
    for node in [&one, &two] {
        // check_interval is 500ms.
        let took = until_greeting(node, "quiet", Some("unannounced"));
        assert!(took < Duration::from_secs(2), "found after {took:?}");
    }
    postgres.query("delete from plexer_accounts where name = 'quiet'");
    for node in [&one, &two] {
        until_greeting(node, "quiet", None);
    }
}

#[test]
fn an_accounts_dir_is_imported_and_every_node_shows_in_the_cluster_status() {
    let Cluster {
        postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    let dir = one.dir.join("old-accounts.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ann.yaml"),
        "env: { HELLO_GREETING: from a file }\n",
    )
    .unwrap();
    std::fs::write(dir.join("ben.yaml"), "{}\n").unwrap();
    std::fs::write(dir.join("bad.yaml"), "pm: [\n").unwrap();
    let mut import = std::process::Command::new(build::plexer());
    import
        .args(["accounts", "import"])
        .arg(&dir)
        .arg("-c")
        .arg(one.config_path());
    let imported = plexer_tests::run(&mut import, b"", Duration::from_secs(30));
    // A refused file makes the exit 1, after the others went in.
    assert_eq!(imported.code(), Some(1), "{imported}");
    assert!(
        imported.stdout_text().contains("imported 2 accounts"),
        "{imported}"
    );
    assert!(imported.stderr_text().contains("bad.yaml"), "{imported}");
    assert_eq!(
        postgres.query("select string_agg(name, ',' order by name) from plexer_accounts"),
        "ann,ben"
    );
    until_greeting(&two, "ann", Some("from a file"));
    // Again: the rows are kept as they are.
    let again = plexer_tests::run(&mut import, b"", Duration::from_secs(30));
    assert!(
        again.stdout_text().contains("imported 0 accounts"),
        "{again}"
    );
    assert!(again.stdout_text().contains("kept ann"), "{again}");

    // Both nodes, each with its accounts and the workers that served.
    let status = |plexer: &PlexerServe, json: bool| {
        let mut command = std::process::Command::new(build::plexer());
        command
            .args(["status", "--cluster", "-c"])
            .arg(plexer.config_path());
        if json {
            command.arg("--json");
        }
        plexer_tests::run(&mut command, b"", Duration::from_secs(10))
    };
    let serving_ann = || {
        let shown = status(&two, true);
        let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap_or_default();
        let nodes = json["nodes"].as_array().cloned().unwrap_or_default();
        nodes.len() == 2
            && nodes
                .iter()
                .any(|n| n["node"] == "two" && n["status"]["serving"].to_string().contains("ann"))
    };
    assert!(
        wait_for(serving_ann, Duration::from_secs(5)),
        "{}",
        status(&two, true)
    );
    let text = status(&one, false);
    text.assert_success();
    let text = text.stdout_text();
    assert!(text.contains("one*") && text.contains("two"), "{text}");
}

#[test]
fn a_node_behind_a_transaction_pooler_says_listen_cannot_work_and_follows_the_table_anyway() {
    let (db, node_dir) = (Scratch::new(), Scratch::new());
    let postgres = Postgres::start(&db);
    let pooler = PgBouncer::start_in_transaction_mode(&db, &postgres);
    let config = format!(
        "listen: unix:{}\nlisten_mode: \"0666\"\nnode: pooled\n\
         registry:\n  postgres: \"{}\"\n  check_interval: 500ms\n\
         runtime_dir: run\nsecret_file: secret\ndrain_timeout: 5s\n\
         pool:\n  command: [{}]\n  pm: ondemand\n  max_children: 2\n",
        PlexerServe::socket_in(&node_dir).display(),
        pooler.conninfo(),
        build::hello().display(),
    );
    let node = PlexerServe::start_with_config(&node_dir, &config, &[]);
    // Another client of the pooler takes the server session the node LISTENs on (the only
    // idle one) for 3 s: the node's next check is answered by another server process.
    std::thread::scope(|scope| {
        scope.spawn(|| pooler.query("select pg_sleep(3)"));
        let said = || node.log().contains("LISTEN cannot work on this connection");
        assert!(wait_for(said, Duration::from_secs(10)), "{}", node.log());
    });
    assert!(
        node.log().contains("pool_mode = transaction"),
        "{}",
        node.log()
    );
    // The check of the table's fingerprint brings a row in all the same.
    postgres.query(
        "insert into plexer_accounts (name, spec) values \
         ('pooled', 'env: { HELLO_GREETING: through the pooler }')",
    );
    let took = until_greeting(&node, "pooled", Some("through the pooler"));
    assert!(took < Duration::from_secs(2), "found after {took:?}");
}

#[test]
fn nodes_starting_together_create_the_table_once() {
    let (db, dir) = (Scratch::new(), Scratch::new());
    let postgres = Postgres::start(&db);
    // Four imports at once into a database without the table: each creates the schema when
    // missing, under the advisory lock, as nodes starting together do.
    let config = dir.write(
        "node.yaml",
        format!(
            "listen: unix:{}\nregistry:\n  postgres: \"host={} port={} user=postgres \
             dbname=postgres\"\nruntime_dir: run\nsecret_file: secret\npool:\n  command: [{}]\n",
            dir.join("p.sock").display(),
            postgres.socket_dir().display(),
            postgres.port(),
            build::hello().display(),
        ),
    );
    let imports: Vec<std::process::Child> = (0..4)
        .map(|i| {
            let accounts = dir.join(format!("accounts{i}"));
            std::fs::create_dir_all(&accounts).unwrap();
            std::fs::write(accounts.join(format!("from{i}.yaml")), "{}\n").unwrap();
            std::process::Command::new(build::plexer())
                .args(["accounts", "import"])
                .arg(&accounts)
                .arg("-c")
                .arg(&config)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start plexer accounts import")
        })
        .collect();
    for import in imports {
        let output = import.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        postgres.query("select string_agg(name, ',' order by name) from plexer_accounts"),
        "from0,from1,from2,from3"
    );
    assert_eq!(
        postgres.query(
            "select count(*) from pg_trigger where tgrelid = 'plexer_accounts'::regclass \
             and not tgisinternal"
        ),
        "2"
    );
}

/// The generation `plexer` runs of `account`, by `plexer accounts list --json`.
fn generation(plexer: &PlexerServe, account: &str) -> Option<u64> {
    let list = listed(plexer);
    let entries = list.as_array()?;
    let entry = entries.iter().find(|e| e["account"] == account)?;
    entry["generation"].as_u64()
}

#[test]
fn a_reload_through_one_node_starts_a_new_generation_on_every_node() {
    // Every part bound: one left to `..` would be dropped (PostgreSQL stopped) at once.
    let Cluster {
        postgres: _postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    one.accounts(&["add", "carol"]).assert_success();
    until_greeting(&two, "carol", Some("-"));
    let before = generation(&two, "carol").expect("carol runs on node two");
    // As after an audit stop or a crash loop on node two, cleared from node one.
    one.accounts(&["reload", "carol"]).assert_success();
    let newer = || generation(&two, "carol").is_some_and(|now| now > before);
    assert!(wait_for(newer, Duration::from_secs(2)), "{}", two.log());
    assert_eq!(greeting(&two, "carol").as_deref(), Some("-"));
    // A name with no row is refused, saying so.
    let missing = one.accounts(&["reload", "nobody"]);
    assert_eq!(missing.code(), Some(1), "{missing}");
    assert!(
        missing.stderr_text().contains("no row of that name"),
        "{missing}"
    );
}

#[test]
fn a_change_stuck_behind_an_open_transaction_is_refused_and_never_commits_later() {
    let Cluster {
        postgres,
        one,
        two,
        _scratches: _kept,
    } = cluster();
    one.accounts(&["add", "locked"]).assert_success();
    until_greeting(&two, "locked", Some("-"));
    std::thread::scope(|scope| {
        // An operator's transaction holds the row for 6 s.
        let holder = scope.spawn(|| {
            postgres.query(
                "update plexer_accounts set spec = spec where name = 'locked'; \
                 select pg_sleep(6)",
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let remove = one.accounts(&["remove", "locked"]);
        let took = started.elapsed();
        assert_eq!(remove.code(), Some(1), "{remove}");
        assert!(remove.stderr_text().contains("lock timeout"), "{remove}");
        assert!(took < Duration::from_secs(4), "refused after {took:?}");
        holder.join().unwrap();
    });
    // Nothing was removed when the lock went, and both nodes follow the table as before.
    assert_eq!(
        postgres.query("select count(*) from plexer_accounts where name = 'locked'"),
        "1"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(greeting(&one, "locked").as_deref(), Some("-"));
    one.accounts(&["remove", "locked"]).assert_success();
    until_greeting(&two, "locked", None);
}

#[test]
fn a_node_restarted_while_postgres_is_down_serves_the_accounts_it_had() {
    let Cluster {
        mut postgres,
        one,
        two: _two,
        _scratches: [_db, first, _second],
    } = cluster();
    one.accounts(&["add", "kept", "--env", "HELLO_GREETING=still here"])
        .assert_success();
    assert_eq!(greeting(&one, "kept").as_deref(), Some("still here"));
    // The node keeps what it read in runtime_dir, at its next check (every 500 ms).
    let cache = one.dir.join("run").join("plexer_accounts.rows.json");
    let written = || std::fs::read_to_string(&cache).is_ok_and(|text| text.contains("kept"));
    assert!(wait_for(written, Duration::from_secs(3)), "{}", one.log());
    let config = std::fs::read_to_string(one.config_path()).unwrap();
    drop(one);
    postgres.stop();
    let one = PlexerServe::start_with_config(&first, &config, &[]);
    assert_eq!(
        greeting(&one, "kept").as_deref(),
        Some("still here"),
        "{}",
        one.log()
    );
    let refused = one.accounts(&["add", "newcomer"]);
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(refused.stderr_text().contains("unreachable"), "{refused}");
    let before = generation(&one, "kept");
    // PostgreSQL back: the whole read finds the same version and leaves the account running.
    postgres.start_again();
    let accepted = || one.accounts(&["add", "newcomer"]).code() == Some(0);
    assert!(wait_for(accepted, Duration::from_secs(10)), "{}", one.log());
    assert_eq!(generation(&one, "kept"), before);
    assert_eq!(greeting(&one, "kept").as_deref(), Some("still here"));
}
