//! `nimsync_trace_*`: distributed tracing through the C ABI — the process's
//! tracer (sampler and OTLP exporter), spans, the thread's current context,
//! and the W3C `traceparent`, `tracestate` and `baggage` headers.
//!
//! The model is that of `nimsync_core::tracing` (OpenTelemetry's):
//!
//! - `nimsync_trace_init` installs the process's tracer: a sampler and,
//!   optionally, an exporter (a file of OTLP JSON lines or an OTLP/HTTP
//!   collector) fed by a background batch thread. Ending a span never blocks:
//!   a full buffer drops the span and counts it (`nimsync_trace_get_stats`).
//!   Until it is called, spans get ids (so context propagates) but are not
//!   recorded.
//! - A `nimsync_span` is one timed operation. Start it under the thread's
//!   current span, under an explicit parent span, under a remote parent
//!   given as a `traceparent` header, or as a new trace's root.
//! - Each thread has a stack of current contexts (a span and baggage):
//!   `nimsync_trace_context_push` makes a span current, `_pop` restores the
//!   previous one. `nimsync_trace_context_capture` and `_attach` carry a
//!   context into another thread. Tasks spawned on the scheduler or in a
//!   task group run in the context current when they were spawned.
//! - Text comes out the way `snprintf` writes it: into a caller's `buffer`
//!   of `capacity` bytes, always NUL-terminated when `capacity > 0`, with
//!   the full length (without the NUL) in `*out_len`; a result longer than
//!   `capacity - 1` is cut short and `*out_len >= capacity` says so.
//!
//! Bad input (an invalid header, key or value, a non-UTF-8 string) returns
//! `NIMSYNC_STATUS_INVALID_ARGUMENT` with a message naming the argument and
//! what was wrong; "nothing there" (no current span, nothing to pop) returns
//! `NIMSYNC_STATUS_EMPTY`.

use crate::channel::NIMSYNC_WAIT_FOREVER;
use crate::status::{arc_clone, arc_free, arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::tracing::{
    self as core_tracing, Baggage, BatchConfig, Context, ContextGuard, FileExporter, KeyValue, OtlpHttpExporter,
    Sampler, Span, SpanContext, SpanKind, Status, TraceFlags, TraceId, TraceParent, TraceState, Tracer, Value,
};
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Sampler kind: every span is sampled.
pub const NIMSYNC_TRACE_SAMPLER_ALWAYS_ON: u32 = 0;
/// Sampler kind: no span is sampled (ids still propagate).
pub const NIMSYNC_TRACE_SAMPLER_ALWAYS_OFF: u32 = 1;
/// Sampler kind: a `sampling_rate` fraction of traces, decided from the
/// trace id (the same decision in every service using the same rate).
pub const NIMSYNC_TRACE_SAMPLER_RATIO: u32 = 2;
/// Sampler kind: follow the parent's sampled flag; root spans use the
/// `sampling_rate` ratio (the default, with rate 1.0).
pub const NIMSYNC_TRACE_SAMPLER_PARENT_BASED: u32 = 3;

/// Span kind: an operation inside the application (the default).
pub const NIMSYNC_SPAN_KIND_INTERNAL: u32 = 0;
/// Span kind: the server side of a synchronous remote call.
pub const NIMSYNC_SPAN_KIND_SERVER: u32 = 1;
/// Span kind: the client side of a synchronous remote call.
pub const NIMSYNC_SPAN_KIND_CLIENT: u32 = 2;
/// Span kind: the sending side of an asynchronous message.
pub const NIMSYNC_SPAN_KIND_PRODUCER: u32 = 3;
/// Span kind: the receiving side of an asynchronous message.
pub const NIMSYNC_SPAN_KIND_CONSUMER: u32 = 4;

/// Span status code: not set.
pub const NIMSYNC_SPAN_STATUS_UNSET: u32 = 0;
/// Span status code: explicitly successful (final).
pub const NIMSYNC_SPAN_STATUS_OK: u32 = 1;
/// Span status code: failed (with a description).
pub const NIMSYNC_SPAN_STATUS_ERROR: u32 = 2;

/// Attribute type: `string_value`.
pub const NIMSYNC_TRACE_ATTR_STRING: u32 = 0;
/// Attribute type: `int_value`.
pub const NIMSYNC_TRACE_ATTR_INT: u32 = 1;
/// Attribute type: `double_value`.
pub const NIMSYNC_TRACE_ATTR_DOUBLE: u32 = 2;
/// Attribute type: `bool_value`.
pub const NIMSYNC_TRACE_ATTR_BOOL: u32 = 3;

/// How `nimsync_trace_init` sets up the process's tracer. Fill it with
/// `nimsync_trace_config_init` first, then change what you need, so that
/// fields added later get their defaults.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_trace_config {
    /// One of `NIMSYNC_TRACE_SAMPLER_*` (default `PARENT_BASED`).
    pub sampler: u32,
    /// Fraction of traces sampled by the `RATIO` and `PARENT_BASED`
    /// samplers, in `0.0..=1.0` (default 1.0).
    pub sampling_rate: f64,
    /// Append each batch as one line of OTLP JSON to this file (created if
    /// missing); NULL for none. At most one of `file_path` and
    /// `collector_url`.
    pub file_path: *const c_char,
    /// POST each batch as OTLP/HTTP JSON to this `http://host[:port][/path]`
    /// (path default `/v1/traces`); NULL for none.
    pub collector_url: *const c_char,
    /// The `service.name` resource attribute; NULL for `unknown_service`.
    pub service_name: *const c_char,
    /// Most spans per export (default 512; at least 1).
    pub max_batch_size: libc::size_t,
    /// Ended spans that may wait for export; more are dropped and counted
    /// (default 2048, rounded up to a power of two).
    pub max_queue_size: libc::size_t,
    /// Longest a span waits for its batch to fill, in nanoseconds (default
    /// one second).
    pub scheduled_delay_ns: u64,
}

