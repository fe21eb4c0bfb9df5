//! Metrics: exact counts under threads, percentile accuracy against exact
//! sorted samples, the Prometheus exposition byte for byte, the HTTP
//! endpoint, and nimsync's runtime metrics.
#![cfg(not(loom))]

use nimsync_core::metrics::{Collector, HistogramOpts, HistogramSnapshot};
use nimsync_core::{Channel, Mode, Scheduler, TaskGroup};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};

/// splitmix64: a small seeded generator, so every run sees the same samples.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn run_threads(threads: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (f, start) = (f.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                f(t)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn no_record_is_lost_under_threads() {
    const THREADS: usize = 8;
    const M: u64 = 200_000;
    let c = Collector::new();
    let counter = c.counter("ops_total", "Ops.").unwrap();
    let labelled = c.counter_vec("ops_by_thread_total", "Ops by parity.", &["parity"]).unwrap();
    let gauge = c.gauge("level", "Level.").unwrap();
    let hist = c.histogram("lat", "Latency.").unwrap();
    let (k, l, g, h) = (counter.clone(), labelled.clone(), gauge.clone(), hist.clone());
    run_threads(THREADS, move |t| {
        let mine = l.with(&[if t % 2 == 0 { "even" } else { "odd" }]).unwrap();
        for i in 0..M {
            k.inc();
            mine.inc();
            g.add(1.0);
            h.record(i + 1);
        }
    });
    let n = THREADS as u64 * M;
    assert_eq!(counter.get(), n);
    assert_eq!(labelled.with(&["even"]).unwrap().get() + labelled.with(&["odd"]).unwrap().get(), n);
    assert_eq!(gauge.get(), n as f64);
    let s = hist.snapshot();
    assert_eq!(s.count(), n);
    assert_eq!(s.sum(), THREADS as u128 * (u128::from(M) * u128::from(M + 1) / 2));
    assert_eq!((s.min(), s.max()), (1, M));
}

