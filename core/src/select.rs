//! Waiting on several channel operations at once, like Go's `select`.
//!
//! A [`Select`] holds receive and send cases, each with a closure that gets
//! the outcome. [`Select::wait`] completes exactly one case: it tries every
//! case, starting at a random one so that no case starves; if none can
//! proceed, it registers one waiting context in the wait queue of every case
//! (the same queues blocked `send`/`recv` calls use), re-checks, and parks.
//! A notifier that selects the context says which case woke it; that case is
//! tried first, so the wake-up is not spent on another case.
//!
//! A receive case on a closed, drained channel completes with
//! `Err(Error::Closed)`, and a send case on a closed channel with its value
//! handed back, exactly like the single operations. The values of send cases
//! that were not chosen are dropped with the `Select`.
//!
//! ```
//! use nimsync_core::{Channel, Mode, Select};
//! let numbers = Channel::new(4, Mode::Mpmc).unwrap();
//! let words = Channel::new(4, Mode::Mpmc).unwrap();
//! words.send("hello").unwrap();
//! let got = Select::new()
//!     .recv(&numbers, |r| format!("number {}", r.unwrap()))
//!     .recv(&words, |r| format!("word {}", r.unwrap()))
//!     .wait();
//! assert_eq!(got, "word hello");
//!
//! // No case ready: `try_select` is the default case.
//! assert!(Select::new().recv(&numbers, |r: Result<i32, _>| r).try_select().is_none());
//! ```

use crate::barrier;
use crate::channel::Channel;
use crate::error::{Error, SendError};
use crate::sync::Backoff;
use crate::waiter::{Context, Selected, WaitOptions, WaitQueue, FIRST_OPERATION};
use std::time::{Duration, Instant};

/// One case: an operation that can be attempted without blocking.
trait Case<R> {
    /// Tries the operation; `Some` once it completed (successfully or with a
    /// final error), after which the case's closure has run.
    fn attempt(&mut self) -> Option<R>;
    /// Whether an attempt could complete now.
    fn ready(&self) -> bool;
    /// Where a waiter for this case registers.
    fn queue(&self) -> &WaitQueue;
}

struct RecvCase<'a, T, F> {
    channel: &'a Channel<T>,
    done: Option<F>,
}

impl<T: Send, R, F: FnOnce(Result<T, Error>) -> R> Case<R> for RecvCase<'_, T, F> {
    fn attempt(&mut self) -> Option<R> {
        match self.channel.try_recv() {
            Err(Error::Empty) => None,
            outcome => Some((self.done.take().expect("a case completes once"))(outcome)),
        }
    }

    fn ready(&self) -> bool {
        self.channel.recv_ready()
    }

    fn queue(&self) -> &WaitQueue {
        self.channel.receivers_queue()
    }
}

struct SendCase<'a, T, F> {
    channel: &'a Channel<T>,
    value: Option<T>,
    done: Option<F>,
}

impl<T: Send, R, F: FnOnce(Result<(), SendError<T>>) -> R> Case<R> for SendCase<'_, T, F> {
    fn attempt(&mut self) -> Option<R> {
        let value = self.value.take().expect("a case completes once");
        match self.channel.try_send(value) {
            Err(SendError { error: Error::Full, value }) => {
                self.value = Some(value);
                None
            }
            outcome => Some((self.done.take().expect("a case completes once"))(outcome)),
        }
    }

    fn ready(&self) -> bool {
        self.channel.send_ready()
    }

    fn queue(&self) -> &WaitQueue {
        self.channel.senders_queue()
    }
}

/// A set of channel operations of which exactly one will happen.
///
/// Build it with [`recv`](Self::recv) and [`send`](Self::send), then call
/// [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout),
/// [`wait_with`](Self::wait_with) or [`try_select`](Self::try_select). Every
/// case's closure turns its outcome into the common result type `R`; only the
/// chosen case's closure runs.
pub struct Select<'a, R> {
    cases: Vec<Box<dyn Case<R> + 'a>>,
}

impl<R> Default for Select<'_, R> {
    fn default() -> Self {
        Select { cases: Vec::new() }
    }
}

impl<R> std::fmt::Debug for Select<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("cases", &self.cases.len()).finish()
    }
}

