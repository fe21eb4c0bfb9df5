//! Async channel operations for event loops: `nimsync_loop_waker_*`,
//! `nimsync_async_op_*`, `nimsync_channel_poll_recv` and
//! `nimsync_channel_poll_send`.
//!
//! An event loop creates one loop waker and watches its file descriptor for
//! readability. Each pending operation is a `nimsync_async_op` made with a
//! token of the caller's choosing. Polling an operation either completes it
//! or returns `NIMSYNC_STATUS_PENDING` after registering it; when it may
//! progress, its token shows up in `nimsync_loop_waker_drain` and the
//! descriptor becomes readable, and the loop polls it again. Nothing polls in
//! between, and the descriptor is written only when a registered operation is
//! woken.

use crate::channel::nimsync_channel;
use crate::status::{arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::{LoopWaker, RecvFuture, SendFuture};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// A readiness file descriptor for one event loop, plus the tokens of the
/// operations woken since the last drain. Thread-safe.
#[allow(non_camel_case_types)]
pub struct nimsync_loop_waker {
    pub(crate) waker: LoopWaker,
}

enum Pending {
    Idle,
    Recv(RecvFuture<usize>),
    Send(SendFuture<usize>),
}

/// One pending async receive or send, identified to its loop by a token.
/// Use an operation from one thread at a time.
#[allow(non_camel_case_types)]
pub struct nimsync_async_op {
    waker: Waker,
    state: Mutex<Pending>,
}

/// Creates a loop waker and stores it in `*out_waker`. Returns
/// `NIMSYNC_STATUS_SYSTEM` if the descriptor cannot be created.
#[no_mangle]
pub extern "C" fn nimsync_loop_waker_new(out_waker: *mut *mut nimsync_loop_waker) -> nimsync_status {
    guard(|| {
        let out_waker = out(out_waker, "out_waker")?;
        let waker = LoopWaker::new().map_err(|e| {
            Fail::new(nimsync_status::System, format!("cannot create the loop waker's descriptor: {e}"))
        })?;
        *out_waker = Box::into_raw(Box::new(nimsync_loop_waker { waker }));
        Ok(())
    })
}

/// Stores in `*out_fd` the descriptor to watch for readability. It belongs
/// to the waker: do not close it.
#[no_mangle]
pub extern "C" fn nimsync_loop_waker_fd(waker: *const nimsync_loop_waker, out_fd: *mut i32) -> nimsync_status {
    guard(|| {
        let w = arg(waker, "waker")?;
        *out(out_fd, "out_fd")? = w.waker.fd();
        Ok(())
    })
}

/// Clears the descriptor and writes up to `capacity` tokens of woken
/// operations into `tokens`, their number into `*out_count`. Tokens that do
/// not fit are kept for the next call, and the descriptor stays readable.
#[no_mangle]
pub extern "C" fn nimsync_loop_waker_drain(
    waker: *const nimsync_loop_waker,
    tokens: *mut u64,
    capacity: libc::size_t,
    out_count: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let w = arg(waker, "waker")?;
        let out_count = out(out_count, "out_count")?;
        if tokens.is_null() && capacity > 0 {
            return Err(Fail::null("tokens"));
        }
        let woken = w.waker.drain();
        let n = woken.len().min(capacity);
        if n > 0 {
            // SAFETY: `tokens` has room for `capacity` >= n values (caller contract).
            unsafe { std::ptr::copy_nonoverlapping(woken.as_ptr(), tokens, n) };
        }
        for &rest in &woken[n..] {
            w.waker.wake(rest);
        }
        *out_count = n;
        Ok(())
    })
}

/// Frees a loop waker. Operations made with it stay valid but are never
/// reported again; free them too. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_loop_waker_free(waker: *mut nimsync_loop_waker) {
    if waker.is_null() {
        return;
    }
    // SAFETY: a non-NULL waker came from `nimsync_loop_waker_new` and is freed once.
    guard_value((), || drop(unsafe { Box::from_raw(waker) }));
}

/// Creates an operation reported to `waker` under `token` and stores it in
/// `*out_op`. One operation serves one receive or one send at a time; after
/// it completes it can be polled for the next one.
#[no_mangle]
pub extern "C" fn nimsync_async_op_new(
    waker: *const nimsync_loop_waker,
    token: u64,
    out_op: *mut *mut nimsync_async_op,
) -> nimsync_status {
    guard(|| {
        let w = arg(waker, "waker")?;
        let out_op = out(out_op, "out_op")?;
        let op = nimsync_async_op { waker: w.waker.waker(token), state: Mutex::new(Pending::Idle) };
        *out_op = Box::into_raw(Box::new(op));
        Ok(())
    })
}

