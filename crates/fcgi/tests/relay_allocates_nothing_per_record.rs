//! The relay path allocates nothing per STDOUT record (issue 2's second goal).
//!
//! The plexer relays a worker's STDOUT to the web server record by record: it reads the
//! worker's socket into one `BytesMut`, cuts records off it with
//! [`plexer_fcgi::record::decode_record`] (bodies share the read buffer), queues each body under
//! the web server's request id with [`Outbox::push_record`], and writes the outbox. This test
//! does exactly that over a 16 MiB stream, with `extend_from_slice` standing in for the socket
//! read and a bounded "write" standing in for `writev`, and counts every call into the global
//! allocator on this thread while it runs. The count must not grow with the number of records.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::IoSlice;

use bytes::{Buf, BytesMut};
use plexer_fcgi::protocol::Header;
use plexer_fcgi::record::decode_record;
use plexer_fcgi::{Outbox, RecordType};

/// Counts `alloc`, `alloc_zeroed` and `realloc` calls made by a thread while it has counting
/// on. The count is per thread so that the harness's threads, and the other test running in
/// parallel, do not disturb the figure.
struct CountingAllocator;

thread_local! {
    // `const` initialisation and no destructor: using them never allocates, so the allocator
    // may.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// How much the stand-in socket gives per read, as a 64 KiB `read_buf` would.
const READ_CHUNK: usize = 64 * 1024;
/// How much the stand-in socket takes per write, deliberately not a record multiple so that
/// writes end inside headers, bodies and padding.
const WRITE_LIMIT: usize = 48 * 1024 + 5;
/// The worker's request id, and the web server's (different, so headers are really rewritten).
const WORKER_ID: u16 = 1;
const CLIENT_ID: u16 = 0x1234;

/// A worker's STDOUT stream: `records` records of `body_len` bytes each, padded to eight.
fn worker_stdout(records: usize, body_len: usize) -> Vec<u8> {
    let header = Header::new(RecordType::Stdout, WORKER_ID, body_len as u16);
    let mut wire = Vec::with_capacity(records * header.record_len());
    for n in 0..records {
        wire.extend_from_slice(&header.to_bytes());
        wire.extend((0..body_len).map(|i| (i + n) as u8));
        wire.resize(wire.len() + usize::from(header.padding_length), 0);
    }
    wire
}

/// What the relay wrote: its length and a checksum of the bytes, so that a relay which drops
/// or reorders bytes is caught without keeping (and allocating for) a copy.
#[derive(Debug, Default, PartialEq, Eq)]
struct Written {
    len: usize,
    sum: u64,
}

impl Written {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.len += 1;
            self.sum = self.sum.wrapping_mul(31).wrapping_add(u64::from(b));
        }
    }
}

/// Relays `wire` the way the plexer will, counting allocations from the first read to the last
/// write; returns the allocation count, the records relayed and what was written.
fn relay(wire: &[u8]) -> (usize, usize, Written) {
    // Set up before counting: the read buffer is reserved once, as a connection's would be.
    let mut read_buf = BytesMut::with_capacity(4 * READ_CHUNK);
    let mut outbox = Outbox::new();
    let mut written = Written::default();
    let mut records = 0;

    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    for chunk in wire.chunks(READ_CHUNK) {
        read_buf.extend_from_slice(chunk);
        while let Some(record) = decode_record(&mut read_buf).expect("a well-formed stream") {
            assert_eq!(record.record_type, RecordType::Stdout);
            outbox.push_record(RecordType::Stdout, CLIENT_ID, record.body);
            records += 1;
        }
        while outbox.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 64];
            let filled = outbox.io_slices(&mut slices);
            let mut budget = WRITE_LIMIT;
            for slice in &slices[..filled] {
                let take = slice.len().min(budget);
                written.add(&slice[..take]);
                budget -= take;
                if budget == 0 {
                    break;
                }
            }
            outbox.advance(WRITE_LIMIT - budget);
        }
    }
    COUNTING.with(|c| c.set(false));
    assert!(read_buf.is_empty(), "the stream ends on a record boundary");
    (ALLOCATIONS.with(Cell::get), records, written)
}

/// What the relay should have written for `wire`: the same records under [`CLIENT_ID`].
fn expected(records: usize, body_len: usize) -> Written {
    let header = Header::new(RecordType::Stdout, CLIENT_ID, body_len as u16);
    let mut want = Written::default();
    for n in 0..records {
        want.add(&header.to_bytes());
        let body: Vec<u8> = (0..body_len).map(|i| (i + n) as u8).collect();
        want.add(&body);
        want.add(&vec![0; usize::from(header.padding_length)]);
    }
    want
}

fn relay_checked(records: usize, body_len: usize) -> usize {
    let wire = worker_stdout(records, body_len);
    let (allocations, relayed, written) = relay(&wire);
    assert_eq!(relayed, records);
    assert_eq!(
        written,
        expected(records, body_len),
        "the relay changed the bytes"
    );
    allocations
}

#[test]
fn relaying_16_mib_of_stdout_allocates_nothing_per_record() {
    // 16 MiB either way: 256 records of the largest body, or 2048 of 8 KiB (php-fpm's size).
    let few = relay_checked(256, 65535);
    let many = relay_checked(2048, 8192);
    let per_record = many as f64 / 2048.0;
    assert!(
        few.abs_diff(many) <= 4,
        "allocations grow with the record count: {few} for 256 records, {many} for 2048"
    );
    assert!(
        per_record < 0.05,
        "{many} allocations for 2048 records ({per_record:.3} per record)"
    );
}

#[test]
fn small_records_are_copied_into_a_reused_buffer() {
    // Bodies under the outbox's copy threshold take the copying path; it too must reuse its
    // buffer rather than allocate per record. 16 MiB in 1000-byte records is ~16 700 records.
    let records = (16 << 20) / (1000 + 8);
    let small = relay_checked(records, 1000);
    let fewer = relay_checked(records / 8, 1000);
    assert!(
        small.abs_diff(fewer) <= 4,
        "allocations grow with the record count: {fewer} for {} records, {small} for {records}",
        records / 8
    );
    assert!(
        (small as f64 / records as f64) < 0.05,
        "{small} allocations for {records} records"
    );
}
