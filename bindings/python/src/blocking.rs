//! Running a blocking core call with the GIL released, Ctrl-C and
//! cancellation included.

use nimsync_core::{CancelToken, WaitOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Turns a Python `timeout` (seconds; None waits forever) into a deadline.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    check_timeout(timeout)?;
    Ok(checked_deadline(timeout))
}

/// [`deadline`] for a `timeout` that [`check_timeout`] accepted; a timeout
/// too long to represent waits forever.
pub(crate) fn checked_deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.and_then(|t| Duration::try_from_secs_f64(t).ok()).and_then(|d| Instant::now().checked_add(d))
}

/// Rejects a negative or NaN `timeout` (cheap: for the fast paths, which
/// need no clock reading).
#[inline]
pub(crate) fn check_timeout(timeout: Option<f64>) -> PyResult<()> {
    match timeout {
        Some(t) if t.is_nan() || t < 0.0 => {
            Err(PyValueError::new_err(format!("timeout must be a non-negative number of seconds or None, got {t}")))
        }
        _ => Ok(()),
    }
}

/// Runs `f` with the GIL released, waiting until `deadline` at the latest,
/// or until `cancel` (see `cancel::token_for`) fires.
///
/// When a signal interrupts the wait, Python's signal handlers run (they only
/// do on the main thread); if one raises (`KeyboardInterrupt`), the wait ends
/// with `Error::Interrupted` and that exception is returned instead of `f`'s
/// result. It is returned even if the operation completed after all (a
/// notifier won the race with the interrupt): the handler has run and its
/// exception must not be swallowed, exactly as if the signal had arrived just
/// after the call returned. `f`'s result, with any item in it, is then
/// dropped here with the GIL held; an unsent item is still the caller's.
pub(crate) fn detached<R, F>(
    py: Python<'_>,
    deadline: Option<Instant>,
    cancel: Option<&CancelToken>,
    f: F,
) -> PyResult<R>
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
        let opts = WaitOptions::new().deadline_opt(deadline).interrupt(&hook);
        f(&match cancel {
            Some(token) => opts.cancel(token),
            None => opts,
        })
    });
    match raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(result),
    }
}
