/* The scheduler and task groups through the C ABI: tasks run on the pool and
 * show up in its metrics; fail-fast cancels a task blocked in a receive
 * within 10 ms; every failure is reported in spawn order; the concurrency
 * limit holds; skipped tasks get their drop called; deadlines and nesting;
 * an event loop's join woken through the loop waker's descriptor; and NULL
 * or bad arguments return their documented statuses with messages. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <valgrind/valgrind.h>
#include "check.h"

#define MS 1000000ull

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- plain scheduler tasks --------------------------------------------- */

typedef struct {
    int ran;
    int dropped;
} counts;

static void count_run(void *arg) { __atomic_fetch_add(&((counts *)arg)->ran, 1, __ATOMIC_RELAXED); }
static void count_drop(void *arg) { __atomic_fetch_add(&((counts *)arg)->dropped, 1, __ATOMIC_RELAXED); }

static void scheduler_runs_tasks_and_reports_metrics(void) {
    nimsync_scheduler *pool;
    CHECK_OK(nimsync_scheduler_new(2, &pool));
    size_t workers = 0;
    CHECK_OK(nimsync_scheduler_workers(pool, &workers));
    CHECK(workers == 2);
    counts c = {0, 0};
    for (int i = 0; i < 1000; i++) CHECK_OK(nimsync_scheduler_spawn(pool, count_run, &c, count_drop));
    CHECK_OK(nimsync_scheduler_shutdown(pool)); /* drains: every task ran */
    CHECK(c.ran == 1000);
    CHECK(c.dropped == 0); /* a task that ran owns its arg */

    nimsync_scheduler_metrics m;
    nimsync_worker_metrics per[4];
    memset(per, 0xff, sizeof per);
    CHECK_OK(nimsync_scheduler_get_metrics(pool, &m, per, 4));
    CHECK(m.workers == 2);
    CHECK(m.executed == 1000);
    CHECK(m.injected == 1000 && m.spawned == 1000);
    CHECK(per[0].executed + per[1].executed == 1000);
    CHECK(per[2].executed == UINT64_MAX); /* past the pool's workers: untouched */
    CHECK(m.load_imbalance >= 0.0 && m.load_imbalance <= 1.0); /* at most 2x the mean of 2 */
    /* after shutdown, spawns run on the caller */
    CHECK_OK(nimsync_scheduler_spawn(pool, count_run, &c, count_drop));
    CHECK(c.ran == 1001);
    nimsync_scheduler_free(pool);
}

typedef struct {
    nimsync_channel *done;
} signal_arg;

static void send_done(void *arg) { nimsync_channel_send(((signal_arg *)arg)->done, 7); }

static void global_scheduler_runs_tasks(void) {
    nimsync_scheduler *global, *again;
    CHECK_OK(nimsync_scheduler_global(&global));
    CHECK_OK(nimsync_scheduler_clone(global, &again));
    nimsync_channel *done;
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &done));
    signal_arg a = {done};
    CHECK_OK(nimsync_scheduler_spawn(again, send_done, &a, NULL));
    uintptr_t item = 0;
    CHECK_OK(nimsync_channel_recv(done, &item));
    CHECK(item == 7);
    CHECK_STATUS(nimsync_scheduler_shutdown(global), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("global scheduler");
    nimsync_scheduler_free(again);
    nimsync_scheduler_free(global);
    nimsync_channel_free(done);
}

