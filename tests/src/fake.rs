//! A FastCGI server scripted by the test, for what no real application does on purpose:
//! broken records, early closes. It serves one connection on a unix socket from a thread.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::addr::Addr;
use crate::scratch::Scratch;
use crate::wire::{self, RawRecord};

/// What the fake server does after writing its scripted answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Keeps the connection open until the client closes it: the client has to notice the
    /// problem in what it received, not from an EOF.
    WaitForClientClose,
    /// Closes the connection at once.
    Close,
}

/// A one-connection fake server. Dropping it does not wait for the thread (which gives up
/// by itself when no client comes).
#[derive(Debug)]
pub struct FakeServer {
    addr: Addr,
    thread: Option<JoinHandle<io::Result<Vec<RawRecord>>>>,
}

/// How long the fake server waits for a client, or for the client's next bytes.
const PATIENCE: Duration = Duration::from_secs(15);

impl FakeServer {
    /// Listens on a new unix socket in `scratch`; for the first connection, reads the whole
    /// request (up to the empty STDIN record that ends it), writes `answer`, then does `then`.
    pub fn start(scratch: &Scratch, answer: Vec<u8>, then: Then) -> Self {
        let path = scratch.socket_path("fake");
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|err| panic!("cannot bind {path:?}: {err}"));
        let thread = thread::spawn(move || serve_one(&listener, &answer, then));
        Self {
            addr: Addr::Unix(path),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Waits for the connection to end; returns the records the client sent.
    pub fn join(mut self) -> io::Result<Vec<RawRecord>> {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("the fake server thread panicked")
    }
}

fn serve_one(listener: &UnixListener, answer: &[u8], then: Then) -> io::Result<Vec<RawRecord>> {
    listener.set_nonblocking(true)?;
    let stream = crate::wait::wait_for_value(
        || match listener.accept() {
            Ok((stream, _)) => Some(Ok(stream)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
            Err(err) => Some(Err(err)),
        },
        PATIENCE,
    )
    .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no client connected"))??;
    let mut stream: UnixStream = stream;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;

    let mut received = Vec::new();
    while let Some(record) = wire::read_record(&mut stream)? {
        let end_of_stdin = record.kind == wire::kind::STDIN && record.content.is_empty();
        received.push(record);
        if end_of_stdin {
            break;
        }
    }
    stream.write_all(answer)?;
    if then == Then::WaitForClientClose {
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink)? > 0 {}
    }
    Ok(received)
}
