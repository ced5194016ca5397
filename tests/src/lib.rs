//! Shared support for the end-to-end tests in `tests/tests/`: the one place that knows how to
//! build the binaries under test, start real peers, and stop them again.
//!
//! Every test follows the same shape:
//!
//! ```no_run
//! use plexer_tests::{Hello, PlexerRequest, Scratch};
//!
//! let scratch = Scratch::new(); // sockets and files live here, removed at the end
//! let hello = Hello::start(&scratch); // hello with fd 0 = a listening unix socket
//! let out = PlexerRequest::new(hello.addr(), "/x").run();
//! out.assert_success();
//! // `hello` is killed and reaped when dropped, also when the test panics.
//! ```
//!
//! The rules every helper keeps, so that tests can run in parallel and leave nothing behind:
//! - sockets and files live under a [`Scratch`] directory; TCP only ever binds `127.0.0.1`, or
//!   the ends of a test's own namespace links ([`netns`]);
//! - every process a test starts is a [`Running`] guard in its own process group, killed with
//!   its children and reaped on drop; its output goes to a log file that is printed when the
//!   test fails;
//! - every wait has a deadline ([`wait_for`], [`run`]), so a hung peer fails a test instead of
//!   hanging the run.
//!
//! | module | what it holds |
//! |---|---|
//! | [`build`] | the target directory, and the fallback build of `plexer` and `hello` |
//! | [`scratch`] | the per-test temporary directory |
//! | [`process`] | [`Running`] (a started server) and [`run`] (a command run to completion) |
//! | [`wait`] | polling with a deadline |
//! | [`addr`] | `unix:`/`tcp:` addresses as the CLI writes them, and connections to them |
//! | [`wire`] | FastCGI records written and read by hand, independent of `plexer-fcgi` |
//! | [`hello`] | the `hello` example as a backend, and its answers parsed |
//! | [`cgi`] | a CGI response (headers, blank line, body) parsed |
//! | [`plexer`] | `plexer request` as a command |
//! | [`php`] | Debian's `php-cgi -b` as a FastCGI peer |
//! | [`serve`] | `plexer serve` with hello accounts or on a given config, and its cookies |
//! | [`examples`] | the shipped example files under `examples/`, rendered for a test |
//! | [`nginx`] | Debian's nginx in front, on the shipped examples/nginx site file |
//! | [`lighttpd`] | Debian's lighttpd in front, on the shipped examples/lighttpd snippet |
//! | [`site`] | plexer with `hello` accounts behind nginx or lighttpd, held as one value |
//! | [`ownership`] | the owner, group and mode of a socket file, asserted |
//! | [`http`] | a small HTTP/1.0 client for nginx and lighttpd |
//! | [`browser`] | an HTTP client that keeps cookies, for walking through a site |
//! | [`chromium`] | Debian's headless Chromium: a page's rendered DOM, and a screenshot |
//! | [`django`] | the Django example behind plexer: its virtualenv, databases and config |
//! | [`log_events`] | `--log-format json` lines read as events, for assertions on fields |
//! | [`load`] | a bounded HTTP/1.1 load generator: N kept-alive connections on one thread, per-request timeouts (the front benchmark uses it too) |
//! | [`postgres`] | a private PostgreSQL server on a unix socket in the scratch directory, and on loopback TCP (and namespace links) when asked; stopped and started again |
//! | [`netns`] | a network namespace per test, linked to the root namespace by a veth pair on a /30 of its own |
//! | [`cluster`] | `plexer serve` nodes, each in its namespace on TCP, and the consistent-hashing nginx site in front of them |
//! | [`redis`] | a private Redis server on loopback TCP and on a unix socket named `cache.sock` |
//! | [`fake`] | a scripted FastCGI server that misbehaves on purpose |
//! | [`procfs`] | what is read from `/proc`: liveness, children, descriptors, memory, CPU time |
//! | [`tools`] | finding the system programs the tests need (`make test` installs them) |
//! | [`data`] | test bodies and the FNV-1a checksum `hello` reports |
//! | [`slow_lookup`] | an `LD_PRELOAD` library whose user lookups wait while a gate file exists, as a slow NSS source would |

pub mod addr;
pub mod browser;
pub mod build;
pub mod cgi;
pub mod chromium;
pub mod cluster;
pub mod data;
pub mod django;
pub mod examples;
pub mod fake;
pub mod haproxy;
pub mod hello;
pub mod http;
pub mod lighttpd;
pub mod load;
pub mod log_events;
pub mod netns;
pub mod nginx;
pub mod ownership;
pub mod pgbouncer;
pub mod php;
pub mod plexer;
pub mod postgres;
pub mod process;
pub mod procfs;
pub mod redis;
pub mod scratch;
pub mod serve;
pub mod site;
pub mod slow_lookup;
pub mod tools;
pub mod wait;
pub mod wire;

pub use addr::{Addr, Conn};
pub use browser::Browser;
pub use cgi::CgiResponse;
pub use data::{fnv1a64, pattern_bytes};
pub use django::DjangoSite;
pub use hello::{Hello, HelloAnswer, HelloBuilder};
pub use lighttpd::Lighttpd;
pub use nginx::Nginx;
pub use php::PhpCgi;
pub use plexer::PlexerRequest;
pub use postgres::Postgres;
pub use process::{Finished, Running, run};
pub use redis::Redis;
pub use scratch::Scratch;
pub use serve::{PlexerServe, ServeFiles, ServeSetup};
pub use site::Site;
pub use wait::{wait_for, wait_for_value, wait_until};

use std::time::Duration;

/// How long a test waits for a server it started to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one command run by a test ([`run`]) may take before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);
