//! A `tokio_util::codec` adapter (feature `tokio`): FastCGI records as frames (§3.3).
//!
//! For callers that want a `Framed` stream of [`Record`]s. The connection state machines in
//! [`crate::server`] and [`crate::client`] do more (streams, management records, limits) and
//! need no adapter: read into their buffer, write their [`crate::Outbox`].

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, UsageError};
use crate::protocol::Header;
use crate::record::{Record, check_clean_eof, decode_record};

/// Frames records: decodes whole records, encodes one record per item. Encoding a body over
/// 65535 bytes is an error, not a silent split: a record is what the caller asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, Error> {
        Ok(decode_record(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Record>, Error> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None => check_clean_eof(src).map(|()| None).map_err(Error::from),
        }
    }
}

impl Encoder<Record> for RecordCodec {
    type Error = Error;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> Result<(), Error> {
        let len = u16::try_from(record.body.len())
            .map_err(|_| UsageError::RecordTooLong(record.body.len()))?;
        let header = Header::new(record.record_type, record.request_id, len);
        dst.reserve(header.record_len());
        dst.put_slice(&header.to_bytes());
        dst.put_slice(&record.body);
        dst.put_bytes(0, usize::from(header.padding_length));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordType;
    use bytes::Bytes;

    #[test]
    fn records_round_trip_through_the_codec() {
        let mut codec = RecordCodec;
        let mut wire = BytesMut::new();
        let record = Record {
            record_type: RecordType::Stdout,
            request_id: 1,
            body: Bytes::from_static(b"hello"),
        };
        codec.encode(record.clone(), &mut wire).unwrap();
        assert_eq!(wire.len(), 16);
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(record));
        assert!(codec.decode_eof(&mut wire).unwrap().is_none());
        wire.extend_from_slice(&[1, 6, 0]);
        assert!(codec.decode_eof(&mut wire).is_err());
    }

    #[test]
    fn a_body_over_one_record_is_refused_not_split() {
        let record = Record {
            record_type: RecordType::Stdout,
            request_id: 1,
            body: Bytes::from(vec![0u8; 70_000]),
        };
        let mut wire = BytesMut::new();
        let err = RecordCodec.encode(record, &mut wire).unwrap_err();
        assert!(err.to_string().contains("at most 65535"), "{err}");
        assert!(wire.is_empty());
    }
}
