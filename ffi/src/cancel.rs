//! `nimsync_cancel_token_*`: cancellation tokens in a tree, deadlines and
//! callbacks, for the blocking operations that take a token
//! (`nimsync_channel_send_with`, `nimsync_channel_recv_with`,
//! `nimsync_select_with`).
//!
//! A token is a node of a tree: cancelling it cancels every descendant, once
//! each, with the same reason; a child made under a cancelled parent starts
//! cancelled. A deadline is a child that a timer cancels. A shielded token is
//! not cancelled by the token it was made from.

use crate::status::{arc_clone, arc_free, arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::{CallbackGuard, CancelReason, CancelToken, Error};
use std::ffi::{c_char, c_void, CStr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::channel::NIMSYNC_WAIT_FOREVER;

/// Why a token was cancelled, as reported by `nimsync_cancel_token_reason`
/// and passed to a `nimsync_cancel_fn`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nimsync_cancel_reason {
    /// The token is not cancelled.
    None = 0,
    /// `nimsync_cancel_token_cancel` was called on the token or an ancestor;
    /// `nimsync_cancel_token_message` returns its message.
    Requested = 1,
    /// The deadline of the token or of an ancestor passed
    /// (`nimsync_cancel_token_with_timeout`). Blocking operations watching
    /// the token end with `NIMSYNC_STATUS_TIMEOUT`.
    DeadlineExceeded = 2,
}

fn reason_code(reason: Option<&CancelReason>) -> u32 {
    let code = match reason {
        None => nimsync_cancel_reason::None,
        Some(CancelReason::DeadlineExceeded) => nimsync_cancel_reason::DeadlineExceeded,
        // `CancelReason` may grow; anything that is not a deadline was asked for.
        Some(_) => nimsync_cancel_reason::Requested,
    };
    code as u32
}

/// A cancellation token: one node of a tree of tokens.
///
/// Create a root with `nimsync_cancel_token_new`, derive children with
/// `nimsync_cancel_token_child`, `_shielded` and `_with_timeout`, take extra
/// references with `nimsync_cancel_token_clone` and release each with
/// `nimsync_cancel_token_free`. Every function is thread-safe. A child does
/// not keep its parent alive, and freeing a parent does not cancel it.
#[allow(non_camel_case_types)]
pub struct nimsync_cancel_token {
    pub(crate) token: CancelToken,
}

fn new_handle(token: CancelToken) -> *mut nimsync_cancel_token {
    Arc::into_raw(Arc::new(nimsync_cancel_token { token })).cast_mut()
}

/// Borrows an optional token argument: NULL means "no token".
pub(crate) fn token_opt<'a>(token: *const nimsync_cancel_token) -> Option<&'a CancelToken> {
    // SAFETY: a non-NULL token is a live handle (caller contract, as for `arg`).
    unsafe { token.as_ref() }.map(|t| &t.token)
}

/// The failure of a wait that watched `token`: a cancellation carries the
/// message it was cancelled with.
pub(crate) fn wait_fail(error: Error, token: Option<&CancelToken>) -> Fail {
    match (&error, token.and_then(CancelToken::reason)) {
        (Error::Cancelled, Some(CancelReason::Requested(message))) if !message.is_empty() => {
            Fail::new(nimsync_status::Cancelled, format!("operation was cancelled: {message}"))
        }
        _ => error.into(),
    }
}

/// Creates a root token (cancelled only by `nimsync_cancel_token_cancel` on
/// it) and stores it in `*out_token`.
///
/// ```c
/// nimsync_cancel_token *root, *job;
/// nimsync_cancel_token_new(&root);
/// nimsync_cancel_token_child(root, &job);
/// nimsync_cancel_token_cancel(root, "shutting down", NULL); /* job is cancelled too */
/// nimsync_cancel_token_free(job);
/// nimsync_cancel_token_free(root);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_new(out_token: *mut *mut nimsync_cancel_token) -> nimsync_status {
    guard(|| {
        let out_token = out(out_token, "out_token")?;
        *out_token = new_handle(CancelToken::new());
        Ok(())
    })
}

