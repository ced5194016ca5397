//! Where one of a request's byte streams stands (STDIN, DATA, STDERR): the one state both
//! ends of a connection keep per stream, with one transition for each record.

/// A stream of one request: open until its empty end record (§3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    Open,
    Ended,
}

/// What a record of an open stream, or of an ended one, means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Bytes of the stream.
    Bytes,
    /// Its end: the stream is now ended.
    End,
    /// An end record again: says nothing new (the fastcgi-client crate sends one).
    EndAgain,
}

/// Bytes of a stream that had ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AfterEnd;

impl StreamState {
    /// A record of this stream arrived; `empty`: the end record.
    #[inline]
    pub(crate) fn receive(&mut self, empty: bool) -> Result<Arrival, AfterEnd> {
        match (*self, empty) {
            (StreamState::Open, false) => Ok(Arrival::Bytes),
            (StreamState::Open, true) => {
                *self = StreamState::Ended;
                Ok(Arrival::End)
            }
            (StreamState::Ended, true) => Ok(Arrival::EndAgain),
            (StreamState::Ended, false) => Err(AfterEnd),
        }
    }

    /// Whether bytes may still be sent on it.
    #[inline]
    pub(crate) fn is_open(self) -> bool {
        self == StreamState::Open
    }

    /// Ends it; `Err` when it had ended already.
    #[inline]
    pub(crate) fn end(&mut self) -> Result<(), AfterEnd> {
        match std::mem::replace(self, StreamState::Ended) {
            StreamState::Open => Ok(()),
            StreamState::Ended => Err(AfterEnd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_takes_bytes_then_one_end_and_then_only_more_ends() {
        let mut stream = StreamState::Open;
        assert_eq!(stream.receive(false), Ok(Arrival::Bytes));
        assert_eq!(stream.receive(true), Ok(Arrival::End));
        assert_eq!(stream.receive(true), Ok(Arrival::EndAgain));
        assert_eq!(stream.receive(false), Err(AfterEnd));
        assert!(!stream.is_open());
    }

    #[test]
    fn ending_twice_is_refused() {
        let mut stream = StreamState::Open;
        assert_eq!(stream.end(), Ok(()));
        assert_eq!(stream.end(), Err(AfterEnd));
    }
}
