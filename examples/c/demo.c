/* nimsync from C: a producer thread and a consumer thread share a channel
 * (the consumer records each batch's latency in a histogram), then a task
 * group on the work-stealing pool fails fast, a receive runs into a 50 ms
 * deadline, and the histogram is read back and exposed for Prometheus.
 *
 * Build (after `make install PREFIX=...`):
 *   cc demo.c $(pkg-config --cflags --libs nimsync) -lpthread -o demo
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nimsync.h"

#define ITEMS 5000000u
#define BATCH 10000u /* items per latency sample */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *producer(void *arg) {
    const nimsync_channel *ch = arg;
    for (uintptr_t i = 1; i <= ITEMS; i++) {
        if (nimsync_channel_send(ch, i) != NIMSYNC_STATUS_OK) {
            fprintf(stderr, "send failed: %s\n", nimsync_last_error_message());
            return NULL;
        }
    }
    nimsync_channel_close(ch); /* the consumer drains, then sees CLOSED */
    return NULL;
}

/* The channel part: its consumer records the nanoseconds each BATCH of
 * items took in `batch_ns`. Returns 0 when every item arrived. */
static int channel_demo(const nimsync_metrics_histogram *batch_ns) {
    nimsync_channel *ch;
    if (nimsync_channel_new(1024, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch) != NIMSYNC_STATUS_OK) {
        fprintf(stderr, "nimsync_channel_new: %s\n", nimsync_last_error_message());
        return 1;
    }
    printf("[c] nimsync %s: SPSC channel, capacity 1024, %u integers from a producer thread\n",
           nimsync_version(), ITEMS);
    double t0 = now(), batch_start = t0;
    pthread_t t;
    pthread_create(&t, NULL, producer, ch);

    uint64_t count = 0, sum = 0;
    uintptr_t item;
    nimsync_status s;
    while ((s = nimsync_channel_recv(ch, &item)) == NIMSYNC_STATUS_OK) {
        count++;
        sum += item;
        if (count % BATCH == 0) {
            double t1 = now();
            nimsync_metrics_histogram_record(batch_ns, NULL, 0, (uint64_t)((t1 - batch_start) * 1e9));
            batch_start = t1;
        }
        if (count % 1000000 == 0) {
            printf("\r[c] received %llu / %u", (unsigned long long)count, ITEMS);
            fflush(stdout);
        }
    }
    pthread_join(t, NULL);
    double dt = now() - t0;
    uint64_t expected = (uint64_t)ITEMS * (ITEMS + 1) / 2;
    printf("\r[c] received %llu items, sum %llu (%s), ended with %s, %.1f M items/s\n",
           (unsigned long long)count, (unsigned long long)sum, sum == expected ? "correct" : "WRONG",
           nimsync_status_str(s), count / dt / 1e6);
    nimsync_channel_free(ch);
    return sum == expected ? 0 : 1;
}