/// Creates a child of `parent` in `*out_token`: cancelled when `parent` (or
/// any ancestor) is, with the same reason, or on its own. A child of a
/// cancelled parent starts cancelled.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_child(
    parent: *const nimsync_cancel_token,
    out_token: *mut *mut nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let parent = arg(parent, "parent")?;
        let out_token = out(out_token, "out_token")?;
        *out_token = new_handle(parent.token.child());
        Ok(())
    })
}

/// Creates in `*out_token` a token that `parent` does *not* cancel: a shield
/// for work that must finish (cleanup, a final write) while its surroundings
/// are cancelled. It can still be cancelled directly, and its own children
/// follow it as usual.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_shielded(
    parent: *const nimsync_cancel_token,
    out_token: *mut *mut nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let parent = arg(parent, "parent")?;
        let out_token = out(out_token, "out_token")?;
        *out_token = new_handle(parent.token.shielded());
        Ok(())
    })
}

/// Creates in `*out_token` a child of `parent` that is cancelled with
/// `NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED` `timeout_ns` nanoseconds from now
/// (at once for 0; never for `NIMSYNC_WAIT_FOREVER`), or earlier with
/// `parent`. Blocking operations watching it end with
/// `NIMSYNC_STATUS_TIMEOUT`. One library timer thread, sleeping until the
/// earliest deadline, serves every such token; freeing the token withdraws
/// its deadline.
///
/// ```c
/// nimsync_cancel_token *within_50ms;
/// nimsync_cancel_token_with_timeout(root, 50 * 1000000ull, &within_50ms);
/// nimsync_status s = nimsync_channel_recv_with(ch, &item, NIMSYNC_WAIT_FOREVER, within_50ms);
/// /* s == NIMSYNC_STATUS_TIMEOUT if nothing arrived within 50 ms */
/// ```
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_with_timeout(
    parent: *const nimsync_cancel_token,
    timeout_ns: u64,
    out_token: *mut *mut nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let parent = arg(parent, "parent")?;
        let out_token = out(out_token, "out_token")?;
        let token = match timeout_ns {
            NIMSYNC_WAIT_FOREVER => parent.token.child(),
            ns => parent.token.with_timeout(Duration::from_nanos(ns)),
        };
        *out_token = new_handle(token);
        Ok(())
    })
}

/// Takes another reference to `token` and stores it in `*out_token`. Each
/// reference is released with its own `nimsync_cancel_token_free`.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_clone(
    token: *const nimsync_cancel_token,
    out_token: *mut *mut nimsync_cancel_token,
) -> nimsync_status {
    guard(|| arc_clone(token, "token", out_token, "out_token"))
}

/// Releases one reference to a token. Freeing does not cancel: children
/// stay usable, and threads waiting on them keep waiting. The last reference
/// withdraws the token's deadline and its callbacks that have not run. NULL
/// is ignored; using the handle afterwards, or freeing it twice, is
/// undefined behaviour.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_free(token: *mut nimsync_cancel_token) {
    arc_free(token);
}

/// Cancels `token` and all its descendants with
/// `NIMSYNC_CANCEL_REASON_REQUESTED` and `message` (copied; NULL means "").
/// Their callbacks run on this thread before the call returns, and threads
/// blocked in operations watching them return `NIMSYNC_STATUS_CANCELLED`.
///
/// `*out_was_first` (`out_was_first` may be NULL) is true if this call
/// cancelled the token, false if it already was — the first reason stands.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_cancel(
    token: *const nimsync_cancel_token,
    message: *const c_char,
    out_was_first: *mut bool,
) -> nimsync_status {
    guard(|| {
        let t = arg(token, "token")?;
        let message = if message.is_null() {
            Default::default()
        } else {
            // SAFETY: a non-NULL `message` is a NUL-terminated string
            // (documented contract).
            unsafe { CStr::from_ptr(message) }.to_string_lossy()
        };
        let first = t.token.cancel(&message);
        if !out_was_first.is_null() {
            *out(out_was_first, "out_was_first")? = first;
        }
        Ok(())
    })
}

