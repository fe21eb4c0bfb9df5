//! Running a blocking core call with the GIL released, Ctrl-C included.

use nimsync_core::{Error, WaitOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Turns a Python `timeout` (seconds; None waits forever) into a deadline.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => {
            Err(PyValueError::new_err(format!("timeout must be a non-negative number of seconds or None, got {t}")))
        }
        Some(t) => Ok(Duration::try_from_secs_f64(t).ok().and_then(|d| Instant::now().checked_add(d))),
    }
}

/// Runs `f` with the GIL released. If a signal interrupts the wait, Python's
/// handlers run (on the main thread); if one raises (KeyboardInterrupt), the
/// wait ends with `Error::Interrupted` and that exception is returned as the
/// second value, to be raised instead.
pub(crate) fn detached<R, F>(py: Python<'_>, deadline: Option<Instant>, f: F) -> (R, Option<PyErr>)
where
    R: Send,
    F: Send + FnOnce(&WaitOptions<'_>) -> R,
{
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let result = py.detach(|| {
        let hook = || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    true
                }
            })
        };
        f(&WaitOptions::new().deadline_opt(deadline).interrupt(&hook))
    });
    (result, raised.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The exception for a failed blocking call: the signal handler's if one
/// raised, else the mapped core error.
pub(crate) fn failure(py: Python<'_>, error: Error, value: Option<Py<PyAny>>, raised: Option<PyErr>) -> PyErr {
    match (error, raised) {
        (Error::Interrupted, Some(e)) => e,
        (error, _) => crate::errors::to_py(py, error, value),
    }
}
