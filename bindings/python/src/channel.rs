//! `nimsync._native.Channel`: a core channel of Python objects.

use crate::aio::{PyJoinOp, PyLoopWaker, PyRecvOp, PySendOp};
use crate::blocking::{deadline, detached};
use crate::errors::{err, to_py};
use nimsync_core::{Channel, Error, Mode, SendError, WaitGroup};
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
    /// `ChannelFull` with `full_on_timeout` (`queue.Queue.put`).
    fn send_impl(&self, py: Python<'_>, item: Py<PyAny>, timeout: Option<f64>, full_on_timeout: bool) -> PyResult<()> {
        let deadline = deadline(timeout)?;
        let timeout_error = if full_on_timeout { Error::Full } else { Error::Timeout };
        self.tasks.add(1);
        let item = match self.channel.try_send(item) {
            Ok(()) => return Ok(()),
            Err(SendError { error: Error::Full, value }) => value,
            Err(e) => {
                self.untask();
                return Err(to_py(py, e.error, Some(e.value)));
            }
        };
        if deadline.is_some_and(|d| d <= Instant::now()) {
            self.untask();
            return Err(to_py(py, timeout_error, Some(item)));
        }
        let ch = &self.channel;
        // The task count is settled where the outcome is known: a send that an
        // interrupt ends is not counted, one that completed is.
        let sent = detached(py, deadline, |opts| ch.send_with(item, opts).inspect_err(|_| self.untask()))?;
        sent.map_err(|e| {
            let error = if e.error == Error::Timeout { timeout_error } else { e.error };
            to_py(py, error, Some(e.value))
        })
    }

    /// Receives, waiting until `deadline` (None: forever). The outer error is
    /// a signal handler's exception, the inner one the core's.
    fn recv_until(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Result<Py<PyAny>, Error>> {
        match self.channel.try_recv() {
            Err(Error::Empty) => {}
            done => return Ok(done),
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Err(Error::Timeout));
        }
        let ch = &self.channel;
        detached(py, deadline, |opts| ch.recv_with(opts))
    }

    /// Receives; a deadline that passes raises `Timeout`, or `ChannelEmpty`
    /// with `empty_on_timeout` (`queue.Queue.get`).
    fn recv_impl(&self, py: Python<'_>, timeout: Option<f64>, empty_on_timeout: bool) -> PyResult<Py<PyAny>> {
        let deadline = deadline(timeout)?;
        self.recv_until(py, deadline)?.map_err(|e| match e {
            Error::Timeout if empty_on_timeout => err(py, Error::Empty),
            e => err(py, e),
        })
    }

    /// Undoes the task count of a send that did not happen.
    pub(crate) fn untask(&self) {
        let _ = self.tasks.done();
    }
}

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
    /// seconds; None waits forever). Raises `ChannelClosed`, `Timeout` or
    /// `ChannelBusy`; the exception's `value` is the item.
    #[pyo3(signature = (item, timeout = None))]
    fn send(&self, py: Python<'_>, item: Py<PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.send_impl(py, item, timeout, false)
    }

    /// Receives an item, waiting while the channel is empty (at most
    /// `timeout` seconds). Raises `ChannelClosed` once closed and drained, or
    /// `Timeout`.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, timeout, false)
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
    /// raises `ChannelFull` (a `queue.Full`).
    #[pyo3(signature = (item, block = true, timeout = None))]
    fn put(&self, py: Python<'_>, item: Py<PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.send_impl(py, item, if block { timeout } else { Some(0.0) }, true)
    }

    /// `queue.Queue.get`: with `block` false, or when `timeout` runs out,
    /// raises `ChannelEmpty` (a `queue.Empty`).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, if block { timeout } else { Some(0.0) }, true)
    }

    /// `queue.Queue.put_nowait`.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.send_impl(py, item, Some(0.0), true)
    }

    /// `queue.Queue.get_nowait`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.recv_impl(py, Some(0.0), true)
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

    /// Blocks until every item put has been marked with `task_done`.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let tasks = &self.tasks;
        detached(py, None, |opts| tasks.wait_with(opts))?.map_err(|e| err(py, e))
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
    /// closed and drained.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_until(py, None)? {
            Ok(item) => Ok(Some(item)),
            Err(Error::Closed) => Ok(None),
            Err(e) => Err(err(py, e)),
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
