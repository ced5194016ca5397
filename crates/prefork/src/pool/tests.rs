//! The pool's decisions, driven by a simulated clock and process table.

use super::*;

/// A pool with a fake clock and fake processes: spawns succeed at once unless told otherwise.
struct Sim {
    pool: Pool,
    now: Instant,
    next_pid: i32,
    /// Every action other than Spawn, in order.
    log: Vec<Action>,
    spawn_works: bool,
}

impl Sim {
    fn new(settings: PoolSettings) -> Self {
        let now = Instant::now();
        let mut sim = Self {
            pool: Pool::new(settings, now, 42).unwrap(),
            now,
            next_pid: 1000,
            log: Vec::new(),
            spawn_works: true,
        };
        sim.run();
        sim
    }

    /// Carries out pending actions until none are left.
    fn run(&mut self) {
        loop {
            let actions: Vec<Action> = self.pool.take_actions().collect();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Spawn(id) if self.spawn_works => {
                        self.next_pid += 1;
                        self.pool
                            .spawned(id, Pid::from_raw(self.next_pid), self.now);
                    }
                    Action::Spawn(id) => {
                        self.pool.spawn_failed(id, "no such file".into(), self.now);
                    }
                    other => self.log.push(other),
                }
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.pool.tick(self.now);
        self.run();
    }

    fn acquire(&mut self, waiter: WaiterId) -> Acquire {
        let got = self.pool.acquire(waiter, self.now);
        self.run();
        got
    }

    fn release(&mut self, worker: WorkerId, outcome: Outcome) {
        self.pool.release(worker, outcome, self.now);
        self.run();
    }

    fn exit(&mut self, pid: Pid, exit: Exit) {
        self.pool.exited(pid, exit, self.now);
        self.run();
    }

    /// Makes every Terminate/Kill in the log happen: those processes exit.
    fn reap_stopped(&mut self) {
        let stopped: Vec<Pid> = self
            .log
            .iter()
            .filter_map(|a| match a {
                Action::Terminate { pid, .. } | Action::Kill { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        self.log.clear();
        for pid in stopped {
            self.exit(pid, Exit::Signal(15));
        }
    }

    fn count(&self, state: WorkerState) -> usize {
        self.pool
            .workers()
            .iter()
            .filter(|w| w.state == state)
            .count()
    }

    fn assigned(&self) -> Vec<(WaiterId, WorkerId)> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Assign { waiter, worker } => Some((*waiter, *worker)),
                _ => None,
            })
            .collect()
    }

    fn pid_of(&self, worker: WorkerId) -> Pid {
        self.pool.worker(worker).unwrap().pid.unwrap()
    }
}

fn settings(pm: Pm, max_children: usize) -> PoolSettings {
    PoolSettings {
        pm,
        max_children,
        max_requests: 0,
        max_requests_jitter: 0,
        ..PoolSettings::default()
    }
}

fn ondemand() -> Pm {
    Pm::Ondemand {
        idle_timeout: Duration::from_secs(10),
    }
}

#[test]
fn static_pools_start_every_worker_and_respawn_with_growing_backoff() {
    let mut sim = Sim::new(settings(Pm::Static, 3));
    assert_eq!(sim.count(WorkerState::Idle), 3);
    let victim = sim.pool.workers()[0].pid.unwrap();
    sim.exit(victim, Exit::Signal(9));
    assert_eq!(
        sim.count(WorkerState::Idle),
        2,
        "no respawn before the backoff"
    );
    sim.advance(Duration::from_millis(100));
    assert_eq!(sim.count(WorkerState::Idle), 3, "respawned after 100 ms");
    let victim = sim.pool.workers()[0].pid.unwrap();
    sim.exit(victim, Exit::Code(1));
    sim.advance(Duration::from_millis(100));
    assert_eq!(
        sim.count(WorkerState::Idle),
        2,
        "the second failure waits 200 ms"
    );
    sim.advance(Duration::from_millis(100));
    assert_eq!(sim.count(WorkerState::Idle), 3);
    assert_eq!(sim.pool.stats().failures, 2);
}

