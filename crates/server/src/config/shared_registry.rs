//! `registry:` and `node:`: the accounts in a PostgreSQL table shared by many nodes, instead
//! of accounts_dir (CONTRACT.md, "Many nodes, one registry").

use std::str::FromStr;

use serde::Deserialize;

use super::Span;

/// `registry:`: where the shared table is, and how often it is checked behind LISTEN's back.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SharedRegistry {
    /// A libpq connection string: a `postgresql://` URL or `key=value` pairs.
    pub postgres: String,
    /// The accounts table; its NOTIFY channel has the same name.
    #[serde(default = "default_table")]
    pub table: String,
    /// How often a node compares the table's highest version and row count with what it
    /// applied: the safety net for a notification that never came (a LISTEN session that
    /// stopped delivering), and how often the node's heartbeat is written.
    #[serde(default = "default_check_interval")]
    pub check_interval: Span,
}

/// CONTRACT.md's table name.
pub const DEFAULT_TABLE: &str = "plexer_accounts";

/// The table of nodes and their heartbeats (CONTRACT.md), beside the accounts' table.
pub const NODES_TABLE: &str = "plexer_nodes";

fn default_table() -> String {
    DEFAULT_TABLE.into()
}

fn default_check_interval() -> Span {
    Span(std::time::Duration::from_secs(1))
}

/// The check interval's bounds: under 100 ms is a query storm, over a minute no safety net.
const CHECK_INTERVAL_BOUNDS: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(60);

impl SharedRegistry {
    /// The connection settings, as tokio-postgres reads libpq's two spellings.
    pub fn connection(&self) -> Result<tokio_postgres::Config, String> {
        tokio_postgres::Config::from_str(&self.postgres).map_err(|err| {
            format!(
                "registry.postgres is not a connection string ({err}): give a URL like \
                 postgresql://plexer@db/plexer or key=value pairs like \"host=db user=plexer \
                 dbname=plexer\""
            )
        })
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.connection()?.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(
                "registry.postgres asks for TLS (sslmode=require), which plexer does not speak \
                 yet: reach PostgreSQL over a unix socket, a private network or a tunnel, and \
                 leave sslmode out (or write sslmode=disable)"
                    .into(),
            );
        }
        if !is_identifier(&self.table) {
            return Err(format!(
                "registry.table {:?} is not a plain SQL name: use 1 to 63 of a-z, 0-9 and '_', \
                 starting with a letter or '_' (it is written into SQL, so nothing else is taken)",
                self.table
            ));
        }
        if self.table == NODES_TABLE {
            return Err(format!(
                "registry.table {NODES_TABLE:?} is the nodes' table: name the accounts' table \
                 otherwise (the default is {DEFAULT_TABLE:?})"
            ));
        }
        // The trigger's function and the version sequence are named after the table.
        if self.table.len() > MAX_IDENTIFIER - "_version".len() {
            return Err(format!(
                "registry.table {:?} is over {} bytes: its sequence {}_version would be cut",
                self.table,
                MAX_IDENTIFIER - "_version".len(),
                self.table
            ));
        }
        if !CHECK_INTERVAL_BOUNDS.contains(&self.check_interval.0) {
            return Err(format!(
                "registry.check_interval {:?} is outside 100ms..=60s",
                self.check_interval.0
            ));
        }
        Ok(())
    }
}

/// PostgreSQL's NAMEDATALEN - 1.
const MAX_IDENTIFIER: usize = 63;

/// A name PostgreSQL takes unquoted and unchanged: never any text that could end the SQL.
pub fn is_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && bytes.len() <= MAX_IDENTIFIER
}

/// `node:`: printable, short, no spaces, since it is shown in tables and logs.
pub(super) fn check_node_name(name: &str) -> Result<(), String> {
    let printable = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > 63 || !printable {
        return Err(format!(
            "node {name:?} is not a node name: use 1 to 63 of letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// This machine's host name, the default node name; `node` when it has none usable.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| check_node_name(name).is_ok())
        .unwrap_or_else(|| "node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_sql_names_are_tables() {
        for good in ["plexer_accounts", "_t", "t1"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1t",
            "Plexer",
            "a-b",
            "a;drop",
            "a b",
            "\"t\"",
            &"t".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn both_libpq_spellings_are_connection_strings() {
        let registry = |postgres: &str| SharedRegistry {
            postgres: postgres.into(),
            table: default_table(),
            check_interval: default_check_interval(),
        };
        assert!(
            registry("postgresql://plexer@db.internal/plexer")
                .check()
                .is_ok()
        );
        assert!(
            registry("host=/run/postgresql user=plexer dbname=plexer")
                .check()
                .is_ok()
        );
        let bad = registry("postgresql://[").check().unwrap_err();
        assert!(bad.contains("registry.postgres"), "{bad}");
        let tls = registry("host=db sslmode=require").check().unwrap_err();
        assert!(tls.contains("sslmode=require"), "{tls}");
        assert!(registry("host=db sslmode=prefer").check().is_ok());
        let mut nodes = registry("host=db");
        nodes.table = NODES_TABLE.into();
        assert!(nodes.check().unwrap_err().contains("nodes' table"));
    }

    #[test]
    fn node_names_are_short_and_plain() {
        assert!(check_node_name("web1.example-2_x").is_ok());
        for bad in ["", "a b", "a/b", "ä", &"n".repeat(64)] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }
}
