//! `nimsync_channel_*`: bounded channels of `uintptr_t` items.

use crate::cancel::{nimsync_cancel_token, token_opt, wait_fail};
use crate::status::{arc_clone, arc_free, arg, guard, nimsync_status, out, Fail};
use nimsync_core::{CancelToken, Channel, Mode, WaitOptions};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pass as a `timeout_ns` to wait without limit.
pub const NIMSYNC_WAIT_FOREVER: u64 = u64::MAX;

/// The wait of a `timeout_ns` argument, watching `token` if there is one.
pub(crate) fn wait_options(timeout_ns: u64, token: Option<&CancelToken>) -> WaitOptions<'_> {
    let deadline = match timeout_ns {
        NIMSYNC_WAIT_FOREVER => None,
        ns => Instant::now().checked_add(Duration::from_nanos(ns)),
    };
    let opts = WaitOptions::new().deadline_opt(deadline);
    match token {
        Some(token) => opts.cancel(token),
        None => opts,
    }
}

/// Channel modes for `nimsync_channel_new`: how many threads may use each
/// side at the same moment.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nimsync_channel_mode {
    /// One sender and one receiver at a time (a cached-index ring).
    Spsc = 0,
    /// Any number of senders, one receiver at a time (a bounded array queue
    /// with per-slot stamps).
    Mpsc = 1,
    /// One sender at a time, any number of receivers (the stamped array queue).
    Spmc = 2,
    /// Any number of senders and receivers (the stamped array queue).
    Mpmc = 3,
}

/// Called with each item still inside a channel when its last handle is
/// freed, and with `drop_ctx` as given to `nimsync_channel_new`. It runs on
/// the thread that frees the last handle and must not call back into the
/// channel being freed.
#[allow(non_camel_case_types)]
pub type nimsync_drop_fn = Option<unsafe extern "C" fn(item: usize, ctx: *mut c_void)>;

struct DropHook {
    callback: unsafe extern "C" fn(usize, *mut c_void),
    ctx: *mut c_void,
}

// SAFETY: the C caller gives the context to a library that documents freeing
// from any thread; using it from the freeing thread is the contract.
unsafe impl Send for DropHook {}
// SAFETY: as above; the hook is only called, never mutated.
unsafe impl Sync for DropHook {}

/// A channel of `uintptr_t` items (integers, or pointers the caller owns).
///
/// Create with `nimsync_channel_new`, share between threads freely (every
/// function is thread-safe; the mode limits how many threads may send or
/// receive *at the same moment*), take extra references with
/// `nimsync_channel_clone`, and release each reference with
/// `nimsync_channel_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_channel {
    pub(crate) channel: Channel<usize>,
    on_drop: Option<DropHook>,
}

impl Drop for nimsync_channel {
    fn drop(&mut self) {
        // The last reference is going away: nobody else can use the channel,
        // so draining it here hands over every unreceived item exactly once.
        let leftovers: Vec<usize> = self.channel.drain().collect();
        if let Some(hook) = &self.on_drop {
            for item in leftovers {
                // SAFETY: the function pointer and context come from the caller
                // of `nimsync_channel_new`, who vouched for them.
                unsafe { (hook.callback)(item, hook.ctx) };
            }
        }
    }
}

fn mode_from(mode: u32) -> Result<Mode, Fail> {
    Mode::ALL.get(mode as usize).copied().ok_or_else(|| {
        Fail::new(
            nimsync_status::InvalidArgument,
            format!(
                "invalid argument `mode`: {mode} is not a nimsync_channel_mode \
                 (0 = SPSC, 1 = MPSC, 2 = SPMC, 3 = MPMC)"
            ),
        )
    })
}

fn mode_to(mode: Mode) -> u32 {
    // The C constants follow the order of `Mode::ALL`.
    Mode::ALL.iter().position(|&m| m == mode).map_or(u32::MAX, |i| i as u32)
}

