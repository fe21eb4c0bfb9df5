//! Metrics: counters, gauges and histograms in a [`Collector`], exposed in the
//! Prometheus text format (0.0.4), optionally over a built-in HTTP endpoint.
//!
//! * **Recording is lock-free** from any number of threads and loses nothing:
//!   counters are striped atomics (one cache line per shard, a thread adds to
//!   the shard of its thread slot, a read adds the shards up); gauges are one
//!   atomic `f64`; histograms are log-linear atomic buckets in the
//!   HdrHistogram way (see [`HistogramSnapshot`]): min, max, mean, sum, count
//!   and any percentile within 1%, over the whole `u64` range.
//! * **Labels**: `*_vec` registrations take label names; `with(&[values])`
//!   looks the label set up (a read lock, or a write lock the first time) and
//!   returns a handle that records with no lock. Keep the handle for hot paths.
//! * **Sampling** ([`Collector::with_sampling`]): a rate in 0.0–1.0 applies to
//!   histogram records, the high-frequency path: a record is kept with that
//!   probability (a per-thread xorshift generator); a sampled-out record costs
//!   one relaxed load, one compare and the generator step. At rate 1.0 the
//!   check is one load and one compare. Counters and gauges are never sampled
//!   (a count must stay exact), but a disabled collector ignores them too.
//!   A sampled histogram's count and sum cover the records kept.
//!   [`Histogram::start_timer`] decides at the start, so a sampled-out
//!   timing never reads the clock.
//! * **Runtime metrics**: [`Collector::register_scheduler`],
//!   [`register_channel`](Collector::register_channel) and
//!   [`register_group`](Collector::register_group) publish nimsync's own
//!   counters, read at scrape time from objects the collector does not keep
//!   alive (a dropped channel's series disappear).
//! * **Exposition**: [`Collector::to_prometheus`] and [`Collector::serve`]
//!   (GET `/metrics` on one small thread, no async runtime).
//!
//! Histograms are exposed as Prometheus *histograms* by default
//! (`_bucket{le=...}`, `_sum`, `_count`, bounds set by
//! [`HistogramOpts::buckets`]): unlike a summary's quantiles, bucket counts
//! add up across processes and let PromQL's `histogram_quantile` pick any
//! quantile over any time window. The log-linear buckets underneath still
//! answer in-process percentile queries to 1%, and
//! [`HistogramOpts::summary`] exposes those as a Prometheus *summary*
//! (`{quantile="0.99"}`) for callers who want them precomputed.
//!
//! ```
//! use nimsync_core::metrics::{Collector, HistogramOpts};
//! let metrics = Collector::new();
//! let requests = metrics.counter_vec("http_requests_total", "Requests served.", &["method"]).unwrap();
//! requests.with(&["GET"]).unwrap().inc();
//! let latency = metrics
//!     .histogram_with("http_latency_seconds", "Latency.", HistogramOpts::new().scale(1e-9).buckets(&[0.001, 0.01, 0.1]))
//!     .unwrap();
//! latency.record(2_500_000); // 2.5 ms, in nanoseconds
//! let text = metrics.to_prometheus();
//! assert!(text.contains("http_requests_total{method=\"GET\"} 1\n"));
//! assert!(text.contains("http_latency_seconds_bucket{le=\"0.01\"} 1\n"));
//! ```

mod exposition;
mod histogram;
mod http;
mod runtime;

pub use histogram::HistogramSnapshot;
pub use http::MetricsServer;

use crate::error::Error;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use histogram::AtomicHistogram;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// Quantiles a summary exposes unless [`HistogramOpts::summary`] says otherwise.
pub const DEFAULT_QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// `le` bounds a histogram exposes unless [`HistogramOpts::buckets`] says
/// otherwise: decades from 1 to 10^12 in exposed units (nanoseconds up to
/// about 17 minutes when the scale is 1).
pub const DEFAULT_BUCKETS: [f64; 13] = [1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12];

// ---------------------------------------------------------------------------
// Threads, shards and sampling

/// Shards per striped metric: the number of cores rounded up to a power of
/// two, at most 16.
fn shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).next_power_of_two().min(16))
}