static void scheduler_bad_arguments(void) {
    nimsync_scheduler *pool = NULL;
    CHECK_STATUS(nimsync_scheduler_new(5000, &pool), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("workers");
    CHECK(pool == NULL);
    CHECK_STATUS(nimsync_scheduler_new(1, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_scheduler");
    counts c = {0, 0};
    CHECK_STATUS(nimsync_scheduler_spawn(NULL, count_run, &c, count_drop), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("scheduler");
    CHECK_OK(nimsync_scheduler_new(1, &pool));
    CHECK_STATUS(nimsync_scheduler_spawn(pool, NULL, &c, count_drop), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("task_fn");
    CHECK(c.ran == 0 && c.dropped == 0); /* a refused spawn leaves arg with the caller */
    nimsync_scheduler_metrics m;
    CHECK_STATUS(nimsync_scheduler_get_metrics(pool, &m, NULL, 4), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("workers");
    CHECK_STATUS(nimsync_scheduler_get_metrics(pool, NULL, NULL, 0), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_metrics");
    CHECK_OK(nimsync_scheduler_get_metrics(pool, &m, NULL, 0));
    CHECK(m.workers == 1);
    CHECK_STATUS(nimsync_scheduler_workers(NULL, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_scheduler_shutdown(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    nimsync_scheduler_free(pool); /* the last handle shuts the pool down */
    nimsync_scheduler_free(NULL);
}

/* ---- fail-fast --------------------------------------------------------- */

typedef struct {
    nimsync_channel *never; /* nobody sends: the receive blocks until cancelled */
    nimsync_channel *ready;
    nimsync_status recv_status;
    uint64_t returned_at;
    uint64_t cancelled_at;
} fail_fast_state;

/* Runs on the failing task's thread the moment the group is cancelled. */
static void note_cancel_time(void *ctx, uint32_t reason) {
    (void)reason;
    __atomic_store_n(&((fail_fast_state *)ctx)->cancelled_at, now_ns(), __ATOMIC_RELEASE);
}

static int blocked_receiver(void *arg, const nimsync_cancel_token *token) {
    fail_fast_state *st = arg;
    nimsync_channel_send(st->ready, 1);
    uintptr_t item;
    nimsync_status s = nimsync_channel_recv_with(st->never, &item, NIMSYNC_WAIT_FOREVER, token);
    __atomic_store_n(&st->returned_at, now_ns(), __ATOMIC_RELEASE);
    st->recv_status = s;
    return s; /* CANCELLED once the group is cancelled: not a failure of its own */
}

static int failing_task(void *arg, const nimsync_cancel_token *token) {
    (void)token;
    fail_fast_state *st = arg;
    uintptr_t item;
    nimsync_channel_recv(st->ready, &item); /* the receiver is about to block */
    return 42;
}

static void fail_fast_cancels_blocked_receive(void) {
    /* two workers: one for each task, none left idle to compete for a CPU
     * with the thread being woken (valgrind runs one thread at a time) */
    nimsync_scheduler *pool;
    CHECK_OK(nimsync_scheduler_new(2, &pool));
    fail_fast_state st = {0};
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.never));
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.ready));
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(pool, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    nimsync_cancel_token *token;
    nimsync_cancel_callback *on_cancel;
    CHECK_OK(nimsync_task_group_token(g, &token));
    CHECK_OK(nimsync_cancel_token_on_cancel(token, note_cancel_time, &st, &on_cancel));
    size_t index = 99;
    CHECK_OK(nimsync_task_group_spawn(g, blocked_receiver, &st, NULL, &index));
    CHECK(index == 0);
    CHECK_OK(nimsync_task_group_spawn(g, failing_task, &st, NULL, &index));
    CHECK(index == 1);

    nimsync_group_report *report = NULL;
    CHECK_STATUS(nimsync_task_group_join(g, &report), NIMSYNC_STATUS_TASK_FAILED);
    CHECK_MESSAGE_HAS("task 1 failed: returned status 42");
    CHECK(st.recv_status == NIMSYNC_STATUS_CANCELLED);
    /* The cancel flag is set just before the callbacks run: a receiver that
     * had not parked yet may see it and return before note_cancel_time. */
    uint64_t latency = st.returned_at > st.cancelled_at ? st.returned_at - st.cancelled_at : 0;
    /* 10 ms: a generous upper bound for CI noise. Valgrind runs one thread
     * at a time on a slowed-down CPU, so a wake-up there waits for its turn:
     * the bound is relaxed under it; the native run checks 10 ms. */
    uint64_t bound = RUNNING_ON_VALGRIND ? 50 * MS : 10 * MS;
    printf("  blocked receive returned %.3f ms after the failure cancelled the group (bound %llu ms)\n",
           (double)latency / 1e6, (unsigned long long)(bound / MS));
    CHECK(latency < bound);

    CHECK(report != NULL);
    nimsync_group_summary sum;
    CHECK_OK(nimsync_group_report_summary(report, &sum));
    CHECK(sum.errors == 1); /* the cancelled receiver is not a failure */
    CHECK(sum.skipped == 0);
    CHECK(sum.cancel_reason == NIMSYNC_CANCEL_REASON_REQUESTED);
    CHECK(strstr(sum.cancel_message, "task 1 failed") != NULL);
    CHECK(!sum.interrupted);
    nimsync_task_error e;
    CHECK_OK(nimsync_group_report_error(report, 0, &e));
    CHECK(e.task == 1 && e.status == 42 && !e.panicked);
    CHECK(strcmp(e.message, "task 1 failed: returned status 42") == 0);
    CHECK_STATUS(nimsync_group_report_error(report, 1, &e), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("index");
    nimsync_group_report_free(report);

    nimsync_cancel_callback_free(on_cancel);
    nimsync_cancel_token_free(token);
    nimsync_task_group_free(g);
    nimsync_channel_free(st.never);
    nimsync_channel_free(st.ready);
    nimsync_scheduler_free(pool);
}

/* ---- every error, in spawn order ---------------------------------------- */

#define ORDER_TASKS 6

typedef struct {
    pthread_barrier_t all_started;
    int index[ORDER_TASKS];
} order_state;

typedef struct {
    order_state *st;
    int i;
} order_arg;

static int odd_ones_fail(void *arg, const nimsync_cancel_token *token) {
    (void)token;
    order_arg *a = arg;
    /* every task is running before any fails, so none is skipped */
    pthread_barrier_wait(&a->st->all_started);
    return a->i % 2 ? 100 + a->i : 0;
}

static void all_errors_in_spawn_order(void) {
    nimsync_scheduler *pool;
    CHECK_OK(nimsync_scheduler_new(ORDER_TASKS + 2, &pool));
    order_state st;
    pthread_barrier_init(&st.all_started, NULL, ORDER_TASKS);
    order_arg args[ORDER_TASKS];
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(pool, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    for (int i = 0; i < ORDER_TASKS; i++) {
        args[i] = (order_arg){&st, i};
        CHECK_OK(nimsync_task_group_spawn(g, odd_ones_fail, &args[i], NULL, NULL));
    }
    nimsync_group_report *report = NULL;
    CHECK_STATUS(nimsync_task_group_join(g, &report), NIMSYNC_STATUS_TASK_FAILED);
    CHECK_MESSAGE_HAS("3 tasks failed");
    nimsync_group_summary sum;
    CHECK_OK(nimsync_group_report_summary(report, &sum));
    CHECK(sum.errors == 3);
    for (size_t k = 0; k < sum.errors; k++) {
        nimsync_task_error e;
        CHECK_OK(nimsync_group_report_error(report, k, &e));
        CHECK(e.task == 2 * k + 1);
        CHECK(e.status == (int)(100 + 2 * k + 1));
    }
    nimsync_group_report_free(report);
    nimsync_task_group_free(g);
    pthread_barrier_destroy(&st.all_started);
    nimsync_scheduler_free(pool);
}

/* ---- the concurrency limit ---------------------------------------------- */

typedef struct {
    int running;
    int high_water;
    int ran;
} limit_state;

static int limited_task(void *arg, const nimsync_cancel_token *token) {
    (void)token;
    limit_state *st = arg;
    int now = __atomic_add_fetch(&st->running, 1, __ATOMIC_ACQ_REL);
    int seen = __atomic_load_n(&st->high_water, __ATOMIC_RELAXED);
    while (now > seen &&
           !__atomic_compare_exchange_n(&st->high_water, &seen, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    for (int i = 0; i < 50; i++) sched_yield(); /* give the others a chance to overlap */
    __atomic_fetch_add(&st->ran, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&st->running, 1, __ATOMIC_ACQ_REL);
    return 0;
}

static void limit_never_exceeded(void) {
    nimsync_scheduler *pool;
    CHECK_OK(nimsync_scheduler_new(4, &pool));
    limit_state st = {0, 0, 0};
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(pool, NULL, 3, NIMSYNC_WAIT_FOREVER, &g));
    for (int i = 0; i < 200; i++) CHECK_OK(nimsync_task_group_spawn(g, limited_task, &st, NULL, NULL));
    nimsync_group_report *report = (nimsync_group_report *)1;
    CHECK_OK(nimsync_task_group_join(g, &report));
    CHECK(report == NULL);
    printf("  high-water mark of running tasks: %d (limit 3)\n", st.high_water);
    CHECK(st.ran == 200);
    CHECK(st.high_water >= 1 && st.high_water <= 3);
    nimsync_task_group_free(g);
    nimsync_scheduler_free(pool);
}

/* ---- tasks that never run ------------------------------------------------ */

static int count_group_run(void *arg, const nimsync_cancel_token *token) {
    (void)token;
    count_run(arg);
    return 0;
}

static void skipped_tasks_get_their_drop(void) {
    counts c = {0, 0};
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    CHECK_OK(nimsync_task_group_cancel(g, "stop"));
    for (int i = 0; i < 5; i++) CHECK_OK(nimsync_task_group_spawn(g, count_group_run, &c, count_drop, NULL));
    nimsync_group_report *report = NULL;
    CHECK_STATUS(nimsync_task_group_join(g, &report), NIMSYNC_STATUS_CANCELLED);
    CHECK_MESSAGE_HAS("stop");
    nimsync_group_summary sum;
    CHECK_OK(nimsync_group_report_summary(report, &sum));
    CHECK(sum.errors == 0 && sum.skipped == 5);
    CHECK(strcmp(sum.cancel_message, "stop") == 0);
    CHECK(c.ran == 0 && c.dropped == 5);
    nimsync_group_report_free(report);
    nimsync_task_group_free(g);
}

typedef struct {
    nimsync_channel *never;
    nimsync_channel *started;
    nimsync_status status;
} blocker_state;

static int block_until_cancelled(void *arg, const nimsync_cancel_token *token) {
    blocker_state *st = arg;
    nimsync_channel_send(st->started, 1);
    uintptr_t item;
    st->status = nimsync_channel_recv_with(st->never, &item, NIMSYNC_WAIT_FOREVER, token);
    return st->status;
}

static void free_before_join_cancels_and_waits(void) {
    blocker_state st = {0};
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.never));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.started));
    counts c = {0, 0};
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 1, NIMSYNC_WAIT_FOREVER, &g));
    CHECK_OK(nimsync_task_group_spawn(g, block_until_cancelled, &st, NULL, NULL));
    for (int i = 0; i < 3; i++) /* held by the limit behind the blocker */
        CHECK_OK(nimsync_task_group_spawn(g, count_group_run, &c, count_drop, NULL));
    uintptr_t item;
    CHECK_OK(nimsync_channel_recv(st.started, &item));
    nimsync_task_group_free(g); /* cancels, then waits for the blocker */
    CHECK(st.status == NIMSYNC_STATUS_CANCELLED);
    CHECK(c.ran == 0 && c.dropped == 3);
    nimsync_channel_free(st.never);
    nimsync_channel_free(st.started);
}

/* ---- deadlines and nesting ---------------------------------------------- */

static void group_deadline_times_out_blocked_task(void) {
    blocker_state st = {0};
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.never));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.started));
    nimsync_task_group *g;
    uint64_t start = now_ns();
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, 50 * MS, &g));
    CHECK_OK(nimsync_task_group_spawn(g, block_until_cancelled, &st, NULL, NULL));
    nimsync_group_report *report = NULL;
    CHECK_STATUS(nimsync_task_group_join(g, &report), NIMSYNC_STATUS_TIMEOUT);
    uint64_t elapsed = now_ns() - start;
    CHECK(elapsed >= 50 * MS);
    CHECK(st.status == NIMSYNC_STATUS_TIMEOUT);
    nimsync_group_summary sum;
    CHECK_OK(nimsync_group_report_summary(report, &sum));
    CHECK(sum.errors == 0 && sum.cancel_reason == NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED);
    nimsync_group_report_free(report);
    nimsync_task_group_free(g);

    /* a deadline of 0: cancelled at once, tasks skipped */
    counts c = {0, 0};
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, 0, &g));
    CHECK_OK(nimsync_task_group_spawn(g, count_group_run, &c, count_drop, NULL));
    CHECK_STATUS(nimsync_task_group_join(g, &report), NIMSYNC_STATUS_TIMEOUT);
    CHECK(c.ran == 0 && c.dropped == 1);
    nimsync_group_report_free(report);
    nimsync_task_group_free(g);
    nimsync_channel_free(st.never);
    nimsync_channel_free(st.started);
}

