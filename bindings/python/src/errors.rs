//! The one place where core errors become Python exceptions.
//!
//! The exception classes live in `nimsync/_errors.py` (so that they can
//! inherit from `queue.Full`, `asyncio.QueueFull`, `TimeoutError`, ...); they
//! are imported once and cached.

use nimsync_core::{CancelReason, CancelToken, Error};
use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BUSY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BASE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyType>>, name: &str) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "nimsync._errors", name)
}

/// Builds the exception for `error`; `value` (a send's unsent item) becomes
/// the exception's `value` attribute.
pub(crate) fn to_py(py: Python<'_>, error: Error, value: Option<Py<PyAny>>) -> PyErr {
    let message = error.to_string();
    with_message(py, error, message, value)
}

/// The exception of a token that fired for `reason`: `Timeout` for a
/// deadline, `Cancelled` otherwise; the message is the reason ("cancelled:
/// shutting down", "deadline exceeded").
pub(crate) fn cancelled(py: Python<'_>, reason: &CancelReason, value: Option<Py<PyAny>>) -> PyErr {
    with_message(py, reason.to_error(), reason.to_string(), value)
}

/// The exception of a blocking call that waited under `token` and failed
/// with `error`: when the token fired, its reason says why (see
/// [`cancelled`]); otherwise `error` as it is, with `timeout_error` in place
/// of a `timeout=` that ran out (`queue.Queue` raises `Full`/`Empty` there).
pub(crate) fn wait_failed(
    py: Python<'_>,
    error: Error,
    token: Option<&CancelToken>,
    timeout_error: Error,
    value: Option<Py<PyAny>>,
) -> PyErr {
    if matches!(error, Error::Cancelled | Error::Timeout) {
        if let Some(reason) = token.and_then(CancelToken::reason) {
            return cancelled(py, &reason, value);
        }
    }
    let error = if error == Error::Timeout { timeout_error } else { error };
    to_py(py, error, value)
}

fn with_message(py: Python<'_>, error: Error, message: String, value: Option<Py<PyAny>>) -> PyErr {
    let cls = match &error {
        Error::Closed => class(py, &CLOSED, "ChannelClosed"),
        Error::Full => class(py, &FULL, "ChannelFull"),
        Error::Empty => class(py, &EMPTY, "ChannelEmpty"),
        Error::Timeout => class(py, &TIMEOUT, "Timeout"),
        Error::Cancelled => class(py, &CANCELLED, "Cancelled"),
        Error::Busy(_) => class(py, &BUSY, "ChannelBusy"),
        Error::InvalidArgument { .. } => return PyValueError::new_err(message),
        Error::OutOfMemory(_) => return PyMemoryError::new_err(message),
        _ => class(py, &BASE, "NimsyncError"),
    };
    let cls = match cls {
        Ok(c) => c,
        Err(e) => return e,
    };
    match cls.call1((message,)) {
        Ok(exc) => {
            if let Some(v) = value {
                if let Err(e) = exc.setattr("value", v) {
                    return e;
                }
            }
            PyErr::from_value(exc)
        }
        Err(e) => e,
    }
}

/// Whether `error` is a `nimsync.Cancelled` or `nimsync.Timeout`: what a
/// blocking call raises when its token fires.
pub(crate) fn is_cancellation(py: Python<'_>, error: &PyErr) -> bool {
    [(&CANCELLED, "Cancelled"), (&TIMEOUT, "Timeout")]
        .into_iter()
        .any(|(cell, name)| class(py, cell, name).is_ok_and(|cls| error.is_instance(py, cls)))
}

/// Shorthand for errors without a value.
pub(crate) fn err(py: Python<'_>, error: Error) -> PyErr {
    to_py(py, error, None)
}
