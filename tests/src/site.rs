//! A plexer with the default `hello` accounts behind a real web server (nginx or lighttpd),
//! held as one value by the tests that talk HTTP to the front.

use std::path::Path;

use crate::{Lighttpd, Nginx, PlexerServe, Scratch, ServeSetup};

/// A web server in front of plexer, reached on 127.0.0.1.
pub trait Front {
    fn port(&self) -> u16;
}

impl Front for Nginx {
    fn port(&self) -> u16 {
        self.port
    }
}

impl Front for Lighttpd {
    fn port(&self) -> u16 {
        self.port
    }
}

/// plexer (`ServeSetup::default()`: login, bob and sue) with `front` passing it every request.
pub struct Site<F> {
    pub plexer: PlexerServe,
    pub front: F,
    /// Last, since fields drop in declaration order: the servers stop, and print their logs
    /// when the test failed, before the directory that holds those logs is removed.
    _scratch: Scratch,
}

impl Site<Nginx> {
    pub fn behind_nginx() -> Self {
        Self::start(Nginx::start)
    }
}

impl Site<Lighttpd> {
    pub fn behind_lighttpd() -> Self {
        Self::start(Lighttpd::start)
    }
}

impl<F: Front> Site<F> {
    fn start(front: impl FnOnce(&Scratch, &Path) -> F) -> Self {
        let scratch = Scratch::new();
        let plexer = PlexerServe::start(&scratch, ServeSetup::default());
        let front = front(&scratch, &plexer.socket);
        Self {
            plexer,
            front,
            _scratch: scratch,
        }
    }

    /// The front's HTTP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.front.port()
    }
}