/// The exporter's counters (`nimsync_trace_get_stats`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nimsync_trace_stats {
    /// Ended sampled spans accepted into the export buffer.
    pub queued: u64,
    /// Spans dropped: the buffer was full or the exporter had shut down.
    pub dropped: u64,
    /// Spans in batches the exporter delivered.
    pub exported: u64,
    /// Spans in batches the exporter failed to deliver
    /// (`nimsync_trace_last_export_error` says why).
    pub failed: u64,
    /// The buffer's capacity (0 without an exporter).
    pub queue_capacity: libc::size_t,
}

/// A span's identity, as lowercase hex strings (NUL-terminated).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_span_context {
    /// The trace id: 32 hex digits.
    pub trace_id: [c_char; 33],
    /// The span's id: 16 hex digits.
    pub span_id: [c_char; 17],
    /// The parent's span id, or "" for a root span (or when unknown, as for
    /// the current context taken from a remote `traceparent`).
    pub parent_span_id: [c_char; 17],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
    /// Whether the span is sampled (recorded and exported).
    pub sampled: bool,
    /// Whether the context came from another process (a parsed header).
    pub remote: bool,
}

/// A parsed `traceparent` header.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_traceparent {
    /// The header's version (0; a higher one was parsed by the
    /// specification's forward-compatible rule).
    pub version: u8,
    /// The trace id: 32 lowercase hex digits, NUL-terminated.
    pub trace_id: [c_char; 33],
    /// The caller's span id: 16 lowercase hex digits, NUL-terminated.
    pub parent_id: [c_char; 17],
    /// The trace flags as received.
    pub flags: u8,
    /// Whether the sampled flag (bit 0) is set.
    pub sampled: bool,
}

/// One attribute of an event (`nimsync_trace_span_add_event`).
/// `value_type` is one of `NIMSYNC_TRACE_ATTR_*` and says which value field
/// is read.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_trace_attribute {
    /// The attribute's name (NUL-terminated UTF-8).
    pub key: *const c_char,
    /// Which of the value fields holds the value (`NIMSYNC_TRACE_ATTR_*`).
    pub value_type: u32,
    /// The value when `value_type` is `NIMSYNC_TRACE_ATTR_STRING` (UTF-8).
    pub string_value: *const c_char,
    /// The value when `value_type` is `NIMSYNC_TRACE_ATTR_INT`.
    pub int_value: i64,
    /// The value when `value_type` is `NIMSYNC_TRACE_ATTR_DOUBLE`.
    pub double_value: f64,
    /// The value when `value_type` is `NIMSYNC_TRACE_ATTR_BOOL`.
    pub bool_value: bool,
}

/// A span: one timed operation with attributes, events and a status.
///
/// Thread-safe: any thread may set attributes, add events or end it.
/// `nimsync_trace_span_end` ends it (its ids stay readable);
/// `nimsync_trace_span_clone` takes another reference and
/// `nimsync_trace_span_free` releases one; the last release ends the span
/// if it has not ended.
#[allow(non_camel_case_types)]
pub struct nimsync_span {
    span: Mutex<Span>,
    ended: AtomicBool,
}

impl nimsync_span {
    fn lock(&self) -> MutexGuard<'_, Span> {
        // A panic while holding the lock cannot leave a span half-updated in
        // a way that matters to later calls; keep using it.
        self.span.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A captured tracing context (a span's identity and the baggage), to make
/// current on another thread with `nimsync_trace_context_attach`.
/// Immutable and thread-safe; `nimsync_trace_context_clone` takes another
/// reference, `nimsync_trace_context_free` releases one.
#[allow(non_camel_case_types)]
pub struct nimsync_trace_context {
    context: Context,
}

// ---------------------------------------------------------------------------
// Helpers

/// Borrows a required NUL-terminated UTF-8 string argument.
fn c_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(Fail::null(name));
    }
    // SAFETY: a non-NULL string argument is NUL-terminated and outlives the
    // call (documented contract of every function taking one).
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Fail::new(nimsync_status::InvalidArgument, format!("argument `{name}` is not valid UTF-8")))
}

/// Borrows an optional string argument: NULL is `None`.
fn c_str_opt<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Fail> {
    if ptr.is_null() {
        Ok(None)
    } else {
        c_str(ptr, name).map(Some)
    }
}

