//! Records onto the wire (§3.3), queued for one vectored write.
//!
//! Small records (END_REQUEST, short bodies) are copied into one contiguous buffer so that a
//! typical response leaves in one `writev` of a few slices. Large bodies are queued as the
//! caller's [`Bytes`] without copying, next to an inline header, so relaying a STDOUT body from
//! one socket to another costs an 8-byte header, no memcpy of the body and no allocation. The [`Outbox`] is a [`Buf`]: write it with
//! `write_vectored` (std) or `write_all_buf` (tokio), then advance it by what was written.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::{HEADER_LEN, Header, MAX_CONTENT_LEN, RecordType};

/// Bodies at least this long are queued by reference instead of copied.
const COPY_BELOW: usize = 4096;
const ZERO_PADDING: [u8; 8] = [0; 8];

/// One run of queued bytes. Nothing here allocates per record: headers are inline, padding is
/// a static slice, large bodies are the caller's `Bytes`, and small records are ranges of one
/// copy buffer that is reused once written.
#[derive(Debug)]
enum Piece {
    /// The next `len` bytes of [`Outbox::copied`].
    Copied(usize),
    /// A record header, of which `at..` is still to be written.
    Header([u8; HEADER_LEN], usize),
    Body(Bytes),
    /// `len` bytes of zero padding.
    Padding(usize),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Self::Copied(len) | Self::Padding(len) => *len,
            Self::Header(_, at) => HEADER_LEN - at,
            Self::Body(body) => body.len(),
        }
    }
}

/// A queue of encoded records waiting to be written.
#[derive(Debug, Default)]
pub struct Outbox {
    pieces: VecDeque<Piece>,
    /// Where small records are copied; consumed from the front as it is written.
    copied: BytesMut,
    len: usize,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `additional` more bytes of copied records at once, so that records
    /// queued one after another do not grow the buffer step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.copied.reserve(additional);
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues one record; `body` must fit one record (at most 65535 bytes).
    ///
    /// # Panics
    /// If `body` is longer: the length would not fit the header, and a silently truncated
    /// length would corrupt the stream. Use [`Outbox::push_stream`] for stream data.
    pub fn push_record(&mut self, record_type: RecordType, request_id: u16, body: Bytes) {
        if body.len() < COPY_BELOW {
            return self.push_record_slice(record_type, request_id, &body);
        }
        assert!(
            body.len() <= MAX_CONTENT_LEN,
            "one record carries at most 65535 bytes, not {}",
            body.len()
        );
        let header = Header::new(record_type, request_id, body.len() as u16);
        self.len += header.record_len();
        self.pieces.push_back(Piece::Header(header.to_bytes(), 0));
        self.pieces.push_back(Piece::Body(body));
        if header.padding_length > 0 {
            self.pieces
                .push_back(Piece::Padding(usize::from(header.padding_length)));
        }
    }

    /// Queues a record whose body is a borrowed slice (always copied).
    ///
    /// # Panics
    /// If `body` is longer than one record, as [`Outbox::push_record`].
    pub fn push_record_slice(&mut self, record_type: RecordType, request_id: u16, body: &[u8]) {
        assert!(
            body.len() <= MAX_CONTENT_LEN,
            "one record carries at most 65535 bytes, not {}",
            body.len()
        );
        let header = Header::new(record_type, request_id, body.len() as u16);
        let len = header.record_len();
        self.copied.reserve(len);
        self.copied.put_slice(&header.to_bytes());
        self.copied.put_slice(body);
        self.copied
            .put_slice(&ZERO_PADDING[..usize::from(header.padding_length)]);
        self.len += len;
        match self.pieces.back_mut() {
            Some(Piece::Copied(run)) => *run += len,
            _ => self.pieces.push_back(Piece::Copied(len)),
        }
    }

    /// Queues one record of `len` bytes that `fill` appends to the copy buffer in place, so a
    /// body built from parts (a params stream) needs no buffer of its own.
    ///
    /// # Errors
    /// Whatever `fill` returns; the outbox is left as it was.
    ///
    /// # Panics
    /// If `fill` appends other than `len` bytes: the header is already written.
    pub fn push_record_with<E>(
        &mut self,
        record_type: RecordType,
        request_id: u16,
        len: usize,
        fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        assert!(
            len <= MAX_CONTENT_LEN,
            "one record carries at most 65535 bytes"
        );
        let header = Header::new(record_type, request_id, len as u16);
        let record_len = header.record_len();
        let start = self.copied.len();
        self.copied.reserve(record_len);
        self.copied.put_slice(&header.to_bytes());
        if let Err(err) = fill(&mut self.copied) {
            self.copied.truncate(start);
            return Err(err);
        }
        assert_eq!(
            self.copied.len() - start,
            HEADER_LEN + len,
            "fill wrote the announced length"
        );
        self.copied
            .put_slice(&ZERO_PADDING[..usize::from(header.padding_length)]);
        self.len += record_len;
        match self.pieces.back_mut() {
            Some(Piece::Copied(run)) => *run += record_len,
            _ => self.pieces.push_back(Piece::Copied(record_len)),
        }
        Ok(())
    }

