//! `nimsync_task_group_*` and `nimsync_group_report_*`: structured
//! concurrency for C tasks.
//!
//! A group runs its tasks on a scheduler and is joined as a whole. Each task
//! is `int fn(void *arg, const nimsync_cancel_token *token)`: it returns 0 on
//! success and anything else on failure. The first failure cancels the
//! group's token (fail-fast): tasks not started yet are skipped (their
//! `drop` is called), running ones see the token — every blocking nimsync
//! call given it returns `NIMSYNC_STATUS_CANCELLED`. The join reports every
//! failure in spawn order, not just the first.
//!
//! An event loop joins without blocking: `nimsync_task_group_poll_join`
//! reports a token through a `nimsync_loop_waker` once the last task has
//! finished, and the loop polls again.

use crate::async_op::nimsync_loop_waker;
use crate::cancel::{nimsync_cancel_token, token_opt};
use crate::channel::{wait_options, NIMSYNC_WAIT_FOREVER};
use crate::scheduler::{nimsync_scheduler, nimsync_task_drop_fn, TaskArg};
use crate::status::{arg, guard, guard_value, nimsync_status, out, Fail};
use nimsync_core::{CancelReason, Error, GroupError, TaskFailure, TaskGroup, WaitGroupFuture};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// A task body of a group: gets its `arg` and the group's token (valid
/// during the call; clone it to keep it), returns 0 on success or a
/// non-zero status on failure. Returning `NIMSYNC_STATUS_CANCELLED` or
/// `NIMSYNC_STATUS_TIMEOUT` once the group is cancelled means "stopped
/// because the group was cancelled" and is not reported as a failure.
#[allow(non_camel_case_types)]
pub type nimsync_group_task_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, token: *const nimsync_cancel_token) -> c_int>;

/// A task group: tasks joined as a whole, with a shared cancel token. All
/// functions are thread-safe; tasks may spawn siblings into their own group.
#[allow(non_camel_case_types)]
pub struct nimsync_task_group {
    pub(crate) group: TaskGroup,
    /// The group's token as a C handle, lent to every task.
    token: Arc<nimsync_cancel_token>,
    /// The pending async join of `nimsync_task_group_poll_join`.
    async_join: Mutex<Option<WaitGroupFuture>>,
}

/// A task's non-zero return value, as its error.
#[derive(Debug)]
struct TaskStatus(c_int);

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "returned status {}", self.0)
    }
}

impl std::error::Error for TaskStatus {}

/// One failed task in a `nimsync_group_report`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_task_error {
    /// The task's position in spawn order (0 for the group's first task).
    pub task: libc::size_t,
    /// What the task returned, or `NIMSYNC_STATUS_PANIC` if it panicked.
    pub status: c_int,
    /// True if the task panicked rather than returning a status.
    pub panicked: bool,
    /// A sentence about the failure, e.g. "task 3 failed: returned status
    /// 42". Owned by the report: valid until `nimsync_group_report_free`.
    pub message: *const c_char,
}

/// The outcome of a group as a whole, from `nimsync_group_report_summary`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_group_summary {
    /// Number of failed tasks (`nimsync_group_report_error` indices
    /// `0..errors`).
    pub errors: libc::size_t,
    /// Tasks that never ran because the group was cancelled first (their
    /// `drop` was called).
    pub skipped: libc::size_t,
    /// Why the group's token was cancelled: a `nimsync_cancel_reason`
    /// (`NIMSYNC_CANCEL_REASON_NONE` if it was not).
    pub cancel_reason: u32,
    /// The cancel message (the first failure's message, the message given to
    /// `nimsync_task_group_cancel`, ...; "" for a deadline or no cancel).
    /// Owned by the report.
    pub cancel_message: *const c_char,
    /// True if the join's own wait ended early (its timeout or token) and the
    /// group was then cancelled and joined to the end.
    pub interrupted: bool,
}

struct ReportEntry {
    task: usize,
    status: c_int,
    panicked: bool,
    message: CString,
}

