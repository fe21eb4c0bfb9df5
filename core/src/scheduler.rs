//! A work-stealing pool of worker threads.
//!
//! Each worker owns a deque (crossbeam-deque): tasks spawned on a worker go to
//! the back of its own deque and it pops them LIFO (hot in cache); tasks
//! spawned from outside go to a global injector. An idle worker takes from
//! the injector, then steals half of another worker's deque from the front.
//! Victims are chosen adaptively: the worker it last stole from successfully
//! first (work tends to stay where it was), then the others from a random
//! start. Lost steal races back off exponentially.
//!
//! A worker that finds nothing spins briefly, then sleeps on its own futex
//! until a spawn wakes it (`idle.rs`): no timed polling, one targeted wake-up
//! per spawned task.
//!
//! Metrics are per-worker atomic counters on their own cache lines, written by
//! their worker only: spawning, running and stealing take no lock.
//! [`Scheduler::metrics`] reads them at any time.
//!
//! A panic in a task is caught: the worker survives, the panic is counted,
//! and the task's owner (a [`TaskGroup`](crate::TaskGroup)) gets it as the
//! task's error. [`Scheduler::shutdown`] (or dropping the last handle) lets
//! the workers drain every queued task, then joins them.
//!
//! ```
//! use nimsync_core::Scheduler;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! let pool = Scheduler::new(2).unwrap();
//! let done = Arc::new(AtomicUsize::new(0));
//! for _ in 0..100 {
//!     let done = done.clone();
//!     pool.spawn(move || {
//!         done.fetch_add(1, Ordering::Relaxed);
//!     });
//! }
//! pool.shutdown(); // drains: every task ran
//! assert_eq!(done.load(Ordering::Relaxed), 100);
//! assert_eq!(pool.metrics().executed, 100);
//! ```

use crate::error::Error;
use crate::idle::Idle;
use crate::park::Parker;
use crate::sync::{fence, lock, AtomicBool, AtomicU64, AtomicUsize, Backoff, Mutex, Ordering};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// A unit of work.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// Counters of one worker. Only that worker writes them.
#[derive(Default)]
struct Counters {
    spawned: AtomicU64,
    executed: AtomicU64,
    stolen_by: AtomicU64,
    stolen_from: AtomicU64,
    parks: AtomicU64,
    panics: AtomicU64,
}

/// A snapshot of one worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Tasks spawned from this worker (into its own deque).
    pub spawned: u64,
    /// Tasks this worker ran, counted once each has returned (a join that
    /// saw a task finish may return a moment before its count moves).
    pub executed: u64,
    /// Tasks this worker took from other workers' deques.
    pub stolen_by: u64,
    /// Tasks other workers took from this worker's deque.
    pub stolen_from: u64,
    /// Tasks waiting in this worker's deque right now.
    pub queue_depth: usize,
    /// Times this worker went to sleep for lack of work.
    pub parks: u64,
    /// Tasks that panicked on this worker.
    pub panics: u64,
}

/// A snapshot of the whole pool ([`Scheduler::metrics`]).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SchedulerMetrics {
    /// Per worker, by index.
    pub workers: Vec<WorkerMetrics>,
    /// Tasks spawned from outside the pool (into the global queue).
    pub injected: u64,
    /// Tasks spawned in total (injected plus spawned by workers).
    pub spawned: u64,
    /// Tasks run in total.
    pub executed: u64,
    /// Tasks stolen in total.
    pub stolen: u64,
    /// Tasks waiting in the global queue right now.
    pub injector_depth: usize,
    /// How unevenly the work was spread: the busiest worker's executed count
    /// over the mean, minus one (0 = perfectly even; 1 = the busiest ran twice
    /// its share). 0 before any task ran.
    pub load_imbalance: f64,
}

struct WorkerSlot {
    stealer: Stealer<Task>,
    counters: CachePadded<Counters>,
    /// The victim this worker last stole from successfully (`usize::MAX`: none).
    last_victim: AtomicUsize,
}

struct Shared {
    injector: Injector<Task>,
    injected: AtomicU64,
    slots: Box<[WorkerSlot]>,
    parkers: Box<[Parker]>,
    idle: Idle,
    shutdown: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

thread_local! {
    /// The pool this thread works for and its index and deque, if it is a worker.
    static CURRENT: Cell<Option<(*const Shared, usize, *const Worker<Task>)>> = const { Cell::new(None) };
}

/// A handle on a pool of worker threads. Clones share the pool; it shuts down
/// (draining its queues) when the last handle is dropped or on
/// [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
    /// Shared by the handles (not the workers): the last one shuts down.
    _owner: Arc<OwnerToken>,
}

