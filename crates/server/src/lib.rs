//! plexer-server: the plexer itself, which nginx or lighttpd point `fastcgi_pass` at.
//!
//! | module | what it does |
//! |---|---|
//! | [`accounts`] | the one place that changes the running set: add, remove, reload, SIGHUP |
//! | [`audit_watch`] | the fork-safety audit of every pool, from outside |
//! | [`control`] | the control socket (0600, SO_PEERCRED) and its client |
//! | [`live`] | the running set as one snapshot each request routes with |
//! | [`upstream`] | kept-alive connections to the apps of `socket:` accounts |
//! | [`watch`] | accounts_dir watched, so files dropped in or deleted apply |
//! | [`app_stderr`] | the apps' FastCGI STDERR, logged line by line with account and worker |
//! | [`account`] | account names: what is allowed, so that no path is ever built from client text |
//! | [`config`] | the config file and the account files, every key checked |
//! | [`cookie`] | the signed routing cookie of CONTRACT.md: sign, verify, rotate keys |
//! | [`user`] | user names: what the cookie may carry and the app gets as `PLEXER_USER` |
//! | [`http_front`] | `serve --http`: the development HTTP/1.1 front, a tiny nginx before plexer |
//! | [`relay`] | one request between the web server and a backend, with backpressure |
//! | [`responses`] | what plexer answers itself, and the login headers turned into the cookie |
//! | [`serve`] | `plexer serve`: start the pools, listen, serve each connection |
//! | [`status`] | the status page, answered even while every worker is busy: a dashboard, JSON, OpenMetrics |
//! | [`metrics`] | per-request histograms and counters in atomics, and the 15-minute history rings |
//! | [`router`] | which account a request goes to, with client claims stripped first |
//! | [`slowlog`] | slow requests recorded while they run, with the stuck worker's stack |
//! | `slow_watch` | which requests are slow, looked at on a tick |
//! | [`registry`] | the accounts of `accounts_dir`, by name and by user, loaded all or nothing |
//! | [`systemd`] | socket activation and readiness notification, as systemd units expect |

pub mod access_log;
pub mod account;
mod accounts;
mod app_stderr;
mod audit_watch;
mod authorizer;
pub mod cluster;
pub mod config;
pub mod control;
pub mod cookie;
mod exposure;
mod gauge;
mod host;
mod http_front;
mod in_flight;
mod live;
mod metrics;
mod registry;
mod relay;
mod request;
mod responses;
mod router;
pub mod scheduling;
pub mod serve;
pub mod signals;
mod slow_watch;
pub mod slowlog;
pub mod status;
pub mod systemd;
mod upstream;
pub mod user;
mod watch;
