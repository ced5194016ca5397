//! `plexer cookie sign ACCOUNT [--user NAME] -c FILE` and `plexer cookie verify VALUE -c FILE`:
//! make or check a routing cookie value with the configured keys, e.g. to script a login or
//! debug one.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use plexer_server::account::AccountName;
use plexer_server::config::Config;
use plexer_server::cookie::Keys;
use plexer_server::user::UserName;

#[derive(Debug, Args)]
pub(crate) struct CookieArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print a cookie value for ACCOUNT, valid for route.max_age.
    Sign {
        account: String,
        /// Sign the user in too: the value is ACCOUNT.EXPIRY.USER.SIGNATURE, and the app gets
        /// PLEXER_USER=NAME with every request of it.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The config file (for secret_file and route.max_age).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the account a cookie value names, and `user: NAME` when it names a user; exit 1 if
    /// it is not valid.
    Verify {
        value: String,
        /// The config file (for secret_file and route.max_age).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
}

pub(crate) fn run(args: CookieArgs) -> anyhow::Result<ExitCode> {
    let (Action::Sign { config, .. } | Action::Verify { config, .. }) = &args.action;
    let config = Config::load(config)?;
    let keys = Keys::load(&config.secret_file)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let max_age = config.route.max_age.0;
    let mut stdout = std::io::stdout().lock();
    match args.action {
        Action::Sign { account, user, .. } => {
            let account = AccountName::new(&account)?;
            let user = user
                .map(|user| UserName::new(&user))
                .transpose()
                .context("--user")?;
            let expiry = now + max_age.as_secs();
            writeln!(stdout, "{}", keys.sign(&account, user.as_ref(), expiry))?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify { value, .. } => match keys.verify(&value, now, max_age) {
            Ok(verified) => {
                writeln!(stdout, "{}", verified.account)?;
                if let Some(user) = verified.user {
                    writeln!(stdout, "user: {user}")?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(why) => {
                eprintln!("plexer cookie: not valid: {why}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