struct OwnerToken(Arc<Shared>);

impl Drop for OwnerToken {
    fn drop(&mut self) {
        shutdown(&self.0);
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("workers", &self.workers()).finish()
    }
}

impl Scheduler {
    /// Starts a pool of `workers` threads (at least 1, at most 1024).
    pub fn new(workers: usize) -> Result<Scheduler, Error> {
        if workers == 0 || workers > 1024 {
            return Err(Error::invalid("workers", format!("must be 1..=1024, got {workers}")));
        }
        let deques: Vec<Worker<Task>> = (0..workers).map(|_| Worker::new_lifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            injected: AtomicU64::new(0),
            slots: deques
                .iter()
                .map(|d| WorkerSlot {
                    stealer: d.stealer(),
                    counters: CachePadded::new(Counters::default()),
                    last_victim: AtomicUsize::new(usize::MAX),
                })
                .collect(),
            parkers: (0..workers).map(|_| Parker::new()).collect(),
            idle: Idle::new(),
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::with_capacity(workers);
        for (index, deque) in deques.into_iter().enumerate() {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("nimsync-worker-{index}"))
                .spawn(move || run_worker(&s, index, deque));
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    *lock(&shared.threads) = threads;
                    shutdown(&shared);
                    return Err(Error::OutOfMemory(format!("cannot start worker thread {index}: {e}")));
                }
            }
        }
        *lock(&shared.threads) = threads;
        Ok(Scheduler { _owner: Arc::new(OwnerToken(shared.clone())), shared })
    }

    /// The process-wide pool, started on first use with one worker per
    /// available core.
    pub fn global() -> &'static Scheduler {
        static GLOBAL: OnceLock<Scheduler> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            Scheduler::new(n).expect("nimsync: cannot start the global scheduler")
        })
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.slots.len()
    }

    /// Runs `task` on the pool. From one of its workers, the task goes to that
    /// worker's own deque; from elsewhere, to the global queue. After
    /// [`shutdown`](Self::shutdown) the task runs on the calling thread.
    ///
    /// A panic in `task` is caught and counted; use a
    /// [`TaskGroup`](crate::TaskGroup) to receive it as an error.
    pub fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        // The task runs in the trace context current here (if any).
        self.shared.spawn(crate::tracing::bind_current(task));
    }

    /// Spawns an already boxed task.
    pub(crate) fn spawn_task(&self, task: Task) {
        self.shared.spawn(task);
    }

    /// Runs `a` and `b`, in parallel when a worker is free, and returns both
    /// results (fork-join, like `rayon::join`). On a worker, `b` is offered
    /// to thieves while this thread runs `a`, then taken back if nobody stole
    /// it; while a thief runs it, this thread runs other queued tasks. From
    /// outside the pool, the pair runs on a worker and the caller blocks.
    /// A panic in either closure is resumed here once both have finished.
    ///
    /// ```
    /// use nimsync_core::Scheduler;
    /// fn fib(pool: &Scheduler, n: u64) -> u64 {
    ///     if n < 10 {
    ///         return (1..=n).fold((0, 1), |(a, b), _| (b, a + b)).0;
    ///     }
    ///     let (x, y) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
    ///     x + y
    /// }
    /// let pool = Scheduler::new(2).unwrap();
    /// assert_eq!(fib(&pool, 20), 6765);
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        if current_worker(&self.shared).is_none() {
            return self.install(move || self.join(a, b));
        }
        let job = Arc::new(ForkJob::new(b));
        let queued = job.clone();
        let task: Box<dyn FnOnce() + Send + '_> = Box::new(move || queued.run_if_unclaimed());
        // SAFETY: the task only touches `job`, and this function does not
        // return before `job` has run or been claimed here (below), so the
        // borrows inside `b` outlive every use; a task popped later finds the
        // job claimed and its closure already moved out.
        let task: Task = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Task>(task) };
        self.shared.spawn(task);
        let ra = std::panic::catch_unwind(std::panic::AssertUnwindSafe(a));
        let rb = match job.claim_and_run() {
            Some(rb) => rb,
            None => {
                self.help_until(&|| job.is_done(), None);
                job.take_result()
            }
        };
        match (ra, rb) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (Err(p), _) | (_, Err(p)) => std::panic::resume_unwind(p),
        }
    }

    /// Runs `f` on one of the pool's workers and returns its result, blocking
    /// the calling thread meanwhile (at once, inline, on a worker).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if current_worker(&self.shared).is_some() || self.shared.shutdown.load(Ordering::Acquire) {
            return f();
        }
        let job = Arc::new(ForkJob::new(f));
        let done = Arc::new(crate::wait_group::WaitGroup::new());
        done.add(1);
        let (queued, signal) = (job.clone(), done.clone());
        let task: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            queued.run_if_unclaimed();
            let _ = signal.done();
        });
        // SAFETY: we block below until the task has run `f`, so its borrows
        // outlive it.
        let task: Task = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Task>(task) };
        self.shared.spawn(task);
        done.wait();
        match job.take_result() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Whether the calling thread is one of this pool's workers.
    pub fn on_worker(&self) -> bool {
        current_worker(&self.shared).is_some()
    }

    /// Runs queued tasks on the calling thread, if it is one of this pool's
    /// workers, until `done` returns true; otherwise just returns false at
    /// once. Joins call this so that a worker waiting for tasks helps run
    /// them instead of blocking the pool.
    ///
    /// With `helpers`, a worker that finds nothing to run sleeps (as an idle
    /// worker does) until a spawn or [`Helpers::wake`] — which whoever makes
    /// `done` true must call — wakes it; without, it yields and retries (the
    /// right choice for fork-join, whose other half is running already).
    pub(crate) fn help_until(&self, done: &dyn Fn() -> bool, helpers: Option<&Helpers>) -> bool {
        let Some((index, deque)) = current_worker(&self.shared) else { return false };
        // SAFETY: `deque` is this thread's own deque (set by run_worker on
        // this thread, valid while it runs).
        let deque = unsafe { &*deque };
        let s = &self.shared;
        let mut backoff = Backoff::new();
        while !done() {
            match find_task(s, index, deque) {
                Some(task) => {
                    run_task(s, index, task);
                    backoff = Backoff::new();
                }
                None if !backoff.is_completed() => backoff.snooze(),
                None => match helpers {
                    None => std::thread::yield_now(),
                    Some(helpers) => {
                        helpers.add(index);
                        s.idle.sleep(
                            index,
                            &s.parkers,
                            // Checked after the SeqCst fence of `sleep`, which
                            // follows our entry in `helpers`: pairs with the
                            // fence in `Helpers::wake`.
                            || done() || s.has_work() || !deque.is_empty() || s.shutdown.load(Ordering::Acquire),
                            || bump(&s.slots[index].counters.parks, 1),
                        );
                        helpers.remove(index);
                        backoff = Backoff::new();
                    }
                },
            }
        }
        true
    }

    /// Wakes the workers sleeping in [`help_until`](Self::help_until) on
    /// `helpers`. Call after making their `done` condition true.
    pub(crate) fn wake_helpers(&self, helpers: &Helpers) {
        // SeqCst fence: the waker's half of the handshake with `help_until`
        // (entry in the list, fence, check `done`): either the helper sees
        // `done`, or this load sees the helper.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences; a stale non-zero only costs a look
        // under the lock.
        if helpers.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let waiting = std::mem::take(&mut *lock(&helpers.list));
        for w in waiting {
            self.shared.parkers[w].unpark();
        }
    }

    /// A snapshot of every worker's counters.
    pub fn metrics(&self) -> SchedulerMetrics {
        self.shared.metrics()
    }

    /// A reference that reads the pool's metrics without keeping it
    /// running: what a metrics collector holds.
    pub(crate) fn downgrade(&self) -> WeakScheduler {
        WeakScheduler(Arc::downgrade(&self.shared))
    }

    /// Stops the pool: the workers run every task still queued (including
    /// tasks those tasks spawn), then exit, and this call joins them. Later
    /// spawns run on the spawning thread. Idempotent.
    pub fn shutdown(&self) {
        shutdown(&self.shared);
    }
}

