//! A `tokio_util::codec` adapter (feature `tokio`): FastCGI records as frames (§3.3).
//!
//! For callers that want a `Framed` stream of [`Record`]s. The connection state machines in
//! [`crate::server`] and [`crate::client`] do more (streams, management records, limits) and
//! need no adapter: read into their buffer, write their [`crate::Outbox`].

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::Error;
use crate::protocol::MAX_CONTENT_LEN;
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
        if record.body.len() > MAX_CONTENT_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a record body of {} bytes: one record carries at most 65535",
                    record.body.len()
                ),
            )
            .into());
        }
        let mut outbox = crate::Outbox::new();
        outbox.push_record(record.record_type, record.request_id, record.body);
        dst.put(outbox);
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
}