#[test]
fn a_burst_grows_a_dynamic_pool_at_once_not_one_worker_a_second() {
    // php-fpm: 40 parallel 6-second requests, min_spare 1: +1 worker a second, 23.9 s in all.
    let pm = Pm::Dynamic {
        start: 2,
        min_spare: 1,
        max_spare: 3,
    };
    let mut sim = Sim::new(settings(pm, 64));
    let mut workers = Vec::new();
    for waiter in 0..40 {
        if let Acquire::Worker(w) = sim.acquire(waiter) {
            workers.push(w);
        }
    }
    workers.extend(sim.assigned().into_iter().map(|(_, w)| w));
    assert_eq!(
        workers.len(),
        40,
        "every request got a worker without waiting for time"
    );
    assert_eq!(sim.pool.queue_len(), 0);
    assert_eq!(sim.count(WorkerState::Busy), 40);
    assert_eq!(sim.count(WorkerState::Idle), 1, "min_spare kept");
    // The burst ends: spares above max_spare stop after the grace.
    for w in workers {
        sim.release(w, Outcome::Done);
    }
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.count(WorkerState::Idle), 3);
}

#[test]
fn ondemand_starts_on_the_first_request_and_scales_to_zero() {
    let mut sim = Sim::new(settings(ondemand(), 4));
    assert!(sim.pool.workers().is_empty());
    assert_eq!(sim.acquire(1), Acquire::Queued);
    let [(1, worker)] = sim.assigned()[..] else {
        panic!("the first request gets the worker it caused: {:?}", sim.log);
    };
    sim.release(worker, Outcome::Done);
    sim.advance(Duration::from_secs(9));
    assert_eq!(sim.count(WorkerState::Idle), 1, "not before idle_timeout");
    sim.advance(Duration::from_secs(1));
    sim.reap_stopped();
    assert!(sim.pool.workers().is_empty(), "scaled to zero");
    assert_eq!(
        sim.pool.stats().failures,
        0,
        "a stop we asked for is no failure"
    );
    sim.acquire(2);
    assert_eq!(sim.count(WorkerState::Busy), 1, "and comes back");
}

#[test]
fn the_most_recently_idle_worker_is_chosen_so_the_others_can_be_reaped() {
    let mut sim = Sim::new(settings(Pm::Static, 3));
    let Acquire::Worker(a) = sim.acquire(1) else {
        panic!()
    };
    let Acquire::Worker(b) = sim.acquire(2) else {
        panic!()
    };
    sim.release(a, Outcome::Done);
    sim.advance(Duration::from_millis(5));
    sim.release(b, Outcome::Done);
    assert_eq!(sim.acquire(3), Acquire::Worker(b));
}

#[test]
fn max_requests_with_jitter_recycles_workers_at_different_counts() {
    let mut s = settings(Pm::Static, 4);
    s.max_requests = 100;
    s.max_requests_jitter = 50;
    let sim = Sim::new(s);
    let limits: Vec<u64> = sim.pool.workers().iter().map(|w| w.limit).collect();
    assert!(limits.iter().all(|l| (100..=150).contains(l)), "{limits:?}");
    let mut distinct = limits.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 1, "jitter spreads the limits: {limits:?}");

    let mut s = settings(Pm::Static, 1);
    s.max_requests = 3;
    let mut sim = Sim::new(s);
    let first = sim.pool.workers()[0].id;
    for waiter in 0..3 {
        let Acquire::Worker(w) = sim.acquire(waiter) else {
            panic!()
        };
        assert_eq!(w, first);
        sim.release(w, Outcome::Done);
    }
    assert!(matches!(sim.log[..], [Action::Terminate { id, .. }] if id == first));
    sim.reap_stopped();
    assert_eq!(
        sim.count(WorkerState::Idle),
        1,
        "a fresh worker took its place"
    );
    assert_ne!(sim.pool.workers()[0].id, first);
    assert_eq!(sim.pool.stats().failures, 0);
}

#[test]
fn an_unused_worker_goes_back_to_idle_without_counting() {
    let mut s = settings(Pm::Static, 1);
    s.max_requests = 1;
    let mut sim = Sim::new(s);
    let Acquire::Worker(w) = sim.acquire(1) else {
        panic!()
    };
    sim.release(w, Outcome::Unused);
    assert_eq!(sim.pool.worker(w).unwrap().state, WorkerState::Idle);
    assert_eq!(sim.pool.worker(w).unwrap().served, 0);
    assert!(sim.log.is_empty(), "not recycled: {:?}", sim.log);
}

#[test]
fn a_timed_out_request_kills_only_its_worker() {
    let mut sim = Sim::new(settings(Pm::Static, 2));
    let Acquire::Worker(stuck) = sim.acquire(1) else {
        panic!()
    };
    let Acquire::Worker(fine) = sim.acquire(2) else {
        panic!()
    };
    let stuck_pid = sim.pid_of(stuck);
    sim.release(stuck, Outcome::TimedOut);
    assert_eq!(
        sim.log,
        [Action::Kill {
            id: stuck,
            pid: stuck_pid
        }]
    );
    assert_eq!(sim.pool.worker(fine).unwrap().state, WorkerState::Busy);
}

