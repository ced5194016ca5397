//! Keeps this node's accounts equal to the table: one dedicated connection LISTENs on the
//! table's channel and reads the rows each notification names. What other projects learnt
//! the hard way is designed in:
//! - a LISTEN session can stop delivering without an error (PostgREST): every
//!   `check_interval` the table's fingerprint (row count, sum of versions) is compared with
//!   what this node read, and a difference reads the whole table again; a notification this
//!   node sends itself now and then must come back, or the session is replaced;
//! - networks drop idle connections (Hasura): TCP keepalives and a TCP user timeout
//!   ([`super::connect`]), and every query bounded in time;
//! - a connection pooler in transaction mode cannot LISTEN (pgbouncer): the LISTEN stays with
//!   one server session, which the pooler then lends to other clients. A real session keeps
//!   its server process for life, so a process id that changes under the connection (asked
//!   with every check) gives the pooler away; so does a first self-notification that never
//!   comes back. The node then says why and what to do, and lives on the periodic check alone;
//! - notifications sent while a node was disconnected are lost: the whole table is read after
//!   every (re)connection.
//!
//! Every read is applied under the accounts manager's lock, taken before the read: a change
//! made through this node's control socket meanwhile is either in the read or after it, never
//! undone by an older read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client};

use super::cache::RowCache;
use super::nodes;
use super::table::{Fingerprint, Row, Table, TableRead, describe};
use crate::accounts::Manager;

/// The longest any one query of the sync may take before the connection is called lost: a
/// dead peer would otherwise hold a query until TCP gives up, many minutes later.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a self-notification may take to come back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a working LISTEN session is proved again with a self-notification.
const PROBE_EVERY: Duration = Duration::from_secs(30);

/// How often this node's heartbeat is written to plexer_nodes.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Reconnection waits: from the first to the longest, doubling.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_LONGEST: Duration = Duration::from_secs(5);

/// A self-notification's payload starts with this, which no account name does.
const PROBE_MARK: char = '?';

/// What the connection's driver reports.
enum Event {
    Notified(String),
    Lost(String),
}

/// Why a session with PostgreSQL ended (the node reconnects).
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("cannot {doing}: {why}")]
    Failed { doing: &'static str, why: String },
    #[error("cannot {doing}: PostgreSQL did not answer within {QUERY_TIMEOUT:?}")]
    NoAnswer { doing: &'static str },
    #[error("the connection ended: {0}")]
    Lost(String),
    #[error(
        "LISTEN stopped delivering: a notification this node sent itself did not come back \
         within {PROBE_TIMEOUT:?}"
    )]
    ListenStopped,
}

/// The task that follows the table for this node.
pub struct TableFollower {
    pub table: Arc<Table>,
    /// How to connect ([`super::connect::settings`]).
    pub connection: super::connect::Settings,
    pub check_interval: Duration,
    pub node: String,
    /// `listen:` as the nodes table shows it.
    pub listen: String,
    pub manager: Arc<Manager>,
    /// Where the rows read are kept for a start while PostgreSQL is down.
    pub cache: RowCache,
}

/// What this node read of the table, by name, and whether the cache has it yet.
#[derive(Default)]
struct Known {
    rows: HashMap<String, Row>,
    unsaved: bool,
}

impl Known {
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            rows: self.rows.len() as i64,
            version_sum: self.rows.values().map(|r| i128::from(r.version)).sum(),
        }
    }

    fn replace(&mut self, rows: &[Row]) {
        self.rows = rows
            .iter()
            .map(|row| (row.name.clone(), row.clone()))
            .collect();
        self.unsaved = true;
    }

    fn update(&mut self, asked: &[String], found: &[Row]) {
        for name in asked {
            self.rows.remove(name);
        }
        let found = found.iter().map(|row| (row.name.clone(), row.clone()));
        self.rows.extend(found);
        self.unsaved = true;
    }
}

/// The server session that LISTENs, and whether LISTEN works on this connection.
struct Listening {
    pid: i32,
    works: bool,
}

