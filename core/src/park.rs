//! Putting one thread to sleep until another wakes it, a deadline passes, or a
//! signal interrupts it.
//!
//! `std::thread::park` would do, except that it swallows `EINTR`: a thread
//! blocked in it cannot notice Ctrl-C. Bindings whose host language handles
//! signals on the blocked thread (Python) need to see the interruption, so on
//! Linux the parker is a futex of its own that reports it.

/// Why [`Parker::park`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// `unpark` was called (now or before the park).
    Notified,
    /// The deadline passed.
    TimedOut,
    /// A signal handler ran on this thread while it slept.
    Interrupted,
    /// Nothing in particular; the caller re-checks its condition.
    Spurious,
}

#[cfg(all(target_os = "linux", not(loom)))]
mod imp {
    use super::Wake;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    const EMPTY: u32 = 0;
    const NOTIFIED: u32 = 1;
    const PARKED: u32 = u32::MAX;

    /// A one-token parker (the protocol of std's futex parker).
    #[derive(Debug)]
    pub(crate) struct Parker {
        state: AtomicU32,
    }

    impl Parker {
        pub(crate) fn new() -> Self {
            Self { state: AtomicU32::new(EMPTY) }
        }

        pub(crate) fn park(&self, deadline: Option<Instant>) -> Wake {
            // NOTIFIED -> EMPTY consumes a pending token; EMPTY -> PARKED announces
            // the sleep. Acquire pairs with the Release in `unpark` so that what
            // the waker wrote before unparking is visible here.
            if self.state.fetch_sub(1, Ordering::Acquire) == NOTIFIED {
                return Wake::Notified;
            }
            let outcome = futex_wait(&self.state, PARKED, deadline);
            // Leave PARKED whatever happened; a token that arrived meanwhile wins.
            if self.state.swap(EMPTY, Ordering::Acquire) == NOTIFIED {
                return Wake::Notified;
            }
            outcome
        }

        pub(crate) fn unpark(&self) {
            // Release: the wakee's Acquire in `park` sees our prior writes.
            if self.state.swap(NOTIFIED, Ordering::Release) == PARKED {
                futex_wake(&self.state);
            }
        }
    }

    fn futex_wait(futex: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if d <= now {
                    return Wake::TimedOut;
                }
                let left = d - now;
                Some(libc::timespec {
                    tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                })
            }
        };
        let ts_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: FUTEX_WAIT reads the u32 behind `futex` (a live atomic) and the
        // optional relative timeout; it writes nothing.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                futex.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            )
        };
        if r == 0 {
            return Wake::Spurious;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => Wake::TimedOut,
            Some(libc::EINTR) => Wake::Interrupted,
            _ => Wake::Spurious, // EAGAIN: the value changed before we slept
        }
    }

    fn futex_wake(futex: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key.
        unsafe {
            libc::syscall(libc::SYS_futex, futex.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
        }
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
mod imp {
    use super::Wake;
    use std::time::Instant;

    /// Portable fallback on std's parker (no signal reporting).
    #[derive(Debug)]
    pub(crate) struct Parker {
        thread: std::thread::Thread,
    }

    impl Parker {
        pub(crate) fn new() -> Self {
            Self { thread: std::thread::current() }
        }

        pub(crate) fn park(&self, deadline: Option<Instant>) -> Wake {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Wake::TimedOut;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
            Wake::Spurious
        }

        pub(crate) fn unpark(&self) {
            self.thread.unpark();
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::Wake;
    use std::time::Instant;

    /// loom's parker: deadlines are not modelled.
    #[derive(Debug)]
    pub(crate) struct Parker {
        thread: loom::thread::Thread,
    }

    impl Parker {
        pub(crate) fn new() -> Self {
            Self { thread: loom::thread::current() }
        }

        pub(crate) fn park(&self, deadline: Option<Instant>) -> Wake {
            assert!(deadline.is_none(), "deadlines are not modelled under loom");
            loom::thread::park();
            Wake::Spurious
        }

        pub(crate) fn unpark(&self) {
            self.thread.unpark();
        }
    }
}

pub(crate) use imp::Parker;