#[test]
fn a_full_pool_queues_then_expires_requests_and_refuses_past_max_queue() {
    let mut s = settings(Pm::Static, 1);
    s.max_queue = 2;
    let mut sim = Sim::new(s);
    let Acquire::Worker(w) = sim.acquire(1) else {
        panic!()
    };
    assert_eq!(sim.acquire(2), Acquire::Queued);
    assert_eq!(sim.acquire(3), Acquire::Queued);
    assert_eq!(
        sim.acquire(4),
        Acquire::Refused(Refusal::QueueFull { limit: 2 })
    );
    assert_eq!(sim.pool.stats().max_children_reached, 2);
    sim.advance(Duration::from_secs(5));
    assert_eq!(
        sim.log,
        [2, 3].map(|waiter| Action::Expire {
            waiter,
            why: Refusal::QueueTimeout {
                timeout: Duration::from_secs(5)
            }
        })
    );
    assert!(!sim.pool.cancel(2), "an expired waiter is gone");
    sim.release(w, Outcome::Done);
    assert_eq!(sim.count(WorkerState::Idle), 1);
}

#[test]
fn a_crash_loop_fails_the_pool_with_a_reason_until_reset() {
    let mut s = settings(Pm::Static, 1);
    s.crash_loop_failures = 3;
    let mut sim = Sim::new(s);
    sim.spawn_works = false;
    for _ in 0..3 {
        let pid = sim.pool.workers().iter().find_map(|w| w.pid);
        if let Some(pid) = pid {
            sim.exit(pid, Exit::Code(2));
        }
        sim.advance(Duration::from_secs(1));
    }
    let PoolState::Failed { reason } = sim.pool.state().clone() else {
        panic!("expected a failed pool, got {:?}", sim.pool.state());
    };
    assert!(
        reason.starts_with("3 worker failures within 60s, the last:"),
        "{reason}"
    );
    assert!(reason.contains("plexer accounts reload"), "{reason}");
    assert!(matches!(
        sim.acquire(9),
        Acquire::Refused(Refusal::Failed(_))
    ));
    sim.spawn_works = true;
    sim.pool.reset(sim.now);
    sim.run();
    assert_eq!(sim.pool.state(), &PoolState::Running);
    assert_eq!(sim.count(WorkerState::Idle), 1);
}

#[test]
fn an_intentional_exit_of_an_idle_worker_is_no_failure() {
    let mut sim = Sim::new(settings(Pm::Static, 1));
    sim.advance(MIN_LIFETIME);
    let pid = sim.pool.workers()[0].pid.unwrap();
    sim.exit(pid, Exit::Code(0));
    assert_eq!(sim.pool.stats().failures, 0);
    assert_eq!(
        sim.count(WorkerState::Idle),
        1,
        "replaced at once, no backoff"
    );
}

#[test]
fn a_young_worker_that_served_and_exits_0_is_no_failure() {
    // php-cgi exits 0 at its own request limit (500 by default), which a busy worker reaches
    // in under MIN_LIFETIME.
    let mut sim = Sim::new(settings(Pm::Static, 1));
    let Acquire::Worker(worker) = sim.acquire(1) else {
        panic!("the idle worker is handed out");
    };
    sim.release(worker, Outcome::Done);
    let pid = sim.pool.workers()[0].pid.unwrap();
    sim.exit(pid, Exit::Code(0));
    assert_eq!(sim.pool.stats().failures, 0);
    assert_eq!(sim.count(WorkerState::Idle), 1, "replaced at once");
}

#[test]
fn a_command_that_exits_0_at_once_backs_off_instead_of_spinning() {
    let mut sim = Sim::new(settings(Pm::Static, 1));
    let pid = sim.pool.workers()[0].pid.unwrap();
    sim.exit(pid, Exit::Code(0));
    assert_eq!(sim.pool.stats().failures, 1);
    assert!(
        sim.pool.workers().is_empty(),
        "no respawn before the backoff"
    );
}

#[test]
fn a_spawn_that_comes_after_the_pool_stopped_wanting_it_is_refused() {
    let now = Instant::now();
    let mut pool = Pool::new(settings(Pm::Static, 1), now, 1).unwrap();
    let actions: Vec<Action> = pool.take_actions().collect();
    let [Action::Spawn(id)] = actions[..] else {
        panic!("{actions:?}")
    };
    pool.drain(now, Duration::from_secs(1));
    assert!(
        !pool.spawned(id, Pid::from_raw(4242), now),
        "the driver must stop it"
    );
    assert_eq!(pool.state(), &PoolState::Stopped);
}

