//! Keeps this node's accounts equal to the table: one dedicated connection LISTENs on the
//! table's channel and reads the rows each notification names. What other projects learnt
//! the hard way is designed in:
//! - a LISTEN session can stop delivering without an error (PostgREST): every
//!   `check_interval` the table's fingerprint (highest version, row count) is compared with
//!   what this node read, and a difference reads the whole table again; a notification this
//!   node sends itself now and then must come back, or the session is replaced;
//! - networks drop idle connections (Hasura): TCP keepalives and a TCP user timeout, and every
//!   query bounded in time;
//! - a connection pooler in transaction mode cannot LISTEN (pgbouncer): the LISTEN stays with
//!   one server session, which the pooler then lends to other clients. A real session keeps
//!   its server process for life, so a process id that changes under the connection (asked
//!   with every check) gives the pooler away; so does a first self-notification that never
//!   comes back. The node then says why and what to do, and lives on the periodic check alone;
//! - notifications sent while a node was disconnected are lost: the whole table is read after
//!   every (re)connection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::nodes;
use super::table::{Fingerprint, Table, TableRead, describe};
use crate::accounts::Manager;

/// The longest any one query of the sync may take before the connection is called lost: a
/// dead peer would otherwise hold a query until TCP gives up, many minutes later.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the first self-notification may take to come back before LISTEN is called
/// impossible on this connection.
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

/// The sync task's settings.
pub struct Sync {
    pub table: Arc<Table>,
    pub connection: tokio_postgres::Config,
    pub check_interval: Duration,
    pub node: String,
    /// `listen:` as the nodes table shows it.
    pub listen: String,
    pub manager: Arc<Manager>,
}

/// What this node read of the table: each row's version.
#[derive(Default)]
struct Known(HashMap<String, i64>);

impl Known {
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            highest_version: self.0.values().copied().max().unwrap_or(0),
            rows: self.0.len() as i64,
        }
    }
}

/// Why a session ended, and whether it had connected (a session that did resets the wait).
struct Ended {
    why: String,
    had_connected: bool,
}

