//! The shipped example files under `examples/` (nginx and lighttpd configs, the Django
//! project), rendered for a test: the few deployment-specific strings in them (a socket path, a
//! port, a directory) are replaced by the test's own. Every replaced string must occur in the
//! file, so that an edit to an example which breaks the test's substitution fails the test
//! instead of silently testing something else.

use std::path::PathBuf;

/// The repository's root directory (the workspace that holds `tests/`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ lies inside the repository")
        .to_path_buf()
}

/// `examples/RELATIVE` in the repository.
pub fn path(relative: &str) -> PathBuf {
    repo_root().join("examples").join(relative)
}

/// The text of `examples/RELATIVE`.
pub fn read(relative: &str) -> String {
    let file = path(relative);
    std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("cannot read {file:?}: {err}"))
}

/// The text of `examples/RELATIVE` with every occurrence of each `from` replaced by its `to`.
/// Panics, naming the file, when a `from` does not occur.
pub fn render(relative: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = read(relative);
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "examples/{relative} no longer contains {from:?}, which the test replaces with \
             {to:?}: update the test together with the example"
        );
        text = text.replace(from, to);
    }
    text
}
