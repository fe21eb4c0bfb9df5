//! Task groups: structured concurrency on the work-stealing pool.
//!
//! Every task belongs to a [`TaskGroup`]; [`TaskGroup::join`] waits for all
//! of them, so nothing outlives its group. Each group has a
//! [`CancelToken`]; every task receives it. The first task that fails (returns
//! an error or panics) cancels the token — fail-fast — and tasks not yet
//! started are skipped; running ones see the token and may stop. `join`
//! returns every failure, in spawn order, not just the first.
//!
//! Groups nest: a group built with [`TaskGroupBuilder::parent`] gets a child
//! of that token, so cancelling the outer group cancels the inner one and not
//! the other way round. A group may have a deadline (its token fires with
//! [`CancelReason::DeadlineExceeded`]) and a concurrency limit: at most `k` of
//! its tasks run at once, the rest wait in the group, in order, without
//! blocking the spawner (like Go's `errgroup.SetLimit`, minus the blocking).
//!
//! A `join` called on one of the pool's workers runs queued tasks while it
//! waits, so groups can nest inside tasks without starving the pool.
//!
//! ```
//! use nimsync_core::TaskGroup;
//! let group = TaskGroup::new();
//! let squares: Vec<_> = (0..10u64).map(|i| group.spawn(move |_token| Ok(i * i))).collect();
//! group.join().unwrap();
//! let total: u64 = squares.iter().map(|h| h.take().unwrap()).sum();
//! assert_eq!(total, 285);
//!
//! // Fail-fast: one error cancels the siblings; join reports it.
//! let group = TaskGroup::new();
//! group.spawn(|_| -> Result<(), _> { Err("disk full".into()) });
//! let sleeper = group.spawn(|token| {
//!     while !token.is_cancelled() {
//!         std::thread::yield_now();
//!     }
//!     Ok("stopped")
//! });
//! let err = group.join().unwrap_err();
//! assert_eq!(err.errors.len(), 1);
//! assert_eq!(err.errors[0].to_string(), "task 0 failed: disk full");
//! // The sleeper either saw the cancellation or never started.
//! assert!(sleeper.take() == Some("stopped") || err.skipped == 1);
//! ```

use crate::cancel::{CancelReason, CancelToken};
use crate::error::Error;
use crate::scheduler::{Helpers, Scheduler, Task};
use crate::sync::{lock, AtomicUsize, Mutex, Ordering};
use crate::wait_group::{WaitGroup, WaitGroupFuture};
use crate::waiter::WaitOptions;
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The error type a task may return (anything that converts with `?`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one task failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskFailure {
    /// The task returned this error.
    Failed(BoxError),
    /// The task panicked with this message.
    Panicked(String),
}

/// One failed task of a group: its spawn index and what happened.
#[derive(Debug)]
pub struct TaskError {
    /// The task's position in spawn order (0 for the first spawned).
    pub task: usize,
    /// What went wrong.
    pub failure: TaskFailure,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            TaskFailure::Failed(e) => write!(f, "task {} failed: {e}", self.task),
            TaskFailure::Panicked(m) => write!(f, "task {} panicked: {m}", self.task),
        }
    }
}

impl std::error::Error for TaskError {}

/// What [`TaskGroup::join`] reports when the group did not simply succeed.
#[derive(Debug)]
pub struct GroupError {
    /// Every failed task, in spawn order.
    pub errors: Vec<TaskError>,
    /// Why the group's token was cancelled, if it was (by a failure, its
    /// deadline, a parent, or an explicit cancel).
    pub cancelled: Option<CancelReason>,
    /// Tasks that never started because the group was cancelled first.
    pub skipped: usize,
    /// Whether the joining thread's wait was interrupted (a signal whose
    /// handler asked to stop, e.g. Ctrl-C in Python). The group was then
    /// cancelled and joined all the same.
    pub interrupted: bool,
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.errors.first(), &self.cancelled) {
            (Some(first), _) if self.errors.len() == 1 => write!(f, "{first}"),
            (Some(first), _) => write!(f, "{} tasks failed; the first: {first}", self.errors.len()),
            (None, Some(reason)) => write!(f, "task group {reason}"),
            (None, None) => f.write_str("task group wait interrupted"),
        }
    }
}

