use super::*;

const CONTRACT_EXAMPLE: &str = r#"
listen: unix:/run/plexer/plexer.sock   # where nginx/lighttpd connect (or tcp:127.0.0.1:9000)
listen_mode: "0660"                   # listen_owner, listen_group too
control: unix:/run/plexer/control.sock # mode 0600; peers checked with SO_PEERCRED
accounts_dir: /etc/plexer/accounts.d   # one NAME.yaml per account: the registry, live
runtime_dir: /run/plexer               # worker sockets live under here, never named by client input
secret_file: /etc/plexer/secret        # one key per line: the first signs, all verify
drain_timeout: 30s
route:
  by: cookie            # cookie | remote_user | host | path_prefix
  cookie: plexer_account
  max_age: 12h
login:
  account: login        # requests without a valid cookie go to this account's app …
  # redirect: /login    # … or get a 302 to this URL instead
status_path: /plexer-status
ping_path: /plexer-ping
audit: strict           # strict | warn | off
pool:                   # the template every managed account's pool starts from
  command: [/usr/bin/php-cgi]
  pm: ondemand          # static | dynamic | ondemand
  max_children: 4
  min_spare: 1          # dynamic
  max_spare: 3          # dynamic
  idle_timeout: 10s     # ondemand
  max_requests: 500
  max_requests_jitter: 50
  request_timeout: 60s
  queue_timeout: 5s     # how long a request waits for a free worker before a 503
  user: root
  group: root
  env: { APP_ACCOUNT: "{account}" }    # "{account}" expands to the account's name
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/plexer/plexer.yaml"))
}

#[test]
fn the_contracts_example_parses() {
    let config = parse(CONTRACT_EXAMPLE).unwrap();
    assert_eq!(
        config.listen,
        "unix:/run/plexer/plexer.sock".parse().unwrap()
    );
    assert_eq!(config.route.by, RouteBy::Cookie);
    assert_eq!(config.route.max_age.0.as_secs(), 12 * 3600);
    assert_eq!(config.login.account.as_deref(), Some("login"));
    assert_eq!(config.audit, AuditMode::Strict);
    let plan = PoolKeys::default().plan(&config.pool, "bob").unwrap();
    assert_eq!(plan.settings.max_children, 4);
    assert_eq!(plan.request_timeout.as_secs(), 60);
    assert_eq!(
        plan.command.env,
        [("APP_ACCOUNT".into(), "bob".into())],
        "{{account}} expands"
    );
    assert!(plan.command.clear_env, "php-fpm's default: clear_env yes");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let text = CONTRACT_EXAMPLE.replace("  max_children: 4", "  max_childs: 4");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/plexer/plexer.yaml:2"), "{err}");
    assert!(err.contains("unknown field `max_childs`"), "{err}");
}

#[test]
fn checks_name_the_key_to_fix() {
    let cases = [
        (
            (
                "control: unix:/run/plexer/control.sock",
                "control: tcp:127.0.0.1:9999",
            ),
            "control: tcp:127.0.0.1:9999 would let anyone",
        ),
        (
            ("listen_mode: \"0660\"", "listen_mode: \"rw\""),
            "listen_mode \"rw\" is not an octal",
        ),
        (
            ("  account: login", "  account: ../etc"),
            "login.account: bad account name",
        ),
        (("  max_age: 12h", "  max_age: 0s"), "route.max_age is 0"),
        (
            ("  max_age: 12h", "  max_age: soon"),
            "bad duration \"soon\"",
        ),
        (
            ("  pm: ondemand", "  pm: dynamic\n  start: 9"),
            "pool: pm dynamic needs",
        ),
        (
            ("  user: root", "  user: no-such-user-here"),
            "pool: user \"no-such-user-here\" does not exist",
        ),
        (
            (
                "listen: unix:/run/plexer/plexer.sock",
                "listen: plexer.sock",
            ),
            "bad socket address",
        ),
    ];
    for ((from, to), expected) in cases {
        let text = CONTRACT_EXAMPLE.replace(from, to);
        assert_ne!(text, CONTRACT_EXAMPLE, "{from}");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{err} !~ {expected}");
        assert!(err.starts_with("/etc/plexer/plexer.yaml"), "{err}");
    }
}

#[test]
fn account_files_override_the_template_and_merge_env() {
    let config = parse(CONTRACT_EXAMPLE).unwrap();
    let bob = AccountFile::parse(
        "users: [bob, bob@example.com]\nenv: { DATABASE_NAME: bob }\nmax_children: 8\n",
        Path::new("accounts.d/bob.yaml"),
    )
    .unwrap();
    assert_eq!(bob.users, ["bob", "bob@example.com"]);
    let plan = bob.pool.plan(&config.pool, "bob").unwrap();
    assert_eq!(plan.settings.max_children, 8);
    let mut env = plan.command.env;
    env.sort();
    assert_eq!(
        env,
        [
            ("APP_ACCOUNT".into(), "bob".into()),
            ("DATABASE_NAME".into(), "bob".into())
        ]
    );
    let defaults = AccountFile::parse("{}\n", Path::new("accounts.d/sue.yaml")).unwrap();
    assert!(defaults.users.is_empty() && defaults.socket.is_none());
}

