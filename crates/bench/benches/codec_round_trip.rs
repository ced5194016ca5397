//! Issue 2: a whole FastCGI round trip through plexer-fcgi, beside the same round trip through
//! the peer crates, in one run (research/rust.md §1.8).
//!
//! - `client_round_trip`: the web-server side under test (ours: `ClientConnection`; peer:
//!   `fastcgi-client`) against a canned application.
//! - `server_round_trip`: the application side under test (ours: `ServerConnection`; peer:
//!   `tokio-fastcgi`) against a canned web server.
//! - `floor` in each group: the canned web server against the canned application, no codec at
//!   either end. It is what the pipe and the canned peers cost by themselves, the most any
//!   codec could approach.
//!
//! Every round trip is one request (30 nginx params, empty stdin) and a 100 B or 1 MiB
//! response, on one kept-alive connection (`FCGI_KEEP_CONN` on both sides; fastcgi-client's
//! `KeepAlive` mode and `execute`) over an in-memory pipe, both ends on one
//! `current_thread` runtime. Each iteration checks the STDOUT byte count. Throughput is one
//! request per iteration plus the response's STDOUT bytes.

use std::io;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use plexer_bench::canned::{CannedWebServer, canned_application};
use plexer_bench::ours::{self, OurClient};
use plexer_bench::peers::{FastcgiClient, tokio_fastcgi_serve};
use plexer_bench::pipe::pipe;
use plexer_bench::workload::Workload;
use tokio::runtime::Runtime;

const RESPONSE_SIZES: [usize; 2] = [100, 1 << 20];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current_thread runtime")
}

/// Times `iters` round trips of `round_trip`, checking each returned `expected` STDOUT bytes.
fn time_round_trips(
    rt: &Runtime,
    iters: u64,
    expected: usize,
    mut round_trip: impl AsyncFnMut() -> io::Result<usize>,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let got = round_trip().await.expect("round trip");
            assert_eq!(got, expected, "the whole response arrived");
        }
        start.elapsed()
    })
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

fn throughput(workload: &Workload) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: 1,
        bytes: workload.stdout.len() as u64,
    }
}

/// The canned web server against the canned application: the pipe's and the peers' own cost.
fn bench_floor(group: &mut BenchmarkGroup<'_, WallTime>, workload: &Workload) {
    let rt = runtime();
    let (web, app) = pipe();
    rt.spawn(canned_application(app, workload.response_wire.clone()));
    let mut web = CannedWebServer::new(web, workload);
    let expected = workload.stdout.len();
    group.bench_function(BenchmarkId::new("floor", workload.label()), |b| {
        b.iter_custom(|iters| {
            time_round_trips(&rt, iters, expected, async || web.round_trip().await)
        });
    });
}

fn client_round_trip(c: &mut Criterion) {
    let mut group = group(c, "client_round_trip");
    for workload in RESPONSE_SIZES.map(Workload::new) {
        group.throughput(throughput(&workload));
        let expected = workload.stdout.len();

        let rt = runtime();
        let (ours, app) = pipe();
        rt.spawn(canned_application(app, workload.response_wire.clone()));
        let mut client = OurClient::new(ours, &workload);
        group.bench_function(BenchmarkId::new("plexer-fcgi", workload.label()), |b| {
            b.iter_custom(|iters| {
                time_round_trips(&rt, iters, expected, async || client.round_trip().await)
            });
        });
        drop(client);

        let rt = runtime();
        let (theirs, app) = pipe();
        rt.spawn(canned_application(app, workload.response_wire.clone()));
        let mut client = FastcgiClient::new(theirs, &workload);
        group.bench_function(BenchmarkId::new("fastcgi-client", workload.label()), |b| {
            b.iter_custom(|iters| {
                time_round_trips(&rt, iters, expected, async || client.round_trip().await)
            });
        });

        bench_floor(&mut group, &workload);
    }
    group.finish();
}

fn server_round_trip(c: &mut Criterion) {
    let mut group = group(c, "server_round_trip");
    for workload in RESPONSE_SIZES.map(Workload::new) {
        group.throughput(throughput(&workload));
        let expected = workload.stdout.len();

        let rt = runtime();
        let (web, ours) = pipe();
        rt.spawn(ours::serve(ours, workload.stdout.clone()));
        let mut web = CannedWebServer::new(web, &workload);
        group.bench_function(BenchmarkId::new("plexer-fcgi", workload.label()), |b| {
            b.iter_custom(|iters| {
                time_round_trips(&rt, iters, expected, async || web.round_trip().await)
            });
        });

        let rt = runtime();
        let (web, theirs) = pipe();
        rt.spawn(tokio_fastcgi_serve(theirs, workload.stdout.clone()));
        let mut web = CannedWebServer::new(web, &workload);
        group.bench_function(BenchmarkId::new("tokio-fastcgi", workload.label()), |b| {
            b.iter_custom(|iters| {
                time_round_trips(&rt, iters, expected, async || web.round_trip().await)
            });
        });

        bench_floor(&mut group, &workload);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = client_round_trip, server_round_trip
}
criterion_main!(benches);
