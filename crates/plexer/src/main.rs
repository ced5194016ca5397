//! `plexer`: the one binary. Each subcommand lives in its own module under `cli/`; this file
//! only parses the command line, sets up logging and maps errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.log_format);
    let name = args.command.name();
    match cli::run(args.command, args.log_format) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole chain: what failed, then why.
            eprintln!("plexer {name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
