//! `nimsync._native.TaskGroup`, `TaskHandle` and `scheduler_metrics`: Python
//! callables run as tasks of a core [`TaskGroup`] on a nimsync [`Scheduler`].
//!
//! A task holds the GIL only while it runs Python code: the worker attaches
//! to the interpreter, calls the callable, and detaches; waiting in `join`
//! releases the GIL and runs signal handlers, so Ctrl-C cancels the group and
//! still waits for every task. The `with` block, `ExceptionGroup` and result
//! handling live in `python/nimsync/_group.py`.

use crate::blocking::{check_timeout, detached};
use crate::cancel::PyCancelToken;
use crate::errors::{err, is_cancellation};
use nimsync_core::group::BoxError;
use nimsync_core::{CancelReason, Error, Scheduler, TaskFailure, TaskGroup, TaskHandle};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that sets the number of workers of the pool
/// Python tasks run on (read once, when the first group starts).
const WORKERS_ENV: &str = "NIMSYNC_PYTHON_WORKERS";

/// The pool Python tasks run on, started on first use.
///
/// It is separate from the process-wide [`Scheduler::global`] (which C and
/// Nim code in the same process may keep busy with CPU-bound tasks) and
/// larger: Python tasks spend most of their time blocked (I/O, channels,
/// waiting for the GIL), so, like `concurrent.futures.ThreadPoolExecutor`,
/// it defaults to `min(32, cores + 4)` workers. `NIMSYNC_PYTHON_WORKERS`
/// overrides that.
pub(crate) fn python_pool() -> PyResult<&'static Scheduler> {
    static POOL: OnceLock<Result<Scheduler, String>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let workers = match std::env::var(WORKERS_ENV) {
            Ok(v) => v.trim().parse::<usize>().map_err(|_| {
                format!("{WORKERS_ENV} must be a whole number of worker threads (1 to 1024), got {v:?}")
            })?,
            Err(_) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cores + 4).min(32)
            }
        };
        Scheduler::new(workers).map_err(|e| format!("cannot start the task pool: {e}"))
    });
    pool.as_ref().map_err(|e| PyRuntimeError::new_err(e.clone()))
}

/// A Python exception raised by a task, with its text rendered while the GIL
/// was held (the core formats it into the cancel reason without the GIL).
struct PyFailure {
    error: PyErr,
    text: String,
}

impl fmt::Debug for PyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for PyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for PyFailure {}

/// Runs one task body: calls `callable()` with the GIL held. A
/// `nimsync.Cancelled`/`Timeout` raised while the group's token is cancelled
/// is the task observing that cancellation, not a failure of its own: it is
/// reported to the core as `Error::Cancelled`, which the core does not count.
fn run_task(callable: Py<PyAny>, token: &nimsync_core::CancelToken) -> Result<Py<PyAny>, BoxError> {
    let ran = Python::try_attach(|py| {
        let outcome = callable.bind(py).call0().map(Bound::unbind);
        // Released with the GIL held, before the worker detaches.
        drop(callable);
        outcome.map_err(|error| -> BoxError {
            if token.is_cancelled() && is_cancellation(py, &error) {
                return Box::new(Error::Cancelled);
            }
            let text = describe(py, &error);
            Box::new(PyFailure { error, text })
        })
    });
    ran.unwrap_or_else(|| Err("the Python interpreter is shutting down".into()))
}

/// "ValueError: bad input" (the type's name, then `str(exc)` if not empty).
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let name = error.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "exception".into());
    match error.value(py).str() {
        Ok(s) if !s.to_string().is_empty() => format!("{name}: {s}"),
        _ => name,
    }
}

