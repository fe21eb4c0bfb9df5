//! Distributed tracing: spans, W3C Trace Context and Baggage propagation,
//! samplers, and OTLP/HTTP JSON export.
//!
//! The module is called `tracing` because that is what it does; it is not
//! the `tracing` crate and does not depend on it. Import it by path
//! (`nimsync_core::tracing::Tracer`) if your crate also uses that one.
//!
//! # Model
//!
//! The model is OpenTelemetry's, implemented here without an async runtime:
//!
//! - A [`Tracer`] holds a [`Sampler`] and, optionally, an exporter fed by a
//!   [`BatchProcessor`] thread. [`set_global_tracer`] installs one for the
//!   process; [`start_span`] uses it.
//! - A [`Span`] is one timed operation with attributes, events, a status and
//!   a kind. It ends when [`Span::end`] is called or it is dropped; a
//!   sampled span is then handed to the batch processor without blocking
//!   (a full buffer drops it and counts the drop).
//! - A [`Context`] is the current span's [`SpanContext`] plus [`Baggage`].
//!   Each thread keeps a stack of them: [`Context::attach`] and
//!   [`Span::enter`] push and return a guard that pops on drop. A new span's
//!   parent is the current context's span unless given explicitly.
//! - Tasks spawned with [`Scheduler::spawn`](crate::Scheduler::spawn) and
//!   [`TaskGroup::spawn`](crate::TaskGroup::spawn)/[`go`](crate::TaskGroup::go)
//!   run in the context that was current when they were spawned (reading
//!   it costs one thread-local access when no context is set). The
//!   fork-join [`Scheduler::join`](crate::Scheduler::join) and
//!   [`install`](crate::Scheduler::install) keep their hot paths free of
//!   it: like a plain `std::thread`, capture [`Context::current`] and
//!   `attach` it inside the closure.
//! - [`TraceParent`], [`TraceState`] and [`Baggage`] parse and format the
//!   W3C headers; [`SpanContext::from_headers`] and
//!   [`SpanContext::traceparent`] continue a trace across processes.
//!
//! ```
//! use nimsync_core::tracing::{Context, Sampler, SpanKind, Tracer};
//! let tracer = Tracer::builder().sampler(Sampler::AlwaysOn).build().unwrap();
//! let parent = tracer.span_builder("request").kind(SpanKind::Server).start();
//! let child = {
//!     let _in_parent = parent.enter();
//!     let mut child = tracer.start("query");
//!     child.set_attribute("db.rows", 42);
//!     child.add_event("cache miss", vec![]);
//!     child
//! };
//! assert_eq!(child.context().trace_id, parent.context().trace_id);
//! assert_eq!(child.parent_span_id(), Some(parent.context().span_id));
//! assert!(Context::current().span().is_none()); // the guard restored it
//! ```

mod baggage;
mod export;
mod ids;
mod sampler;
mod w3c;

pub use baggage::{valid_baggage_key, Baggage, BaggageEntry, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS};
/// The export thread's sleep/wake handshake, public only for the loom
/// model test.
#[cfg(loom)]
#[doc(hidden)]
pub use export::IdleHandshake;
pub use export::{
    encode_otlp_json, BatchConfig, BatchProcessor, ExportError, FileExporter, OtlpHttpExporter, ProcessorStats,
    Resource, SpanExporter,
};
pub use ids::{SpanId, TraceFlags, TraceId};
pub use sampler::Sampler;
pub use w3c::{
    valid_tracestate_key, valid_tracestate_value, TraceParent, TraceState, TRACEPARENT_LEN, TRACESTATE_MAX_MEMBERS,
};

use crate::error::Error;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most attributes a span (or one event) keeps; more are counted as dropped.
pub const MAX_ATTRIBUTES: usize = 128;
/// Most events a span keeps; more are counted as dropped.
pub const MAX_EVENTS: usize = 128;

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// An attribute: a key and a [`Value`].
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The attribute name (OpenTelemetry semantic conventions where one fits).
    pub key: Cow<'static, str>,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// An attribute.
    ///
    /// ```
    /// use nimsync_core::tracing::{KeyValue, Value};
    /// assert_eq!(KeyValue::new("http.status_code", 200).value, Value::Int(200));
    /// ```
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> KeyValue {
        KeyValue { key: key.into(), value: value.into() }
    }
}