static void nested_groups_cancel_downward_only(void) {
    nimsync_task_group *outer, *inner, *sibling;
    nimsync_cancel_token *outer_token;
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, NIMSYNC_WAIT_FOREVER, &outer));
    CHECK_OK(nimsync_task_group_token(outer, &outer_token));
    CHECK_OK(nimsync_task_group_new(NULL, outer_token, 0, NIMSYNC_WAIT_FOREVER, &inner));
    CHECK_OK(nimsync_task_group_new(NULL, outer_token, 0, NIMSYNC_WAIT_FOREVER, &sibling));
    nimsync_cancel_token *inner_token, *sibling_token;
    CHECK_OK(nimsync_task_group_token(inner, &inner_token));
    CHECK_OK(nimsync_task_group_token(sibling, &sibling_token));

    CHECK_OK(nimsync_task_group_cancel(inner, "inner only"));
    CHECK(nimsync_cancel_token_is_cancelled(inner_token));
    CHECK(!nimsync_cancel_token_is_cancelled(outer_token));
    CHECK(!nimsync_cancel_token_is_cancelled(sibling_token));

    CHECK_OK(nimsync_task_group_cancel(outer, "everything"));
    CHECK(nimsync_cancel_token_is_cancelled(sibling_token));
    nimsync_group_report *report = NULL;
    CHECK_STATUS(nimsync_task_group_join(sibling, &report), NIMSYNC_STATUS_CANCELLED);
    CHECK_MESSAGE_HAS("everything");
    nimsync_group_report_free(report);

    nimsync_cancel_token_free(inner_token);
    nimsync_cancel_token_free(sibling_token);
    nimsync_cancel_token_free(outer_token);
    nimsync_task_group_free(inner);
    nimsync_task_group_free(sibling);
    nimsync_task_group_free(outer);
}

