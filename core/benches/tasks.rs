//! Spawning and fork-join: nimsync's scheduler and task groups beside rayon
//! and tokio, in one run, so that the numbers compare as ratios.
//!
//! * spawn: 1,000,000 empty tasks spawned into one group (rayon: one scope;
//!   tokio: one JoinSet) from inside the pool, then joined; tasks per second.
//! * fib: fib(30) with fork-join above a cutoff (n < 20 runs sequentially):
//!   nimsync `Scheduler::join` vs `rayon::join` (tokio: a spawned task per
//!   fork). Milliseconds per run.
//!
//! Each case runs `ROUNDS` times interleaved (fib `FIB_REPS` times per round);
//! the median counts. JSON lines
//! on stdout, progress on stderr. `NIMSYNC_BENCH_TASKS` and
//! `NIMSYNC_BENCH_ROUNDS` shrink it.

use nimsync_core::{Scheduler, TaskGroup};
use std::time::Instant;

const CUTOFF: u64 = 20;
const FIB_N: u64 = 30;
/// fib runs per round (each about a millisecond).
const FIB_REPS: usize = 15;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

fn fib_nimsync(pool: &Scheduler, n: u64) -> u64 {
    if n < CUTOFF {
        return fib_seq(n);
    }
    let (a, b) = pool.join(|| fib_nimsync(pool, n - 1), || fib_nimsync(pool, n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < CUTOFF {
        return fib_seq(n);
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib_tokio(n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < CUTOFF {
            return fib_seq(n);
        }
        let right = tokio::spawn(fib_tokio(n - 2));
        let a = fib_tokio(n - 1).await;
        a + right.await.unwrap()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

type Case<'a> = (&'static str, &'static str, Box<dyn Fn() -> f64 + 'a>);

fn main() {
    let tasks = env_usize("NIMSYNC_BENCH_TASKS", 1_000_000);
    let rounds = env_usize("NIMSYNC_BENCH_ROUNDS", 3);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    eprintln!("tasks: {tasks} spawns, fib({FIB_N}) cutoff {CUTOFF}, {rounds} rounds, {cores} workers each");
    let pool = Scheduler::new(cores).unwrap();
    let rayon_pool = rayon::ThreadPoolBuilder::new().num_threads(cores).build().unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores).build().unwrap();
    let expected = fib_seq(FIB_N);

    let cases: Vec<Case> = vec![
        (
            "spawn",
            "nimsync TaskGroup",
            Box::new(|| {
                let t0 = Instant::now();
                pool.install(|| {
                    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
                    for _ in 0..tasks {
                        group.go(|_| Ok(()));
                    }
                    group.join().unwrap();
                });
                tasks as f64 / t0.elapsed().as_secs_f64()
            }),
        ),
        (
            "spawn",
            "nimsync Scheduler::spawn",
            Box::new(|| {
                let t0 = Instant::now();
                let wg = nimsync_core::WaitGroup::new();
                pool.install(|| {
                    wg.add(tasks);
                    for _ in 0..tasks {
                        let wg = wg.clone();
                        pool.spawn(move || wg.done().unwrap());
                    }
                });
                wg.wait();
                tasks as f64 / t0.elapsed().as_secs_f64()
            }),
        ),
        (
            "spawn",
            "rayon scope",
            Box::new(|| {
                let t0 = Instant::now();
                rayon_pool.scope(|s| {
                    for _ in 0..tasks {
                        s.spawn(|_| {});
                    }
                });
                tasks as f64 / t0.elapsed().as_secs_f64()
            }),
        ),
        (
            "spawn",
            "tokio JoinSet",
            Box::new(|| {
                let t0 = Instant::now();
                tokio_rt.block_on(async {
                    tokio::spawn(async move {
                        let mut set = tokio::task::JoinSet::new();
                        for _ in 0..tasks {
                            set.spawn(async {});
                        }
                        while set.join_next().await.is_some() {}
                    })
                    .await
                    .unwrap()
                });
                tasks as f64 / t0.elapsed().as_secs_f64()
            }),
        ),
        (
            "fib",
            "nimsync join",
            Box::new(|| {
                let t0 = Instant::now();
                assert_eq!(pool.install(|| fib_nimsync(&pool, FIB_N)), expected);
                t0.elapsed().as_secs_f64() * 1e3
            }),
        ),
        (
            "fib",
            "rayon::join",
            Box::new(|| {
                let t0 = Instant::now();
                assert_eq!(rayon_pool.install(|| fib_rayon(FIB_N)), expected);
                t0.elapsed().as_secs_f64() * 1e3
            }),
        ),
        (
            "fib",
            "tokio spawn",
            Box::new(|| {
                let t0 = Instant::now();
                assert_eq!(tokio_rt.block_on(fib_tokio(FIB_N)), expected);
                t0.elapsed().as_secs_f64() * 1e3
            }),
        ),
        (
            "fib",
            "sequential",
            Box::new(|| {
                let t0 = Instant::now();
                assert_eq!(fib_seq(std::hint::black_box(FIB_N)), expected);
                t0.elapsed().as_secs_f64() * 1e3
            }),
        ),
    ];
    eprint!("  warming up");
    for (_, _, run) in &cases {
        run();
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, (case, name, run)) in cases.iter().enumerate() {
            eprint!("\r  round {}/{rounds}: {case:<6} {name:<26}", round + 1);
            // A fib run takes about a millisecond: several per round give its
            // median as many samples as a noisy machine needs.
            let reps = if *case == "fib" { FIB_REPS } else { 1 };
            for _ in 0..reps {
                results[i].push(run());
            }
        }
    }
    eprintln!();
    for ((case, name, _), v) in cases.iter().zip(results) {
        let m = median(v);
        match *case {
            "spawn" => println!(
                "{{\"suite\":\"rust\",\"metric\":\"spawn\",\"case\":\"spawn+join 1M\",\"impl\":\"{name}\",\"mps\":{:.3},\"threads\":{cores},\"cores\":{cores}}}",
                m / 1e6
            ),
            _ => println!(
                "{{\"suite\":\"rust\",\"metric\":\"fib_ms\",\"case\":\"fib(30) cutoff 20\",\"impl\":\"{name}\",\"ms\":{m:.3},\"threads\":{cores},\"cores\":{cores}}}"
            ),
        }
    }
}
