//! The accounts table in PostgreSQL: its schema, created when missing, and the statements
//! plexer runs on it. The table's name comes from the config, checked to be a plain SQL name
//! (`config::is_identifier`), and is the only text ever written into SQL; every value is a
//! parameter. Every statement is unnamed and sent in one round trip (`query_typed`): a named
//! prepared statement lives in one server session, which a pooler in transaction mode does not
//! keep between a statement's preparation and its execution.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

/// One row: `spec` is exactly what an account file holds; `version` is stamped by the
/// table's trigger on every insert and update, from one sequence, so it only grows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub name: String,
    pub spec: String,
    pub version: i64,
}

/// What a read of the table brought back, for the manager to apply.
#[derive(Debug)]
pub enum TableRead {
    /// Every row: an account not among them is removed.
    Whole(Vec<Row>),
    /// The rows of the names a notification named: a name asked for and not found was
    /// deleted.
    Names { asked: Vec<String>, found: Vec<Row> },
}

/// The node table of CONTRACT.md: one row per node, its heartbeat in `seen`.
pub use crate::config::NODES_TABLE;

/// Why the table could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Not connected: nothing was sent.
    #[error(
        "the registry's PostgreSQL is unreachable ({why}): this node serves the accounts it \
         has, and changes are refused until the connection is back"
    )]
    Unreachable { why: String },
    /// Sent, and the connection failed before the answer: PostgreSQL may have committed it.
    #[error(
        "the connection to the registry's PostgreSQL failed while it was asked to {doing} \
         ({why}): the change may or may not have been made; `plexer accounts list` shows which \
         once the connection is back"
    )]
    Interrupted { doing: &'static str, why: String },
    #[error("PostgreSQL refused to {doing}: {why}")]
    Refused { doing: &'static str, why: String },
}

/// What PostgreSQL said (severity, message, hint), rather than tokio-postgres's bare "db
/// error"; for any other error its whole chain of causes ("error connecting to server:
/// Connection refused").
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(db) = error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::as_db_error)
    {
        let hint = db
            .hint()
            .map(|hint| format!(" ({hint})"))
            .unwrap_or_default();
        return format!("{}: {}{hint}", db.severity(), db.message());
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = next.source();
    }
    text
}

/// The accounts table, and the connection to it while there is one.
pub struct Table {
    name: String,
    /// The sync task's connection: `None` while PostgreSQL is unreachable, so that a change
    /// is refused at once rather than after a connect timeout.
    client: ArcSwapOption<Client>,
    /// Why the last connection failed or ended, for the refusal.
    down_because: std::sync::Mutex<String>,
}

