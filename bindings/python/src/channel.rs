//! `nimsync._native.Channel`: a core channel of Python objects.

use crate::aio::{PyJoinOp, PyLoopWaker, PyRecvOp, PySendOp};
use crate::blocking::{check_timeout, checked_deadline, detached};
use crate::cancel::{cancel_arg, token_for, PyCancelToken};
use crate::errors::{err, to_py, wait_failed};
use nimsync_core::{CancelToken, Channel, Error, Mode, SendError, WaitGroup};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::time::Instant;

/// A channel carrying any Python object between threads (and, through
/// `Channel.aio`, coroutines), with blocking calls that release the GIL.
///
/// `Channel(capacity, mode="mpmc")`: `capacity` is rounded up to a power of
/// two; `0` with mode `"mpmc"` is a rendezvous channel; `None` is unbounded.
/// `mode` is `"spsc"`, `"mpsc"`, `"spmc"` or `"mpmc"`: how many threads may
/// send and receive at the same moment.
///
/// Every blocking method takes `cancel=` (a `CancelToken`); without it, it
/// waits under the token of the enclosing `nimsync.cancel_scope` or
/// `nimsync.timeout` block, if any.
#[pyclass(module = "nimsync._native", name = "Channel", subclass, frozen)]
pub(crate) struct PyChannel {
    pub(crate) channel: Channel<Py<PyAny>>,
    /// Items put and not yet marked done (`task_done`/`join`).
    pub(crate) tasks: WaitGroup,
}

fn capacity_arg(capacity: &Bound<'_, PyAny>) -> PyResult<usize> {
    if capacity.is_instance_of::<pyo3::types::PyBool>() || !capacity.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "capacity must be an int or None, not {}",
            capacity.get_type().name()?
        )));
    }
    match capacity.extract::<i64>() {
        Ok(c) if c < 0 => {
            Err(PyValueError::new_err(format!("invalid argument `capacity`: must not be negative, got {c}")))
        }
        Ok(c) => Ok(c as usize),
        Err(_) => Err(PyValueError::new_err(format!(
            "invalid argument `capacity`: {capacity} exceeds the maximum of {}",
            nimsync_core::MAX_CAPACITY
        ))),
    }
}

impl PyChannel {
    /// Sends, counting the item as an unfinished task; hands the item back in
    /// the exception on failure. A deadline that passes raises `Timeout`, or
    /// `ChannelFull` with `full_on_timeout` (`queue.Queue.put`); a cancel
    /// token (`cancel`, else the ambient one) that fires raises `Cancelled`
    /// or `Timeout`.
    fn send_impl(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        timeout: Option<f64>,
        full_on_timeout: bool,
        cancel: Option<&Bound<'_, PyCancelToken>>,
    ) -> PyResult<()> {
        check_timeout(timeout)?;
        self.tasks.add(1);
        match self.channel.try_send(item) {
            Ok(()) => Ok(()),
            Err(SendError { error: Error::Full, value }) => {
                let timeout_error = if full_on_timeout { Error::Full } else { Error::Timeout };
                self.send_wait(py, value, checked_deadline(timeout), timeout_error, cancel)
            }
            Err(e) => {
                self.untask();
                Err(to_py(py, e.error, Some(e.value)))
            }
        }
    }