/* ---- an event loop's join ------------------------------------------------ */

typedef struct {
    nimsync_channel *go;
} gate_state;

static int wait_at_gate(void *arg, const nimsync_cancel_token *token) {
    uintptr_t item;
    return nimsync_channel_recv_with(((gate_state *)arg)->go, &item, NIMSYNC_WAIT_FOREVER, token);
}

static void poll_join_wakes_the_loop_descriptor(void) {
    nimsync_loop_waker *waker;
    CHECK_OK(nimsync_loop_waker_new(&waker));
    int fd = -1;
    CHECK_OK(nimsync_loop_waker_fd(waker, &fd));
    gate_state st;
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &st.go));
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    CHECK_OK(nimsync_task_group_spawn(g, wait_at_gate, &st, NULL, NULL));

    nimsync_group_report *report = (nimsync_group_report *)1;
    CHECK_STATUS(nimsync_task_group_try_join(g, &report), NIMSYNC_STATUS_PENDING);
    CHECK_STATUS(nimsync_task_group_poll_join(g, waker, 7, &report), NIMSYNC_STATUS_PENDING);
    CHECK(report == (nimsync_group_report *)1); /* untouched while pending */
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0); /* nothing finished: the descriptor is quiet */

    CHECK_OK(nimsync_channel_send(st.go, 1));
    CHECK(poll(&p, 1, 10000) == 1); /* the loop's wait ends when the task does */
    uint64_t tokens[4];
    size_t n = 0;
    CHECK_OK(nimsync_loop_waker_drain(waker, tokens, 4, &n));
    CHECK(n == 1 && tokens[0] == 7);
    CHECK_OK(nimsync_task_group_poll_join(g, waker, 7, &report));
    CHECK(report == NULL);
    CHECK_OK(nimsync_task_group_try_join(g, &report));

    nimsync_task_group_free(g);
    nimsync_channel_free(st.go);
    nimsync_loop_waker_free(waker);
}