impl Sync {
    /// Connects, reads, listens, and again after every loss, until the task is dropped.
    /// `first_read` is told when the table was read the first time.
    pub async fn run(self, mut first_read: Option<oneshot::Sender<()>>) {
        let mut connection = self.connection.clone();
        connection
            .application_name(format!("plexer node {}", self.node))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(QUERY_TIMEOUT);
        }
        let mut wait = RECONNECT_FIRST;
        let mut down_since: Option<Instant> = None;
        loop {
            let ended = self.session(&connection, &mut first_read, down_since).await;
            self.table.disconnected(ended.why.clone());
            if ended.had_connected {
                wait = RECONNECT_FIRST;
            }
            if down_since.is_none() {
                down_since = Some(Instant::now());
                tracing::error!(table = self.table.name(), error = %ended.why, "registry: PostgreSQL is unreachable; this node serves the accounts it has and refuses changes until it is back");
            } else {
                tracing::debug!(error = %ended.why, "registry: still unreachable");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_LONGEST);
        }
    }

    /// One connection, from connect to loss.
    async fn session(
        &self,
        connection: &tokio_postgres::Config,
        first_read: &mut Option<oneshot::Sender<()>>,
        down_since: Option<Instant>,
    ) -> Ended {
        let lost = |why: String| Ended {
            why,
            had_connected: false,
        };
        let (client, driven) = match connection.connect(NoTls).await {
            Ok(connected) => connected,
            Err(err) => return lost(describe(&err)),
        };
        let client = Arc::new(client);
        let (events, mut notified) = mpsc::unbounded_channel();
        let _driver = AbortOnDrop(tokio::spawn(drive(driven, events)));
        if let Err(err) = bounded(self.table.create_when_missing(&client)).await {
            return lost(err);
        }
        let listen = format!("LISTEN {}", self.table.name());
        if let Err(err) = bounded(client.batch_execute(&listen)).await {
            return lost(err);
        }
        let listening_pid = match bounded(self.table.backend_pid(&client)).await {
            Ok(pid) => pid,
            Err(err) => return lost(err),
        };
        let delivers = match self.probe(&client, &mut notified, PROBE_TIMEOUT).await {
            Ok(delivers) => delivers,
            Err(err) => return lost(err),
        };
        if !delivers {
            self.listen_cannot_work("a notification this node sent itself never came back");
        }
        // Everything that changed while this node was not listening.
        let mut known = Known::default();
        if let Err(err) = self.read_whole(&client, &mut known).await {
            return lost(err);
        }
        self.table.connected(Arc::clone(&client));
        if let Some(first) = first_read.take() {
            let _ = first.send(());
        }
        if let Some(since) = down_since {
            tracing::info!(table = self.table.name(), rows = known.0.len(), down_for = ?since.elapsed(), "registry: connected again, the table read whole");
        }
        let listening = Listening {
            pid: listening_pid,
            delivers,
        };
        let why = self
            .follow(&client, &mut notified, &mut known, listening)
            .await;
        Ended {
            why,
            had_connected: true,
        }
    }

    /// Applies notifications as they come and checks the table every `check_interval`, until
    /// the connection is lost; returns why.
    async fn follow(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
        known: &mut Known,
        listening: Listening,
    ) -> String {
        let mut check = tokio::time::interval(self.check_interval);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat_due = Instant::now();
        let mut probe = Probe::new(listening.delivers);
        loop {
            tokio::select! {
                event = notified.recv() => {
                    let mut names = HashSet::new();
                    let mut event = event;
                    // Every notification already here is applied in one read.
                    loop {
                        match event {
                            Some(Event::Notified(payload)) => {
                                if payload.starts_with(PROBE_MARK) {
                                    probe.returned(&payload);
                                } else {
                                    names.insert(payload);
                                }
                            }
                            Some(Event::Lost(why)) => return why,
                            None => return "the connection's driver stopped".into(),
                        }
                        match notified.try_recv() {
                            Ok(more) => event = Some(more),
                            Err(_) => break,
                        }
                    }
                    if !names.is_empty()
                        && let Err(err) = self.read_names(client, names.into_iter().collect(), known).await
                    {
                        return err;
                    }
                }
                _ = check.tick() => {
                    let pid = match self.check(client, known).await {
                        Ok(pid) => pid,
                        Err(err) => return err,
                    };
                    if pid != listening.pid && probe.delivers {
                        probe.delivers = false;
                        self.listen_cannot_work(&format!(
                            "the server session changed under this connection (process {} \
                             listens, process {pid} answered)",
                            listening.pid
                        ));
                    }
                    if heartbeat_due <= Instant::now() {
                        heartbeat_due = Instant::now() + HEARTBEAT_EVERY;
                        let status = nodes::status_of(&self.manager.state().snapshot());
                        let status = status.to_string();
                        let beat = self.table.heartbeat(client, &self.node, &self.listen, &status);
                        if let Err(err) = bounded(beat).await {
                            return err;
                        }
                    }
                    match probe.due(&self.node) {
                        ProbeDue::Nothing => {}
                        ProbeDue::Send(payload) => {
                            if let Err(err) = bounded(self.table.notify(client, &payload)).await {
                                return err;
                            }
                        }
                        ProbeDue::Overdue => {
                            return "LISTEN stopped delivering: a notification this node sent itself did not come back".into();
                        }
                    }
                }
            }
        }
    }

    /// Sends a self-notification and waits for it; whether it came. Notifications of
    /// accounts meanwhile are dropped: the whole read that follows covers them.
    async fn probe(
        &self,
        client: &Client,
        notified: &mut mpsc::UnboundedReceiver<Event>,
        timeout: Duration,
    ) -> Result<bool, String> {
        let payload = probe_payload(&self.node);
        bounded(self.table.notify(client, &payload)).await?;
        let came = tokio::time::timeout(timeout, async {
            loop {
                match notified.recv().await {
                    Some(Event::Notified(got)) if got == payload => return Ok(()),
                    Some(Event::Notified(_)) => {}
                    Some(Event::Lost(why)) => return Err(why),
                    None => return Err("the connection's driver stopped".to_owned()),
                }
            }
        })
        .await;
        match came {
            Ok(Ok(())) => Ok(true),
            Ok(Err(why)) => Err(why),
            Err(_) => Ok(false),
        }
    }

    async fn read_whole(&self, client: &Client, known: &mut Known) -> Result<(), String> {
        let rows = bounded(self.table.read_all(client)).await?;
        known.0 = rows
            .iter()
            .map(|row| (row.name.clone(), row.version))
            .collect();
        let applied = self.manager.apply_table(TableRead::Whole(rows)).await;
        if !applied.is_empty() {
            tracing::debug!("registry: whole read applied: {}", applied.summary());
        }
        Ok(())
    }

    async fn read_names(
        &self,
        client: &Client,
        asked: Vec<String>,
        known: &mut Known,
    ) -> Result<(), String> {
        let found = bounded(self.table.read_names(client, &asked)).await?;
        for name in &asked {
            known.0.remove(name);
        }
        known
            .0
            .extend(found.iter().map(|row| (row.name.clone(), row.version)));
        self.manager
            .apply_table(TableRead::Names { asked, found })
            .await;
        Ok(())
    }

    /// The safety net: the table's fingerprint against what this node read; the server
    /// process that answered.
    async fn check(&self, client: &Client, known: &mut Known) -> Result<i32, String> {
        let (there, pid) = bounded(self.table.fingerprint(client)).await?;
        if there != known.fingerprint() {
            tracing::info!(
                table = self.table.name(),
                "registry: the table changed without a notification this node saw; reading it whole"
            );
            self.read_whole(client, known).await?;
        }
        Ok(pid)
    }

    /// Says, once per connection, that LISTEN cannot work on it, why, and what to do.
    fn listen_cannot_work(&self, sign: &str) {
        tracing::error!(table = self.table.name(), check_interval = ?self.check_interval, "registry: LISTEN cannot work on this connection: {sign}. A pooler in transaction mode (pgbouncer's pool_mode = transaction) lends the listening session to other clients; point registry.postgres at PostgreSQL itself or at a pool in session mode. Until then changes reach this node only through the check every check_interval");
    }
}

/// The server session that LISTENs, and whether its first self-notification came back.
#[derive(Clone, Copy)]
struct Listening {
    pid: i32,
    delivers: bool,
}

/// The periodic self-notification of a LISTEN session that delivered its first.
struct Probe {
    delivers: bool,
    outstanding: Option<(String, Instant)>,
    next_at: Instant,
}

enum ProbeDue {
    Nothing,
    Send(String),
    Overdue,
}

impl Probe {
    fn new(delivers: bool) -> Self {
        Self {
            delivers,
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
        if !self.delivers {
            return ProbeDue::Nothing;
        }
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
async fn bounded<T, E: std::fmt::Display>(
    query: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "PostgreSQL did not answer within {QUERY_TIMEOUT:?}"
        )),
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