    /// The slow path of `send_impl`: the channel was full.
    #[inline(never)]
    fn send_wait(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        deadline: Option<Instant>,
        timeout_error: Error,
        cancel: Option<&Bound<'_, PyCancelToken>>,
    ) -> PyResult<()> {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            self.untask();
            return Err(to_py(py, timeout_error, Some(item)));
        }
        // The slow path: only now look for the ambient cancel token.
        let token = match token_for(py, cancel) {
            Ok(token) => token,
            Err(e) => {
                self.untask();
                return Err(e);
            }
        };
        let ch = &self.channel;
        // The task count is settled where the outcome is known: a send that an
        // interrupt ends is not counted, one that completed is.
        let sent =
            detached(py, deadline, token.as_ref(), |opts| ch.send_with(item, opts).inspect_err(|_| self.untask()))?;
        sent.map_err(|e| wait_failed(py, e.error, token.as_ref(), timeout_error, Some(e.value)))
    }

    /// Receives; a deadline that passes raises `Timeout`, or `ChannelEmpty`
    /// with `empty_on_timeout` (`queue.Queue.get`); a cancel token that fires
    /// raises `Cancelled` or `Timeout`.
    #[inline]
    fn recv_impl(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        empty_on_timeout: bool,
        cancel: Option<&Bound<'_, PyCancelToken>>,
    ) -> PyResult<Py<PyAny>> {
        check_timeout(timeout)?;
        match self.channel.try_recv() {
            Ok(item) => Ok(item),
            Err(Error::Empty) => {
                let timeout_error = if empty_on_timeout { Error::Empty } else { Error::Timeout };
                self.recv_wait(py, checked_deadline(timeout), cancel)?
                    .map_err(|(e, token)| wait_failed(py, e, token.as_ref(), timeout_error, None))
            }
            Err(e) => Err(err(py, e)),
        }
    }

    /// The slow path of a receive (the channel was empty): waits until
    /// `deadline` (None: forever) or until the cancel token (`cancel`, else
    /// the ambient one) fires. The outer error is a signal handler's
    /// exception (or a bad token), the inner one the core's, with the token
    /// the receive waited under.
    #[inline(never)]
    fn recv_wait(
        &self,
        py: Python<'_>,
        deadline: Option<Instant>,
        cancel: Option<&Bound<'_, PyCancelToken>>,
    ) -> PyResult<WaitOutcome> {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Err((Error::Timeout, None)));
        }
        let token = token_for(py, cancel)?;
        let ch = &self.channel;
        let received = detached(py, deadline, token.as_ref(), |opts| ch.recv_with(opts))?;
        Ok(received.map_err(|e| (e, token)))
    }

    /// Undoes the task count of a send that did not happen.
    pub(crate) fn untask(&self) {
        let _ = self.tasks.done();
    }
}

/// What a blocking receive ends with once no signal handler interfered: the
/// item, or the core's error with the token the wait watched.
type WaitOutcome = Result<Py<PyAny>, (Error, Option<CancelToken>)>;

#[pymethods]
impl PyChannel {
    #[new]
    #[pyo3(signature = (capacity, mode = "mpmc"))]
    fn new(capacity: Option<&Bound<'_, PyAny>>, mode: &str) -> PyResult<Self> {
        let mode = Mode::from_name(mode).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let channel = match capacity {
            None if mode == Mode::Mpmc => Channel::unbounded(),
            None => {
                return Err(PyValueError::new_err(format!(
                    "invalid argument `capacity`: None (unbounded) needs mode \"mpmc\", not {:?}",
                    mode.name()
                )))
            }
            Some(c) => Channel::new(capacity_arg(c)?, mode).map_err(|e| match e {
                Error::OutOfMemory(_) => pyo3::exceptions::PyMemoryError::new_err(e.to_string()),
                e => PyValueError::new_err(e.to_string()),
            })?,
        };
        Ok(PyChannel { channel, tasks: WaitGroup::new() })
    }

    /// Sends `item`, waiting while the channel is full (at most `timeout`
    /// seconds; None waits forever), or until the `cancel` token (default:
    /// the enclosing cancel scope's) fires. Raises `ChannelClosed`,
    /// `Timeout`, `Cancelled` or `ChannelBusy`; the exception's `value` is
    /// the item.
    ///
    /// ```python
    /// try:
    ///     ch.send(job, cancel=token)
    /// except nimsync.Cancelled as exc:
    ///     requeue(exc.value)        # the job, not sent
    /// ```
    #[pyo3(signature = (item, timeout = None, *, cancel = None))]
    fn send(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        timeout: Option<f64>,
        cancel: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.send_impl(py, item, timeout, false, cancel_arg(cancel)?)
    }