/// What role a span plays (OTLP `SpanKind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanKind {
    /// An operation inside the application (the default).
    #[default]
    Internal,
    /// The server side of a synchronous remote call.
    Server,
    /// The client side of a synchronous remote call.
    Client,
    /// The sending side of an asynchronous message.
    Producer,
    /// The receiving side of an asynchronous message.
    Consumer,
}

impl SpanKind {
    /// The OTLP enum number (`SPAN_KIND_INTERNAL` = 1 … `SPAN_KIND_CONSUMER` = 5).
    pub fn otlp_code(self) -> u8 {
        match self {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// Parses `internal`, `server`, `client`, `producer` or `consumer`.
    pub fn from_name(name: &str) -> Result<SpanKind, Error> {
        Ok(match name {
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => {
                return Err(Error::invalid(
                    "kind",
                    format!("expected internal, server, client, producer or consumer, got {name:?}"),
                ))
            }
        })
    }
}

/// A span's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Not set (the default): the operation's outcome is not known to have
    /// failed.
    #[default]
    Unset,
    /// Explicitly successful. Final: later status changes are ignored.
    Ok,
    /// Failed, with a description.
    Error(String),
}

impl Status {
    /// The OTLP `StatusCode` number (unset 0, ok 1, error 2).
    pub fn otlp_code(&self) -> u8 {
        match self {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error(_) => 2,
        }
    }
}

/// A timestamped event inside a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event's name (`exception` for recorded errors).
    pub name: Cow<'static, str>,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes that were over [`MAX_ATTRIBUTES`] and not kept.
    pub dropped_attributes: u32,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What identifies a span to its children and to other processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's id.
    pub span_id: SpanId,
    /// The trace flags (sampled bit).
    pub flags: TraceFlags,
    /// Vendor state carried along the trace.
    pub trace_state: TraceState,
    /// Whether it came from another process (parsed from headers).
    pub remote: bool,
}

impl SpanContext {
    /// A remote span context from a `traceparent` header and any number of
    /// `tracestate` header lines. An invalid `traceparent` is an error (start
    /// a new trace instead); an invalid `tracestate` is dropped, as the
    /// specification requires, keeping the `traceparent`.
    ///
    /// ```
    /// use nimsync_core::tracing::SpanContext;
    /// let cx = SpanContext::from_headers(
    ///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ///     ["congo=t61rcWkgMzE"],
    /// ).unwrap();
    /// assert!(cx.remote && cx.flags.is_sampled());
    /// assert_eq!(cx.trace_state.get("congo"), Some("t61rcWkgMzE"));
    /// ```
    pub fn from_headers<'a>(
        traceparent: &str,
        tracestate: impl IntoIterator<Item = &'a str>,
    ) -> Result<SpanContext, Error> {
        let tp = TraceParent::parse(traceparent)?;
        Ok(SpanContext {
            trace_id: tp.trace_id,
            span_id: tp.parent_id,
            flags: tp.flags,
            trace_state: TraceState::parse_headers(tracestate).unwrap_or_default(),
            remote: true,
        })
    }

    /// The `traceparent` header that makes this span the parent downstream.
    pub fn traceparent(&self) -> String {
        TraceParent { version: 0, trace_id: self.trace_id, parent_id: self.span_id, flags: self.flags }.to_string()
    }

    /// The `tracestate` header, or `None` when empty (send no header then).
    pub fn tracestate(&self) -> Option<String> {
        (!self.trace_state.is_empty()).then(|| self.trace_state.to_string())
    }
}

/// The ambient tracing state: the current span's context and the baggage.
/// Cheap to clone; `Send`, so it can be captured in one thread and attached
/// in another.
#[derive(Clone, Debug, Default)]
pub struct Context {
    span: Option<SpanContext>,
    baggage: Option<Arc<Baggage>>,
}

thread_local! {
    /// This thread's stack of attached contexts (top = current).
    static STACK: RefCell<Vec<Context>> = const { RefCell::new(Vec::new()) };
}

impl Context {
    /// The context on top of this thread's stack (empty when none is attached).
    pub fn current() -> Context {
        STACK.try_with(|s| s.borrow().last().cloned()).ok().flatten().unwrap_or_default()
    }

    /// An empty context: no span, no baggage.
    pub fn new() -> Context {
        Context::default()
    }