impl TableFollower {
    /// Connects, reads, listens, and again after every loss, until the task is dropped.
    /// `first_read` is told when the table was read the first time.
    pub async fn run(self, mut first_read: Option<oneshot::Sender<()>>) {
        let mut wait = RECONNECT_FIRST;
        let mut down_since: Option<Instant> = None;
        loop {
            let (ended, had_connected) = self.session(&mut first_read, down_since).await;
            self.table.disconnected(ended.to_string());
            if had_connected {
                wait = RECONNECT_FIRST;
                down_since = None;
            }
            if down_since.is_none() {
                down_since = Some(Instant::now());
                tracing::error!(table = self.table.name(), error = %ended, "registry: no working session with PostgreSQL; this node serves the accounts it has and refuses changes until one works again (retrying)");
            } else {
                tracing::debug!(error = %ended, "registry: still no session");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_LONGEST);
        }
    }

    /// One connection, from connect to loss; whether it got as far as its first read.
    async fn session(
        &self,
        first_read: &mut Option<oneshot::Sender<()>>,
        down_since: Option<Instant>,
    ) -> (Ended, bool) {
        let (client, driven) = match super::connect::open(&self.connection).await {
            Ok(connected) => connected,
            Err(err) => return (Ended::Connect(describe(&err)), false),
        };
        let client = Arc::new(client);
        let (events, mut notified) = mpsc::unbounded_channel();
        let _driver = AbortOnDrop(tokio::spawn(drive(driven, events)));
        let mut known = Known::default();
        let listening = match self.listen(&client, &mut notified, &mut known).await {
            Ok(listening) => listening,
            Err(ended) => return (ended, false),
        };
        self.table.connected(Arc::clone(&client));
        if let Some(first) = first_read.take() {
            let _ = first.send(());
        }
        if let Some(since) = down_since {
            tracing::info!(table = self.table.name(), rows = known.rows.len(), down_for = ?since.elapsed(), "registry: connected again, the table read whole");
        }
        let ended = self
            .follow(&client, &mut notified, &mut known, listening)
            .await;
        (ended, true)
    }

    /// Makes the schema when missing, LISTENs, proves delivery, and reads the whole table:
    /// everything that changed while this node was not listening.
    async fn listen(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
        known: &mut Known,
    ) -> Result<Listening, Ended> {
        let creating = self.table.create_when_missing(client);
        bounded("create the registry's table", creating).await?;
        let listen = format!("LISTEN {}", self.table.name());
        bounded("LISTEN", client.batch_execute(&listen)).await?;
        let pid = bounded("ask the session's process", self.table.backend_pid(client)).await?;
        let works = self.probe(client, notified).await?;
        if !works {
            self.listen_cannot_work("a notification this node sent itself never came back");
        }
        self.read_whole(client, known).await?;
        Ok(Listening { pid, works })
    }

