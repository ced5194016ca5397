//! The canned peers: the other end of every round trip, doing as little as FastCGI allows so
//! that the time measured is the side under test's.
//!
//! They frame nothing themselves: the application replays [`Workload::response_wire`], the web
//! server replays [`Workload::request_wire`]. Both find record boundaries with
//! [`RecordScanner`], a few lines of header arithmetic that share no code with plexer-fcgi.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::pipe::PipeEnd;
use crate::workload::{BEGIN_REQUEST, END_REQUEST, STDIN, STDOUT, Workload};

const HEADER_LEN: usize = 8;
/// Room made before each read: one full record and its header.
const READ_SIZE: usize = 64 * 1024 + HEADER_LEN;

/// Cuts whatever a peer sent into records, keeping a partial record for the next read.
#[derive(Debug)]
pub struct RecordScanner {
    buf: BytesMut,
}

impl Default for RecordScanner {
    fn default() -> Self {
        Self {
            buf: BytesMut::with_capacity(2 * READ_SIZE),
        }
    }
}

impl RecordScanner {
    /// Reads from `rd`, showing each whole record's type and content to `stop`, until `stop`
    /// returns true (then `Ok(true)`, leaving later bytes buffered) or the peer closes
    /// between records (`Ok(false)`).
    pub async fn read_until(
        &mut self,
        rd: &mut (impl AsyncRead + Unpin),
        mut stop: impl FnMut(u8, &[u8]) -> bool,
    ) -> io::Result<bool> {
        loop {
            while let Some(&[_, record_type, _, _, len_hi, len_lo, padding, _]) =
                self.buf.first_chunk::<HEADER_LEN>()
            {
                let content_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
                let total = HEADER_LEN + content_len + usize::from(padding);
                if self.buf.len() < total {
                    break;
                }
                let done = stop(record_type, &self.buf[HEADER_LEN..HEADER_LEN + content_len]);
                self.buf.advance(total);
                if done {
                    return Ok(true);
                }
            }
            self.buf.reserve(READ_SIZE);
            if rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(false)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }
}

/// An application that answers every request on `end` with `response`, once the request's
/// stdin has ended, until the web server closes the connection.
///
/// Records between END_REQUEST and the next BEGIN_REQUEST are ignored: fastcgi-client 0.12
/// sends a second empty STDIN record when the body is empty.
pub async fn canned_application(mut end: PipeEnd, response: Bytes) -> io::Result<()> {
    let mut scanner = RecordScanner::default();
    loop {
        let mut begun = false;
        let asked = scanner
            .read_until(&mut end, |record_type, content| match record_type {
                BEGIN_REQUEST => {
                    begun = true;
                    false
                }
                STDIN => begun && content.is_empty(),
                _ => false,
            })
            .await?;
        if !asked {
            return Ok(());
        }
        end.write_all(&response).await?;
    }
}

/// A web server that sends the same request on one kept-alive connection, over and over.
#[derive(Debug)]
pub struct CannedWebServer {
    end: PipeEnd,
    request: Bytes,
    scanner: RecordScanner,
}

impl CannedWebServer {
    pub fn new(end: PipeEnd, workload: &Workload) -> Self {
        Self {
            end,
            request: workload.request_wire.clone(),
            scanner: RecordScanner::default(),
        }
    }

    /// Sends the request and reads the response up to END_REQUEST; returns the STDOUT bytes.
    pub async fn round_trip(&mut self) -> io::Result<usize> {
        self.end.write_all(&self.request).await?;
        let mut stdout = 0;
        let ended = self
            .scanner
            .read_until(&mut self.end, |record_type, content| {
                if record_type == STDOUT {
                    stdout += content.len();
                }
                record_type == END_REQUEST
            })
            .await?;
        if ended {
            Ok(stdout)
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }
}
