//! The one error type of nimsync, and the wrapper that hands a value back when
//! a send fails.
//!
//! Every binding maps [`Error`] once: to a `nimsync_status` in C, to an
//! exception class in Python, to an exception type in Nim.

/// Everything that can go wrong in nimsync.
///
/// ```
/// use nimsync_core::{Channel, Error, Mode};
/// let ch = Channel::<u32>::new(1, Mode::Spsc).unwrap();
/// assert_eq!(ch.try_recv(), Err(Error::Empty));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel was closed: no more sends; receives fail once it is drained.
    #[error("channel is closed")]
    Closed,
    /// A non-blocking send found no free slot.
    #[error("channel is full")]
    Full,
    /// A non-blocking receive found no item.
    #[error("channel is empty")]
    Empty,
    /// The deadline passed before the operation could complete.
    #[error("operation timed out")]
    Timeout,
    /// The operation's cancellation token was cancelled.
    #[error("operation was cancelled")]
    Cancelled,
    /// The wait was interrupted (a signal arrived and the caller's interrupt
    /// hook asked to stop).
    #[error("operation was interrupted")]
    Interrupted,
    /// A single-producer or single-consumer side was used by two threads at
    /// the same moment. The string says which side and what to use instead.
    #[error("{0}")]
    Busy(&'static str),
    /// An argument was out of range; names the argument and says why.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The parameter's name as the caller knows it.
        name: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Memory for the requested object could not be allocated.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
}

impl Error {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { name, reason: reason.into() }
    }
}

/// A failed send: the reason, and the value that was not sent.
///
/// Nothing is lost: whoever called `send` gets the value back.
///
/// ```
/// use nimsync_core::{Channel, Error, Mode};
/// let ch = Channel::new(1, Mode::Mpsc).unwrap();
/// ch.try_send(String::from("a")).unwrap();
/// let err = ch.try_send(String::from("b")).unwrap_err();
/// assert_eq!(err.error, Error::Full);
/// assert_eq!(err.into_inner(), "b");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct SendError<T> {
    /// Why the send failed.
    pub error: Error,
    /// The value that was not sent.
    pub value: T,
}

impl<T> SendError<T> {
    pub(crate) fn new(error: Error, value: T) -> Self {
        Self { error, value }
    }

    /// Takes the unsent value back.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value need not be Debug; say what failed.
        f.debug_struct("SendError").field("error", &self.error).finish_non_exhaustive()
    }
}

/// Why a non-blocking queue operation did not happen. Internal and
/// register-sized, so the hot paths return it in registers; it becomes an
/// [`Error`] only at the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    Full,
    Empty,
    Closed,
    Busy(Side),
}

/// Which single-thread side was used by two threads at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    SpscSend,
    SpscRecv,
    MpscRecv,
    SpmcSend,
}

impl Side {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Side::SpscSend => {
                "SPSC channel: another thread is sending at the same moment; use mode MPSC or MPMC for several senders"
            }
            Side::SpscRecv => {
                "SPSC channel: another thread is receiving at the same moment; use mode SPMC or MPMC for several receivers"
            }
            Side::MpscRecv => {
                "MPSC channel: another thread is receiving at the same moment; use mode SPMC or MPMC for several receivers"
            }
            Side::SpmcSend => {
                "SPMC channel: another thread is sending at the same moment; use mode MPSC or MPMC for several senders"
            }
        }
    }
}

impl From<Fail> for Error {
    #[cold]
    fn from(f: Fail) -> Self {
        match f {
            Fail::Full => Error::Full,
            Fail::Empty => Error::Empty,
            Fail::Closed => Error::Closed,
            Fail::Busy(side) => Error::Busy(side.message()),
        }
    }
}

/// A push that did not happen: why, and the value back.
pub(crate) struct Rejected<T> {
    pub(crate) fail: Fail,
    pub(crate) value: T,
}

impl<T> Rejected<T> {
    #[inline]
    pub(crate) fn new(fail: Fail, value: T) -> Self {
        Rejected { fail, value }
    }
}

impl<T> From<Rejected<T>> for SendError<T> {
    #[inline]
    fn from(r: Rejected<T>) -> Self {
        SendError::new(r.fail.into(), r.value)
    }
}