/// The exact nearest-rank percentile of sorted samples.
fn exact(sorted: &[u64], p: f64) -> u64 {
    let x = p / 100.0 * sorted.len() as f64;
    let rank = (x - x * 1e-12).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn check_accuracy(name: &str, samples: Vec<u64>) {
    assert_eq!(samples.len(), 1_000_000);
    let c = Collector::new();
    let h = c.histogram(name, "").unwrap();
    // Four threads, so that several shards are added up.
    let shared = Arc::new(samples);
    let (h2, s2) = (h.clone(), shared.clone());
    run_threads(4, move |t| {
        for v in s2.iter().skip(t).step_by(4) {
            h2.record(*v);
        }
    });
    let mut sorted = Arc::try_unwrap(shared).unwrap();
    sorted.sort_unstable();
    let snap: HistogramSnapshot = h.snapshot();
    assert_eq!(snap.count(), 1_000_000);
    assert_eq!(snap.min(), sorted[0]);
    assert_eq!(snap.max(), *sorted.last().unwrap());
    let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
    assert_eq!(snap.sum(), sum);
    assert!((snap.mean() - sum as f64 / 1e6).abs() <= 1e-9 * snap.mean());
    let mut worst = 0f64;
    for p in [0.0, 0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0] {
        let (want, got) = (exact(&sorted, p), snap.percentile(p));
        let err = (got as f64 - want as f64).abs() / want.max(1) as f64;
        worst = worst.max(err);
        assert!(err <= 0.01, "{name} p{p}: exact {want}, histogram {got} ({:.3}% off)", err * 100.0);
    }
    eprintln!("{name}: worst percentile error {:.3}%", worst * 100.0);
}

/// 1 ns to one hour, uniformly.
#[test]
fn percentiles_uniform_within_one_percent() {
    let mut r = Rng(1);
    let hour = 3_600_000_000_000u64;
    check_accuracy("uniform", (0..1_000_000).map(|_| 1 + r.next_u64() % hour).collect());
}

/// Log-normal around 1 ms with sigma 2.5 (nanoseconds to hours in the tails).
#[test]
fn percentiles_log_normal_within_one_percent() {
    let mut r = Rng(2);
    check_accuracy(
        "lognormal",
        (0..1_000_000).map(|_| ((1e6f64).ln() + 2.5 * r.normal()).exp().max(1.0) as u64).collect(),
    );
}

/// Two modes: a fast path near 50 µs and a slow one near 2 s.
#[test]
fn percentiles_bimodal_within_one_percent() {
    let mut r = Rng(3);
    check_accuracy(
        "bimodal",
        (0..1_000_000)
            .map(|_| {
                let (mean, sd) = if r.unit() < 0.8 { (50_000.0, 5_000.0) } else { (2e9, 2e8) };
                (mean + sd * r.normal()).max(1.0) as u64
            })
            .collect(),
    );
}

#[test]
fn small_values_are_exact() {
    let c = Collector::new();
    let h = c.histogram("small", "").unwrap();
    for v in 0..256 {
        h.record(v);
    }
    let s = h.snapshot();
    assert_eq!((s.percentile(0.0), s.percentile(50.0), s.percentile(100.0)), (0, 127, 255));
    let empty = c.histogram("empty", "").unwrap().summary();
    assert_eq!((empty.count, empty.p99, empty.mean), (0, 0, 0.0));
}

const NASTY: &str = "quote\" backslash\\ newline\n tab\t unicode é";

fn golden_collector() -> Collector {
    let c = Collector::new();
    let req = c
        .counter_vec("http_requests_total", "Requests.\nSecond line with \\ and \"quotes\".", &["path", "code"])
        .unwrap();
    req.with(&[NASTY, "200"]).unwrap().add(7);
    req.with(&["/", "500"]).unwrap().inc();
    let g = c.gauge("temperature_celsius", "Temperature.").unwrap();
    g.set(-3.25);
    let h = c
        .histogram_vec(
            "rpc_seconds",
            "RPC latency.",
            &["method"],
            HistogramOpts::new().scale(1e-9).buckets(&[0.001, 0.01, 0.1]),
        )
        .unwrap();
    let get = h.with(&["get"]).unwrap();
    for ns in [500_000, 2_000_000, 3_000_000, 50_000_000, 700_000_000] {
        get.record(ns);
    }
    let s = c.histogram_with("payload_bytes", "Payload sizes.", HistogramOpts::new().summary(&[0.5, 0.99])).unwrap();
    for v in 1..=100 {
        s.record(v);
    }
    c
}

#[test]
fn exposition_golden() {
    let text = golden_collector().to_prometheus();
    let want = r#"# HELP http_requests_total Requests.\nSecond line with \\ and "quotes".
# TYPE http_requests_total counter
http_requests_total{path="/",code="500"} 1
http_requests_total{path="quote\" backslash\\ newline\n tab	 unicode é",code="200"} 7
# HELP payload_bytes Payload sizes.
# TYPE payload_bytes summary
payload_bytes{quantile="0.5"} 50
payload_bytes{quantile="0.99"} 99
payload_bytes_sum 5050
payload_bytes_count 100
# HELP rpc_seconds RPC latency.
# TYPE rpc_seconds histogram
rpc_seconds_bucket{method="get",le="0.001"} 1
rpc_seconds_bucket{method="get",le="0.01"} 3
rpc_seconds_bucket{method="get",le="0.1"} 4
rpc_seconds_bucket{method="get",le="+Inf"} 5
rpc_seconds_sum{method="get"} 0.7555
rpc_seconds_count{method="get"} 5
# HELP temperature_celsius Temperature.
# TYPE temperature_celsius gauge
temperature_celsius -3.25
"#;
    assert_eq!(text, want);
}

/// A value exactly on an `le` bound counts under it, also through a scale.
#[test]
fn bucket_bounds_are_inclusive() {
    let c = Collector::new();
    let h = c.histogram_with("t_seconds", "", HistogramOpts::new().scale(1e-9).buckets(&[0.0001, 0.001])).unwrap();
    h.record(100_000);
    h.record(1_000_000);
    h.record(1_000_001);
    let text = c.to_prometheus();
    assert!(text.contains("t_seconds_bucket{le=\"0.0001\"} 1\n"), "{text}");
    assert!(text.contains("t_seconds_bucket{le=\"0.001\"} 3\n"), "within 1/128 above the bound counts: {text}");
    let s = h.snapshot();
    assert_eq!(s.percentile(99.9), 1_000_001);
    assert!(s.percentile(100.0 / 3.0).abs_diff(100_000) <= 1_000);
}

fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn http_endpoint() {
    let c = golden_collector();
    let server = c.serve("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    let reply = http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
    assert_eq!(body, c.to_prometheus());
    // A query string is not part of the path.
    assert!(http(addr, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    let head_only = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head_only.starts_with("HTTP/1.1 200 OK\r\n") && head_only.ends_with("\r\n\r\n"));
    assert!(http(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(http(addr, "GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405"));
    // A client that connects and leaves does not stop the server.
    drop(TcpStream::connect(addr).unwrap());
    assert!(http(addr, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
    server.stop();
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed after stop");
    // A taken port is a clear error.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = c.serve(held.local_addr().unwrap()).unwrap_err();
    assert!(err.to_string().contains("cannot listen"), "{err}");
}

#[test]
fn runtime_metrics() {
    let c = Collector::new();
    let pool = Scheduler::new(2).unwrap();
    c.register_scheduler("main", &pool).unwrap();
    assert!(c.register_scheduler("main", &pool).is_err(), "one name per kind");
    assert!(c.register_scheduler("", &pool).is_err());
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    c.register_group("batch", &group).unwrap();
    for _ in 0..10 {
        group.go(|_| Ok(()));
    }
    group.go(|_| Err("boom".into()));
    let ch = Channel::new(8, Mode::Mpsc).unwrap();
    c.register_channel(NASTY, &ch).unwrap();
    let unbounded = Channel::<u8>::unbounded();
    c.register_channel("inbox", &unbounded).unwrap();
    for i in 0..3 {
        ch.send(i).unwrap();
    }
    // Wait for the tasks to finish without collecting their errors.
    while pool.metrics().executed < 11 {
        std::thread::yield_now();
    }
    let text = c.to_prometheus();
    for line in [
        "nimsync_scheduler_workers{scheduler=\"main\"} 2\n",
        "nimsync_scheduler_tasks_executed_total{scheduler=\"main\"} 11\n",
        "nimsync_scheduler_worker_panics_total{scheduler=\"main\",worker=\"1\"} 0\n",
        "nimsync_group_tasks_spawned_total{group=\"batch\"} 11\n",
        "nimsync_group_tasks_pending{group=\"batch\"} 0\n",
        "nimsync_group_failures_unjoined{group=\"batch\"} 1\n",
        "nimsync_group_cancelled{group=\"batch\"} 1\n",
        "nimsync_channel_length{channel=\"quote\\\" backslash\\\\ newline\\n tab\t unicode é\",mode=\"mpsc\"} 3\n",
        "nimsync_channel_capacity{channel=\"inbox\",mode=\"unbounded\"} +Inf\n",
        "nimsync_channel_closed{channel=\"inbox\",mode=\"unbounded\"} 0\n",
        "# TYPE nimsync_scheduler_tasks_executed_total counter\n",
        "# TYPE nimsync_channel_length gauge\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // One family alone, runtime or registered.
    let one = c.family_to_prometheus("nimsync_channel_capacity");
    assert!(one.starts_with("# HELP nimsync_channel_capacity "), "{one}");
    assert_eq!(one.lines().filter(|l| !l.starts_with('#')).count(), 2, "{one}");
    assert_eq!(c.family_to_prometheus("nimsync_channel"), "");
    // Registered metrics cannot take runtime names, nor the other way round.
    assert!(c.gauge("nimsync_channel_length", "").is_err());
    let c2 = Collector::new();
    c2.gauge("nimsync_group_tasks_pending", "").unwrap();
    assert!(c2.register_group("g", &group).is_err());
    // The collector keeps nothing alive: dropped objects leave the exposition.
    assert!(group.join().is_err());
    drop(group);
    drop(ch);
    let text = c.to_prometheus();
    assert!(!text.contains("batch") && !text.contains("mpsc"), "{text}");
    assert!(text.contains("inbox"));
    assert!(c.unregister_runtime("inbox"));
    assert!(!c.to_prometheus().contains("inbox"));
    drop(pool);
    assert!(!c.to_prometheus().contains("nimsync_scheduler"));
}

#[test]
fn registration_rules() {
    let c = Collector::new();
    let v = c.counter_vec("x_total", "", &["a"]).unwrap();
    assert!(c.counter_vec("x_total", "", &["b"]).is_err(), "other labels");
    assert!(c.counter_vec("x_total", "", &["a"]).is_ok(), "same again");
    let err = v.with(&[]).unwrap_err();
    assert!(err.to_string().contains("1 label(s) (a), got 0"), "{err}");
    v.with(&["1"]).unwrap().inc();
    assert!(v.remove(&["1"]));
    assert!(!v.remove(&["1"]));
    assert!(c.unregister("x_total"));
    assert!(!c.to_prometheus().contains("x_total"));
    c.histogram("h", "").unwrap().record(5);
    let text = c.to_prometheus();
    assert!(text.starts_with("# TYPE h histogram\n"), "no HELP line without help text: {text}");
    assert_eq!(c.find_histogram("h").unwrap().snapshot().count(), 1);
    assert!(c.find_histogram("x_total").is_none());
    assert!(c.histogram_with("h", "", HistogramOpts::new().buckets(&[1.0])).is_err(), "other options");
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Collector>();
    send_sync::<nimsync_core::metrics::Counter>();
    send_sync::<nimsync_core::metrics::Gauge>();
    send_sync::<nimsync_core::metrics::Histogram>();
    send_sync::<nimsync_core::metrics::CounterVec>();
    send_sync::<nimsync_core::metrics::HistogramVec>();
    send_sync::<nimsync_core::metrics::MetricsServer>();
    send_sync::<HistogramSnapshot>();
}

#[test]
fn percentile_0_and_100_are_the_exact_extremes() {
    let c = Collector::new();
    let h = c.histogram("extremes", "extremes").unwrap();
    h.record(2_000_000);
    h.record(3_000_000);
    assert_eq!(h.percentile(0.0), 2_000_000);
    assert_eq!(h.percentile(100.0), 3_000_000);
    let p50 = h.percentile(50.0) as f64;
    assert!((p50 - 2_000_000.0).abs() / 2_000_000.0 < 0.01, "p50 {p50}");
}