/// Whether `token` is cancelled (one atomic load). False for NULL.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_is_cancelled(token: *const nimsync_cancel_token) -> bool {
    guard_value(false, || token_opt(token).is_some_and(CancelToken::is_cancelled))
}

/// The status a blocking operation watching `token` would end with now:
/// `NIMSYNC_STATUS_OK` while it is not cancelled, `NIMSYNC_STATUS_CANCELLED`
/// (the message has the cancel message) or `NIMSYNC_STATUS_TIMEOUT` (a
/// deadline) once it is. For loops that check between steps of their work.
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_check(token: *const nimsync_cancel_token) -> nimsync_status {
    guard(|| {
        let t = arg(token, "token")?;
        t.token.check().map_err(|e| wait_fail(e, Some(&t.token)))
    })
}

/// Stores in `*out_reason` why `token` was cancelled, a
/// `nimsync_cancel_reason` (`NIMSYNC_CANCEL_REASON_NONE` while it is not).
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_reason(
    token: *const nimsync_cancel_token,
    out_reason: *mut u32,
) -> nimsync_status {
    guard(|| {
        let t = arg(token, "token")?;
        *out(out_reason, "out_reason")? = reason_code(t.token.reason().as_ref());
        Ok(())
    })
}

/// Copies the message `token` was cancelled with into `buffer`, the way
/// `snprintf` does: at most `capacity - 1` bytes and a terminating NUL
/// (nothing when `capacity` is 0; `buffer` may then be NULL). The message
/// is "" while the token is not cancelled or when a deadline cancelled it.
///
/// `*out_len` (`out_len` may be NULL) receives the whole message's length in
/// bytes, without the NUL: if it is `>= capacity` the copy was cut short,
/// and a buffer of `*out_len + 1` bytes holds it all. The copy belongs to
/// the caller, so it stays valid whatever happens to the token.
///
/// ```c
/// char text[128];
/// size_t len;
/// nimsync_cancel_token_message(token, text, sizeof text, &len);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_message(
    token: *const nimsync_cancel_token,
    buffer: *mut c_char,
    capacity: libc::size_t,
    out_len: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let t = arg(token, "token")?;
        if capacity > 0 && buffer.is_null() {
            return Err(Fail::null("buffer"));
        }
        let message: Arc<str> = match t.token.reason() {
            Some(CancelReason::Requested(message)) => message,
            _ => "".into(),
        };
        let bytes = message.as_bytes();
        if capacity > 0 {
            let n = bytes.len().min(capacity - 1);
            // SAFETY: `buffer` is non-NULL and has room for `capacity` bytes
            // (documented contract); we write `n + 1 <= capacity` of them.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buffer, n);
                *buffer.add(n) = 0;
            }
        }
        if !out_len.is_null() {
            *out(out_len, "out_len")? = bytes.len();
        }
        Ok(())
    })
}

/// A cancel callback: called once with the `ctx` given to
/// `nimsync_cancel_token_on_cancel` and the `nimsync_cancel_reason`.
#[allow(non_camel_case_types)]
pub type nimsync_cancel_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, reason: u32)>;

/// What a registration's callback is doing, so that withdrawing it can wait
/// for a run in progress on another thread.
#[derive(Default)]
struct RunState {
    /// Set when the callback ran or was withdrawn: it will not run (again).
    done: bool,
    /// The thread running the callback right now (see `this_thread`).
    running_on: Option<usize>,
}

/// Names the calling thread while it lives: the address of a thread-local
/// without destructor, so unlike `std::thread::current()` it allocates
/// nothing and works on threads the library did not start.
fn this_thread() -> usize {
    thread_local! {
        static ME: u8 = const { 0 };
    }
    ME.with(|me| std::ptr::from_ref(me) as usize)
}