    /// Queues `data` as non-empty records of a stream, split at the 65535-byte record limit.
    /// Empty `data` queues nothing: the empty record ends a stream, see [`Self::push_stream_end`].
    pub fn push_stream(&mut self, record_type: RecordType, request_id: u16, mut data: Bytes) {
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(MAX_CONTENT_LEN));
            self.push_record(record_type, request_id, piece);
        }
    }

    /// Like [`push_stream`](Self::push_stream) for borrowed bytes: copied once, into the copy
    /// buffer, in records of at most 65535 bytes.
    pub fn push_stream_slice(&mut self, record_type: RecordType, request_id: u16, data: &[u8]) {
        for piece in data.chunks(MAX_CONTENT_LEN) {
            self.push_record_slice(record_type, request_id, piece);
        }
    }

    /// Queues the empty record that ends a stream (§3.3).
    pub fn push_stream_end(&mut self, record_type: RecordType, request_id: u16) {
        self.push_record_slice(record_type, request_id, &[]);
    }

    /// Moves everything queued in `other` to the end of this outbox, without copying: its copy
    /// buffer's runs become shared slices. Lets a connection's state machine keep queueing
    /// while an earlier batch is still being written.
    pub fn append(&mut self, other: &mut Outbox) {
        self.len += std::mem::take(&mut other.len);
        for piece in other.pieces.drain(..) {
            match piece {
                Piece::Copied(len) => {
                    let run = other.copied.split_to(len).freeze();
                    self.pieces.push_back(Piece::Body(run));
                }
                other_piece => self.pieces.push_back(other_piece),
            }
        }
    }

    /// Fills `dst` with slices of the queued bytes, oldest first, for one `writev`.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.chunks_vectored(dst)
    }

    /// The bytes of each piece, in order; `Copied` runs are consecutive in `copied`.
    fn slices(&self) -> impl Iterator<Item = &[u8]> {
        let mut copied_at = 0;
        self.pieces.iter().map(move |piece| match piece {
            Piece::Copied(len) => {
                let run = &self.copied[copied_at..copied_at + len];
                copied_at += len;
                run
            }
            Piece::Header(bytes, at) => &bytes[*at..],
            Piece::Body(body) => &body[..],
            Piece::Padding(len) => &ZERO_PADDING[..*len],
        })
    }
}

impl Buf for Outbox {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.slices().next().unwrap_or_default()
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len, "advanced past the end of the outbox");
        self.len -= cnt;
        while cnt > 0 {
            let front = self.pieces.front_mut().expect("len counts the pieces");
            let take = cnt.min(front.len());
            cnt -= take;
            if take == front.len() {
                if let Piece::Copied(len) = front {
                    self.copied.advance(*len);
                }
                self.pieces.pop_front();
                continue;
            }
            match front {
                Piece::Copied(len) => {
                    self.copied.advance(take);
                    *len -= take;
                }
                Piece::Header(_, at) => *at += take,
                Piece::Body(body) => body.advance(take),
                Piece::Padding(len) => *len -= take,
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, piece) in dst.iter_mut().zip(self.slices()) {
            *slot = IoSlice::new(piece);
            filled += 1;
        }
        filled
    }
}

/// The encoded bytes of one record, for tests and one-off writes.
pub fn encode_record(record_type: RecordType, request_id: u16, body: &[u8]) -> Bytes {
    let mut outbox = Outbox::new();
    outbox.push_record_slice(record_type, request_id, body);
    outbox.copy_to_bytes(outbox.remaining())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::decode_record;

    fn drain(outbox: &mut Outbox) -> BytesMut {
        let mut out = BytesMut::new();
        while outbox.has_remaining() {
            let chunk = outbox.chunk();
            let n = chunk.len().min(3); // odd advances cross chunk boundaries
            out.put_slice(&chunk[..n]);
            outbox.advance(n);
        }
        out
    }

    #[test]
    fn large_bodies_are_queued_without_copying() {
        let body = Bytes::from(vec![7u8; 10_001]); // 10_001 needs 7 bytes of padding
        let mut outbox = Outbox::new();
        outbox.push_record(RecordType::Stdout, 1, body.clone());
        let mut slices = [IoSlice::new(&[]); 4];
        let n = outbox.io_slices(&mut slices);
        assert_eq!(n, 3, "header, body, padding");
        assert_eq!(slices[1].as_ptr(), body.as_ptr());
    }

    #[test]
    fn streams_split_at_the_record_limit_and_decode_back() {
        let data = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let mut outbox = Outbox::new();
        outbox.push_stream(RecordType::Stdin, 9, data.clone());
        outbox.push_stream_end(RecordType::Stdin, 9);
        let mut wire = drain(&mut outbox);
        let mut got = Vec::new();
        let mut records = 0;
        while let Some(record) = decode_record(&mut wire).unwrap() {
            assert!(record.body.len() <= MAX_CONTENT_LEN);
            assert_eq!(record.request_id, 9);
            got.extend_from_slice(&record.body);
            records += 1;
        }
        assert_eq!(records, 5, "4 full records and the empty end");
        assert_eq!(got, data);
    }

    #[test]
    fn append_moves_records_in_order_without_copying_large_bodies() {
        let body = Bytes::from(vec![9u8; 5000]);
        let mut first = Outbox::new();
        first.push_record_slice(RecordType::Stdout, 1, b"head");
        let mut second = Outbox::new();
        second.push_record(RecordType::Stdout, 1, body.clone());
        second.push_stream_end(RecordType::Stdout, 1);
        first.append(&mut second);
        assert!(second.is_empty());
        let mut slices = [IoSlice::new(&[]); 8];
        let n = first.io_slices(&mut slices);
        assert!(slices[..n].iter().any(|s| s.as_ptr() == body.as_ptr()));
        let mut wire = drain(&mut first);
        let bodies: Vec<usize> = std::iter::from_fn(|| decode_record(&mut wire).unwrap())
            .map(|r| r.body.len())
            .collect();
        assert_eq!(bodies, [4, 5000, 0]);
    }

    #[test]
    fn encode_record_pads_to_eight() {
        let wire = encode_record(RecordType::Stdout, 1, b"abc");
        assert_eq!(
            &wire[..],
            &[1, 6, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]
        );
    }
}
