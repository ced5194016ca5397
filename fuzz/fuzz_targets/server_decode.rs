//! Bytes from a web server into a ServerConnection; every request is answered.
//! The body is shared with the stable replay test, crates/fcgi/tests/fuzz_corpus_replays.rs.
#![no_main]
// The included file holds all three bodies; this target calls one.
#![allow(dead_code)]

include!("../../crates/fcgi/tests/support/fuzz_bodies.rs");

libfuzzer_sys::fuzz_target!(|input: &[u8]| server_decode(input));
