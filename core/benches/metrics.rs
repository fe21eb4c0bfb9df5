//! Metrics recording cost: nimsync's collector beside the `prometheus` crate
//! and `hdrhistogram`, in one run, so that the numbers compare as ratios.
//!
//! * record_ns: nanoseconds per counter increment and per histogram record,
//!   with 1 and 2 threads recording into the same metric at once (wall time
//!   over the records each thread made). `hdrhistogram` records through
//!   `&mut self`: alone it runs unshared on one thread, shared it sits behind
//!   a `Mutex`.
//! * metrics_overhead: a channel ping-pong between two threads, bare and
//!   with each round trip timed and recorded into a histogram: full
//!   collection (one clock read per round trip, every one recorded) and 1%
//!   sampling (`Histogram::start_timer`, which reads the clock only for the
//!   round trips kept), plus the clock reads of full collection alone;
//!   nanoseconds per round trip (the best of at least 21
//!   short interleaved rounds: interference only adds time), and the
//!   overhead in percent on stderr.
//!
//! Each case runs `NIMSYNC_BENCH_ROUNDS` times interleaved; the median
//! counts. JSON lines on stdout, progress on stderr.
//! `NIMSYNC_BENCH_RECORDS` (per thread) and `NIMSYNC_BENCH_PINGS` shrink it.

use nimsync_core::metrics::Collector;
use nimsync_core::{Channel, Mode};
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// 4096 latency-like values (100 ns to ~1 ms, log-spread), so records hit
/// many buckets as real ones do.
fn values() -> Arc<Vec<u64>> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    Arc::new(
        (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                100 + (x % 1000) * (1 << ((x >> 60) % 10))
            })
            .collect(),
    )
}

/// Runs `op(i)` `n` times on each of `threads` threads (started together);
/// wall-clock nanoseconds per op on one thread.
fn per_op(threads: usize, n: usize, op: Arc<dyn Fn(usize) + Send + Sync>) -> f64 {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, start) = (op.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..n {
                    op(black_box(i.wrapping_add(t * 977)));
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

type Case = (&'static str, &'static str, usize, Box<dyn Fn(usize) -> f64>);

fn recording_cases(values: &Arc<Vec<u64>>) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for threads in [1usize, 2] {
        let counter_case: &'static str = if threads == 1 { "counter 1 thread" } else { "counter 2 threads" };
        let hist_case: &'static str = if threads == 1 { "histogram 1 thread" } else { "histogram 2 threads" };

        let c = Collector::new();
        let k = c.counter("ops_total", "").unwrap();
        cases.push((
            counter_case,
            "nimsync",
            threads,
            Box::new(move |n| {
                let k = k.clone();
                per_op(threads, n, Arc::new(move |_| k.inc()))
            }),
        ));
        let pk = prometheus::IntCounter::new("ops_total", "ops").unwrap();
        cases.push((
            counter_case,
            "prometheus crate",
            threads,
            Box::new(move |n| {
                let pk = pk.clone();
                per_op(threads, n, Arc::new(move |_| pk.inc()))
            }),
        ));

        let h = c.histogram("lat", "").unwrap();
        let v = values.clone();
        cases.push((
            hist_case,
            "nimsync",
            threads,
            Box::new(move |n| {
                let (h, v) = (h.clone(), v.clone());
                per_op(threads, n, Arc::new(move |i| h.record(v[i & 4095])))
            }),
        ));
        let ph = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat", "lat").buckets(vec![1e2, 1e3, 1e4, 1e5, 1e6, 1e7]),
        )
        .unwrap();
        let v = values.clone();
        cases.push((
            hist_case,
            "prometheus crate",
            threads,
            Box::new(move |n| {
                let (ph, v) = (ph.clone(), v.clone());
                per_op(threads, n, Arc::new(move |i| ph.observe(v[i & 4095] as f64)))
            }),
        ));
        let shared = Arc::new(Mutex::new(hdrhistogram::Histogram::<u64>::new(2).unwrap()));
        let v = values.clone();
        cases.push((
            hist_case,
            "hdrhistogram (Mutex)",
            threads,
            Box::new(move |n| {
                let (shared, v) = (shared.clone(), v.clone());
                per_op(threads, n, Arc::new(move |i| shared.lock().unwrap().record(v[i & 4095]).unwrap()))
            }),
        ));
        if threads == 1 {
            let v = values.clone();
            cases.push((
                hist_case,
                "hdrhistogram (unshared)",
                1,
                Box::new(move |n| {
                    let mut h = hdrhistogram::Histogram::<u64>::new(2).unwrap();
                    let t0 = Instant::now();
                    for i in 0..n {
                        h.record(v[black_box(i) & 4095]).unwrap();
                    }
                    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
                    black_box(h.len());
                    ns
                }),
            ));
        }
    }
    cases
}

