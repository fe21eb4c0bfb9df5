//! Tracing costs: span start+end at 1% and 100% sampling (with an exporter
//! that discards, so the batch processor runs as in production), and the
//! overhead of tracing at 1% on a channel ping-pong.
//!
//! Prints one JSON object per result (see bench/report.py); the overhead in
//! percent goes to stderr.

use nimsync_core::tracing::{BatchConfig, ExportError, Resource, Sampler, SpanData, SpanExporter, Tracer};
use nimsync_core::{Channel, Mode};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Discard;

impl SpanExporter for Discard {
    fn export(&mut self, _: &Resource, batch: &[SpanData]) -> Result<(), ExportError> {
        black_box(batch.len());
        Ok(())
    }
}

fn tracer(ratio: f64) -> Tracer {
    Tracer::builder()
        .sampler(Sampler::parent_based(Sampler::ratio(ratio).unwrap()))
        .exporter(Discard)
        .batch_config(BatchConfig {
            max_queue_size: 1 << 16,
            max_batch_size: 512,
            scheduled_delay: Duration::from_millis(100),
        })
        .build()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median ns per span start+end over several runs.
fn span_cost(ratio: f64) -> (f64, u64) {
    let t = tracer(ratio);
    let n = 200_000;
    let runs: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                let mut s = t.start("op");
                s.end();
                black_box(&s);
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            // Let the exporter drain so each run starts with room.
            t.flush(Duration::from_secs(30)).unwrap();
            ns
        })
        .collect();
    let dropped = t.stats().dropped;
    t.shutdown();
    (median(runs), dropped)
}

/// Median ns per round trip of a two-thread ping-pong, untraced and with
/// one span per round trip on the pinging side. Blocks of both kinds
/// alternate on the same pair of threads, so thread placement and machine
/// load hit both alike.
fn pingpong(tracer: &Tracer) -> (f64, f64) {
    let ping = Channel::<u64>::new(1, Mode::Spsc).unwrap();
    let pong = Channel::<u64>::new(1, Mode::Spsc).unwrap();
    let (p2, q2) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        while let Ok(v) = p2.recv() {
            q2.send(v).unwrap();
        }
    });
    let block = 20_000;
    let (mut plain, mut traced) = (Vec::new(), Vec::new());
    for round in 0..60 {
        let with_spans = round % 2 == 1;
        let start = Instant::now();
        for i in 0..block {
            let span = with_spans.then(|| tracer.start("roundtrip"));
            ping.send(i).unwrap();
            black_box(pong.recv().unwrap());
            drop(span);
        }
        let ns = start.elapsed().as_nanos() as f64 / block as f64;
        // The first pair warms up.
        if round >= 2 {
            if with_spans {
                traced.push(ns)
            } else {
                plain.push(ns)
            }
        }
    }
    ping.close();
    echo.join().unwrap();
    (median(plain), median(traced))
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (case, ratio) in [("span start+end 1%", 0.01), ("span start+end 100%", 1.0)] {
        let (ns, dropped) = span_cost(ratio);
        eprintln!("  {case}: {ns:.1} ns (spans dropped by the full buffer: {dropped})");
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"tracing\",\"case\":\"{case}\",\"impl\":\"nimsync\",\"ns\":{ns:.1},\"cores\":{cores}}}"
        );
    }
    let t = tracer(0.01);
    let (base, traced) = pingpong(&t);
    t.shutdown();
    let overhead = (traced - base) / base * 100.0;
    eprintln!(
        "  ping-pong round trip: {base:.0} ns untraced, {traced:.0} ns traced at 1% ({overhead:+.1}%; target < 5%)"
    );
    for (imp, ns) in [("nimsync", base), ("nimsync+tracing 1%", traced)] {
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"tracing overhead\",\"case\":\"pingpong\",\"impl\":\"{imp}\",\"ns\":{ns:.1},\"cores\":{cores}}}"
        );
    }
}
