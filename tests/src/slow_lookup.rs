//! A user lookup as slow as a test wants: a small `LD_PRELOAD` library, compiled with the
//! system's `cc`, whose `getpwnam_r` waits while a gate file exists (30 s at most), as a slow
//! NSS source would (LDAP, a NIS server that went away). A lookup that waits first creates
//! `GATE.entered`, so the test knows the lookup is under way before it does the next thing.
//!
//! Only the process started with [`SlowLookup::env`] is affected; the library passes every
//! lookup on to the C library's own `getpwnam_r`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Scratch, run};

const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*lookup_fn)(const char *, struct passwd *, char *, size_t, struct passwd **);

int getpwnam_r(const char *name, struct passwd *pwd, char *buf, size_t len,
               struct passwd **result) {
    lookup_fn real = (lookup_fn)dlsym(RTLD_NEXT, "getpwnam_r");
    const char *gate = getenv("PLEXER_TEST_LOOKUP_GATE");
    if (gate != NULL && access(gate, F_OK) == 0) {
        char entered[4096];
        snprintf(entered, sizeof entered, "%s.entered", gate);
        int fd = open(entered, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
        for (int waited = 0; waited < 3000 && access(gate, F_OK) == 0; waited++) {
            usleep(10000);
        }
    }
    return real(name, pwd, buf, len, result);
}
"#;

/// The compiled library and its gate.
pub struct SlowLookup {
    library: PathBuf,
    gate: PathBuf,
}

impl SlowLookup {
    /// Compiles the library into `scratch`; the gate starts open.
    pub fn build(scratch: &Scratch) -> Self {
        let source = scratch.write("slow_lookup.c", SOURCE);
        let library = scratch.join("slow_lookup.so");
        let mut cc = Command::new(crate::tools::require("cc", "gcc"));
        cc.args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl");
        run(&mut cc, b"", Duration::from_secs(60)).assert_success();
        Self {
            library,
            gate: scratch.join("lookup.gate"),
        }
    }

    /// The environment that makes a process's user lookups go through the gate.
    pub fn env(&self) -> [(&'static str, &Path); 2] {
        [
            ("LD_PRELOAD", &self.library),
            ("PLEXER_TEST_LOOKUP_GATE", &self.gate),
        ]
    }

    /// From now on, user lookups wait until [`release`](Self::release).
    pub fn hold(&self) {
        let _ = std::fs::remove_file(self.entered_marker());
        std::fs::write(&self.gate, "").expect("create the lookup gate");
    }

    /// Lets every waiting lookup go on.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.gate);
    }

    /// Whether a lookup is waiting (or waited) since [`hold`](Self::hold).
    pub fn entered(&self) -> bool {
        self.entered_marker().exists()
    }

    fn entered_marker(&self) -> PathBuf {
        let mut marker = self.gate.clone().into_os_string();
        marker.push(".entered");
        PathBuf::from(marker)
    }
}

impl Drop for SlowLookup {
    fn drop(&mut self) {
        self.release();
    }
}
