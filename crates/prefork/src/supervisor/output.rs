//! Worker stdout and stderr, logged line by line with the pool, the pid and the stream: one
//! event per line however many pipe reads it took, a line over [`MAX_LOG_LINE`] in pieces
//! marked `continued`, and a last line without its newline (a worker that died mid-line) still
//! logged when the pipe closes.
//!
//! Reading is non-blocking on the supervisor's side, so a chatty worker never blocks the
//! supervisor, and the pipe is drained as fast as the worker writes (php-fpm's blocking stderr
//! pipe left workers stuck in `write`, php-src #11447).

use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe;

/// A longer line is logged in pieces of this size, each marked as continued.
pub const MAX_LOG_LINE: usize = 16 * 1024;

pub(super) fn forward(pool: &str, pid: Pid, stream: &'static str, pipe_end: impl Into<OwnedFd>) {
    let receiver = match pipe::Receiver::from_owned_fd(pipe_end.into()) {
        Ok(receiver) => receiver,
        Err(err) => {
            tracing::warn!(pool, %pid, stream, error = %err, "cannot read the worker's output");
            return;
        }
    };
    let pool = pool.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::new(receiver);
        let mut piece = Vec::new();
        while let Ok(Some(end)) = next_piece(&mut reader, &mut piece).await {
            let text = printable_line(&piece);
            match end {
                PieceEnd::Newline | PieceEnd::EndOfStream => {
                    tracing::info!(pool = %pool, %pid, stream, "{text}");
                }
                PieceEnd::Cut => {
                    tracing::info!(pool = %pool, %pid, stream, continued = true, "{text}");
                }
            }
        }
    });
}

/// How a piece of output ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceEnd {
    /// A whole line.
    Newline,
    /// [`MAX_LOG_LINE`] bytes of a longer line; the rest follows.
    Cut,
    /// The worker exited (or closed the stream) in the middle of a line: its last words.
    EndOfStream,
}

/// Reads the next line into `piece` (without its `\n`), however many reads it takes, up to
/// [`MAX_LOG_LINE`] bytes; `None` at the end of the stream.
async fn next_piece<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    piece: &mut Vec<u8>,
) -> std::io::Result<Option<PieceEnd>> {
    piece.clear();
    let n = reader
        .take(MAX_LOG_LINE as u64)
        .read_until(b'\n', piece)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if piece.last() == Some(&b'\n') {
        piece.pop();
        return Ok(Some(PieceEnd::Newline));
    }
    // `take` stopped at the bound, or the stream ended.
    Ok(Some(if piece.len() == MAX_LOG_LINE {
        PieceEnd::Cut
    } else {
        PieceEnd::EndOfStream
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pieces(bytes: &[u8], read_size: usize) -> Vec<(usize, PieceEnd)> {
        let mut reader = BufReader::with_capacity(read_size, bytes);
        let mut piece = Vec::new();
        let mut out = Vec::new();
        while let Some(end) = next_piece(&mut reader, &mut piece).await.unwrap() {
            out.push((piece.len(), end));
        }
        out
    }

    #[tokio::test]
    async fn a_line_longer_than_a_read_is_one_piece_and_a_last_partial_line_is_kept() {
        let mut output = vec![b'x'; 12_000];
        output.extend_from_slice(b"\nshort\nlast words");
        assert_eq!(
            pieces(&output, 4096).await,
            [
                (12_000, PieceEnd::Newline),
                (5, PieceEnd::Newline),
                (10, PieceEnd::EndOfStream)
            ]
        );
    }

    #[tokio::test]
    async fn a_line_over_the_bound_is_cut_and_marked() {
        let mut output = vec![b'y'; MAX_LOG_LINE + 100];
        output.push(b'\n');
        assert_eq!(
            pieces(&output, 8192).await,
            [(MAX_LOG_LINE, PieceEnd::Cut), (100, PieceEnd::Newline)]
        );
    }
}

/// A line of a worker's output as it can go into plexer's log: not UTF-8 bytes as U+FFFD, a
/// trailing CR dropped, and every other control character escaped (`\r`, `\u{1b}`), so that
/// a tenant cannot forge log lines or move a terminal's cursor. Tabs stay.
pub fn printable_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\r');
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_so_no_line_can_be_forged() {
        assert_eq!(printable_line(b"plain\ttext\r"), "plain\ttext");
        assert_eq!(
            printable_line(b"ok\r2026-12-03 INFO plexer: forged\x1b[2K"),
            "ok\\r2026-12-03 INFO plexer: forged\\u{1b}[2K"
        );
        assert_eq!(printable_line(b"\xff\x00"), "\u{fffd}\\u{0}");
    }
}
