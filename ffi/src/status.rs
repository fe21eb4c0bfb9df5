//! Status codes, the thread's last error message, and the one guard every
//! exported function runs its body in.

use nimsync_core::Error;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every nimsync function that can fail.
///
/// `NIMSYNC_STATUS_OK` (0) means success. Any other value names what went
/// wrong; `nimsync_last_error_message()` then returns a sentence about it and
/// `nimsync_status_str()` the status's name.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nimsync_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was out of range (a capacity of 0, an unknown mode, ...).
    InvalidArgument = 2,
    /// A non-blocking send found the channel full; the item stays with the caller.
    Full = 3,
    /// A non-blocking receive found the channel empty.
    Empty = 4,
    /// The channel is closed: sends fail (the item stays with the caller) and
    /// receives fail once the remaining items are drained.
    Closed = 5,
    /// A timed operation's timeout passed; a send's item stays with the caller.
    Timeout = 6,
    /// The operation was cancelled.
    Cancelled = 7,
    /// A blocking wait was interrupted.
    Interrupted = 8,
    /// A single-thread side of a channel (either side of SPSC, the receiving
    /// side of MPSC) was used by two threads at the same moment.
    Busy = 9,
    /// Memory could not be allocated.
    OutOfMemory = 10,
    /// An internal error (a Rust panic) was caught at the boundary. The
    /// library stays usable; please report it.
    Panic = 11,
    /// An async operation cannot complete yet; its loop waker will report its
    /// token when it may (see `nimsync_channel_poll_recv`).
    Pending = 12,
    /// An operating-system call failed (for example creating the loop
    /// waker's file descriptor); the message has the system's reason.
    System = 13,
    /// One or more tasks of a task group failed (returned a non-zero status
    /// or panicked); the group's report lists each of them.
    TaskFailed = 14,
}

/// A failure on its way out to C: a status and its message.
pub(crate) struct Fail {
    status: nimsync_status,
    message: Message,
}

enum Message {
    Static(&'static CStr),
    Owned(String),
}

impl Fail {
    pub(crate) fn new(status: nimsync_status, message: String) -> Self {
        Fail { status, message: Message::Owned(message) }
    }

    /// The expected outcome of polling an operation that must wait.
    pub(crate) fn pending() -> Self {
        Fail { status: nimsync_status::Pending, message: Message::Static(c"operation pending") }
    }

    pub(crate) fn null(name: &str) -> Self {
        Fail::new(nimsync_status::NullArgument, format!("argument `{name}` is NULL"))
    }
}

impl From<Error> for Fail {
    /// The one place where core errors become C statuses.
    fn from(e: Error) -> Self {
        use nimsync_status as S;
        let fixed = |status, text: &'static CStr| Fail { status, message: Message::Static(text) };
        match e {
            Error::Closed => fixed(S::Closed, c"channel is closed"),
            Error::Full => fixed(S::Full, c"channel is full"),
            Error::Empty => fixed(S::Empty, c"channel is empty"),
            Error::Timeout => fixed(S::Timeout, c"operation timed out"),
            Error::Cancelled => fixed(S::Cancelled, c"operation was cancelled"),
            Error::Interrupted => fixed(S::Interrupted, c"operation was interrupted"),
            Error::Busy(_) => Fail::new(S::Busy, e.to_string()),
            Error::InvalidArgument { .. } => Fail::new(S::InvalidArgument, e.to_string()),
            Error::OutOfMemory(_) => Fail::new(S::OutOfMemory, e.to_string()),
            other => Fail::new(S::Panic, format!("unmapped error: {other}")),
        }
    }
}

thread_local! {
    /// Points at the current message: a static string, or the one in `OWNED`.
    static LAST: Cell<*const c_char> = const { Cell::new(c"".as_ptr()) };
    static OWNED: RefCell<CString> = RefCell::new(CString::default());
}

fn record(message: Message) {
    match message {
        // Expected outcomes (full, empty, timeout) take this path: no allocation.
        Message::Static(text) => {
            let _ = LAST.try_with(|l| l.set(text.as_ptr()));
        }
        Message::Owned(text) => {
            let text = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
            let _ = OWNED.try_with(|o| {
                let mut o = o.borrow_mut();
                *o = text;
                let _ = LAST.try_with(|l| l.set(o.as_ptr()));
            });
        }
    }
}

/// Runs the body of an exported function: turns its `Err` into a status with
/// the message recorded, and a panic into `NIMSYNC_STATUS_PANIC`. Every
/// exported function that returns a status goes through here.
#[inline]
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Fail>) -> nimsync_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => nimsync_status::Ok,
        Ok(Err(fail)) => {
            record(fail.message);
            fail.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            record(Message::Owned(format!("internal error: {what}")));
            nimsync_status::Panic
        }
    }
}

