//! Rows as accounts: each row checked as a node checks an account file, for the sync and for
//! `plexer serve --check`.

use std::path::Path;

use super::table::{Row, Table, TableError, describe};
use crate::account::AccountName;
use crate::config::SharedRegistry;
use crate::registry::{Account, AccountRules, Loaded, RefusedFile, Registry};

/// A row as an account, or why it is refused: its name must be an account name (a row
/// written by SQL may hold anything), its spec what an account file may hold.
pub(crate) fn account_of_row(
    origin: &Path,
    row: &Row,
    rules: &AccountRules,
) -> Result<Account, RefusedFile> {
    if let Err(bad) = AccountName::new(&row.name) {
        return Err(RefusedFile::new(origin, None, bad));
    }
    Registry::account(origin, &row.spec, rules).map_err(RefusedFile::of_file)
}

/// `plexer serve --check` with a registry: every row read and checked, nothing started
/// (blocking: runs its own small runtime for the one connection).
pub(crate) fn load(registry: &SharedRegistry, rules: &AccountRules) -> Result<Loaded, TableError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| TableError::Unreachable {
            why: format!("cannot start a runtime to connect: {err}"),
        })?;
    let table = Table::new(&registry.table);
    let rows = runtime.block_on(async {
        let base = registry
            .connection()
            .map_err(|why| TableError::Unreachable { why })?;
        let settings = super::connect::settings(&base, "plexer serve --check");
        let client = super::connect::connect(&settings)
            .await
            .map_err(|why| TableError::Unreachable { why })?;
        table
            .read_all(&client)
            .await
            .map_err(|err| TableError::Refused {
                doing: "read the accounts",
                why: describe(&err),
            })
    })?;
    let mut loaded = Loaded::default();
    for row in rows {
        loaded.take(account_of_row(&table.origin(&row.name), &row, rules));
    }
    Ok(loaded)
}
