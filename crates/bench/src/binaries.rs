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

/// The two binaries most process benchmarks run: `plexer` and the `hello` example.
pub struct PlexerAndHello {
    pub plexer: PathBuf,
    pub hello: PathBuf,
}

impl PlexerAndHello {
    /// From `--plexer PATH --hello PATH` on the command line, each looked for next to this
    /// binary when not given; panics with what to build when one is missing.
    pub fn from_args() -> Self {
        let (mut plexer, mut hello) = (None, None);
        let mut argv = std::env::args().skip(1);
        while let Some(arg) = argv.next() {
            match arg.as_str() {
                "--plexer" => plexer = Some(argv.next().expect("--plexer PATH").into()),
                "--hello" => hello = Some(argv.next().expect("--hello PATH").into()),
                other => panic!("unknown argument {other:?}: use --plexer PATH --hello PATH"),
            }
        }
        let found =
            |given, name, build| find(given, name, build).unwrap_or_else(|why| panic!("{why}"));
        Self {
            plexer: found(plexer, "plexer", BUILD_PLEXER),
            hello: found(hello, "examples/hello", BUILD_HELLO),
        }
    }
}

/// The value of a count option (`--seconds N`, `--rounds N`): a whole number above 0, or an
/// error naming the option.
pub fn count_option(option: &str, value: Option<String>) -> Result<u64, String> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{option} takes a whole number above 0"))
}

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

    #[test]
    fn a_count_option_is_a_whole_number_above_zero_or_an_error_naming_it() {
        assert_eq!(count_option("--rounds", Some("5".into())), Ok(5));
        for bad in [
            None,
            Some("0".into()),
            Some("-1".into()),
            Some("five".into()),
        ] {
            assert_eq!(
                count_option("--rounds", bad),
                Err("--rounds takes a whole number above 0".into())
            );
        }
    }
}