    /// This context with `span` as its span (for example a remote parent
    /// from [`SpanContext::from_headers`]).
    pub fn with_span(&self, span: SpanContext) -> Context {
        Context { span: Some(span), baggage: self.baggage.clone() }
    }

    /// This context with `baggage`.
    pub fn with_baggage(&self, baggage: Baggage) -> Context {
        let baggage = (!baggage.is_empty()).then(|| Arc::new(baggage));
        Context { span: self.span.clone(), baggage }
    }

    /// The span context, if any.
    pub fn span(&self) -> Option<&SpanContext> {
        self.span.as_ref()
    }

    /// The baggage (empty when none).
    pub fn baggage(&self) -> Baggage {
        self.baggage.as_deref().cloned().unwrap_or_default()
    }

    /// One baggage value.
    pub fn baggage_value(&self, key: &str) -> Option<String> {
        self.baggage.as_deref().and_then(|b| b.get(key)).map(str::to_owned)
    }

    /// [`attach`](Self::attach) for a context captured by a spawn (boxed
    /// there to keep tasks small).
    #[allow(clippy::boxed_local)]
    pub(crate) fn attach_boxed(self: Box<Self>) -> ContextGuard {
        (*self).attach()
    }

    /// Makes this the current context of this thread until the guard drops.
    /// Guards nest; dropping one restores the context that was current when
    /// it was attached (and detaches any attached after it and still alive).
    pub fn attach(self) -> ContextGuard {
        let depth = STACK.with(|s| {
            let mut s = s.borrow_mut();
            s.push(self);
            s.len() - 1
        });
        ContextGuard { depth, _not_send: PhantomData }
    }
}

/// Restores the previous current context when dropped. Not `Send`: it
/// belongs to the thread whose stack it changed.
#[must_use = "the context is detached as soon as the guard is dropped"]
pub struct ContextGuard {
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let _ = STACK.try_with(|s| s.borrow_mut().truncate(self.depth));
    }
}

impl fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextGuard").field("depth", &self.depth).finish()
    }
}

/// The context to carry into a task spawned now, if any (one thread-local
/// read when tracing is not in use). Boxed so that a task that captures it
/// grows by one pointer, not by a whole context.
pub(crate) fn spawn_context() -> Option<Box<Context>> {
    STACK.try_with(|s| s.borrow().last().cloned().map(Box::new)).ok().flatten()
}

/// Wraps `task` so that it runs in the context current at this call.
pub(crate) fn bind_current<F: FnOnce() + Send + 'static>(task: F) -> Box<dyn FnOnce() + Send> {
    match spawn_context() {
        None => Box::new(task),
        Some(cx) => Box::new(move || {
            let _guard = cx.attach_boxed();
            task()
        }),
    }
}

/// Everything recorded about a span; what exporters receive.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanData {
    /// The span's name.
    pub name: Cow<'static, str>,
    /// Trace id, span id, flags and trace state.
    pub context: SpanContext,
    /// The parent's span id (`None` for a root span).
    pub parent_span_id: Option<SpanId>,
    /// The span kind.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch (0 while running).
    pub end_time_unix_nano: u64,
    /// Attributes, in the order first set.
    pub attributes: Vec<KeyValue>,
    /// Events, in the order added.
    pub events: Vec<Event>,
    /// The status.
    pub status: Status,
    /// Attributes over [`MAX_ATTRIBUTES`] that were not kept.
    pub dropped_attributes: u32,
    /// Events over [`MAX_EVENTS`] that were not kept.
    pub dropped_events: u32,
}

fn set_attr(attrs: &mut Vec<KeyValue>, dropped: &mut u32, kv: KeyValue) {
    if let Some(slot) = attrs.iter_mut().find(|a| a.key == kv.key) {
        slot.value = kv.value;
    } else if attrs.len() < MAX_ATTRIBUTES {
        attrs.push(kv);
    } else {
        *dropped += 1;
    }
}

/// One operation being timed. Sampled spans record what is set on them and
/// are exported when they end; unsampled ones ("non-recording") cost two
/// random numbers and carry their ids only, so context still propagates.
/// Ends on [`end`](Self::end) or drop.
pub struct Span {
    context: SpanContext,
    parent_span_id: Option<SpanId>,
    record: Option<Box<SpanData>>,
    tracer: Option<Tracer>,
}