impl std::error::Error for GroupError {}

/// The result slot of one task ([`TaskGroup::spawn`]).
pub struct TaskHandle<T> {
    slot: Arc<Mutex<Option<T>>>,
    index: usize,
}

impl<T> TaskHandle<T> {
    /// Takes the task's value: `Some` once it finished successfully (after
    /// [`TaskGroup::join`]), `None` if it failed, was skipped, is still
    /// running, or was taken already.
    pub fn take(&self) -> Option<T> {
        lock(&self.slot).take()
    }

    /// The task's position in spawn order.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("index", &self.index).finish()
    }
}

struct Limit {
    max: usize,
    running: usize,
    held: VecDeque<Task>,
}

struct Inner {
    scheduler: Scheduler,
    token: CancelToken,
    /// Tasks spawned and not finished (queued, held by the limit, or running).
    /// While it is above zero the group holds one reference to itself (taken
    /// on the step from 0 to 1, released on the step back), so that tasks
    /// need no reference count of their own: see [`TaskGroup::submit`].
    pending: WaitGroup,
    /// On a line of its own: the spawning thread bumps it for every task,
    /// and the fields above are read by the workers running them.
    spawned: CachePadded<AtomicUsize>,
    /// Workers that joined the group and sleep until `pending` reaches zero.
    joiners: Helpers,
    errors: Mutex<Vec<TaskError>>,
    skipped: AtomicUsize,
    limit: Option<Mutex<Limit>>,
}

/// A set of tasks that is joined as a whole (see the [module docs](self)).
/// Clones share the group, so tasks can spawn siblings.
#[derive(Clone)]
pub struct TaskGroup {
    inner: Arc<Inner>,
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("pending", &self.inner.pending.count())
            .field("cancelled", &self.inner.token.is_cancelled())
            .finish()
    }
}

impl Default for TaskGroup {
    fn default() -> Self {
        Self::new()
    }
}

/// What a metrics source reads from a group ([`TaskGroup::stats_probe`]).
pub(crate) struct GroupStats {
    pub(crate) spawned: usize,
    pub(crate) pending: usize,
    pub(crate) failures: usize,
    pub(crate) skipped: usize,
    pub(crate) cancelled: bool,
}

/// Options of a new [`TaskGroup`].
#[derive(Debug, Default, Clone)]
pub struct TaskGroupBuilder {
    scheduler: Option<Scheduler>,
    parent: Option<CancelToken>,
    limit: Option<usize>,
    deadline: Option<Instant>,
}

impl TaskGroupBuilder {
    /// Run the tasks on `scheduler` (default: [`Scheduler::global`]).
    pub fn scheduler(mut self, scheduler: &Scheduler) -> Self {
        self.scheduler = Some(scheduler.clone());
        self
    }

    /// Make the group's token a child of `parent` (an enclosing group's
    /// [`token`](TaskGroup::token), for nested groups).
    pub fn parent(mut self, parent: &CancelToken) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// Run at most `max` of the group's tasks at once (at least 1).
    pub fn limit(mut self, max: usize) -> Self {
        self.limit = Some(max);
        self
    }

    /// Cancel the group at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Cancel the group `timeout` from now.
    pub fn timeout(self, timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.deadline(d),
            None => self,
        }
    }

    /// Creates the group. Fails with [`Error::InvalidArgument`] for a limit of 0.
    pub fn build(self) -> Result<TaskGroup, Error> {
        if self.limit == Some(0) {
            return Err(Error::invalid("limit", "must be at least 1"));
        }
        let parent = self.parent.unwrap_or_default();
        let token = match self.deadline {
            Some(d) => parent.with_deadline(d),
            None => parent.child(),
        };
        Ok(TaskGroup {
            inner: Arc::new(Inner {
                scheduler: self.scheduler.unwrap_or_else(|| Scheduler::global().clone()),
                token,
                pending: WaitGroup::new(),
                spawned: CachePadded::new(AtomicUsize::new(0)),
                joiners: Helpers::default(),
                errors: Mutex::new(Vec::new()),
                skipped: AtomicUsize::new(0),
                limit: self.limit.map(|max| Mutex::new(Limit { max, running: 0, held: VecDeque::new() })),
            }),
        })
    }
}

