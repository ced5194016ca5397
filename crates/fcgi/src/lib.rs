//! plexer-fcgi: a complete FastCGI 1.0 codec for both sides of the connection.
//!
//! The specification is Mark R. Brown's *FastCGI Specification*, Open Market, 29 April 1996
//! (<https://fastcgi-archives.github.io/FastCGI_Specification.html>). Each module cites the
//! sections it implements:
//!
//! | module | spec | what it does |
//! |---|---|---|
//! | [`address`] | — | `unix:/path` and `tcp:HOST:PORT`, as users write them |
//! | [`protocol`] | §3.3, §8 | record types, roles, statuses, the 8-byte header |
//! | [`record`] | §3.3 | cuts a byte buffer into records, bodies shared, not copied |
//! | [`outbox`] | §3.3 | encodes records for one vectored write, large bodies by reference |
//! | [`params`] | §3.4 | name-value pairs, in every length form, split anywhere |
//! | [`server`] | §4, §5, §6 | the application side of a connection |
//! | [`client`] | §4, §5 | the web-server side of a connection |
//! | [`cgi`] | §6.2 (CGI/1.1) | the header block at the start of a responder's STDOUT |
//! | [`blocking`] | §2, §3.2 | a std-only driver for simple applications: accept on fd 0, serve |
//!
//! The core is sans-io: no runtime, no sockets, nothing but [`bytes`]. Callers read into a
//! connection's buffer, take events out, and write its [`Outbox`]. The `tokio` feature adds a
//! `tokio_util::codec` adapter for record framing.
//!
//! # Deliberate choices
//! - Applications built on [`server`] say `FCGI_MPXS_CONNS=0` unless configured otherwise, and
//!   the [`client`] never multiplexes onto one that said 0. No mainstream web server
//!   multiplexes, and the protocol has no flow control per request.
//! - Every allocation the peer's input drives is bounded by [`Limits`].

#![forbid(unsafe_code)]

pub mod address;
pub mod blocking;
pub mod cgi;
pub mod client;
#[cfg(feature = "tokio")]
pub mod codec;
mod error;
mod limits;
pub mod outbox;
pub mod params;
pub mod protocol;
pub mod record;
pub mod request_params;
pub mod server;
mod stream;

pub use address::{Address, BadAddress};
pub use client::{ClientConnection, ClientEvent};
pub use error::{Error, LimitExceeded, ProtocolError, UsageError};
pub use limits::Limits;
pub use outbox::Outbox;
pub use params::Params;
pub use protocol::{ProtocolStatus, RecordType, Role};
pub use record::Record;
pub use request_params::RequestParams;
pub use server::{RequestHead, ServerConfig, ServerConnection, ServerEvent};
