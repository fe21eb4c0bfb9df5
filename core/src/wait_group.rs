//! A counter of unfinished work that threads and tasks can wait on, like Go's
//! `sync.WaitGroup` (and what `queue.Queue.join()` waits for).
//!
//! `add` raises the count, `done` lowers it, and waiters — blocked threads or
//! async tasks — are woken, all of them, when it reaches zero. Waiting parks
//! on the same wait queues as channels: nothing polls.
//!
//! ```
//! use nimsync_core::WaitGroup;
//! let wg = WaitGroup::new();
//! wg.add(3);
//! let handles: Vec<_> = (0..3)
//!     .map(|_| {
//!         let wg = wg.clone();
//!         std::thread::spawn(move || wg.done().unwrap())
//!     })
//!     .collect();
//! wg.wait();
//! assert_eq!(wg.count(), 0);
//! # for h in handles { h.join().unwrap(); }
//! ```

use crate::error::Error;
use crate::sync::{Arc, AtomicUsize, Ordering};
use crate::waiter::{block_on, AsyncWait, WaitOptions, WaitQueue};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

struct Inner {
    count: AtomicUsize,
    waiters: WaitQueue,
}

/// A shared counter of unfinished work; clones share it.
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}

impl WaitGroup {
    /// A group with nothing outstanding.
    pub fn new() -> Self {
        crate::barrier::init();
        WaitGroup { inner: Arc::new(Inner { count: AtomicUsize::new(0), waiters: WaitQueue::new() }) }
    }

    /// Adds `n` units of outstanding work.
    pub fn add(&self, n: usize) {
        // Relaxed: raising the count publishes nothing; waiters only care
        // about the moment it reaches zero (Release in `done`).
        self.inner.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one unit; true if the count was zero (the first unit of a new
    /// batch of work).
    pub(crate) fn add_one(&self) -> bool {
        // Relaxed: as in `add`; the returned value only tells which caller
        // made the 0 -> 1 step, which the atomic RMW decides alone.
        self.inner.count.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// Marks one unit done; wakes every waiter when the count reaches zero.
    /// Fails with [`Error::InvalidArgument`] if nothing is outstanding.
    pub fn done(&self) -> Result<(), Error> {
        self.done_last().map(drop)
    }

    /// [`done`](Self::done), telling whether this call brought the count to
    /// zero.
    pub(crate) fn done_last(&self) -> Result<bool, Error> {
        // AcqRel: Release publishes the finished work to waiters that see the
        // count at zero; Acquire orders concurrent `done`s.
        let previous = self
            .inner
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .map_err(|_| Error::invalid("done", "called more times than work was added"))?;
        if previous == 1 {
            self.inner.waiters.notify_all();
        }
        Ok(previous == 1)
    }

    /// [`done_last`](Self::done_last) for a caller that counted its own
    /// unit with `add`/`add_one` (a task group's tasks): one `fetch_sub`
    /// instead of a compare-exchange loop, which retries whenever a
    /// concurrent `add` moves the count.
    pub(crate) fn done_counted(&self) -> bool {
        // AcqRel: as in `done_last`.
        let previous = self.inner.count.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "done_counted without a matching add");
        if previous == 1 {
            self.inner.waiters.notify_all();
        }
        previous == 1
    }

    /// Outstanding units right now.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::Acquire)
    }

    fn is_zero(&self) -> bool {
        // Acquire: pairs with the Release of the `done` that reached zero.
        self.inner.count.load(Ordering::Acquire) == 0
    }

    /// Blocks until the count is zero.
    pub fn wait(&self) {
        self.wait_with(&WaitOptions::new()).expect("no deadline, no interrupt hook");
    }

    /// Blocks until the count is zero, or as `opts` allows
    /// (`Err(Timeout)`, `Err(Interrupted)`).
    pub fn wait_with(&self, opts: &WaitOptions<'_>) -> Result<(), Error> {
        block_on(&self.inner.waiters, opts, || self.is_zero().then_some(()), || self.is_zero())
    }

    /// Waits asynchronously until the count is zero.
    pub fn wait_async(&self) -> WaitGroupFuture {
        WaitGroupFuture { group: self.clone(), wait: AsyncWait::default() }
    }
}

/// Completes when a [`WaitGroup`]'s count is zero; see
/// [`WaitGroup::wait_async`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitGroupFuture {
    group: WaitGroup,
    wait: AsyncWait,
}

impl Future for WaitGroupFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let inner = &this.group.inner;
        loop {
            this.wait.settle(&inner.waiters);
            if this.group.is_zero() {
                return Poll::Ready(());
            }
            if !this.wait.register(&inner.waiters, cx.waker(), || this.group.is_zero()) {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for WaitGroupFuture {
    fn drop(&mut self) {
        self.wait.cancel(&self.group.inner.waiters);
    }
}

impl std::fmt::Debug for WaitGroupFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitGroupFuture").finish_non_exhaustive()
    }
}
