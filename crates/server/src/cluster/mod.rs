//! Many nodes, one registry (CONTRACT.md): the accounts in a PostgreSQL table that every node
//! reads, changes pushed to every node with LISTEN/NOTIFY, and each node's heartbeat in
//! `plexer_nodes`. The web server in front places accounts on nodes (consistent hashing of
//! the routing cookie); the nodes never talk to each other.
//!
//! | module | what it holds |
//! |---|---|
//! | [`table`] | the schema, created when missing, and every statement run on it |
//! | [`cache`] | the rows last read, kept in runtime_dir for a start while PostgreSQL is down |
//! | [`connect`] | how a connection is made: bounded, kept alive, every statement limited |
//! | [`sync`] | the task that keeps this node's accounts equal to the table |
//! | [`nodes`] | this node's heartbeat, and the cluster as `plexer status --cluster` shows it |
//! | [`import`] | `plexer accounts import DIR`: an accounts_dir copied into the table |

pub mod cache;
pub(crate) mod check;
pub mod connect;
pub mod import;
pub mod nodes;
pub mod sync;
pub mod table;

pub use table::{Fingerprint, NodeRow, Row, Table, TableError, TableRead};
