//! `nimsync_metrics_*`: a metrics collector with counters, gauges and
//! histograms (optionally labelled), its Prometheus text exposition
//! (format 0.0.4) and a built-in `/metrics` HTTP endpoint.
//!
//! A collector (`nimsync_metrics_collector_new`) hands out metric handles
//! (`nimsync_metrics_register_counter`, `_gauge`, `_histogram`). Recording
//! through a handle is lock-free and thread-safe; N threads each recording M
//! times leave a count of exactly N×M. A metric registered with label names
//! takes as many label values on every call (in the order of the names); an
//! unlabelled one takes `NULL, 0`; `nimsync_metrics_counter_labels` (and
//! `_gauge_`, `_histogram_`) give a handle bound to one label set, which
//! records with `NULL, 0` and no lookup. Histograms record `uint64_t` values
//! (nanoseconds, bytes, ...) and answer any percentile within 1%.
//!
//! Strings come back the way `snprintf` writes them, into a buffer the
//! caller owns (see `nimsync_metrics_collector_prometheus`).
//!
//! ```c
//! nimsync_metrics_collector *c;
//! nimsync_metrics_collector_new(true, 1.0, &c);
//! const char *labels[] = {"method"};
//! nimsync_metrics_counter *requests;
//! nimsync_metrics_register_counter(c, "http_requests_total", "Requests.", labels, 1, &requests);
//! const char *get[] = {"GET"};
//! nimsync_metrics_counter_inc(requests, get, 1);
//! nimsync_metrics_histogram *latency;
//! nimsync_metrics_register_histogram(c, "latency_ns", "Latency.", NULL, 0, NULL, &latency);
//! nimsync_metrics_histogram_record(latency, NULL, 0, 1500);
//! ```

use crate::channel::nimsync_channel;
use crate::group::nimsync_task_group;
use crate::scheduler::nimsync_scheduler;
use crate::status::{arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::metrics::{
    Collector, Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramSummary, HistogramVec,
    MetricsServer,
};
use std::ffi::{c_char, CStr};
use std::net::SocketAddr;
use std::sync::Mutex;

/// A registry of metrics. Thread-safe. Create with
/// `nimsync_metrics_collector_new`, release with
/// `nimsync_metrics_collector_free`; metric handles and servers made from it
/// stay usable after it is freed.
#[allow(non_camel_case_types)]
pub struct nimsync_metrics_collector {
    collector: Collector,
}

/// A counter family (Prometheus `counter`): a count that only goes up.
/// Thread-safe. Release with `nimsync_metrics_counter_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_metrics_counter {
    vec: CounterVec,
    /// The one series of an unlabelled counter, looked up once.
    plain: Option<Counter>,
}

/// A gauge family (Prometheus `gauge`): a value that goes up and down.
/// Thread-safe. Release with `nimsync_metrics_gauge_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_metrics_gauge {
    vec: GaugeVec,
    /// The one series of an unlabelled gauge, looked up once.
    plain: Option<Gauge>,
}

/// A histogram family: a distribution of `uint64_t` values. Thread-safe.
/// Release with `nimsync_metrics_histogram_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_metrics_histogram {
    /// The family, except for a handle from `nimsync_metrics_find_histogram`.
    vec: Option<HistogramVec>,
    /// The one series of an unlabelled histogram, looked up once.
    plain: Option<Histogram>,
}

/// A running `/metrics` HTTP endpoint (`nimsync_metrics_serve`).
/// Thread-safe. Stop it with `nimsync_metrics_server_stop` or
/// `nimsync_metrics_server_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_metrics_server {
    server: Mutex<Option<MetricsServer>>,
    addr: SocketAddr,
}

/// How a histogram is exposed; pass NULL to `nimsync_metrics_register_histogram`
/// for the defaults. A zero-initialised struct also means the defaults.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_metrics_histogram_opts {
    /// Ascending, finite `le` bounds of a Prometheus histogram, in exposed
    /// units (`+Inf` is added). NULL with `bucket_count` 0: decades from 1
    /// to 10^12.
    pub buckets: *const f64,
    /// Entries in `buckets`.
    pub bucket_count: libc::size_t,
    /// If `quantile_count` is not 0, the histogram is exposed as a
    /// Prometheus summary with these ascending quantiles (each 0–1) instead
    /// of buckets; `bucket_count` must then be 0.
    pub quantiles: *const f64,
    /// Entries in `quantiles`.
    pub quantile_count: libc::size_t,
    /// Recorded values are multiplied by this on exposition (1e-9 turns
    /// nanoseconds into seconds). 0 means 1; otherwise positive and finite.
    pub scale: f64,
}

