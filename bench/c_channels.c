/* Channel throughput and ping-pong latency through the C ABI.
 *
 * The same cases as the Rust benchmark (core/benches/channels.rs): u64 items,
 * capacity 1024, SPSC (1->1), MPSC (2->1), MPMC (2->2), and one message
 * bouncing between two threads over two SPSC channels. Every call goes
 * through libnimsync.so, so the ratio to the Rust numbers of the same run is
 * the cost of the C ABI.
 *
 * Built twice by `make bench`: against libnimsync.so (impl "nimsync C ABI") and
 * against libnimsync.a (impl "nimsync C ABI static", argv[1]), which shows what
 * the shared library's calling and thread-local-storage conventions cost.
 *
 * Prints one JSON object per result on stdout, progress on stderr.
 * Environment: NIMSYNC_BENCH_MESSAGES, NIMSYNC_BENCH_ROUNDS,
 * NIMSYNC_BENCH_PINGS shrink it, as for the Rust benchmark.
 *
 *   cc -O2 bench/c_channels.c -Iinclude -Ltarget/release -lnimsync -lpthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nimsync.h"

#define CAPACITY 1024
#define MAX_THREADS 4

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : fallback;
}

static void check(nimsync_status st, const char *what) {
    if (st != NIMSYNC_STATUS_OK) {
        fprintf(stderr, "%s failed: %s\n", what, nimsync_last_error_message());
        exit(1);
    }
}

/* One thread's part of a throughput run. */
typedef struct {
    nimsync_channel *ch;
    pthread_barrier_t *start;
    uint64_t count;
    int sender;
    uint64_t t0, t1, sum;
} part;

static void *run_part(void *arg) {
    part *p = arg;
    pthread_barrier_wait(p->start);
    p->t0 = now_ns();
    if (p->sender) {
        for (uint64_t i = 1; i <= p->count; i++)
            check(nimsync_channel_send(p->ch, (uintptr_t)i), "send");
    } else {
        uint64_t sum = 0;
        for (uint64_t i = 0; i < p->count; i++) {
            uintptr_t v;
            check(nimsync_channel_recv(p->ch, &v), "recv");
            sum += v;
        }
        p->sum = sum;
    }
    p->t1 = now_ns();
    return NULL;
}

static uint64_t share(uint64_t n, uint64_t parts, uint64_t i) { return n / parts + (i < n % parts); }

/* Sum of 1..k, what a sender of k items contributes. */
static uint64_t tri(uint64_t k) { return k * (k + 1) / 2; }

/* Moves n items from `producers` to `consumers` threads; returns items/s. */
static double throughput(uint32_t mode, uint64_t n, int producers, int consumers) {
    nimsync_channel *ch;
    check(nimsync_channel_new(CAPACITY, mode, NULL, NULL, &ch), "new");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)(producers + consumers));
    part parts[MAX_THREADS];
    pthread_t threads[MAX_THREADS];
    int total = producers + consumers;
    uint64_t expect = 0;
    for (int i = 0; i < total; i++) {
        int sender = i < producers;
        uint64_t k = sender ? share(n, (uint64_t)producers, (uint64_t)i)
                            : share(n, (uint64_t)consumers, (uint64_t)(i - producers));
        if (sender) expect += tri(k);
        parts[i] = (part){.ch = ch, .start = &start, .count = k, .sender = sender};
        pthread_create(&threads[i], NULL, run_part, &parts[i]);
    }
    uint64_t first = UINT64_MAX, last = 0, sum = 0;
    for (int i = 0; i < total; i++) {
        pthread_join(threads[i], NULL);
        if (parts[i].t0 < first) first = parts[i].t0;
        if (parts[i].t1 > last) last = parts[i].t1;
        sum += parts[i].sum;
    }
    if (sum != expect) {
        fprintf(stderr, "wrong data: received sum %llu, sent %llu\n", (unsigned long long)sum,
                (unsigned long long)expect);
        exit(1);
    }
    pthread_barrier_destroy(&start);
    nimsync_channel_free(ch);
    return (double)n / ((double)(last - first) / 1e9);
}

typedef struct {
    nimsync_channel *a, *b;
    uint64_t rounds;
} echo_args;