#[test]
fn a_worker_that_ignores_terminate_is_killed_after_stop_timeout() {
    let mut s = settings(ondemand(), 1);
    s.pm = Pm::Ondemand {
        idle_timeout: Duration::from_secs(1),
    };
    let mut sim = Sim::new(s);
    sim.acquire(1);
    let [(_, w)] = sim.assigned()[..] else {
        panic!()
    };
    let pid = sim.pid_of(w);
    sim.release(w, Outcome::Done);
    sim.log.clear();
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.log, [Action::Terminate { id: w, pid }]);
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.log[1..], [Action::Kill { id: w, pid }]);
}

#[test]
fn draining_finishes_in_flight_requests_then_stops() {
    let mut sim = Sim::new(settings(Pm::Static, 2));
    let Acquire::Worker(busy) = sim.acquire(1) else {
        panic!()
    };
    sim.pool.drain(sim.now, Duration::from_secs(30));
    sim.run();
    assert_eq!(sim.acquire(2), Acquire::Refused(Refusal::Draining));
    assert_eq!(
        sim.log.len(),
        1,
        "the idle worker stops at once: {:?}",
        sim.log
    );
    sim.reap_stopped();
    assert_eq!(sim.pool.worker(busy).unwrap().state, WorkerState::Busy);
    sim.release(busy, Outcome::Done);
    sim.reap_stopped();
    assert_eq!(sim.pool.state(), &PoolState::Stopped);
}

#[test]
fn a_drain_deadline_kills_requests_that_outlast_it() {
    let mut sim = Sim::new(settings(Pm::Static, 1));
    let Acquire::Worker(busy) = sim.acquire(1) else {
        panic!()
    };
    let pid = sim.pid_of(busy);
    sim.pool.drain(sim.now, Duration::from_secs(3));
    sim.run();
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.log, [Action::Kill { id: busy, pid }]);
    sim.reap_stopped();
    assert_eq!(sim.pool.state(), &PoolState::Stopped);
}

#[test]
fn a_drain_deadline_also_kills_workers_still_stopping() {
    // A stop that waits for the worker (a shared socket's graceful stop) ends at the drain's
    // deadline, not after the longer stop_timeout: SIGQUIT means at once.
    let mut sim = Sim::new(settings(Pm::Static, 1));
    let Acquire::Worker(idle) = sim.acquire(1) else {
        panic!()
    };
    sim.release(idle, Outcome::Done);
    let pid = sim.pid_of(idle);
    sim.log.clear();
    sim.pool.drain(sim.now, Duration::ZERO);
    sim.run();
    assert_eq!(sim.log, [Action::Terminate { id: idle, pid }]);
    sim.advance(Duration::from_millis(1));
    assert_eq!(sim.log[1..], [Action::Kill { id: idle, pid }]);
}

#[test]
fn settings_that_cannot_work_are_named() {
    let bad = PoolSettings {
        pm: Pm::Dynamic {
            start: 5,
            min_spare: 1,
            max_spare: 3,
        },
        ..PoolSettings::default()
    };
    assert_eq!(
        Pool::new(bad, Instant::now(), 1).unwrap_err().to_string(),
        "pm dynamic needs min_spare <= start <= max_spare <= max_children, got min_spare 1, \
         start 5, max_spare 3, max_children 4"
    );
}

#[test]
fn durations_that_would_overflow_a_deadline_are_refused() {
    let mut too_long = PoolSettings {
        stop_timeout: Duration::MAX,
        ..PoolSettings::default()
    };
    assert_eq!(
        Pool::new(too_long.clone(), Instant::now(), 1)
            .unwrap_err()
            .to_string(),
        format!(
            "stop_timeout is {:?}, over the 365 days any pool duration may be; give a shorter one",
            Duration::MAX
        )
    );
    too_long.stop_timeout = MAX_DURATION;
    too_long.pm = Pm::Ondemand {
        idle_timeout: MAX_DURATION + Duration::from_millis(1),
    };
    assert!(matches!(
        too_long.validate(),
        Err(SettingsError::TooLong {
            key: "idle_timeout",
            ..
        })
    ));
    too_long.pm = Pm::Static;
    too_long.queue_timeout = MAX_DURATION;
    assert_eq!(too_long.validate(), Ok(()), "the limit itself is allowed");
}

#[test]
fn a_drain_without_limit_waits_for_the_request() {
    let mut sim = Sim::new(settings(Pm::Static, 1));
    let Acquire::Worker(busy) = sim.acquire(1) else {
        panic!()
    };
    sim.pool.drain(sim.now, Duration::MAX);
    sim.run();
    assert_eq!(sim.count(WorkerState::Busy), 1);
    assert_eq!(
        sim.pool.next_deadline(sim.now),
        Some(sim.now + MAX_DURATION)
    );
    sim.release(busy, Outcome::Done);
    assert_eq!(sim.count(WorkerState::Stopping), 1);
}

