//! `plexer serve` as a test runs it: a config, a secret and account files in the scratch
//! directory, the plexer listening on a unix socket there, stopped with the guard. The config is
//! made for `hello` accounts ([`PlexerServe::start`]), or given whole, e.g. an example's
//! rendered config ([`PlexerServe::start_with_config`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Running, Scratch, build, wait};

/// A running `plexer serve`.
pub struct PlexerServe {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub process: Running,
}

/// What a test's plexer runs: accounts as (name, account file text), and extra config lines.
pub struct ServeSetup<'a> {
    pub accounts: &'a [(&'a str, &'a str)],
    pub config_extra: &'a str,
    pub pool_extra: &'a str,
}

impl Default for ServeSetup<'_> {
    fn default() -> Self {
        Self {
            accounts: &[
                ("login", ""),
                ("bob", "users: [bob]"),
                ("sue", "users: [sue]"),
            ],
            config_extra: "login: { account: login }\n",
            pool_extra: "",
        }
    }
}

impl PlexerServe {
    /// Starts plexer with `hello` as every account's app.
    pub fn start(scratch: &Scratch, setup: ServeSetup<'_>) -> Self {
        let text = format!(
            "listen: unix:{}\nlisten_mode: \"0666\"\naccounts_dir: accounts.d\nruntime_dir: run\n\
             secret_file: secret\ndrain_timeout: 5s\n{}pool:\n  command: [{}]\n  pm: ondemand\n  \
             max_children: 4\n  queue_timeout: 3s\n{}",
            Self::socket_in(scratch).display(),
            setup.config_extra,
            build::hello().display(),
            setup.pool_extra
        );
        Self::start_with_config(scratch, &text, setup.accounts)
    }

    /// Where a plexer started in `scratch` listens; a config given to
    /// [`start_with_config`](Self::start_with_config) must say `listen: unix:` this path.
    pub fn socket_in(scratch: &Scratch) -> PathBuf {
        scratch.join("plexer").join("plexer.sock")
    }

    /// Starts plexer on the config file text `config` (e.g. a rendered example), with
    /// `accounts` as (name, account file text). Relative paths in the config are taken from its
    /// directory, which also holds `secret` (a key) and `accounts.d/`.
    pub fn start_with_config(scratch: &Scratch, config: &str, accounts: &[(&str, &str)]) -> Self {
        let dir = scratch.join("plexer");
        let accounts_dir = dir.join("accounts.d");
        std::fs::create_dir_all(&accounts_dir).expect("create accounts.d");
        std::fs::write(dir.join("secret"), format!("{}\n", "s3cret-".repeat(8)))
            .expect("write the secret");
        for (name, text) in accounts {
            std::fs::write(accounts_dir.join(format!("{name}.yaml")), text)
                .expect("write an account file");
        }
        let socket = Self::socket_in(scratch);
        let config_path = dir.join("plexer.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        let mut command = Command::new(build::plexer());
        command.arg("serve").arg("-c").arg(&config_path);
        let process = Running::spawn(
            "plexer serve",
            &mut command,
            &scratch.unique("plexer", "log"),
        );
        wait::wait_until_listening("plexer listens", &socket, Duration::from_secs(10));
        Self {
            dir,
            config: config_path,
            socket,
            process,
        }
    }

    /// `unix:SOCKET`, as `plexer request --connect` takes it.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// A valid routing cookie header value for `account`.
    pub fn cookie(&self, account: &str) -> String {
        let mut command = Command::new(build::plexer());
        command
            .args(["cookie", "sign", account, "-c"])
            .arg(&self.config);
        let finished = crate::run(&mut command, b"", Duration::from_secs(10));
        finished.assert_success();
        format!(
            "plexer_account={}",
            String::from_utf8_lossy(&finished.stdout).trim()
        )
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
}