#[test]
fn an_empty_or_comment_only_account_file_is_refused_not_started_without_users() {
    for text in ["", "\n  \n", "# being written\n", "---\n"] {
        let err = AccountFile::parse(text, Path::new("accounts.d/sue.yaml")).unwrap_err();
        assert!(matches!(err, ConfigError::Empty { .. }), "{text:?}: {err}");
        let said = err.to_string();
        assert!(
            said.starts_with("accounts.d/sue.yaml is empty") && said.contains("`{}`"),
            "{said}"
        );
    }
}

#[test]
fn bad_account_files_are_refused_whole_with_file_and_line() {
    let file = Path::new("/etc/plexer/accounts.d/bob.yaml");
    let err = AccountFile::parse("users: [bob]\nmax_childern: 3\n", file)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/plexer/accounts.d/bob.yaml:2"),
        "{err}"
    );
    let err = AccountFile::parse("users: bob: sue\n", file)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/plexer/accounts.d/bob.yaml:1"),
        "{err}"
    );
    let err = AccountFile::parse("socket: unix:/run/x.sock\ncommand: [/bin/app]\n", file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("socket: and command: together"), "{err}");
    let err = AccountFile::parse("socket: relative.sock\n", file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("socket: bad socket address"), "{err}");
}

#[test]
fn pool_counts_beyond_any_use_are_refused_not_a_panic() {
    let config = parse(CONTRACT_EXAMPLE).unwrap();
    for (line, named) in [
        (
            "max_requests_jitter: 18446744073709551615",
            "max_requests_jitter is 18446744073709551615",
        ),
        ("max_children: 1000000", "max_children is 1000000"),
        ("max_queue: 99999999", "max_queue is 99999999"),
    ] {
        let file = AccountFile::parse(
            &format!("users: [bob]\nmax_requests: 100\n{line}\n"),
            Path::new("accounts.d/bob.yaml"),
        )
        .unwrap();
        let err = file.pool.plan(&config.pool, "bob").unwrap_err().to_string();
        assert!(
            err.contains(named) && err.contains("give a smaller one"),
            "{err}"
        );
    }
}

#[test]
fn user_and_group_name_the_account_with_its_placeholder() {
    let with = |user: &str, group: &str| {
        let text = CONTRACT_EXAMPLE
            .replace("  user: root\n", &format!("  user: \"{user}\"\n"))
            .replace("  group: root\n", &format!("  group: \"{group}\"\n"));
        parse(&text).unwrap()
    };
    let file = AccountFile::parse("users: [n]\n", Path::new("accounts.d/x.yaml")).unwrap();
    let per_user = with("{account}", "0");
    let identity = file
        .pool
        .plan(&per_user.pool, "nobody")
        .unwrap()
        .command
        .identity;
    assert_eq!(identity.unwrap().uid.as_raw(), 65534);
    let per_group = with("nobody", "{account}");
    let identity = file
        .pool
        .plan(&per_group.pool, "nogroup")
        .unwrap()
        .command
        .identity;
    assert_eq!(identity.unwrap().gid.as_raw(), 65534);
    let err = file
        .pool
        .plan(&per_user.pool, "no-such-tenant")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-tenant"), "{err}");
}

#[test]
fn the_contracts_authorizer_example_parses_and_its_mistakes_are_named() {
    let base = "listen: unix:/p.sock\naccounts_dir: /a\nruntime_dir: /r\nsecret_file: /s\n";
    let config = parse(&format!(
        "{base}route:\n  by: authorizer\nauthorizer:\n  account: auth\n  \
         cache: {{ cookie: sessionid, ttl: 30s }}\n"
    ))
    .unwrap();
    assert_eq!(config.route.by, RouteBy::Authorizer);
    let authorizer = config.authorizer.unwrap();
    assert_eq!(authorizer.account, "auth");
    assert_eq!(authorizer.timeout.0.as_secs(), 5, "the default timeout");
    let cache = authorizer.cache.unwrap();
    assert_eq!(
        (cache.cookie.as_str(), cache.ttl.0.as_secs()),
        ("sessionid", 30)
    );
    assert_eq!(cache.max_entries, DEFAULT_CACHE_ENTRIES);
    for (text, named) in [
        ("route: { by: authorizer }", "needs authorizer:"),
        (
            "authorizer: { account: auth }",
            "route.by is not authorizer",
        ),
        (
            "route: { by: authorizer }\nauthorizer: { account: ../x }",
            "authorizer.account",
        ),
        (
            "route: { by: authorizer }\nauthorizer: { account: auth, timeout: 0s }",
            "authorizer.timeout is 0",
        ),
        (
            "route: { by: authorizer }\nauthorizer: { account: auth, cache: { cookie: \"a b\", ttl: 1s } }",
            "authorizer.cache.cookie",
        ),
        (
            "route: { by: authorizer }\nauthorizer: { account: auth, cache: { cookie: s, ttl: 0s } }",
            "authorizer.cache.ttl is 0",
        ),
        (
            "route: { by: authorizer }\nauthorizer: { account: auth, cache: { cookie: s, ttl: 1s, max_entries: 0 } }",
            "max_entries 0",
        ),
    ] {
        let err = parse(&format!("{base}{text}\n")).unwrap_err().to_string();
        assert!(err.contains(named), "{text}: {err}");
    }
}

