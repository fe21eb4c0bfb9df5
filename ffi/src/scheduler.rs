//! `nimsync_scheduler_*`: the work-stealing pool of worker threads, running
//! C tasks (`void (*fn)(void *arg)`) and reporting live metrics.
//!
//! A pool is either one the caller creates (`nimsync_scheduler_new`, stopped
//! by `nimsync_scheduler_shutdown` or when its last handle is freed) or the
//! process-wide one (`nimsync_scheduler_global`, one worker per core, never
//! stopped). Task groups (`nimsync_task_group_*`) run on either.

use crate::status::{arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::{Scheduler, SchedulerMetrics};
use std::ffi::c_void;
use std::mem::ManuallyDrop;

/// A task body: called once, on a worker thread, with the task's `arg`.
#[allow(non_camel_case_types)]
pub type nimsync_task_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// Releases the `arg` of a task that will never run (for example one a
/// cancelled task group skipped). Called at most once, on whichever thread
/// discards the task, and never for a task that ran: a task that runs owns
/// its `arg`.
#[allow(non_camel_case_types)]
pub type nimsync_task_drop_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// A C argument with its optional release hook: the hook runs when the
/// argument is dropped without having been handed to the task body.
pub(crate) struct TaskArg {
    arg: *mut c_void,
    drop: nimsync_task_drop_fn,
}

// SAFETY: the C caller hands `arg` to a library that documents running the
// task (or its drop) on another thread; that is the contract of every spawn.
unsafe impl Send for TaskArg {}

impl TaskArg {
    pub(crate) fn new(arg: *mut c_void, drop: nimsync_task_drop_fn) -> Self {
        TaskArg { arg, drop }
    }

    /// Hands the argument over to the body: its drop hook will not run.
    pub(crate) fn take(self) -> *mut c_void {
        ManuallyDrop::new(self).arg
    }
}

impl Drop for TaskArg {
    fn drop(&mut self) {
        if let Some(drop) = self.drop {
            // SAFETY: the hook and its argument come from the spawner, who
            // vouched for them; the task never ran, so `arg` is still live.
            unsafe { drop(self.arg) };
        }
    }
}

/// A handle on a pool of worker threads. Thread-safe. Free every handle
/// with `nimsync_scheduler_free`.
#[allow(non_camel_case_types)]
pub struct nimsync_scheduler {
    pub(crate) scheduler: Scheduler,
    global: bool,
}

/// Counters of one worker, from `nimsync_scheduler_get_metrics`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nimsync_worker_metrics {
    /// Tasks spawned from this worker (by tasks running on it).
    pub spawned: u64,
    /// Tasks this worker ran.
    pub executed: u64,
    /// Tasks this worker took from other workers' queues.
    pub stolen_by: u64,
    /// Tasks other workers took from this worker's queue.
    pub stolen_from: u64,
    /// Tasks waiting in this worker's queue at the moment of the snapshot.
    pub queue_depth: u64,
    /// Times this worker went to sleep for lack of work.
    pub parks: u64,
    /// Tasks that panicked on this worker (caught; the worker lives on).
    pub panics: u64,
}

/// A snapshot of a whole pool, filled by `nimsync_scheduler_get_metrics`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nimsync_scheduler_metrics {
    /// Number of workers in the pool (also when fewer per-worker entries
    /// were requested).
    pub workers: u64,
    /// Tasks spawned from outside the pool (into its global queue).
    pub injected: u64,
    /// Tasks spawned in total (injected plus spawned by workers).
    pub spawned: u64,
    /// Tasks run in total.
    pub executed: u64,
    /// Tasks stolen between workers in total.
    pub stolen: u64,
    /// Tasks waiting in the global queue at the moment of the snapshot.
    pub injector_depth: u64,
    /// How unevenly the work was spread: the busiest worker's executed count
    /// over the mean, minus one (0 = perfectly even; 1 = the busiest ran
    /// twice its share). 0 before any task ran.
    pub load_imbalance: f64,
}