/// What a join found when the group did not simply succeed. Free it with
/// `nimsync_group_report_free`. Not shared: use from one thread at a time.
#[allow(non_camel_case_types)]
pub struct nimsync_group_report {
    errors: Vec<ReportEntry>,
    skipped: usize,
    cancel_reason: u32,
    cancel_message: CString,
    interrupted: bool,
}

fn c_string(text: String) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

impl nimsync_group_report {
    fn from_error(e: GroupError) -> Self {
        let errors = e
            .errors
            .into_iter()
            .map(|t| {
                let message = c_string(t.to_string());
                let (status, panicked) = match &t.failure {
                    TaskFailure::Failed(err) => (failure_status(err.as_ref()), false),
                    _ => (nimsync_status::Panic as c_int, true),
                };
                ReportEntry { task: t.task, status, panicked, message }
            })
            .collect();
        let (cancel_reason, cancel_message) = match &e.cancelled {
            None => (0, String::new()),
            Some(CancelReason::DeadlineExceeded) => (2, String::new()),
            Some(CancelReason::Requested(m)) => (1, m.to_string()),
            Some(other) => (1, other.to_string()),
        };
        nimsync_group_report {
            errors,
            skipped: e.skipped,
            cancel_reason,
            cancel_message: c_string(cancel_message),
            interrupted: e.interrupted,
        }
    }

    /// The status of the join that produced this report.
    fn status(&self) -> nimsync_status {
        if !self.errors.is_empty() {
            nimsync_status::TaskFailed
        } else if self.interrupted {
            nimsync_status::Interrupted
        } else if self.cancel_reason == 2 {
            nimsync_status::Timeout
        } else {
            nimsync_status::Cancelled
        }
    }

    fn message(&self) -> String {
        match self.errors.first() {
            Some(first) if self.errors.len() == 1 => first.message.to_string_lossy().into_owned(),
            Some(first) => {
                format!("{} tasks failed; the first: {}", self.errors.len(), first.message.to_string_lossy())
            }
            None if self.interrupted => "task group join was interrupted; the group was cancelled".into(),
            None if self.cancel_reason == 2 => "task group deadline exceeded".into(),
            None => format!("task group was cancelled: {}", self.cancel_message.to_string_lossy()),
        }
    }
}

/// The status a failed task's error stands for.
fn failure_status(err: &(dyn std::error::Error + Send + Sync + 'static)) -> c_int {
    if let Some(TaskStatus(s)) = err.downcast_ref::<TaskStatus>() {
        return *s;
    }
    match err.downcast_ref::<Error>() {
        Some(Error::Cancelled) => nimsync_status::Cancelled as c_int,
        Some(Error::Timeout) => nimsync_status::Timeout as c_int,
        _ => nimsync_status::Panic as c_int,
    }
}

/// Turns a join's outcome into the status and the report handed to C.
fn finish_join(result: Result<(), GroupError>, out_report: &mut *mut nimsync_group_report) -> Result<(), Fail> {
    match result {
        Ok(()) => {
            *out_report = std::ptr::null_mut();
            Ok(())
        }
        Err(e) => {
            let report = nimsync_group_report::from_error(e);
            let fail = Fail::new(report.status(), report.message());
            *out_report = Box::into_raw(Box::new(report));
            Err(fail)
        }
    }
}

/// Creates a task group and stores it in `*out_group`.
///
/// - `scheduler`: the pool to run on; NULL for the global one.
/// - `parent`: NULL, or a token the group's token descends from (an
///   enclosing group's `nimsync_task_group_token`, for nested groups):
///   cancelling it cancels the group, not the other way round.
/// - `limit`: at most this many of the group's tasks run at once (the rest
///   wait in the group, in spawn order, without blocking the spawner); 0 for
///   no limit.
/// - `timeout_ns`: the group is cancelled with
///   `NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED` this long from now (at once
///   for 0); `NIMSYNC_WAIT_FOREVER` for no deadline.
///
/// Returns `NIMSYNC_STATUS_NULL_ARGUMENT` if `out_group` is NULL.
///
/// ```c
/// nimsync_task_group *g;
/// nimsync_task_group_new(NULL, NULL, 4, NIMSYNC_WAIT_FOREVER, &g);
/// for (int i = 0; i < n; i++)
///     nimsync_task_group_spawn(g, fetch, &jobs[i], NULL, NULL);
/// nimsync_group_report *report;
/// if (nimsync_task_group_join(g, &report) != NIMSYNC_STATUS_OK) {
///     nimsync_group_summary sum;
///     nimsync_group_report_summary(report, &sum);
///     for (size_t i = 0; i < sum.errors; i++) {
///         nimsync_task_error e;
///         nimsync_group_report_error(report, i, &e);
///         fprintf(stderr, "%s\n", e.message);
///     }
///     nimsync_group_report_free(report);
/// }
/// nimsync_task_group_free(g);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_task_group_new(
    scheduler: *const nimsync_scheduler,
    parent: *const nimsync_cancel_token,
    limit: libc::size_t,
    timeout_ns: u64,
    out_group: *mut *mut nimsync_task_group,
) -> nimsync_status {
    guard(|| {
        let out_group = out(out_group, "out_group")?;
        let mut builder = TaskGroup::builder();
        // SAFETY: a non-NULL scheduler is a live handle (caller contract).
        if let Some(s) = unsafe { scheduler.as_ref() } {
            builder = builder.scheduler(&s.scheduler);
        }
        if let Some(p) = token_opt(parent) {
            builder = builder.parent(p);
        }
        if limit > 0 {
            builder = builder.limit(limit);
        }
        if timeout_ns != NIMSYNC_WAIT_FOREVER {
            builder = builder.timeout(Duration::from_nanos(timeout_ns));
        }
        let group = builder.build()?;
        let token = Arc::new(nimsync_cancel_token { token: group.token().clone() });
        *out_group = Box::into_raw(Box::new(nimsync_task_group { group, token, async_join: Mutex::new(None) }));
        Ok(())
    })
}