/// Copies `text` into a caller's buffer the way `snprintf` does and reports
/// its full length.
fn copy_out(text: &str, buffer: *mut c_char, capacity: usize, out_len: *mut usize) -> Result<(), Fail> {
    if capacity > 0 && buffer.is_null() {
        return Err(Fail::null("buffer"));
    }
    let bytes = text.as_bytes();
    if capacity > 0 {
        let n = bytes.len().min(capacity - 1);
        // SAFETY: `buffer` is non-NULL with room for `capacity` bytes
        // (documented contract); `n + 1 <= capacity` are written.
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

/// Writes `hex` and a NUL into a fixed array (sized for it).
fn put_hex<const N: usize>(dst: &mut [c_char; N], hex: &str) {
    let n = hex.len().min(N - 1);
    for (d, s) in dst.iter_mut().zip(&hex.as_bytes()[..n]) {
        *d = *s as c_char;
    }
    dst[n..].fill(0);
}

fn kind_from(kind: u32) -> Result<SpanKind, Fail> {
    Ok(match kind {
        NIMSYNC_SPAN_KIND_INTERNAL => SpanKind::Internal,
        NIMSYNC_SPAN_KIND_SERVER => SpanKind::Server,
        NIMSYNC_SPAN_KIND_CLIENT => SpanKind::Client,
        NIMSYNC_SPAN_KIND_PRODUCER => SpanKind::Producer,
        NIMSYNC_SPAN_KIND_CONSUMER => SpanKind::Consumer,
        other => {
            return Err(Fail::new(
                nimsync_status::InvalidArgument,
                format!("argument `kind` must be one of NIMSYNC_SPAN_KIND_* (0..=4), got {other}"),
            ))
        }
    })
}

/// `INVALID_ARGUMENT` naming the argument, worded as the core's errors are.
fn invalid(name: &str, reason: &str) -> Fail {
    Fail::new(nimsync_status::InvalidArgument, format!("invalid argument `{name}`: {reason}"))
}

fn empty(what: &str) -> Fail {
    Fail::new(nimsync_status::Empty, what.to_owned())
}

fn new_span_handle(span: Span, out_span: &mut *mut nimsync_span) {
    *out_span =
        Arc::into_raw(Arc::new(nimsync_span { span: Mutex::new(span), ended: AtomicBool::new(false) })).cast_mut();
}

fn fill_span_context(dst: &mut nimsync_span_context, cx: &SpanContext, parent: Option<core_tracing::SpanId>) {
    put_hex(&mut dst.trace_id, &cx.trace_id.to_hex());
    put_hex(&mut dst.span_id, &cx.span_id.to_hex());
    put_hex(&mut dst.parent_span_id, &parent.map(|p| p.to_hex()).unwrap_or_default());
    dst.flags = cx.flags.0;
    dst.sampled = cx.flags.is_sampled();
    dst.remote = cx.remote;
}

// ---------------------------------------------------------------------------
// The tracer

/// Fills `*out_config` with the defaults: parent-based sampling at rate 1.0,
/// no exporter, `unknown_service`, batches of 512, a buffer of 2048, one
/// second of batching delay.
#[no_mangle]
pub extern "C" fn nimsync_trace_config_init(out_config: *mut nimsync_trace_config) -> nimsync_status {
    guard(|| {
        let defaults = BatchConfig::default();
        *out(out_config, "out_config")? = nimsync_trace_config {
            sampler: NIMSYNC_TRACE_SAMPLER_PARENT_BASED,
            sampling_rate: 1.0,
            file_path: std::ptr::null(),
            collector_url: std::ptr::null(),
            service_name: std::ptr::null(),
            max_batch_size: defaults.max_batch_size,
            max_queue_size: defaults.max_queue_size,
            scheduled_delay_ns: defaults.scheduled_delay.as_nanos() as u64,
        };
        Ok(())
    })
}

fn build_tracer(c: &nimsync_trace_config) -> Result<Tracer, Fail> {
    let ratio = || Sampler::ratio(c.sampling_rate).map_err(Fail::from);
    let sampler = match c.sampler {
        NIMSYNC_TRACE_SAMPLER_ALWAYS_ON => Sampler::AlwaysOn,
        NIMSYNC_TRACE_SAMPLER_ALWAYS_OFF => Sampler::AlwaysOff,
        NIMSYNC_TRACE_SAMPLER_RATIO => ratio()?,
        NIMSYNC_TRACE_SAMPLER_PARENT_BASED => Sampler::parent_based(ratio()?),
        other => {
            return Err(Fail::new(
                nimsync_status::InvalidArgument,
                format!("config.sampler must be one of NIMSYNC_TRACE_SAMPLER_* (0..=3), got {other}"),
            ))
        }
    };
    if c.max_batch_size == 0 {
        return Err(invalid("config.max_batch_size", "must be at least 1"));
    }
    if c.max_queue_size == 0 {
        return Err(invalid("config.max_queue_size", "must be at least 1"));
    }
    let mut builder = Tracer::builder().sampler(sampler).batch_config(BatchConfig {
        max_queue_size: c.max_queue_size,
        max_batch_size: c.max_batch_size,
        scheduled_delay: Duration::from_nanos(c.scheduled_delay_ns),
    });
    if let Some(name) = c_str_opt(c.service_name, "config.service_name")? {
        builder = builder.service_name(name);
    }
    let file = c_str_opt(c.file_path, "config.file_path")?;
    let url = c_str_opt(c.collector_url, "config.collector_url")?;
    builder = match (file, url) {
        (Some(_), Some(_)) => {
            return Err(Fail::new(
                nimsync_status::InvalidArgument,
                "config.file_path and config.collector_url are both set; choose one exporter".into(),
            ))
        }
        (Some(path), None) => builder.exporter(FileExporter::create(path)?),
        (None, Some(url)) => builder.exporter(OtlpHttpExporter::new(url)?),
        (None, None) => builder,
    };
    Ok(builder.build()?)
}

/// Installs the process's tracer as `config` describes (NULL: the defaults
/// of `nimsync_trace_config_init`). A tracer installed before is shut down
/// first: its buffered spans are exported.
///
/// Statuses: `INVALID_ARGUMENT` for an unknown sampler, a rate outside
/// 0..=1, a zero batch or queue size, both exporters set, a file that cannot
/// be opened or a URL that is not `http://host[:port][/path]` (the message
/// says which); `OUT_OF_MEMORY` if the export thread cannot start.
///
/// ```c
/// nimsync_trace_config cfg;
/// nimsync_trace_config_init(&cfg);
/// cfg.sampler = NIMSYNC_TRACE_SAMPLER_PARENT_BASED;
/// cfg.sampling_rate = 0.01;
/// cfg.collector_url = "http://127.0.0.1:4318";
/// cfg.service_name = "checkout";
/// nimsync_trace_init(&cfg);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_trace_init(config: *const nimsync_trace_config) -> nimsync_status {
    guard(|| {
        let mut defaults = std::mem::MaybeUninit::<nimsync_trace_config>::uninit();
        let config = if config.is_null() {
            let s = nimsync_trace_config_init(defaults.as_mut_ptr());
            debug_assert_eq!(s, nimsync_status::Ok);
            // SAFETY: `nimsync_trace_config_init` wrote every field.
            unsafe { defaults.assume_init_ref() }
        } else {
            arg(config, "config")?
        };
        let tracer = build_tracer(config)?;
        core_tracing::set_global_tracer(tracer).shutdown();
        Ok(())
    })
}

/// Exports every span ended so far, waiting up to `timeout_ns` nanoseconds
/// (`NIMSYNC_WAIT_FOREVER`: no limit). `TIMEOUT` if the export took longer.
/// Returns at once without an exporter or after shutdown.
#[no_mangle]
pub extern "C" fn nimsync_trace_flush(timeout_ns: u64) -> nimsync_status {
    guard(|| {
        let timeout = match timeout_ns {
            // A century: "forever" without overflowing the deadline.
            NIMSYNC_WAIT_FOREVER => Duration::from_secs(100 * 365 * 24 * 3600),
            ns => Duration::from_nanos(ns),
        };
        core_tracing::global_tracer().flush(timeout)?;
        Ok(())
    })
}

/// Exports what is buffered and stops the export thread. Spans ended later
/// are dropped (and counted) until `nimsync_trace_init` installs a new
/// tracer. Idempotent.
#[no_mangle]
pub extern "C" fn nimsync_trace_shutdown() -> nimsync_status {
    guard(|| {
        core_tracing::global_tracer().shutdown();
        Ok(())
    })
}

/// Writes the exporter's counters to `*out_stats` (all zero without an
/// exporter).
#[no_mangle]
pub extern "C" fn nimsync_trace_get_stats(out_stats: *mut nimsync_trace_stats) -> nimsync_status {
    guard(|| {
        let out_stats = out(out_stats, "out_stats")?;
        let s = core_tracing::global_tracer().stats();
        *out_stats = nimsync_trace_stats {
            queued: s.queued,
            dropped: s.dropped,
            exported: s.exported,
            failed: s.failed,
            queue_capacity: s.queue_capacity,
        };
        Ok(())
    })
}

/// Copies the exporter's last error ("" if none) into `buffer` (see the
/// module notes on text output).
#[no_mangle]
pub extern "C" fn nimsync_trace_last_export_error(
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let s = core_tracing::global_tracer().stats();
        copy_out(s.last_error.as_deref().unwrap_or(""), buffer, capacity, out_len)
    })
}