#[test]
fn next_deadline_names_the_earliest_timer() {
    let mut sim = Sim::new(settings(ondemand(), 1));
    assert_eq!(
        sim.pool.next_deadline(sim.now),
        None,
        "an empty ondemand pool sleeps"
    );
    sim.acquire(1);
    let [(_, w)] = sim.assigned()[..] else {
        panic!()
    };
    sim.release(w, Outcome::Done);
    assert_eq!(
        sim.pool.next_deadline(sim.now),
        Some(sim.now + Duration::from_secs(10))
    );
}

#[test]
fn timers_tick_has_seen_do_not_wake_the_driver_again() {
    // Idle workers within max_spare stay past their spare_grace: no timer is due any more.
    let pm = Pm::Dynamic {
        start: 2,
        min_spare: 1,
        max_spare: 2,
    };
    let mut sim = Sim::new(settings(pm, 4));
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.count(WorkerState::Idle), 2);
    assert_eq!(sim.pool.next_deadline(sim.now), None);

    // A failed pool's pending backoff is not a timer either: the first of two workers that
    // die together schedules a respawn, the second fails the pool, and the respawn never comes.
    let mut s = settings(Pm::Static, 2);
    s.crash_loop_failures = 2;
    let mut sim = Sim::new(s);
    let pids: Vec<Pid> = sim.pool.workers().iter().filter_map(|w| w.pid).collect();
    for pid in pids {
        sim.exit(pid, Exit::Code(1));
    }
    assert!(matches!(sim.pool.state(), PoolState::Failed { .. }));
    assert!(
        sim.pool.next_deadline(sim.now).is_some(),
        "the backoff is still ahead"
    );
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.pool.next_deadline(sim.now), None);
}

mod no_settings_panic {
    use super::*;
    use proptest::prelude::*;

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..5_000).prop_map(Duration::from_millis),
            Just(Duration::ZERO),
            Just(MAX_DURATION),
            Just(Duration::MAX),
        ]
    }

    fn count() -> impl Strategy<Value = usize> {
        prop_oneof![0usize..12, Just(MAX_CHILDREN + 1), Just(usize::MAX)]
    }

    fn big() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..10,
            Just(MAX_JITTER),
            Just(MAX_JITTER + 1),
            Just(u64::MAX)
        ]
    }

    fn pm() -> impl Strategy<Value = Pm> {
        prop_oneof![
            Just(Pm::Static),
            duration().prop_map(|idle_timeout| Pm::Ondemand { idle_timeout }),
            (count(), count(), count()).prop_map(|(start, min_spare, max_spare)| Pm::Dynamic {
                start,
                min_spare,
                max_spare,
            }),
        ]
    }

    prop_compose! {
        fn any_settings()(
            pm in pm(),
            max_children in count(),
            max_requests in big(),
            max_requests_jitter in big(),
            (queue_timeout, backoff_initial, backoff_max) in (duration(), duration(), duration()),
            (crash_loop_window, stop_timeout, spare_grace) in (duration(), duration(), duration()),
            (max_queue, crash_loop_failures) in (count(), count()),
        ) -> PoolSettings {
            PoolSettings {
                pm, max_children, max_requests, max_requests_jitter, queue_timeout, max_queue,
                backoff_initial, backoff_max, crash_loop_failures, crash_loop_window,
                stop_timeout, spare_grace,
            }
        }
    }

    proptest! {
        /// Settings either validate or are refused; valid ones run a pool through requests,
        /// recycling, crashes and time without a panic.
        #[test]
        fn settings_are_refused_or_run(settings in any_settings(), seed in any::<u64>()) {
            if settings.validate().is_err() {
                prop_assert!(Pool::new(settings, Instant::now(), seed).is_err());
                return Ok(());
            }
            let mut sim = Sim::new(settings);
            for round in 0..20u64 {
                if let Acquire::Worker(worker) = sim.acquire(round) {
                    let outcome = if round % 3 == 0 { Outcome::Broken } else { Outcome::Done };
                    sim.release(worker, outcome);
                }
                if round % 5 == 0 {
                    sim.reap_stopped();
                }
                if let Some(pid) = sim.pool.workers().iter().find_map(|w| w.pid).filter(|_| round % 7 == 0) {
                    sim.exit(pid, Exit::Code(1));
                }
                sim.advance(Duration::from_millis(round * 250));
            }
        }
    }
}