/// How a ping-pong round trip is measured.
#[derive(Clone, Copy)]
enum Probe {
    None,
    /// The clock read of full collection without the record: how much of
    /// the overhead is timing rather than recording.
    ClockOnly,
    Histogram(f64),
}

/// Nanoseconds per round trip over `n` round trips between two threads.
fn pingpong(n: usize, probe: Probe) -> f64 {
    let (ping, pong) = (Channel::<u64>::new(1, Mode::Spsc).unwrap(), Channel::<u64>::new(1, Mode::Spsc).unwrap());
    let (p2, q2) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        for _ in 0..n {
            let v = p2.recv().unwrap();
            q2.send(v).unwrap();
        }
    });
    let hist = match probe {
        Probe::None | Probe::ClockOnly => None,
        Probe::Histogram(rate) => {
            let c = Collector::with_sampling(true, rate).unwrap();
            Some((c.histogram("rtt_ns", "").unwrap(), c))
        }
    };
    let t0 = Instant::now();
    match &hist {
        None if matches!(probe, Probe::ClockOnly) => {
            let mut last = Instant::now();
            for i in 0..n as u64 {
                ping.send(i).unwrap();
                black_box(pong.recv().unwrap());
                let now = Instant::now();
                black_box(now - last);
                last = now;
            }
        }
        None => {
            for i in 0..n as u64 {
                ping.send(i).unwrap();
                black_box(pong.recv().unwrap());
            }
        }
        // Full collection: one clock read per round trip (each one ends the
        // previous round trip and starts the next).
        Some((h, _)) if matches!(probe, Probe::Histogram(r) if r == 1.0) => {
            let mut last = Instant::now();
            for i in 0..n as u64 {
                ping.send(i).unwrap();
                black_box(pong.recv().unwrap());
                let now = Instant::now();
                h.record_duration(now - last);
                last = now;
            }
        }
        // Sampled: a timer reads the clock only for the round trips kept.
        Some((h, _)) => {
            for i in 0..n as u64 {
                let t = h.start_timer();
                ping.send(i).unwrap();
                black_box(pong.recv().unwrap());
                t.stop();
            }
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    echo.join().unwrap();
    if let Some((h, _)) = hist {
        black_box(h.summary());
    }
    ns
}

fn main() {
    let records = env_usize("NIMSYNC_BENCH_RECORDS", 5_000_000);
    let pings = env_usize("NIMSYNC_BENCH_PINGS", 50_000);
    let rounds = env_usize("NIMSYNC_BENCH_ROUNDS", 3);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    eprintln!("metrics: {records} records per thread, {pings} ping-pongs, {rounds} rounds, {cores} cores");
    let values = values();
    let cases = recording_cases(&values);
    eprint!("  warming up");
    for (_, _, _, run) in &cases {
        run(records / 10);
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, (case, name, _, run)) in cases.iter().enumerate() {
            eprint!("\r  round {}/{rounds}: {case:<20} {name:<26}", round + 1);
            results[i].push(run(records));
        }
    }
    eprintln!();
    for ((case, name, threads, _), v) in cases.iter().zip(results) {
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"record_ns\",\"case\":\"{case}\",\"impl\":\"{name}\",\"ns\":{:.2},\"threads\":{threads},\"cores\":{cores},\"oversubscribed\":{}}}",
            median(v),
            *threads > cores
        );
    }

    let probes = [
        ("no metrics", Probe::None),
        ("clock read only", Probe::ClockOnly),
        ("full collection", Probe::Histogram(1.0)),
        ("1% sampling", Probe::Histogram(0.01)),
    ];
    for (_, p) in &probes {
        pingpong(pings / 10, *p);
    }
    // A ping-pong on a shared machine is bimodal (the echo thread either
    // catches the message while spinning or has parked); other processes only
    // ever add time. Many short interleaved rounds, best round counts.
    let ping_rounds = rounds.max(21);
    let mut rtt: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    for round in 0..ping_rounds {
        for (i, (name, p)) in probes.iter().enumerate() {
            eprint!("\r  ping-pong round {}/{ping_rounds}: {name:<16}", round + 1);
            rtt[i].push(pingpong(pings, *p));
        }
    }
    eprintln!();
    let best: Vec<f64> = rtt.into_iter().map(|v| v.into_iter().fold(f64::INFINITY, f64::min)).collect();
    for ((name, _), m) in probes.iter().zip(&best) {
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"metrics_overhead\",\"case\":\"pingpong\",\"impl\":\"{name}\",\"ns\":{m:.1},\"threads\":2,\"cores\":{cores}}}"
        );
    }
    for ((name, _), m) in probes.iter().zip(&best).skip(1) {
        eprintln!(
            "  ping-pong overhead, {name}: {:+.1}% ({m:.0} ns vs {:.0} ns)",
            (m / best[0] - 1.0) * 100.0,
            best[0]
        );
    }
}