/// The numbers most often asked of a histogram, from one snapshot
/// (`nimsync_metrics_histogram_summary`). All 0 when nothing was recorded.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nimsync_metrics_summary {
    /// Values recorded (kept by sampling).
    pub count: u64,
    /// Their sum (exact up to 2^53).
    pub sum: f64,
    /// The smallest value.
    pub min: u64,
    /// The largest value.
    pub max: u64,
    /// The mean.
    pub mean: f64,
    /// The median (within 1%, like every percentile below).
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

impl From<HistogramSummary> for nimsync_metrics_summary {
    fn from(s: HistogramSummary) -> Self {
        nimsync_metrics_summary {
            count: s.count,
            sum: s.sum as f64,
            min: s.min,
            max: s.max,
            mean: s.mean,
            p50: s.p50,
            p90: s.p90,
            p95: s.p95,
            p99: s.p99,
            p999: s.p999,
        }
    }
}

fn invalid(name: &str, reason: impl std::fmt::Display) -> Fail {
    Fail::new(nimsync_status::InvalidArgument, format!("invalid argument `{name}`: {reason}"))
}

/// Borrows a NUL-terminated UTF-8 string argument.
fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(Fail::null(name));
    }
    // SAFETY: a non-NULL string argument is NUL-terminated and outlives the
    // call (documented contract).
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| invalid(name, "is not valid UTF-8"))
}

/// Borrows an array of `count` strings (NULL is allowed when `count` is 0).
fn texts<'a>(ptr: *const *const c_char, count: libc::size_t, name: &str) -> Result<Vec<&'a str>, Fail> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Fail::null(name));
    }
    // SAFETY: a non-NULL array has `count` entries (documented contract).
    let items = unsafe { std::slice::from_raw_parts(ptr, count) };
    items.iter().enumerate().map(|(i, &p)| text(p, &format!("{name}[{i}]"))).collect()
}

/// Borrows an array of `count` doubles (NULL is allowed when `count` is 0).
fn doubles<'a>(ptr: *const f64, count: libc::size_t, name: &str) -> Result<&'a [f64], Fail> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Fail::null(name));
    }
    // SAFETY: a non-NULL array has `count` entries (documented contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Copies `text` into a caller's buffer the way `snprintf` does and stores
/// its full length (without the NUL) in `*out_len` when `out_len` is not NULL.
fn copy_out(text: &str, buffer: *mut c_char, capacity: libc::size_t, out_len: *mut libc::size_t) -> Result<(), Fail> {
    if capacity > 0 && buffer.is_null() {
        return Err(Fail::null("buffer"));
    }
    let bytes = text.as_bytes();
    if capacity > 0 {
        let n = bytes.len().min(capacity - 1);
        // SAFETY: `buffer` is non-NULL with room for `capacity` bytes
        // (documented contract); we write `n + 1 <= capacity` of them.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buffer, n);
            *buffer.add(n) = 0;
        }
    }
    if !out_len.is_null() {
        *out(out_len, "out_len")? = bytes.len();
    }
    Ok(())
}

/// Runs `f` on the series of `plain`/`vec` picked by the label values.
fn with_series<T, R>(
    plain: &Option<T>,
    values: *const *const c_char,
    count: libc::size_t,
    lookup: impl FnOnce(&[&str]) -> Result<T, Fail>,
    f: impl FnOnce(&T) -> R,
) -> Result<R, Fail> {
    if count == 0 {
        if let Some(series) = plain {
            return Ok(f(series));
        }
    }
    let values = texts(values, count, "label_values")?;
    Ok(f(&lookup(&values)?))
}

// ---------------------------------------------------------------------------
// Collector

