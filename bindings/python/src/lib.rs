//! `nimsync._native`: the Python extension module of nimsync.
//!
//! Thin wrappers around `nimsync-core`: the `Channel` class and the async
//! operation objects that `nimsync.Channel` and its asyncio face
//! (`python/nimsync/_aio.py`) drive, the loop waker whose descriptor asyncio
//! watches, `select`, and `CancelToken` (whose ambient scope lives in
//! `python/nimsync/_cancel.py`). Errors become Python exceptions in one place
//! (`errors.rs`). No algorithm lives here.

mod aio;
mod blocking;
mod cancel;
mod channel;
mod errors;
mod select;

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
    m.add_function(wrap_pyfunction!(select::select, m)?)?;
    m.add_function(wrap_pyfunction!(uses_membarrier, m)?)?;
    Ok(())
}

/// Whether wake-up checks use the `membarrier(2)` fast path (False: memory
/// fences on both sides).
#[pyfunction]
fn uses_membarrier() -> bool {
    nimsync_core::uses_membarrier()
}