    /// Receives an item, waiting while the channel is empty (at most
    /// `timeout` seconds), or until the `cancel` token (default: the
    /// enclosing cancel scope's) fires. Raises `ChannelClosed` once closed
    /// and drained, `Timeout` or `Cancelled`.
    ///
    /// ```python
    /// item = ch.recv(cancel=token)
    /// ```
    #[pyo3(signature = (timeout = None, *, cancel = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>, cancel: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, timeout, false, cancel_arg(cancel)?)
    }

    /// Sends without waiting; raises `ChannelFull`, `ChannelClosed` or
    /// `ChannelBusy` with the item as `value`.
    fn try_send(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.tasks.add(1);
        self.channel.try_send(item).map_err(|e| {
            self.untask();
            to_py(py, e.error, Some(e.value))
        })
    }

    /// Receives without waiting; raises `ChannelEmpty` or `ChannelClosed`.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.channel.try_recv().map_err(|e| err(py, e))
    }

    /// `queue.Queue.put`: with `block` false, or when `timeout` runs out,
    /// raises `ChannelFull` (a `queue.Full`); a `cancel` token that fires
    /// raises `Cancelled` (or `Timeout`).
    #[pyo3(signature = (item, block = true, timeout = None, *, cancel = None))]
    fn put(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        block: bool,
        timeout: Option<f64>,
        cancel: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.send_impl(py, item, if block { timeout } else { Some(0.0) }, true, cancel_arg(cancel)?)
    }

    /// `queue.Queue.get`: with `block` false, or when `timeout` runs out,
    /// raises `ChannelEmpty` (a `queue.Empty`); a `cancel` token that fires
    /// raises `Cancelled` (or `Timeout`).
    #[pyo3(signature = (block = true, timeout = None, *, cancel = None))]
    fn get(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        cancel: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, if block { timeout } else { Some(0.0) }, true, cancel_arg(cancel)?)
    }

    /// `queue.Queue.put_nowait`.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.send_impl(py, item, Some(0.0), true, None)
    }

    /// `queue.Queue.get_nowait`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, Some(0.0), true, None)
    }

    /// Receives without waiting, returning `default` instead of raising when
    /// the channel is empty (a fast path for the asyncio face).
    #[pyo3(signature = (default))]
    fn _try_recv_or(&self, py: Python<'_>, default: Py<PyAny>) -> PyResult<Py<PyAny>> {
        match self.channel.try_recv() {
            Ok(v) => Ok(v),
            Err(Error::Empty) => Ok(default),
            Err(e) => Err(err(py, e)),
        }
    }

    /// Sends without waiting, returning False instead of raising when the
    /// channel is full (a fast path for the asyncio face).
    fn _try_send_or_full(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<bool> {
        self.tasks.add(1);
        match self.channel.try_send(item) {
            Ok(()) => Ok(true),
            Err(SendError { error: Error::Full, .. }) => {
                self.untask();
                Ok(false)
            }
            Err(e) => {
                self.untask();
                Err(to_py(py, e.error, Some(e.value)))
            }
        }
    }

    /// Marks one item taken from the channel as processed (`queue.Queue`).
    /// Raises ValueError if called more times than items were put.
    fn task_done(&self) -> PyResult<()> {
        self.tasks.done().map_err(|_| PyValueError::new_err("task_done() called too many times"))
    }

    /// Blocks until every item put has been marked with `task_done`, or
    /// until the `cancel` token (default: the enclosing cancel scope's)
    /// fires (`Cancelled`, or `Timeout` for a deadline).
    #[pyo3(signature = (*, cancel = None))]
    fn join(&self, py: Python<'_>, cancel: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let cancel = cancel_arg(cancel)?;
        let tasks = &self.tasks;
        if tasks.count() == 0 {
            return Ok(());
        }
        let token = token_for(py, cancel)?;
        detached(py, None, token.as_ref(), |opts| tasks.wait_with(opts))?
            .map_err(|e| wait_failed(py, e, token.as_ref(), Error::Timeout, None))
    }

    /// Closes the channel: later sends raise `ChannelClosed`, blocked
    /// senders and receivers wake, receivers get what is left and then
    /// `ChannelClosed`. Returns False if it was already closed.
    fn close(&self) -> bool {
        self.channel.close()
    }

    /// Whether `close` was called.
    fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// True when no item is inside.
    fn is_empty(&self) -> bool {
        self.channel.is_empty()
    }

    /// True when every slot is taken (never for an unbounded channel).
    fn is_full(&self) -> bool {
        !self.channel.is_unbounded() && self.channel.is_full()
    }

    /// `queue.Queue.qsize`: items inside right now.
    fn qsize(&self) -> usize {
        self.channel.len()
    }

    /// `queue.Queue.empty`.
    fn empty(&self) -> bool {
        self.channel.is_empty()
    }

    /// `queue.Queue.full`.
    fn full(&self) -> bool {
        self.is_full()
    }

    /// `queue.Queue.maxsize`: the capacity, or 0 for an unbounded channel.
    #[getter]
    fn maxsize(&self) -> usize {
        if self.channel.is_unbounded() {
            0
        } else {
            self.channel.capacity()
        }
    }

    /// Slots in the channel (the requested capacity rounded up to a power of
    /// two); None for an unbounded channel.
    #[getter]
    fn capacity(&self) -> Option<usize> {
        (!self.channel.is_unbounded()).then(|| self.channel.capacity())
    }

    /// `(senders, receivers)`: how many threads (and awaiting operations) are
    /// waiting in `send` and in `recv` right now. For diagnostics and tests.
    fn _waiting(&self) -> (usize, usize) {
        self.channel.waiting()
    }

    /// The mode's name: "spsc", "mpsc", "spmc" or "mpmc".
    #[getter]
    fn mode(&self) -> &'static str {
        self.channel.mode().name()
    }

    fn __len__(&self) -> usize {
        self.channel.len()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Blocks for the next item; the iteration ends when the channel is
    /// closed and drained. Waits under the enclosing cancel scope's token.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let received = match self.channel.try_recv() {
            Err(Error::Empty) => self.recv_wait(py, None, None)?,
            done => done.map_err(|e| (e, None)),
        };
        match received {
            Ok(item) => Ok(Some(item)),
            Err((Error::Closed, _)) => Ok(None),
            Err((e, token)) => Err(wait_failed(py, e, token.as_ref(), Error::Timeout, None)),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Closes the channel when the `with` block ends.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.channel.close();
        false
    }

    fn __repr__(&self) -> String {
        let capacity =
            if self.channel.is_unbounded() { "None".to_string() } else { self.channel.capacity().to_string() };
        format!(
            "<nimsync.Channel mode={:?} capacity={} len={}{}>",
            self.channel.mode().name(),
            capacity,
            self.channel.len(),
            if self.channel.is_closed() { " closed" } else { "" }
        )
    }

    /// An async receive driven by `waker` under `token` (used by the asyncio face).
    fn _recv_op(&self, waker: &PyLoopWaker, token: u64) -> PyRecvOp {
        PyRecvOp::new(self.channel.recv_async(), waker.waker(token))
    }

    /// An async send of `item` driven by `waker` under `token`.
    fn _send_op(slf: Py<Self>, item: Py<PyAny>, waker: &PyLoopWaker, token: u64) -> PySendOp {
        let future = {
            let this = slf.get();
            this.tasks.add(1);
            this.channel.send_async(item)
        };
        PySendOp::new(slf, future, waker.waker(token))
    }

    /// An async wait for `join`, driven by `waker` under `token`.
    fn _join_op(&self, waker: &PyLoopWaker, token: u64) -> PyJoinOp {
        PyJoinOp::new(self.tasks.wait_async(), waker.waker(token))
    }
}
