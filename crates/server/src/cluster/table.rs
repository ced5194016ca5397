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
#[derive(Clone, Debug, PartialEq, Eq)]
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
pub const NODES_TABLE: &str = "plexer_nodes";

/// Why the table could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(
        "the registry's PostgreSQL is unreachable ({why}): this node serves the accounts it \
         has, and changes are refused until the connection is back"
    )]
    Unreachable { why: String },
    #[error("PostgreSQL refused to {doing}: {why}")]
    Refused { doing: &'static str, why: String },
}

/// What PostgreSQL said, rather than tokio-postgres's bare "db error".
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
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
    /// `TABLE/NAME`. Only a checked name is used; any other becomes a name with `!` for each
    /// character outside an account name, which no account can have, so a row named
    /// `../alice` never passes for alice.
    pub fn origin(&self, name: &str) -> std::path::PathBuf {
        let plain: String = name
            .chars()
            .take(80)
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' | '-' => c,
                _ => '!',
            })
            .collect();
        // A bad name is either empty, too long (80 > 63) or rewritten with a '!'.
        let plain = if plain.is_empty() { "!".into() } else { plain };
        std::path::PathBuf::from(format!("{}/{plain}", self.name))
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

    fn refused(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> TableError {
        move |error| match error.is_closed() || error.as_db_error().is_none() {
            true => TableError::Unreachable {
                why: describe(&error),
            },
            false => TableError::Refused {
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

    pub async fn read_one(&self, name: &str) -> Result<Option<Row>, TableError> {
        let sql = format!(
            "SELECT name, spec, version FROM {} WHERE name = $1",
            self.name
        );
        let params = [(&name as _, Type::TEXT)];
        let row = self.client()?.query_typed_opt(&sql, &params).await;
        Ok(row
            .map_err(Self::refused("read the account"))?
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

    /// The highest version and the number of rows: any insert, update or delete changes one
    /// of them, so equal fingerprints mean nothing was missed. With them, the server
    /// session's process id, which a real session keeps and a transaction pooler changes.
    pub(crate) async fn fingerprint(
        &self,
        client: &Client,
    ) -> Result<(Fingerprint, i32), tokio_postgres::Error> {
        let sql = format!(
            "SELECT coalesce(max(version), 0), count(*), pg_backend_pid() FROM {}",
            self.name
        );
        let row = client.query_typed_one(&sql, &[]).await?;
        let fingerprint = Fingerprint {
            highest_version: row.get(0),
            rows: row.get(1),
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
    pub highest_version: i64,
    pub rows: i64,
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

/// The schema as examples/cluster/schema.sql shows it (a test keeps the two equal), written
/// for the table `plexer_accounts`.
const SCHEMA: &str = include_str!("schema.sql");

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
        let (long, long_shown) = (
            "a".repeat(90),
            format!("plexer_accounts/{}", "a".repeat(80)),
        );
        let cases = [
            ("../alice", "plexer_accounts/!!!alice"),
            ("Alice", "plexer_accounts/!lice"),
            ("", "plexer_accounts/!"),
            ("_x", "plexer_accounts/_x"),
            (long.as_str(), long_shown.as_str()),
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

    #[test]
    fn the_example_schema_is_the_one_plexer_creates() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/cluster/schema.sql"
        );
        let example = std::fs::read_to_string(example).unwrap();
        assert_eq!(
            example, SCHEMA,
            "copy crates/server/src/cluster/schema.sql to examples/cluster/"
        );
    }
}
