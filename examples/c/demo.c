/* nimsync from C: a producer thread and a consumer thread share a channel.
 *
 * Build (after `make install PREFIX=...`):
 *   cc demo.c $(pkg-config --cflags --libs nimsync) -lpthread -o demo
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "nimsync.h"

#define ITEMS 5000000u

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

int main(void) {
    nimsync_channel *ch;
    if (nimsync_channel_new(1024, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch) != NIMSYNC_STATUS_OK) {
        fprintf(stderr, "nimsync_channel_new: %s\n", nimsync_last_error_message());
        return 1;
    }
    printf("[c] nimsync %s: SPSC channel, capacity 1024, %u integers from a producer thread\n",
           nimsync_version(), ITEMS);
    double t0 = now();
    pthread_t t;
    pthread_create(&t, NULL, producer, ch);

    uint64_t count = 0, sum = 0;
    uintptr_t item;
    nimsync_status s;
    while ((s = nimsync_channel_recv(ch, &item)) == NIMSYNC_STATUS_OK) {
        count++;
        sum += item;
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
