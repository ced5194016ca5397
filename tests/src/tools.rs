//! The system programs the tests run (php-cgi, cgi-fcgi, later nginx and lighttpd). `make test`
//! installs them from Debian's packages when missing; a test run without them fails with a
//! message that says so rather than skipping, so that a missing peer never passes silently.

use std::path::{Path, PathBuf};

/// The full path of `program`, searched in `$PATH` and the sbin directories (nginx and
/// lighttpd live in /usr/sbin, which is not in every user's `$PATH`). Panics naming the Debian
/// package to install when it is missing.
pub fn require(program: &str, debian_package: &str) -> PathBuf {
    find(program).unwrap_or_else(|| {
        panic!(
            "{program} is not installed: `make test` installs it, or run \
             `apt-get install {debian_package}`"
        )
    })
}

/// The full path of `program`, if it is installed.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// libfcgi's `cgi-fcgi` (package libfcgi-bin).
pub fn cgi_fcgi() -> PathBuf {
    require("cgi-fcgi", "libfcgi-bin")
}

/// `php-cgi` (package php-cgi).
pub fn php_cgi() -> PathBuf {
    require("php-cgi", "php-cgi")
}