/// A group of Python tasks (the native half of `nimsync.TaskGroup`).
///
/// `TaskGroup(limit=None, timeout=None, parent=None)`: at most `limit`
/// tasks run at once; the group's token is cancelled `timeout` seconds from
/// now; it is a child of `parent` (a `CancelToken`), so cancelling the parent
/// cancels the group and not the other way round.
#[pyclass(module = "nimsync._native", name = "TaskGroup", frozen)]
pub(crate) struct PyTaskGroup {
    group: TaskGroup,
    token: Py<PyCancelToken>,
}

impl PyTaskGroup {
    /// The core group (for the metrics collector).
    pub(crate) fn core(&self) -> &TaskGroup {
        &self.group
    }
}

#[pymethods]
impl PyTaskGroup {
    #[new]
    #[pyo3(signature = (limit = None, timeout = None, parent = None))]
    fn new(
        py: Python<'_>,
        limit: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        parent: Option<&Bound<'_, PyCancelToken>>,
    ) -> PyResult<Self> {
        check_timeout(timeout)?;
        let mut builder = TaskGroup::builder().scheduler(python_pool()?);
        if let Some(limit) = limit {
            builder = builder.limit(limit_arg(limit)?);
        }
        if let Some(parent) = parent {
            builder = builder.parent(&parent.get().token);
        }
        if let Some(d) = timeout.and_then(|t| Duration::try_from_secs_f64(t).ok()) {
            builder = builder.timeout(d);
        }
        let group = builder.build().map_err(|e| err(py, e))?;
        let token = Py::new(py, PyCancelToken::from(group.token().clone()))?;
        Ok(PyTaskGroup { group, token })
    }

    /// The group's token: cancelled by the first failure, the deadline, the
    /// parent, or `cancel()`. Always the same object.
    #[getter]
    fn token(&self, py: Python<'_>) -> Py<PyCancelToken> {
        self.token.clone_ref(py)
    }

    /// Runs `callable()` as a task of the group on a worker of the task pool;
    /// returns its handle. Its return value lands in the handle; an
    /// exception it raises is recorded and cancels the group.
    fn spawn(&self, callable: Bound<'_, PyAny>) -> PyResult<PyTaskHandle> {
        if !callable.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "spawn() argument must be callable, not {}",
                callable.get_type().name()?
            )));
        }
        let callable = callable.unbind();
        let handle = self.group.spawn(move |token| run_task(callable, token));
        Ok(PyTaskHandle { handle })
    }

    /// Cancels the group's token with reason "cancelled: <message>": tasks
    /// not yet started are skipped, running ones see the token. True the
    /// first time.
    #[pyo3(signature = (message = ""))]
    fn cancel(&self, message: &str) -> bool {
        // The GIL stays held: callbacks registered on the token from Python
        // need it anyway.
        self.group.token().cancel(message)
    }

    /// Waits, with the GIL released, until every task has finished. Returns
    /// `(errors, reason, timed_out, skipped)`: the failed tasks as
    /// `(index, exception)` in spawn order, why the token was cancelled (or
    /// None), whether that was the deadline, and how many tasks never
    /// started. If a signal handler raises (Ctrl-C) — also for a signal that
    /// arrived just before the call — the group is cancelled, every task is
    /// still waited for, and then that exception is raised. With
    /// `interruptible=False` signals are left for later.
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (interruptible = true))]
    fn join(
        &self,
        py: Python<'_>,
        interruptible: bool,
    ) -> PyResult<(Vec<(usize, Py<PyAny>)>, Option<String>, bool, usize)> {
        let group = &self.group;
        let outcome = if !interruptible {
            py.detach(|| group.join())
        } else if let Err(e) = py.check_signals() {
            // A signal whose handler has not run yet would not interrupt the
            // sleep below (it has already been delivered): honour it now.
            group.token().cancel("join ended early: interrupted");
            drop(py.detach(|| group.join()));
            return Err(e);
        } else {
            detached(py, None, None, |opts| group.join_with(opts))?
        };
        let Err(failed) = outcome else {
            return Ok((Vec::new(), None, false, 0));
        };
        let mut errors = Vec::with_capacity(failed.errors.len());
        for e in failed.errors {
            let exc = match e.failure {
                TaskFailure::Failed(boxed) => match boxed.downcast::<PyFailure>() {
                    Ok(f) => f.error.into_value(py).into_any(),
                    Err(other) => {
                        PyRuntimeError::new_err(format!("task {} failed: {other}", e.task)).into_value(py).into_any()
                    }
                },
                TaskFailure::Panicked(m) => {
                    PyRuntimeError::new_err(format!("task {} panicked: {m}", e.task)).into_value(py).into_any()
                }
                _ => PyRuntimeError::new_err(format!("task {} failed", e.task)).into_value(py).into_any(),
            };
            errors.push((e.task, exc));
        }
        let timed_out = matches!(failed.cancelled, Some(CancelReason::DeadlineExceeded));
        Ok((errors, failed.cancelled.map(|r| r.to_string()), timed_out, failed.skipped))
    }

    fn __repr__(&self) -> String {
        format!("<nimsync._native.TaskGroup {:?}>", self.group)
    }
}

