//! The first rule of forking without exec: only one thread.
//!
//! After `fork` the child has only the thread that called it; a lock any other thread held
//! (the allocator's, a runtime's) stays locked in the child forever. Like CPython's
//! multi-threaded-fork warning (gh-100228) and Puma's "Detected N Thread(s)", the count comes
//! from `/proc/self/task`, one entry per thread.

use std::io;
use std::path::Path;

use super::error::ForkRefused;

/// Refuses unless `task_dir` (normally `/proc/self/task`) lists exactly one thread.
pub fn check_single_threaded(task_dir: &Path) -> Result<(), ForkRefused> {
    let failed = |source| ForkRefused::CannotCountThreads {
        path: task_dir.to_owned(),
        source,
    };
    let mut threads = 0;
    for entry in std::fs::read_dir(task_dir).map_err(failed)? {
        entry.map_err(failed)?;
        threads += 1;
    }
    match threads {
        1 => Ok(()),
        0 => Err(failed(io::Error::other("no thread listed"))),
        threads => Err(ForkRefused::Threaded { threads }),
    }
}
