#define _DEFAULT_SOURCE /* poll(2) */
/* Select, unbounded and rendezvous channels, and async operations driven by
 * a loop waker's descriptor, through the C ABI. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "check.h"

static void unbounded_channel(void) {
    nimsync_channel *ch;
    size_t cap, len;
    uintptr_t item;
    CHECK_OK(nimsync_channel_new_unbounded(NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_capacity(ch, &cap));
    CHECK(cap == SIZE_MAX);
    for (uintptr_t i = 0; i < 10000; i++) CHECK_OK(nimsync_channel_try_send(ch, i));
    CHECK_OK(nimsync_channel_len(ch, &len));
    CHECK(len == 10000);
    for (uintptr_t i = 0; i < 10000; i++) {
        CHECK_OK(nimsync_channel_try_recv(ch, &item));
        if (item != i) { CHECK(item == i); break; }
    }
    CHECK_STATUS(nimsync_channel_new_unbounded(NULL, NULL, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    nimsync_channel_free(ch);
}

struct sender { const nimsync_channel *ch; uintptr_t item; nimsync_status status; };
static void *send_blocking(void *p) {
    struct sender *s = p;
    s->status = nimsync_channel_send(s->ch, s->item);
    return NULL;
}

static void rendezvous_channel(void) {
    nimsync_channel *ch;
    size_t cap;
    uintptr_t item;
    CHECK_STATUS(nimsync_channel_new(0, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("rendezvous");
    CHECK_OK(nimsync_channel_new(0, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_capacity(ch, &cap));
    CHECK(cap == 0);
    CHECK_STATUS(nimsync_channel_try_send(ch, 1), NIMSYNC_STATUS_FULL); /* nobody receiving */
    CHECK_STATUS(nimsync_channel_send_timeout(ch, 1, 1000000), NIMSYNC_STATUS_TIMEOUT);
    struct sender s = {ch, 77, NIMSYNC_STATUS_PANIC};
    pthread_t t;
    pthread_create(&t, NULL, send_blocking, &s);
    CHECK_OK(nimsync_channel_recv(ch, &item)); /* meets the blocked sender */
    pthread_join(t, NULL);
    CHECK(item == 77);
    CHECK(s.status == NIMSYNC_STATUS_OK);
    nimsync_channel_free(ch);
}

