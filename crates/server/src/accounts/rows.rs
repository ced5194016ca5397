//! The accounts manager's changes when the accounts live in a PostgreSQL table
//! (`registry:`): the same order as with files (validate, write, start, publish, retire), with
//! the row written in one statement, so one transaction, before anything starts. Rows come
//! back from the sync task (crate::cluster::sync) as reads to apply, stamped with their
//! `version`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::stamp::Stamp;
use super::{
    AccountsError, Applied, Changed, Draft, Ledger, Manager, Scan, log_applied, off_thread,
};
use crate::account::AccountName;
use crate::cluster::check::account_of_row;
use crate::cluster::{Table, TableRead};
use crate::registry::{AccountRules, Registry};

impl Manager {
    /// Applies what the sync task reads from the table: a whole read removes the accounts
    /// whose rows are gone; a read of named rows changes only those. `read` runs with the
    /// manager's lock held, so a change made through this node's control socket is either in
    /// the read or made after it is applied: an older read never undoes it.
    pub async fn apply_table_read<E>(
        &self,
        read: impl Future<Output = Result<TableRead, E>>,
    ) -> Result<Applied, E> {
        let Some(table) = self.table() else {
            return Ok(Applied::default());
        };
        let mut ledger = self.ledger.lock().await;
        let read = read.await?;
        let mut next = Draft::from(&self.state.snapshot());
        let mut applied = Applied::default();
        let rules = AccountRules::from_config(&next.config);
        let (seen, known) = (ledger.seen.clone(), known_origins(&next));
        let table = Arc::clone(table);
        let scan = off_thread(move || scan_rows(&table, read, &seen, known, &rules)).await;
        self.apply_scan(&mut ledger, &mut next, Ok(scan), &mut applied)
            .await;
        self.publish(next);
        log_applied(&applied);
        Ok(applied)
    }

    /// `plexer accounts add` on a table: checked, inserted (refused if the name is taken, on
    /// this node or by a row it has not applied yet), started, published.
    pub(super) async fn add_row(
        &self,
        table: &Arc<Table>,
        ledger: &mut Ledger,
        mut next: Draft,
        name: AccountName,
        text: String,
    ) -> Result<Changed, AccountsError> {
        let origin = table.origin(name.as_str());
        let exists = || AccountsError::RowExists {
            name: name.clone(),
            table: table.name().to_owned(),
        };
        if next.registry.contains(&name) {
            return Err(exists());
        }
        let rules = AccountRules::from_config(&next.config);
        let account = {
            let (origin, text) = (origin.clone(), text.clone());
            off_thread(move || Registry::account(&origin, &text, &rules)).await?
        };
        // `next` is this change's own copy: a refusal from here on drops it, changing nothing.
        next.registry.insert(account.clone())?;
        let version = table
            .insert_new(name.as_str(), &text)
            .await?
            .ok_or_else(exists)?;
        ledger
            .seen
            .insert(origin.clone(), Stamp::of_row(version, &text));
        let running = match self.launch(ledger, &account, &next.config, Arc::default()) {
            Ok(running) => running,
            Err(why) => {
                ledger.seen.remove(&origin);
                // The other nodes may have started it meanwhile; they stop it again.
                if let Err(err) = table.delete_version(name.as_str(), version).await {
                    tracing::error!(account = %name, error = %err, "the account could not start here and its row stays: remove it with `plexer accounts remove {name}`");
                }
                return Err(AccountsError::Start {
                    file: origin,
                    name,
                    why,
                });
            }
        };
        Ok(self.publish_added(next, &account, running))
    }

    /// `plexer accounts remove` on a table: the row goes first (every node removes the
    /// account when told), then the routes here.
    pub(super) async fn remove_row(
        &self,
        table: &Arc<Table>,
        ledger: &mut Ledger,
        next: Draft,
        name: AccountName,
    ) -> Result<Changed, AccountsError> {
        let origin = table.origin(name.as_str());
        let deleted = table.delete(name.as_str()).await?;
        let here = next.registry.contains(&name) || next.refused.contains_key(&origin);
        if !deleted && !here {
            return Err(AccountsError::Missing { name });
        }
        Ok(self.publish_removed(ledger, next, name, &origin))
    }

    /// `plexer accounts reload NAME` on a table: the row stamped with a new version, so that
    /// every node starts a new generation (how a crash loop or an audit stop is cleared,
    /// wherever the front placed the account), then started here; a row gone removes the
    /// account.
    pub(super) async fn reload_row(
        &self,
        table: &Arc<Table>,
        ledger: &mut Ledger,
        mut next: Draft,
        name: AccountName,
    ) -> Result<Changed, AccountsError> {
        let origin = table.origin(name.as_str());
        let row = table.touch(name.as_str()).await?;
        let Some(row) = row else {
            if !next.registry.contains(&name) && !next.refused.contains_key(&origin) {
                return Err(AccountsError::NoRow {
                    name,
                    table: table.name().to_owned(),
                });
            }
            return Ok(self.publish_removed(ledger, next, name, &origin));
        };
        let rules = AccountRules::from_config(&next.config);
        let stamp = Stamp::of_row(row.version, &row.spec);
        let account = {
            let origin = origin.clone();
            off_thread(move || account_of_row(&origin, &row, &rules)).await
        };
        next.refused.remove(&origin);
        let mut applied = Applied::default();
        match account {
            Ok(account) => {
                self.apply_accounts(ledger, &mut next, vec![account], &mut applied)
                    .await;
            }
            Err(refused) => next.refuse(&mut applied, refused),
        }
        ledger.seen.insert(origin, stamp);
        self.publish(next);
        log_applied(&applied);
        if let Some(refused) = applied.refused.into_iter().next() {
            return Err(refused.into());
        }
        let new = !applied.added.is_empty();
        Ok(Changed::Reloaded { name, new })
    }
}

/// Where every account this node knows comes from: those it runs and those it refused.
pub(super) fn known_origins(next: &Draft) -> Vec<PathBuf> {
    let running = next.registry.accounts().map(|account| account.file.clone());
    running.chain(next.refused.keys().cloned()).collect()
}

/// A table read as a [`Scan`]: the origins of the rows there now, and each row whose version
/// differs from the one applied, checked (blocking: the check may look users up).
pub(super) fn scan_rows(
    table: &Table,
    read: TableRead,
    seen: &HashMap<PathBuf, Stamp>,
    known: Vec<PathBuf>,
    rules: &AccountRules,
) -> Scan {
    let (rows, mut files) = match read {
        TableRead::Whole(rows) => (rows, Vec::new()),
        TableRead::Names { asked, found } => {
            let asked: HashSet<PathBuf> = asked.iter().map(|name| table.origin(name)).collect();
            let others = known.into_iter().filter(|file| !asked.contains(file));
            (found, others.collect())
        }
    };
    let mut changed = Vec::new();
    for row in rows {
        let origin = table.origin(&row.name);
        files.push(origin.clone());
        let stamp = Stamp::of_row(row.version, &row.spec);
        if seen.get(&origin) != Some(&stamp) {
            let account = account_of_row(&origin, &row, rules);
            changed.push((origin, stamp, account));
        }
    }
    files.sort();
    files.dedup();
    // In name order, as files are, so a user claimed twice stays with the same account.
    changed.sort_by(|a, b| a.0.cmp(&b.0));
    Scan { files, changed }
}