impl Span {
    /// The span's identity (what children and downstream services see).
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// The parent's span id (`None` for a root span).
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }

    /// Whether it records (it was sampled and has not ended).
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    /// The `traceparent` header for calls made inside this span.
    pub fn traceparent(&self) -> String {
        self.context.traceparent()
    }

    /// Sets an attribute (replacing one with the same key). No effect when
    /// not recording.
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        if let Some(r) = self.record.as_deref_mut() {
            set_attr(&mut r.attributes, &mut r.dropped_attributes, KeyValue::new(key, value));
        }
    }

    /// Adds an event stamped now.
    pub fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        if self.record.is_some() {
            self.add_event_at(name, now_unix_nanos(), attributes);
        }
    }

    /// Adds an event with an explicit timestamp (nanoseconds since the
    /// Unix epoch).
    pub fn add_event_at(&mut self, name: impl Into<Cow<'static, str>>, time_unix_nano: u64, attributes: Vec<KeyValue>) {
        let Some(r) = self.record.as_deref_mut() else { return };
        if r.events.len() >= MAX_EVENTS {
            r.dropped_events += 1;
            return;
        }
        let mut ev = Event { name: name.into(), time_unix_nano, attributes: Vec::new(), dropped_attributes: 0 };
        for kv in attributes {
            set_attr(&mut ev.attributes, &mut ev.dropped_attributes, kv);
        }
        r.events.push(ev);
    }

    /// Sets the status. `Ok` is final; `Unset` is ignored (OpenTelemetry's
    /// rules).
    pub fn set_status(&mut self, status: Status) {
        if let Some(r) = self.record.as_deref_mut() {
            if r.status != Status::Ok && status != Status::Unset {
                r.status = status;
            }
        }
    }

    /// Records an error: an `exception` event with `exception.type` and
    /// `exception.message` (OpenTelemetry semantic conventions), and status
    /// `Error(message)` unless the status is already `Ok`.
    pub fn record_error_message(&mut self, error_type: &str, message: &str) {
        self.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", error_type.to_owned()),
                KeyValue::new("exception.message", message.to_owned()),
            ],
        );
        self.set_status(Status::Error(message.to_owned()));
    }

    /// [`record_error_message`](Self::record_error_message) for a Rust
    /// error: its type name and `Display` text.
    pub fn record_error<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        let ty = std::any::type_name::<E>();
        self.record_error_message(ty, &error.to_string());
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(r) = self.record.as_deref_mut() {
            r.name = name.into();
        }
    }

    /// A copy of what has been recorded so far (`None` when not recording).
    pub fn snapshot(&self) -> Option<SpanData> {
        self.record.as_deref().cloned()
    }

    /// Makes this span the current one on this thread until the guard drops
    /// (spans started meanwhile become its children). Keeps the current
    /// baggage.
    pub fn enter(&self) -> ContextGuard {
        Context::current().with_span(self.context.clone()).attach()
    }

    /// Ends the span now and hands it to the exporter (without blocking).
    /// Later changes are ignored.
    pub fn end(&mut self) {
        // Read the clock only for a recording span: unsampled spans stay
        // free of system calls.
        if self.record.is_some() {
            self.end_at(now_unix_nanos());
        }
    }

    /// Ends the span at `time_unix_nano`.
    pub fn end_at(&mut self, time_unix_nano: u64) {
        if let Some(mut r) = self.record.take() {
            r.end_time_unix_nano = time_unix_nano.max(r.start_time_unix_nano);
            if let Some(t) = self.tracer.take() {
                t.inner.submit(r);
            }
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.end();
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("context", &self.context)
            .field("parent_span_id", &self.parent_span_id)
            .field("record", &self.record)
            .finish()
    }
}

struct TracerInner {
    sampler: Sampler,
    processor: Option<BatchProcessor>,
}

impl TracerInner {
    fn submit(&self, span: Box<SpanData>) {
        if let Some(p) = &self.processor {
            p.submit(span);
        }
    }
}

/// Starts spans under one sampler and sends the sampled ones to one
/// exporter. Clones share it. See the [module docs](self).
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<TracerInner>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("sampler", &self.inner.sampler)
            .field("exporting", &self.inner.processor.is_some())
            .finish()
    }
}

/// Configures a [`Tracer`].
pub struct TracerBuilder {
    sampler: Sampler,
    resource: Resource,
    exporter: Option<Box<dyn SpanExporter>>,
    batch: BatchConfig,
}

