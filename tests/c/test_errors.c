/* Bad input through the C ABI: every case returns its documented status with
 * a message, and nothing leaks (run under valgrind by `make test`). */
#include <stdint.h>
#include <stdlib.h>
#include "check.h"

static void version_and_abi(void) {
    CHECK(nimsync_abi_version() == NIMSYNC_ABI_VERSION);
    const char *v = nimsync_version();
    CHECK(v != NULL && strlen(v) >= 5 && strchr(v, '.') != NULL);
    CHECK(strcmp(nimsync_status_str(NIMSYNC_STATUS_OK), "NIMSYNC_STATUS_OK") == 0);
    CHECK(strcmp(nimsync_status_str(NIMSYNC_STATUS_CLOSED), "NIMSYNC_STATUS_CLOSED") == 0);
    CHECK(strcmp(nimsync_status_str(12345), "NIMSYNC_STATUS_UNKNOWN") == 0);
    CHECK(strcmp(nimsync_status_str(-1), "NIMSYNC_STATUS_UNKNOWN") == 0);
}

static void null_arguments(void) {
    nimsync_channel *ch = NULL;
    uintptr_t item;
    size_t n;
    bool b;
    uint32_t mode;
    CHECK_STATUS(nimsync_channel_new(8, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_channel");
    CHECK_STATUS(nimsync_channel_try_send(NULL, 1), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("channel");
    CHECK_STATUS(nimsync_channel_send(NULL, 1), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_send_timeout(NULL, 1, 10), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_try_recv(NULL, &item), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_recv(NULL, &item), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_recv_timeout(NULL, &item, 10), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_close(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_len(NULL, &n), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_capacity(NULL, &n), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_is_empty(NULL, &b), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_is_full(NULL, &b), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_is_closed(NULL, &b), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_get_mode(NULL, &mode), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_channel_clone(NULL, &ch), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK(ch == NULL);

    CHECK_OK(nimsync_channel_new(8, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &ch));
    CHECK_STATUS(nimsync_channel_try_recv(ch, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_item");
    CHECK_STATUS(nimsync_channel_len(ch, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_len");
    CHECK_STATUS(nimsync_channel_clone(ch, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    nimsync_channel_free(ch);
    nimsync_channel_free(NULL); /* a no-op */
}

static void bad_capacities_and_modes(void) {
    nimsync_channel *ch = (nimsync_channel *)0x1; /* must stay untouched */
    CHECK_STATUS(nimsync_channel_new(0, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("capacity");
    CHECK_MESSAGE_HAS("at least 1");
    CHECK_STATUS(nimsync_channel_new((size_t)-1, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("negative");
    CHECK_STATUS(nimsync_channel_new((size_t)-42, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_channel_new(((size_t)1 << 30) + 1, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("exceeds the maximum");
    CHECK_STATUS(nimsync_channel_new(8, 99, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_channel_new(8, 4, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("mode");
    CHECK(ch == (nimsync_channel *)0x1);
}

static void capacity_and_state(void) {
    nimsync_channel *ch;
    size_t cap, len;
    bool empty, full, closed;
    uint32_t mode;
    CHECK_OK(nimsync_channel_new(5, NIMSYNC_CHANNEL_MODE_MPSC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_capacity(ch, &cap));
    CHECK(cap == 8);
    CHECK_OK(nimsync_channel_get_mode(ch, &mode));
    CHECK(mode == NIMSYNC_CHANNEL_MODE_MPSC);
    CHECK_OK(nimsync_channel_is_empty(ch, &empty));
    CHECK(empty);
    for (uintptr_t i = 0; i < 8; i++) CHECK_OK(nimsync_channel_try_send(ch, i));
    CHECK_STATUS(nimsync_channel_try_send(ch, 99), NIMSYNC_STATUS_FULL);
    CHECK_MESSAGE_HAS("full");
    CHECK_OK(nimsync_channel_is_full(ch, &full));
    CHECK(full);
    CHECK_OK(nimsync_channel_len(ch, &len));
    CHECK(len == 8);
    CHECK_STATUS(nimsync_channel_send_timeout(ch, 99, 1000000), NIMSYNC_STATUS_TIMEOUT);
    uintptr_t item;
    for (uintptr_t i = 0; i < 8; i++) {
        CHECK_OK(nimsync_channel_try_recv(ch, &item));
        CHECK(item == i);
    }
    CHECK_STATUS(nimsync_channel_try_recv(ch, &item), NIMSYNC_STATUS_EMPTY);
    CHECK_STATUS(nimsync_channel_recv_timeout(ch, &item, 1000000), NIMSYNC_STATUS_TIMEOUT);
    CHECK_OK(nimsync_channel_is_closed(ch, &closed));
    CHECK(!closed);
    nimsync_channel_free(ch);

    /* Capacity 1 holds exactly one item, in both modes. */
    for (uint32_t m = NIMSYNC_CHANNEL_MODE_SPSC; m <= NIMSYNC_CHANNEL_MODE_MPMC; m++) {
        CHECK_OK(nimsync_channel_new(1, m, NULL, NULL, &ch));
        CHECK_OK(nimsync_channel_try_send(ch, 1));
        CHECK_STATUS(nimsync_channel_try_send(ch, 2), NIMSYNC_STATUS_FULL);
        CHECK_OK(nimsync_channel_try_recv(ch, &item));
        CHECK(item == 1);
        CHECK_STATUS(nimsync_channel_try_recv(ch, &item), NIMSYNC_STATUS_EMPTY);
        nimsync_channel_free(ch);
    }
}

static void send_after_close(void) {
    nimsync_channel *ch;
    uintptr_t item = 0;
    bool closed;
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_send(ch, 7));
    CHECK_OK(nimsync_channel_close(ch));
    CHECK_OK(nimsync_channel_close(ch)); /* closing twice is allowed */
    CHECK_OK(nimsync_channel_is_closed(ch, &closed));
    CHECK(closed);
    CHECK_STATUS(nimsync_channel_try_send(ch, 8), NIMSYNC_STATUS_CLOSED);
    CHECK_MESSAGE_HAS("closed");
    CHECK_STATUS(nimsync_channel_send(ch, 8), NIMSYNC_STATUS_CLOSED);
    CHECK_STATUS(nimsync_channel_send_timeout(ch, 8, 1000), NIMSYNC_STATUS_CLOSED);
    CHECK_OK(nimsync_channel_recv(ch, &item)); /* drains first */
    CHECK(item == 7);
    CHECK_STATUS(nimsync_channel_recv(ch, &item), NIMSYNC_STATUS_CLOSED);
    CHECK_STATUS(nimsync_channel_try_recv(ch, &item), NIMSYNC_STATUS_CLOSED);
    nimsync_channel_free(ch);
}

/* Items are heap strings; the drop callback frees them and counts. */
static int dropped;
static void free_item(uintptr_t item, void *ctx) {
    CHECK(ctx == (void *)&dropped);
    free((void *)item);
    dropped++;
}

static void free_with_items_inside(void) {
    nimsync_channel *ch, *other;
    dropped = 0;
    CHECK_OK(nimsync_channel_new(16, NIMSYNC_CHANNEL_MODE_MPSC, free_item, &dropped, &ch));
    for (int i = 0; i < 10; i++) {
        char *s = malloc(32);
        snprintf(s, 32, "item %d", i);
        CHECK_OK(nimsync_channel_send(ch, (uintptr_t)s));
    }
    uintptr_t got;
    CHECK_OK(nimsync_channel_recv(ch, &got));
    CHECK(strcmp((char *)got, "item 0") == 0);
    free((void *)got);
    CHECK_OK(nimsync_channel_clone(ch, &other));
    nimsync_channel_free(ch);
    CHECK(dropped == 0); /* a reference is still alive */
    CHECK_OK(nimsync_channel_len(other, &(size_t){0}));
    nimsync_channel_free(other);
    CHECK(dropped == 9);

    /* Without a callback, integers left inside are simply discarded. */
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_send(ch, 1));
    nimsync_channel_free(ch);
}

static void last_error_is_per_thread_and_stable(void) {
    nimsync_channel *ch;
    CHECK_STATUS(nimsync_channel_new(0, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch), NIMSYNC_STATUS_INVALID_ARGUMENT);
    const char *m = nimsync_last_error_message();
    CHECK(strstr(m, "capacity") != NULL);
    /* A successful call leaves the message as it was. */
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    CHECK(strstr(nimsync_last_error_message(), "capacity") != NULL);
    nimsync_channel_free(ch);
}

int main(void) {
    TEST(version_and_abi);
    TEST(null_arguments);
    TEST(bad_capacities_and_modes);
    TEST(capacity_and_state);
    TEST(send_after_close);
    TEST(free_with_items_inside);
    TEST(last_error_is_per_thread_and_stable);
    TEST_EXIT();
}
