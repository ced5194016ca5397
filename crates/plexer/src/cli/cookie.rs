//! `plexer cookie sign ACCOUNT -c FILE` and `plexer cookie verify VALUE -c FILE`: make or check
//! a routing cookie value with the configured keys, e.g. to script a login or debug one.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use plexer_server::account::AccountName;
use plexer_server::config::Config;
use plexer_server::cookie::Keys;

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
        /// The config file (for secret_file and route.max_age).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the account a cookie value names; exit 1 if it is not valid.
    Verify {
        value: String,
        /// The config file (for secret_file).
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
    let mut stdout = std::io::stdout().lock();
    match args.action {
        Action::Sign { account, .. } => {
            let account = AccountName::new(&account)?;
            let expiry = now + config.route.max_age.0.as_secs();
            writeln!(stdout, "{}", keys.sign(&account, expiry))?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify { value, .. } => match keys.verify(&value, now) {
            Ok(account) => {
                writeln!(stdout, "{account}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(why) => {
                eprintln!("plexer cookie: not valid: {why}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