    /// Applies notifications as they come, checks the table every `check_interval` and
    /// writes the heartbeat, until the connection is lost; returns why.
    async fn follow(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
        known: &mut Known,
        mut listening: Listening,
    ) -> Ended {
        let mut check = tokio::time::interval(self.check_interval);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = Probe::new();
        loop {
            // Notifications first: a self-notification waiting in the channel is not judged
            // overdue by a check that happens to be due too.
            let step = tokio::select! {
                biased;
                event = notified.recv() => self.on_notifications(client, notified, event, known, &mut probe).await,
                _ = check.tick() => self.on_check(client, known, &mut listening, &mut probe).await,
                _ = heartbeat.tick() => self.on_heartbeat(client).await,
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    /// Applies `first` and every notification already waiting, in one read.
    async fn on_notifications(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
        first: Option<Event>,
        known: &mut Known,
        probe: &mut Probe,
    ) -> Result<(), Ended> {
        let mut names = HashSet::new();
        let mut event = first;
        loop {
            match event {
                Some(Event::Notified(payload)) if payload.starts_with(PROBE_MARK) => {
                    probe.returned(&payload);
                }
                Some(Event::Notified(name)) => {
                    names.insert(name);
                }
                Some(Event::Lost(why)) => return Err(Ended::Lost(why)),
                None => return Err(Ended::Lost("the connection's driver stopped".into())),
            }
            match notified.try_recv() {
                Ok(more) => event = Some(more),
                Err(_) => break,
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        self.read_names(client, names.into_iter().collect(), known)
            .await
    }

    /// The safety net (the table's fingerprint against what this node read), the check of
    /// the server session, and the self-notification when one is due.
    async fn on_check(
        &self,
        client: &Client,
        known: &mut Known,
        listening: &mut Listening,
        probe: &mut Probe,
    ) -> Result<(), Ended> {
        let fingerprint = self.table.fingerprint(client);
        let (there, pid) = bounded("check the table", fingerprint).await?;
        if there != known.fingerprint() {
            tracing::info!(
                table = self.table.name(),
                "registry: the table changed without a notification this node saw; reading it whole"
            );
            self.read_whole(client, known).await?;
        }
        if known.unsaved {
            known.unsaved = false;
            self.keep(known).await;
        }
        if pid != listening.pid && listening.works {
            listening.works = false;
            self.listen_cannot_work(&format!(
                "the server session changed under this connection (process {} listens, process \
                 {pid} answered)",
                listening.pid
            ));
        }
        if !listening.works {
            return Ok(());
        }
        match probe.due(&self.node) {
            ProbeDue::Nothing => Ok(()),
            ProbeDue::Send(payload) => {
                bounded("notify itself", self.table.notify(client, &payload)).await
            }
            ProbeDue::Overdue => Err(Ended::ListenStopped),
        }
    }

    async fn on_heartbeat(&self, client: &Client) -> Result<(), Ended> {
        let status = nodes::status_of(&self.manager.state().snapshot()).to_string();
        let beat = self
            .table
            .heartbeat(client, &self.node, &self.listen, &status);
        bounded("write the heartbeat", beat).await
    }

    /// Sends a self-notification and waits for it; whether it came. Notifications of
    /// accounts meanwhile are dropped: the whole read that follows covers them.
    async fn probe(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<bool, Ended> {
        let payload = probe_payload(&self.node);
        bounded("notify itself", self.table.notify(client, &payload)).await?;
        let came = tokio::time::timeout(PROBE_TIMEOUT, async {
            loop {
                match notified.recv().await {
                    Some(Event::Notified(got)) if got == payload => return Ok(()),
                    Some(Event::Notified(_)) => {}
                    Some(Event::Lost(why)) => return Err(Ended::Lost(why)),
                    None => return Err(Ended::Lost("the connection's driver stopped".into())),
                }
            }
        })
        .await;
        match came {
            Ok(Ok(())) => Ok(true),
            Ok(Err(ended)) => Err(ended),
            Err(_) => Ok(false),
        }
    }

    /// Reads every row and applies them, under the manager's lock.
    async fn read_whole(&self, client: &Client, known: &mut Known) -> Result<(), Ended> {
        let read = async {
            let rows = bounded("read the accounts", self.table.read_all(client)).await?;
            known.replace(&rows);
            Ok(TableRead::Whole(rows))
        };
        let applied = self.manager.apply_table_read(read).await?;
        if !applied.is_empty() {
            tracing::debug!("registry: whole read applied: {}", applied.summary());
        }
        Ok(())
    }

    /// Reads the rows of `asked` and applies them, under the manager's lock.
    async fn read_names(
        &self,
        client: &Client,
        asked: Vec<String>,
        known: &mut Known,
    ) -> Result<(), Ended> {
        let read = async {
            let found = self.table.read_names(client, &asked);
            let found = bounded("read the changed accounts", found).await?;
            known.update(&asked, &found);
            Ok(TableRead::Names { asked, found })
        };
        self.manager.apply_table_read(read).await?;
        Ok(())
    }

    /// Writes the rows read to the cache, off the runtime's thread; a failure is logged and
    /// costs only the next start's head start.
    async fn keep(&self, known: &Known) {
        let rows: Vec<Row> = known.rows.values().cloned().collect();
        let cache = self.cache.clone();
        let stored = tokio::task::spawn_blocking(move || cache.store(&rows)).await;
        if let Ok(Err(err)) = stored {
            tracing::warn!(file = %self.cache.path().display(), error = %err, "registry: cannot keep the rows read for a start while PostgreSQL is down");
        }
    }

    /// Says, once per connection, that LISTEN cannot work on it, why, and what to do.
    fn listen_cannot_work(&self, sign: &str) {
        tracing::error!(table = self.table.name(), check_interval = ?self.check_interval, "registry: LISTEN cannot work on this connection: {sign}. A pooler in transaction mode (pgbouncer's pool_mode = transaction) lends the listening session to other clients; point registry.postgres at PostgreSQL itself or at a pool in session mode. Until then changes reach this node only through the check every check_interval");
    }
}

/// The periodic self-notification of a LISTEN session that works.
struct Probe {
    outstanding: Option<(String, Instant)>,
    next_at: Instant,
}

enum ProbeDue {
    Nothing,
    Send(String),
    Overdue,
}

impl Probe {
    fn new() -> Self {
        Self {
            outstanding: None,
            next_at: Instant::now() + PROBE_EVERY,
        }
    }

    fn returned(&mut self, payload: &str) {
        if self
            .outstanding
            .as_ref()
            .is_some_and(|(sent, _)| sent == payload)
        {
            self.outstanding = None;
        }
    }

    fn due(&mut self, node: &str) -> ProbeDue {
        let now = Instant::now();
        match &self.outstanding {
            Some((_, sent_at)) if now.duration_since(*sent_at) > PROBE_TIMEOUT => ProbeDue::Overdue,
            Some(_) => ProbeDue::Nothing,
            None if now >= self.next_at => {
                let payload = probe_payload(node);
                self.outstanding = Some((payload.clone(), now));
                self.next_at = now + PROBE_EVERY;
                ProbeDue::Send(payload)
            }
            None => ProbeDue::Nothing,
        }
    }
}

/// `?probe NODE NANOS`: unique to this node and moment, and never an account name.
fn probe_payload(node: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{PROBE_MARK}probe {node} {nanos}")
}

/// Runs a query of the sync within [`QUERY_TIMEOUT`]; any failure ends the session.
async fn bounded<T, E: std::error::Error + 'static>(
    doing: &'static str,
    query: impl Future<Output = Result<T, E>>,
) -> Result<T, Ended> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Ended::Failed {
            doing,
            why: describe(&err),
        }),
        Err(_) => Err(Ended::NoAnswer { doing }),
    }
}

/// Drives the connection: tokio-postgres hands notifications to whoever polls it.
async fn drive(
    mut connection: tokio_postgres::Connection<
        tokio_postgres::Socket,
        tokio_postgres::tls::NoTlsStream,
    >,
    events: mpsc::UnboundedSender<Event>,
) {
    let why = loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(note))) => {
                let _ = events.send(Event::Notified(note.payload().to_owned()));
            }
            Some(Ok(_notice)) => {}
            Some(Err(err)) => break describe(&err),
            None => break "PostgreSQL closed the connection".to_owned(),
        }
    };
    let _ = events.send(Event::Lost(why));
}