thread_local! {
    /// This thread's slot (picks its shard); `usize::MAX` until first use.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread's xorshift64 state for sampling; 0 until first use.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A small number unique to this thread among the threads alive at once
/// (in practice: threads get consecutive slots, so the first threads each get
/// their own shard).
#[inline]
pub(crate) fn thread_slot() -> usize {
    SLOT.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        // Relaxed: only uniqueness matters.
        let v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (1 << 20);
        s.set(v);
        v
    })
}

/// The next value of this thread's xorshift64 generator.
#[inline]
fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            // Seed from the slot and the cell's address: distinct per thread, never 0.
            x = (thread_slot() as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as *const _ as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

/// The collector-wide switches every handle reads on each record.
struct Config {
    /// Counters and gauges record only when set.
    enabled: AtomicBool,
    /// A histogram record is kept when a random u64 is below this:
    /// `u64::MAX` keeps all (checked first), 0 keeps none (also when disabled).
    threshold: AtomicU64,
    /// The rate as set (f64 bits), for reading back.
    rate_bits: AtomicU64,
    /// Serializes the setters so `enabled` and `threshold` agree.
    setter: Mutex<()>,
}

impl Config {
    fn threshold_for(enabled: bool, rate: f64) -> u64 {
        if !enabled || rate <= 0.0 {
            0
        } else if rate >= 1.0 {
            u64::MAX
        } else {
            (rate * 18_446_744_073_709_551_616.0) as u64
        }
    }

    fn apply(&self, enabled: bool, rate: f64) {
        // Relaxed: a switch; records racing with the change may go either way.
        self.enabled.store(enabled, Ordering::Relaxed);
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        self.threshold.store(Config::threshold_for(enabled, rate), Ordering::Relaxed);
    }

    #[inline]
    fn enabled(&self) -> bool {
        // Relaxed: a switch (see `apply`).
        self.enabled.load(Ordering::Relaxed)
    }

    #[inline]
    fn keep_sample(&self) -> bool {
        // Relaxed: a switch (see `apply`).
        let t = self.threshold.load(Ordering::Relaxed);
        t == u64::MAX || (t != 0 && next_random() < t)
    }
}

fn check_rate(rate: f64) -> Result<f64, Error> {
    if rate.is_nan() || !(0.0..=1.0).contains(&rate) {
        return Err(Error::invalid("sampling_rate", format!("must be between 0.0 and 1.0, got {rate}")));
    }
    Ok(rate)
}

// ---------------------------------------------------------------------------
// Instruments

struct CounterCore {
    cells: Box<[CachePadded<AtomicU64>]>,
}

impl CounterCore {
    fn new() -> Self {
        CounterCore { cells: (0..shard_count()).map(|_| CachePadded::new(AtomicU64::new(0))).collect() }
    }

    #[inline]
    fn add(&self, n: u64) {
        let cell = &self.cells[thread_slot() & (self.cells.len() - 1)];
        // Relaxed: an exact count needs atomicity, not order.
        cell.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        // Relaxed: see `add`; wrapping like the cells themselves.
        self.cells.iter().fold(0u64, |acc, c| acc.wrapping_add(c.load(Ordering::Relaxed)))
    }
}

struct GaugeCore {
    bits: AtomicU64,
}

impl GaugeCore {
    fn new() -> Self {
        GaugeCore { bits: AtomicU64::new(0f64.to_bits()) }
    }

    fn get(&self) -> f64 {
        // Relaxed: the latest value is all a gauge promises.
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A monotonically increasing count (Prometheus `counter`). Clones share it.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// let c = Collector::new();
/// let sent = c.counter("messages_sent_total", "Messages sent.").unwrap();
/// sent.inc();
/// sent.add(41);
/// assert_eq!(sent.get(), 42);
/// ```
#[derive(Clone)]
pub struct Counter {
    core: Arc<CounterCore>,
    cfg: Arc<Config>,
}

impl Counter {
    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. Ignored while the collector is disabled.
    #[inline]
    pub fn add(&self, n: u64) {
        if self.cfg.enabled() {
            self.core.add(n);
        }
    }

    /// The current total (exact once the adding threads are done).
    pub fn get(&self) -> u64 {
        self.core.get()
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("value", &self.get()).finish()
    }
}

/// A value that goes up and down (Prometheus `gauge`). Clones share it.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// let c = Collector::new();
/// let conns = c.gauge("active_connections", "Open connections.").unwrap();
/// conns.set(3.0);
/// conns.inc();
/// conns.sub(2.0);
/// assert_eq!(conns.get(), 2.0);
/// ```
#[derive(Clone)]
pub struct Gauge {
    core: Arc<GaugeCore>,
    cfg: Arc<Config>,
}

impl Gauge {
    /// Sets the value. Ignored while the collector is disabled.
    #[inline]
    pub fn set(&self, v: f64) {
        if self.cfg.enabled() {
            // Relaxed: the latest value is all a gauge promises.
            self.core.bits.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    /// Adds `delta` (negative to subtract); concurrent adds are all applied.
    pub fn add(&self, delta: f64) {
        if !self.cfg.enabled() {
            return;
        }
        // Relaxed: the compare-and-swap loop makes each add atomic; no other
        // memory is published through a gauge.
        let _ = self
            .core
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some((f64::from_bits(b) + delta).to_bits()));
    }

    /// Subtracts `delta`.
    pub fn sub(&self, delta: f64) {
        self.add(-delta);
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts 1.
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.core.get()
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

/// A distribution of `u64` values (Prometheus `histogram`, or `summary` by
/// choice): see [`HistogramSnapshot`] for what it answers. Clones share it.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// use std::time::Duration;
/// let c = Collector::new();
/// let h = c.histogram("op_latency_ns", "Operation latency.").unwrap();
/// h.record(1_000);
/// h.record_duration(Duration::from_micros(3));
/// let s = h.summary();
/// assert_eq!((s.count, s.min, s.max), (2, 1_000, 3_000));
/// ```
#[derive(Clone)]
pub struct Histogram {
    core: Arc<AtomicHistogram>,
    cfg: Arc<Config>,
}

impl Histogram {
    /// Records one value (subject to the collector's sampling rate).
    #[inline]
    pub fn record(&self, v: u64) {
        if self.cfg.keep_sample() {
            self.core.record(v, thread_slot());
        }
    }

    /// Records a duration in nanoseconds (saturating at `u64::MAX`).
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Starts timing one operation; [`HistogramTimer::stop`] (or dropping
    /// the timer) records the elapsed nanoseconds. The sampling decision is
    /// made here, so a sampled-out timer never reads the clock.
    ///
    /// ```
    /// use nimsync_core::metrics::Collector;
    /// let c = Collector::new();
    /// let h = c.histogram("op_ns", "").unwrap();
    /// let t = h.start_timer();
    /// std::hint::black_box((0..100).sum::<u32>());
    /// t.stop();
    /// assert_eq!(h.snapshot().count(), 1);
    /// ```
    #[inline]
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer { hist: self, start: self.cfg.keep_sample().then(std::time::Instant::now) }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.core.snapshot()
    }

    /// The value at percentile `p` (0–100), within 1%; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        self.snapshot().percentile(p)
    }

    /// Count, sum, extremes, mean and the usual percentiles at once.
    pub fn summary(&self) -> HistogramSummary {
        HistogramSummary::of(&self.snapshot())
    }
}

/// A running measurement from [`Histogram::start_timer`].
#[must_use = "a timer records when stopped or dropped"]
#[derive(Debug)]
pub struct HistogramTimer<'a> {
    hist: &'a Histogram,
    /// `None` when this measurement was sampled out.
    start: Option<std::time::Instant>,
}

impl HistogramTimer<'_> {
    /// Records the time since the timer started (if it was sampled in).
    pub fn stop(self) {}
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            // Sampled in at the start: record unconditionally.
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.hist.core.record(ns, thread_slot());
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The numbers most often asked of a histogram, from one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct HistogramSummary {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: u128,
    /// The smallest (0 when empty).
    pub min: u64,
    /// The largest (0 when empty).
    pub max: u64,
    /// The mean (0 when empty).
    pub mean: f64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 95th percentile.
    pub p95: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
}

impl HistogramSummary {
    /// The summary of `s`.
    pub fn of(s: &HistogramSnapshot) -> Self {
        HistogramSummary {
            count: s.count(),
            sum: s.sum(),
            min: s.min(),
            max: s.max(),
            mean: s.mean(),
            p50: s.percentile(50.0),
            p90: s.percentile(90.0),
            p95: s.percentile(95.0),
            p99: s.percentile(99.0),
            p999: s.percentile(99.9),
        }
    }
}

/// How a histogram is exposed.
#[derive(Debug, Clone, PartialEq)]
pub enum Exposition {
    /// A Prometheus histogram with these ascending `le` bounds (exposed
    /// units; `+Inf` is added).
    Buckets(Vec<f64>),
    /// A Prometheus summary with these quantiles (each in 0–1).
    Quantiles(Vec<f64>),
}

/// Options of a histogram: how it is exposed and in which unit.
///
/// ```
/// use nimsync_core::metrics::HistogramOpts;
/// // Record nanoseconds, expose seconds with these bounds:
/// let opts = HistogramOpts::new().scale(1e-9).buckets(&[0.0005, 0.001, 0.01]);
/// // Or expose precomputed quantiles:
/// let opts = HistogramOpts::new().summary(&[0.5, 0.99]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramOpts {
    exposition: Exposition,
    scale: f64,
}

impl Default for HistogramOpts {
    fn default() -> Self {
        HistogramOpts { exposition: Exposition::Buckets(DEFAULT_BUCKETS.to_vec()), scale: 1.0 }
    }
}

impl HistogramOpts {
    /// Prometheus histogram with [`DEFAULT_BUCKETS`], values exposed as recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expose as a Prometheus histogram with these `le` bounds (exposed units,
    /// strictly ascending, finite; checked at registration). The counts come
    /// from the log-linear buckets at scrape time, so bounds cost nothing to
    /// record; a value above a bound by less than 1/128 of it may be counted
    /// under that bound.
    pub fn buckets(mut self, bounds: &[f64]) -> Self {
        self.exposition = Exposition::Buckets(bounds.to_vec());
        self
    }

    /// Expose as a Prometheus summary with these quantiles (each in 0–1;
    /// checked at registration).
    pub fn summary(mut self, quantiles: &[f64]) -> Self {
        self.exposition = Exposition::Quantiles(quantiles.to_vec());
        self
    }

    /// Multiply recorded values by `factor` on exposition (1e-9 turns
    /// recorded nanoseconds into the seconds Prometheus prefers). Positive
    /// and finite; checked at registration.
    pub fn scale(mut self, factor: f64) -> Self {
        self.scale = factor;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::invalid("scale", format!("must be positive and finite, got {}", self.scale)));
        }
        match &self.exposition {
            Exposition::Buckets(b) => {
                if let Some(bad) = b.iter().find(|v| !v.is_finite()) {
                    return Err(Error::invalid(
                        "buckets",
                        format!("bounds must be finite (+Inf is implied), got {bad}"),
                    ));
                }
                if b.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::invalid("buckets", "bounds must be strictly ascending"));
                }
            }
            Exposition::Quantiles(q) => {
                if let Some(bad) = q.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                    return Err(Error::invalid("quantiles", format!("each must be between 0 and 1, got {bad}")));
                }
                if q.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::invalid("quantiles", "must be strictly ascending"));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Families (one name, many label sets)

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Clone)]
enum Series {
    Counter(Arc<CounterCore>),
    Gauge(Arc<GaugeCore>),
    Histogram(Arc<AtomicHistogram>),
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    opts: HistogramOpts,
    series: RwLock<HashMap<Vec<String>, Series>>,
}

