//! Records off the wire (§3.3): cut a byte buffer into whole records.
//!
//! The decoder waits until a record's header, content and padding are all buffered, then hands
//! out the content as [`Bytes`] that share the read buffer's memory. A relay can write that same
//! `Bytes` to another socket without copying it. Padding is skipped as §3.3 requires ("the
//! receiver ignores the padding"), whatever its length.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::protocol::{HEADER_LEN, Header, NULL_REQUEST_ID, RecordType, VERSION_1};

/// One record: its type, its request id, and its content without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub record_type: RecordType,
    pub request_id: u16,
    pub body: Bytes,
}

impl Record {
    /// The body of a fixed 8-byte record (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE), or the
    /// error naming its wrong length.
    pub(crate) fn eight_byte_body(&self) -> Result<&[u8; 8], ProtocolError> {
        self.body
            .first_chunk::<8>()
            .filter(|_| self.body.len() == 8)
            .ok_or(ProtocolError::BadBodyLength {
                record_type: self.record_type,
                len: self.body.len(),
                expected: 8,
            })
    }

    /// Management records carry request id 0 (§3.3).
    pub fn is_management(&self) -> bool {
        self.request_id == NULL_REQUEST_ID
    }
}

/// Takes the next whole record off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds less than a whole record; nothing is consumed then, and
/// `buf` has been given room for the rest. A version other than 1 is refused as soon as the
/// header is in, since nothing after it can be trusted to be framed the same way.
pub fn decode_record(buf: &mut BytesMut) -> Result<Option<Record>, ProtocolError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(head);
    if header.version != VERSION_1 {
        return Err(ProtocolError::BadVersion(header.version));
    }
    let total = header.record_len();
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let body = buf.split_to(usize::from(header.content_length)).freeze();
    buf.advance(usize::from(header.padding_length));
    Ok(Some(Record {
        record_type: header.record_type,
        request_id: header.request_id,
        body,
    }))
}

/// What is left in `buf` when the peer closed: nothing, or the start of a record it never
/// finished.
pub fn check_clean_eof(buf: &BytesMut) -> Result<(), ProtocolError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::TruncatedRecord {
            buffered: buf.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_whole_record_including_padding() {
        let wire = [1, 6, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0];
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(decode_record(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed at {cut}");
        }
        let mut buf = BytesMut::from(&wire[..]);
        let record = decode_record(&mut buf).unwrap().unwrap();
        assert_eq!(record.record_type, RecordType::Stdout);
        assert_eq!(record.request_id, 1);
        assert_eq!(&record.body[..], b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_a_bad_version_from_the_header_alone() {
        let mut buf = BytesMut::from(&[7u8, 6, 0, 1, 0, 3, 0, 0][..]);
        assert_eq!(decode_record(&mut buf), Err(ProtocolError::BadVersion(7)));
    }

    #[test]
    fn an_eof_inside_a_record_is_reported() {
        let buf = BytesMut::from(&[1u8, 6, 0][..]);
        assert_eq!(
            check_clean_eof(&buf),
            Err(ProtocolError::TruncatedRecord { buffered: 3 })
        );
    }

    #[test]
    fn bodies_share_the_read_buffer() {
        let mut buf = BytesMut::from(&[1u8, 5, 0, 1, 0, 2, 0, 0, b'h', b'i'][..]);
        let start = buf.as_ptr() as usize;
        let record = decode_record(&mut buf).unwrap().unwrap();
        assert_eq!(record.body.as_ptr() as usize, start + HEADER_LEN);
    }
}