fn shutdown(s: &Arc<Shared>) {
    // Release: workers that see the flag also see every task pushed before it.
    s.shutdown.store(true, Ordering::Release);
    s.idle.notify_all(&s.parkers);
    let threads = std::mem::take(&mut *lock(&s.threads));
    let me = std::thread::current().id();
    for t in threads {
        if t.thread().id() == me {
            // Shut down from one of our own tasks: that worker exits when the
            // task returns; it cannot join itself.
            continue;
        }
        let _ = t.join();
    }
}

fn current_worker(s: &Arc<Shared>) -> Option<(usize, *const Worker<Task>)> {
    CURRENT.with(|c| match c.get() {
        Some((p, index, deque)) if std::ptr::eq(p, Arc::as_ptr(s)) => Some((index, deque)),
        _ => None,
    })
}

/// See [`Scheduler::downgrade`].
pub(crate) struct WeakScheduler(std::sync::Weak<Shared>);

impl WeakScheduler {
    /// The pool's metrics, or `None` once its workers are gone.
    pub(crate) fn metrics(&self) -> Option<SchedulerMetrics> {
        self.0.upgrade().map(|s| s.metrics())
    }
}

impl Shared {
    fn metrics(&self) -> SchedulerMetrics {
        let s = self;
        let workers: Vec<WorkerMetrics> = s
            .slots
            .iter()
            .map(|w| {
                let c = &w.counters;
                WorkerMetrics {
                    // Relaxed: statistics; each counter is exact on its own.
                    spawned: c.spawned.load(Ordering::Relaxed),
                    executed: c.executed.load(Ordering::Relaxed),
                    stolen_by: c.stolen_by.load(Ordering::Relaxed),
                    stolen_from: c.stolen_from.load(Ordering::Relaxed),
                    queue_depth: w.stealer.len(),
                    parks: c.parks.load(Ordering::Relaxed),
                    panics: c.panics.load(Ordering::Relaxed),
                }
            })
            .collect();
        let executed: u64 = workers.iter().map(|w| w.executed).sum();
        let injected = s.injected.load(Ordering::Relaxed);
        let max = workers.iter().map(|w| w.executed).max().unwrap_or(0);
        let mean = executed as f64 / workers.len().max(1) as f64;
        SchedulerMetrics {
            spawned: injected + workers.iter().map(|w| w.spawned).sum::<u64>(),
            stolen: workers.iter().map(|w| w.stolen_by).sum(),
            injector_depth: s.injector.len(),
            load_imbalance: if executed == 0 { 0.0 } else { max as f64 / mean - 1.0 },
            injected,
            executed,
            workers,
        }
    }