/// Creates a collector and stores it in `*out_collector`. While `enabled` is
/// false nothing is recorded; each histogram record is kept with probability
/// `sampling_rate` (counters and gauges are never sampled).
///
/// Returns `NIMSYNC_STATUS_NULL_ARGUMENT` if `out_collector` is NULL and
/// `NIMSYNC_STATUS_INVALID_ARGUMENT` if `sampling_rate` is not in 0.0–1.0
/// (or is NaN).
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_new(
    enabled: bool,
    sampling_rate: f64,
    out_collector: *mut *mut nimsync_metrics_collector,
) -> nimsync_status {
    guard(|| {
        let out_collector = out(out_collector, "out_collector")?;
        let collector = Collector::with_sampling(enabled, sampling_rate)?;
        *out_collector = Box::into_raw(Box::new(nimsync_metrics_collector { collector }));
        Ok(())
    })
}

/// Releases a collector. Its metric handles and running servers stay usable
/// (and keep what they need alive). NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_free(collector: *mut nimsync_metrics_collector) {
    if collector.is_null() {
        return;
    }
    // SAFETY: a non-NULL handle came from `nimsync_metrics_collector_new`
    // and is freed once (caller contract).
    guard_value((), || drop(unsafe { Box::from_raw(collector) }));
}

/// Turns recording on or off for every metric of the collector.
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_set_enabled(
    collector: *const nimsync_metrics_collector,
    enabled: bool,
) -> nimsync_status {
    guard(|| {
        arg(collector, "collector")?.collector.set_enabled(enabled);
        Ok(())
    })
}

/// Changes the histogram sampling rate; `NIMSYNC_STATUS_INVALID_ARGUMENT`
/// unless it is in 0.0–1.0.
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_set_sampling_rate(
    collector: *const nimsync_metrics_collector,
    sampling_rate: f64,
) -> nimsync_status {
    guard(|| {
        arg(collector, "collector")?.collector.set_sampling_rate(sampling_rate)?;
        Ok(())
    })
}

/// Stores whether the collector records in `*out_enabled` and its sampling
/// rate in `*out_sampling_rate` (either out-pointer may be NULL).
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_settings(
    collector: *const nimsync_metrics_collector,
    out_enabled: *mut bool,
    out_sampling_rate: *mut f64,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        if !out_enabled.is_null() {
            *out(out_enabled, "out_enabled")? = c.is_enabled();
        }
        if !out_sampling_rate.is_null() {
            *out(out_sampling_rate, "out_sampling_rate")? = c.sampling_rate();
        }
        Ok(())
    })
}

/// Writes the whole collector in the Prometheus text format 0.0.4 into
/// `buffer`, the way `snprintf` does: at most `capacity - 1` bytes and a
/// terminating NUL (nothing when `capacity` is 0; `buffer` may then be
/// NULL). `*out_len` (`out_len` may be NULL) receives the full text's length
/// without the NUL: if it is `>= capacity` the text was cut short. The text
/// can grow between two calls, so grow the buffer and call again until it fits:
///
/// ```c
/// size_t cap = 4096, len;
/// char *text = malloc(cap);
/// while (nimsync_metrics_collector_prometheus(c, text, cap, &len) == NIMSYNC_STATUS_OK && len >= cap) {
///     cap = len + 1024;
///     text = realloc(text, cap);
/// }
/// ```
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_prometheus(
    collector: *const nimsync_metrics_collector,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        copy_out(&c.to_prometheus(), buffer, capacity, out_len)
    })
}

/// Like `nimsync_metrics_collector_prometheus`, for the one metric family
/// (or runtime family) called `name`: its `# HELP`/`# TYPE` lines and
/// samples. The text is "" when there is no such family.
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_prometheus_family(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let name = text(name, "name")?;
        copy_out(&family_block(&c.to_prometheus(), name), buffer, capacity, out_len)
    })
}

/// The lines of family `name` in an exposition: from its first `# HELP` or
/// `# TYPE` line up to the next family's. (Help text and label values escape
/// newlines, so every line of the format is a whole line here.)
fn family_block(exposition: &str, name: &str) -> String {
    let mut inside = false;
    let mut block = String::new();
    for line in exposition.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
            inside = rest.split([' ', '\n']).next() == Some(name);
        }
        if inside {
            block.push_str(line);
        }
    }
    block
}

