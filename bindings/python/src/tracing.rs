//! `nimsync._native`'s tracing functions and the `Span` class: thin
//! wrappers around `nimsync_core::tracing`. The `with nimsync.span(...)`
//! block and the current span of a thread or asyncio task (a `ContextVar`)
//! live in `python/nimsync/_tracing.py`; it passes the parent explicitly.

use crate::errors::err;
use nimsync_core::tracing::{
    self as core_tracing, BatchConfig, FileExporter, KeyValue, OtlpHttpExporter, Sampler, Span, SpanContext, SpanKind,
    Status, TraceParent, Tracer, Value,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

fn to_value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    // bool first: it is a subclass of int.
    if v.is_instance_of::<PyBool>() {
        Ok(Value::Bool(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        v.extract::<i64>()
            .map(Value::Int)
            .map_err(|_| PyValueError::new_err(format!("attribute {key:?}: integer does not fit in 64 bits")))
    } else if v.is_instance_of::<PyFloat>() {
        Ok(Value::Float(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(Value::Str(v.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "attribute {key:?}: expected str, int, float or bool, got {}",
            v.get_type().name()?
        )))
    }
}

fn to_attributes(attributes: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<KeyValue>> {
    let Some(d) = attributes else { return Ok(Vec::new()) };
    d.iter()
        .map(|(k, v)| {
            let key: String = k.extract().map_err(|_| PyTypeError::new_err("attribute keys must be str"))?;
            let value = to_value(&key, &v)?;
            Ok(KeyValue::new(key, value))
        })
        .collect()
}

/// A span of `nimsync.span(...)`. Thread-safe; methods after `end()` do
/// nothing.
#[pyclass(module = "nimsync._native", name = "Span", frozen)]
pub(crate) struct PySpan {
    span: Mutex<Span>,
    context: SpanContext,
    parent_span_id: Option<String>,
}

impl PySpan {
    fn lock(&self) -> MutexGuard<'_, Span> {
        self.span.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PySpan {
    /// Sets an attribute (str, int, float or bool), replacing one with the same key.
    fn set_attribute(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = to_value(key, value)?;
        self.lock().set_attribute(key.to_owned(), v);
        Ok(())
    }

    /// Adds an event stamped now, or at `timestamp_ns` (Unix nanoseconds).
    #[pyo3(signature = (name, attributes=None, timestamp_ns=None))]
    fn add_event(&self, name: &str, attributes: Option<&Bound<'_, PyDict>>, timestamp_ns: Option<u64>) -> PyResult<()> {
        let attrs = to_attributes(attributes)?;
        let time = timestamp_ns.unwrap_or_else(core_tracing::now_unix_nanos);
        self.lock().add_event_at(name.to_owned(), time, attrs);
        Ok(())
    }

    /// Records an error: an `exception` event and status error.
    fn record_error(&self, error_type: &str, message: &str) {
        self.lock().record_error_message(error_type, message);
    }

    /// Sets the status: `"unset"`, `"ok"` (final) or `"error"` with a message.
    #[pyo3(signature = (code, message=None))]
    fn set_status(&self, code: &str, message: Option<&str>) -> PyResult<()> {
        let status = match code {
            "unset" => Status::Unset,
            "ok" => Status::Ok,
            "error" => Status::Error(message.unwrap_or_default().to_owned()),
            _ => return Err(PyValueError::new_err(format!("status must be 'unset', 'ok' or 'error', got {code:?}"))),
        };
        self.lock().set_status(status);
        Ok(())
    }

    /// Ends the span (at `timestamp_ns` if given) and queues it for export.
    #[pyo3(signature = (timestamp_ns=None))]
    fn end(&self, timestamp_ns: Option<u64>) {
        let mut s = self.lock();
        match timestamp_ns {
            Some(t) => s.end_at(t),
            None => s.end(),
        }
    }

    /// The trace id as 32 lowercase hex digits.
    #[getter]
    fn trace_id(&self) -> String {
        self.context.trace_id.to_hex()
    }

    /// The span id as 16 lowercase hex digits.
    #[getter]
    fn span_id(&self) -> String {
        self.context.span_id.to_hex()
    }

    /// The parent's span id, or None for a root span.
    #[getter]
    fn parent_span_id(&self) -> Option<String> {
        self.parent_span_id.clone()
    }

    /// Whether the span was sampled.
    #[getter]
    fn sampled(&self) -> bool {
        self.context.flags.is_sampled()
    }

    /// Whether it still records (sampled and not ended).
    #[getter]
    fn is_recording(&self) -> bool {
        self.lock().is_recording()
    }

    /// The `traceparent` header for calls made inside this span.
    #[getter]
    fn traceparent(&self) -> String {
        self.context.traceparent()
    }

    /// The `tracestate` header, or None when empty.
    #[getter]
    fn tracestate(&self) -> Option<String> {
        self.context.tracestate()
    }

    fn __repr__(&self) -> String {
        format!("<nimsync Span trace_id={} span_id={}>", self.trace_id(), self.span_id())
    }
}

/// Starts a span with the global tracer. `parent` is a `Span`, a
/// `traceparent` header string (with `tracestate` its companion header),
/// or None for a new trace.
#[pyfunction]
#[pyo3(signature = (name, parent=None, tracestate=None, kind="internal", attributes=None, start_time_ns=None))]
pub(crate) fn start_span(
    py: Python<'_>,
    name: &str,
    parent: Option<&Bound<'_, PyAny>>,
    tracestate: Option<&str>,
    kind: &str,
    attributes: Option<&Bound<'_, PyDict>>,
    start_time_ns: Option<u64>,
) -> PyResult<PySpan> {
    let kind = SpanKind::from_name(kind).map_err(|e| err(py, e))?;
    let attrs = to_attributes(attributes)?;
    let parent: Option<SpanContext> = match parent {
        None => None,
        Some(p) if p.is_none() => None,
        Some(p) => {
            if let Ok(span) = p.cast::<PySpan>() {
                Some(span.get().context.clone())
            } else if let Ok(header) = p.extract::<String>() {
                Some(SpanContext::from_headers(&header, tracestate).map_err(|e| err(py, e))?)
            } else {
                return Err(PyTypeError::new_err("parent must be a Span, a traceparent string or None"));
            }
        }
    };
    let span = core_tracing::with_global_tracer(|t| {
        let mut b = t.span_builder(name.to_owned()).kind(kind);
        b = match &parent {
            Some(p) => b.parent(p),
            None => b.root(),
        };
        for kv in attrs {
            b = b.attribute(kv.key, kv.value);
        }
        if let Some(t0) = start_time_ns {
            b = b.start_time(t0);
        }
        b.start()
    });
    Ok(PySpan {
        context: span.context().clone(),
        parent_span_id: span.parent_span_id().map(|p| p.to_hex()),
        span: Mutex::new(span),
    })
}

/// Configures tracing for the process: `sampling_rate` in 0..=1 (a
/// parent-based trace-id ratio sampler), `exporter` a file path (OTLP JSON
/// lines) or an `http://host:port/v1/traces` collector URL, or None (record,
/// export nothing). Replaces (and shuts down) the previous configuration.
#[pyfunction]
#[pyo3(signature = (sampling_rate=1.0, exporter=None, service_name=None, enabled=true, max_queue_size=2048, max_batch_size=512, schedule_delay=1.0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn tracing_init(
    py: Python<'_>,
    sampling_rate: f64,
    exporter: Option<&str>,
    service_name: Option<&str>,
    enabled: bool,
    max_queue_size: usize,
    max_batch_size: usize,
    schedule_delay: f64,
) -> PyResult<()> {
    if !(schedule_delay.is_finite() && schedule_delay > 0.0) {
        return Err(PyValueError::new_err(format!(
            "schedule_delay must be a positive number of seconds, got {schedule_delay}"
        )));
    }
    let tracer = if !enabled {
        Tracer::disabled()
    } else {
        let sampler = Sampler::ratio(sampling_rate).map_err(|e| err(py, e))?;
        let mut b = Tracer::builder().sampler(Sampler::parent_based(sampler)).batch_config(BatchConfig {
            max_queue_size,
            max_batch_size,
            scheduled_delay: Duration::from_secs_f64(schedule_delay),
        });
        if let Some(name) = service_name {
            b = b.service_name(name);
        }
        b = match exporter {
            None => b,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                b.exporter(OtlpHttpExporter::new(url).map_err(|e| err(py, e))?)
            }
            Some(path) => b.exporter(FileExporter::create(path).map_err(|e| err(py, e))?),
        };
        b.build().map_err(|e| err(py, e))?
    };
    let previous = core_tracing::set_global_tracer(tracer);
    py.detach(|| previous.shutdown());
    Ok(())
}

/// Exports every ended span; waits up to `timeout` seconds.
#[pyfunction]
#[pyo3(signature = (timeout=30.0))]
pub(crate) fn tracing_flush(py: Python<'_>, timeout: f64) -> PyResult<()> {
    if !(timeout.is_finite() && timeout >= 0.0) {
        return Err(PyValueError::new_err(format!("timeout must be a non-negative number of seconds, got {timeout}")));
    }
    let tracer = core_tracing::global_tracer();
    py.detach(|| tracer.flush(Duration::from_secs_f64(timeout))).map_err(|e| err(py, e))
}

/// Exports what is queued and stops exporting (tracing is then disabled).
#[pyfunction]
pub(crate) fn tracing_shutdown(py: Python<'_>) {
    let previous = core_tracing::set_global_tracer(Tracer::disabled());
    py.detach(|| previous.shutdown());
}

/// The export counters: queued, dropped, exported, failed, last_error, queue_capacity.
#[pyfunction]
pub(crate) fn tracing_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = core_tracing::global_tracer().stats();
    let d = PyDict::new(py);
    d.set_item("queued", s.queued)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("exported", s.exported)?;
    d.set_item("failed", s.failed)?;
    d.set_item("last_error", s.last_error)?;
    d.set_item("queue_capacity", s.queue_capacity)?;
    Ok(d)
}

/// Parses a `traceparent` header strictly: `(version, trace_id, parent_id,
/// flags)`; ValueError says what is wrong.
#[pyfunction]
pub(crate) fn parse_traceparent(py: Python<'_>, header: &str) -> PyResult<(u8, String, String, u8)> {
    let tp = TraceParent::parse(header).map_err(|e| err(py, e))?;
    Ok((tp.version, tp.trace_id.to_hex(), tp.parent_id.to_hex(), tp.flags.0))
}

/// Parses a `tracestate` header: its `(key, value)` members in order.
#[pyfunction]
pub(crate) fn parse_tracestate(py: Python<'_>, header: &str) -> PyResult<Vec<(String, String)>> {
    let ts = nimsync_core::tracing::TraceState::parse(header).map_err(|e| err(py, e))?;
    Ok(ts.members().to_vec())
}

/// Parses a `baggage` header into `(key, value)` pairs (values decoded).
#[pyfunction]
pub(crate) fn parse_baggage(py: Python<'_>, header: &str) -> PyResult<Vec<(String, String)>> {
    let b = nimsync_core::tracing::Baggage::parse(header).map_err(|e| err(py, e))?;
    Ok(b.entries().iter().map(|e| (e.key.clone(), e.value.clone())).collect())
}

/// Formats `(key, value)` pairs as a `baggage` header (values percent-encoded).
#[pyfunction]
pub(crate) fn format_baggage(py: Python<'_>, items: Vec<(String, String)>) -> PyResult<String> {
    let mut b = nimsync_core::tracing::Baggage::new();
    for (k, v) in &items {
        b.set(k, v).map_err(|e| err(py, e))?;
    }
    Ok(b.to_string())
}
