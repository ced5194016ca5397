//! The application's FastCGI STDERR stream, logged line by line with the request's account and
//! worker (`stream = "fcgi_stderr"`), as it passes on to the web server.
//!
//! §5.3 makes FCGI_STDERR the stream "for sending arbitrary error data" of one request: PHP's
//! `error_log()` and Python's `wsgi.errors` write there. nginx logs it too ("FastCGI sent in
//! stderr"), but nginx cannot say which account's app wrote it; plexer can. Records split lines
//! anywhere, so bytes wait here until their newline; a line over [`MAX_LOG_LINE`] is logged in
//! pieces marked `continued`, and what is left when the request ends is logged then (on drop),
//! whichever way the request ended.

use plexer_prefork::supervisor::{MAX_LOG_LINE, printable_line};

/// The STDERR lines of one request.
pub(crate) struct StderrLines<'a> {
    account: &'a str,
    worker: Option<i32>,
    lines: LineBuffer,
}

impl<'a> StderrLines<'a> {
    pub(crate) fn new(account: &'a str, worker: Option<i32>) -> Self {
        Self {
            account,
            worker,
            lines: LineBuffer::default(),
        }
    }

    /// Adds STDERR bytes; logs every line they complete.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let (account, worker) = (self.account, self.worker);
        self.lines.push(data, |line, continued| {
            log(account, worker, line, continued)
        });
    }
}

impl Drop for StderrLines<'_> {
    fn drop(&mut self) {
        if let Some(rest) = self.lines.take_rest() {
            log(self.account, self.worker, &rest, false);
        }
    }
}

/// A tenant's bytes go into the log escaped: no control character can forge a line.
fn log(account: &str, worker: Option<i32>, line: &[u8], continued: bool) {
    let text = printable_line(line);
    if continued {
        tracing::warn!(account, worker, stream = "fcgi_stderr", continued, "{text}");
    } else {
        tracing::warn!(account, worker, stream = "fcgi_stderr", "{text}");
    }
}

/// Bytes cut into lines of at most [`MAX_LOG_LINE`] bytes.
#[derive(Debug, Default)]
struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Calls `emit(line, continued)` for each line `data` completes (without its newline), and
    /// for each [`MAX_LOG_LINE`]-byte piece of a longer one (`continued`).
    fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            self.extend(&data[..newline], &mut emit);
            emit(&self.partial, false);
            self.partial.clear();
            data = &data[newline + 1..];
        }
        self.extend(data, &mut emit);
    }

    /// Adds bytes of the current line, emitting each [`MAX_LOG_LINE`]-byte piece it fills.
    fn extend(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while self.partial.len() + data.len() > MAX_LOG_LINE {
            let room = MAX_LOG_LINE - self.partial.len();
            self.partial.extend_from_slice(&data[..room]);
            emit(&self.partial, true);
            self.partial.clear();
            data = &data[room..];
        }
        self.partial.extend_from_slice(data);
    }

    /// The bytes of an unfinished line, if any.
    fn take_rest(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.push(chunk, |line, continued| {
                out.push((String::from_utf8_lossy(line).into_owned(), continued));
            });
        }
        if let Some(rest) = buffer.take_rest() {
            out.push((String::from_utf8_lossy(&rest).into_owned(), false));
        }
        out
    }

    #[test]
    fn lines_split_across_records_come_out_whole() {
        let got = lines_of(&[b"first li", b"ne\nsec", b"ond\n\nthi", b"rd, unfinished"]);
        let want = [
            ("first line", false),
            ("second", false),
            ("", false),
            ("third, unfinished", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(l, c)| (l.to_string(), *c)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_long_line_ending_in_the_same_record_is_cut_too() {
        let mut record = vec![b'y'; MAX_LOG_LINE + 5];
        record.extend_from_slice(b"\nnext\n");
        let got = lines_of(&[&record]);
        let shape: Vec<(usize, bool)> = got.iter().map(|(l, c)| (l.len(), *c)).collect();
        assert_eq!(shape, [(MAX_LOG_LINE, true), (5, false), (4, false)]);
    }

    #[test]
    fn a_line_over_the_bound_comes_out_in_marked_pieces() {
        let long = vec![b'z'; MAX_LOG_LINE * 2 + 10];
        let got = lines_of(&[&long[..100], &long[100..], b"\n"]);
        let shape: Vec<(usize, bool)> = got.iter().map(|(l, c)| (l.len(), *c)).collect();
        assert_eq!(
            shape,
            [(MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (10, false)]
        );
    }
}
