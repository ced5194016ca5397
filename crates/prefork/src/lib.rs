//! plexer-prefork: the supervisor of FastCGI worker pools and the fork-safety audit.
//!
//! [`audit`] is the check the prefork parent runs before every fork, and the library behind
//! `plexer audit-fds`: it refuses to fork while a database handle would be inherited by every
//! worker.

pub mod audit;
