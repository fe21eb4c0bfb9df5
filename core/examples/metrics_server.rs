//! A collector with every kind of metric, awkward label values and nimsync's
//! runtime metrics, for checking the exposition against real Prometheus
//! tools (`tests/prometheus/run.sh`).
//!
//! ```text
//! metrics_server --print          # write the exposition to stdout and exit
//! metrics_server --serve ADDR     # serve GET /metrics on ADDR (port 0: any)
//! ```
//!
//! With `--serve` it prints `listening <addr>`, then one line per value a
//! scraper must see (`expect<TAB>metric<TAB>labels as JSON<TAB>value`), then
//! `ready`, and serves until its standard input closes.

use nimsync_core::metrics::{Collector, HistogramOpts};
use nimsync_core::{Channel, Mode, Scheduler, TaskGroup};
use std::io::Read;

/// A label value with every character the format escapes, and more.
const NASTY: &str = "quote\" backslash\\ newline\n tab\t unicode é";

/// A metric name, its labels, and the value a scraper must see.
type Expected = (String, Vec<(String, String)>, f64);

struct Demo {
    collector: Collector,
    // Kept alive so that their runtime metrics stay published.
    _pool: Scheduler,
    _channel: Channel<u32>,
    _group: TaskGroup,
    /// What a scraper must find.
    expected: Vec<Expected>,
}

fn build() -> Result<Demo, Box<dyn std::error::Error>> {
    let c = Collector::new();
    let mut expected = Vec::new();
    let mut expect = |name: &str, labels: &[(&str, &str)], v: f64| {
        expected.push((name.to_string(), labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), v));
    };

    let requests = c.counter_vec(
        "demo_requests_total",
        "Requests served, by path and code.\nA second help line with a \\.",
        &["path", "code"],
    )?;
    requests.with(&[NASTY, "200"])?.add(42);
    requests.with(&["/", "500"])?.add(3);
    expect("demo_requests_total", &[("path", NASTY), ("code", "200")], 42.0);
    expect("demo_requests_total", &[("path", "/"), ("code", "500")], 3.0);

    let temperature = c.gauge("demo_temperature_celsius", "A gauge that went below zero.")?;
    temperature.set(-3.25);
    expect("demo_temperature_celsius", &[], -3.25);

    let latency = c.histogram_vec(
        "demo_latency_seconds",
        "Latency recorded in nanoseconds, exposed in seconds.",
        &["method"],
        HistogramOpts::new().scale(1e-9).buckets(&[0.0001, 0.001, 0.01, 0.1, 1.0]),
    )?;
    let get = latency.with(&["GET"])?;
    // 1000 values: 600 at 50 µs, 300 at 5 ms, 100 at 0.5 s.
    for (ns, n) in [(50_000u64, 600), (5_000_000, 300), (500_000_000, 100)] {
        for _ in 0..n {
            get.record(ns);
        }
    }
    expect("demo_latency_seconds_count", &[("method", "GET")], 1000.0);
    expect("demo_latency_seconds_sum", &[("method", "GET")], 600.0 * 50e-6 + 300.0 * 5e-3 + 100.0 * 0.5);
    expect("demo_latency_seconds_bucket", &[("method", "GET"), ("le", "0.0001")], 600.0);
    expect("demo_latency_seconds_bucket", &[("method", "GET"), ("le", "0.01")], 900.0);
    expect("demo_latency_seconds_bucket", &[("method", "GET"), ("le", "+Inf")], 1000.0);

    let payload = c.histogram_with(
        "demo_payload_bytes",
        "Payload sizes as a summary.",
        HistogramOpts::new().summary(&[0.5, 0.99]),
    )?;
    for v in 1..=100 {
        payload.record(v);
    }
    expect("demo_payload_bytes", &[("quantile", "0.5")], 50.0);
    expect("demo_payload_bytes", &[("quantile", "0.99")], 99.0);
    expect("demo_payload_bytes_count", &[], 100.0);

    // nimsync's own metrics.
    let pool = Scheduler::new(2)?;
    c.register_scheduler("demo", &pool)?;
    let group = TaskGroup::builder().scheduler(&pool).build()?;
    c.register_group("demo", &group)?;
    for _ in 0..100 {
        group.go(|_| Ok(()));
    }
    group.join()?;
    expect("nimsync_scheduler_tasks_executed_total", &[("scheduler", "demo")], 100.0);
    expect("nimsync_scheduler_workers", &[("scheduler", "demo")], 2.0);
    expect("nimsync_group_tasks_spawned_total", &[("group", "demo")], 100.0);
    expect("nimsync_group_tasks_pending", &[("group", "demo")], 0.0);
    let channel = Channel::new(16, Mode::Mpmc)?;
    c.register_channel(NASTY, &channel)?;
    for i in 0..3 {
        channel.send(i).map_err(|e| e.error)?;
    }
    expect("nimsync_channel_length", &[("channel", NASTY), ("mode", "mpmc")], 3.0);
    expect("nimsync_channel_capacity", &[("channel", NASTY), ("mode", "mpmc")], 16.0);

    Ok(Demo { collector: c, _pool: pool, _channel: channel, _group: group, expected })
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = match build() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("metrics_server: {e}");
            std::process::exit(1);
        }
    };
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--print"] => print!("{}", demo.collector.to_prometheus()),
        ["--serve", addr] => {
            let server = match demo.collector.serve(*addr) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("metrics_server: {e}");
                    std::process::exit(1);
                }
            };
            println!("listening {}", server.local_addr());
            for (name, labels, v) in &demo.expected {
                let labels: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
                println!("expect\t{name}\t{{{}}}\t{v}", labels.join(","));
            }
            println!("ready");
            // Serve until the parent closes our standard input.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            server.stop();
        }
        _ => {
            eprintln!("usage: metrics_server --print | --serve ADDR");
            std::process::exit(2);
        }
    }
}
