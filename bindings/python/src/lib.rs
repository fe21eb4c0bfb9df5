//! `nimsync._native`: the Python extension module of nimsync.
//!
//! Thin wrappers around `nimsync-core`: the `Channel` class and the async
//! operation objects that `nimsync.Channel` and its asyncio face
//! (`python/nimsync/_aio.py`) drive, the loop waker whose descriptor asyncio
//! watches, `select`, `CancelToken` (whose ambient scope lives in
//! `python/nimsync/_cancel.py`), and `TaskGroup` with the task pool's
//! metrics (the `with` block lives in `python/nimsync/_group.py`), and
//! tracing spans (the `with nimsync.span(...)` block lives in
//! `python/nimsync/_tracing.py`), and metrics (`Collector` with counters,
//! gauges, histograms and a `/metrics` server; `python/nimsync/_metrics.py`).
//! Errors become Python exceptions in one
//! place (`errors.rs`). No algorithm lives here.

mod aio;
mod blocking;
mod cancel;
mod channel;
mod errors;
mod group;
mod metrics;
mod select;
mod tracing;

use pyo3::prelude::*;

/// The compiled part of the `nimsync` package.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", nimsync_core::VERSION)?;
    m.add_class::<channel::PyChannel>()?;
    m.add_class::<cancel::PyCancelToken>()?;
    m.add_class::<cancel::PyCancelCallback>()?;
    m.add_class::<aio::PyLoopWaker>()?;
    m.add_class::<aio::PyRecvOp>()?;
    m.add_class::<aio::PySendOp>()?;
    m.add_class::<aio::PyJoinOp>()?;
    m.add_class::<group::PyTaskGroup>()?;
    m.add_class::<group::PyTaskHandle>()?;
    m.add_function(wrap_pyfunction!(select::select, m)?)?;
    m.add_function(wrap_pyfunction!(group::scheduler_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(uses_membarrier, m)?)?;
    m.add_class::<metrics::PyCollector>()?;
    m.add_class::<metrics::PyCounter>()?;
    m.add_class::<metrics::PyGauge>()?;
    m.add_class::<metrics::PyHistogram>()?;
    m.add_class::<metrics::PyMetricsServer>()?;
    m.add_class::<tracing::PySpan>()?;
    m.add_function(wrap_pyfunction!(tracing::start_span, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::tracing_init, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::tracing_flush, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::tracing_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::tracing_stats, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::parse_traceparent, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::parse_tracestate, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::parse_baggage, m)?)?;
    m.add_function(wrap_pyfunction!(tracing::format_baggage, m)?)?;
    Ok(())
}

/// Whether wake-up checks use the `membarrier(2)` fast path (False: memory
/// fences on both sides).
#[pyfunction]
fn uses_membarrier() -> bool {
    nimsync_core::uses_membarrier()
}