/// Creates a channel holding at least `capacity` items (rounded up to a power
/// of two) in the given `mode` (a `nimsync_channel_mode` value), and stores
/// the handle in `*out`. A capacity of 0 with `NIMSYNC_CHANNEL_MODE_MPMC`
/// makes a rendezvous channel: a send completes when a receiver takes the
/// item.
///
/// `drop_fn` (may be NULL) receives the items still inside when the last
/// handle is freed, together with `drop_ctx`.
///
/// Returns `NIMSYNC_STATUS_NULL_ARGUMENT` if `out` is NULL;
/// `NIMSYNC_STATUS_INVALID_ARGUMENT` for a capacity of 0 in a mode other
/// than MPMC, above 2^30, or a negative number converted to `size_t`, or an
/// unknown mode;
/// `NIMSYNC_STATUS_OUT_OF_MEMORY` if the slots cannot be allocated.
/// `*out` is left untouched on failure.
///
/// ```c
/// nimsync_channel *ch;
/// if (nimsync_channel_new(1024, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch) != NIMSYNC_STATUS_OK)
///     fprintf(stderr, "%s\n", nimsync_last_error_message());
/// ```
#[no_mangle]
pub extern "C" fn nimsync_channel_new(
    capacity: libc::size_t,
    mode: u32,
    drop_fn: nimsync_drop_fn,
    drop_ctx: *mut c_void,
    out_channel: *mut *mut nimsync_channel,
) -> nimsync_status {
    guard(|| {
        let out_channel = out(out_channel, "out_channel")?;
        let mode = mode_from(mode)?;
        let channel = Channel::new(capacity, mode)?;
        let on_drop = drop_fn.map(|callback| DropHook { callback, ctx: drop_ctx });
        let handle = Arc::new(nimsync_channel { channel, on_drop });
        *out_channel = Arc::into_raw(handle).cast_mut();
        Ok(())
    })
}

/// Creates an unbounded MPMC channel (a linked list of blocks): sends never
/// wait and fail only after close; `nimsync_channel_capacity` reports
/// `SIZE_MAX`. `drop_fn`/`drop_ctx` as for `nimsync_channel_new`.
#[no_mangle]
pub extern "C" fn nimsync_channel_new_unbounded(
    drop_fn: nimsync_drop_fn,
    drop_ctx: *mut c_void,
    out_channel: *mut *mut nimsync_channel,
) -> nimsync_status {
    guard(|| {
        let out_channel = out(out_channel, "out_channel")?;
        let on_drop = drop_fn.map(|callback| DropHook { callback, ctx: drop_ctx });
        let handle = Arc::new(nimsync_channel { channel: Channel::unbounded(), on_drop });
        *out_channel = Arc::into_raw(handle).cast_mut();
        Ok(())
    })
}

/// Takes another reference to `channel` and stores it in `*out_channel`. Each
/// reference is released with its own `nimsync_channel_free`; the channel (and
/// its drop callback) goes away with the last one.
#[no_mangle]
pub extern "C" fn nimsync_channel_clone(
    channel: *const nimsync_channel,
    out_channel: *mut *mut nimsync_channel,
) -> nimsync_status {
    guard(|| arc_clone(channel, "channel", out_channel, "out_channel"))
}

/// Releases one reference to a channel. When it was the last, the items still
/// inside go to the drop callback and the memory is freed. NULL is ignored.
/// Using the handle afterwards, or freeing it twice, is undefined behaviour.
#[no_mangle]
pub extern "C" fn nimsync_channel_free(channel: *mut nimsync_channel) {
    arc_free(channel);
}

// The item functions try the operation once inline, with no error
// reporting, and fall back to an out-of-line path for everything else (NULL
// arguments, a full or empty channel, close, waiting): the common case then
// costs one call with a small frame, close to the core's inlined fast path.

/// Runs a fast path; a panic counts as "not done", and the slow path that
/// follows reports it properly.
#[inline(always)]
fn fast<R>(body: impl FnOnce() -> Option<R>) -> Option<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).ok().flatten()
}

/// Borrows a handle if it is not NULL (the slow path reports NULL).
#[inline(always)]
fn live<'a>(channel: *const nimsync_channel) -> Option<&'a nimsync_channel> {
    // SAFETY: as for `arg`: non-NULL handles are live (caller contract).
    unsafe { channel.as_ref() }
}

/// Receives an item that is there right now into `*out_item`.
#[inline(always)]
fn recv_fast(channel: *const nimsync_channel, out_item: *mut usize) -> bool {
    fast(|| {
        if out_item.is_null() {
            return None;
        }
        let item = live(channel)?.channel.take()?;
        // SAFETY: `out_item` is non-NULL and points to writable memory
        // (caller contract, as for `out`).
        unsafe { *out_item = item };
        Some(())
    })
    .is_some()
}