impl TracerBuilder {
    /// The sampler (default: parent-based always-on).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// The `service.name` resource attribute (default `unknown_service`).
    pub fn service_name(mut self, name: &str) -> Self {
        self.resource.set(KeyValue::new("service.name", name.to_owned()));
        self
    }

    /// Another resource attribute.
    pub fn resource_attribute(mut self, kv: KeyValue) -> Self {
        self.resource.set(kv);
        self
    }

    /// Where sampled spans go (through a [`BatchProcessor`]). Without one,
    /// spans are recorded but not exported.
    pub fn exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporter = Some(Box::new(exporter));
        self
    }

    /// Buffer and batch sizes of the processor.
    pub fn batch_config(mut self, config: BatchConfig) -> Self {
        self.batch = config;
        self
    }

    /// Builds the tracer, starting the processor thread if there is an
    /// exporter. Fails on an invalid batch configuration or when the thread
    /// cannot be started.
    pub fn build(self) -> Result<Tracer, Error> {
        let processor = match self.exporter {
            Some(e) => Some(BatchProcessor::start(e, self.resource, self.batch)?),
            None => None,
        };
        Ok(Tracer { inner: Arc::new(TracerInner { sampler: self.sampler, processor }) })
    }
}

/// How a [`SpanBuilder`] finds the parent.
enum ParentChoice {
    Current,
    Root,
    Explicit(SpanContext),
}

/// Options of one span before it starts ([`Tracer::span_builder`]).
pub struct SpanBuilder<'a> {
    tracer: &'a Tracer,
    name: Cow<'static, str>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    parent: ParentChoice,
    start_time: Option<u64>,
}

impl SpanBuilder<'_> {
    /// The span kind (default [`SpanKind::Internal`]).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// An attribute set from the start (samplers could see it).
    pub fn attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// An explicit parent (local or remote) instead of the current context's span.
    pub fn parent(mut self, parent: &SpanContext) -> Self {
        self.parent = ParentChoice::Explicit(parent.clone());
        self
    }

    /// The span of `cx` as parent (a root span if it has none).
    pub fn parent_context(mut self, cx: &Context) -> Self {
        self.parent = match cx.span() {
            Some(p) => ParentChoice::Explicit(p.clone()),
            None => ParentChoice::Root,
        };
        self
    }

    /// Starts a new trace whatever the current context.
    pub fn root(mut self) -> Self {
        self.parent = ParentChoice::Root;
        self
    }

    /// An explicit start time (nanoseconds since the Unix epoch).
    pub fn start_time(mut self, time_unix_nano: u64) -> Self {
        self.start_time = Some(time_unix_nano);
        self
    }

    /// Starts the span.
    pub fn start(self) -> Span {
        let parent = match self.parent {
            ParentChoice::Current => STACK.try_with(|s| s.borrow().last().and_then(|c| c.span.clone())).ok().flatten(),
            ParentChoice::Root => None,
            ParentChoice::Explicit(p) => Some(p),
        };
        let (trace_id, span_id) = match &parent {
            Some(p) => (p.trace_id, SpanId::random()),
            None => ids::random_root_ids(),
        };
        let sampled = self.tracer.inner.sampler.should_sample(parent.as_ref(), trace_id);
        let (flags, trace_state, parent_span_id) = match parent {
            Some(p) => (p.flags.with_sampled(sampled), p.trace_state, Some(p.span_id)),
            None => (TraceFlags::NONE.with_sampled(sampled), TraceState::new(), None),
        };
        let context = SpanContext { trace_id, span_id, flags, trace_state, remote: false };
        if !sampled {
            return Span { context, parent_span_id, record: None, tracer: None };
        }
        let mut data = Box::new(SpanData {
            name: self.name,
            context: context.clone(),
            parent_span_id,
            kind: self.kind,
            start_time_unix_nano: self.start_time.unwrap_or_else(now_unix_nanos),
            end_time_unix_nano: 0,
            attributes: Vec::new(),
            events: Vec::new(),
            status: Status::Unset,
            dropped_attributes: 0,
            dropped_events: 0,
        });
        for kv in self.attributes {
            set_attr(&mut data.attributes, &mut data.dropped_attributes, kv);
        }
        Span { context, parent_span_id, record: Some(data), tracer: Some(self.tracer.clone()) }
    }
}

