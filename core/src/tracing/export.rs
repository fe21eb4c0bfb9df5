//! Export of ended spans: the OTLP/HTTP JSON encoding, a file exporter
//! (JSON lines), an HTTP exporter for an OpenTelemetry collector, and the
//! batch processor that runs them off the hot path.
//!
//! The encoding follows the OTLP specification's JSON mapping of
//! `ExportTraceServiceRequest`: lowerCamelCase field names, trace and span
//! ids as lowercase hex (OTLP's one departure from the protobuf JSON
//! mapping, which would use base64), 64-bit integers and timestamps as
//! decimal strings, enums as integers.

use super::{KeyValue, SpanData, Status, Value, MAX_ATTRIBUTES};
use crate::channel::{Channel, Mode};
use crate::error::Error;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An export that did not reach its destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("span export failed: {0}")]
pub struct ExportError(pub String);

/// The attributes of the process that produces the spans
/// (`service.name` and the `telemetry.sdk.*` attributes by default).
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// The attributes.
    pub attributes: Vec<KeyValue>,
}

impl Default for Resource {
    fn default() -> Resource {
        Resource {
            attributes: vec![
                KeyValue::new("service.name", "unknown_service"),
                KeyValue::new("telemetry.sdk.name", "nimsync"),
                KeyValue::new("telemetry.sdk.language", "rust"),
                KeyValue::new("telemetry.sdk.version", crate::VERSION),
            ],
        }
    }
}

impl Resource {
    /// Sets an attribute, replacing one with the same key.
    pub fn set(&mut self, kv: KeyValue) {
        if let Some(a) = self.attributes.iter_mut().find(|a| a.key == kv.key) {
            a.value = kv.value;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(kv);
        }
    }
}

/// A destination for batches of ended spans. Runs on the processor thread,
/// so it may block (do I/O) without slowing the application.
pub trait SpanExporter: Send + 'static {
    /// Sends one batch.
    fn export(&mut self, resource: &Resource, batch: &[SpanData]) -> Result<(), ExportError>;
    /// Releases resources; called once when the processor stops.
    fn shutdown(&mut self) {}
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push_str("{\"stringValue\":");
            push_json_str(out, s);
            out.push('}');
        }
        Value::Int(i) => {
            let _ = write!(out, "{{\"intValue\":\"{i}\"}}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("{\"doubleValue\":\"NaN\"}"),
        Value::Float(f) if f.is_infinite() => {
            let _ = write!(out, "{{\"doubleValue\":\"{}Infinity\"}}", if *f < 0.0 { "-" } else { "" });
        }
        Value::Float(f) => {
            let _ = write!(out, "{{\"doubleValue\":{f:?}}}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
    }
}

fn push_attributes(out: &mut String, attrs: &[KeyValue]) {
    out.push('[');
    for (i, kv) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        push_json_str(out, &kv.key);
        out.push_str(",\"value\":");
        push_value(out, &kv.value);
        out.push('}');
    }
    out.push(']');
}

fn push_span(out: &mut String, s: &SpanData) {
    let _ = write!(out, "{{\"traceId\":\"{}\",\"spanId\":\"{}\"", s.context.trace_id, s.context.span_id);
    if !s.context.trace_state.is_empty() {
        out.push_str(",\"traceState\":");
        push_json_str(out, &s.context.trace_state.to_string());
    }
    if let Some(p) = s.parent_span_id {
        let _ = write!(out, ",\"parentSpanId\":\"{p}\"");
    }
    out.push_str(",\"name\":");
    push_json_str(out, &s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"",
        s.kind.otlp_code(),
        s.start_time_unix_nano,
        s.end_time_unix_nano
    );
    if !s.attributes.is_empty() {
        out.push_str(",\"attributes\":");
        push_attributes(out, &s.attributes);
    }
    if s.dropped_attributes > 0 {
        let _ = write!(out, ",\"droppedAttributesCount\":{}", s.dropped_attributes);
    }
    if !s.events.is_empty() {
        out.push_str(",\"events\":[");
        for (i, e) in s.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"timeUnixNano\":\"{}\",\"name\":", e.time_unix_nano);
            push_json_str(out, &e.name);
            if !e.attributes.is_empty() {
                out.push_str(",\"attributes\":");
                push_attributes(out, &e.attributes);
            }
            if e.dropped_attributes > 0 {
                let _ = write!(out, ",\"droppedAttributesCount\":{}", e.dropped_attributes);
            }
            out.push('}');
        }
        out.push(']');
    }
    if s.dropped_events > 0 {
        let _ = write!(out, ",\"droppedEventsCount\":{}", s.dropped_events);
    }
    match &s.status {
        Status::Unset => {}
        Status::Ok => out.push_str(",\"status\":{\"code\":1}"),
        Status::Error(msg) => {
            out.push_str(",\"status\":{\"code\":2,\"message\":");
            push_json_str(out, msg);
            out.push('}');
        }
    }
    out.push('}');
}

