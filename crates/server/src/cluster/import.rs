//! `plexer accounts import DIR -c FILE`: an existing accounts_dir copied into the table, so a
//! single node's accounts move to a registry many nodes share. Every file is checked as a node
//! checks a row (a bad one is refused alone, named); the good ones are inserted in one
//! transaction, so an import that fails half-way leaves the table as it was. A name already in
//! the table keeps its row: the table is the registry now, and an import never overwrites it.

use std::path::Path;

use super::table::{Table, TableError, describe};
use crate::account::AccountName;
use crate::config::{AccountsFrom, Config, ConfigError};
use crate::registry::{AccountRules, RefusedFile, Registry, account_files, read_account_file};

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub added: Vec<AccountName>,
    /// Already in the table: left as they are.
    pub kept: Vec<AccountName>,
    pub refused: Vec<RefusedFile>,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "the config has no registry: (it reads accounts_dir); set registry.postgres and \
         registry.table in it to say where the accounts go"
    )]
    NoRegistry,
    #[error(transparent)]
    Dir(#[from] ConfigError),
    #[error("cannot connect to the registry's PostgreSQL: {0}")]
    Connect(String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("PostgreSQL refused the import, so nothing was imported: {0}")]
    Insert(String),
}

/// What an accounts_dir holds: the accounts that validate, as (name, file text), and the
/// files refused.
#[derive(Debug, Default)]
pub struct DirRead {
    pub accounts: Vec<(AccountName, String)>,
    pub refused: Vec<RefusedFile>,
}

/// Reads and checks every account file of `dir` under `config`'s rules (blocking: reads
/// files, looks users up).
pub fn read_dir(config: &Config, dir: &Path) -> Result<DirRead, ImportError> {
    let rules = AccountRules::from_config(config);
    let mut good = Vec::new();
    let mut refused = Vec::new();
    for file in account_files(dir)? {
        let checked = read_account_file(&file).and_then(|text| {
            let account = Registry::account(&file, &text, &rules)?;
            Ok((account.name, text))
        });
        match checked {
            Ok(account) => good.push(account),
            Err(err) => refused.push(RefusedFile::of_file(err)),
        }
    }
    Ok(DirRead {
        accounts: good,
        refused,
    })
}

/// Inserts `accounts` into the config's table in one transaction, creating the table when
/// missing.
pub async fn insert(config: &Config, read: DirRead) -> Result<Imported, ImportError> {
    let DirRead { accounts, refused } = read;
    let AccountsFrom::Table(registry) = config.accounts_from() else {
        return Err(ImportError::NoRegistry);
    };
    let base = registry.connection().map_err(ImportError::Connect)?;
    let settings = super::connect::settings(&base, "plexer accounts import");
    let mut client = super::connect::connect(&settings)
        .await
        .map_err(ImportError::Connect)?;
    let table = Table::new(&registry.table);
    table.create_when_missing(&client).await?;
    let failed = |err: tokio_postgres::Error| ImportError::Insert(describe(&err));
    let transaction = client.transaction().await.map_err(failed)?;
    let sql = format!(
        "INSERT INTO {} (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
         RETURNING version",
        table.name()
    );
    let statement = transaction.prepare(&sql).await.map_err(failed)?;
    let mut imported = Imported {
        refused,
        ..Imported::default()
    };
    for (name, spec) in accounts {
        let inserted = transaction
            .query_opt(&statement, &[&name.as_str(), &spec])
            .await
            .map_err(failed)?;
        match inserted {
            Some(_) => imported.added.push(name),
            None => imported.kept.push(name),
        }
    }
    transaction.commit().await.map_err(failed)?;
    Ok(imported)
}