impl Tracer {
    /// A tracer to configure.
    pub fn builder() -> TracerBuilder {
        TracerBuilder {
            sampler: Sampler::parent_based(Sampler::AlwaysOn),
            resource: Resource::default(),
            exporter: None,
            batch: BatchConfig::default(),
        }
    }

    /// A tracer that samples nothing and exports nothing: spans still get
    /// ids so that context propagates. The global tracer until one is set.
    pub fn disabled() -> Tracer {
        static DISABLED: OnceLock<Tracer> = OnceLock::new();
        DISABLED
            .get_or_init(|| Tracer { inner: Arc::new(TracerInner { sampler: Sampler::AlwaysOff, processor: None }) })
            .clone()
    }

    /// The sampler.
    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// Starts a span named `name` under the current context's span.
    pub fn start(&self, name: impl Into<Cow<'static, str>>) -> Span {
        self.span_builder(name).start()
    }

    /// A span to configure before starting it.
    pub fn span_builder(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: SpanKind::Internal,
            attributes: Vec::new(),
            parent: ParentChoice::Current,
            start_time: None,
        }
    }

    /// Runs `f` inside a new span that is current meanwhile, then ends it.
    pub fn in_span<R>(&self, name: impl Into<Cow<'static, str>>, f: impl FnOnce(&mut Span) -> R) -> R {
        let mut span = self.start(name);
        let _guard = span.enter();
        f(&mut span)
    }

    /// The processor's counters (all zero without an exporter).
    pub fn stats(&self) -> ProcessorStats {
        self.inner.processor.as_ref().map(BatchProcessor::stats).unwrap_or_default()
    }

    /// Exports everything ended so far; waits up to `timeout`. Without an
    /// exporter, returns at once.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        match &self.inner.processor {
            Some(p) => p.flush(timeout),
            None => Ok(()),
        }
    }

    /// Exports what is buffered and stops the processor thread; spans ended
    /// afterwards are dropped (and counted). Idempotent.
    pub fn shutdown(&self) {
        if let Some(p) = &self.inner.processor {
            p.shutdown();
        }
    }
}

static GLOBAL: RwLock<Option<Tracer>> = RwLock::new(None);
/// Bumped on every [`set_global_tracer`]; threads compare it with their
/// cached copy.
static GLOBAL_GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static GLOBAL_CACHE: RefCell<Option<(u64, Tracer)>> = const { RefCell::new(None) };
}

/// Installs `tracer` as the process's global tracer; returns the previous
/// one (so it can be [`shutdown`](Tracer::shutdown)).
pub fn set_global_tracer(tracer: Tracer) -> Tracer {
    let previous = {
        let mut g = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        g.replace(tracer)
    };
    // Release: a thread that sees the new generation (Acquire in
    // `with_global`) and then reads GLOBAL finds the new tracer; the lock
    // orders that read anyway, this only makes the cache check sound.
    GLOBAL_GENERATION.fetch_add(1, Ordering::Release);
    previous.unwrap_or_else(Tracer::disabled)
}

/// Runs `f` with the global tracer (cached per thread: one atomic load on
/// the fast path, no reference-count traffic).
pub fn with_global_tracer<R>(f: impl FnOnce(&Tracer) -> R) -> R {
    // Acquire: pairs with the Release in `set_global_tracer`.
    let gen = GLOBAL_GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let done = GLOBAL_CACHE
        .try_with(|c| {
            // Refresh a stale cache; skipped when a caller up the stack is
            // inside `f` (then the fallback below reads the lock).
            if let Ok(mut slot) = c.try_borrow_mut() {
                if !matches!(&*slot, Some((g, _)) if *g == gen) {
                    *slot = Some((gen, read_global()));
                }
            }
            let slot = c.borrow();
            match &*slot {
                Some((g, t)) if *g == gen => f.take().map(|f| f(t)),
                _ => None,
            }
        })
        .ok()
        .flatten();
    match (done, f) {
        (Some(r), _) => r,
        (None, Some(f)) => f(&read_global()),
        (None, None) => unreachable!("the closure ran but returned nothing"),
    }
}

fn read_global() -> Tracer {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(Tracer::disabled)
}

/// The global tracer.
pub fn global_tracer() -> Tracer {
    with_global_tracer(Tracer::clone)
}

/// Starts a span with the global tracer.
pub fn start_span(name: impl Into<Cow<'static, str>>) -> Span {
    with_global_tracer(|t| t.start(name))
}