static void *echo(void *arg) {
    echo_args *e = arg;
    for (uint64_t i = 0; i < e->rounds; i++) {
        uintptr_t v;
        check(nimsync_channel_recv(e->a, &v), "recv");
        check(nimsync_channel_send(e->b, v), "send");
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static const char *impl_name = "nimsync C ABI";

static void ping_pong(uint64_t rounds, int cores) {
    nimsync_channel *a, *b;
    check(nimsync_channel_new(CAPACITY, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &a), "new");
    check(nimsync_channel_new(CAPACITY, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &b), "new");
    uint64_t *times = malloc(rounds * sizeof *times);
    if (!times) exit(1);
    echo_args e = {a, b, rounds};
    pthread_t t;
    pthread_create(&t, NULL, echo, &e);
    for (uint64_t i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        uintptr_t v;
        check(nimsync_channel_send(a, (uintptr_t)i), "send");
        check(nimsync_channel_recv(b, &v), "recv");
        times[i] = now_ns() - t0;
        if (v != i) {
            fprintf(stderr, "ping-pong returned %llu for %llu\n", (unsigned long long)v, (unsigned long long)i);
            exit(1);
        }
    }
    pthread_join(t, NULL);
    qsort(times, rounds, sizeof *times, cmp_u64);
    printf("{\"suite\":\"c\",\"metric\":\"pingpong\",\"case\":\"pingpong\",\"impl\":\"%s\","
           "\"median_ns\":%llu,\"p99_ns\":%llu,\"cores\":%d}\n",
           impl_name, (unsigned long long)times[rounds / 2], (unsigned long long)times[rounds * 99 / 100], cores);
    free(times);
    nimsync_channel_free(a);
    nimsync_channel_free(b);
}

int main(int argc, char **argv) {
    if (argc > 1) impl_name = argv[1];
    uint64_t n = env_u64("NIMSYNC_BENCH_MESSAGES", 10000000);
    uint64_t rounds = env_u64("NIMSYNC_BENCH_ROUNDS", 3);
    uint64_t pings = env_u64("NIMSYNC_BENCH_PINGS", 100000);
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (rounds == 0 || rounds > 64 || pings == 0) {
        fprintf(stderr, "NIMSYNC_BENCH_ROUNDS must be 1..64 and NIMSYNC_BENCH_PINGS at least 1\n");
        return 2;
    }
    struct {
        const char *name;
        uint32_t mode;
        int producers, consumers;
        double mps[64];
    } shapes[] = {
        {"spsc", NIMSYNC_CHANNEL_MODE_SPSC, 1, 1, {0}},
        {"mpsc", NIMSYNC_CHANNEL_MODE_MPSC, 2, 1, {0}},
        {"mpmc", NIMSYNC_CHANNEL_MODE_MPMC, 2, 2, {0}},
    };
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    fprintf(stderr, "%s channels: %llu messages per case, %llu rounds, %d cores\n", impl_name, (unsigned long long)n,
            (unsigned long long)rounds, cores);
    fprintf(stderr, "  warming up");
    for (int i = 0; i < 3; i++) throughput(NIMSYNC_CHANNEL_MODE_SPSC, n < 2000000 ? n : 2000000, 1, 1);
    for (uint64_t r = 0; r < rounds; r++)
        for (int s = 0; s < nshapes; s++) {
            fprintf(stderr, "\r  round %llu/%llu: %-5s %s   ", (unsigned long long)r + 1,
                    (unsigned long long)rounds, shapes[s].name, impl_name);
            shapes[s].mps[r] = throughput(shapes[s].mode, n, shapes[s].producers, shapes[s].consumers);
        }
    for (int s = 0; s < nshapes; s++) {
        qsort(shapes[s].mps, rounds, sizeof(double), cmp_double);
        int threads = shapes[s].producers + shapes[s].consumers;
        printf("{\"suite\":\"c\",\"metric\":\"throughput\",\"case\":\"%s\",\"impl\":\"%s\","
               "\"mps\":%.3f,\"threads\":%d,\"cores\":%d,\"oversubscribed\":%s}\n",
               shapes[s].name, impl_name, shapes[s].mps[rounds / 2] / 1e6, threads, cores, threads > cores ? "true" : "false");
    }
    fprintf(stderr, "\r  ping-pong %-30s", impl_name);
    ping_pong(pings, cores);
    fprintf(stderr, "\n");
    return 0;
}
