//! Debian's headless Chromium as a real browser: it loads a page, runs its scripts, and gives
//! back the DOM as rendered (`--dump-dom`) or a screenshot. Each test gives it a profile
//! directory of its own in its scratch directory, so runs in parallel share nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Scratch, run, tools};

/// How long one page may take, start-up of the browser included.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Chromium {
    program: PathBuf,
    profile: PathBuf,
}

impl Chromium {
    /// Panics naming the package when Chromium is not installed (`make test` installs it).
    pub fn new(scratch: &Scratch) -> Self {
        Self {
            program: tools::require("chromium", "chromium"),
            profile: scratch.join("chromium-profile"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()));
        command
    }

    /// The DOM of `url` once loaded and its scripts run.
    pub fn dump_dom(&self, url: &str) -> String {
        let finished = run(self.command().arg("--dump-dom").arg(url), b"", PAGE_TIMEOUT);
        finished.assert_success();
        finished.stdout_text()
    }

    /// A PNG of `url` at `path`.
    pub fn screenshot(&self, url: &str, path: &Path) {
        let mut command = self.command();
        command
            .arg(format!("--screenshot={}", path.display()))
            .arg(url);
        run(&mut command, b"", PAGE_TIMEOUT).assert_success();
    }
}