static void select_cases(void) {
    nimsync_channel *a, *b, *full;
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &a));
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &b));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &full));
    CHECK_OK(nimsync_channel_send(full, 1));
    nimsync_select_case cases[3] = {
        {a, NIMSYNC_SELECT_OP_RECV, 0},
        {b, NIMSYNC_SELECT_OP_RECV, 0},
        {full, NIMSYNC_SELECT_OP_SEND, 5},
    };
    size_t which = 99;
    uintptr_t item = 0;
    CHECK_STATUS(nimsync_select(cases, 3, 0, &which, &item), NIMSYNC_STATUS_EMPTY);
    CHECK(which == 99);
    CHECK_STATUS(nimsync_select(cases, 3, 2000000, &which, &item), NIMSYNC_STATUS_TIMEOUT);
    CHECK_OK(nimsync_channel_send(b, 42));
    CHECK_OK(nimsync_select(cases, 3, NIMSYNC_WAIT_FOREVER, &which, &item));
    CHECK(which == 1 && item == 42);
    CHECK_OK(nimsync_channel_recv(full, &item)); /* room for the send case */
    CHECK_OK(nimsync_select(cases, 3, NIMSYNC_WAIT_FOREVER, &which, &item));
    CHECK(which == 2);
    CHECK_OK(nimsync_channel_recv(full, &item));
    CHECK(item == 5);
    CHECK_OK(nimsync_channel_close(a));
    CHECK_STATUS(nimsync_select(cases, 2, NIMSYNC_WAIT_FOREVER, &which, &item), NIMSYNC_STATUS_CLOSED);
    CHECK(which == 0);
    /* bad input */
    nimsync_select_case bad = {a, 7, 0};
    CHECK_STATUS(nimsync_select(&bad, 1, 0, &which, &item), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("op");
    nimsync_select_case null_ch = {NULL, NIMSYNC_SELECT_OP_RECV, 0};
    CHECK_STATUS(nimsync_select(&null_ch, 1, 0, &which, &item), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("cases[0].channel");
    CHECK_STATUS(nimsync_select(NULL, 1, 0, &which, &item), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_select(NULL, 0, NIMSYNC_WAIT_FOREVER, &which, &item), NIMSYNC_STATUS_INVALID_ARGUMENT);
    nimsync_channel_free(a);
    nimsync_channel_free(b);
    nimsync_channel_free(full);
}

static int fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

struct producer { const nimsync_channel *ch; uintptr_t n; };
static void *produce(void *p) {
    struct producer *a = p;
    for (uintptr_t i = 1; i <= a->n; i++) nimsync_channel_send(a->ch, i);
    nimsync_channel_close(a->ch);
    return NULL;
}

/* An event loop in miniature: poll(2) on the waker's descriptor, drain the
 * tokens, poll the operations they name. */
static void async_receive_driven_by_the_descriptor(void) {
    nimsync_loop_waker *w;
    nimsync_async_op *op;
    nimsync_channel *ch;
    int fd = -1;
    CHECK_OK(nimsync_loop_waker_new(&w));
    CHECK_OK(nimsync_loop_waker_fd(w, &fd));
    CHECK(fd >= 0);
    CHECK_OK(nimsync_async_op_new(w, 7, &op));
    CHECK_OK(nimsync_channel_new(16, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &ch));

    uintptr_t item;
    CHECK_STATUS(nimsync_channel_poll_recv(ch, op, &item), NIMSYNC_STATUS_PENDING);
    CHECK(!fd_readable(fd, 0)); /* registering writes nothing */

    struct producer pr = {ch, 20000};
    pthread_t t;
    pthread_create(&t, NULL, produce, &pr);
    uint64_t sum = 0, count = 0, wakeups = 0;
    for (;;) {
        nimsync_status s = nimsync_channel_poll_recv(ch, op, &item);
        if (s == NIMSYNC_STATUS_OK) { sum += item; count++; continue; }
        if (s == NIMSYNC_STATUS_CLOSED) break;
        CHECK(s == NIMSYNC_STATUS_PENDING);
        if (s != NIMSYNC_STATUS_PENDING) break;
        CHECK(fd_readable(fd, 10000));
        uint64_t tokens[4];
        size_t n = 0;
        CHECK_OK(nimsync_loop_waker_drain(w, tokens, 4, &n));
        CHECK(n >= 1 && tokens[0] == 7);
        wakeups++;
    }
    pthread_join(t, NULL);
    CHECK(count == 20000);
    CHECK(sum == (uint64_t)20000 * 20001 / 2);
    CHECK(wakeups >= 1);
    nimsync_async_op_free(op);
    nimsync_loop_waker_free(w);
    nimsync_channel_free(ch);
}

static void async_send_and_cancel(void) {
    nimsync_loop_waker *w;
    nimsync_async_op *op;
    nimsync_channel *ch, *rv;
    int fd;
    bool unsent = false;
    uintptr_t item;
    CHECK_OK(nimsync_loop_waker_new(&w));
    CHECK_OK(nimsync_loop_waker_fd(w, &fd));
    CHECK_OK(nimsync_async_op_new(w, 3, &op));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_poll_send(ch, op, 10));                                  /* room: done */
    CHECK_STATUS(nimsync_channel_poll_send(ch, op, 11), NIMSYNC_STATUS_PENDING);     /* full */
    CHECK_STATUS(nimsync_channel_poll_recv(ch, op, &item), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_OK(nimsync_channel_recv(ch, &item));
    CHECK(item == 10);
    CHECK(fd_readable(fd, 10000));                                                    /* slot freed */
    size_t n;
    uint64_t tok;
    CHECK_OK(nimsync_loop_waker_drain(w, &tok, 1, &n));
    CHECK(n == 1 && tok == 3);
    CHECK_OK(nimsync_channel_poll_send(ch, op, 11));
    CHECK_OK(nimsync_channel_recv(ch, &item));
    CHECK(item == 11);

    /* Cancelling a pending send hands the item back. */
    CHECK_OK(nimsync_channel_send(ch, 12));
    CHECK_STATUS(nimsync_channel_poll_send(ch, op, 13), NIMSYNC_STATUS_PENDING);
    CHECK_OK(nimsync_async_op_cancel(op, &unsent));
    CHECK(unsent);
    CHECK_OK(nimsync_channel_recv(ch, &item));
    CHECK(item == 12);
    CHECK_STATUS(nimsync_channel_try_recv(ch, &item), NIMSYNC_STATUS_EMPTY);

    /* Rendezvous: a pending async send is an offer a receiver takes. */
    CHECK_OK(nimsync_channel_new(0, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &rv));
    CHECK_STATUS(nimsync_channel_poll_send(rv, op, 21), NIMSYNC_STATUS_PENDING);
    CHECK_OK(nimsync_channel_try_recv(rv, &item));
    CHECK(item == 21);
    CHECK_OK(nimsync_async_op_cancel(op, &unsent)); /* too late: it was sent */
    CHECK(!unsent);

    nimsync_async_op_free(op);
    nimsync_async_op_free(NULL);
    nimsync_loop_waker_free(w);
    nimsync_loop_waker_free(NULL);
    nimsync_channel_free(ch);
    nimsync_channel_free(rv);
}

int main(void) {
    TEST(unbounded_channel);
    TEST(rendezvous_channel);
    TEST(select_cases);
    TEST(async_receive_driven_by_the_descriptor);
    TEST(async_send_and_cancel);
    TEST_EXIT();
}