/// Removes the metric `name` and all its series from the collector; handles
/// already given out keep working but are no longer exposed. `*out_found`
/// (may be NULL) tells whether there was such a metric.
#[no_mangle]
pub extern "C" fn nimsync_metrics_unregister(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    out_found: *mut bool,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let found = c.unregister(text(name, "name")?);
        if !out_found.is_null() {
            *out(out_found, "out_found")? = found;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Registration

/// Registers (or finds, when a counter of that name and labels exists) a
/// counter and stores a new handle on it in `*out_counter`.
///
/// `name` is a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); `help`
/// may be NULL or "" (no `# HELP` line); `label_names` holds `label_count`
/// label names (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, no
/// duplicates), NULL when `label_count` is 0.
///
/// Returns `NIMSYNC_STATUS_NULL_ARGUMENT` for a NULL `collector`, `name`,
/// `out_counter`, or label name, and `NIMSYNC_STATUS_INVALID_ARGUMENT` for
/// a bad name or label name, or a name already taken by another kind of
/// metric, other labels, or a histogram's `_sum`/`_count`/`_bucket` lines.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_counter(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    help: *const c_char,
    label_names: *const *const c_char,
    label_count: libc::size_t,
    out_counter: *mut *mut nimsync_metrics_counter,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let (name, help, labels) = registration(name, help, label_names, label_count)?;
        let out_counter = out(out_counter, "out_counter")?;
        let vec = c.counter_vec(name, help, &labels)?;
        let plain = if labels.is_empty() { Some(vec.with(&[])?) } else { None };
        *out_counter = Box::into_raw(Box::new(nimsync_metrics_counter { vec, plain }));
        Ok(())
    })
}

/// Registers (or finds) a gauge; arguments and statuses as for
/// `nimsync_metrics_register_counter`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_gauge(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    help: *const c_char,
    label_names: *const *const c_char,
    label_count: libc::size_t,
    out_gauge: *mut *mut nimsync_metrics_gauge,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let (name, help, labels) = registration(name, help, label_names, label_count)?;
        let out_gauge = out(out_gauge, "out_gauge")?;
        let vec = c.gauge_vec(name, help, &labels)?;
        let plain = if labels.is_empty() { Some(vec.with(&[])?) } else { None };
        *out_gauge = Box::into_raw(Box::new(nimsync_metrics_gauge { vec, plain }));
        Ok(())
    })
}

/// Registers (or finds, when one with the same labels and options exists) a
/// histogram; `opts` may be NULL for the defaults (a Prometheus histogram
/// with decade buckets from 1 to 10^12, values exposed as recorded).
/// Arguments and statuses as for `nimsync_metrics_register_counter`; also
/// `NIMSYNC_STATUS_INVALID_ARGUMENT` for bad options (bounds not ascending
/// or not finite, quantiles outside 0–1, both buckets and quantiles, a
/// negative or non-finite scale) and for the label names `le` and `quantile`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_histogram(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    help: *const c_char,
    label_names: *const *const c_char,
    label_count: libc::size_t,
    opts: *const nimsync_metrics_histogram_opts,
    out_histogram: *mut *mut nimsync_metrics_histogram,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let (name, help, labels) = registration(name, help, label_names, label_count)?;
        let opts = histogram_opts(opts)?;
        let out_histogram = out(out_histogram, "out_histogram")?;
        let vec = c.histogram_vec(name, help, &labels, opts)?;
        let plain = if labels.is_empty() { Some(vec.with(&[])?) } else { None };
        *out_histogram = Box::into_raw(Box::new(nimsync_metrics_histogram { vec: Some(vec), plain }));
        Ok(())
    })
}

/// Stores in `*out_histogram` a new handle on the unlabelled histogram
/// registered as `name`. Returns `NIMSYNC_STATUS_INVALID_ARGUMENT` when
/// there is none (no such metric, another kind, or a labelled histogram).
#[no_mangle]
pub extern "C" fn nimsync_metrics_find_histogram(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    out_histogram: *mut *mut nimsync_metrics_histogram,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let name = text(name, "name")?;
        let out_histogram = out(out_histogram, "out_histogram")?;
        let plain = c
            .find_histogram(name)
            .ok_or_else(|| invalid("name", format!("no unlabelled histogram is registered as `{name}`")))?;
        *out_histogram = Box::into_raw(Box::new(nimsync_metrics_histogram { vec: None, plain: Some(plain) }));
        Ok(())
    })
}