impl TaskGroup {
    /// A group on the global scheduler with a fresh root token.
    pub fn new() -> TaskGroup {
        TaskGroup::builder().build().expect("default options are valid")
    }

    /// Options for a new group.
    pub fn builder() -> TaskGroupBuilder {
        TaskGroupBuilder::default()
    }

    /// The group's token: cancelled on the first failure, on the deadline,
    /// with the parent, or by [`cancel`](Self::cancel). Pass it to blocking
    /// calls inside tasks ([`WaitOptions::cancel`]).
    pub fn token(&self) -> &CancelToken {
        &self.inner.token
    }

    /// Cancels the group's token (tasks not yet started are skipped).
    pub fn cancel(&self, message: &str) -> bool {
        self.inner.token.cancel(message)
    }

    /// Reads the group's counters without keeping it alive (`None` once the
    /// last handle and task are gone): what a metrics collector holds.
    pub(crate) fn stats_probe(&self) -> Box<dyn Fn() -> Option<GroupStats> + Send + Sync> {
        let weak = Arc::downgrade(&self.inner);
        Box::new(move || {
            let inner = weak.upgrade()?;
            let failures = lock(&inner.errors).len();
            Some(GroupStats {
                // Relaxed: statistics.
                spawned: inner.spawned.load(Ordering::Relaxed),
                pending: inner.pending.count(),
                failures,
                // Relaxed: statistics.
                skipped: inner.skipped.load(Ordering::Relaxed),
                cancelled: inner.token.is_cancelled(),
            })
        })
    }

    /// Whether every task spawned so far has finished, so that
    /// [`join`](Self::join) would return at once.
    pub fn is_finished(&self) -> bool {
        self.inner.pending.count() == 0
    }

    /// Completes when every task spawned so far has finished: the wait of
    /// [`join`](Self::join) for event loops. After it completes, `join`
    /// returns the outcome without blocking.
    ///
    /// ```
    /// use nimsync_core::{LoopWaker, TaskGroup};
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::Context;
    ///
    /// let loop_waker = LoopWaker::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let group = TaskGroup::new();
    /// group.go(move |_| Ok(rx.recv()?));
    /// let mut finished = pin!(group.finished_async());
    /// let waker = loop_waker.waker(1);
    /// assert!(finished.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    /// tx.send(()).unwrap(); // the task ends: token 1 is woken, the fd readable
    /// let mut fd = libc::pollfd { fd: loop_waker.fd(), events: libc::POLLIN, revents: 0 };
    /// // SAFETY: one live pollfd; an event loop would do this wait.
    /// assert_eq!(unsafe { libc::poll(&mut fd, 1, -1) }, 1);
    /// assert_eq!(loop_waker.drain(), vec![1]);
    /// assert!(finished.poll(&mut Context::from_waker(&waker)).is_ready());
    /// assert!(group.join().is_ok());
    /// ```
    pub fn finished_async(&self) -> WaitGroupFuture {
        self.inner.pending.wait_async()
    }