/// Cancels a pending operation and reports what became of a send's item:
/// `*out_unsent` (may be NULL) is set to true when the item was not sent and
/// still belongs to the caller, false when it was sent (or the operation was
/// a receive, or idle). A cancelled receive never loses an item: a wake-up it
/// had received passes to another waiter. The operation can be reused.
#[no_mangle]
pub extern "C" fn nimsync_async_op_cancel(op: *const nimsync_async_op, out_unsent: *mut bool) -> nimsync_status {
    guard(|| {
        let op = arg(op, "op")?;
        let pending = std::mem::replace(&mut *op.state.lock().unwrap_or_else(|e| e.into_inner()), Pending::Idle);
        let unsent = match pending {
            Pending::Send(f) => f.cancel().is_some(),
            Pending::Recv(_) | Pending::Idle => false,
        };
        if !out_unsent.is_null() {
            // SAFETY: non-NULL out-parameter (caller contract).
            unsafe { *out_unsent = unsent };
        }
        Ok(())
    })
}

/// Frees an operation, cancelling it first (see `nimsync_async_op_cancel`:
/// a pending send's item is then not sent). NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_async_op_free(op: *mut nimsync_async_op) {
    if op.is_null() {
        return;
    }
    // SAFETY: a non-NULL op came from `nimsync_async_op_new` and is freed once.
    guard_value((), || drop(unsafe { Box::from_raw(op) }));
}

fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Polls an async receive on `channel` with `op`: `NIMSYNC_STATUS_OK` with
/// the item in `*out_item`, `NIMSYNC_STATUS_PENDING` (poll again when the
/// op's token is drained from its loop waker), or `NIMSYNC_STATUS_CLOSED`
/// once the channel is closed and drained. While pending, keep polling with
/// the same channel.
#[no_mangle]
pub extern "C" fn nimsync_channel_poll_recv(
    channel: *const nimsync_channel,
    op: *const nimsync_async_op,
    out_item: *mut usize,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let op = arg(op, "op")?;
        let out_item = out(out_item, "out_item")?;
        let mut state = op.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut future = match std::mem::replace(&mut *state, Pending::Idle) {
            Pending::Recv(f) => f,
            Pending::Idle => ch.channel.recv_async(),
            Pending::Send(f) => {
                *state = Pending::Send(f);
                return Err(Fail::new(
                    nimsync_status::InvalidArgument,
                    "invalid argument `op`: it has a send pending; cancel it or poll the send".into(),
                ));
            }
        };
        match poll(&mut future, &op.waker) {
            Poll::Ready(r) => {
                *out_item = r?;
                Ok(())
            }
            Poll::Pending => {
                *state = Pending::Recv(future);
                Err(pending())
            }
        }
    })
}

/// Polls an async send of `item` on `channel` with `op`: `NIMSYNC_STATUS_OK`
/// once sent, `NIMSYNC_STATUS_PENDING` (poll again, with the same item, when
/// the op's token is drained), or `NIMSYNC_STATUS_CLOSED` (the item stays
/// with the caller). While pending the item is not sent yet; cancelling
/// reports whether it was.
#[no_mangle]
pub extern "C" fn nimsync_channel_poll_send(
    channel: *const nimsync_channel,
    op: *const nimsync_async_op,
    item: usize,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let op = arg(op, "op")?;
        let mut state = op.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut future = match std::mem::replace(&mut *state, Pending::Idle) {
            Pending::Send(f) => f,
            Pending::Idle => ch.channel.send_async(item),
            Pending::Recv(f) => {
                *state = Pending::Recv(f);
                return Err(Fail::new(
                    nimsync_status::InvalidArgument,
                    "invalid argument `op`: it has a receive pending; cancel it or poll the receive".into(),
                ));
            }
        };
        match poll(&mut future, &op.waker) {
            Poll::Ready(r) => r.map_err(|e| e.error.into()),
            Poll::Pending => {
                *state = Pending::Send(future);
                Err(pending())
            }
        }
    })
}

fn pending() -> Fail {
    Fail::pending()
}
