//! `plexer accounts import DIR -c CONFIG`: an accounts_dir copied into the registry's table
//! (plexer_server::cluster::import). Exit 1 when a file was refused, after the others went in.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use plexer_server::cluster::import;
use plexer_server::config::Config;

pub(crate) fn run(config_file: &Path, dir: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    // Checked before any connection: a config without a registry has nowhere to import to.
    if config.registry.is_none() {
        return Err(import::ImportError::NoRegistry.into());
    }
    let read = import::read_dir(&config, dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let imported = runtime.block_on(import::insert(&config, read))?;
    let mut stdout = std::io::stdout().lock();
    for name in &imported.kept {
        writeln!(
            stdout,
            "kept {name}: the table has a row of that name already"
        )?;
    }
    let mut stderr = std::io::stderr().lock();
    for refusal in &imported.refused {
        writeln!(stderr, "plexer: refused: {refusal}")?;
    }
    writeln!(
        stdout,
        "imported {} accounts from {} ({} kept as the table had them, {} refused)",
        imported.added.len(),
        dir.display(),
        imported.kept.len(),
        imported.refused.len()
    )?;
    Ok(match imported.refused.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}
