//! Waking an event loop through a readiness file descriptor.
//!
//! Event loops (Python's asyncio, Nim's asyncdispatch, Chronos, libuv, ...)
//! wait on file descriptors. A [`LoopWaker`] owns one descriptor — an eventfd
//! on Linux, a pipe elsewhere — that becomes readable when any operation
//! registered through it may make progress. The loop watches the descriptor
//! (`loop.add_reader(fd, ...)`, `addRead(fd)`); when it fires, the loop calls
//! [`LoopWaker::drain`] to learn which operations (by the token each was given)
//! to poll again.
//!
//! The descriptor is written only when a registered operation is woken, and at
//! most once until the next `drain`: a channel with no async waiter never
//! touches it, and a burst of wake-ups costs one system call.
//!
//! ```
//! use nimsync_core::{Channel, LoopWaker, Mode};
//! use std::future::Future;
//! use std::pin::pin;
//! use std::task::Context;
//!
//! let waker = LoopWaker::new().unwrap();
//! let ch = Channel::new(4, Mode::Mpsc).unwrap();
//! let mut recv = pin!(ch.recv_async());
//! let task_waker = waker.waker(7);
//! assert!(recv.as_mut().poll(&mut Context::from_waker(&task_waker)).is_pending());
//! ch.send(1).unwrap();                  // wakes token 7: the fd becomes readable
//! assert_eq!(waker.drain(), vec![7]);   // the loop learns which operation to poll
//! assert!(recv.poll(&mut Context::from_waker(&task_waker)).is_ready());
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

/// A readiness descriptor plus the tokens of the operations woken since the
/// last [`drain`](Self::drain). Clones share the same descriptor.
#[derive(Clone)]
pub struct LoopWaker {
    inner: Arc<Inner>,
}

struct Inner {
    fd: Fd,
    /// True from the first wake-up until the next drain: the descriptor has
    /// been written and not read since.
    signaled: AtomicBool,
    woken: Mutex<Vec<u64>>,
}

impl std::fmt::Debug for LoopWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopWaker").field("fd", &self.fd()).finish_non_exhaustive()
    }
}

impl LoopWaker {
    /// Creates the descriptor (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Self> {
        Ok(LoopWaker {
            inner: Arc::new(Inner { fd: Fd::new()?, signaled: AtomicBool::new(false), woken: Mutex::new(Vec::new()) }),
        })
    }

    /// The descriptor to watch for readability. It stays owned by the waker
    /// and is closed when the last clone is dropped.
    pub fn fd(&self) -> i32 {
        self.inner.fd.read_end()
    }

    /// A task waker that records `token` and signals the descriptor.
    pub fn waker(&self, token: u64) -> Waker {
        Waker::from(Arc::new(TokenWake { inner: self.inner.clone(), token }))
    }

    /// Records `token` as woken and makes the descriptor readable.
    pub fn wake(&self, token: u64) {
        self.inner.wake(token);
    }

    /// Clears the descriptor and returns the tokens woken since the last call,
    /// oldest first (a token woken twice appears twice).
    pub fn drain(&self) -> Vec<u64> {
        let inner = &*self.inner;
        // SeqCst: ordered before the read below and the take after it, so a
        // wake-up racing with us either lands in this batch or writes the
        // descriptor again (see `Inner::wake`).
        inner.signaled.store(false, Ordering::SeqCst);
        inner.fd.clear();
        std::mem::take(&mut *inner.woken.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Inner {
    fn wake(&self, token: u64) {
        self.woken.lock().unwrap_or_else(PoisonError::into_inner).push(token);
        // SeqCst: pairs with `drain`; only the first wake-up after a drain
        // pays for the write.
        if !self.signaled.swap(true, Ordering::SeqCst) {
            self.fd.signal();
        }
    }
}

struct TokenWake {
    inner: Arc<Inner>,
    token: u64,
}

impl Wake for TokenWake {
    fn wake(self: Arc<Self>) {
        self.inner.wake(self.token);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.inner.wake(self.token);
    }
}

#[cfg(target_os = "linux")]
struct Fd(i32);

#[cfg(target_os = "linux")]
impl Fd {
    fn new() -> io::Result<Fd> {
        // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Fd(fd))
    }

    fn read_end(&self) -> i32 {
        self.0
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. It cannot
        // block (EFD_NONBLOCK); EAGAIN means the counter is already non-zero,
        // which is all a signal needs.
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }

    fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (already clear) is fine.
        unsafe { libc::read(self.0, (&mut count as *mut u64).cast(), 8) };
    }
}

#[cfg(not(target_os = "linux"))]
struct Fd([i32; 2]);

#[cfg(not(target_os = "linux"))]
impl Fd {
    fn new() -> io::Result<Fd> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two descriptors into the array.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fcntl on descriptors we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Fd(fds))
    }

    fn read_end(&self) -> i32 {
        self.0[0]
    }

    fn signal(&self) {
        // SAFETY: one byte from a live buffer to our own non-blocking pipe.
        unsafe { libc::write(self.0[1], [1u8].as_ptr().cast(), 1) };
    }

    fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.0[0], buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::close(self.0);
        }
        #[cfg(not(target_os = "linux"))]
        // SAFETY: as above, both ends.
        unsafe {
            libc::close(self.0[0]);
            libc::close(self.0[1]);
        }
    }
}