    fn spawn(self: &Arc<Self>, task: Task) {
        // Acquire: pairs with the Release in `shutdown`.
        if self.shutdown.load(Ordering::Acquire) && current_worker(self).is_none() {
            // The pool is gone (or going): run here rather than lose the task.
            task();
            return;
        }
        match current_worker(self) {
            Some((index, deque)) => {
                // SAFETY: our own deque, on our own thread (see `help_until`).
                unsafe { &*deque }.push(task);
                let c = &self.slots[index].counters;
                // Relaxed: statistics written by this worker only.
                c.spawned.store(c.spawned.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            None => {
                self.injector.push(task);
                // Relaxed: statistics.
                self.injected.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.idle.notify_one(&self.parkers);
    }

    fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.slots.iter().any(|w| !w.stealer.is_empty())
    }
}

/// The workers sleeping in [`Scheduler::help_until`] until a condition holds
/// (a group's joiners); see [`Scheduler::wake_helpers`].
#[derive(Default)]
pub(crate) struct Helpers {
    /// Length of `list`, read without the lock by wakers.
    count: AtomicUsize,
    list: Mutex<Vec<usize>>,
}

impl Helpers {
    fn add(&self, worker: usize) {
        let mut list = lock(&self.list);
        list.push(worker);
        // Relaxed: written under the lock; wakers read it after a SeqCst
        // fence that pairs with the one in `Idle::sleep`.
        self.count.store(list.len(), Ordering::Relaxed);
    }

    fn remove(&self, worker: usize) {
        let mut list = lock(&self.list);
        if let Some(i) = list.iter().position(|&w| w == worker) {
            list.swap_remove(i);
        }
        // Relaxed: as in `add`.
        self.count.store(list.len(), Ordering::Relaxed);
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    // Relaxed: per-worker statistics with a single writer; a load and a store
    // avoid a locked instruction on the hot path.
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn run_task(s: &Shared, index: usize, task: Task) {
    let c = &s.slots[index].counters;
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
        bump(&c.panics, 1);
    }
    bump(&c.executed, 1);
}

/// The next task for worker `index`: its own deque, the global queue, then
/// the other workers' deques.
fn find_task(s: &Shared, index: usize, deque: &Worker<Task>) -> Option<Task> {
    if let Some(t) = deque.pop() {
        return Some(t);
    }
    let mut backoff = Backoff::new();
    loop {
        let mut retry = false;
        match s.injector.steal_batch_and_pop(deque) {
            Steal::Success(t) => return Some(t),
            Steal::Retry => retry = true,
            Steal::Empty => {}
        }
        match steal_from_others(s, index, deque) {
            Steal::Success(t) => return Some(t),
            Steal::Retry => retry = true,
            Steal::Empty => {}
        }
        if !retry {
            return None;
        }
        backoff.spin();
    }
}

fn steal_from_others(s: &Shared, index: usize, deque: &Worker<Task>) -> Steal<Task> {
    let n = s.slots.len();
    if n == 1 {
        return Steal::Empty;
    }
    let me = &s.slots[index];
    // Relaxed: a hint about where work was last time.
    let last = me.last_victim.load(Ordering::Relaxed);
    let start = random_below(n);
    let order = std::iter::once(last).filter(|&v| v < n).chain((0..n).map(|i| (start + i) % n));
    let mut retry = false;
    for victim in order.filter(|&v| v != index) {
        let before = deque.len();
        match s.slots[victim].stealer.steal_batch_and_pop(deque) {
            Steal::Success(t) => {
                let taken = (deque.len() - before + 1) as u64;
                bump(&me.counters.stolen_by, taken);
                // Relaxed: statistics of the victim, written by thieves (the
                // only counter with several writers).
                s.slots[victim].counters.stolen_from.fetch_add(taken, Ordering::Relaxed);
                me.last_victim.store(victim, Ordering::Relaxed);
                return Steal::Success(t);
            }
            Steal::Retry => retry = true,
            Steal::Empty => {}
        }
    }
    if retry {
        Steal::Retry
    } else {
        Steal::Empty
    }
}

fn run_worker(s: &Arc<Shared>, index: usize, deque: Worker<Task>) {
    CURRENT.with(|c| c.set(Some((Arc::as_ptr(s), index, &deque as *const _))));
    let mut backoff = Backoff::new();
    loop {
        if let Some(task) = find_task(s, index, &deque) {
            run_task(s, index, task);
            backoff = Backoff::new();
            continue;
        }
        // Acquire: see `shutdown`; the queues were checked empty after it.
        if s.shutdown.load(Ordering::Acquire) {
            if s.has_work() {
                continue;
            }
            break;
        }
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        s.idle.sleep(
            index,
            &s.parkers,
            || s.has_work() || s.shutdown.load(Ordering::Acquire) || !deque.is_empty(),
            || bump(&s.slots[index].counters.parks, 1),
        );
        backoff = Backoff::new();
    }
    CURRENT.with(|c| c.set(None));
}

/// One side of a fork-join: a closure that runs exactly once, either on a
/// thief or back on the forking thread, and its result.
struct ForkJob<F, R> {
    /// Set by whoever takes the closure to run it.
    claimed: AtomicBool,
    /// Set (Release) once `result` is written.
    done: AtomicBool,
    f: std::cell::UnsafeCell<Option<F>>,
    result: std::cell::UnsafeCell<Option<std::thread::Result<R>>>,
}

// SAFETY: `f` is taken by exactly one thread (the `claimed` swap decides
// which) and `result` is written by that thread before `done` is released and
// read by the forking thread only after acquiring `done` (or after running it
// itself).
unsafe impl<F: Send, R: Send> Sync for ForkJob<F, R> {}
// SAFETY: as above; the closure and result move between threads.
unsafe impl<F: Send, R: Send> Send for ForkJob<F, R> {}

impl<F: FnOnce() -> R, R> ForkJob<F, R> {
    fn new(f: F) -> Self {
        ForkJob {
            claimed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            f: std::cell::UnsafeCell::new(Some(f)),
            result: std::cell::UnsafeCell::new(None),
        }
    }

    /// Takes the closure if nobody has; returns it.
    fn claim(&self) -> Option<F> {
        // AcqRel: the winner's Acquire sees the closure as written by the
        // forking thread before it published the task.
        if self.claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: we won the claim: nobody else touches `f`.
        unsafe { (*self.f.get()).take() }
    }

    /// The queued side: run the closure unless the forking thread took it back.
    fn run_if_unclaimed(&self) {
        if let Some(f) = self.claim() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // SAFETY: only the claimer writes `result`, before `done`.
            unsafe { *self.result.get() = Some(r) };
            // Release: publishes `result` to `is_done`'s Acquire.
            self.done.store(true, Ordering::Release);
        }
    }

    /// The forking side: run the closure here if nobody stole it.
    fn claim_and_run(&self) -> Option<std::thread::Result<R>> {
        let f = self.claim()?;
        Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
    }

    fn is_done(&self) -> bool {
        // Acquire: pairs with the Release in `run_if_unclaimed`.
        self.done.load(Ordering::Acquire)
    }

    /// The thief's result; call only after `is_done`.
    fn take_result(&self) -> std::thread::Result<R> {
        debug_assert!(self.is_done());
        // SAFETY: `done` was acquired: the writer is finished with `result`.
        unsafe { (*self.result.get()).take() }.expect("a finished fork job has a result")
    }
}

/// A cheap per-thread pseudo-random number below `n` (xorshift).
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let x = &0u8 as *const u8 as u64;
            x ^ 0x9E37_79B9_7F4A_7C15
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
