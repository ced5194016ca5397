//! plexer-prefork: the supervisor of FastCGI worker pools and the fork-safety audit.
//!
//! [`audit`] is the check the prefork parent runs before every fork, and the library behind
//! `plexer audit-fds`: it refuses to fork while a database handle would be inherited by every
//! worker.

//!
//! [`prefork`] is flup's prefork server done right, for Rust FastCGI apps: preload once,
//! audit before every fork, open connections in each worker.
//!
//! [`pool`] decides, without I/O, how many workers a pool runs and which one gets a request.
//!
//! [`spawn`] starts one worker the way FastCGI applications expect (descriptor 0 a listening
//! socket, nothing else inherited, privileges dropped) without copying the supervisor's page
//! tables; it holds the crate's `unsafe` code for starting processes (the audit's `kcmp` call is
//! the only other).

#![deny(unsafe_code)]

pub mod audit;
pub mod listen;
pub mod pool;
pub mod prefork;
#[allow(unsafe_code)]
// clone(CLONE_VM | CLONE_VFORK) and the steps before exec; see the module docs
pub mod spawn;
#[cfg(feature = "tokio")]
pub mod supervisor;