static void group_bad_arguments(void) {
    CHECK_STATUS(nimsync_task_group_new(NULL, NULL, 0, NIMSYNC_WAIT_FOREVER, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_group");
    counts c = {0, 0};
    CHECK_STATUS(nimsync_task_group_spawn(NULL, count_group_run, &c, count_drop, NULL),
                 NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("group");
    nimsync_task_group *g;
    CHECK_OK(nimsync_task_group_new(NULL, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    CHECK_STATUS(nimsync_task_group_spawn(g, NULL, &c, count_drop, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("task_fn");
    CHECK(c.ran == 0 && c.dropped == 0); /* a refused spawn leaves arg with the caller */
    CHECK_STATUS(nimsync_task_group_join(g, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_report");
    nimsync_group_report *report;
    CHECK_STATUS(nimsync_task_group_join(NULL, &report), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_task_group_poll_join(g, NULL, 1, &report), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("waker");
    CHECK_STATUS(nimsync_task_group_token(g, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_token");
    CHECK_STATUS(nimsync_task_group_cancel(NULL, "x"), NIMSYNC_STATUS_NULL_ARGUMENT);
    nimsync_group_summary sum;
    CHECK_STATUS(nimsync_group_report_summary(NULL, &sum), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("report");
    CHECK_OK(nimsync_task_group_join(g, &report));
    CHECK(report == NULL);
    CHECK(strcmp(nimsync_status_str(NIMSYNC_STATUS_TASK_FAILED), "NIMSYNC_STATUS_TASK_FAILED") == 0);
    nimsync_task_group_free(g);
    nimsync_task_group_free(NULL);
    nimsync_group_report_free(NULL);
}

int main(void) {
    TEST(scheduler_runs_tasks_and_reports_metrics);
    TEST(global_scheduler_runs_tasks);
    TEST(scheduler_bad_arguments);
    TEST(fail_fast_cancels_blocked_receive);
    TEST(all_errors_in_spawn_order);
    TEST(limit_never_exceeded);
    TEST(skipped_tasks_get_their_drop);
    TEST(free_before_join_cancels_and_waits);
    TEST(group_deadline_times_out_blocked_task);
    TEST(nested_groups_cancel_downward_only);
    TEST(poll_join_wakes_the_loop_descriptor);
    TEST(group_bad_arguments);
    TEST_EXIT();
}