// ---------------------------------------------------------------------------
// Spans

fn start_with(
    name: *const c_char,
    kind: u32,
    out_span: *mut *mut nimsync_span,
    parent: impl FnOnce(core_tracing::SpanBuilder<'_>) -> Result<core_tracing::SpanBuilder<'_>, Fail>,
) -> nimsync_status {
    guard(|| {
        let name = c_str(name, "name")?;
        let kind = kind_from(kind)?;
        let out_span = out(out_span, "out_span")?;
        let span = core_tracing::with_global_tracer(|t| {
            parent(t.span_builder(name.to_owned()).kind(kind)).map(core_tracing::SpanBuilder::start)
        })?;
        new_span_handle(span, out_span);
        Ok(())
    })
}

/// Starts a span named `name` of `kind` (`NIMSYNC_SPAN_KIND_*`) whose
/// parent is the thread's current span (a new trace when there is none),
/// and stores it in `*out_span`. The span is not made current: push it with
/// `nimsync_trace_context_push` for its children to find it.
///
/// ```c
/// nimsync_span *span;
/// nimsync_trace_span_start("handle request", NIMSYNC_SPAN_KIND_SERVER, &span);
/// nimsync_trace_context_push(span);
/// ... /* spans started here are its children */
/// nimsync_trace_context_pop();
/// nimsync_trace_span_free(span); /* ends it */
/// ```
#[no_mangle]
pub extern "C" fn nimsync_trace_span_start(
    name: *const c_char,
    kind: u32,
    out_span: *mut *mut nimsync_span,
) -> nimsync_status {
    start_with(name, kind, out_span, |b| Ok(b))
}

/// Starts a span that begins a new trace, whatever the current context.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_start_root(
    name: *const c_char,
    kind: u32,
    out_span: *mut *mut nimsync_span,
) -> nimsync_status {
    start_with(name, kind, out_span, |b| Ok(b.root()))
}

/// Starts a child of `parent` (which may have ended).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_start_child(
    parent: *const nimsync_span,
    name: *const c_char,
    kind: u32,
    out_span: *mut *mut nimsync_span,
) -> nimsync_status {
    start_with(name, kind, out_span, move |b| {
        let parent = arg(parent, "parent")?.lock().context().clone();
        Ok(b.parent(&parent))
    })
}

/// Starts a span whose parent is a remote span given by a `traceparent`
/// header and optional `tracestate` (NULL or ""). The `traceparent` is
/// parsed strictly (`INVALID_ARGUMENT` naming the fault: start a root span
/// instead); an invalid `tracestate` is ignored, as the W3C specification
/// requires.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_start_remote(
    name: *const c_char,
    kind: u32,
    traceparent: *const c_char,
    tracestate: *const c_char,
    out_span: *mut *mut nimsync_span,
) -> nimsync_status {
    start_with(name, kind, out_span, move |b| {
        let cx = remote_context(traceparent, tracestate)?;
        Ok(b.parent(&cx))
    })
}

fn remote_context(traceparent: *const c_char, tracestate: *const c_char) -> Result<SpanContext, Fail> {
    let tp = c_str(traceparent, "traceparent")?;
    let ts = c_str_opt(tracestate, "tracestate")?;
    Ok(SpanContext::from_headers(tp, ts)?)
}

/// Takes another reference to `span` and stores it in `*out_span`; each
/// reference is released with its own `nimsync_trace_span_free`.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_clone(
    span: *const nimsync_span,
    out_span: *mut *mut nimsync_span,
) -> nimsync_status {
    guard(|| arc_clone(span, "span", out_span, "out_span"))
}

/// Releases one reference to `span`; the last one ends the span if it has
/// not ended. NULL is ignored; using the handle afterwards, or freeing it
/// twice, is undefined behaviour.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_free(span: *mut nimsync_span) {
    arc_free(span);
}

/// Ends `span` now and hands it to the exporter without blocking. Later
/// calls that change it are ignored; its ids stay readable until it is
/// freed. Ending twice is harmless.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_end(span: *const nimsync_span) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        span.lock().end();
        // Relaxed: a flag read by `_is_ended` only; the span's data is
        // ordered by its mutex.
        span.ended.store(true, Ordering::Relaxed);
        Ok(())
    })
}