impl nimsync_metrics_histogram {
    /// The series for these label values.
    fn series(&self, values: &[&str]) -> Result<Histogram, Fail> {
        match &self.vec {
            Some(vec) => Ok(vec.with(values)?),
            None => Err(invalid("label_values", "this histogram is unlabelled")),
        }
    }
}

fn registration<'a>(
    name: *const c_char,
    help: *const c_char,
    label_names: *const *const c_char,
    label_count: libc::size_t,
) -> Result<(&'a str, &'a str, Vec<&'a str>), Fail> {
    let name = text(name, "name")?;
    let help = if help.is_null() { "" } else { text(help, "help")? };
    let labels = texts(label_names, label_count, "label_names")?;
    Ok((name, help, labels))
}

fn histogram_opts(opts: *const nimsync_metrics_histogram_opts) -> Result<HistogramOpts, Fail> {
    // SAFETY: a non-NULL `opts` points at a readable struct (documented contract).
    let Some(o) = (unsafe { opts.as_ref() }) else {
        return Ok(HistogramOpts::new());
    };
    let buckets = doubles(o.buckets, o.bucket_count, "opts.buckets")?;
    let quantiles = doubles(o.quantiles, o.quantile_count, "opts.quantiles")?;
    let mut h = HistogramOpts::new();
    match (buckets.is_empty(), quantiles.is_empty()) {
        (false, false) => return Err(invalid("opts", "give buckets or quantiles, not both")),
        (false, true) => h = h.buckets(buckets),
        (true, false) => h = h.summary(quantiles),
        (true, true) => {}
    }
    if o.scale != 0.0 {
        h = h.scale(o.scale);
    }
    Ok(h)
}

/// Releases a counter handle (the counter stays registered). NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_free(counter: *mut nimsync_metrics_counter) {
    if !counter.is_null() {
        // SAFETY: from `nimsync_metrics_register_counter`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(counter) }));
    }
}

/// Releases a gauge handle (the gauge stays registered). NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_free(gauge: *mut nimsync_metrics_gauge) {
    if !gauge.is_null() {
        // SAFETY: from `nimsync_metrics_register_gauge`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(gauge) }));
    }
}

/// Releases a histogram handle (the histogram stays registered). NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_free(histogram: *mut nimsync_metrics_histogram) {
    if !histogram.is_null() {
        // SAFETY: from `nimsync_metrics_register_histogram` or
        // `nimsync_metrics_find_histogram`, freed once.
        guard_value((), || drop(unsafe { Box::from_raw(histogram) }));
    }
}

/// Stores in `*out_collector` another handle on the same collector (free
/// each handle with `nimsync_metrics_collector_free`).
#[no_mangle]
pub extern "C" fn nimsync_metrics_collector_clone(
    collector: *const nimsync_metrics_collector,
    out_collector: *mut *mut nimsync_metrics_collector,
) -> nimsync_status {
    guard(|| {
        let collector = arg(collector, "collector")?.collector.clone();
        *out(out_collector, "out_collector")? = Box::into_raw(Box::new(nimsync_metrics_collector { collector }));
        Ok(())
    })
}

/// Stores in `*out_counter` another handle on the same counter.
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_clone(
    counter: *const nimsync_metrics_counter,
    out_counter: *mut *mut nimsync_metrics_counter,
) -> nimsync_status {
    guard(|| {
        let k = arg(counter, "counter")?;
        let copy = nimsync_metrics_counter { vec: k.vec.clone(), plain: k.plain.clone() };
        *out(out_counter, "out_counter")? = Box::into_raw(Box::new(copy));
        Ok(())
    })
}

/// Stores in `*out_gauge` another handle on the same gauge.
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_clone(
    gauge: *const nimsync_metrics_gauge,
    out_gauge: *mut *mut nimsync_metrics_gauge,
) -> nimsync_status {
    guard(|| {
        let g = arg(gauge, "gauge")?;
        let copy = nimsync_metrics_gauge { vec: g.vec.clone(), plain: g.plain.clone() };
        *out(out_gauge, "out_gauge")? = Box::into_raw(Box::new(copy));
        Ok(())
    })
}

