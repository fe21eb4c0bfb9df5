//! `nimsync._native.CancelToken` and its callback handle, and how a blocking
//! call finds the token it waits under (`token_for`).
//!
//! The ambient token of `nimsync.cancel_scope` / `nimsync.timeout` lives in a
//! `contextvars.ContextVar` owned by `python/nimsync/_cancel.py`; the blocking
//! methods read it only on their slow path, after the non-blocking attempt
//! failed, so the fast path pays nothing for it.

use crate::errors::cancelled;
use nimsync_core::{CallbackGuard, CancelToken};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `nimsync._cancel._current.get`, looked up once.
static CURRENT_GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The token a blocking call waits under: `explicit` (its `cancel=`
/// argument), else the token of the innermost `cancel_scope`/`timeout` block
/// of the calling thread or task, else none. Call it only on the slow path.
pub(crate) fn token_for(py: Python<'_>, explicit: Option<&Bound<'_, PyCancelToken>>) -> PyResult<Option<CancelToken>> {
    if let Some(token) = explicit {
        return Ok(Some(token.get().token.clone()));
    }
    let get = CURRENT_GET.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("nimsync._cancel")?.getattr("_current")?.getattr("get")?.unbind())
    })?;
    let current = get.bind(py).call0()?;
    if current.is_none() {
        return Ok(None);
    }
    let token = current
        .cast::<PyCancelToken>()
        .map_err(|_| PyTypeError::new_err("the current cancel scope's token is not a nimsync.CancelToken"))?;
    Ok(Some(token.get().token.clone()))
}

/// Checks a `cancel=` argument: a `CancelToken` or None (a TypeError that
/// names the argument otherwise).
pub(crate) fn cancel_arg<'a, 'py>(
    cancel: Option<&'a Bound<'py, PyAny>>,
) -> PyResult<Option<&'a Bound<'py, PyCancelToken>>> {
    match cancel {
        None => Ok(None),
        Some(obj) => obj.cast::<PyCancelToken>().map(Some).map_err(|_| {
            let name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!("cancel must be a nimsync.CancelToken or None, not {name}"))
        }),
    }
}

/// A cancellation token: one node of a tree. Cancelling a token cancels all
/// its descendants (exactly once each, with the same reason); a child made
/// under a cancelled token starts cancelled.
///
/// Every blocking nimsync call takes one as ``cancel=`` and ends with
/// ``nimsync.Cancelled`` (``nimsync.Timeout`` for a deadline token) as soon
/// as it fires. Tokens are thread-safe.
///
/// ```python
/// root = nimsync.CancelToken()
/// job = root.child()
/// threading.Timer(1.0, root.cancel, ["shutting down"]).start()
/// try:
///     ch.recv(cancel=job)           # wakes when root is cancelled
/// except nimsync.Cancelled as exc:
///     print(exc)                    # cancelled: shutting down
/// ```
#[pyclass(module = "nimsync._native", name = "CancelToken", frozen)]
pub(crate) struct PyCancelToken {
    pub(crate) token: CancelToken,
}

impl From<CancelToken> for PyCancelToken {
    fn from(token: CancelToken) -> Self {
        PyCancelToken { token }
    }
}

#[pymethods]
impl PyCancelToken {
    /// A root token: cancelled only by `cancel()` (or its own deadline).
    #[new]
    fn new() -> Self {
        CancelToken::new().into()
    }

    /// A child token: cancelled when this one is, or on its own.
    ///
    /// ```python
    /// child = token.child()
    /// token.cancel()
    /// assert child.cancelled
    /// ```
    fn child(&self) -> Self {
        self.token.child().into()
    }

    /// A token that this one does *not* cancel: for work that must finish
    /// (cleanup, a final write) while its surroundings are being cancelled.
    /// It can still be cancelled directly or given a deadline.
    fn shielded(&self) -> Self {
        self.token.shielded().into()
    }

    /// A child cancelled with reason "deadline exceeded" `seconds` from now
    /// (at once for 0), or earlier when this token is. Operations waiting
    /// under it raise `nimsync.Timeout`. One timer thread serves every
    /// deadline; it sleeps until the earliest one.
    ///
    /// ```python
    /// ch.recv(cancel=token.with_timeout(0.5))   # Timeout after 0.5 s
    /// ```
    fn with_timeout(&self, seconds: f64) -> PyResult<Self> {
        if seconds.is_nan() || seconds < 0.0 {
            return Err(PyValueError::new_err(format!(
                "invalid argument `seconds`: must be a non-negative number, got {seconds}"
            )));
        }
        Ok(match Duration::try_from_secs_f64(seconds) {
            Ok(timeout) => self.token.with_timeout(timeout),
            // Too far away to ever come.
            Err(_) => self.token.child(),
        }
        .into())
    }