impl Family {
    /// The series for `values`, created on first use.
    fn series(&self, values: &[&str]) -> Result<Series, Error> {
        if values.len() != self.label_names.len() {
            return Err(Error::invalid(
                "label_values",
                format!(
                    "`{}` has {} label(s) ({}), got {} value(s)",
                    self.name,
                    self.label_names.len(),
                    self.label_names.join(", "),
                    values.len()
                ),
            ));
        }
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        if let Some(s) = read(&self.series).get(&key) {
            return Ok(s.clone());
        }
        let mut w = write(&self.series);
        if let Some(s) = w.get(&key) {
            return Ok(s.clone());
        }
        let s = match self.kind {
            Kind::Counter => Series::Counter(Arc::new(CounterCore::new())),
            Kind::Gauge => Series::Gauge(Arc::new(GaugeCore::new())),
            Kind::Histogram => Series::Histogram(Arc::new(AtomicHistogram::new(shard_count())?)),
        };
        w.insert(key, s.clone());
        Ok(s)
    }

    /// The names of the sample lines this family writes.
    fn line_names(&self) -> Vec<String> {
        line_names(&self.name, self.kind, &self.opts)
    }
}

fn line_names(name: &str, kind: Kind, opts: &HistogramOpts) -> Vec<String> {
    match (kind, &opts.exposition) {
        (Kind::Histogram, Exposition::Buckets(_)) => {
            vec![name.to_string(), format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count")]
        }
        (Kind::Histogram, Exposition::Quantiles(_)) => {
            vec![name.to_string(), format!("{name}_sum"), format!("{name}_count")]
        }
        _ => vec![name.to_string()],
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks a metric name against Prometheus' `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn check_metric_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("name", format!("{name:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")))
    }
}

/// Checks label names: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed, unique,
/// and not the `le`/`quantile` a histogram adds itself.
fn check_label_names(names: &[&str], kind: Kind) -> Result<(), Error> {
    for (i, n) in names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.chars().enumerate().all(|(j, c)| c.is_ascii_alphabetic() || c == '_' || (j > 0 && c.is_ascii_digit()));
        if !ok {
            return Err(Error::invalid("label_names", format!("{n:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")));
        }
        if n.starts_with("__") {
            return Err(Error::invalid("label_names", format!("{n:?}: names starting with `__` are reserved")));
        }
        if kind == Kind::Histogram && (*n == "le" || *n == "quantile") {
            return Err(Error::invalid("label_names", format!("{n:?} is added by the histogram itself")));
        }
        if names[..i].contains(n) {
            return Err(Error::invalid("label_names", format!("{n:?} appears twice")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Labelled handles

/// A counter family with labels: [`with`](Self::with) picks one label set.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// let c = Collector::new();
/// let hits = c.counter_vec("cache_hits_total", "Hits.", &["cache"]).unwrap();
/// hits.with(&["users"]).unwrap().add(3);
/// assert_eq!(hits.with(&["users"]).unwrap().get(), 3);
/// assert!(hits.with(&["a", "b"]).is_err());
/// ```
#[derive(Clone)]
pub struct CounterVec {
    family: Arc<Family>,
    cfg: Arc<Config>,
}

impl CounterVec {
    /// The counter for these label values (in the order of the label names).
    pub fn with(&self, values: &[&str]) -> Result<Counter, Error> {
        match self.family.series(values)? {
            Series::Counter(core) => Ok(Counter { core, cfg: self.cfg.clone() }),
            _ => unreachable!("a counter family holds counters"),
        }
    }

    /// Drops the series for these label values; false if there was none.
    pub fn remove(&self, values: &[&str]) -> bool {
        remove_series(&self.family, values)
    }
}

/// A gauge family with labels: [`with`](Self::with) picks one label set.
#[derive(Clone)]
pub struct GaugeVec {
    family: Arc<Family>,
    cfg: Arc<Config>,
}

impl GaugeVec {
    /// The gauge for these label values (in the order of the label names).
    pub fn with(&self, values: &[&str]) -> Result<Gauge, Error> {
        match self.family.series(values)? {
            Series::Gauge(core) => Ok(Gauge { core, cfg: self.cfg.clone() }),
            _ => unreachable!("a gauge family holds gauges"),
        }
    }

    /// Drops the series for these label values; false if there was none.
    pub fn remove(&self, values: &[&str]) -> bool {
        remove_series(&self.family, values)
    }
}

/// A histogram family with labels: [`with`](Self::with) picks one label set.
#[derive(Clone)]
pub struct HistogramVec {
    family: Arc<Family>,
    cfg: Arc<Config>,
}

impl HistogramVec {
    /// The histogram for these label values (in the order of the label names).
    pub fn with(&self, values: &[&str]) -> Result<Histogram, Error> {
        match self.family.series(values)? {
            Series::Histogram(core) => Ok(Histogram { core, cfg: self.cfg.clone() }),
            _ => unreachable!("a histogram family holds histograms"),
        }
    }

    /// Drops the series for these label values; false if there was none.
    pub fn remove(&self, values: &[&str]) -> bool {
        remove_series(&self.family, values)
    }
}

fn remove_series(family: &Family, values: &[&str]) -> bool {
    let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    write(&family.series).remove(&key).is_some()
}

// ---------------------------------------------------------------------------
// The collector

struct Registry {
    cfg: Arc<Config>,
    families: RwLock<BTreeMap<String, Arc<Family>>>,
    sources: Mutex<Vec<runtime::Source>>,
}

/// A registry of metrics. Clones share it; it is `Send + Sync`.
///
/// Registering a name twice with the same type, labels and options returns
/// the same metric (so independent modules can each ask for it); a clash
/// (another type, other labels, or a sample name another metric writes, such
/// as a counter `x_count` beside a histogram `x`) is an
/// [`Error::InvalidArgument`].
///
/// ```
/// use nimsync_core::metrics::Collector;
/// let c = Collector::with_sampling(true, 0.1).unwrap();
/// assert_eq!(c.sampling_rate(), 0.1);
/// assert!(Collector::with_sampling(true, 1.5).is_err());
/// let a = c.counter("jobs_total", "Jobs.").unwrap();
/// let b = c.counter("jobs_total", "Jobs.").unwrap();
/// a.inc();
/// assert_eq!(b.get(), 1);
/// assert!(c.gauge("jobs_total", "Jobs.").is_err());
/// ```
#[derive(Clone)]
pub struct Collector {
    reg: Arc<Registry>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("enabled", &self.is_enabled())
            .field("sampling_rate", &self.sampling_rate())
            .field("families", &read(&self.reg.families).len())
            .finish()
    }
}

impl Collector {
    /// An enabled collector keeping every histogram record.
    pub fn new() -> Collector {
        Collector::with_sampling(true, 1.0).expect("1.0 is a valid rate")
    }

    /// A collector that records only when `enabled`, keeping each histogram
    /// record with probability `sampling_rate` (0.0–1.0, else
    /// [`Error::InvalidArgument`]).
    pub fn with_sampling(enabled: bool, sampling_rate: f64) -> Result<Collector, Error> {
        let rate = check_rate(sampling_rate)?;
        let cfg = Config {
            enabled: AtomicBool::new(false),
            threshold: AtomicU64::new(0),
            rate_bits: AtomicU64::new(0),
            setter: Mutex::new(()),
        };
        cfg.apply(enabled, rate);
        Ok(Collector {
            reg: Arc::new(Registry {
                cfg: Arc::new(cfg),
                families: RwLock::new(BTreeMap::new()),
                sources: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Whether recording is on.
    pub fn is_enabled(&self) -> bool {
        self.reg.cfg.enabled()
    }

    /// Turns recording on or off for every metric of this collector.
    pub fn set_enabled(&self, enabled: bool) {
        let _g = lock(&self.reg.cfg.setter);
        self.reg.cfg.apply(enabled, self.sampling_rate());
    }

    /// The histogram sampling rate.
    pub fn sampling_rate(&self) -> f64 {
        // Relaxed: a setting read back.
        f64::from_bits(self.reg.cfg.rate_bits.load(Ordering::Relaxed))
    }

    /// Changes the histogram sampling rate (0.0–1.0).
    pub fn set_sampling_rate(&self, rate: f64) -> Result<(), Error> {
        let rate = check_rate(rate)?;
        let _g = lock(&self.reg.cfg.setter);
        self.reg.cfg.apply(self.is_enabled(), rate);
        Ok(())
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        label_names: &[&str],
        opts: HistogramOpts,
    ) -> Result<Arc<Family>, Error> {
        check_metric_name(name)?;
        check_label_names(label_names, kind)?;
        if kind == Kind::Histogram {
            opts.validate()?;
        }
        // Lock order, here and in `add_source`: sources, then families.
        let sources = lock(&self.reg.sources);
        let mut families = write(&self.reg.families);
        if let Some(f) = families.get(name) {
            let same_labels = f.label_names.iter().map(String::as_str).eq(label_names.iter().copied());
            if f.kind == kind && same_labels && (kind != Kind::Histogram || f.opts == opts) {
                return Ok(f.clone());
            }
            return Err(Error::invalid(
                "name",
                format!(
                    "`{name}` is already registered as a {} with labels [{}] and other options",
                    f.kind.name(),
                    f.label_names.join(", ")
                ),
            ));
        }
        let mine = line_names(name, kind, &opts);
        let reserved = runtime::reserved_names(&sources);
        for taken in families.values().flat_map(|f| f.line_names()).chain(reserved) {
            if mine.contains(&taken) {
                return Err(Error::invalid(
                    "name",
                    format!("`{name}` would write `{taken}`, which another metric writes"),
                ));
            }
        }
        let family = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            label_names: label_names.iter().map(|s| s.to_string()).collect(),
            opts,
            series: RwLock::new(HashMap::new()),
        });
        families.insert(name.to_string(), family.clone());
        Ok(family)
    }

    /// Registers (or finds) an unlabelled counter.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, Error> {
        self.counter_vec(name, help, &[])?.with(&[])
    }

    /// Registers (or finds) a counter family with these label names.
    pub fn counter_vec(&self, name: &str, help: &str, label_names: &[&str]) -> Result<CounterVec, Error> {
        let family = self.family(name, help, Kind::Counter, label_names, HistogramOpts::default())?;
        Ok(CounterVec { family, cfg: self.reg.cfg.clone() })
    }

    /// Registers (or finds) an unlabelled gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.gauge_vec(name, help, &[])?.with(&[])
    }

    /// Registers (or finds) a gauge family with these label names.
    pub fn gauge_vec(&self, name: &str, help: &str, label_names: &[&str]) -> Result<GaugeVec, Error> {
        let family = self.family(name, help, Kind::Gauge, label_names, HistogramOpts::default())?;
        Ok(GaugeVec { family, cfg: self.reg.cfg.clone() })
    }

    /// Registers (or finds) an unlabelled histogram with default options.
    pub fn histogram(&self, name: &str, help: &str) -> Result<Histogram, Error> {
        self.histogram_with(name, help, HistogramOpts::default())
    }

    /// Registers (or finds) an unlabelled histogram with these options.
    pub fn histogram_with(&self, name: &str, help: &str, opts: HistogramOpts) -> Result<Histogram, Error> {
        self.histogram_vec(name, help, &[], opts)?.with(&[])
    }

    /// Registers (or finds) a histogram family with these label names.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        opts: HistogramOpts,
    ) -> Result<HistogramVec, Error> {
        let family = self.family(name, help, Kind::Histogram, label_names, opts)?;
        Ok(HistogramVec { family, cfg: self.reg.cfg.clone() })
    }

    /// The unlabelled histogram registered as `name`, if there is one
    /// (for by-name lookups such as a percentile query).
    pub fn find_histogram(&self, name: &str) -> Option<Histogram> {
        let f = read(&self.reg.families).get(name).cloned()?;
        if f.kind != Kind::Histogram || !f.label_names.is_empty() {
            return None;
        }
        HistogramVec { family: f, cfg: self.reg.cfg.clone() }.with(&[]).ok()
    }

    /// Removes the metric `name` with all its series; false if there was none.
    /// Handles already given out keep working but are no longer exposed.
    pub fn unregister(&self, name: &str) -> bool {
        write(&self.reg.families).remove(name).is_some()
    }

    /// The whole collector in the Prometheus text format 0.0.4 (families
    /// sorted by name, series by label values).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        self.write_prometheus(&mut out).expect("writing to a String cannot fail");
        out
    }

    /// [`to_prometheus`](Self::to_prometheus) into any writer.
    pub fn write_prometheus(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let families: Vec<Arc<Family>> = read(&self.reg.families).values().cloned().collect();
        let runtime = runtime::collect(&mut lock(&self.reg.sources));
        exposition::write(out, &families, &runtime)
    }

    /// The exposition of the one family `name` (a registered metric or a
    /// runtime family such as `nimsync_channel_length`); empty if there is
    /// no such family.
    ///
    /// ```
    /// use nimsync_core::metrics::Collector;
    /// let c = Collector::new();
    /// c.counter("a_total", "A.").unwrap().inc();
    /// c.gauge("b", "B.").unwrap().set(2.0);
    /// assert_eq!(c.family_to_prometheus("b"), "# HELP b B.\n# TYPE b gauge\nb 2\n");
    /// assert_eq!(c.family_to_prometheus("c"), "");
    /// ```
    pub fn family_to_prometheus(&self, name: &str) -> String {
        let families: Vec<Arc<Family>> = read(&self.reg.families).get(name).cloned().into_iter().collect();
        let mut runtime = runtime::collect(&mut lock(&self.reg.sources));
        runtime.retain(|f| f.name == name);
        let mut out = String::new();
        exposition::write(&mut out, &families, &runtime).expect("writing to a String cannot fail");
        out
    }

    /// Serves the exposition at `GET /metrics` on `addr` (for example
    /// `"127.0.0.1:9464"`; port 0 picks a free one, see
    /// [`MetricsServer::local_addr`]) from one thread, until the returned
    /// server is stopped or dropped. Other paths answer 404, other methods 405.
    pub fn serve(&self, addr: impl std::net::ToSocketAddrs) -> Result<MetricsServer, Error> {
        MetricsServer::start(self.clone(), addr)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked() {
        let c = Collector::new();
        assert!(c.counter("", "").is_err());
        assert!(c.counter("1abc", "").is_err());
        assert!(c.counter("a-b", "").is_err());
        assert!(c.counter("ns:ok_name1", "").is_ok());
        assert!(c.counter_vec("x", "", &["__x"]).is_err());
        assert!(c.counter_vec("x", "", &["a", "a"]).is_err());
        assert!(c.counter_vec("x", "", &["a b"]).is_err());
        assert!(c.histogram_vec("h", "", &["le"], HistogramOpts::new()).is_err());
        assert!(c.counter_vec("x", "", &["le"]).is_ok());
        c.histogram("lat", "").unwrap();
        assert!(c.counter("lat_count", "").is_err());
        assert!(c.gauge("lat_bucket", "").is_err());
        c.counter("req_sum", "").unwrap();
        assert!(c.histogram("req", "").is_err());
        assert!(c.histogram_with("bad", "", HistogramOpts::new().buckets(&[2.0, 1.0])).is_err());
        assert!(c.histogram_with("bad", "", HistogramOpts::new().buckets(&[f64::INFINITY])).is_err());
        assert!(c.histogram_with("bad", "", HistogramOpts::new().summary(&[1.5])).is_err());
        assert!(c.histogram_with("bad", "", HistogramOpts::new().scale(0.0)).is_err());
    }

    #[test]
    fn disabled_and_sampled_out_records_are_dropped() {
        let c = Collector::with_sampling(false, 1.0).unwrap();
        let (k, h) = (c.counter("k", "").unwrap(), c.histogram("h", "").unwrap());
        k.inc();
        h.record(1);
        assert_eq!((k.get(), h.snapshot().count()), (0, 0));
        c.set_enabled(true);
        c.set_sampling_rate(0.0).unwrap();
        k.inc();
        h.record(1);
        assert_eq!((k.get(), h.snapshot().count()), (1, 0));
        h.start_timer().stop();
        assert_eq!(h.snapshot().count(), 0, "a sampled-out timer records nothing");
        c.set_sampling_rate(1.0).unwrap();
        h.start_timer().stop();
        assert_eq!(h.snapshot().count(), 1);
        c.set_sampling_rate(0.25).unwrap();
        for _ in 0..100_000 {
            h.record(1);
        }
        let kept = h.snapshot().count();
        assert!((23_000..28_000).contains(&kept), "kept {kept} of 100001 at 25%");
        assert!(c.set_sampling_rate(f64::NAN).is_err());
        assert!(c.set_sampling_rate(-0.1).is_err());
    }
}