/// Stores in `*out_histogram` another handle on the same histogram.
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_clone(
    histogram: *const nimsync_metrics_histogram,
    out_histogram: *mut *mut nimsync_metrics_histogram,
) -> nimsync_status {
    guard(|| {
        let h = arg(histogram, "histogram")?;
        let copy = nimsync_metrics_histogram { vec: h.vec.clone(), plain: h.plain.clone() };
        *out(out_histogram, "out_histogram")? = Box::into_raw(Box::new(copy));
        Ok(())
    })
}

/// Stores in `*out_counter` a new handle bound to the series of these label
/// values: record through it with `NULL, 0` and no label lookup (a labelled
/// call costs a lookup under a read lock, this one an atomic add). Label
/// values as for `nimsync_metrics_counter_inc`.
///
/// ```c
/// const char *get[] = {"GET"};
/// nimsync_metrics_counter *gets;
/// nimsync_metrics_counter_labels(requests, get, 1, &gets);
/// nimsync_metrics_counter_inc(gets, NULL, 0);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_labels(
    counter: *const nimsync_metrics_counter,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_counter: *mut *mut nimsync_metrics_counter,
) -> nimsync_status {
    guard(|| {
        let k = arg(counter, "counter")?;
        let out_counter = out(out_counter, "out_counter")?;
        let series = k.vec.with(&texts(label_values, label_count, "label_values")?)?;
        *out_counter = Box::into_raw(Box::new(nimsync_metrics_counter { vec: k.vec.clone(), plain: Some(series) }));
        Ok(())
    })
}

/// Like `nimsync_metrics_counter_labels`, for a gauge.
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_labels(
    gauge: *const nimsync_metrics_gauge,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_gauge: *mut *mut nimsync_metrics_gauge,
) -> nimsync_status {
    guard(|| {
        let g = arg(gauge, "gauge")?;
        let out_gauge = out(out_gauge, "out_gauge")?;
        let series = g.vec.with(&texts(label_values, label_count, "label_values")?)?;
        *out_gauge = Box::into_raw(Box::new(nimsync_metrics_gauge { vec: g.vec.clone(), plain: Some(series) }));
        Ok(())
    })
}