#[test]
fn slowlog_dump_is_a_list_of_non_empty_strings_and_slowlog_a_path() {
    let text = format!("{CONTRACT_EXAMPLE}slowlog: slow.log\n").replace(
        "  queue_timeout: 5s",
        "  queue_timeout: 5s\n  slowlog_dump: [py-spy, dump, --pid, \"{pid}\"]",
    );
    let config = Config::parse(&text, Path::new("/etc/plexer/plexer.yaml")).unwrap();
    assert_eq!(config.slowlog.as_deref(), Some(Path::new("slow.log")));
    let plan = PoolKeys::default().plan(&config.pool, "bob").unwrap();
    let dump = plan.slowlog_dump.expect("the template's dumper");
    assert_eq!(dump.shown(12), "py-spy dump --pid 12");
    // An account's own list replaces the template's; none at all is no dump.
    let bob = AccountFile::parse(
        "slowlog_dump: [gdb, -p, \"{pid}\", -batch, -ex, \"thread apply all bt\"]\n",
        Path::new("accounts.d/bob.yaml"),
    )
    .unwrap();
    let plan = bob.pool.plan(&config.pool, "bob").unwrap();
    assert!(plan.slowlog_dump.unwrap().shown(3).starts_with("gdb -p 3 "));
    let plain = parse(CONTRACT_EXAMPLE).unwrap();
    assert!(plain.slowlog.is_none());
    let plan = PoolKeys::default().plan(&plain.pool, "bob").unwrap();
    assert!(plan.slowlog_dump.is_none());
    for (bad, says) in [
        ("slowlog_dump: []\n", "slowlog_dump: is an empty list"),
        (
            "slowlog_dump: [py-spy, \"\"]\n",
            "slowlog_dump: item 1 is an empty string",
        ),
    ] {
        let file = AccountFile::parse(bad, Path::new("accounts.d/bob.yaml")).unwrap();
        let err = file.pool.plan(&plain.pool, "bob").unwrap_err().to_string();
        assert!(err.starts_with(says), "{bad}: {err}");
    }
    // Not a list of strings: refused when read, with its line.
    for bad in ["slowlog_dump: py-spy dump\n", "slowlog_dump: [[a]]\n"] {
        let err = AccountFile::parse(bad, Path::new("accounts.d/bob.yaml")).unwrap_err();
        assert!(err.line() == Some(1), "{bad}: {err}");
    }
    let err = Config::parse(
        &text.replace("slowlog_dump: [py-spy", "slowlog_dump: [\"\", py-spy"),
        Path::new("/etc/plexer/plexer.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pool: slowlog_dump: item 0"), "{err}");
}

#[test]
fn access_log_is_stderr_off_or_a_path_taken_from_the_configs_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plexer.yaml");
    let base = "listen: unix:/p.sock\naccounts_dir: a\nruntime_dir: r\nsecret_file: s\n";
    let load = |line: &str| {
        std::fs::write(&file, format!("{base}{line}")).unwrap();
        Config::load(&file)
    };
    assert_eq!(load("").unwrap().access_log, AccessLogTo::Stderr);
    assert_eq!(
        load("access_log: off\n").unwrap().access_log,
        AccessLogTo::Off
    );
    assert_eq!(
        load("access_log: logs/access.log\n").unwrap().access_log,
        AccessLogTo::File(dir.path().join("logs/access.log")),
        "relative, as every path of the config, to its directory"
    );
    let err = load("access_log: \"\"\n").unwrap_err().to_string();
    assert!(err.contains("access_log is empty"), "{err}");
}

#[test]
fn scheduling_is_batch_unless_the_config_says_normal() {
    let base = "listen: unix:/p.sock\naccounts_dir: /a\nruntime_dir: /r\nsecret_file: /s\n";
    let scheduling = |line: &str| parse(&format!("{base}{line}")).map(|c| c.scheduling);
    assert_eq!(
        scheduling("").unwrap(),
        crate::scheduling::Scheduling::Batch
    );
    assert_eq!(
        scheduling("scheduling: normal\n").unwrap(),
        crate::scheduling::Scheduling::Normal
    );
    let err = scheduling("scheduling: fifo\n").unwrap_err().to_string();
    assert!(err.contains("scheduling") && err.contains("batch"), "{err}");
}