impl<'a, R> Select<'a, R> {
    /// An empty select.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a receive case; `done` gets the item, or `Err(Closed)` once the
    /// channel is closed and drained (or `Err(Busy)`).
    pub fn recv<T: Send + 'a>(
        mut self,
        channel: &'a Channel<T>,
        done: impl FnOnce(Result<T, Error>) -> R + 'a,
    ) -> Self {
        self.cases.push(Box::new(RecvCase { channel, done: Some(done) }));
        self
    }

    /// Adds a send case; `done` gets `Ok(())`, or the error with the value
    /// handed back (`Closed`, `Busy`).
    pub fn send<T: Send + 'a>(
        mut self,
        channel: &'a Channel<T>,
        value: T,
        done: impl FnOnce(Result<(), SendError<T>>) -> R + 'a,
    ) -> Self {
        self.cases.push(Box::new(SendCase { channel, value: Some(value), done: Some(done) }));
        self
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// True when there is no case.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Completes a case that is ready now, or returns `None` (the default
    /// case of Go's `select`).
    pub fn try_select(mut self) -> Option<R> {
        let n = self.cases.len();
        let first = random_below(n);
        (0..n).find_map(|k| self.cases[(first + k) % n].attempt())
    }

    /// Waits until one case completes.
    ///
    /// # Panics
    /// If there is no case (it would wait forever).
    pub fn wait(self) -> R {
        assert!(!self.cases.is_empty(), "Select::wait with no case would wait forever");
        self.wait_with(&WaitOptions::new()).expect("no deadline, no interrupt hook")
    }

    /// Waits at most `timeout`; `Err(Timeout)` if no case completed.
    pub fn wait_timeout(self, timeout: Duration) -> Result<R, Error> {
        self.wait_with(&WaitOptions::new().deadline_opt(Instant::now().checked_add(timeout)))
    }

    /// Waits as `opts` allows: `Err(Timeout)` at the deadline,
    /// `Err(Interrupted)` if the interrupt hook says stop, and
    /// `Err(InvalidArgument)` for a select without cases, deadline or cancel
    /// token (a select without cases waits for one of those).
    pub fn wait_with(mut self, opts: &WaitOptions<'_>) -> Result<R, Error> {
        let n = self.cases.len();
        if n == 0 {
            if opts.deadline.is_none() && opts.cancel.is_none() {
                return Err(Error::invalid("cases", "a select with no case and no deadline would wait forever"));
            }
            // Nothing can complete: wait like any other blocked operation, so
            // the deadline, the cancel token and the interrupt hook all end it.
            return crate::waiter::block_on(&WaitQueue::new(), opts, || None, || false);
        }
        let mut backoff = Backoff::new();
        let mut first = random_below(n);
        loop {
            if let Some(r) = (0..n).find_map(|k| self.cases[(first + k) % n].attempt()) {
                return Ok(r);
            }
            opts.cancelled()?;
            if let Some(d) = opts.deadline {
                if Instant::now() >= d {
                    return Err(Error::Timeout);
                }
            }
            if !backoff.is_completed() {
                backoff.snooze();
                first = random_below(n);
                continue;
            }
            let cases = &self.cases;
            let sel = Context::with(|cx| {
                for (i, case) in cases.iter().enumerate() {
                    case.queue().register(cx, FIRST_OPERATION + i);
                }
                barrier::heavy();
                if cases.iter().any(|c| c.ready()) {
                    let _ = cx.try_select(Selected::Aborted);
                }
                let (sel, interrupted) = cx.wait_until(opts);
                // The selecting queue (if any) removed its entry; the others
                // still hold one.
                for case in cases.iter() {
                    case.queue().unregister(cx);
                }
                if interrupted {
                    if let Selected::Operation(token) = sel {
                        // Pass the wake-up of the case we will not complete on.
                        cases[token - FIRST_OPERATION].queue().notify_one();
                    }
                    return Selected::Interrupted;
                }
                sel
            });
            first = match sel {
                Selected::Interrupted => return Err(opts.stop_error()),
                // Try the case whose notifier chose us first, so its wake-up
                // is not spent on another case.
                Selected::Operation(token) => token - FIRST_OPERATION,
                Selected::Aborted | Selected::Waiting => random_below(n),
            };
        }
    }
}

/// A random index below `n` (a per-thread xorshift; fairness, not security).
fn random_below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static STATE: Cell<u64> = Cell::new({
                // Seed from the thread's stack address and the clock.
                let local = 0u8;
                let addr = &local as *const u8 as u64;
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                (addr ^ t.rotate_left(17)) | 1
            });
        }
        STATE.with(|s| {
            let mut x = s.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.set(x);
            (x % n as u64) as usize
        })
    }
    #[cfg(loom)]
    {
        0
    }
}