/// Like `nimsync_metrics_counter_labels`, for a histogram.
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_labels(
    histogram: *const nimsync_metrics_histogram,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_histogram: *mut *mut nimsync_metrics_histogram,
) -> nimsync_status {
    guard(|| {
        let h = arg(histogram, "histogram")?;
        let out_histogram = out(out_histogram, "out_histogram")?;
        let series = h.series(&texts(label_values, label_count, "label_values")?)?;
        let child = nimsync_metrics_histogram { vec: h.vec.clone(), plain: Some(series) };
        *out_histogram = Box::into_raw(Box::new(child));
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Recording and reading
//
// Every function below takes the series' label values: `label_count`
// strings in the order of the label names given at registration, or
// `NULL, 0` for an unlabelled metric. A wrong number of values is
// `NIMSYNC_STATUS_INVALID_ARGUMENT`; a NULL value `NIMSYNC_STATUS_NULL_ARGUMENT`.

/// Adds 1 to the counter (nothing while the collector is disabled).
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_inc(
    counter: *const nimsync_metrics_counter,
    label_values: *const *const c_char,
    label_count: libc::size_t,
) -> nimsync_status {
    nimsync_metrics_counter_add(counter, label_values, label_count, 1)
}

/// Adds `n` to the counter (nothing while the collector is disabled).
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_add(
    counter: *const nimsync_metrics_counter,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    n: u64,
) -> nimsync_status {
    guard(|| {
        let k = arg(counter, "counter")?;
        with_series(&k.plain, label_values, label_count, |v| Ok(k.vec.with(v)?), |s| s.add(n))
    })
}

/// Stores the counter's current total in `*out_value`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_counter_get(
    counter: *const nimsync_metrics_counter,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_value: *mut u64,
) -> nimsync_status {
    guard(|| {
        let k = arg(counter, "counter")?;
        let out_value = out(out_value, "out_value")?;
        *out_value = with_series(&k.plain, label_values, label_count, |v| Ok(k.vec.with(v)?), Counter::get)?;
        Ok(())
    })
}

/// Sets the gauge to `value` (nothing while the collector is disabled).
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_set(
    gauge: *const nimsync_metrics_gauge,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    value: f64,
) -> nimsync_status {
    guard(|| {
        let g = arg(gauge, "gauge")?;
        with_series(&g.plain, label_values, label_count, |v| Ok(g.vec.with(v)?), |s| s.set(value))
    })
}

/// Adds `delta` (negative to subtract) to the gauge; concurrent adds are
/// all applied.
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_add(
    gauge: *const nimsync_metrics_gauge,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    delta: f64,
) -> nimsync_status {
    guard(|| {
        let g = arg(gauge, "gauge")?;
        with_series(&g.plain, label_values, label_count, |v| Ok(g.vec.with(v)?), |s| s.add(delta))
    })
}

/// Stores the gauge's current value in `*out_value`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_gauge_get(
    gauge: *const nimsync_metrics_gauge,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_value: *mut f64,
) -> nimsync_status {
    guard(|| {
        let g = arg(gauge, "gauge")?;
        let out_value = out(out_value, "out_value")?;
        *out_value = with_series(&g.plain, label_values, label_count, |v| Ok(g.vec.with(v)?), Gauge::get)?;
        Ok(())
    })
}

/// Records `value` in the histogram (kept with the collector's sampling
/// probability; nothing while the collector is disabled).
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_record(
    histogram: *const nimsync_metrics_histogram,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    value: u64,
) -> nimsync_status {
    guard(|| {
        let h = arg(histogram, "histogram")?;
        with_series(&h.plain, label_values, label_count, |v| h.series(v), |s| s.record(value))
    })
}

/// Stores in `*out_value` the value at `percentile` (0–100) of what the
/// histogram recorded, within 1%: the recorded value of nearest rank, 0
/// when nothing was recorded. `NIMSYNC_STATUS_INVALID_ARGUMENT` when
/// `percentile` is NaN or outside 0–100.
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_percentile(
    histogram: *const nimsync_metrics_histogram,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    percentile: f64,
    out_value: *mut u64,
) -> nimsync_status {
    guard(|| {
        let h = arg(histogram, "histogram")?;
        if !(0.0..=100.0).contains(&percentile) {
            return Err(invalid("percentile", format!("must be between 0 and 100, got {percentile}")));
        }
        let out_value = out(out_value, "out_value")?;
        *out_value = with_series(&h.plain, label_values, label_count, |v| h.series(v), |s| s.percentile(percentile))?;
        Ok(())
    })
}

/// Fills `*out_summary` with the histogram's count, sum, min, max, mean and
/// usual percentiles, all from one snapshot.
#[no_mangle]
pub extern "C" fn nimsync_metrics_histogram_summary(
    histogram: *const nimsync_metrics_histogram,
    label_values: *const *const c_char,
    label_count: libc::size_t,
    out_summary: *mut nimsync_metrics_summary,
) -> nimsync_status {
    guard(|| {
        let h = arg(histogram, "histogram")?;
        let out_summary = out(out_summary, "out_summary")?;
        *out_summary = with_series(&h.plain, label_values, label_count, |v| h.series(v), |s| s.summary().into())?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Runtime metrics

/// Publishes the pool's metrics (`nimsync_scheduler_*` families, label
/// `scheduler="<name>"`) in the collector, read at each exposition. The
/// collector does not keep the pool alive; its series vanish with it.
/// `NIMSYNC_STATUS_INVALID_ARGUMENT` if `name` is already used by another
/// runtime object of the collector.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_scheduler(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    scheduler: *const nimsync_scheduler,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let name = text(name, "name")?;
        c.register_scheduler(name, &arg(scheduler, "scheduler")?.scheduler)?;
        Ok(())
    })
}

/// Publishes the channel's length, capacity, closed flag and waiting
/// threads (`nimsync_channel_*` families, label `channel="<name>"`), as
/// `nimsync_metrics_register_scheduler` does for a pool.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_channel(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    channel: *const nimsync_channel,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let name = text(name, "name")?;
        c.register_channel(name, &arg(channel, "channel")?.channel)?;
        Ok(())
    })
}