/// Encodes one OTLP `ExportTraceServiceRequest` as JSON (one line, no
/// trailing newline): one resource, one instrumentation scope (`nimsync`),
/// the given spans.
///
/// ```
/// use nimsync_core::tracing::{encode_otlp_json, Resource, Sampler, Tracer};
/// let tracer = Tracer::builder().sampler(Sampler::AlwaysOn).build().unwrap();
/// let mut span = tracer.start("work");
/// span.set_attribute("items", 3);
/// let data = span.snapshot().unwrap();
/// let json = encode_otlp_json(&Resource::default(), &[data]);
/// assert!(json.starts_with("{\"resourceSpans\":[{\"resource\":"));
/// assert!(json.contains("{\"key\":\"items\",\"value\":{\"intValue\":\"3\"}}"));
/// ```
pub fn encode_otlp_json(resource: &Resource, spans: &[SpanData]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 384);
    out.push_str("{\"resourceSpans\":[{\"resource\":{\"attributes\":");
    push_attributes(&mut out, &resource.attributes);
    out.push_str("},\"scopeSpans\":[{\"scope\":{\"name\":\"nimsync\",\"version\":");
    push_json_str(&mut out, crate::VERSION);
    out.push_str("},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_span(&mut out, s);
    }
    out.push_str("]}]}]}");
    out
}

/// Appends each batch to a file as one line of OTLP JSON (JSON lines: one
/// `ExportTraceServiceRequest` per line), the format the OpenTelemetry
/// collector's file exporter writes and its `otlpjsonfile` receiver reads.
pub struct FileExporter {
    path: PathBuf,
    file: std::fs::File,
}

impl FileExporter {
    /// Opens (creating if needed) `path` for appending.
    pub fn create(path: impl AsRef<Path>) -> Result<FileExporter, Error> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::invalid("path", format!("cannot open {}: {e}", path.display())))?;
        Ok(FileExporter { path, file })
    }
}

impl SpanExporter for FileExporter {
    fn export(&mut self, resource: &Resource, batch: &[SpanData]) -> Result<(), ExportError> {
        let mut line = encode_otlp_json(resource, batch);
        line.push('\n');
        // One write call per line, so concurrent readers see whole lines.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| ExportError(format!("writing {}: {e}", self.path.display())))
    }
}

/// POSTs each batch as OTLP/HTTP JSON (`Content-Type: application/json`)
/// to a collector, over plain HTTP/1.1 on a blocking socket. Retries a
/// refused connection or a 429/502/503/504 answer twice, with backoff.
#[derive(Debug, Clone)]
pub struct OtlpHttpExporter {
    host: String,
    port: u16,
    path: String,
    timeout: Duration,
}

impl OtlpHttpExporter {
    /// A exporter for `url`, `http://host[:port][/path]`; the path defaults
    /// to `/v1/traces`, the port to 80. `https` is not supported (put a
    /// local collector in front for TLS).
    ///
    /// ```
    /// use nimsync_core::tracing::OtlpHttpExporter;
    /// assert!(OtlpHttpExporter::new("http://127.0.0.1:4318").is_ok());
    /// assert!(OtlpHttpExporter::new("https://example.com/v1/traces").is_err());
    /// ```
    pub fn new(url: &str) -> Result<OtlpHttpExporter, Error> {
        let bad = |why: &str| Error::invalid("url", format!("{why}: {url:?}"));
        let rest =
            url.strip_prefix("http://").ok_or_else(|| bad("expected an http:// URL (https is not supported)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            // [IPv6]:port
            let (h, after) = h.split_once(']').ok_or_else(|| bad("unclosed '[' in host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("unexpected text after ']'")),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("invalid port"))?),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let path = if path.is_empty() || path == "/" { "/v1/traces".to_owned() } else { path.to_owned() };
        Ok(OtlpHttpExporter { host, port, path, timeout: Duration::from_secs(10) })
    }

    /// Connect, write and read timeout of one attempt (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn post_once(&self, body: &[u8]) -> Result<u16, ExportError> {
        let err = |what: &str, e: std::io::Error| ExportError(format!("{what} {}:{}: {e}", self.host, self.port));
        let addrs = (self.host.as_str(), self.port).to_socket_addrs().map_err(|e| err("resolving", e))?;
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut stream = match stream {
            Some(s) => s,
            None => {
                let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
                return Err(err("connecting to", e));
            }
        };
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| err("configuring", e))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| err("configuring", e))?;
        let host_header = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: nimsync/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            host_header,
            self.port,
            crate::VERSION,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(|e| err("writing to", e))?;
        stream.write_all(body).map_err(|e| err("writing to", e))?;
        stream.flush().map_err(|e| err("writing to", e))?;
        // Read the status line (and the rest, up to a cap, so the server is
        // not reset mid-answer).
        let mut resp = Vec::with_capacity(512);
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    resp.extend_from_slice(&buf[..n]);
                    if resp.len() > 64 * 1024 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if !resp.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(err("reading from", e)),
            }
        }
        let line = resp.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
            (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
            _ => Err(ExportError(format!(
                "{}:{} sent no HTTP status line (got {:?})",
                self.host,
                self.port,
                line.trim_end()
            ))),
        }
    }
}

