/* Channels between POSIX threads through the C ABI: exactly-once delivery,
 * blocking and waking, close while threads are blocked. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "check.h"

#ifndef ITEMS
#define ITEMS 200000
#endif

struct producer_arg {
    const nimsync_channel *ch;
    uintptr_t id;
    uintptr_t count;
    int failures;
};

static void *produce(void *p) {
    struct producer_arg *a = p;
    for (uintptr_t i = 0; i < a->count; i++) {
        /* the producer id in the high bits, a sequence number in the low */
        if (nimsync_channel_send(a->ch, (a->id << 32) | i) != NIMSYNC_STATUS_OK) a->failures++;
    }
    return NULL;
}

static void spsc_in_order(void) {
    nimsync_channel *ch;
    CHECK_OK(nimsync_channel_new(64, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    struct producer_arg a = {ch, 0, ITEMS, 0};
    pthread_t t;
    pthread_create(&t, NULL, produce, &a);
    uintptr_t item, bad = 0;
    for (uintptr_t i = 0; i < ITEMS; i++) {
        if (nimsync_channel_recv(ch, &item) != NIMSYNC_STATUS_OK || item != i) bad++;
    }
    pthread_join(t, NULL);
    CHECK(bad == 0);
    CHECK(a.failures == 0);
    CHECK_STATUS(nimsync_channel_try_recv(ch, &item), NIMSYNC_STATUS_EMPTY);
    nimsync_channel_free(ch);
}

#define PRODUCERS 4
static void mpsc_exactly_once(void) {
    nimsync_channel *ch;
    CHECK_OK(nimsync_channel_new(32, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &ch));
    struct producer_arg args[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (uintptr_t p = 0; p < PRODUCERS; p++) {
        args[p] = (struct producer_arg){ch, p, ITEMS / PRODUCERS, 0};
        pthread_create(&threads[p], NULL, produce, &args[p]);
    }
    uintptr_t next[PRODUCERS] = {0}, item, bad = 0;
    for (uintptr_t i = 0; i < (ITEMS / PRODUCERS) * PRODUCERS; i++) {
        if (nimsync_channel_recv(ch, &item) != NIMSYNC_STATUS_OK) { bad++; continue; }
        uintptr_t p = item >> 32, seq = item & 0xffffffffu;
        if (p >= PRODUCERS || seq != next[p]) bad++; else next[p]++;
    }
    for (int p = 0; p < PRODUCERS; p++) {
        pthread_join(threads[p], NULL);
        CHECK(args[p].failures == 0);
        CHECK(next[p] == ITEMS / PRODUCERS);
    }
    CHECK(bad == 0);
    nimsync_channel_free(ch);
}

struct blocked {
    const nimsync_channel *ch;
    nimsync_status status;
    uintptr_t item;
};

static void *blocked_recv(void *p) {
    struct blocked *b = p;
    b->status = nimsync_channel_recv(b->ch, &b->item);
    return NULL;
}

static void *blocked_send(void *p) {
    struct blocked *b = p;
    b->status = nimsync_channel_send(b->ch, b->item);
    return NULL;
}

static void close_wakes_blocked_threads(void) {
    nimsync_channel *rx_side, *tx_side;
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &rx_side));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &tx_side));
    CHECK_OK(nimsync_channel_send(tx_side, 1)); /* now full: the next send blocks */
    struct blocked r = {rx_side, NIMSYNC_STATUS_OK, 0}, s = {tx_side, NIMSYNC_STATUS_OK, 2};
    pthread_t tr, ts;
    pthread_create(&tr, NULL, blocked_recv, &r);
    pthread_create(&ts, NULL, blocked_send, &s);
    /* Whether or not they are asleep yet, close must end both calls. */
    CHECK_OK(nimsync_channel_close(rx_side));
    CHECK_OK(nimsync_channel_close(tx_side));
    pthread_join(tr, NULL);
    pthread_join(ts, NULL);
    CHECK(r.status == NIMSYNC_STATUS_CLOSED);
    CHECK(s.status == NIMSYNC_STATUS_CLOSED);
    uintptr_t item;
    CHECK_OK(nimsync_channel_recv(tx_side, &item)); /* what was in stays receivable */
    CHECK(item == 1);
    nimsync_channel_free(rx_side);
    nimsync_channel_free(tx_side);
}

static void blocked_receiver_gets_item(void) {
    nimsync_channel *ch;
    CHECK_OK(nimsync_channel_new(2, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    struct blocked r = {ch, NIMSYNC_STATUS_OK, 0};
    pthread_t t;
    pthread_create(&t, NULL, blocked_recv, &r);
    CHECK_OK(nimsync_channel_send(ch, 42));
    pthread_join(t, NULL);
    CHECK(r.status == NIMSYNC_STATUS_OK && r.item == 42);
    nimsync_channel_free(ch);
}

struct cloned {
    nimsync_channel *ch; /* this thread's own reference */
};

static void *send_then_free(void *p) {
    struct cloned *c = p;
    for (uintptr_t i = 0; i < 1000; i++) nimsync_channel_send(c->ch, i);
    nimsync_channel_free(c->ch);
    return NULL;
}

static int dropped;
static void count_drop(uintptr_t item, void *ctx) {
    (void)item;
    (void)ctx;
    __atomic_fetch_add(&dropped, 1, __ATOMIC_SEQ_CST);
}

static void references_across_threads(void) {
    nimsync_channel *ch;
    dropped = 0;
    CHECK_OK(nimsync_channel_new(4096, NIMSYNC_CHANNEL_MODE_MPSC, count_drop, NULL, &ch));
    struct cloned c[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(nimsync_channel_clone(ch, &c[i].ch));
        pthread_create(&t[i], NULL, send_then_free, &c[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    uintptr_t item;
    for (int i = 0; i < 1000; i++) CHECK_OK(nimsync_channel_recv(ch, &item));
    CHECK(dropped == 0);
    nimsync_channel_free(ch); /* the last reference: 2000 items to the callback */
    CHECK(dropped == 2000);
}

int main(void) {
    TEST(spsc_in_order);
    TEST(mpsc_exactly_once);
    TEST(close_wakes_blocked_threads);
    TEST(blocked_receiver_gets_item);
    TEST(references_across_threads);
    TEST_EXIT();
}