/// Publishes the task group's counts (`nimsync_group_*` families, label
/// `group="<name>"`), as `nimsync_metrics_register_scheduler` does for a pool.
#[no_mangle]
pub extern "C" fn nimsync_metrics_register_group(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    group: *const nimsync_task_group,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let name = text(name, "name")?;
        c.register_group(name, &arg(group, "group")?.group)?;
        Ok(())
    })
}

/// Stops publishing the runtime object registered as `name`; `*out_found`
/// (may be NULL) tells whether there was one.
#[no_mangle]
pub extern "C" fn nimsync_metrics_unregister_runtime(
    collector: *const nimsync_metrics_collector,
    name: *const c_char,
    out_found: *mut bool,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let found = c.unregister_runtime(text(name, "name")?);
        if !out_found.is_null() {
            *out(out_found, "out_found")? = found;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// HTTP endpoint

/// Serves the collector's exposition at `GET /metrics` on `address` (for
/// example "127.0.0.1:9464"; port 0 picks a free port, see
/// `nimsync_metrics_server_port`) from one background thread, and stores
/// the server in `*out_server`. Other paths answer 404.
///
/// Returns `NIMSYNC_STATUS_INVALID_ARGUMENT` when the address cannot be
/// parsed or listened on (the message has the system's reason).
#[no_mangle]
pub extern "C" fn nimsync_metrics_serve(
    collector: *const nimsync_metrics_collector,
    address: *const c_char,
    out_server: *mut *mut nimsync_metrics_server,
) -> nimsync_status {
    guard(|| {
        let c = &arg(collector, "collector")?.collector;
        let address = text(address, "address")?;
        let out_server = out(out_server, "out_server")?;
        let server = c.serve(address)?;
        let addr = server.local_addr();
        *out_server = Box::into_raw(Box::new(nimsync_metrics_server { server: Mutex::new(Some(server)), addr }));
        Ok(())
    })
}

/// Stores the port the server listens on in `*out_port`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_server_port(
    server: *const nimsync_metrics_server,
    out_port: *mut u16,
) -> nimsync_status {
    guard(|| {
        let s = arg(server, "server")?;
        *out(out_port, "out_port")? = s.addr.port();
        Ok(())
    })
}

/// Writes the address the server listens on ("127.0.0.1:40123") into
/// `buffer`, `snprintf`-style as `nimsync_metrics_collector_prometheus` does.
#[no_mangle]
pub extern "C" fn nimsync_metrics_server_address(
    server: *const nimsync_metrics_server,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let s = arg(server, "server")?;
        copy_out(&s.addr.to_string(), buffer, capacity, out_len)
    })
}

/// Stops serving: closes the listening socket and joins the server's
/// thread. Stopping a stopped server does nothing. The handle stays valid
/// until `nimsync_metrics_server_free`.
#[no_mangle]
pub extern "C" fn nimsync_metrics_server_stop(server: *const nimsync_metrics_server) -> nimsync_status {
    guard(|| {
        let s = arg(server, "server")?;
        let running = s.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(running) = running {
            running.stop();
        }
        Ok(())
    })
}

/// Stops the server (if running) and releases the handle. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_metrics_server_free(server: *mut nimsync_metrics_server) {
    if !server.is_null() {
        // SAFETY: from `nimsync_metrics_serve`, freed once. Dropping the
        // server stops it and joins its thread.
        guard_value((), || drop(unsafe { Box::from_raw(server) }));
    }
}

#[cfg(test)]
mod tests {
    use super::family_block;

    #[test]
    fn family_block_picks_one_family() {
        let text = "# HELP a A.\n# TYPE a counter\na 1\n# TYPE ab gauge\nab 2\n# HELP c C.\n# TYPE c gauge\nc{x=\"a\\nb\"} 3\n";
        assert_eq!(family_block(text, "a"), "# HELP a A.\n# TYPE a counter\na 1\n");
        assert_eq!(family_block(text, "ab"), "# TYPE ab gauge\nab 2\n");
        assert_eq!(family_block(text, "c"), "# HELP c C.\n# TYPE c gauge\nc{x=\"a\\nb\"} 3\n");
        assert_eq!(family_block(text, "zz"), "");
    }
}