/// Checks a concurrency limit: an int of at least 1.
fn limit_arg(limit: &Bound<'_, PyAny>) -> PyResult<usize> {
    if limit.is_instance_of::<pyo3::types::PyBool>() || !limit.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!("limit must be an int or None, not {}", limit.get_type().name()?)));
    }
    if limit.lt(1)? {
        return Err(PyValueError::new_err(format!("invalid argument `limit`: must be at least 1, got {limit}")));
    }
    // Larger than any number of tasks: no limit in effect.
    Ok(limit.extract::<usize>().unwrap_or(usize::MAX))
}

/// The result slot of one task (the native half of `nimsync.TaskHandle`).
#[pyclass(module = "nimsync._native", name = "TaskHandle", frozen)]
pub(crate) struct PyTaskHandle {
    handle: TaskHandle<Py<PyAny>>,
}

#[pymethods]
impl PyTaskHandle {
    /// The task's position in spawn order (0 for the first).
    #[getter]
    fn index(&self) -> usize {
        self.handle.index()
    }

    /// `(True, value)` once the task has returned, `(False, None)` if it
    /// failed, was skipped, is still running, or was taken before.
    fn _take(&self, py: Python<'_>) -> (bool, Py<PyAny>) {
        match self.handle.take() {
            Some(v) => (true, v),
            None => (false, py.None()),
        }
    }

    fn __repr__(&self) -> String {
        format!("<nimsync._native.TaskHandle index={}>", self.handle.index())
    }
}

/// Counters of the pool Python tasks run on, as a dict: `workers` (a list,
/// per worker: `spawned`, `executed`, `stolen_from`, `stolen_by`,
/// `queue_depth`, `parks`, `panics`), and pool-wide `injected`, `spawned`,
/// `executed`, `stolen`, `injector_depth` and `load_imbalance` (the busiest
/// worker's executed count over the mean, minus one; 0 is perfectly even).
/// Reading them takes no lock.
#[pyfunction]
pub(crate) fn scheduler_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let m = python_pool()?.metrics();
    let workers = PyList::empty(py);
    for w in &m.workers {
        let d = PyDict::new(py);
        d.set_item("spawned", w.spawned)?;
        d.set_item("executed", w.executed)?;
        d.set_item("stolen_from", w.stolen_from)?;
        d.set_item("stolen_by", w.stolen_by)?;
        d.set_item("queue_depth", w.queue_depth)?;
        d.set_item("parks", w.parks)?;
        d.set_item("panics", w.panics)?;
        workers.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item("workers", workers)?;
    d.set_item("injected", m.injected)?;
    d.set_item("spawned", m.spawned)?;
    d.set_item("executed", m.executed)?;
    d.set_item("stolen", m.stolen)?;
    d.set_item("injector_depth", m.injector_depth)?;
    d.set_item("load_imbalance", m.load_imbalance)?;
    Ok(d)
}
