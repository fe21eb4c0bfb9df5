//! Blocking: how a thread waits for a channel operation to become possible and
//! how the thread that makes it possible wakes exactly one waiter.
//!
//! The shape follows crossbeam-channel's `context.rs` and `waker.rs`. A waiting
//! operation owns a [`Context`] whose `select` word starts at `WAITING`; it puts
//! the context into a [`WaitQueue`], re-checks its condition, and parks. A
//! notifier wins the context with a compare-and-swap from `WAITING` to the
//! selected operation and unparks its thread; a waiter that times out or is
//! interrupted wins it with `ABORTED`/`INTERRUPTED` instead. Exactly one of the
//! two wins, so a wake-up is never spent on a waiter that has already given up.
//!
//! The fast path of a notifier reads one counter. The race between "register,
//! then re-check" and "publish, then read the counter" is closed by the
//! asymmetric barriers of [`crate::barrier`].

use crate::barrier;
use crate::cancel::CancelToken;
use crate::park::{Parker, Wake};
use crate::sync::{lock, Arc, AtomicUsize, Mutex, Ordering};
use std::collections::VecDeque;
use std::time::Instant;

/// How a wait ended, as stored in a context's `select` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// Still waiting.
    Waiting,
    /// Gave up: the deadline passed, or the condition held before sleeping.
    Aborted,
    /// Gave up: a signal arrived and the interrupt hook asked to stop.
    Interrupted,
    /// A notifier chose this waiter for the operation with this token.
    Operation(usize),
}

const WAITING: usize = 0;
const ABORTED: usize = 1;
const INTERRUPTED: usize = 2;
/// Operation tokens start here; a plain channel operation uses this one.
pub(crate) const FIRST_OPERATION: usize = 3;

impl Selected {
    fn to_word(self) -> usize {
        match self {
            Selected::Waiting => WAITING,
            Selected::Aborted => ABORTED,
            Selected::Interrupted => INTERRUPTED,
            Selected::Operation(t) => t,
        }
    }

    fn from_word(w: usize) -> Self {
        match w {
            WAITING => Selected::Waiting,
            ABORTED => Selected::Aborted,
            INTERRUPTED => Selected::Interrupted,
            t => Selected::Operation(t),
        }
    }
}

/// What a blocking operation may wait for, besides its own condition.
///
/// ```
/// use nimsync_core::{Channel, Error, Mode, WaitOptions};
/// use std::time::{Duration, Instant};
/// let ch = Channel::<u8>::new(4, Mode::Spsc).unwrap();
/// let opts = WaitOptions::new().deadline(Instant::now() + Duration::from_millis(5));
/// assert_eq!(ch.recv_with(&opts), Err(Error::Timeout));
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct WaitOptions<'a> {
    /// Give up with [`crate::Error::Timeout`] at this instant.
    pub deadline: Option<Instant>,
    /// Called when a signal interrupts the sleep; returning `true` ends the
    /// wait with [`crate::Error::Interrupted`]. Bindings use it to run the host
    /// language's signal handlers (Python's `KeyboardInterrupt`).
    pub interrupt: Option<&'a dyn Fn() -> bool>,
    /// Give up with [`crate::Error::Cancelled`] (or [`crate::Error::Timeout`]
    /// for a deadline token) as soon as this token is cancelled.
    pub cancel: Option<&'a CancelToken>,
}

