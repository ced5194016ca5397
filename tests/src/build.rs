//! The binaries under test, and a fallback that builds them.
//!
//! `make test` builds `plexer` and the `hello` example before the tests run, so normally this
//! only finds them. When a test is run on its own (`cargo nextest run -p plexer-tests …`) and a
//! binary is missing or older than the sources, the first test process that needs it runs
//! `cargo build` for it; an `flock(2)` on a file in the target directory makes the other test
//! processes (nextest runs each test in its own) wait for that build instead of starting theirs.
//!
//! Each binary is built by itself, so that a `plexer` that does not compile yet fails only the
//! tests that run it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

/// One binary of the workspace that the tests run.
#[derive(Clone, Copy, Debug)]
pub struct Artifact {
    /// File name under the profile directory, e.g. `plexer` or `examples/hello`.
    pub path: &'static str,
    /// The `cargo build` arguments that make it.
    pub cargo_args: &'static [&'static str],
}

/// The `plexer` binary (crates/plexer).
pub const PLEXER: Artifact = Artifact {
    path: "plexer",
    cargo_args: &["-p", "plexer", "--bin", "plexer"],
};

/// The `hello` FastCGI responder (examples/hello).
pub const HELLO: Artifact = Artifact {
    path: "examples/hello",
    cargo_args: &["-p", "plexer-fcgi", "--example", "hello"],
};

/// The prefork server example with a database (crates/prefork/examples/prefork_app.rs).
pub const PREFORK_APP: Artifact = Artifact {
    path: "examples/prefork_app",
    cargo_args: &["-p", "plexer-prefork", "--example", "prefork_app"],
};

/// The path of the `prefork_app` example, built first if missing or stale.
pub fn prefork_app() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| ensure_built(PREFORK_APP))
}

/// The path of the `plexer` binary, built first if missing or stale.
pub fn plexer() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| ensure_built(PLEXER))
}

/// The path of the `hello` example, built first if missing or stale.
pub fn hello() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| ensure_built(HELLO))
}

/// The workspace root (the directory with the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where cargo put the test binaries: the `target` directory and the profile directory
/// within it (`debug` for `cargo test` and nextest, `release` with `--release`).
///
/// Found from the running test binary (`<target>/<profile>/deps/<test>`), which honours
/// `CARGO_TARGET_DIR`, `--target-dir` and the profile without guessing; failing that, from
/// `CARGO_TARGET_DIR` or `<workspace>/target`, and `debug`.
pub fn target_dirs() -> (PathBuf, String) {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        let profile_dir = deps.parent()?;
        let profile = profile_dir.file_name()?.to_str()?.to_owned();
        Some((profile_dir.parent()?.to_path_buf(), profile))
    });
    from_exe.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        (target, "debug".to_owned())
    })
}

/// `<target>/<profile>`: where the binaries under test are.
pub fn profile_dir() -> PathBuf {
    let (target, profile) = target_dirs();
    target.join(profile)
}

/// The path of `artifact`, after building it when it is missing or older than the sources.
pub fn ensure_built(artifact: Artifact) -> PathBuf {
    let (target, profile) = target_dirs();
    let profile_dir = target.join(&profile);
    let binary = profile_dir.join(artifact.path);
    let stamp = profile_dir.join(format!(
        ".plexer-tests-{}.stamp",
        artifact.path.replace('/', "-")
    ));
    if is_fresh(&binary, &stamp) {
        return binary;
    }

    fs::create_dir_all(&profile_dir).expect("create the target profile directory");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(profile_dir.join(".plexer-tests-build.lock"))
        .expect("open the build lock file");
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .expect("lock the build lock file");
    // Another test process may have built it while this one waited for the lock.
    if is_fresh(&binary, &stamp) {
        return binary;
    }

    let started = SystemTime::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .arg("build")
        .args(artifact.cargo_args)
        .arg("--target-dir")
        .arg(&target);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}); fix the build or run `make test`, which builds first:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        binary.exists(),
        "{command:?} succeeded but {} does not exist",
        binary.display()
    );
    // The stamp says "cargo found this fresh when the build started": a source saved during
    // the build stays newer than the stamp, so the next run builds again.
    File::create(&stamp)
        .and_then(|file| file.set_modified(started))
        .expect("write the build stamp");
    binary
}

/// True when `binary` exists and it (or the stamp of a build that found it up to date) is no
/// older than every source that goes into it.
fn is_fresh(binary: &Path, stamp: &Path) -> bool {
    let Some(built) = modified(binary) else {
        return false;
    };
    let built = modified(stamp).map_or(built, |stamp| stamp.max(built));
    newest_source().is_none_or(|source| source <= built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the files a binary is built from: the crates' sources
/// and manifests, the examples, the root manifest and the lock file.
fn newest_source() -> Option<SystemTime> {
    let root = workspace_root();
    let mut newest = None;
    let mut note = |path: &Path| {
        if let Some(time) = modified(path) {
            newest = newest.max(Some(time));
        }
    };
    note(&root.join("Cargo.toml"));
    note(&root.join("Cargo.lock"));
    if let Ok(crates) = fs::read_dir(root.join("crates")) {
        for krate in crates.flatten() {
            note(&krate.path().join("Cargo.toml"));
            visit_files(&krate.path().join("src"), &mut note);
        }
    }
    visit_files(&root.join("examples"), &mut note);
    newest
}

fn visit_files(dir: &Path, visit: &mut impl FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => visit_files(&path, visit),
            Ok(_) => visit(&path),
            Err(_) => {}
        }
    }
}

/// `PLEXER serve`, with `--allow-root` when the tests run as root (as CI does): tests run
/// hello without a `user:`, and plexer refuses pools that would run as root unless told.
pub fn serve_command(plexer: &Path) -> Command {
    let mut command = Command::new(plexer);
    command.arg("serve");
    if nix::unistd::geteuid().is_root() {
        command.arg("--allow-root");
    }
    command
}
