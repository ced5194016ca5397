//! plexer-fcgi's two sides, each driven by the smallest tokio loop that uses them properly:
//! read into the connection's own buffer, take events out, write the outbox with one vectored
//! write per turn.

use std::io;

use bytes::{Buf, Bytes};
use plexer_fcgi::{
    ClientConnection, ClientEvent, Limits, Params, ProtocolStatus, Role, ServerConfig,
    ServerConnection, ServerEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pipe::PipeEnd;
use crate::workload::Workload;

/// Room made in a read buffer before each read: one full record and its header.
const READ_SIZE: usize = 64 * 1024 + 8;

fn codec_error(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// The web-server side: sends a request on a kept-alive connection, collects the response.
#[derive(Debug)]
pub struct OurClient {
    conn: ClientConnection,
    end: PipeEnd,
    params: Params,
}

impl OurClient {
    pub fn new(end: PipeEnd, workload: &Workload) -> Self {
        Self {
            conn: ClientConnection::new(Limits::default()),
            end,
            params: workload.plexer_params(),
        }
    }

    /// One request with the workload's params and an empty body; returns the STDOUT bytes.
    ///
    /// The body arrives as `Bytes` that share the read buffer, which is how a relay wants it;
    /// they are counted and dropped here.
    pub async fn round_trip(&mut self) -> io::Result<usize> {
        let id = self
            .conn
            .begin_request(Role::Responder, true, &self.params)
            .map_err(codec_error)?;
        self.conn.stdin_end(id).map_err(codec_error)?;
        self.end.write_all_buf(self.conn.outbox()).await?;
        let mut stdout = 0;
        loop {
            while let Some(event) = self.conn.poll_event().map_err(codec_error)? {
                match event {
                    ClientEvent::Stdout { data, .. } => stdout += data.len(),
                    ClientEvent::End {
                        protocol_status: ProtocolStatus::RequestComplete,
                        ..
                    } => return Ok(stdout),
                    other => return Err(codec_error(Unexpected(format!("{other:?}")))),
                }
            }
            let buf = self.conn.read_buf();
            buf.reserve(READ_SIZE);
            if self.end.read_buf(buf).await? == 0 {
                self.conn.on_eof().map_err(codec_error)?;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// The application side: serves every request on `end` with `stdout`, until the web server
/// closes the connection.
pub async fn serve(mut end: PipeEnd, stdout: Bytes) -> io::Result<()> {
    let mut conn = ServerConnection::new(ServerConfig::default());
    loop {
        while let Some(event) = conn.poll_event().map_err(codec_error)? {
            match event {
                ServerEvent::Request(_) | ServerEvent::Stdin { .. } => {}
                ServerEvent::StdinEnd { id } => {
                    conn.stdout(id, stdout.clone()).map_err(codec_error)?;
                    conn.end_request(id, 0).map_err(codec_error)?;
                }
                other => return Err(codec_error(Unexpected(format!("{other:?}")))),
            }
        }
        if conn.outbox().has_remaining() {
            end.write_all_buf(conn.outbox()).await?;
        }
        if conn.is_closing() {
            return Ok(());
        }
        let buf = conn.read_buf();
        buf.reserve(READ_SIZE);
        if end.read_buf(buf).await? == 0 {
            return conn.on_eof().map_err(codec_error);
        }
    }
}

/// An event the canned peer never causes.
#[derive(Debug)]
struct Unexpected(String);

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected event: {}", self.0)
    }
}

impl std::error::Error for Unexpected {}
