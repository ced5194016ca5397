//! How plexer connects to the registry's PostgreSQL, for the sync task, `serve --check` and
//! `accounts import` alike: a bounded connect, TCP keepalives and a user timeout (networks drop
//! connections that look idle, and a dead peer would otherwise hold a query for minutes), and
//! server-side limits on every statement, so that a change stuck behind an operator's open
//! transaction is cancelled by PostgreSQL itself, before plexer gives up on it: nothing is
//! left to commit after plexer said it failed.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::table::describe;

/// How long a statement may wait for a row lock (an operator's open transaction).
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long any statement may run; under the sync's own bound on a query (5 s), so that the
/// server has cancelled it when plexer stops waiting.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect: the operator's connection string with plexer's settings, with the
/// server-side limits and, for a pooler that refuses them, without.
#[derive(Clone, Debug)]
pub struct Settings {
    limited: tokio_postgres::Config,
    unlimited: tokio_postgres::Config,
}

/// `base` (the operator's connection string) with plexer's settings added; `who` names the
/// session in `pg_stat_activity`.
pub fn settings(base: &tokio_postgres::Config, who: &str) -> Settings {
    let mut unlimited = base.clone();
    unlimited
        .application_name(who)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(15));
    if base.get_connect_timeout().is_none() {
        unlimited.connect_timeout(CONNECT_TIMEOUT);
    }
    let limits = format!(
        "-c lock_timeout={} -c statement_timeout={}",
        LOCK_TIMEOUT.as_millis(),
        STATEMENT_TIMEOUT.as_millis()
    );
    let options = match base.get_options() {
        Some(given) if !given.is_empty() => format!("{given} {limits}"),
        _ => limits,
    };
    let mut limited = unlimited.clone();
    limited.options(&options);
    Settings { limited, unlimited }
}

/// A connection and the part of it to drive.
pub type Opened = (
    Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

/// Opens a connection with `settings`. A pooler that refuses the `options` startup parameter
/// (pgbouncer, unless told `ignore_startup_parameters = options`) gets a connection without
/// the server-side limits, and a warning: plexer's own bounds on waiting remain.
pub async fn open(settings: &Settings) -> Result<Opened, tokio_postgres::Error> {
    match settings.limited.connect(NoTls).await {
        Err(err) if describe(&err).contains("unsupported startup parameter: options") => {
            tracing::warn!(error = %describe(&err), "registry: the server refuses the options startup parameter (a pooler?): statements run without plexer's lock_timeout and statement_timeout; with pgbouncer, set ignore_startup_parameters = options");
            settings.unlimited.connect(NoTls).await
        }
        opened => opened,
    }
}

/// Opens a connection ([`open`]) and drives it on a task of its own (notifications, if any,
/// are dropped: only the sync task listens, with its own driver).
pub async fn connect(settings: &Settings) -> Result<Client, String> {
    let (client, connection) = open(settings).await.map_err(|e| describe(&e))?;
    tokio::spawn(connection);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_options_are_kept_and_plexers_limits_added() {
        let base: tokio_postgres::Config = "host=/run/postgresql options='-c search_path=plexer'"
            .parse()
            .unwrap();
        let with = settings(&base, "plexer node web1");
        assert_eq!(
            with.limited.get_options(),
            Some("-c search_path=plexer -c lock_timeout=2000 -c statement_timeout=4000")
        );
        assert_eq!(with.unlimited.get_options(), Some("-c search_path=plexer"));
        assert_eq!(with.limited.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let plain = settings(&"host=db".parse().unwrap(), "x");
        assert_eq!(
            plain.limited.get_options(),
            Some("-c lock_timeout=2000 -c statement_timeout=4000")
        );
        assert_eq!(plain.unlimited.get_options(), None);
    }
}