/// Starts `fn(arg, token)` in the group and stores its spawn index (0 for
/// the first task) in `*out_index` (`out_index` may be NULL).
///
/// A task that runs owns `arg`. If the group is cancelled before the task
/// starts, it is skipped: `drop(arg)` is called instead (when `drop` is not
/// NULL) and the task counts in the report's `skipped`. On a failed call
/// (`NIMSYNC_STATUS_NULL_ARGUMENT` for a NULL `group` or `fn`) nothing is
/// called and `arg` stays with the caller.
///
/// The task must not unwind (a C++ exception or `longjmp` out of `fn` is
/// undefined behaviour).
#[no_mangle]
pub extern "C" fn nimsync_task_group_spawn(
    group: *const nimsync_task_group,
    task_fn: nimsync_group_task_fn,
    task_arg: *mut c_void,
    drop_fn: nimsync_task_drop_fn,
    out_index: *mut libc::size_t,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let body = task_fn.ok_or_else(|| Fail::null("task_fn"))?;
        let task_arg = TaskArg::new(task_arg, drop_fn);
        let token = g.token.clone();
        let handle = g.group.spawn(move |_| {
            let a = task_arg.take();
            // SAFETY: the function pointer and argument come from the
            // spawner, who vouched for them; `token` is kept alive by this
            // closure for the whole call.
            let status = unsafe { body(a, Arc::as_ptr(&token)) };
            match status {
                0 => Ok(()),
                s if s == nimsync_status::Cancelled as c_int => Err(Error::Cancelled.into()),
                s if s == nimsync_status::Timeout as c_int => Err(Error::Timeout.into()),
                s => Err(TaskStatus(s).into()),
            }
        });
        if !out_index.is_null() {
            *out(out_index, "out_index")? = handle.index();
        }
        Ok(())
    })
}

/// Waits until every task of the group has finished (see
/// `nimsync_task_group_join_with`). Called on one of the pool's workers
/// (from a task), it runs other queued tasks while it waits.
#[no_mangle]
pub extern "C" fn nimsync_task_group_join(
    group: *const nimsync_task_group,
    out_report: *mut *mut nimsync_group_report,
) -> nimsync_status {
    nimsync_task_group_join_with(group, NIMSYNC_WAIT_FOREVER, std::ptr::null(), out_report)
}