/* Reports a failed call with the library's message and leaves the function. */
#define CHECK(call)                                                                    \
    do {                                                                               \
        nimsync_status check_status_ = (call);                                         \
        if (check_status_ != NIMSYNC_STATUS_OK) {                                      \
            fprintf(stderr, "%s: %s (%s)\n", #call, nimsync_last_error_message(),      \
                    nimsync_status_str(check_status_));                                \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

#define TASKS 8
#define WORKERS 4
#define FAILING_TASK 1
#define RANGE 200000000ull /* numbers each task sums */
#define CHUNK 1000000ull  /* numbers summed between two looks at the token */
#define TASK_ERROR 42     /* the failing task's application error code */

enum task_outcome { TASK_SKIPPED, TASK_DONE, TASK_CANCELLED, TASK_FAILED };

/* One task's job: sum lo..hi-1. Owned by group_demo; a task writes its own
 * job only, and the join orders those writes before group_demo reads them. */
typedef struct {
    unsigned index;
    uint64_t lo, hi;
    uint64_t done, sum; /* numbers summed so far, and their sum */
    enum task_outcome outcome;
} sum_job;

static int sum_range(void *arg, const nimsync_cancel_token *token) {
    sum_job *job = arg;
    for (uint64_t i = job->lo; i < job->hi; i += CHUNK) {
        nimsync_status s = nimsync_cancel_token_check(token);
        if (s != NIMSYNC_STATUS_OK) { /* a sibling failed: stop, it is not our failure */
            job->outcome = TASK_CANCELLED;
            return s;
        }
        if (job->index == FAILING_TASK && job->done >= RANGE / 10) {
            job->outcome = TASK_FAILED;
            return TASK_ERROR;
        }
        uint64_t end = i + CHUNK < job->hi ? i + CHUNK : job->hi, sum = job->sum;
        for (uint64_t k = i; k < end; k++)
            sum += k;
        job->sum = sum;
        job->done += end - i;
    }
    job->outcome = TASK_DONE;
    return 0;
}

/* Called instead of sum_range for a task the cancelled group never started. */
static void sum_skipped(void *arg) { ((sum_job *)arg)->outcome = TASK_SKIPPED; }

static int group_demo(void) {
    static sum_job jobs[TASKS];
    nimsync_scheduler *pool;
    nimsync_task_group *g;
    CHECK(nimsync_scheduler_new(WORKERS, &pool));
    CHECK(nimsync_task_group_new(pool, NULL, 0, NIMSYNC_WAIT_FOREVER, &g));
    printf("[c] task group on a %u-worker pool: %u tasks each sum %llu numbers, task %u fails a "
           "tenth of the way\n", WORKERS, TASKS, RANGE, FAILING_TASK);
    double t0 = now();
    for (unsigned i = 0; i < TASKS; i++) {
        jobs[i] = (sum_job){.index = i, .lo = i * RANGE, .hi = (i + 1) * RANGE, .outcome = TASK_SKIPPED};
        CHECK(nimsync_task_group_spawn(g, sum_range, &jobs[i], sum_skipped, NULL));
    }
    nimsync_group_report *report = NULL;
    nimsync_status s = nimsync_task_group_join(g, &report);
    double ms = (now() - t0) * 1e3;

    unsigned counts[4] = {0}, sums_ok = 1;
    printf("[c]");
    for (unsigned i = 0; i < TASKS; i++) {
        static const char *const names[] = {"skipped", "done", "cancelled", "FAILED"};
        uint64_t lo = jobs[i].lo, n = jobs[i].done; /* the numbers it summed: lo..lo+n-1 */
        sums_ok &= jobs[i].sum == (n == 0 ? 0 : (2 * lo + n - 1) * n / 2);
        counts[jobs[i].outcome]++;
        if (jobs[i].outcome == TASK_SKIPPED)
            printf(" #%u skipped", i);
        else
            printf(" #%u %s@%llu%%", i, names[jobs[i].outcome], jobs[i].done * 100 / RANGE);
    }
    printf("\n[c] join: %s after %.0f ms: %u done, %u cancelled mid-sum, %u skipped, %u failed; "
           "every (partial) sum %s\n",
           nimsync_status_str(s), ms, counts[TASK_DONE], counts[TASK_CANCELLED], counts[TASK_SKIPPED],
           counts[TASK_FAILED], sums_ok ? "correct" : "WRONG");
    int ok = s == NIMSYNC_STATUS_TASK_FAILED && report != NULL && sums_ok && counts[TASK_FAILED] == 1;
    if (report != NULL) {
        nimsync_group_summary sum;
        CHECK(nimsync_group_report_summary(report, &sum));
        for (size_t i = 0; i < sum.errors; i++) {
            nimsync_task_error e;
            CHECK(nimsync_group_report_error(report, i, &e));
            printf("[c]   report: %s (status %d)\n", e.message, e.status);
            ok = ok && e.task == FAILING_TASK && e.status == TASK_ERROR;
        }
        printf("[c]   report: %zu error(s), %zu skipped, cancel message \"%s\"\n", sum.errors, sum.skipped,
               sum.cancel_message);
        ok = ok && sum.errors == 1 && sum.skipped == counts[TASK_SKIPPED];
        nimsync_group_report_free(report);
    }
    nimsync_task_group_free(g);
    nimsync_scheduler_free(pool);
    return ok ? 0 : 1;
}

static int deadline_demo(void) {
    nimsync_channel *ch;
    nimsync_cancel_token *root, *within_50ms;
    CHECK(nimsync_channel_new(16, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    CHECK(nimsync_cancel_token_new(&root));
    CHECK(nimsync_cancel_token_with_timeout(root, 50 * 1000000ull, &within_50ms));
    double t0 = now();
    uintptr_t item;
    nimsync_status s = nimsync_channel_recv_with(ch, &item, NIMSYNC_WAIT_FOREVER, within_50ms);
    double ms = (now() - t0) * 1e3;
    printf("[c] deadline: recv on an empty channel under a 50 ms token ended with %s after %.1f ms\n",
           nimsync_status_str(s), ms);
    nimsync_cancel_token_free(within_50ms);
    nimsync_cancel_token_free(root);
    nimsync_channel_free(ch);
    return s == NIMSYNC_STATUS_TIMEOUT && ms >= 50.0 ? 0 : 1;
}

/* Prints the histogram's p50/p99 and its two quantile lines of the
 * Prometheus exposition. */
static int metrics_demo(const nimsync_metrics_collector *metrics, const nimsync_metrics_histogram *batch_ns) {
    nimsync_metrics_summary m;
    CHECK(nimsync_metrics_histogram_summary(batch_ns, NULL, 0, &m));
    printf("[c] metrics: %llu batches of %u items, p50 %.1f us, p99 %.1f us, max %.1f us\n",
           (unsigned long long)m.count, BATCH, m.p50 / 1e3, m.p99 / 1e3, m.max / 1e3);
    size_t cap = 1024, len;
    char *text = malloc(cap);
    nimsync_status s;
    while (text != NULL && (s = nimsync_metrics_collector_prometheus(metrics, text, cap, &len)) == NIMSYNC_STATUS_OK &&
           len >= cap) {
        cap = len + 1024;
        char *bigger = realloc(text, cap);
        if (bigger == NULL)
            free(text);
        text = bigger;
    }
    if (text == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    CHECK(s);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "demo_channel_batch_seconds{quantile=", 36) == 0) {
            printf("[c]   %s\n", line);
            lines++;
        }
    }
    free(text);
    return m.count == ITEMS / BATCH && lines == 2 ? 0 : 1;
}

int main(void) {
    nimsync_metrics_collector *metrics;
    nimsync_metrics_histogram *batch_ns;
    static const double quantiles[] = {0.5, 0.99};
    nimsync_metrics_histogram_opts opts = {.quantiles = quantiles, .quantile_count = 2, .scale = 1e-9};
    CHECK(nimsync_metrics_collector_new(true, 1.0, &metrics));
    CHECK(nimsync_metrics_register_histogram(metrics, "demo_channel_batch_seconds",
                                             "Time the consumer took to receive a batch of items.", NULL, 0,
                                             &opts, &batch_ns));
    int failed = channel_demo(batch_ns);
    failed |= group_demo();
    failed |= deadline_demo();
    failed |= metrics_demo(metrics, batch_ns);
    nimsync_metrics_histogram_free(batch_ns);
    nimsync_metrics_collector_free(metrics);
    return failed;
}