struct Registration {
    callback: unsafe extern "C" fn(*mut c_void, u32),
    ctx: *mut c_void,
    state: Mutex<RunState>,
    finished: Condvar,
}

// SAFETY: the C caller hands the context to a library that documents calling
// it from the cancelling thread; using it there is the contract.
unsafe impl Send for Registration {}
// SAFETY: as above; the callback and context are only read.
unsafe impl Sync for Registration {}

impl Registration {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, reason: &CancelReason) {
        {
            let mut st = self.lock();
            if st.done {
                return;
            }
            st.done = true;
            st.running_on = Some(this_thread());
        }
        // SAFETY: the function pointer and context come from the caller of
        // `nimsync_cancel_token_on_cancel`, who vouched for them, and the
        // guard has not been freed (`done` was still false).
        unsafe { (self.callback)(self.ctx, reason_code(Some(reason))) };
        self.lock().running_on = None;
        self.finished.notify_all();
    }

    /// Makes sure the callback will not start, and waits for a run in
    /// progress on another thread (a run on this thread is the caller).
    fn withdraw(&self) {
        let me = this_thread();
        let mut st = self.lock();
        st.done = true;
        while st.running_on.is_some_and(|t| t != me) {
            st = self.finished.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A registered cancel callback (`nimsync_cancel_token_on_cancel`); free it
/// with `nimsync_cancel_callback_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_cancel_callback {
    registration: Arc<Registration>,
    guard: Option<CallbackGuard>,
}

/// Registers `callback` to run once, with `ctx` and the
/// `nimsync_cancel_reason`, when `token` is cancelled, and stores the
/// registration in `*out_guard`.
///
/// The callback runs on the thread that cancels (inside
/// `nimsync_cancel_token_cancel` on the token or an ancestor, or on the
/// library's timer thread for a deadline), or at once, on this thread,
/// before this call returns, if the token already is cancelled. It must not
/// block and must not wait for other threads; it may call nimsync functions
/// (cancel other tokens, send without blocking).
///
/// Release the registration with `nimsync_cancel_callback_free`, which also
/// withdraws the callback if it has not run — so `ctx` must stay valid
/// until then.
///
/// ```c
/// static void wake(void *ctx, uint32_t reason) { write(*(int *)ctx, "x", 1); }
/// nimsync_cancel_callback *cb;
/// nimsync_cancel_token_on_cancel(token, wake, &pipe_fd, &cb);
/// ...
/// nimsync_cancel_callback_free(cb);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_cancel_token_on_cancel(
    token: *const nimsync_cancel_token,
    callback: nimsync_cancel_fn,
    ctx: *mut c_void,
    out_guard: *mut *mut nimsync_cancel_callback,
) -> nimsync_status {
    guard(|| {
        let t = arg(token, "token")?;
        let callback = callback.ok_or_else(|| Fail::null("callback"))?;
        let out_guard = out(out_guard, "out_guard")?;
        let registration =
            Arc::new(Registration { callback, ctx, state: Mutex::new(RunState::default()), finished: Condvar::new() });
        let runner = registration.clone();
        let guard = t.token.on_cancel(move |reason| runner.run(reason));
        *out_guard = Box::into_raw(Box::new(nimsync_cancel_callback { registration, guard: Some(guard) }));
        Ok(())
    })
}

/// Releases a callback registration. If the callback has not run, it is
/// withdrawn and will not run; if it is running on another thread right
/// now, this waits until it returns. After this call the callback is not
/// running (except when called from inside that very callback) and never
/// will, so its `ctx` may be freed. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_cancel_callback_free(guard: *mut nimsync_cancel_callback) {
    if guard.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: a non-NULL registration came from `Box::into_raw` in
        // `nimsync_cancel_token_on_cancel` and is released exactly once
        // (caller contract).
        let mut registration = unsafe { Box::from_raw(guard) };
        // First leave the token (a callback not yet taken out will never
        // start), then wait for one that already started elsewhere.
        drop(registration.guard.take());
        registration.registration.withdraw();
    });
}
