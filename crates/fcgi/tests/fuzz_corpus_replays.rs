//! Every file of the checked-in fuzz corpus (`fuzz/corpus/<target>/`) run through the same
//! harness bodies the cargo-fuzz targets call, as a normal test on stable Rust: an input that
//! once found a bug stays a regression test without a nightly toolchain or libFuzzer.

mod support;

use std::path::{Path, PathBuf};

use support::fuzz_bodies::{client_decode, params_decode, server_decode};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs `body` on every corpus file of `target`; a panic names the file.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let files = corpus(target);
    for (path, bytes) in &files {
        if std::panic::catch_unwind(|| body(bytes)).is_err() {
            panic!("{target} fails on {}", path.display());
        }
    }
    files.len()
}

#[test]
fn the_server_decode_corpus_replays_cleanly() {
    let replayed = replay("server_decode", server_decode);
    assert!(
        replayed >= 10,
        "only {replayed} seed files: is the corpus checked in?"
    );
}

#[test]
fn the_client_decode_corpus_replays_cleanly() {
    let replayed = replay("client_decode", client_decode);
    assert!(
        replayed >= 10,
        "only {replayed} seed files: is the corpus checked in?"
    );
}

#[test]
fn the_params_decode_corpus_replays_cleanly() {
    let replayed = replay("params_decode", params_decode);
    assert!(
        replayed >= 8,
        "only {replayed} seed files: is the corpus checked in?"
    );
}

/// The seeds are meant to reach the interesting paths, not only to fail early: the valid
/// exchanges among them must decode without error.
#[test]
fn the_seed_exchanges_from_appendix_b_decode_without_error() {
    use bytes::Bytes;
    use plexer_fcgi::{Limits, Params, RecordType, ServerConfig, ServerConnection};

    for (path, bytes) in corpus("server_decode") {
        let name = path.file_name().unwrap().to_string_lossy();
        if !name.starts_with("appendix_b") {
            continue;
        }
        let mut conn = ServerConnection::new(ServerConfig {
            multiplex: bytes[0] & 1 != 0,
            ..ServerConfig::default()
        });
        let events = support::feed_server(&mut conn, &bytes[1..], &support::Reads::whole())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(!events.is_empty(), "{name}");
    }
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/params_decode/four_length_forms"),
    )
    .unwrap();
    let params = Params::decode(Bytes::from(body), RecordType::Params, &Limits::default()).unwrap();
    assert_eq!(params.len(), 4);
}
