//! The work-stealing scheduler and task groups.

use nimsync_core::{CancelToken, Channel, Error, GroupError, Mode, Scheduler, TaskFailure, TaskGroup, WaitOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn pool() -> Scheduler {
    Scheduler::new(4).unwrap()
}

#[test]
fn every_spawned_task_runs_once_and_metrics_add_up() {
    let pool = pool();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..10_000 {
        let runs = runs.clone();
        group.spawn(move |_| {
            runs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
    }
    group.join().unwrap();
    assert_eq!(runs.load(Ordering::Relaxed), 10_000);
    let m = pool.metrics();
    assert_eq!(m.executed, 10_000);
    assert_eq!(m.spawned, 10_000);
    assert_eq!(m.workers.len(), 4);
    assert_eq!(m.workers.iter().map(|w| w.executed).sum::<u64>(), 10_000);
    assert!(m.load_imbalance >= 0.0);
}

#[test]
fn tasks_spawned_by_tasks_are_stolen_by_idle_workers() {
    let pool = Scheduler::new(2).unwrap();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let g = group.clone();
    let start = Arc::new(Barrier::new(2));
    let s2 = start.clone();
    // One task spawns two that must run at the same time (a barrier of 2):
    // the second can only run if the other worker steals it.
    group.spawn(move |_| {
        for _ in 0..2 {
            let b = s2.clone();
            g.spawn(move |_| {
                b.wait();
                Ok(())
            });
        }
        Ok(())
    });
    group.join().unwrap();
    drop(start);
    // A worker counts a task once it has returned, which can be just after
    // the join saw the task finish: wait for the count (bounded).
    let t0 = Instant::now();
    while pool.metrics().executed < 3 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::yield_now();
    }
    let m = pool.metrics();
    assert_eq!(m.executed, 3);
    assert!(m.stolen >= 1, "{m:?}");
    assert_eq!(m.workers.iter().map(|w| w.stolen_from).sum::<u64>(), m.stolen);
}

#[test]
fn a_panicking_task_becomes_its_error_and_the_worker_lives_on() {
    let pool = Scheduler::new(1).unwrap();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    group.spawn(|_| -> Result<(), _> { panic!("boom") });
    let err = group.join().unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert!(matches!(&err.errors[0].failure, TaskFailure::Panicked(m) if m == "boom"));
    // The only worker still runs tasks.
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let h = group.spawn(|_| Ok(42));
    group.join().unwrap();
    assert_eq!(h.take(), Some(42));
}

#[test]
fn join_returns_every_failure_in_spawn_order() {
    // Three tasks that fail together (a barrier makes all three start before
    // any fails, so fail-fast cannot skip one).
    let gate = Arc::new(Barrier::new(4));
    let pool = Scheduler::new(3).unwrap();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    for i in 0..3 {
        let gate = gate.clone();
        group.spawn(move |_| -> Result<(), _> {
            gate.wait();
            Err(format!("failure {i}").into())
        });
    }
    gate.wait();
    let err: GroupError = group.join().unwrap_err();
    let msgs: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs, ["task 0 failed: failure 0", "task 1 failed: failure 1", "task 2 failed: failure 2"]);
    assert!(err.cancelled.is_some());
}

#[test]
fn a_task_blocked_in_recv_returns_cancelled_within_10ms_of_a_sibling_failing() {
    let pool = Scheduler::new(2).unwrap();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let ch = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
    let blocked = group.spawn({
        let ch = ch.clone();
        move |token| {
            let r = ch.recv_with(&WaitOptions::new().cancel(token));
            Ok((r, Instant::now()))
        }
    });
    while ch.waiting().1 == 0 {
        std::thread::yield_now();
    }
    let failed_at = Arc::new(std::sync::Mutex::new(None));
    let f = failed_at.clone();
    group.spawn(move |_| -> Result<(), _> {
        *f.lock().unwrap() = Some(Instant::now());
        Err("sibling failed".into())
    });
    let err = group.join().unwrap_err();
    assert_eq!(err.errors.len(), 1, "the cancelled recv is not a failure of its own");
    let (r, woke) = blocked.take().expect("the blocked task returned");
    assert_eq!(r, Err(Error::Cancelled));
    let delay = woke - failed_at.lock().unwrap().unwrap();
    assert!(delay < Duration::from_millis(10), "woke {delay:?} after the failure");
}

#[test]
fn nested_groups_cancel_downward_only() {
    let pool = pool();
    let outer = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let inner = TaskGroup::builder().scheduler(&pool).parent(outer.token()).build().unwrap();
    inner.cancel("inner only");
    assert!(!outer.token().is_cancelled());
    let inner2 = TaskGroup::builder().scheduler(&pool).parent(outer.token()).build().unwrap();
    outer.cancel("outer");
    assert!(inner2.token().is_cancelled());
    // A task of a cancelled group is skipped.
    let h = inner2.spawn(|_| Ok(1));
    let err = inner2.join().unwrap_err();
    assert_eq!(err.skipped, 1);
    assert_eq!(h.take(), None);
}

#[test]
fn the_concurrency_limit_is_never_exceeded() {
    let pool = pool();
    let group = TaskGroup::builder().scheduler(&pool).limit(2).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let high = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let (running, high) = (running.clone(), high.clone());
        group.spawn(move |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            high.fetch_max(now, Ordering::SeqCst);
            for _ in 0..1000 {
                std::hint::spin_loop();
            }
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
    }
    group.join().unwrap();
    let high = high.load(Ordering::SeqCst);
    assert!((1..=2).contains(&high), "high-water mark {high}");
    assert!(TaskGroup::builder().limit(0).build().is_err());
}

#[test]
fn a_group_deadline_cancels_its_tasks() {
    let pool = pool();
    // Long enough that the task has started (and blocked) before the deadline
    // even on a loaded machine; a task that had not would be skipped instead.
    let group = TaskGroup::builder().scheduler(&pool).timeout(Duration::from_millis(200)).build().unwrap();
    let ch = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
    let h = group.spawn(move |token| Ok(ch.recv_with(&WaitOptions::new().cancel(token))));
    let err = group.join().unwrap_err();
    assert_eq!(err.cancelled, Some(nimsync_core::CancelReason::DeadlineExceeded));
    assert!(err.errors.is_empty());
    assert_eq!(h.take(), Some(Err(Error::Timeout)));
}

#[test]
fn join_from_inside_a_task_helps_instead_of_deadlocking() {
    // One worker: a task that joins a nested group must run the nested tasks
    // itself.
    let pool = Scheduler::new(1).unwrap();
    let outer = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let p = pool.clone();
    let h = outer.spawn(move |token| {
        let inner = TaskGroup::builder().scheduler(&p).parent(token).build().unwrap();
        let hs: Vec<_> = (0..10u64).map(|i| inner.spawn(move |_| Ok(i))).collect();
        inner.join()?;
        Ok(hs.iter().map(|h| h.take().unwrap()).sum::<u64>())
    });
    outer.join().unwrap();
    assert_eq!(h.take(), Some(45));
}

#[test]
fn join_with_a_cancelled_wait_cancels_the_group_and_still_joins_everything() {
    let pool = pool();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let finished = finished.clone();
        group.spawn(move |token| {
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    let stop = CancelToken::new().with_timeout(Duration::from_millis(20));
    let err = group.join_with(&WaitOptions::new().cancel(&stop)).unwrap_err();
    assert!(err.cancelled.is_some());
    assert_eq!(finished.load(Ordering::SeqCst), 4, "no task outlives the join");
}

#[test]
fn fork_join_computes_fib() {
    fn fib(pool: &Scheduler, n: u64) -> u64 {
        if n < 12 {
            return (1..=n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
        }
        let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
        a + b
    }
    let pool = pool();
    assert_eq!(fib(&pool, 25), 75025);
    // A panic on either side comes back to the caller after both finished.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.join(|| 1, || panic!("right side"))));
    assert!(r.is_err());
    assert_eq!(pool.install(|| 7), 7);
}

#[test]
fn shutdown_drains_the_queues_and_later_spawns_run_inline() {
    let pool = Scheduler::new(2).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let runs = runs.clone();
        pool.spawn(move || {
            runs.fetch_add(1, Ordering::Relaxed);
        });
    }
    pool.shutdown();
    assert_eq!(runs.load(Ordering::Relaxed), 1000);
    let r = runs.clone();
    pool.spawn(move || {
        r.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(runs.load(Ordering::Relaxed), 1001);
    assert!(Scheduler::new(0).is_err());
}

#[test]
fn idle_workers_sleep_instead_of_spinning() {
    let pool = Scheduler::new(2).unwrap();
    pool.spawn(|| {});
    // Give the workers time to run out of work and park; each park is counted.
    let t0 = Instant::now();
    while pool.metrics().workers.iter().any(|w| w.parks == 0) {
        assert!(t0.elapsed() < Duration::from_secs(5), "workers never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Asleep means asleep: over 200 ms with nothing to do, no worker wakes up
    // (a timed poll would park again and again, and count each time).
    let parks = |p: &Scheduler| p.metrics().workers.iter().map(|w| w.parks).collect::<Vec<_>>();
    let before = parks(&pool);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(parks(&pool), before, "idle workers woke up without work");
    // And a spawn wakes one at once.
    let (tx, rx) = std::sync::mpsc::channel();
    pool.spawn(move || tx.send(()).unwrap());
    rx.recv_timeout(Duration::from_secs(5)).expect("a sleeping worker ran the task");
}

#[test]
fn a_group_dropped_before_its_tasks_finish_stays_alive_until_they_do() {
    let pool = pool();
    let gate = Channel::<()>::new(1, Mode::Mpmc).unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
        for _ in 0..4 {
            let (gate, finished, tx) = (gate.clone(), finished.clone(), tx.clone());
            // Each task reads the group's token after the group was dropped.
            group.go(move |token| {
                gate.recv().unwrap();
                assert!(!token.is_cancelled());
                finished.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
                Ok(())
            });
        }
    }
    for _ in 0..4 {
        gate.send(()).unwrap();
    }
    for _ in 0..4 {
        rx.recv_timeout(Duration::from_secs(10)).expect("every task of the dropped group runs");
    }
    assert_eq!(finished.load(Ordering::SeqCst), 4);
}

#[test]
fn a_group_that_empties_and_refills_many_times_joins_every_time() {
    let pool = pool();
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for round in 1..=200 {
        for _ in 0..(round % 7) {
            let runs = runs.clone();
            group.go(move |_| {
                runs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
        }
        group.join().unwrap();
    }
    let expected: usize = (1..=200).map(|r| r % 7).sum();
    assert_eq!(runs.load(Ordering::Relaxed), expected);
}

/// The CPU clock of the calling thread, readable from other threads.
fn this_thread_cpu_clock() -> libc::clockid_t {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: our own thread and a valid out-pointer.
    assert_eq!(unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) }, 0);
    clock
}

fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a thread CPU clock of a live thread and a valid out-pointer.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_worker_joining_a_blocked_group_sleeps_until_the_group_finishes() {
    let pool = Scheduler::new(2).unwrap();
    let gate = Channel::<()>::new(1, Mode::Mpmc).unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (joining_tx, joining_rx) = std::sync::mpsc::channel();
    let (clock_tx, clock_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let outer = TaskGroup::builder().scheduler(&pool).build().unwrap();
    {
        let (pool, gate) = (pool.clone(), gate.clone());
        outer.go(move |_| {
            clock_tx.send(this_thread_cpu_clock()).unwrap();
            let inner = TaskGroup::builder().scheduler(&pool).build().unwrap();
            inner.go(move |_| {
                started_tx.send(()).unwrap();
                gate.recv().unwrap();
                Ok(())
            });
            // Once the other worker has taken the inner task (and blocks in
            // its recv), this one finds nothing to run: it must sleep, not
            // spin, until the task finishes.
            started_rx.recv().unwrap();
            joining_tx.send(()).unwrap();
            inner.join().unwrap();
            done_tx.send(()).unwrap();
            Ok(())
        });
    }
    let joiner = clock_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    joining_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (cpu0, wall0) = (cpu_time(joiner), Instant::now());
    // The measurement window: both workers are waiting, one in recv, one in join.
    std::thread::sleep(Duration::from_millis(300));
    let (cpu, wall) = (cpu_time(joiner) - cpu0, wall0.elapsed());
    assert!(done_rx.try_recv().is_err(), "the join returned before its task finished");
    gate.send(()).unwrap();
    done_rx.recv_timeout(Duration::from_secs(10)).expect("the sleeping joiner was woken");
    outer.join().unwrap();
    assert!(cpu.as_secs_f64() < 0.3 * wall.as_secs_f64(), "joining worker spun: {cpu:?} of CPU in {wall:?}");
}

#[test]
fn a_join_on_a_worker_keeps_its_deadline_and_token() {
    let pool = Scheduler::new(2).unwrap();
    let outer = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for use_token in [false, true] {
        let (pool, tx) = (pool.clone(), tx.clone());
        outer.go(move |_| {
            let inner = TaskGroup::builder().scheduler(&pool).build().unwrap();
            let ch = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
            inner.go(move |token| {
                ch.recv_with(&WaitOptions::new().cancel(token))?;
                Ok(())
            });
            let stop = CancelToken::new().with_deadline(Instant::now() + Duration::from_millis(50));
            let t0 = Instant::now();
            let outcome = if use_token {
                inner.join_with(&WaitOptions::new().cancel(&stop))
            } else {
                inner.join_with(&WaitOptions::new().deadline(Instant::now() + Duration::from_millis(50)))
            };
            tx.send((use_token, outcome.map_err(|e| e.cancelled.is_some() && e.errors.is_empty()), t0.elapsed()))
                .unwrap();
            Ok(())
        });
    }
    outer.join().unwrap();
    for _ in 0..2 {
        let (use_token, outcome, elapsed) = rx.recv().unwrap();
        assert_eq!(outcome, Err(true), "token {use_token}: the join ended by cancelling its group");
        assert!(elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}
