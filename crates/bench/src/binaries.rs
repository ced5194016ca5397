//! The binaries a benchmark runs (`plexer`, the `hello` example): the path given on its command
//! line, or else the one next to the benchmark's own binary, where `cargo build --release` puts
//! them beside it (`target/release/plexer`, `target/release/examples/hello`).

use std::path::PathBuf;

/// `given`, or `name` (relative, e.g. `examples/hello`) next to this binary; an error saying
/// how to build it when the file is not there.
pub fn find(given: Option<PathBuf>, name: &str, build: &str) -> Result<PathBuf, String> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|err| format!("cannot find this binary: {err}"))?
            .parent()
            .ok_or("this binary has no directory")?
            .join(name),
    };
    if !path.is_file() {
        return Err(format!(
            "{} does not exist: build it with `{build}`, or pass its path",
            path.display()
        ));
    }
    Ok(path)
}

/// How `cargo` builds `plexer` for a benchmark.
pub const BUILD_PLEXER: &str = "cargo build --release -p plexer --bin plexer";
/// How `cargo` builds `hello` for a benchmark.
pub const BUILD_HELLO: &str = "cargo build --release -p plexer-fcgi --example hello";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_path_is_taken_and_a_missing_one_says_how_to_build_it() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(find(Some(me.clone()), "x", "make x"), Ok(me));
        let err = find(None, "no-such-binary", "make it").unwrap_err();
        assert!(err.contains("no-such-binary does not exist: build it with `make it`"));
    }
}