/// Sends `item` without blocking. Returns `NIMSYNC_STATUS_FULL`,
/// `NIMSYNC_STATUS_CLOSED` or `NIMSYNC_STATUS_BUSY` if it could not; the item
/// then stays with the caller.
#[no_mangle]
pub extern "C" fn nimsync_channel_try_send(channel: *const nimsync_channel, item: usize) -> nimsync_status {
    if fast(|| Some(live(channel)?.channel.offer(item).is_ok())) == Some(true) {
        return nimsync_status::Ok;
    }
    try_send_slow(channel, item)
}

#[cold]
#[inline(never)]
fn try_send_slow(channel: *const nimsync_channel, item: usize) -> nimsync_status {
    guard(|| arg(channel, "channel")?.channel.try_send(item).map_err(|e| e.error.into()))
}

/// Sends `item`, blocking while the channel is full. Returns
/// `NIMSYNC_STATUS_CLOSED` if the channel is or becomes closed (the item stays
/// with the caller).
#[no_mangle]
pub extern "C" fn nimsync_channel_send(channel: *const nimsync_channel, item: usize) -> nimsync_status {
    if fast(|| Some(live(channel)?.channel.offer(item).is_ok())) == Some(true) {
        return nimsync_status::Ok;
    }
    send_slow(channel, item)
}

#[cold]
#[inline(never)]
fn send_slow(channel: *const nimsync_channel, item: usize) -> nimsync_status {
    guard(|| arg(channel, "channel")?.channel.send(item).map_err(|e| e.error.into()))
}

/// Sends `item`, blocking at most `timeout_ns` nanoseconds
/// (`NIMSYNC_WAIT_FOREVER` waits without limit). Returns
/// `NIMSYNC_STATUS_TIMEOUT` when the time runs out (the item stays with the
/// caller); a timeout of 0 behaves like `nimsync_channel_try_send` but
/// reports `TIMEOUT` instead of `FULL`.
#[no_mangle]
pub extern "C" fn nimsync_channel_send_timeout(
    channel: *const nimsync_channel,
    item: usize,
    timeout_ns: u64,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        ch.channel.send_with(item, &wait_options(timeout_ns, None)).map_err(|e| e.error.into())
    })
}

/// Sends `item` like `nimsync_channel_send_timeout`, and also gives up as
/// soon as `token` (may be NULL: no token) is cancelled: with
/// `NIMSYNC_STATUS_CANCELLED` (the message has the cancel message), or
/// `NIMSYNC_STATUS_TIMEOUT` when a deadline cancelled it
/// (`nimsync_cancel_token_with_timeout`). On every failure the item stays
/// with the caller.
///
/// The token is consulted when the send has to wait: a send that can
/// complete at once completes even if the token is already cancelled (check
/// it with `nimsync_cancel_token_check` first to refuse that).
///
/// ```c
/// nimsync_status s = nimsync_channel_send_with(ch, item, NIMSYNC_WAIT_FOREVER, job);
/// if (s == NIMSYNC_STATUS_CANCELLED) release(item);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_channel_send_with(
    channel: *const nimsync_channel,
    item: usize,
    timeout_ns: u64,
    token: *const nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let token = token_opt(token);
        ch.channel.send_with(item, &wait_options(timeout_ns, token)).map_err(|e| wait_fail(e.error, token))
    })
}

/// Receives an item into `*out_item` without blocking. Returns
/// `NIMSYNC_STATUS_EMPTY` if there is none, `NIMSYNC_STATUS_CLOSED` if the
/// channel is closed and drained.
#[no_mangle]
pub extern "C" fn nimsync_channel_try_recv(channel: *const nimsync_channel, out_item: *mut usize) -> nimsync_status {
    if recv_fast(channel, out_item) {
        return nimsync_status::Ok;
    }
    try_recv_slow(channel, out_item)
}

#[cold]
#[inline(never)]
fn try_recv_slow(channel: *const nimsync_channel, out_item: *mut usize) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let out_item = out(out_item, "out_item")?;
        *out_item = ch.channel.try_recv()?;
        Ok(())
    })
}

/// Receives an item into `*out_item`, blocking while the channel is empty.
/// Returns `NIMSYNC_STATUS_CLOSED` once the channel is closed and drained.
#[no_mangle]
pub extern "C" fn nimsync_channel_recv(channel: *const nimsync_channel, out_item: *mut usize) -> nimsync_status {
    if recv_fast(channel, out_item) {
        return nimsync_status::Ok;
    }
    recv_slow(channel, out_item)
}

#[cold]
#[inline(never)]
fn recv_slow(channel: *const nimsync_channel, out_item: *mut usize) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let out_item = out(out_item, "out_item")?;
        *out_item = ch.channel.recv()?;
        Ok(())
    })
}