/// Stops the driver with the session, so a replaced connection is closed.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_any_row_in_any_commit_order() {
        let known = |rows: &[(&str, i64)]| {
            let rows: Vec<Row> = rows
                .iter()
                .map(|(name, version)| Row {
                    name: name.to_string(),
                    spec: "{}".into(),
                    version: *version,
                })
                .collect();
            let mut known = Known::default();
            known.replace(&rows);
            known.fingerprint()
        };
        let before = known(&[("alice", 3), ("bob", 12)]);
        // alice's update took version 11 and committed after bob's 12: the highest version
        // and the count stay, the sum does not.
        assert_ne!(before, known(&[("alice", 11), ("bob", 12)]));
        // A row gone, a row renamed (a new version), a row added.
        assert_ne!(before, known(&[("bob", 12)]));
        assert_ne!(before, known(&[("alicia", 13), ("bob", 12)]));
        assert_ne!(before, known(&[("alice", 3), ("bob", 12), ("carol", 14)]));
        assert_eq!(before, known(&[("bob", 12), ("alice", 3)]));
    }

    #[test]
    fn a_self_notification_is_sent_every_so_often_and_overdue_if_it_never_returns() {
        let mut probe = Probe::new();
        assert!(matches!(probe.due("web1"), ProbeDue::Nothing));
        probe.next_at = Instant::now();
        let ProbeDue::Send(payload) = probe.due("web1") else {
            panic!("a probe is due");
        };
        assert!(payload.starts_with("?probe web1 "));
        assert!(crate::account::AccountName::new(&payload).is_err());
        assert!(matches!(probe.due("web1"), ProbeDue::Nothing));
        probe.returned(&payload);
        assert!(probe.outstanding.is_none());
        probe.next_at = Instant::now();
        let ProbeDue::Send(_) = probe.due("web1") else {
            panic!("a probe is due");
        };
        let sent = Instant::now() - PROBE_TIMEOUT - Duration::from_millis(1);
        probe.outstanding.as_mut().unwrap().1 = sent;
        assert!(matches!(probe.due("web1"), ProbeDue::Overdue));
    }
}