/// Starts a pool of `workers` threads (1 to 1024; 0 means one per available
/// core) and stores its handle in `*out_scheduler`.
///
/// Returns `NIMSYNC_STATUS_NULL_ARGUMENT` if `out_scheduler` is NULL,
/// `NIMSYNC_STATUS_INVALID_ARGUMENT` for more than 1024 workers, and
/// `NIMSYNC_STATUS_OUT_OF_MEMORY` if a thread cannot be started.
///
/// ```c
/// nimsync_scheduler *pool;
/// nimsync_scheduler_new(4, &pool);
/// nimsync_scheduler_spawn(pool, work, arg, free);
/// nimsync_scheduler_shutdown(pool); /* runs what is queued, joins the workers */
/// nimsync_scheduler_free(pool);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_scheduler_new(
    workers: libc::size_t,
    out_scheduler: *mut *mut nimsync_scheduler,
) -> nimsync_status {
    guard(|| {
        let out_scheduler = out(out_scheduler, "out_scheduler")?;
        let workers = match workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let scheduler = Scheduler::new(workers)?;
        *out_scheduler = Box::into_raw(Box::new(nimsync_scheduler { scheduler, global: false }));
        Ok(())
    })
}

/// Stores in `*out_scheduler` a handle on the process-wide pool (started
/// on first use with one worker per available core). It is never shut
/// down; free the handle with `nimsync_scheduler_free` all the same.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_global(out_scheduler: *mut *mut nimsync_scheduler) -> nimsync_status {
    guard(|| {
        let out_scheduler = out(out_scheduler, "out_scheduler")?;
        let scheduler = Scheduler::global().clone();
        *out_scheduler = Box::into_raw(Box::new(nimsync_scheduler { scheduler, global: true }));
        Ok(())
    })
}

/// Takes another handle on the same pool and stores it in `*out_scheduler`.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_clone(
    scheduler: *const nimsync_scheduler,
    out_scheduler: *mut *mut nimsync_scheduler,
) -> nimsync_status {
    guard(|| {
        let s = arg(scheduler, "scheduler")?;
        let out_scheduler = out(out_scheduler, "out_scheduler")?;
        let copy = nimsync_scheduler { scheduler: s.scheduler.clone(), global: s.global };
        *out_scheduler = Box::into_raw(Box::new(copy));
        Ok(())
    })
}

/// Stores the pool's number of worker threads in `*out_workers`.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_workers(
    scheduler: *const nimsync_scheduler,
    out_workers: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let s = arg(scheduler, "scheduler")?;
        *out(out_workers, "out_workers")? = s.scheduler.workers();
        Ok(())
    })
}

/// Runs `fn(arg)` on one of the pool's workers. From a task running on the
/// pool, the task goes to that worker's own queue; from elsewhere, to the
/// global queue. After `nimsync_scheduler_shutdown` the task runs on the
/// calling thread before this call returns.
///
/// A task that runs owns `arg`. `drop` (may be NULL) is called with `arg`
/// instead if the task is discarded without running. On a failed call
/// (`NIMSYNC_STATUS_NULL_ARGUMENT` for a NULL `scheduler` or `fn`) nothing
/// is called and `arg` stays with the caller.
///
/// The task must not unwind (a C++ exception or `longjmp` out of `fn` is
/// undefined behaviour). Use a task group to learn whether tasks succeeded.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_spawn(
    scheduler: *const nimsync_scheduler,
    task_fn: nimsync_task_fn,
    task_arg: *mut c_void,
    drop_fn: nimsync_task_drop_fn,
) -> nimsync_status {
    guard(|| {
        let s = arg(scheduler, "scheduler")?;
        let body = task_fn.ok_or_else(|| Fail::null("task_fn"))?;
        let task_arg = TaskArg::new(task_arg, drop_fn);
        s.scheduler.spawn(move || {
            let a = task_arg.take();
            // SAFETY: the function pointer and its argument come from the
            // spawner, who vouched for them; `a` is handed over exactly once.
            unsafe { body(a) };
        });
        Ok(())
    })
}