/// Receives an item into `*out_item`, blocking at most `timeout_ns`
/// nanoseconds (`NIMSYNC_WAIT_FOREVER` waits without limit); returns
/// `NIMSYNC_STATUS_TIMEOUT` when the time runs out.
#[no_mangle]
pub extern "C" fn nimsync_channel_recv_timeout(
    channel: *const nimsync_channel,
    out_item: *mut usize,
    timeout_ns: u64,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let out_item = out(out_item, "out_item")?;
        *out_item = ch.channel.recv_with(&wait_options(timeout_ns, None))?;
        Ok(())
    })
}

/// Receives an item into `*out_item` like `nimsync_channel_recv_timeout`,
/// and also gives up as soon as `token` (may be NULL: no token) is
/// cancelled: with `NIMSYNC_STATUS_CANCELLED` (the message has the cancel
/// message), or `NIMSYNC_STATUS_TIMEOUT` when a deadline cancelled it. A
/// blocked thread is woken by the cancellation itself, not by polling.
///
/// The token is consulted when the receive has to wait: an item that is
/// already there is received even if the token is cancelled.
///
/// ```c
/// uintptr_t item;
/// switch (nimsync_channel_recv_with(ch, &item, NIMSYNC_WAIT_FOREVER, job)) {
/// case NIMSYNC_STATUS_OK: handle(item); break;
/// case NIMSYNC_STATUS_CANCELLED: return; /* another thread cancelled `job` */
/// default: ...
/// }
/// ```
#[no_mangle]
pub extern "C" fn nimsync_channel_recv_with(
    channel: *const nimsync_channel,
    out_item: *mut usize,
    timeout_ns: u64,
    token: *const nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        let out_item = out(out_item, "out_item")?;
        let token = token_opt(token);
        *out_item = ch.channel.recv_with(&wait_options(timeout_ns, token)).map_err(|e| wait_fail(e, token))?;
        Ok(())
    })
}

/// Closes the channel: later sends return `NIMSYNC_STATUS_CLOSED`, threads
/// blocked in send or receive wake up, receivers get the remaining items and
/// then `NIMSYNC_STATUS_CLOSED`. Closing twice is allowed and does nothing.
#[no_mangle]
pub extern "C" fn nimsync_channel_close(channel: *const nimsync_channel) -> nimsync_status {
    guard(|| {
        arg(channel, "channel")?.channel.close();
        Ok(())
    })
}

/// Stores in `*out_len` the number of items inside right now.
#[no_mangle]
pub extern "C" fn nimsync_channel_len(channel: *const nimsync_channel, out_len: *mut libc::size_t) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_len, "out_len")? = ch.channel.len();
        Ok(())
    })
}

/// Stores in `*out_capacity` the number of slots (the requested capacity
/// rounded up to a power of two; 0 for a rendezvous channel, `SIZE_MAX` for
/// an unbounded one).
#[no_mangle]
pub extern "C" fn nimsync_channel_capacity(
    channel: *const nimsync_channel,
    out_capacity: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_capacity, "out_capacity")? = ch.channel.capacity();
        Ok(())
    })
}

/// Stores in `*out_empty` whether the channel holds no item right now.
#[no_mangle]
pub extern "C" fn nimsync_channel_is_empty(channel: *const nimsync_channel, out_empty: *mut bool) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_empty, "out_empty")? = ch.channel.is_empty();
        Ok(())
    })
}

/// Stores in `*out_full` whether every slot is taken right now.
#[no_mangle]
pub extern "C" fn nimsync_channel_is_full(channel: *const nimsync_channel, out_full: *mut bool) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_full, "out_full")? = ch.channel.is_full();
        Ok(())
    })
}

/// Stores in `*out_closed` whether the channel was closed.
#[no_mangle]
pub extern "C" fn nimsync_channel_is_closed(channel: *const nimsync_channel, out_closed: *mut bool) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_closed, "out_closed")? = ch.channel.is_closed();
        Ok(())
    })
}

/// Stores in `*out_mode` the channel's `nimsync_channel_mode`.
#[no_mangle]
pub extern "C" fn nimsync_channel_get_mode(channel: *const nimsync_channel, out_mode: *mut u32) -> nimsync_status {
    guard(|| {
        let ch = arg(channel, "channel")?;
        *out(out_mode, "out_mode")? = mode_to(ch.channel.mode());
        Ok(())
    })
}