impl SpanExporter for OtlpHttpExporter {
    fn export(&mut self, resource: &Resource, batch: &[SpanData]) -> Result<(), ExportError> {
        let body = encode_otlp_json(resource, batch);
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.post_once(body.as_bytes());
            let retry = match &result {
                Ok(code) if (200..300).contains(code) => return Ok(()),
                Ok(code) => matches!(code, 429 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !retry || attempt == 3 {
                return Err(match result {
                    Ok(code) => {
                        ExportError(format!("http://{}:{}{} answered HTTP {code}", self.host, self.port, self.path))
                    }
                    Err(e) => e,
                });
            }
            // Backoff between attempts on the export thread, as OTLP asks.
            std::thread::sleep(backoff);
            backoff *= 4;
        }
    }
}

/// Sizes and timing of a [`BatchProcessor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans that may wait for export; more are dropped and counted. Rounded
    /// up to a power of two (default 2048).
    pub max_queue_size: usize,
    /// Most spans per export call (default 512).
    pub max_batch_size: usize,
    /// Longest a span waits for its batch to fill (default 1 s). The thread
    /// sleeps without a timer while there is nothing to export.
    pub scheduled_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig { max_queue_size: 2048, max_batch_size: 512, scheduled_delay: Duration::from_secs(1) }
    }
}

/// Counters of a [`BatchProcessor`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    /// Spans accepted into the buffer.
    pub queued: u64,
    /// Spans dropped because the buffer was full or the processor had stopped.
    pub dropped: u64,
    /// Spans in batches the exporter accepted.
    pub exported: u64,
    /// Spans in batches the exporter failed on.
    pub failed: u64,
    /// The last export error, if any.
    pub last_error: Option<String>,
    /// The buffer's capacity (after rounding).
    pub queue_capacity: usize,
}

/// What wakes the export thread (spans travel in their own queue).
enum Control {
    /// Spans arrived while it was idle, or a batch is full.
    Wake,
    /// Export everything queued, then answer.
    Flush(Channel<()>),
    /// Export everything queued, then stop.
    Shutdown,
}

/// How the export thread sleeps with no timer and no lost wake-up.
///
/// One word holds the number of spans submitted and, in its top bit, "the
/// export thread is (about to be) asleep with nothing to export". Both sides
/// use read-modify-writes on this one word, so they are totally ordered:
/// when the thread's [`may_sleep`](Self::may_sleep) comes first, the
/// submitter's [`submitted`](Self::submitted) sees the bit and rings; when
/// the submitter comes first, the thread's read-modify-write acquires the
/// submitter's release, so its emptiness check sees the span. The protocol
/// is model-checked in `tests/loom_tracing.rs`.
#[doc(hidden)]
#[derive(Debug)]
pub struct IdleHandshake {
    state: crate::sync::AtomicU64,
}

const IDLE: u64 = 1 << 63;

impl Default for IdleHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleHandshake {
    /// Not idle, nothing submitted.
    pub fn new() -> Self {
        IdleHandshake { state: crate::sync::AtomicU64::new(0) }
    }

    /// Called by a submitter after its item is in the queue: counts it,
    /// and returns true when this caller must wake the export thread (it
    /// was idle; exactly one submitter is told so).
    pub fn submitted(&self) -> bool {
        use crate::sync::Ordering as O;
        // AcqRel: the release half publishes the queued item to the export
        // thread's next read-modify-write of this word (see the type docs).
        let prev = self.state.fetch_add(1, O::AcqRel);
        // AcqRel: one submitter clears the bit and wins the wake-up.
        prev & IDLE != 0 && self.state.fetch_and(!IDLE, O::AcqRel) & IDLE != 0
    }