fn fill(m: &SchedulerMetrics, out_metrics: &mut nimsync_scheduler_metrics, workers: &mut [nimsync_worker_metrics]) {
    *out_metrics = nimsync_scheduler_metrics {
        workers: m.workers.len() as u64,
        injected: m.injected,
        spawned: m.spawned,
        executed: m.executed,
        stolen: m.stolen,
        injector_depth: m.injector_depth as u64,
        load_imbalance: m.load_imbalance,
    };
    for (slot, w) in workers.iter_mut().zip(&m.workers) {
        *slot = nimsync_worker_metrics {
            spawned: w.spawned,
            executed: w.executed,
            stolen_by: w.stolen_by,
            stolen_from: w.stolen_from,
            queue_depth: w.queue_depth as u64,
            parks: w.parks,
            panics: w.panics,
        };
    }
}

/// Takes a snapshot of the pool's counters: the totals into
/// `*out_metrics`, and the first `capacity` workers' counters into
/// `workers[0..capacity)` (`workers` may be NULL when `capacity` is 0).
/// `out_metrics->workers` tells how many workers there are; entries past
/// that are left untouched. Reading takes no lock and does not slow the
/// workers; each counter is exact, though the snapshot is not one instant.
///
/// ```c
/// nimsync_worker_metrics per[16];
/// nimsync_scheduler_metrics m;
/// nimsync_scheduler_get_metrics(pool, &m, per, 16);
/// printf("%llu tasks run, imbalance %.2f\n", (unsigned long long)m.executed, m.load_imbalance);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_scheduler_get_metrics(
    scheduler: *const nimsync_scheduler,
    out_metrics: *mut nimsync_scheduler_metrics,
    workers: *mut nimsync_worker_metrics,
    capacity: libc::size_t,
) -> nimsync_status {
    guard(|| {
        let s = arg(scheduler, "scheduler")?;
        let out_metrics = out(out_metrics, "out_metrics")?;
        if capacity > 0 && workers.is_null() {
            return Err(Fail::null("workers"));
        }
        let snapshot = s.scheduler.metrics();
        let n = capacity.min(snapshot.workers.len());
        let slots: &mut [nimsync_worker_metrics] = if n == 0 {
            &mut []
        } else {
            // SAFETY: `workers` is non-NULL and has room for `capacity` >= n
            // entries (documented contract).
            unsafe { std::slice::from_raw_parts_mut(workers, n) }
        };
        fill(&snapshot, out_metrics, slots);
        Ok(())
    })
}

/// Stops a pool made by `nimsync_scheduler_new`: its workers run every task
/// still queued (and the tasks those spawn), then exit, and this call waits
/// for them. Later spawns run on the spawning thread. Calling it again does
/// nothing. Called from one of the pool's own tasks, it does not wait for
/// that task's worker, which exits once the task returns.
///
/// Returns `NIMSYNC_STATUS_INVALID_ARGUMENT` for the global pool, which
/// other parts of the program share and which is never stopped.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_shutdown(scheduler: *const nimsync_scheduler) -> nimsync_status {
    guard(|| {
        let s = arg(scheduler, "scheduler")?;
        if s.global {
            return Err(Fail::new(
                nimsync_status::InvalidArgument,
                "invalid argument `scheduler`: the global scheduler is shared and cannot be shut down".into(),
            ));
        }
        s.scheduler.shutdown();
        Ok(())
    })
}

/// Releases a handle. The last handle on a pool made by
/// `nimsync_scheduler_new` shuts it down first (see
/// `nimsync_scheduler_shutdown`: queued tasks run, workers are joined), as
/// long as no task group still uses it. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_scheduler_free(scheduler: *mut nimsync_scheduler) {
    if scheduler.is_null() {
        return;
    }
    // SAFETY: a non-NULL handle came from one of the constructors above and
    // is freed once (caller contract).
    guard_value((), || drop(unsafe { Box::from_raw(scheduler) }));
}