/// Whether `nimsync_trace_span_end` was called on `span` (by any thread).
/// False for NULL.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_is_ended(span: *const nimsync_span) -> bool {
    // Relaxed: see `nimsync_trace_span_end`.
    guard_value(false, || arg(span, "span").is_ok_and(|s| s.ended.load(Ordering::Relaxed)))
}

/// Whether `span` is recording: sampled and not ended. False for NULL.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_is_recording(span: *const nimsync_span) -> bool {
    guard_value(false, || arg(span, "span").is_ok_and(|s| s.lock().is_recording()))
}

/// Writes `span`'s trace id, span id, parent id and flags to `*out_context`.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_context(
    span: *const nimsync_span,
    out_context: *mut nimsync_span_context,
) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?.lock();
        let dst = out(out_context, "out_context")?;
        fill_span_context(dst, span.context(), span.parent_span_id());
        Ok(())
    })
}

fn set_attr(span: *const nimsync_span, key: *const c_char, value: Result<Value, Fail>) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        let key = c_str(key, "key")?;
        if key.is_empty() {
            return Err(invalid("key", "must not be empty"));
        }
        let value = value?;
        span.lock().set_attribute(key.to_owned(), value);
        Ok(())
    })
}

/// Sets a string attribute on `span` (replacing one with the same key; no
/// effect when the span is not recording). `key` must be non-empty UTF-8.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_set_string(
    span: *const nimsync_span,
    key: *const c_char,
    value: *const c_char,
) -> nimsync_status {
    set_attr(span, key, c_str(value, "value").map(Value::from))
}

/// Sets an integer attribute (see `nimsync_trace_span_set_string`).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_set_int(
    span: *const nimsync_span,
    key: *const c_char,
    value: i64,
) -> nimsync_status {
    set_attr(span, key, Ok(Value::Int(value)))
}

/// Sets a floating-point attribute (see `nimsync_trace_span_set_string`).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_set_double(
    span: *const nimsync_span,
    key: *const c_char,
    value: f64,
) -> nimsync_status {
    set_attr(span, key, Ok(Value::Float(value)))
}

/// Sets a boolean attribute (see `nimsync_trace_span_set_string`).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_set_bool(
    span: *const nimsync_span,
    key: *const c_char,
    value: bool,
) -> nimsync_status {
    set_attr(span, key, Ok(Value::Bool(value)))
}

fn read_attribute(a: &nimsync_trace_attribute, i: usize) -> Result<KeyValue, Fail> {
    let key = c_str(a.key, &format!("attributes[{i}].key"))?;
    let value = match a.value_type {
        NIMSYNC_TRACE_ATTR_STRING => Value::from(c_str(a.string_value, &format!("attributes[{i}].string_value"))?),
        NIMSYNC_TRACE_ATTR_INT => Value::Int(a.int_value),
        NIMSYNC_TRACE_ATTR_DOUBLE => Value::Float(a.double_value),
        NIMSYNC_TRACE_ATTR_BOOL => Value::Bool(a.bool_value),
        other => {
            return Err(Fail::new(
                nimsync_status::InvalidArgument,
                format!("attributes[{i}].value_type must be one of NIMSYNC_TRACE_ATTR_* (0..=3), got {other}"),
            ))
        }
    };
    Ok(KeyValue::new(key.to_owned(), value))
}

/// Adds an event named `name`, stamped now, with `count` attributes from
/// `attributes` (which may be NULL when `count` is 0). Nothing is added when
/// an attribute is invalid (`INVALID_ARGUMENT` names it) or the span is not
/// recording.
///
/// ```c
/// nimsync_trace_attribute attrs[] = {
///     {.key = "cache.key", .value_type = NIMSYNC_TRACE_ATTR_STRING, .string_value = "user:42"},
///     {.key = "retries", .value_type = NIMSYNC_TRACE_ATTR_INT, .int_value = 2},
/// };
/// nimsync_trace_span_add_event(span, "cache miss", attrs, 2);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_trace_span_add_event(
    span: *const nimsync_span,
    name: *const c_char,
    attributes: *const nimsync_trace_attribute,
    count: libc::size_t,
) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        let name = c_str(name, "name")?;
        let attrs: &[nimsync_trace_attribute] = match (attributes.is_null(), count) {
            (_, 0) => &[],
            (true, _) => return Err(Fail::null("attributes")),
            // SAFETY: a non-NULL `attributes` points at `count` initialised
            // elements (documented contract).
            (false, n) => unsafe { std::slice::from_raw_parts(attributes, n) },
        };
        let kvs = attrs.iter().enumerate().map(|(i, a)| read_attribute(a, i)).collect::<Result<Vec<_>, _>>()?;
        span.lock().add_event(name.to_owned(), kvs);
        Ok(())
    })
}

/// Records an error on `span`: an `exception` event with `exception.type`
/// (`error_type`; NULL means "error") and `exception.message` (`message`),
/// and the status `ERROR` with `message` unless the status is already `OK`.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_record_error(
    span: *const nimsync_span,
    error_type: *const c_char,
    message: *const c_char,
) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        let ty = c_str_opt(error_type, "error_type")?.unwrap_or("error");
        let message = c_str(message, "message")?;
        span.lock().record_error_message(ty, message);
        Ok(())
    })
}

/// Sets `span`'s status: `NIMSYNC_SPAN_STATUS_OK` (final),
/// `NIMSYNC_SPAN_STATUS_ERROR` with `description` (NULL means ""), or
/// `NIMSYNC_SPAN_STATUS_UNSET` (ignored, as OpenTelemetry specifies).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_set_status(
    span: *const nimsync_span,
    code: u32,
    description: *const c_char,
) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        let status = match code {
            NIMSYNC_SPAN_STATUS_UNSET => Status::Unset,
            NIMSYNC_SPAN_STATUS_OK => Status::Ok,
            NIMSYNC_SPAN_STATUS_ERROR => Status::Error(c_str_opt(description, "description")?.unwrap_or("").to_owned()),
            other => {
                return Err(Fail::new(
                    nimsync_status::InvalidArgument,
                    format!("argument `code` must be one of NIMSYNC_SPAN_STATUS_* (0..=2), got {other}"),
                ))
            }
        };
        span.lock().set_status(status);
        Ok(())
    })
}

