//! The native half of the asyncio face: the loop waker and pollable
//! operations. `python/nimsync/_aio.py` registers the waker's descriptor
//! with `loop.add_reader`, drains the tokens it reports, and polls the
//! operations they name.

use crate::channel::PyChannel;
use crate::errors::{err, to_py};
use nimsync_core::{LoopWaker, RecvFuture, SendFuture, WaitGroupFuture};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// A readiness descriptor for one event loop: readable when an operation
/// made with it may progress; `drain()` says which (by token).
#[pyclass(module = "nimsync._native", name = "LoopWaker", frozen)]
pub(crate) struct PyLoopWaker {
    waker: LoopWaker,
}

impl PyLoopWaker {
    pub(crate) fn waker(&self, token: u64) -> Waker {
        self.waker.waker(token)
    }
}

#[pymethods]
impl PyLoopWaker {
    #[new]
    fn new() -> PyResult<Self> {
        LoopWaker::new()
            .map(|waker| PyLoopWaker { waker })
            .map_err(|e| PyOSError::new_err(format!("cannot create the loop waker's descriptor: {e}")))
    }

    /// The descriptor to watch for readability (owned by the waker).
    fn fileno(&self) -> i32 {
        self.waker.fd()
    }

    /// Clears the descriptor; returns the tokens woken since the last call.
    fn drain(&self) -> Vec<u64> {
        self.waker.drain()
    }
}

/// A pending async receive.
#[pyclass(module = "nimsync._native", name = "RecvOp", frozen)]
pub(crate) struct PyRecvOp {
    future: Mutex<Option<RecvFuture<Py<PyAny>>>>,
    waker: Waker,
}

impl PyRecvOp {
    pub(crate) fn new(future: RecvFuture<Py<PyAny>>, waker: Waker) -> Self {
        PyRecvOp { future: Mutex::new(Some(future)), waker }
    }
}

#[pymethods]
impl PyRecvOp {
    /// `(True, item)` when received, `(False, None)` while pending; raises
    /// `ChannelClosed` once the channel is closed and drained.
    fn poll(&self, py: Python<'_>) -> PyResult<(bool, Option<Py<PyAny>>)> {
        let mut slot = locked(&self.future);
        let Some(future) = slot.as_mut() else {
            return Ok((true, None));
        };
        match poll_once(future, &self.waker) {
            Poll::Pending => Ok((false, None)),
            Poll::Ready(r) => {
                *slot = None;
                r.map(|v| (true, Some(v))).map_err(|e| err(py, e))
            }
        }
    }

    /// Abandons the receive; a wake-up it had received passes to another
    /// waiter, so no item is lost.
    fn cancel(&self) {
        locked(&self.future).take();
    }
}

/// A pending async send.
#[pyclass(module = "nimsync._native", name = "SendOp", frozen)]
pub(crate) struct PySendOp {
    channel: Py<PyChannel>,
    future: Mutex<Option<SendFuture<Py<PyAny>>>>,
    waker: Waker,
}

impl PySendOp {
    pub(crate) fn new(channel: Py<PyChannel>, future: SendFuture<Py<PyAny>>, waker: Waker) -> Self {
        PySendOp { channel, future: Mutex::new(Some(future)), waker }
    }
}

#[pymethods]
impl PySendOp {
    /// True when sent, False while pending; raises `ChannelClosed` (or
    /// `ChannelBusy`) with the item as `value`.
    fn poll(&self, py: Python<'_>) -> PyResult<bool> {
        let mut slot = locked(&self.future);
        let Some(future) = slot.as_mut() else {
            return Ok(true);
        };
        match poll_once(future, &self.waker) {
            Poll::Pending => Ok(false),
            Poll::Ready(r) => {
                *slot = None;
                r.map(|()| true).map_err(|e| {
                    self.channel.get().untask();
                    to_py(py, e.error, Some(e.value))
                })
            }
        }
    }

    /// Abandons the send. True if this withdrew the item unsent; False if
    /// there was nothing to withdraw (it was sent, or the operation had
    /// already finished). The item itself is still the caller's reference.
    fn cancel(&self) -> bool {
        let Some(future) = locked(&self.future).take() else {
            return false;
        };
        let unsent = future.cancel();
        if unsent.is_some() {
            self.channel.get().untask();
        }
        unsent.is_some()
    }
}

/// A pending async `join`.
#[pyclass(module = "nimsync._native", name = "JoinOp", frozen)]
pub(crate) struct PyJoinOp {
    future: Mutex<Option<WaitGroupFuture>>,
    waker: Waker,
}

impl PyJoinOp {
    pub(crate) fn new(future: WaitGroupFuture, waker: Waker) -> Self {
        PyJoinOp { future: Mutex::new(Some(future)), waker }
    }
}

#[pymethods]
impl PyJoinOp {
    /// True once every item put has been marked done.
    fn poll(&self) -> bool {
        let mut slot = locked(&self.future);
        match slot.as_mut().map(|f| poll_once(f, &self.waker)) {
            None | Some(Poll::Ready(())) => {
                *slot = None;
                true
            }
            Some(Poll::Pending) => false,
        }
    }

    /// Abandons the wait.
    fn cancel(&self) {
        locked(&self.future).take();
    }
}
