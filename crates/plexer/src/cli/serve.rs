//! `plexer serve -c FILE [--check]`: runs the plexer in the foreground (see plexer-server's
//! `serve` module), or with `--check` validates the config, the keys and every account file and
//! exits, non-zero with the problem named, as `nginx -t` and `php-fpm -t` do.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use plexer_server::serve;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The config file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: PathBuf,
    /// Validate the config and the accounts, then exit.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.check {
        let (config, _keys, registry) = serve::check(&args.config)?;
        writeln!(
            std::io::stdout().lock(),
            "{}: ok, {} accounts in {}",
            args.config.display(),
            registry.len(),
            config.accounts_dir.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    // Workers are forked (then exec'd) from the runtime's worker threads, which live as long
    // as the runtime: PR_SET_PDEATHSIG follows the forking thread, so it must not be a
    // short-lived blocking-pool thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve::run(&args.config))?;
    Ok(ExitCode::SUCCESS)
}