/// Renames `span` (no effect once ended).
#[no_mangle]
pub extern "C" fn nimsync_trace_span_update_name(span: *const nimsync_span, name: *const c_char) -> nimsync_status {
    guard(|| {
        let span = arg(span, "span")?;
        let name = c_str(name, "name")?;
        span.lock().update_name(name.to_owned());
        Ok(())
    })
}

/// Copies the `traceparent` header that makes `span` the parent of a
/// downstream call (55 characters) into `buffer`.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_traceparent(
    span: *const nimsync_span,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let tp = arg(span, "span")?.lock().traceparent();
        copy_out(&tp, buffer, capacity, out_len)
    })
}

/// Copies `span`'s `tracestate` header ("" when empty: send none) into
/// `buffer`.
#[no_mangle]
pub extern "C" fn nimsync_trace_span_tracestate(
    span: *const nimsync_span,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let ts = arg(span, "span")?.lock().context().tracestate().unwrap_or_default();
        copy_out(&ts, buffer, capacity, out_len)
    })
}

// ---------------------------------------------------------------------------
// The thread's current context

thread_local! {
    /// Guards of the contexts pushed through this ABI on this thread, in
    /// push order; popping drops the last, which restores the one before.
    static PUSHED: RefCell<Vec<ContextGuard>> = const { RefCell::new(Vec::new()) };
}

fn push(cx: Context) -> Result<(), Fail> {
    PUSHED
        .try_with(|p| p.borrow_mut().push(cx.attach()))
        .map_err(|_| Fail::new(nimsync_status::InvalidArgument, "the thread is exiting".into()))
}

/// Replaces the context pushed last through this ABI on this thread (or
/// pushes one when none is) with `f(current)`.
fn replace_top(f: impl FnOnce(Context) -> Result<Context, Fail>) -> Result<(), Fail> {
    let next = f(Context::current())?;
    PUSHED
        .try_with(|p| {
            let mut p = p.borrow_mut();
            // Dropping the old guard first restores the stack below it, so
            // the new context takes its place at the same depth.
            drop(p.pop());
            p.push(next.attach());
        })
        .map_err(|_| Fail::new(nimsync_status::InvalidArgument, "the thread is exiting".into()))
}

/// Makes `span` the thread's current span (keeping the current baggage)
/// until the matching `nimsync_trace_context_pop`. Spans started on this
/// thread meanwhile become its children, and tasks spawned meanwhile run
/// in its context. Pushes nest.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_push(span: *const nimsync_span) -> nimsync_status {
    guard(|| {
        let cx = arg(span, "span")?.lock().context().clone();
        push(Context::current().with_span(cx))
    })
}

/// Makes a remote span, given by `traceparent` and optional `tracestate`
/// headers, the thread's current span until the matching pop: the way a
/// server continues an incoming trace. `INVALID_ARGUMENT` for an invalid
/// `traceparent` (nothing is pushed).
#[no_mangle]
pub extern "C" fn nimsync_trace_context_push_remote(
    traceparent: *const c_char,
    tracestate: *const c_char,
) -> nimsync_status {
    guard(|| {
        let cx = remote_context(traceparent, tracestate)?;
        push(Context::current().with_span(cx))
    })
}

/// Restores the context that was current before the last push (or attach,
/// or the push made by `nimsync_trace_baggage_set`) on this thread. `EMPTY`
/// when nothing pushed through this ABI is left on this thread.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_pop() -> nimsync_status {
    guard(|| {
        let guard = PUSHED.try_with(|p| p.borrow_mut().pop()).ok().flatten();
        match guard {
            Some(g) => {
                drop(g);
                Ok(())
            }
            None => Err(empty("no tracing context was pushed on this thread")),
        }
    })
}

/// Writes the number of contexts pushed (and not yet popped) on this thread
/// to `*out_depth`.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_depth(out_depth: *mut libc::size_t) -> nimsync_status {
    guard(|| {
        *out(out_depth, "out_depth")? = PUSHED.try_with(|p| p.borrow().len()).unwrap_or(0);
        Ok(())
    })
}

/// Writes the identity of the thread's current span to `*out_context`;
/// `EMPTY` when there is none. Its `parent_span_id` is "" (a context holds
/// only the span's own identity).
#[no_mangle]
pub extern "C" fn nimsync_trace_current_span_context(out_context: *mut nimsync_span_context) -> nimsync_status {
    guard(|| {
        let dst = out(out_context, "out_context")?;
        let cx = Context::current();
        let span = cx.span().ok_or_else(|| empty("no current span on this thread"))?;
        fill_span_context(dst, span, None);
        Ok(())
    })
}

/// Copies the `traceparent` of the thread's current span into `buffer`;
/// `EMPTY` when there is none.
#[no_mangle]
pub extern "C" fn nimsync_trace_current_traceparent(
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let cx = Context::current();
        let span = cx.span().ok_or_else(|| empty("no current span on this thread"))?;
        copy_out(&span.traceparent(), buffer, capacity, out_len)
    })
}

/// Captures the thread's current context (span and baggage) into
/// `*out_context`, to be attached in another thread. Release it with
/// `nimsync_trace_context_free`.
///
/// ```c
/// nimsync_trace_context *cx;
/// nimsync_trace_context_capture(&cx);
/// /* in the worker thread: */
/// nimsync_trace_context_attach(cx);
/// ... /* spans here continue the captured trace */
/// nimsync_trace_context_pop();
/// nimsync_trace_context_free(cx);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_trace_context_capture(out_context: *mut *mut nimsync_trace_context) -> nimsync_status {
    guard(|| {
        let out_context = out(out_context, "out_context")?;
        *out_context = Arc::into_raw(Arc::new(nimsync_trace_context { context: Context::current() })).cast_mut();
        Ok(())
    })
}

