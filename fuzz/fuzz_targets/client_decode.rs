//! Bytes from an application into a ClientConnection with a request in flight.
//! The body is shared with the stable replay test, crates/fcgi/tests/fuzz_corpus_replays.rs.
#![no_main]
// The included file holds all three bodies; this target calls one.
#![allow(dead_code)]

include!("../../crates/fcgi/tests/support/fuzz_bodies.rs");

libfuzzer_sys::fuzz_target!(|input: &[u8]| client_decode(input));