    /// Cancels this token and every descendant with reason
    /// "cancelled: <message>" ("cancelled" without a message). Returns True
    /// the first time, False if it was already cancelled (the first reason
    /// stands). Callbacks run here, on this thread, before it returns.
    #[pyo3(signature = (message = ""))]
    fn cancel(&self, message: &str) -> bool {
        // The GIL stays held: the Python callbacks it runs need it anyway, and
        // no core lock is held while a callback waits for it.
        self.token.cancel(message)
    }

    /// Whether the token has been cancelled (one atomic load).
    #[getter]
    fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the token was cancelled — "cancelled", "cancelled: <message>" or
    /// "deadline exceeded" — or None while it is not.
    #[getter]
    fn reason(&self) -> Option<String> {
        self.token.reason().map(|r| r.to_string())
    }

    /// Raises `nimsync.Cancelled` (`nimsync.Timeout` for a deadline) if the
    /// token has been cancelled; for long computations that want to stop
    /// between steps.
    ///
    /// ```python
    /// for chunk in chunks:
    ///     token.check()
    ///     process(chunk)
    /// ```
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        match self.token.reason() {
            Some(reason) => Err(cancelled(py, &reason, None)),
            None => Ok(()),
        }
    }

    /// Calls `callback()` once when the token is cancelled, on the thread
    /// that cancels it (the timer thread for a deadline), with the GIL held;
    /// at once, here, if the token is already cancelled. An exception it
    /// raises goes to `sys.unraisablehook`, like an exception in a
    /// `weakref` callback or a `__del__`. A callback must be quick and must
    /// not block; it may cancel other tokens.
    ///
    /// Returns a `CancelCallback`: `remove()` (or leaving its `with` block)
    /// withdraws a callback that has not run. Dropping the handle does not;
    /// the token keeps the callback (and what it refers to) until it runs.
    ///
    /// ```python
    /// token.on_cancel(ch.close)                  # close the channel on cancel
    /// with token.on_cancel(lambda: print("stop")):
    ///     work()                                 # withdrawn after the block
    /// ```
    fn on_cancel(&self, callback: Bound<'_, PyAny>) -> PyResult<PyCancelCallback> {
        if !callback.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "on_cancel() argument must be callable, not {}",
                callback.get_type().name()?
            )));
        }
        // Whoever takes the callable out of the slot owns the run: the
        // cancelling thread (to call it) or `remove()` (to withdraw it), never
        // both.
        let slot = Arc::new(Mutex::new(Some(callback.unbind())));
        let in_closure = slot.clone();
        let guard = self.token.on_cancel(move |_reason| {
            let callback = locked(&in_closure).take();
            if let Some(callback) = callback {
                // `try_attach`: after interpreter shutdown there is no one to call.
                Python::try_attach(|py| {
                    if let Err(e) = callback.call0(py) {
                        e.write_unraisable(py, Some(callback.bind(py)));
                    }
                });
            }
        });
        Ok(PyCancelCallback { slot, guard: Mutex::new(Some(guard)) })
    }

    fn __repr__(&self) -> String {
        match self.token.reason() {
            None => "<nimsync.CancelToken active>".to_string(),
            Some(reason) => format!("<nimsync.CancelToken cancelled reason={:?}>", reason.to_string()),
        }
    }
}

/// The registration of a `CancelToken.on_cancel` callback.
///
/// `remove()` withdraws it; as a context manager it is withdrawn when the
/// `with` block ends.
#[pyclass(module = "nimsync._native", name = "CancelCallback", frozen)]
pub(crate) struct PyCancelCallback {
    slot: Arc<Mutex<Option<Py<PyAny>>>>,
    guard: Mutex<Option<CallbackGuard>>,
}

#[pymethods]
impl PyCancelCallback {
    /// Withdraws the callback. Returns True if it will now never run, False
    /// if it has already run (or is running) or was removed before.
    fn remove(&self) -> bool {
        let callback = locked(&self.slot).take();
        let withdrawn = callback.is_some();
        // Released here, with the GIL held and outside every lock (its
        // `__del__` may run Python code).
        drop(callback);
        let guard = locked(&self.guard).take();
        drop(guard);
        withdrawn
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Withdraws the callback when the `with` block ends.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.remove();
        false
    }

    fn __repr__(&self) -> String {
        let state = if locked(&self.slot).is_some() { "pending" } else { "done" };
        format!("<nimsync.CancelCallback {state}>")
    }
}

impl Drop for PyCancelCallback {
    fn drop(&mut self) {
        // Dropping the handle keeps the callback registered (Python habit:
        // `add_done_callback` needs no handle kept alive).
        if let Some(guard) = self.guard.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            guard.forget();
        }
    }
}
