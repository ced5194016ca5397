//! The `plexer` binary as a command a test runs.

use std::ffi::OsString;
use std::fmt::Display;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Finished, run};

/// `plexer request --connect ADDR [-p NAME=VALUE]… [--cookie VALUE] [-X METHOD] [--body FILE]
/// URI`: one FastCGI request to any server, its raw CGI response on stdout.
#[derive(Clone, Debug)]
pub struct PlexerRequest {
    args: Vec<OsString>,
    uri: String,
    timeout: Duration,
}

impl PlexerRequest {
    /// A GET of `uri` from the server at `connect` (`unix:/path`, `tcp:HOST:PORT` or a path).
    pub fn new(connect: impl Display, uri: &str) -> Self {
        Self {
            args: vec!["--connect".into(), connect.to_string().into()],
            uri: uri.to_owned(),
            timeout: crate::RUN_TIMEOUT,
        }
    }

    /// `-p NAME=VALUE`: adds a param, or replaces one plexer derived from the URI.
    pub fn param(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.args.push("-p".into());
        self.args.push(format!("{name}={}", value.as_ref()).into());
        self
    }

    /// `-X METHOD`.
    pub fn method(mut self, method: &str) -> Self {
        self.args.extend(["-X".into(), method.into()]);
        self
    }

    /// `--body FILE`: the request body, read from a file.
    pub fn body_file(mut self, path: &Path) -> Self {
        self.args.push("--body".into());
        self.args.push(path.into());
        self
    }

    /// `--cookie VALUE`: sets `HTTP_COOKIE`.
    pub fn cookie(mut self, value: &str) -> Self {
        self.args.extend(["--cookie".into(), value.into()]);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line, for running it some other way.
    pub fn command(&self) -> Command {
        let mut command = Command::new(crate::build::plexer());
        command.arg("request").args(&self.args).arg(&self.uri);
        command
    }

    /// Runs it to completion (killed and failing the test after the timeout).
    pub fn run(&self) -> Finished {
        run(&mut self.command(), b"", self.timeout)
    }
}