impl Table {
    pub fn new(name: &str) -> Self {
        debug_assert!(crate::config::is_identifier(name));
        Self {
            name: name.to_owned(),
            client: ArcSwapOption::empty(),
            down_because: std::sync::Mutex::new("not connected yet".into()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where an account of the table is said to come from, in refusals and `accounts list`:
    /// `TABLE/NAME`. Only a checked name is used; any other becomes `!` and its bytes in hex,
    /// which no account can have, so a row named `../alice` never passes for alice.
    pub fn origin(&self, name: &str) -> std::path::PathBuf {
        if crate::account::AccountName::new(name).is_ok() {
            return std::path::PathBuf::from(format!("{}/{name}", self.name));
        }
        // Any other name as `!` and its bytes in hex: one origin per name, none an account's.
        let hex: String = name.bytes().take(40).map(|b| format!("{b:02x}")).collect();
        std::path::PathBuf::from(format!("{}/!{hex}", self.name))
    }

    pub(crate) fn connected(&self, client: Arc<Client>) {
        self.client.store(Some(client));
    }

    pub(crate) fn disconnected(&self, why: String) {
        self.client.store(None);
        *self.down_because.lock().expect("no panic holds it") = why;
    }

    fn client(&self) -> Result<Arc<Client>, TableError> {
        match self.client.load_full() {
            Some(client) if !client.is_closed() => Ok(client),
            _ => Err(TableError::Unreachable {
                why: self.down_because.lock().expect("no panic holds it").clone(),
            }),
        }
    }

    /// A failed statement: refused by PostgreSQL (nothing changed), or cut off on the way
    /// (which may have changed something).
    fn refused(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> TableError {
        move |error| match error.as_db_error() {
            Some(_) => TableError::Refused {
                doing,
                why: describe(&error),
            },
            None => TableError::Interrupted {
                doing,
                why: describe(&error),
            },
        }
    }

    /// Inserts a new account; `None` when a row of that name is already there.
    pub async fn insert_new(&self, name: &str, spec: &str) -> Result<Option<i64>, TableError> {
        let sql = format!(
            "INSERT INTO {} (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
             RETURNING version",
            self.name
        );
        let params = [(&name as _, Type::TEXT), (&spec as _, Type::TEXT)];
        let row = self.client()?.query_typed_opt(&sql, &params).await;
        Ok(row
            .map_err(Self::refused("add the account"))?
            .map(|row| row.get(0)))
    }

    /// Deletes an account; whether there was one.
    pub async fn delete(&self, name: &str) -> Result<bool, TableError> {
        let sql = format!(
            "DELETE FROM {} WHERE name = $1 RETURNING version",
            self.name
        );
        let params = [(&name as _, Type::TEXT)];
        let deleted = self.client()?.query_typed(&sql, &params).await;
        Ok(!deleted
            .map_err(Self::refused("remove the account"))?
            .is_empty())
    }

    /// Deletes the row this node inserted, if nobody changed it since: an add that could not
    /// start takes back what it wrote.
    pub async fn delete_version(&self, name: &str, version: i64) -> Result<(), TableError> {
        let sql = format!("DELETE FROM {} WHERE name = $1 AND version = $2", self.name);
        let params = [(&name as _, Type::TEXT), (&version as _, Type::INT8)];
        let deleted = self.client()?.query_typed(&sql, &params).await;
        deleted.map_err(Self::refused("take back the account"))?;
        Ok(())
    }

    /// Stamps an account's row with a new version, its spec as it is: the trigger notifies
    /// every node, which starts a new generation (`plexer accounts reload NAME` through any
    /// node). The row as it is now, or `None` when there is none.
    pub async fn touch(&self, name: &str) -> Result<Option<Row>, TableError> {
        let sql = format!(
            "UPDATE {} SET spec = spec WHERE name = $1 RETURNING name, spec, version",
            self.name
        );
        let params = [(&name as _, Type::TEXT)];
        let row = self.client()?.query_typed_opt(&sql, &params).await;
        Ok(row
            .map_err(Self::refused("reload the account"))?
            .map(|r| row_of(&r)))
    }

    /// The rows of `names` (those still there).
    pub(crate) async fn read_names(
        &self,
        client: &Client,
        names: &[String],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let sql = format!(
            "SELECT name, spec, version FROM {} WHERE name = ANY($1)",
            self.name
        );
        let rows = client
            .query_typed(&sql, &[(&names as _, Type::TEXT_ARRAY)])
            .await?;
        Ok(rows.iter().map(row_of).collect())
    }

    pub(crate) async fn read_all(
        &self,
        client: &Client,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let sql = format!(
            "SELECT name, spec, version FROM {} ORDER BY name",
            self.name
        );
        let rows = client.query_typed(&sql, &[]).await?;
        Ok(rows.iter().map(row_of).collect())
    }

    /// Every row, through the current connection.
    pub async fn read_every_row(&self) -> Result<Vec<Row>, TableError> {
        let client = self.client()?;
        let rows = self.read_all(&client).await;
        rows.map_err(Self::refused("read the accounts"))
    }

    /// The number of rows and the sum of their versions: versions only grow and a new row's
    /// is above every other, so any insert, update, rename or delete changes one of them, in
    /// whatever order the transactions commit; equal fingerprints mean nothing was missed.
    /// With them, the server session's process id, which a real session keeps and a
    /// transaction pooler changes.
    pub(crate) async fn fingerprint(
        &self,
        client: &Client,
    ) -> Result<(Fingerprint, i32), tokio_postgres::Error> {
        let sql = format!(
            "SELECT count(*), coalesce(sum(version), 0)::text, pg_backend_pid() FROM {}",
            self.name
        );
        let row = client.query_typed_one(&sql, &[]).await?;
        let sum: String = row.get(1);
        let fingerprint = Fingerprint {
            rows: row.get(0),
            // A sum of bigints is numeric in SQL; as text it always parses.
            version_sum: sum.parse().unwrap_or(-1),
        };
        Ok((fingerprint, row.get(2)))
    }

    /// The server session's process id.
    pub(crate) async fn backend_pid(&self, client: &Client) -> Result<i32, tokio_postgres::Error> {
        let row = client
            .query_typed_one("SELECT pg_backend_pid()", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Creates the table, its version sequence, its triggers and the node table when any is
    /// missing, under a lock, so that nodes starting together create them once. A database
    /// where they exist needs no rights beyond reading and writing the rows.
    pub(crate) async fn create_when_missing(&self, client: &Client) -> Result<(), TableError> {
        let refused = Self::refused("create the registry's table");
        let (stamp, notify) = (
            format!("{}_stamp", self.name),
            format!("{}_notify", self.name),
        );
        let present: i64 = client
            .query_typed_one(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) \
                 AND tgname IN ($2, $3) AND to_regclass($4) IS NOT NULL",
                &[
                    (&self.name as _, Type::TEXT),
                    (&stamp as _, Type::TEXT),
                    (&notify as _, Type::TEXT),
                    (&NODES_TABLE as _, Type::TEXT),
                ],
            )
            .await
            .map_err(&refused)?
            .get(0);
        if present == 2 {
            return Ok(());
        }
        client
            .batch_execute(&schema(&self.name))
            .await
            .map_err(refused)
    }

    /// Sends a notification on the table's channel (a node's self-notification).
    pub(crate) async fn notify(
        &self,
        client: &Client,
        payload: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let sql = "SELECT pg_notify($1, $2)";
        let params = [(&self.name as _, Type::TEXT), (&payload as _, Type::TEXT)];
        client.query_typed(sql, &params).await?;
        Ok(())
    }

    /// Records this node's heartbeat.
    pub(crate) async fn heartbeat(
        &self,
        client: &Client,
        node: &str,
        listen: &str,
        status: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let sql = format!(
            "INSERT INTO {NODES_TABLE} (name, listen, status, seen) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (name) DO UPDATE SET listen = EXCLUDED.listen, \
             status = EXCLUDED.status, seen = EXCLUDED.seen"
        );
        let params = [
            (&node as _, Type::TEXT),
            (&listen as _, Type::TEXT),
            (&status as _, Type::TEXT),
        ];
        client.query_typed(&sql, &params).await?;
        Ok(())
    }

    /// Every node's row, and how many seconds ago each was seen (by the database's clock,
    /// so nodes' clocks need not agree).
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, TableError> {
        let sql = format!(
            "SELECT name, coalesce(listen, ''), coalesce(status, '{{}}'), \
             extract(epoch FROM now() - seen)::float8 FROM {NODES_TABLE} ORDER BY name"
        );
        let rows = self.client()?.query_typed(&sql, &[]).await;
        let rows = rows.map_err(Self::refused("read the nodes"))?;
        Ok(rows
            .iter()
            .map(|row| NodeRow {
                name: row.get(0),
                listen: row.get(1),
                status: row.get(2),
                seen_seconds_ago: row.get::<_, Option<f64>>(3).unwrap_or(f64::INFINITY),
            })
            .collect())
    }
}

/// A node as `plexer_nodes` holds it.
#[derive(Clone, Debug)]
pub struct NodeRow {
    pub name: String,
    pub listen: String,
    /// The JSON the node wrote with its heartbeat.
    pub status: String,
    pub seen_seconds_ago: f64,
}

/// See [`Table::fingerprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub rows: i64,
    pub version_sum: i128,
}

fn row_of(row: &tokio_postgres::Row) -> Row {
    Row {
        name: row.get(0),
        spec: row.get(1),
        version: row.get(2),
    }
}

/// An advisory lock key of plexer's own ("plexer" in ASCII), held while the schema is made.
const SCHEMA_LOCK: i64 = 0x706c_6578_6572;

/// The schema, from examples/cluster/schema.sql itself (what a DBA runs is what plexer runs),
/// written for the table `plexer_accounts`.
const SCHEMA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/cluster/schema.sql"
));

/// The schema for `table`, in one transaction under [`SCHEMA_LOCK`]: every name it creates
/// (sequence, index, functions, triggers, channel) starts with the table's, so it is renamed
/// whole.
fn schema(table: &str) -> String {
    let body = SCHEMA.replace(crate::config::DEFAULT_TABLE, table);
    format!("BEGIN;\nSELECT pg_advisory_xact_lock({SCHEMA_LOCK});\n{body}\nCOMMIT;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_row_name_never_passes_for_an_account() {
        let table = Table::new("plexer_accounts");
        assert_eq!(
            table.origin("alice"),
            std::path::PathBuf::from("plexer_accounts/alice")
        );
        let cases = [
            ("../alice", "plexer_accounts/!2e2e2f616c696365"),
            ("Alice", "plexer_accounts/!416c696365"),
            ("Blice", "plexer_accounts/!426c696365"),
            ("", "plexer_accounts/!"),
        ];
        for (bad, shown) in cases {
            let origin = table.origin(bad);
            assert_eq!(origin, std::path::PathBuf::from(shown), "{bad:?}");
            let stem = origin.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(crate::account::AccountName::new(&stem).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_schema_names_only_the_table() {
        let sql = schema("t_1");
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS t_1 ("));
        assert!(sql.contains("pg_notify('t_1', NEW.name)"));
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS plexer_nodes ("));
        assert!(!sql.contains("plexer_accounts"));
        assert!(sql.starts_with("BEGIN;") && sql.ends_with("COMMIT;"));
    }
}
