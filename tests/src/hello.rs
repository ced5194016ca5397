//! The `hello` example (examples/hello) as the backend of a test: started the way spawn-fcgi
//! starts an application (fd 0 = a listening socket) or with `--socket`, awaited until it
//! serves, killed and reaped with its guard.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::addr::Addr;
use crate::cgi::{self, CgiResponse};
use crate::process::Running;
use crate::scratch::Scratch;
use crate::wire::{self, RawResponse};

/// How `hello` gets its listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    /// fd 0 is a unix socket the test bound in its scratch directory (spawn-fcgi `-s`).
    Fd0Unix,
    /// fd 0 is a TCP socket the test bound on 127.0.0.1, port chosen by the kernel
    /// (spawn-fcgi `-a 127.0.0.1 -p …`).
    Fd0Tcp,
    /// `hello --socket unix:PATH`.
    SocketUnix,
    /// `hello --socket tcp:127.0.0.1:PORT`.
    SocketTcp,
}

/// Options for starting `hello`; [`Hello::start`] is the common case.
#[derive(Clone, Debug)]
pub struct HelloBuilder {
    listen: Listen,
    env: Vec<(String, String)>,
}

impl HelloBuilder {
    pub fn listen(mut self, listen: Listen) -> Self {
        self.listen = listen;
        self
    }

    /// Sets an environment variable of the process (e.g. `FCGI_WEB_SERVER_ADDRS`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts `hello` and waits until it accepts connections: it answers a GET_VALUES
    /// probe, or accepts and closes the connection (what an `FCGI_WEB_SERVER_ADDRS` refusal
    /// looks like). Panics, with hello's output, if it exits or does neither in time.
    pub fn start(self, scratch: &Scratch) -> Hello {
        let mut command = Command::new(crate::build::hello());
        command.env_remove("FCGI_WEB_SERVER_ADDRS");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let addr = match self.listen {
            Listen::Fd0Unix => {
                let path = scratch.socket_path("hello");
                let listener = UnixListener::bind(&path)
                    .unwrap_or_else(|err| panic!("cannot bind {path:?}: {err}"));
                command.stdin(Stdio::from(OwnedFd::from(listener)));
                Addr::Unix(path)
            }
            Listen::Fd0Tcp => {
                let listener =
                    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
                let addr = listener.local_addr().expect("local address");
                command.stdin(Stdio::from(OwnedFd::from(listener)));
                Addr::Tcp(addr)
            }
            Listen::SocketUnix => {
                let addr = Addr::Unix(scratch.socket_path("hello"));
                command
                    .stdin(Stdio::null())
                    .arg("--socket")
                    .arg(addr.to_string());
                addr
            }
            Listen::SocketTcp => {
                let addr = Addr::free_tcp_port();
                command
                    .stdin(Stdio::null())
                    .arg("--socket")
                    .arg(addr.to_string());
                addr
            }
        };
        let log = scratch.unique("hello", "log");
        let mut process = Running::spawn("hello", &mut command, &log);
        // `command` holds the parent's copy of the listener until it is dropped: drop it now,
        // so that the socket closes when hello exits.
        drop(command);

        let ready = crate::wait::wait_for_value(
            || {
                process.assert_running();
                let mut conn = addr.connect(Duration::from_secs(2)).ok()?;
                wire::probe(&mut conn).ok()
            },
            crate::START_TIMEOUT,
        );
        if ready.is_none() {
            panic!(
                "hello (pid {}) did not accept on {addr} within {:?}; its output:\n{}",
                process.pid(),
                crate::START_TIMEOUT,
                process.log()
            );
        }
        Hello { process, addr }
    }
}

/// A running `hello`, killed and reaped on drop.
#[derive(Debug)]
pub struct Hello {
    process: Running,
    addr: Addr,
}

impl Hello {
    pub fn builder() -> HelloBuilder {
        HelloBuilder {
            listen: Listen::Fd0Unix,
            env: Vec::new(),
        }
    }

    /// `hello` with fd 0 = a listening unix socket in `scratch`, ready to serve.
    pub fn start(scratch: &Scratch) -> Self {
        Self::builder().start(scratch)
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&mut self) -> &mut Running {
        &mut self.process
    }

    /// Sends one request with the CGI params a web server would derive from `method` and
    /// `uri` (see [`cgi::params_for`]), plus `extra`, and returns the raw answer.
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<RawResponse> {
        let mut params = cgi::params_for(method, uri, body.len());
        params.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut conn = self.addr.connect(Duration::from_secs(10))?;
        wire::exchange(&mut conn, &pairs, body)
    }

    /// A GET of `uri`, parsed; panics if it fails.
    pub fn get(&self, uri: &str) -> (CgiResponse, HelloAnswer) {
        let raw = self
            .request("GET", uri, &[], b"")
            .unwrap_or_else(|err| panic!("GET {uri} from hello at {} failed: {err}", self.addr));
        let response = CgiResponse::parse(&raw.stdout);
        let answer = HelloAnswer::parse(&response.body);
        (response, answer)
    }
}

/// The `key: value` lines of hello's text answer (see examples/hello).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAnswer {
    pub fields: BTreeMap<String, String>,
}

impl HelloAnswer {
    pub fn parse(body: &[u8]) -> Self {
        let fields = String::from_utf8_lossy(body)
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Self { fields }
    }

    /// The value of `key`; panics, showing the whole answer, when it is missing.
    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("hello's answer has no {key:?} line: {:?}", self.fields))
    }

    pub fn pid(&self) -> u32 {
        self.number("pid") as u32
    }

    /// The `requests:` counter: requests this process served, this one included.
    pub fn requests(&self) -> u64 {
        self.number("requests")
    }

    pub fn body_bytes(&self) -> u64 {
        self.number("body_bytes")
    }

    /// The `body_fnv1a64:` line, 16 hex digits.
    pub fn body_fnv1a64(&self) -> &str {
        self.get("body_fnv1a64")
    }

    fn number(&self, key: &str) -> u64 {
        let text = self.get(key);
        text.parse()
            .unwrap_or_else(|err| panic!("hello's {key:?} line {text:?}: {err}"))
    }
}