/// Waits until every task of the group has finished and reports the
/// outcome:
///
/// - `NIMSYNC_STATUS_OK`: every task succeeded and the group was not
///   cancelled; `*out_report` is set to NULL.
/// - `NIMSYNC_STATUS_TASK_FAILED`: at least one task failed; the report
///   lists every failure in spawn order.
/// - `NIMSYNC_STATUS_CANCELLED` / `NIMSYNC_STATUS_TIMEOUT`: no task failed
///   but the group was cancelled (by `nimsync_task_group_cancel`, its parent
///   token) or its deadline passed.
/// - `NIMSYNC_STATUS_INTERRUPTED`: the wait was interrupted (a signal
///   whose handler asked blocking nimsync calls to stop); the group was
///   then cancelled and joined to the end.
///
/// If `timeout_ns` passes first (`NIMSYNC_WAIT_FOREVER` for no limit) or
/// `cancel` (may be NULL) is cancelled, the group is cancelled with the
/// message "join ended early: ..." and still joined to the end, so no task
/// outlives this call; the status is then `NIMSYNC_STATUS_CANCELLED` (or
/// `NIMSYNC_STATUS_TASK_FAILED` if tasks failed).
///
/// On those four, `*out_report` receives a report to read and free with
/// `nimsync_group_report_free`; the last error message summarises it.
/// `NIMSYNC_STATUS_NULL_ARGUMENT` (NULL `group` or `out_report`) leaves
/// `*out_report` untouched. Joining again reports failures since the last
/// join.
#[no_mangle]
pub extern "C" fn nimsync_task_group_join_with(
    group: *const nimsync_task_group,
    timeout_ns: u64,
    cancel: *const nimsync_cancel_token,
    out_report: *mut *mut nimsync_group_report,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let out_report = out(out_report, "out_report")?;
        let result = g.group.join_with(&wait_options(timeout_ns, token_opt(cancel)));
        finish_join(result, out_report)
    })
}

/// Joins without blocking: `NIMSYNC_STATUS_PENDING` (and `*out_report`
/// untouched) while tasks are unfinished; otherwise as
/// `nimsync_task_group_join`.
#[no_mangle]
pub extern "C" fn nimsync_task_group_try_join(
    group: *const nimsync_task_group,
    out_report: *mut *mut nimsync_group_report,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let out_report = out(out_report, "out_report")?;
        if !g.group.is_finished() {
            return Err(Fail::pending());
        }
        finish_join(g.group.join(), out_report)
    })
}

/// Joins for an event loop: like `nimsync_task_group_try_join`, but when it
/// returns `NIMSYNC_STATUS_PENDING` it has also arranged for `token` to be
/// reported by `waker` (its descriptor becomes readable) once the last task
/// has finished; the loop then calls this again. Nothing polls in between.
/// A group has one such pending join at a time: a new call replaces the
/// previous registration.
///
/// ```c
/// nimsync_loop_waker *w; int fd;
/// nimsync_loop_waker_new(&w);
/// nimsync_loop_waker_fd(w, &fd);
/// nimsync_group_report *report;
/// nimsync_status s;
/// while ((s = nimsync_task_group_poll_join(g, w, 1, &report)) == NIMSYNC_STATUS_PENDING) {
///     struct pollfd p = {fd, POLLIN, 0};
///     poll(&p, 1, -1);          /* the event loop's wait */
///     uint64_t tokens[8]; size_t n;
///     nimsync_loop_waker_drain(w, tokens, 8, &n);
/// }
/// ```
#[no_mangle]
pub extern "C" fn nimsync_task_group_poll_join(
    group: *const nimsync_task_group,
    waker: *const nimsync_loop_waker,
    token: u64,
    out_report: *mut *mut nimsync_group_report,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let w = arg(waker, "waker")?;
        let out_report = out(out_report, "out_report")?;
        let mut pending = g.async_join.lock().unwrap_or_else(PoisonError::into_inner);
        let future = pending.get_or_insert_with(|| g.group.finished_async());
        let task_waker = w.waker.waker(token);
        match Pin::new(future).poll(&mut Context::from_waker(&task_waker)) {
            Poll::Pending => Err(Fail::pending()),
            Poll::Ready(()) => {
                *pending = None;
                drop(pending);
                finish_join(g.group.join(), out_report)
            }
        }
    })
}