    /// Starts `task` in the group. It receives the group's token; its `Ok`
    /// value lands in the returned handle, its `Err` (or a panic) is recorded
    /// and cancels the group.
    pub fn spawn<T, F>(&self, task: F) -> TaskHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(&CancelToken) -> Result<T, BoxError> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let keep = slot.clone();
        let index = self.submit(move |inner, index| {
            if let Some(v) = inner.run(index, task) {
                *lock(&keep) = Some(v);
            }
        });
        TaskHandle { slot, index }
    }

    /// Starts `task` in the group without a result handle (Go's
    /// `errgroup.Go`): the cheapest spawn. Failures are reported by `join`
    /// like those of [`spawn`](Self::spawn).
    ///
    /// ```
    /// use nimsync_core::TaskGroup;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let sum = Arc::new(AtomicU64::new(0));
    /// let group = TaskGroup::new();
    /// for i in 1..=100 {
    ///     let sum = sum.clone();
    ///     group.go(move |_| {
    ///         sum.fetch_add(i, Ordering::Relaxed);
    ///         Ok(())
    ///     });
    /// }
    /// group.join().unwrap();
    /// assert_eq!(sum.load(Ordering::Relaxed), 5050);
    /// ```
    pub fn go<F>(&self, task: F)
    where
        F: FnOnce(&CancelToken) -> Result<(), BoxError> + Send + 'static,
    {
        self.submit(move |inner, index| {
            inner.run(index, task);
        });
    }

    /// Counts, wraps and schedules one task; returns its spawn index.
    ///
    /// The task reaches the group through a plain pointer rather than an
    /// `Arc` clone: a clone per task would make the spawner and every worker
    /// write the reference count's cache line once per task. Instead the
    /// group keeps itself alive while it has pending tasks — the spawn that
    /// raises `pending` from 0 takes one strong reference (the spawner holds
    /// the group, so it is alive then), and the task whose finish brings
    /// `pending` back to 0 releases it as its very last step. Each 0 → 1 step
    /// is paired with the next 1 → 0 step by the counter's own atomic
    /// read-modify-writes. The pool runs every queued task, even at shutdown
    /// (it drains), so every reference taken is released.
    fn submit(&self, body: impl FnOnce(&Inner, usize) + Send + 'static) -> usize {
        let inner = &self.inner;
        // Relaxed: only uniqueness and order of spawns from one thread matter.
        let index = inner.spawned.fetch_add(1, Ordering::Relaxed);
        // The task runs in the trace context current at spawn, if any (one
        // thread-local read when there is none).
        let trace_context = crate::tracing::spawn_context();
        if inner.pending.add_one() {
            // SAFETY: `self.inner` is a live `Arc`; this reference is released
            // by `finish_last` below.
            unsafe { Arc::increment_strong_count(Arc::as_ptr(inner)) };
        }
        let job: Task = {
            let group = GroupPtr(Arc::as_ptr(inner));
            Box::new(move || {
                let trace_guard = trace_context.map(crate::tracing::Context::attach_boxed);
                // SAFETY: the group is alive while this task is pending (see
                // above), and this task stays pending until `finish_last`.
                unsafe {
                    body(&*group.get(), index);
                    drop(trace_guard);
                    Inner::finish_last(group.get());
                }
            })
        };
        match &inner.limit {
            Some(limit) => {
                let mut l = lock(limit);
                if l.running < l.max {
                    l.running += 1;
                    drop(l);
                    inner.scheduler.spawn_task(job);
                } else {
                    l.held.push_back(job);
                }
            }
            None => inner.scheduler.spawn_task(job),
        }
        index
    }

    /// Waits until every task has finished; `Ok` if none failed and the group
    /// was not cancelled. On one of the pool's workers, runs queued tasks
    /// while waiting.
    pub fn join(&self) -> Result<(), GroupError> {
        self.join_with(&WaitOptions::new())
    }

    /// [`join`](Self::join), waiting as `opts` allows. If the wait ends early
    /// (its deadline, its cancel token, an interrupt), the group is cancelled
    /// and then joined to the end all the same: no task outlives the join.
    pub fn join_with(&self, opts: &WaitOptions<'_>) -> Result<(), GroupError> {
        let inner = &self.inner;
        let mut interrupted = false;
        let done = || inner.pending.count() == 0;
        if inner.scheduler.on_worker() {
            // A worker helps instead of blocking; the options' token and
            // deadline then end the join by cancelling the group, whose tasks
            // finish (or are skipped) and so bring the join to its end.
            let cancel_group = |why: Error| {
                let group = inner.token.clone();
                move |_: &CancelReason| {
                    group.cancel(&format!("join ended early: {why}"));
                }
            };
            let deadline = opts.deadline.map(|d| CancelToken::new().with_deadline(d));
            let _watch_deadline = deadline.as_ref().map(|t| t.on_cancel(cancel_group(Error::Timeout)));
            let _watch_token = opts.cancel.map(|t| t.on_cancel(cancel_group(Error::Cancelled)));
            inner.scheduler.help_until(&done, Some(&inner.joiners));
        } else if let Err(e) = inner.pending.wait_with(opts) {
            interrupted = e == Error::Interrupted;
            inner.token.cancel(&format!("join ended early: {e}"));
            inner.pending.wait();
        }
        let errors = std::mem::take(&mut *lock(&inner.errors));
        let cancelled = inner.token.reason();
        let skipped = inner.skipped.swap(0, Ordering::Relaxed);
        if errors.is_empty() && cancelled.is_none() && !interrupted {
            return Ok(());
        }
        let mut errors = errors;
        errors.sort_by_key(|e| e.task);
        Err(GroupError { errors, cancelled, skipped, interrupted })
    }
}