/// Takes another reference to a captured context and stores it in
/// `*out_context`; each reference is released with its own
/// `nimsync_trace_context_free`.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_clone(
    context: *const nimsync_trace_context,
    out_context: *mut *mut nimsync_trace_context,
) -> nimsync_status {
    guard(|| arc_clone(context, "context", out_context, "out_context"))
}

/// Makes a captured context the current one of this thread until the
/// matching `nimsync_trace_context_pop`.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_attach(context: *const nimsync_trace_context) -> nimsync_status {
    guard(|| {
        let cx = arg(context, "context")?.context.clone();
        push(cx)
    })
}

/// Releases one reference to a captured context. NULL is ignored. Contexts
/// attached from it stay current until popped.
#[no_mangle]
pub extern "C" fn nimsync_trace_context_free(context: *mut nimsync_trace_context) {
    arc_free(context);
}

// ---------------------------------------------------------------------------
// Baggage of the current context

fn edit_baggage(f: impl FnOnce(&mut Baggage) -> Result<(), Fail>) -> Result<(), Fail> {
    replace_top(|cx| {
        let mut b = cx.baggage();
        f(&mut b)?;
        Ok(cx.with_baggage(b))
    })
}

/// Sets baggage `key` to `value` in the thread's current context. The
/// change is made in the context pushed last through this ABI on this
/// thread (it ends with that context's pop); when none is pushed, a context
/// is pushed for it (pop it with `nimsync_trace_context_pop`). `key` must
/// be an HTTP token (`INVALID_ARGUMENT` otherwise); `value` may be any
/// UTF-8 text (it is percent-encoded in the header).
#[no_mangle]
pub extern "C" fn nimsync_trace_baggage_set(key: *const c_char, value: *const c_char) -> nimsync_status {
    guard(|| {
        let key = c_str(key, "key")?;
        let value = c_str(value, "value")?;
        // Validate before touching the stack, so a bad key changes nothing.
        Baggage::new().set(key, value)?;
        edit_baggage(|b| Ok(b.set(key, value)?))
    })
}

/// Removes baggage `key` from the thread's current context (as
/// `nimsync_trace_baggage_set` changes it). `*out_removed` (may be NULL)
/// says whether it was there; nothing is pushed when it was not.
#[no_mangle]
pub extern "C" fn nimsync_trace_baggage_remove(key: *const c_char, out_removed: *mut bool) -> nimsync_status {
    guard(|| {
        let key = c_str(key, "key")?;
        let present = Context::current().baggage_value(key).is_some();
        if present {
            edit_baggage(|b| {
                b.remove(key);
                Ok(())
            })?;
        }
        if !out_removed.is_null() {
            *out(out_removed, "out_removed")? = present;
        }
        Ok(())
    })
}

/// Copies the value of baggage `key` in the thread's current context into
/// `buffer`; `EMPTY` when the key is not there.
#[no_mangle]
pub extern "C" fn nimsync_trace_baggage_get(
    key: *const c_char,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let key = c_str(key, "key")?;
        let value = Context::current().baggage_value(key).ok_or_else(|| empty(&format!("no baggage {key:?}")))?;
        copy_out(&value, buffer, capacity, out_len)
    })
}

/// Copies the W3C `baggage` header of the thread's current context (""
/// when there is no baggage: send none) into `buffer`.
#[no_mangle]
pub extern "C" fn nimsync_trace_baggage_header(
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| copy_out(&Context::current().baggage().to_string(), buffer, capacity, out_len))
}

/// Parses a received W3C `baggage` header and makes its entries the
/// baggage of the thread's current context (replacing what was there; as
/// `nimsync_trace_baggage_set` changes it). `INVALID_ARGUMENT` for a header
/// outside the grammar (nothing changes).
#[no_mangle]
pub extern "C" fn nimsync_trace_baggage_set_header(header: *const c_char) -> nimsync_status {
    guard(|| {
        let parsed = Baggage::parse(c_str(header, "header")?)?;
        replace_top(|cx| Ok(cx.with_baggage(parsed)))
    })
}

// ---------------------------------------------------------------------------
// W3C headers

/// Parses a `traceparent` header strictly (W3C Trace Context level 1) into
/// `*out_parent`. `INVALID_ARGUMENT`, with a message saying what was wrong,
/// for: fewer than 55 characters; version `ff` or not two lowercase hex
/// digits; version 00 with any extra characters; a future version whose
/// extra data does not start with `-`; misplaced separators; uppercase or
/// non-hex digits; an all-zero trace id or parent id. Leading and trailing
/// spaces and tabs are ignored.
///
/// ```c
/// nimsync_traceparent tp;
/// nimsync_status s = nimsync_trace_traceparent_parse(
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &tp);
/// /* s == NIMSYNC_STATUS_OK, tp.sampled, tp.trace_id == "0af7...319c" */
/// ```
#[no_mangle]
pub extern "C" fn nimsync_trace_traceparent_parse(
    header: *const c_char,
    out_parent: *mut nimsync_traceparent,
) -> nimsync_status {
    guard(|| {
        let header = c_str(header, "header")?;
        let dst = out(out_parent, "out_parent")?;
        let tp = TraceParent::parse(header)?;
        dst.version = tp.version;
        put_hex(&mut dst.trace_id, &tp.trace_id.to_hex());
        put_hex(&mut dst.parent_id, &tp.parent_id.to_hex());
        dst.flags = tp.flags.0;
        dst.sampled = tp.flags.is_sampled();
        Ok(())
    })
}