/// Cancels the group's token with `message` (copied; NULL means ""): tasks
/// not started yet are skipped, running ones see the token. A join then
/// returns `NIMSYNC_STATUS_CANCELLED` unless a task failed.
#[no_mangle]
pub extern "C" fn nimsync_task_group_cancel(
    group: *const nimsync_task_group,
    message: *const c_char,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let message = if message.is_null() {
            Default::default()
        } else {
            // SAFETY: a non-NULL `message` is NUL-terminated (caller contract).
            unsafe { CStr::from_ptr(message) }.to_string_lossy()
        };
        g.group.cancel(&message);
        Ok(())
    })
}

/// Stores in `*out_token` a new reference to the group's cancel token (free
/// it with `nimsync_cancel_token_free`): pass it to blocking calls, or as
/// the `parent` of a nested group.
#[no_mangle]
pub extern "C" fn nimsync_task_group_token(
    group: *const nimsync_task_group,
    out_token: *mut *mut nimsync_cancel_token,
) -> nimsync_status {
    guard(|| {
        let g = arg(group, "group")?;
        let out_token = out(out_token, "out_token")?;
        *out_token = Arc::into_raw(g.token.clone()).cast_mut();
        Ok(())
    })
}

/// Frees a group. If tasks are still unfinished, the group is cancelled
/// ("task group freed before join") and this waits for them first: no task
/// outlives its group, and skipped tasks get their `drop` called. Must not
/// be called from one of the group's own tasks. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_task_group_free(group: *mut nimsync_task_group) {
    if group.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: a non-NULL group came from `nimsync_task_group_new` and is
        // freed once (caller contract).
        let g = unsafe { Box::from_raw(group) };
        if !g.group.is_finished() {
            g.group.cancel("task group freed before join");
            let _ = g.group.join();
        }
    });
}

/// Fills `*out_summary` with the outcome of the group as a whole.
#[no_mangle]
pub extern "C" fn nimsync_group_report_summary(
    report: *const nimsync_group_report,
    out_summary: *mut nimsync_group_summary,
) -> nimsync_status {
    guard(|| {
        let r = arg(report, "report")?;
        *out(out_summary, "out_summary")? = nimsync_group_summary {
            errors: r.errors.len(),
            skipped: r.skipped,
            cancel_reason: r.cancel_reason,
            cancel_message: r.cancel_message.as_ptr(),
            interrupted: r.interrupted,
        };
        Ok(())
    })
}

/// Fills `*out_error` with the `index`-th failure (in spawn order; `index`
/// below the summary's `errors`). Returns `NIMSYNC_STATUS_INVALID_ARGUMENT`
/// for an index out of range.
#[no_mangle]
pub extern "C" fn nimsync_group_report_error(
    report: *const nimsync_group_report,
    index: libc::size_t,
    out_error: *mut nimsync_task_error,
) -> nimsync_status {
    guard(|| {
        let r = arg(report, "report")?;
        let out_error = out(out_error, "out_error")?;
        let e = r.errors.get(index).ok_or_else(|| {
            Fail::new(
                nimsync_status::InvalidArgument,
                format!("invalid argument `index`: {index}, but the report has {} errors", r.errors.len()),
            )
        })?;
        *out_error =
            nimsync_task_error { task: e.task, status: e.status, panicked: e.panicked, message: e.message.as_ptr() };
        Ok(())
    })
}

/// Frees a report and the strings it lent out. NULL is ignored.
#[no_mangle]
pub extern "C" fn nimsync_group_report_free(report: *mut nimsync_group_report) {
    if report.is_null() {
        return;
    }
    // SAFETY: a non-NULL report came from a join and is freed once.
    guard_value((), || drop(unsafe { Box::from_raw(report) }));
}