impl<'a> WaitOptions<'a> {
    /// Wait without limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop waiting at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Stop waiting at `deadline` if one is given.
    pub fn deadline_opt(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Ask `hook` whether to stop whenever a signal interrupts the sleep.
    pub fn interrupt(mut self, hook: &'a dyn Fn() -> bool) -> Self {
        self.interrupt = Some(hook);
        self
    }

    /// Stop waiting when `token` is cancelled (see [`crate::cancel`]).
    pub fn cancel(mut self, token: &'a CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The cancel token's error, if it has fired.
    #[inline]
    pub(crate) fn cancelled(&self) -> Result<(), crate::Error> {
        match self.cancel {
            Some(t) if t.is_cancelled() => t.check(),
            _ => Ok(()),
        }
    }

    /// Why a wait that `wait_until` reported as interrupted stopped: the
    /// cancel token, or the interrupt hook.
    pub(crate) fn stop_error(&self) -> crate::Error {
        self.cancelled().err().unwrap_or(crate::Error::Interrupted)
    }
}

impl std::fmt::Debug for WaitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitOptions")
            .field("deadline", &self.deadline)
            .field("interrupt", &self.interrupt.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

struct Inner {
    select: AtomicUsize,
    unparker: Unparker,
}

/// How a selected waiter is woken: a parked thread, or an async task.
enum Unparker {
    Thread(Parker),
    Task(std::task::Waker),
}

/// One waiting operation of one thread.
#[derive(Clone)]
pub(crate) struct Context {
    inner: Arc<Inner>,
}

impl Context {
    fn new() -> Self {
        Context {
            inner: Arc::new(Inner { select: AtomicUsize::new(WAITING), unparker: Unparker::Thread(Parker::new()) }),
        }
    }

    /// A context nobody waits on: the stand-in sender of a value a receiver
    /// had to put back (see `zero.rs`). Selecting it wakes nobody.
    pub(crate) fn orphan() -> Self {
        Context::new()
    }

    /// A context for an async task: selecting it wakes `waker`.
    pub(crate) fn for_task(waker: &std::task::Waker) -> Self {
        Context {
            inner: Arc::new(Inner { select: AtomicUsize::new(WAITING), unparker: Unparker::Task(waker.clone()) }),
        }
    }

    /// Runs `f` with this thread's context, reset to `Waiting`.
    pub(crate) fn with<R>(f: impl FnOnce(&Context) -> R) -> R {
        #[cfg(not(loom))]
        {
            thread_local! {
                static CONTEXT: std::cell::Cell<Option<Context>> = const { std::cell::Cell::new(None) };
            }
            let cached = CONTEXT.try_with(|c| c.take()).ok().flatten();
            // A context still referenced by some queue (it should not be, after
            // the wait unregistered) must not be reused.
            let cx = match cached {
                Some(cx) if Arc::strong_count(&cx.inner) == 1 => {
                    cx.reset();
                    cx
                }
                _ => Context::new(),
            };
            let r = f(&cx);
            let _ = CONTEXT.try_with(|c| c.set(Some(cx)));
            r
        }
        #[cfg(loom)]
        {
            f(&Context::new())
        }
    }

    #[cfg_attr(loom, allow(dead_code))]
    fn reset(&self) {
        // Relaxed: only this thread uses the context while nobody else holds it.
        self.inner.select.store(WAITING, Ordering::Relaxed);
    }

    /// Claims the context for `sel`; fails with the current selection if
    /// somebody claimed it first.
    pub(crate) fn try_select(&self, sel: Selected) -> Result<(), Selected> {
        // AcqRel: a notifier's Release publishes what it did before selecting
        // (the item it made available) to the waiter's Acquire in `selected`;
        // Acquire on success orders an aborting waiter after an earlier notify.
        self.inner
            .select
            .compare_exchange(WAITING, sel.to_word(), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Selected::from_word)
    }

    pub(crate) fn selected(&self) -> Selected {
        // Acquire: pairs with the AcqRel in `try_select`.
        Selected::from_word(self.inner.select.load(Ordering::Acquire))
    }

    pub(crate) fn unpark(&self) {
        match &self.inner.unparker {
            Unparker::Thread(p) => p.unpark(),
            Unparker::Task(w) => w.wake_by_ref(),
        }
    }

    fn parker(&self) -> &Parker {
        match &self.inner.unparker {
            Unparker::Thread(p) => p,
            Unparker::Task(_) => unreachable!("task contexts are polled, never parked"),
        }
    }

    pub(crate) fn same(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Sleeps until selected, the deadline passes, or an interrupt hook says
    /// stop. Returns the final selection (never `Waiting`), and whether the
    /// interrupt hook asked to stop.
    ///
    /// When the hook asks to stop after a notifier already selected us, the
    /// selection is returned with `true`: the caller must give up all the
    /// same and pass the wake-up on (the hook has run the host's signal
    /// handler; its exception must not be swallowed, nor the wake-up lost).
    ///
    /// A cancelled token counts as an interrupt: its callback unparks the
    /// thread, which then gives up like an interrupted one.
    pub(crate) fn wait_until(&self, opts: &WaitOptions<'_>) -> (Selected, bool) {
        let _wake_on_cancel = opts.cancel.map(|token| {
            let cx = self.clone();
            token.on_cancel(move |_| cx.unpark())
        });
        loop {
            let sel = self.selected();
            if sel != Selected::Waiting {
                return (sel, false);
            }
            let giving_up = if opts.cancelled().is_err() { Some(Selected::Interrupted) } else { self.park_once(opts) };
            if let Some(reason) = giving_up {
                // Either we give up, or a notifier got here first and we
                // honour its selection.
                let interrupted = reason == Selected::Interrupted;
                return match self.try_select(reason) {
                    Ok(()) => (reason, interrupted),
                    Err(sel) => (sel, interrupted),
                };
            }
        }
    }

    /// Parks once; returns the reason to give up, if there is one.
    fn park_once(&self, opts: &WaitOptions<'_>) -> Option<Selected> {
        match self.parker().park(opts.deadline) {
            Wake::TimedOut => Some(Selected::Aborted),
            Wake::Interrupted => match opts.interrupt {
                Some(hook) if hook() => Some(Selected::Interrupted),
                _ => None,
            },
            Wake::Notified | Wake::Spurious => None,
        }
    }
}

struct Entry {
    cx: Context,
    operation: usize,
}

/// The threads blocked on one condition of one channel ("not full", "not
/// empty"), in arrival order.
pub(crate) struct WaitQueue {
    /// Number of registered entries. Written under the lock by waiters, read
    /// without it by notifiers after a light barrier.
    len: AtomicUsize,
    entries: Mutex<VecDeque<Entry>>,
}

impl WaitQueue {
    pub(crate) fn new() -> Self {
        WaitQueue { len: AtomicUsize::new(0), entries: Mutex::new(VecDeque::new()) }
    }

    /// Adds `cx` as waiting for `operation`. The caller must issue
    /// [`barrier::heavy`] before re-checking its condition.
    pub(crate) fn register(&self, cx: &Context, operation: usize) {
        let mut entries = lock(&self.entries);
        entries.push_back(Entry { cx: cx.clone(), operation });
        // Relaxed: made visible to notifiers by the waiter's heavy barrier.
        self.len.store(entries.len(), Ordering::Relaxed);
    }

    /// Removes `cx` if it is still registered.
    pub(crate) fn unregister(&self, cx: &Context) {
        let mut entries = lock(&self.entries);
        if let Some(i) = entries.iter().position(|e| e.cx.same(cx)) {
            entries.remove(i);
            // Relaxed: a stale non-zero only sends a notifier to the lock.
            self.len.store(entries.len(), Ordering::Relaxed);
        }
    }

    /// Wakes the longest-waiting thread that can still be selected, if any.
    /// Call after making the condition true.
    #[inline]
    pub(crate) fn notify_one(&self) {
        barrier::light();
        // Relaxed: the light barrier, paired with the waiter's heavy barrier,
        // guarantees we see its registration or it sees our change.
        if self.len.load(Ordering::Relaxed) != 0 {
            self.notify_one_slow();
        }
    }

    #[cold]
    fn notify_one_slow(&self) {
        let chosen = {
            let mut entries = lock(&self.entries);
            let pos = entries.iter().position(|e| e.cx.try_select(Selected::Operation(e.operation)).is_ok());
            let chosen = pos.and_then(|i| entries.remove(i));
            self.len.store(entries.len(), Ordering::Relaxed);
            chosen
        };
        if let Some(e) = chosen {
            e.cx.unpark();
        }
    }

    /// Wakes every registered thread (the channel was closed).
    pub(crate) fn notify_all(&self) {
        barrier::light();
        if self.len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let drained: Vec<Entry> = {
            let mut entries = lock(&self.entries);
            self.len.store(0, Ordering::Relaxed);
            entries.drain(..).collect()
        };
        for e in drained {
            if e.cx.try_select(Selected::Operation(e.operation)).is_ok() {
                e.cx.unpark();
            }
        }
    }

    /// Number of threads currently registered (for metrics and tests).
    pub(crate) fn waiting(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// Runs a blocking operation: try it; spin a little; then register in `queue`,
/// re-check with `ready`, and park until a notifier, the deadline or an
/// interrupt ends the sleep.
///
/// `attempt` returns `Some` when the operation finished (successfully or with
/// a final error). `ready` says whether an attempt could now make progress; it
/// is consulted after registering, to close the race with a notifier that ran
/// before the registration was visible.
pub(crate) fn block_on<R>(
    queue: &WaitQueue,
    opts: &WaitOptions<'_>,
    mut attempt: impl FnMut() -> Option<R>,
    ready: impl Fn() -> bool,
) -> Result<R, crate::Error> {
    let mut backoff = crate::sync::Backoff::new();
    loop {
        if let Some(r) = attempt() {
            return Ok(r);
        }
        opts.cancelled()?;
        if let Some(d) = opts.deadline {
            if Instant::now() >= d {
                return Err(crate::Error::Timeout);
            }
        }
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        let sel = Context::with(|cx| {
            queue.register(cx, FIRST_OPERATION);
            barrier::heavy();
            if ready() {
                // Do not sleep: retry. If a notifier selected us meanwhile, its
                // selection stands and we retry just the same.
                let _ = cx.try_select(Selected::Aborted);
            }
            let (sel, interrupted) = cx.wait_until(opts);
            if !matches!(sel, Selected::Operation(_)) {
                queue.unregister(cx);
            }
            if interrupted {
                if let Selected::Operation(_) = sel {
                    // Woken for something we will not take: wake the next waiter.
                    queue.notify_one();
                }
                return Selected::Interrupted;
            }
            sel
        });
        match sel {
            Selected::Interrupted => return Err(opts.stop_error()),
            // Aborted (deadline or already ready) and notified alike: retry; the
            // deadline check above turns a passed deadline into Timeout after one
            // last attempt.
            Selected::Aborted | Selected::Operation(_) | Selected::Waiting => {}
        }
    }
}

/// The waiting half of one async operation (a future's registration in a
/// wait queue), the counterpart of [`block_on`] for tasks.
///
/// Each poll first [`settle`](Self::settle)s the previous registration, tries
/// the operation, and if it cannot proceed [`register`](Self::register)s
/// again with the task's current waker. Dropping a registration that was
/// already selected (woken for an item or a slot it will never use) passes the
/// wake-up on to the next waiter, so cancelling a task loses nothing.
#[derive(Default)]
pub(crate) struct AsyncWait {
    registered: Option<Context>,
}

impl AsyncWait {
    /// Ends the previous registration, if any.
    pub(crate) fn settle(&mut self, queue: &WaitQueue) {
        if let Some(cx) = self.registered.take() {
            // Aborting succeeds only if nobody selected us; a selecting
            // notifier has already removed our entry.
            if cx.try_select(Selected::Aborted).is_ok() {
                queue.unregister(&cx);
            }
        }
    }

    /// Registers the task behind `waker` in `queue`. Returns `true` if the
    /// operation became possible meanwhile (retry at once, nothing is
    /// registered), `false` if the task should wait for its waker.
    pub(crate) fn register(&mut self, queue: &WaitQueue, waker: &std::task::Waker, ready: impl Fn() -> bool) -> bool {
        debug_assert!(self.registered.is_none());
        let cx = Context::for_task(waker);
        queue.register(&cx, FIRST_OPERATION);
        barrier::heavy();
        if ready() {
            if cx.try_select(Selected::Aborted).is_ok() {
                queue.unregister(&cx);
            }
            // Selected meanwhile: its notifier removed the entry; the retry
            // consumes what it announced.
            return true;
        }
        self.registered = Some(cx);
        false
    }

    /// Abandons the operation (the future is dropped before completing).
    pub(crate) fn cancel(&mut self, queue: &WaitQueue) {
        if let Some(cx) = self.registered.take() {
            if cx.try_select(Selected::Aborted).is_ok() {
                queue.unregister(&cx);
            } else {
                // We were woken for something we will not take: wake the next
                // waiter in our place.
                queue.notify_one();
            }
        }
    }
}
