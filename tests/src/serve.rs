//! `plexer serve` as a test runs it: a config, a secret and account files in the scratch
//! directory, the plexer listening on a unix socket there, stopped with the guard. The config is
//! made for `hello` accounts ([`PlexerServe::start`]), or given whole, e.g. an example's
//! rendered config ([`PlexerServe::start_with_config`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Addr, CgiResponse, HelloAnswer, Running, Scratch, build, cgi, wait, wire};

/// A running `plexer serve`.
pub struct PlexerServe {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub process: Running,
}

/// What a test's plexer runs: accounts as (name, account file text), extra config lines, and
/// extra arguments of `plexer` (global ones such as `--log-format json` go too).
pub struct ServeSetup<'a> {
    pub accounts: &'a [(&'a str, &'a str)],
    pub config_extra: &'a str,
    pub pool_extra: &'a str,
    pub args: &'a [&'a str],
}

/// The files of a test's plexer, written but not started: for tests that start it their own
/// way (as systemd would, say).
pub struct ServeFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The `listen:` socket of the config.
    pub socket: PathBuf,
}

impl Default for ServeSetup<'_> {
    fn default() -> Self {
        Self {
            accounts: &[
                ("login", "{}"),
                ("bob", "users: [bob]"),
                ("sue", "users: [sue]"),
            ],
            config_extra: "login: { account: login }\n",
            pool_extra: "",
            args: &[],
        }
    }
}

impl ServeFiles {
    /// Writes the config, the secret and the account files, with `hello` as every app.
    pub fn write(scratch: &Scratch, setup: &ServeSetup<'_>) -> Self {
        let text = format!(
            "listen: unix:{}\nlisten_mode: \"0666\"\naccounts_dir: accounts.d\nruntime_dir: run\n\
             secret_file: secret\ndrain_timeout: 5s\n{}pool:\n  command: [{}]\n  pm: ondemand\n  \
             max_children: 4\n  queue_timeout: 3s\n{}",
            PlexerServe::socket_in(scratch).display(),
            setup.config_extra,
            build::hello().display(),
            setup.pool_extra
        );
        Self::with_config(scratch, &text, setup.accounts)
    }

    /// Writes the config text `config` (e.g. a rendered example), a secret, and `accounts` as
    /// (name, account file text). Relative paths in the config are taken from its directory,
    /// which also holds `secret` (a key) and `accounts.d/`.
    pub fn with_config(scratch: &Scratch, config: &str, accounts: &[(&str, &str)]) -> Self {
        let mut files = Self::in_dir(&scratch.join("plexer"), config, accounts);
        files.socket = PlexerServe::socket_in(scratch);
        files
    }

    /// As [`with_config`](Self::with_config), in the directory `dir` (made if missing), for a
    /// test that runs several plexers; `socket` is then `dir/plexer.sock`, which the config may
    /// or may not use.
    pub fn in_dir(dir: &Path, config: &str, accounts: &[(&str, &str)]) -> Self {
        let dir = dir.to_path_buf();
        let accounts_dir = dir.join("accounts.d");
        std::fs::create_dir_all(&accounts_dir).expect("create accounts.d");
        std::fs::write(dir.join("secret"), format!("{}\n", "s3cret-".repeat(8)))
            .expect("write the secret");
        // plexer refuses a secret every user may read, as ssh refuses such a key.
        crate::scratch::make_private(&dir.join("secret"));
        for (name, text) in accounts {
            std::fs::write(accounts_dir.join(format!("{name}.yaml")), text)
                .expect("write an account file");
        }
        let config_path = dir.join("plexer.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        Self {
            socket: dir.join("plexer.sock"),
            dir,
            config: config_path,
        }
    }
}

impl PlexerServe {
    /// Starts plexer with `hello` as every account's app.
    pub fn start(scratch: &Scratch, setup: ServeSetup<'_>) -> Self {
        Self::launch(scratch, ServeFiles::write(scratch, &setup), setup.args, [])
    }

