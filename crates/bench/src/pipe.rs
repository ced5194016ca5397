//! The in-memory connection both sides of every benchmark talk over.
//!
//! It is two `tokio::io::duplex` streams, each used in one direction only, so that the
//! application side can be handed a read half and a write half that share no lock (what
//! `tokio-fastcgi`'s `Requests::from_split_socket` wants), while a caller that needs one stream
//! (`fastcgi-client`, our drivers) gets a [`PipeEnd`] that is both. Every side under test uses
//! the same type, so the pipe costs them all the same.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// Bytes each direction buffers before a writer waits for the reader: about a Unix socket's
/// default send buffer, so a 1 MiB response crosses in several turns, as it would in the plexer.
pub const PIPE_CAPACITY: usize = 256 * 1024;

/// One end of the connection: reads what the other end wrote, writes what it will read.
#[derive(Debug)]
pub struct PipeEnd {
    pub rd: DuplexStream,
    pub wr: DuplexStream,
}

/// A connected pair of ends.
pub fn pipe() -> (PipeEnd, PipeEnd) {
    let (a_wr, b_rd) = tokio::io::duplex(PIPE_CAPACITY);
    let (b_wr, a_rd) = tokio::io::duplex(PIPE_CAPACITY);
    (
        PipeEnd { rd: a_rd, wr: a_wr },
        PipeEnd { rd: b_rd, wr: b_wr },
    )
}

impl AsyncRead for PipeEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().rd).poll_read(cx, buf)
    }
}

impl AsyncWrite for PipeEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().wr).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().wr).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.wr.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().wr).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().wr).poll_shutdown(cx)
    }
}
