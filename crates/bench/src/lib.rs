//! Drivers for the benchmarks in `benches/`, kept here so each bench file reads as a list of
//! comparisons.
//!
//! Every comparison runs one side under test against one canned peer, over the same
//! in-memory [`pipe`], on one `current_thread` tokio runtime:
//!
//! | module | what it holds |
//! |---|---|
//! | [`workload`] | the request (about 30 nginx params, empty stdin) and the responses, as prebuilt wire bytes |
//! | [`pipe`] | the in-memory connection: two `tokio::io::duplex` streams, one per direction |
//! | [`canned`] | the peers that do no FastCGI work of their own: an application that replays a response, a web server that replays a request |
//! | [`ours`] | plexer-fcgi's `ClientConnection` and `ServerConnection`, each in a minimal tokio loop |
//! | [`peers`] | `fastcgi-client` 0.12 (web-server side) and `tokio-fastcgi` 1.3 (application side), used as their docs show |
//!
//! Each round trip returns the STDOUT bytes it received, and the benches check that figure on
//! every iteration, so no side can win by skipping work.
//!
//! The process benchmarks (`src/bin/plexer-bench-pool.rs`, `src/bin/plexer-bench-front.rs`,
//! `src/bin/plexer-bench-pages.rs`, `src/bin/plexer-bench-accounts.rs`,
//! `src/bin/plexer-bench-cluster.rs`, …) run real servers
//! instead:
//!
//! | module | what it holds |
//! |---|---|
//! | [`php_fpm`] | Debian's php-fpm with its own configuration, stopped by a guard |
//! | [`supervised`] | plexer-prefork's supervisor in this process, with pools of `hello` |
//! | [`fcgi_get`] | one FastCGI GET with `fastcgi-client`, for both of those |
//! | [`guard`] | a server process (nginx, `plexer serve`, `plexer spawn`) stopped on drop |
//! | [`timed_run`] | a command timed to its exit and killed at a deadline (`plexer accounts add`) |
//! | [`plexer_cli`] | `plexer serve` and `plexer spawn` as processes, with their configs |
//! | [`registry_node`] | `plexer serve` as a node of a registry in PostgreSQL, or with an accounts_dir |
//! | [`routed`] | one GET routed by a signed cookie, answered with the account that served it |
//! | [`nginx`] | nginx in front of one FastCGI socket, with or without upstream keepalive |
//! | [`nginx_cell`] | one measured cell behind a fresh nginx (load, CPU from `/proc`), and medians over rounds |
//! | [`relays`] | nginx's stream module and HAProxy as byte relays between two unix sockets |
//! | [`pages`] | the real pages (a PHP table, Django's hello view) and their checks |
//! | [`timing`] | medians and spreads, formatted |
//! | [`machine`] | the machine a run was on: CPU, cores, kernel, load average |
//! | [`binaries`] | `plexer` and `hello` as given, or next to the benchmark's binary |
//!
//! The HTTP/1.1 load generator, what is read from `/proc` and the private PostgreSQL server
//! are the tests' own: `plexer_tests::load`, `plexer_tests::procfs` and
//! `plexer_tests::postgres`.

pub mod binaries;
pub mod canned;
pub mod fcgi_get;
pub mod guard;
pub mod machine;
pub mod nginx;
pub mod nginx_cell;
pub mod ours;
pub mod pages;
pub mod peers;
pub mod php_fpm;
pub mod pipe;
pub mod plexer_cli;
pub mod registry_node;
pub mod relays;
pub mod routed;
pub mod supervised;
pub mod timed_run;
pub mod timing;
pub mod workload;