    /// As [`start`](Self::start), with `env` added to plexer's environment (an `LD_PRELOAD`,
    /// say).
    pub fn start_with_env<'e>(
        scratch: &Scratch,
        setup: ServeSetup<'_>,
        env: impl IntoIterator<Item = (&'e str, &'e Path)>,
    ) -> Self {
        Self::launch(scratch, ServeFiles::write(scratch, &setup), setup.args, env)
    }

    /// Where a plexer started in `scratch` listens; a config given to
    /// [`start_with_config`](Self::start_with_config) must say `listen: unix:` this path.
    pub fn socket_in(scratch: &Scratch) -> PathBuf {
        scratch.join("plexer").join("plexer.sock")
    }

    /// Starts plexer on the config file text `config`, with `accounts` as (name, account file
    /// text); see [`ServeFiles::with_config`].
    pub fn start_with_config(scratch: &Scratch, config: &str, accounts: &[(&str, &str)]) -> Self {
        Self::launch(
            scratch,
            ServeFiles::with_config(scratch, config, accounts),
            &[],
            [],
        )
    }

    fn launch<'e>(
        scratch: &Scratch,
        files: ServeFiles,
        args: &[&str],
        env: impl IntoIterator<Item = (&'e str, &'e Path)>,
    ) -> Self {
        let ServeFiles {
            dir,
            config,
            socket,
        } = files;
        let mut command = build::serve_command(build::plexer());
        command.arg("-c").arg(&config).args(args).envs(env);
        let process = Running::spawn(
            "plexer serve",
            &mut command,
            &scratch.unique("plexer", "log"),
        );
        wait::wait_until_listening("plexer listens", &socket, Duration::from_secs(10));
        let mut serve = Self {
            dir,
            config,
            socket,
            process,
        };
        serve.wait_accounts_loaded();
        serve
    }

    /// The listening socket is bound before the accounts are read; the control socket answers
    /// only after. A test that changes accounts_dir right after the start must not race the
    /// first read of it.
    fn wait_accounts_loaded(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.accounts(&["list"]).code() == Some(0) {
                return;
            }
            self.process.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "plexer serve never answered `plexer accounts list`"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `unix:SOCKET`, as `plexer request --connect` takes it.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// A valid routing cookie header value for `account` (the three-part form).
    pub fn cookie(&self, account: &str) -> String {
        sign_cookie(&self.config, &[account])
    }

    /// A valid routing cookie header value for `account` that signs `user` in (the four-part
    /// form, by `plexer cookie sign ACCOUNT --user USER`).
    pub fn cookie_for_user(&self, account: &str, user: &str) -> String {
        sign_cookie(&self.config, &[account, "--user", user])
    }

    /// A routing cookie header value signed with this plexer's key, for `account` (and `user`),
    /// under a copy of the config whose `route.max_age` is `max_age`: what a cookie signed
    /// before the operator shortened `max_age`, or by someone holding the key, looks like.
    pub fn cookie_with_max_age(&self, account: &str, user: Option<&str>, max_age: &str) -> String {
        let config = self.dir.join(format!("max-age-{max_age}.yaml"));
        let text = std::fs::read_to_string(&self.config).expect("read the config");
        std::fs::write(
            &config,
            format!("{text}\nroute: {{ max_age: {max_age} }}\n"),
        )
        .expect("write the config copy");
        let mut args = vec![account];
        args.extend(user.iter().flat_map(|user| ["--user", user]));
        sign_cookie(&config, &args)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// `plexer accounts ARGS… -c CONFIG`, finished.
    pub fn accounts(&self, args: &[&str]) -> crate::Finished {
        accounts(&self.config, args)
    }

    /// `plexer status --json`, or `null` when it gave no JSON.
    pub fn status_json(&self) -> serde_json::Value {
        status_json(&self.config)
    }

    /// Waits until a request of `account` is being served (a worker busy), by
    /// `plexer status --json`: what a test does next then happens mid-request.
    pub fn wait_busy(&self, account: &str) {
        let busy = || {
            let json = self.status_json();
            let accounts = json["accounts"].as_array()?;
            let entry = accounts.iter().find(|a| a["account"] == account)?;
            (entry["busy"].as_u64()? >= 1).then_some(())
        };
        crate::wait_for_value(busy, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no request of {account} was in flight: {}", self.log()));
    }

    /// The file of account `name` in accounts.d.
    pub fn account_file(&self, name: &str) -> PathBuf {
        self.dir.join("accounts.d").join(format!("{name}.yaml"))
    }

    /// A GET of `uri` sent straight to plexer's socket, as a web server would, with
    /// `cookie` (a whole `name=value`) when given.
    pub fn get(&self, cookie: Option<&str>, uri: &str) -> (CgiResponse, HelloAnswer) {
        let response = self.send("GET", cookie, uri, b"");
        let answer = HelloAnswer::parse(&response.body);
        (response, answer)
    }

    /// A POST of `body` to `uri`, as [`get`](Self::get) sends a GET.
    pub fn post(&self, cookie: Option<&str>, uri: &str, body: &[u8]) -> CgiResponse {
        self.send("POST", cookie, uri, body)
    }

    fn send(&self, method: &str, cookie: Option<&str>, uri: &str, body: &[u8]) -> CgiResponse {
        let mut params = cgi::params_for(method, uri, body.len());
        if let Some(cookie) = cookie {
            params.push(("HTTP_COOKIE".into(), cookie.into()));
        }
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut conn = Addr::Unix(self.socket.clone())
            .connect(Duration::from_secs(10))
            .unwrap_or_else(|err| panic!("connect to plexer: {err}"));
        let raw = wire::exchange(&mut conn, &pairs, body)
            .unwrap_or_else(|err| panic!("{method} {uri} through plexer failed: {err}"));
        CgiResponse::parse(&raw.stdout)
    }

    /// The account a GET with `cookie` lands on, by hello's answer (`-` for plexer's own).
    pub fn account_of(&self, cookie: Option<&str>) -> String {
        let (_, answer) = self.get(cookie, "/which");
        answer
            .fields
            .get("account")
            .cloned()
            .unwrap_or_else(|| "-".into())
    }
}

/// `plexer cookie sign ARGS… -c CONFIG`, as a `Cookie` header value: a routing cookie signed
/// with the key of the plexer whose config is `config`.
pub fn sign_cookie(config: &Path, args: &[&str]) -> String {
    let mut command = Command::new(build::plexer());
    command
        .args(["cookie", "sign"])
        .args(args)
        .arg("-c")
        .arg(config);
    let finished = crate::run(&mut command, b"", Duration::from_secs(10));
    finished.assert_success();
    format!(
        "plexer_account={}",
        String::from_utf8_lossy(&finished.stdout).trim()
    )
}

/// `plexer accounts ARGS… -c CONFIG`, finished.
pub fn accounts(config: &Path, args: &[&str]) -> crate::Finished {
    let mut command = Command::new(build::plexer());
    command.arg("accounts").arg("-c").arg(config).args(args);
    crate::run(&mut command, b"", Duration::from_secs(60))
}

/// `plexer status --json -c CONFIG`, or `null` when it gave no JSON.
pub fn status_json(config: &Path) -> serde_json::Value {
    let mut command = Command::new(build::plexer());
    command.args(["status", "--json", "-c"]).arg(config);
    let status = crate::run(&mut command, b"", Duration::from_secs(10));
    serde_json::from_slice(&status.stdout).unwrap_or_default()
}