/// Runs a body that cannot report a status (getters returning a value):
/// a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Borrows a handle argument, or fails with `NULL_ARGUMENT` naming it.
pub(crate) fn arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Fail> {
    // SAFETY: non-NULL pointers must come from this library's `_new`/`_clone`
    // and not be freed yet; that is the documented contract of every function.
    unsafe { ptr.as_ref() }.ok_or_else(|| Fail::null(name))
}

/// Borrows an out-parameter, or fails with `NULL_ARGUMENT` naming it.
pub(crate) fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Fail> {
    // SAFETY: the caller passes a pointer to writable memory for a `T` (the
    // documented contract); NULL is rejected here.
    unsafe { ptr.as_mut() }.ok_or_else(|| Fail::null(name))
}

/// The body of a `_clone` function of a handle made by `Arc::into_raw`: takes
/// another reference to `handle` and stores it in `*out_handle`.
pub(crate) fn arc_clone<T>(handle: *const T, name: &str, out_handle: *mut *mut T, out_name: &str) -> Result<(), Fail> {
    arg(handle, name)?;
    let out_handle = out(out_handle, out_name)?;
    // SAFETY: `handle` is a live handle from `Arc::into_raw` (checked non-NULL
    // above; liveness is the caller's contract).
    unsafe { std::sync::Arc::increment_strong_count(handle) };
    *out_handle = handle.cast_mut();
    Ok(())
}

/// The body of a `_free` function of a handle made by `Arc::into_raw`:
/// releases one reference (NULL is ignored); the last one drops the value.
pub(crate) fn arc_free<T>(handle: *mut T) {
    if handle.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: a non-NULL handle came from `Arc::into_raw` in a constructor
        // or `_clone` and is released exactly once (caller contract).
        drop(unsafe { std::sync::Arc::from_raw(handle.cast_const()) });
    });
}

/// Returns the name of a status code (`"NIMSYNC_STATUS_FULL"`), or
/// `"NIMSYNC_STATUS_UNKNOWN"` for a value that is not one. The string is
/// static: never free it.
#[no_mangle]
pub extern "C" fn nimsync_status_str(status: c_int) -> *const c_char {
    let name: &'static CStr = match status {
        0 => c"NIMSYNC_STATUS_OK",
        1 => c"NIMSYNC_STATUS_NULL_ARGUMENT",
        2 => c"NIMSYNC_STATUS_INVALID_ARGUMENT",
        3 => c"NIMSYNC_STATUS_FULL",
        4 => c"NIMSYNC_STATUS_EMPTY",
        5 => c"NIMSYNC_STATUS_CLOSED",
        6 => c"NIMSYNC_STATUS_TIMEOUT",
        7 => c"NIMSYNC_STATUS_CANCELLED",
        8 => c"NIMSYNC_STATUS_INTERRUPTED",
        9 => c"NIMSYNC_STATUS_BUSY",
        10 => c"NIMSYNC_STATUS_OUT_OF_MEMORY",
        11 => c"NIMSYNC_STATUS_PANIC",
        12 => c"NIMSYNC_STATUS_PENDING",
        13 => c"NIMSYNC_STATUS_SYSTEM",
        14 => c"NIMSYNC_STATUS_TASK_FAILED",
        _ => c"NIMSYNC_STATUS_UNKNOWN",
    };
    name.as_ptr()
}

/// Returns the message of the last failed nimsync call on this thread, or ""
/// if none failed yet. The string belongs to the library and stays valid until
/// the next failing nimsync call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn nimsync_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST.try_with(|l| l.get()).unwrap_or(c"".as_ptr()))
}