/// Formats a version-00 `traceparent` from a trace id (32 lowercase hex
/// digits), a parent span id (16) and flags (only the sampled bit, 0x01, is
/// kept) into `buffer`. `INVALID_ARGUMENT` for ids of the wrong length,
/// not lowercase hex, or all zeros.
#[no_mangle]
pub extern "C" fn nimsync_trace_traceparent_format(
    trace_id: *const c_char,
    parent_id: *const c_char,
    flags: u8,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let trace_hex = c_str(trace_id, "trace_id")?;
        let parent_hex = c_str(parent_id, "parent_id")?;
        let trace_id = TraceId::from_hex(trace_hex)?;
        let parent_id = core_tracing::SpanId::from_hex(parent_hex)?;
        if !trace_id.is_valid() {
            return Err(invalid("trace_id", "is all zeros"));
        }
        if !parent_id.is_valid() {
            return Err(invalid("parent_id", "is all zeros"));
        }
        let tp = TraceParent { version: 0, trace_id, parent_id, flags: TraceFlags(flags) };
        copy_out(&tp.to_string(), buffer, capacity, out_len)
    })
}

/// Validates a `tracestate` header (one or more comma-joined lines) and
/// copies its normalised form (members joined by `,`, no whitespace) into
/// `buffer`. `INVALID_ARGUMENT` for a key or value outside the grammar, a
/// duplicated key, or more than 32 members (the specification then says to
/// propagate none of it).
#[no_mangle]
pub extern "C" fn nimsync_trace_tracestate_normalize(
    header: *const c_char,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let ts = TraceState::parse(c_str(header, "header")?)?;
        copy_out(&ts.to_string(), buffer, capacity, out_len)
    })
}

/// Copies the value of `key` in the `tracestate` header `header` into
/// `buffer`; `EMPTY` when the key is absent, `INVALID_ARGUMENT` when the
/// header is invalid.
#[no_mangle]
pub extern "C" fn nimsync_trace_tracestate_get(
    header: *const c_char,
    key: *const c_char,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let ts = TraceState::parse(c_str(header, "header")?)?;
        let key = c_str(key, "key")?;
        let value = ts.get(key).ok_or_else(|| empty(&format!("no tracestate key {key:?}")))?;
        copy_out(value, buffer, capacity, out_len)
    })
}

/// Sets `key` to `value` in the `tracestate` header `header` (NULL or ""
/// for an empty one), moving it to the front as the specification's update
/// rule says (dropping the rightmost member past 32), and copies the new
/// header into `buffer`. `INVALID_ARGUMENT` for an invalid header, key or
/// value.
#[no_mangle]
pub extern "C" fn nimsync_trace_tracestate_insert(
    header: *const c_char,
    key: *const c_char,
    value: *const c_char,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let ts = TraceState::parse(c_str_opt(header, "header")?.unwrap_or(""))?;
        let ts = ts.insert(c_str(key, "key")?, c_str(value, "value")?)?;
        copy_out(&ts.to_string(), buffer, capacity, out_len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn text(f: impl FnOnce(*mut c_char, usize, *mut usize) -> nimsync_status) -> (nimsync_status, String) {
        let mut buf = vec![0 as c_char; 256];
        let mut len = 0usize;
        let s = f(buf.as_mut_ptr(), buf.len(), &mut len);
        // SAFETY: `copy_out` NUL-terminates within the buffer.
        let t = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
        (s, t)
    }

    #[test]
    fn child_of_current_shares_the_trace() {
        let name = CString::new("parent").unwrap();
        let mut parent = std::ptr::null_mut();
        assert_eq!(nimsync_trace_span_start(name.as_ptr(), NIMSYNC_SPAN_KIND_SERVER, &mut parent), nimsync_status::Ok);
        assert_eq!(nimsync_trace_context_push(parent), nimsync_status::Ok);
        let mut child = std::ptr::null_mut();
        assert_eq!(nimsync_trace_span_start(name.as_ptr(), 0, &mut child), nimsync_status::Ok);
        // SAFETY: both handles are live.
        let (p, c) = unsafe { (&*parent, &*child) };
        assert_eq!(c.lock().context().trace_id, p.lock().context().trace_id);
        assert_eq!(c.lock().parent_span_id(), Some(p.lock().context().span_id));
        assert_eq!(nimsync_trace_context_pop(), nimsync_status::Ok);
        assert_eq!(nimsync_trace_context_pop(), nimsync_status::Empty);
        nimsync_trace_span_free(child);
        nimsync_trace_span_free(parent);
    }

    #[test]
    fn baggage_lives_in_the_pushed_context() {
        let (k, v) = (CString::new("user").unwrap(), CString::new("alice smith").unwrap());
        assert_eq!(nimsync_trace_baggage_set(k.as_ptr(), v.as_ptr()), nimsync_status::Ok);
        let (s, got) = text(|b, c, l| nimsync_trace_baggage_get(k.as_ptr(), b, c, l));
        assert_eq!((s, got.as_str()), (nimsync_status::Ok, "alice smith"));
        let (_, header) = text(|b, c, l| nimsync_trace_baggage_header(b, c, l));
        assert_eq!(header, "user=alice%20smith");
        let bad = CString::new("bad key").unwrap();
        assert_eq!(nimsync_trace_baggage_set(bad.as_ptr(), v.as_ptr()), nimsync_status::InvalidArgument);
        assert_eq!(nimsync_trace_context_pop(), nimsync_status::Ok);
        let (s, _) = text(|b, c, l| nimsync_trace_baggage_get(k.as_ptr(), b, c, l));
        assert_eq!(s, nimsync_status::Empty);
    }

    #[test]
    fn strict_traceparent() {
        let mut tp = std::mem::MaybeUninit::<nimsync_traceparent>::zeroed();
        let good = CString::new("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(nimsync_trace_traceparent_parse(good.as_ptr(), tp.as_mut_ptr()), nimsync_status::Ok);
        let upper = CString::new("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01").unwrap();
        assert_eq!(nimsync_trace_traceparent_parse(upper.as_ptr(), tp.as_mut_ptr()), nimsync_status::InvalidArgument);
        assert_eq!(nimsync_trace_traceparent_parse(std::ptr::null(), tp.as_mut_ptr()), nimsync_status::NullArgument);
    }
}