    /// Called by the export thread before sleeping: announces idleness,
    /// then asks `queue_is_empty`. True: sleep until woken. False (an item
    /// arrived meanwhile): idleness is withdrawn, do not sleep.
    pub fn may_sleep(&self, queue_is_empty: impl FnOnce() -> bool) -> bool {
        use crate::sync::Ordering as O;
        // AcqRel: acquires every submitter's release that came before it in
        // this word's order, so their items are visible to the check below.
        self.state.fetch_or(IDLE, O::AcqRel);
        if queue_is_empty() {
            return true;
        }
        self.awake();
        false
    }

    /// Called by the export thread whenever it wakes (for any reason).
    pub fn awake(&self) {
        // AcqRel: as in `may_sleep`, later submissions are then seen by
        // the thread's next queue check.
        self.state.fetch_and(!IDLE, crate::sync::Ordering::AcqRel);
    }

    /// Items submitted so far.
    pub fn count(&self) -> u64 {
        // Relaxed: a statistic.
        self.state.load(crate::sync::Ordering::Relaxed) & !IDLE
    }
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What the application threads and the export thread share.
struct Shared {
    /// Ended spans waiting for export (bounded).
    spans: Channel<Box<SpanData>>,
    /// Wake-ups, flush and shutdown requests for the export thread.
    control: Channel<Control>,
    /// Submission count and the export thread's idleness.
    handshake: IdleHandshake,
    /// Set by the submitter that rings for a full batch, cleared by the
    /// export thread when it wakes, so a full queue does not ring on every
    /// span. Only an optimisation: a missed ring delays the export to the
    /// batch's deadline, it loses nothing.
    rung: AtomicBool,
    /// Queue length at which a submitter rings early (a full batch).
    batch_size: usize,
    counters: Counters,
}

/// Hands ended spans to an exporter on its own thread. Submitting never
/// blocks: the span goes into a bounded lock-free buffer (a nimsync
/// [`Channel`]) or, when that is full, is dropped and counted. The thread
/// sleeps without a timer while there is nothing to export, and is woken at
/// most twice per batch (when the first span of a batch arrives and when a
/// batch is full), not once per span; it exports when a batch is full, when
/// the oldest waiting span has waited [`BatchConfig::scheduled_delay`], on
/// [`flush`](Self::flush), and at [`shutdown`](Self::shutdown).
pub struct BatchProcessor {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl BatchProcessor {
    /// Starts the export thread.
    pub fn start(
        mut exporter: Box<dyn SpanExporter>,
        resource: Resource,
        config: BatchConfig,
    ) -> Result<BatchProcessor, Error> {
        if config.max_batch_size == 0 {
            return Err(Error::invalid("max_batch_size", "must be at least 1"));
        }
        let shared = Arc::new(Shared {
            spans: Channel::new(config.max_queue_size, Mode::Mpsc)?,
            control: Channel::new(16, Mode::Mpsc)?,
            handshake: IdleHandshake::new(),
            rung: AtomicBool::new(false),
            batch_size: config.max_batch_size,
            counters: Counters::default(),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("nimsync-trace-export".into())
            .spawn(move || run(&s, &mut *exporter, &resource, &config))
            .map_err(|e| Error::OutOfMemory(format!("cannot start the trace export thread: {e}")))?;
        Ok(BatchProcessor { shared, worker: Mutex::new(Some(worker)) })
    }

    /// Queues an ended span; never blocks. Full buffer or stopped
    /// processor: the span is dropped and counted.
    pub fn submit(&self, span: Box<SpanData>) {
        let sh = &*self.shared;
        // Relaxed: statistics only.
        if sh.spans.try_send(span).is_err() {
            sh.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Relaxed (rung): a hint only, see `Shared::rung`.
        let wake =
            sh.handshake.submitted() || (sh.spans.len() >= sh.batch_size && !sh.rung.swap(true, Ordering::Relaxed));
        if wake {
            // A full control queue already holds a wake-up: nothing lost.
            let _ = sh.control.try_send(Control::Wake);
        }
    }

    /// Exports everything queued before this call, waiting up to `timeout`
    /// ([`Error::Timeout`] past it). After shutdown there is nothing left
    /// to flush and it returns `Ok`.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let done = Channel::new(1, Mode::Spsc)?;
        match self.shared.control.send_deadline(Control::Flush(done.clone()), deadline) {
            Ok(()) => {}
            Err(e) if matches!(e.error, Error::Closed) => return Ok(()),
            Err(e) => return Err(e.error),
        }
        match done.recv_deadline(deadline) {
            // Closed: the thread stopped (and exported) before answering.
            Ok(()) | Err(Error::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Exports what is queued, stops the thread and waits for it.
    /// Idempotent; later submissions are dropped and counted.
    pub fn shutdown(&self) {
        let sh = &*self.shared;
        // Close the span queue first: nothing enters after the final drain.
        sh.spans.close();
        let _ = sh.control.send(Control::Shutdown);
        let handle = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        sh.control.close();
    }

    /// The counters.
    pub fn stats(&self) -> ProcessorStats {
        let c = &self.shared.counters;
        // Relaxed: independent statistics; no ordering between them is promised.
        ProcessorStats {
            queued: self.shared.handshake.count(),
            dropped: c.dropped.load(Ordering::Relaxed),
            exported: c.exported.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            last_error: c.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            queue_capacity: self.shared.spans.capacity(),
        }
    }
}

impl Drop for BatchProcessor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor").field("stats", &self.stats()).finish()
    }
}

fn export_batch(exporter: &mut dyn SpanExporter, resource: &Resource, batch: &mut Vec<SpanData>, c: &Counters) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    // A panicking exporter fails its batch; the thread keeps going.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.export(resource, batch)))
        .unwrap_or_else(|_| Err(ExportError("the exporter panicked".into())));
    // Relaxed: statistics only.
    match result {
        Ok(()) => c.exported.fetch_add(n, Ordering::Relaxed),
        Err(e) => {
            *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.0);
            c.failed.fetch_add(n, Ordering::Relaxed)
        }
    };
    batch.clear();
}

/// Moves queued spans into `batch` (up to its size); whether it is full.
fn take_spans(sh: &Shared, batch: &mut Vec<SpanData>, max: usize) -> bool {
    while batch.len() < max {
        match sh.spans.try_recv() {
            Ok(span) => batch.push(*span),
            Err(_) => return false,
        }
    }
    true
}

/// Exports everything queued, in batches.
fn drain_all(sh: &Shared, exporter: &mut dyn SpanExporter, resource: &Resource, batch: &mut Vec<SpanData>, max: usize) {
    loop {
        let full = take_spans(sh, batch, max);
        export_batch(exporter, resource, batch, &sh.counters);
        if !full {
            return;
        }
    }
}

fn run(sh: &Shared, exporter: &mut dyn SpanExporter, resource: &Resource, config: &BatchConfig) {
    let max = config.max_batch_size;
    let mut batch: Vec<SpanData> = Vec::with_capacity(max.min(4096));
    // When the current batch's oldest span must be exported.
    let mut deadline: Option<Instant> = None;
    // Waits out a submitter caught between claiming a slot and filling it.
    let mut publishing = crate::sync::Backoff::new();
    loop {
        let had = batch.len();
        let full = take_spans(sh, &mut batch, max);
        if batch.len() > had {
            publishing = crate::sync::Backoff::new();
        }
        if full {
            export_batch(exporter, resource, &mut batch, &sh.counters);
            deadline = None;
            continue;
        }
        if had == 0 && !batch.is_empty() {
            deadline = Some(Instant::now() + config.scheduled_delay);
        }
        let msg = match deadline {
            Some(d) if !batch.is_empty() => sh.control.recv_deadline(d),
            _ => {
                // Nothing to export: sleep without a timer until a span,
                // a flush or shutdown arrives (see `IdleHandshake`).
                if !sh.handshake.may_sleep(|| sh.spans.is_empty()) {
                    // A span is in the queue but could not be taken yet.
                    publishing.snooze();
                    continue;
                }
                let msg = sh.control.recv();
                sh.handshake.awake();
                msg
            }
        };
        // Relaxed: a hint only (see `Shared::rung`).
        sh.rung.store(false, Ordering::Relaxed);
        match msg {
            Ok(Control::Wake) => {}
            Ok(Control::Flush(done)) => {
                drain_all(sh, exporter, resource, &mut batch, max);
                deadline = None;
                let _ = done.try_send(());
            }
            Err(Error::Timeout) => {
                export_batch(exporter, resource, &mut batch, &sh.counters);
                deadline = None;
            }
            Ok(Control::Shutdown) | Err(_) => {
                drain_all(sh, exporter, resource, &mut batch, max);
                exporter.shutdown();
                // Answer flushes that raced with the shutdown: all is exported.
                sh.control.close();
                for msg in sh.control.drain() {
                    if let Control::Flush(done) = msg {
                        let _ = done.try_send(());
                    }
                }
                return;
            }
        }
    }
}
