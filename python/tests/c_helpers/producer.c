/* A C library that produces integers into a nimsync channel on its own thread,
 * for the cross-language test: Python creates the channel, hands the handle to
 * C, and awaits the integers on asyncio. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "nimsync.h"

struct job {
    nimsync_channel *ch; /* the producer thread's own reference */
    uint64_t n;
};

static void *run(void *arg) {
    struct job *job = arg;
    for (uint64_t i = 1; i <= job->n; i++) {
        if (nimsync_channel_send(job->ch, (uintptr_t)i) != NIMSYNC_STATUS_OK) break;
    }
    nimsync_channel_close(job->ch);
    nimsync_channel_free(job->ch);
    free(job);
    return NULL;
}

/* Starts a detached thread sending 1..n into `ch`, then closing it. */
int start_producer(const nimsync_channel *ch, uint64_t n) {
    struct job *job = malloc(sizeof *job);
    if (!job) return -1;
    if (nimsync_channel_clone(ch, &job->ch) != NIMSYNC_STATUS_OK) { free(job); return -1; }
    job->n = n;
    pthread_t t;
    if (pthread_create(&t, NULL, run, job) != 0) { nimsync_channel_free(job->ch); free(job); return -1; }
    pthread_detach(t);
    return 0;
}

/* Creates a channel in C, for Python to adopt by handle. */
nimsync_channel *make_channel(size_t capacity) {
    nimsync_channel *ch = NULL;
    nimsync_channel_new(capacity, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &ch);
    return ch;
}