impl Inner {
    /// Runs one task unless the group is cancelled; records a failure.
    fn run<T, F>(&self, index: usize, task: F) -> Option<T>
    where
        F: FnOnce(&CancelToken) -> Result<T, BoxError>,
    {
        if self.token.is_cancelled() {
            // Relaxed: a count read after join's wait, which orders it.
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&self.token)));
        let failure = match outcome {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => {
                // A task that stopped because the group was cancelled is not a
                // failure of its own.
                if self.token.is_cancelled()
                    && matches!(e.downcast_ref::<Error>(), Some(Error::Cancelled | Error::Timeout))
                {
                    return None;
                }
                TaskFailure::Failed(e)
            }
            Err(payload) => TaskFailure::Panicked(panic_message(payload.as_ref())),
        };
        let message = match &failure {
            TaskFailure::Failed(e) => format!("task {index} failed: {e}"),
            TaskFailure::Panicked(m) => format!("task {index} panicked: {m}"),
        };
        lock(&self.errors).push(TaskError { task: index, failure });
        self.token.cancel(&message);
        None
    }

    /// Finishes one task of the group `this` points to: feeds the limit,
    /// lowers `pending`, and releases the group's reference to itself if this
    /// was the last pending task. `this` is not used after that.
    ///
    /// # Safety
    /// `this` points to a live group with this task counted in `pending`.
    unsafe fn finish_last(this: *const Inner) {
        // SAFETY: live until the release below (caller contract).
        let last = unsafe { &*this }.finish();
        if last {
            // Joiners on the pool's workers may be asleep in `help_until`.
            // SAFETY: still live: the group's own reference is released below.
            let group = unsafe { &*this };
            group.scheduler.wake_helpers(&group.joiners);
            // SAFETY: pairs with the increment made when `pending` left 0;
            // nothing touches the group after this.
            unsafe { Arc::decrement_strong_count(this) };
        }
    }

    /// Feeds the limit and lowers `pending`; true if it reached zero.
    fn finish(&self) -> bool {
        if let Some(limit) = &self.limit {
            let next = {
                let mut l = lock(limit);
                let next = l.held.pop_front();
                if next.is_none() {
                    l.running -= 1;
                }
                next
            };
            if let Some(job) = next {
                self.scheduler.spawn_task(job);
            }
        }
        self.pending.done_counted()
    }
}

/// The group as seen by its queued tasks (see [`TaskGroup::submit`]).
struct GroupPtr(*const Inner);

// SAFETY: `Inner` is `Sync` (shared by `Arc` across threads already); the
// pointer is only dereferenced while the group keeps itself alive.
unsafe impl Send for GroupPtr {}

impl GroupPtr {
    /// The pointer; a method, so closures capture the `Send` wrapper whole.
    fn get(&self) -> *const Inner {
        self.0
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}
