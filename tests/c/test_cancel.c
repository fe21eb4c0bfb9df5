/* Cancellation tokens through the C ABI: the tree, the first-cancel flag,
 * blocked threads released by another thread's cancel, deadline tokens,
 * callbacks (once, at once when late, withdrawn by free, free waiting for a
 * run in progress), messages, and NULL handles. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "check.h"

#define MS 1000000ull

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (yielding, at most 10 s) until *flag is non-zero; false on timeout. */
static bool wait_for_flag(const int *flag) {
    uint64_t give_up = now_ns() + 10000 * MS;
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        if (now_ns() > give_up) return false;
        sched_yield();
    }
    return true;
}

static void tree_cancel_reaches_grandchild(void) {
    nimsync_cancel_token *root, *child, *grandchild, *shield, *late;
    CHECK_OK(nimsync_cancel_token_new(&root));
    CHECK_OK(nimsync_cancel_token_child(root, &child));
    CHECK_OK(nimsync_cancel_token_child(child, &grandchild));
    CHECK_OK(nimsync_cancel_token_shielded(child, &shield));
    CHECK(!nimsync_cancel_token_is_cancelled(grandchild));
    CHECK_OK(nimsync_cancel_token_check(grandchild));
    uint32_t reason = 99;
    CHECK_OK(nimsync_cancel_token_reason(grandchild, &reason));
    CHECK(reason == NIMSYNC_CANCEL_REASON_NONE);

    CHECK_OK(nimsync_cancel_token_cancel(root, "shutting down", NULL));
    CHECK(nimsync_cancel_token_is_cancelled(root));
    CHECK(nimsync_cancel_token_is_cancelled(child));
    CHECK(nimsync_cancel_token_is_cancelled(grandchild));
    CHECK(!nimsync_cancel_token_is_cancelled(shield)); /* not cancelled by its parent */
    CHECK_OK(nimsync_cancel_token_reason(grandchild, &reason));
    CHECK(reason == NIMSYNC_CANCEL_REASON_REQUESTED);
    char text[64];
    size_t len = 0;
    CHECK_OK(nimsync_cancel_token_message(grandchild, text, sizeof text, &len));
    CHECK(strcmp(text, "shutting down") == 0 && len == strlen("shutting down"));
    CHECK_STATUS(nimsync_cancel_token_check(grandchild), NIMSYNC_STATUS_CANCELLED);
    CHECK_MESSAGE_HAS("shutting down");

    /* A child made under a cancelled parent starts cancelled. */
    CHECK_OK(nimsync_cancel_token_child(grandchild, &late));
    CHECK(nimsync_cancel_token_is_cancelled(late));

    /* A shielded token is still cancelled directly, and its children follow. */
    nimsync_cancel_token *under_shield;
    CHECK_OK(nimsync_cancel_token_child(shield, &under_shield));
    CHECK_OK(nimsync_cancel_token_cancel(shield, NULL, NULL));
    CHECK(nimsync_cancel_token_is_cancelled(under_shield));
    CHECK_OK(nimsync_cancel_token_message(under_shield, text, sizeof text, &len));
    CHECK(len == 0 && text[0] == '\0');

    nimsync_cancel_token_free(under_shield);
    nimsync_cancel_token_free(late);
    nimsync_cancel_token_free(shield);
    nimsync_cancel_token_free(grandchild);
    nimsync_cancel_token_free(child);
    nimsync_cancel_token_free(root);
}

#define CANCELLERS 8
struct canceller {
    const nimsync_cancel_token *token;
    const int *go;
    bool was_first;
    nimsync_status status;
};

static void *cancel_when_told(void *p) {
    struct canceller *c = p;
    wait_for_flag(c->go);
    c->status = nimsync_cancel_token_cancel(c->token, "race", &c->was_first);
    return NULL;
}

static void cancel_reports_first_once(void) {
    nimsync_cancel_token *token;
    CHECK_OK(nimsync_cancel_token_new(&token));
    bool first = false;
    CHECK_OK(nimsync_cancel_token_cancel(token, "one", &first));
    CHECK(first);
    CHECK_OK(nimsync_cancel_token_cancel(token, "two", &first));
    CHECK(!first);
    char text[8];
    CHECK_OK(nimsync_cancel_token_message(token, text, sizeof text, NULL));
    CHECK(strcmp(text, "one") == 0); /* the first reason stands */
    nimsync_cancel_token_free(token);

    /* Many threads at once: exactly one is first. */
    CHECK_OK(nimsync_cancel_token_new(&token));
    int go = 0;
    struct canceller cs[CANCELLERS];
    pthread_t threads[CANCELLERS];
    for (int i = 0; i < CANCELLERS; i++) {
        cs[i] = (struct canceller){token, &go, false, NIMSYNC_STATUS_PANIC};
        pthread_create(&threads[i], NULL, cancel_when_told, &cs[i]);
    }
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    int firsts = 0;
    for (int i = 0; i < CANCELLERS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(cs[i].status == NIMSYNC_STATUS_OK);
        firsts += cs[i].was_first;
    }
    CHECK(firsts == 1);
    nimsync_cancel_token_free(token);
}

struct blocked {
    const nimsync_channel *ch;
    const nimsync_cancel_token *token;
    int started;
    nimsync_status status;
    uintptr_t item;
    char message[64];
};

static void *recv_until_cancelled(void *p) {
    struct blocked *b = p;
    __atomic_store_n(&b->started, 1, __ATOMIC_RELEASE);
    b->status = nimsync_channel_recv_with(b->ch, &b->item, NIMSYNC_WAIT_FOREVER, b->token);
    snprintf(b->message, sizeof b->message, "%s", nimsync_last_error_message());
    return NULL;
}

static void *send_until_cancelled(void *p) {
    struct blocked *b = p;
    __atomic_store_n(&b->started, 1, __ATOMIC_RELEASE);
    b->status = nimsync_channel_send_with(b->ch, b->item, NIMSYNC_WAIT_FOREVER, b->token);
    return NULL;
}

static void *select_until_cancelled(void *p) {
    struct blocked *b = p;
    nimsync_select_case cases[1] = {{b->ch, NIMSYNC_SELECT_OP_RECV, 0}};
    uintptr_t index = 77;
    __atomic_store_n(&b->started, 1, __ATOMIC_RELEASE);
    b->status = nimsync_select_with(cases, 1, NIMSYNC_WAIT_FOREVER, b->token, &index, &b->item);
    if (index != 77) b->status = NIMSYNC_STATUS_PANIC; /* no case may be chosen */
    return NULL;
}

static void cancel_releases_blocked_threads(void) {
    nimsync_channel *empty, *full;
    nimsync_cancel_token *root, *job;
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &empty));
    CHECK_OK(nimsync_channel_new(1, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &full));
    CHECK_OK(nimsync_channel_send(full, 1));
    CHECK_OK(nimsync_cancel_token_new(&root));
    CHECK_OK(nimsync_cancel_token_child(root, &job));

    struct blocked r = {empty, job, 0, NIMSYNC_STATUS_OK, 0, ""};
    struct blocked s = {full, job, 0, NIMSYNC_STATUS_OK, 2, ""};
    struct blocked sel = {empty, job, 0, NIMSYNC_STATUS_OK, 0, ""};
    pthread_t tr, ts, tsel;
    pthread_create(&tr, NULL, recv_until_cancelled, &r);
    pthread_create(&ts, NULL, send_until_cancelled, &s);
    pthread_create(&tsel, NULL, select_until_cancelled, &sel);
    CHECK(wait_for_flag(&r.started) && wait_for_flag(&s.started) && wait_for_flag(&sel.started));
    /* The threads have started their calls; this pause only makes it likely
     * that they are parked. Parked or not, the calls must end CANCELLED. */
    sleep_ms(20);
    CHECK_OK(nimsync_cancel_token_cancel(root, "stop now", NULL)); /* the parent */
    pthread_join(tr, NULL);
    pthread_join(ts, NULL);
    pthread_join(tsel, NULL);
    CHECK(r.status == NIMSYNC_STATUS_CANCELLED);
    CHECK(strstr(r.message, "stop now") != NULL);
    CHECK(s.status == NIMSYNC_STATUS_CANCELLED);
    CHECK(sel.status == NIMSYNC_STATUS_CANCELLED);

    /* Nothing was taken or lost: the full channel still holds its one item,
     * and an item that is there is received even with a cancelled token. */
    uintptr_t item = 0;
    CHECK_OK(nimsync_channel_recv_with(full, &item, NIMSYNC_WAIT_FOREVER, job));
    CHECK(item == 1);
    CHECK_STATUS(nimsync_channel_recv_with(full, &item, NIMSYNC_WAIT_FOREVER, job), NIMSYNC_STATUS_CANCELLED);

    /* With no token (NULL) the calls behave like the _timeout ones. */
    CHECK_STATUS(nimsync_channel_recv_with(full, &item, 1 * MS, NULL), NIMSYNC_STATUS_TIMEOUT);
    CHECK_OK(nimsync_channel_send_with(full, 5, NIMSYNC_WAIT_FOREVER, NULL));
    CHECK_OK(nimsync_channel_recv_with(full, &item, 0, NULL));
    CHECK(item == 5);

    nimsync_cancel_token_free(job);
    nimsync_cancel_token_free(root);
    nimsync_channel_free(empty);
    nimsync_channel_free(full);
}

static void timeout_token_times_out(void) {
    nimsync_channel *ch;
    nimsync_cancel_token *root, *within;
    CHECK_OK(nimsync_channel_new(4, NIMSYNC_CHANNEL_MODE_SPSC, NULL, NULL, &ch));
    CHECK_OK(nimsync_cancel_token_new(&root));
    uint64_t start = now_ns();
    CHECK_OK(nimsync_cancel_token_with_timeout(root, 50 * MS, &within));
    uintptr_t item;
    CHECK_STATUS(nimsync_channel_recv_with(ch, &item, NIMSYNC_WAIT_FOREVER, within), NIMSYNC_STATUS_TIMEOUT);
    uint64_t elapsed = now_ns() - start;
    CHECK(elapsed >= 50 * MS);
    CHECK(nimsync_cancel_token_is_cancelled(within));
    CHECK(!nimsync_cancel_token_is_cancelled(root)); /* a deadline cancels down, not up */
    uint32_t reason = 0;
    CHECK_OK(nimsync_cancel_token_reason(within, &reason));
    CHECK(reason == NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED);
    CHECK_STATUS(nimsync_cancel_token_check(within), NIMSYNC_STATUS_TIMEOUT);
    nimsync_cancel_token_free(within);

    /* 0 means at once; NIMSYNC_WAIT_FOREVER means never. */
    nimsync_cancel_token *now, *never;
    CHECK_OK(nimsync_cancel_token_with_timeout(root, 0, &now));
    CHECK(nimsync_cancel_token_is_cancelled(now));
    CHECK_OK(nimsync_cancel_token_with_timeout(root, NIMSYNC_WAIT_FOREVER, &never));
    CHECK(!nimsync_cancel_token_is_cancelled(never));
    /* The call's own timeout still applies with a live token. */
    CHECK_STATUS(nimsync_channel_recv_with(ch, &item, 5 * MS, never), NIMSYNC_STATUS_TIMEOUT);
    CHECK(!nimsync_cancel_token_is_cancelled(never));
    /* Cancelling the parent cancels the deadline child early. */
    CHECK_OK(nimsync_cancel_token_cancel(root, "early", NULL));
    CHECK_OK(nimsync_cancel_token_reason(never, &reason));
    CHECK(reason == NIMSYNC_CANCEL_REASON_REQUESTED);

    nimsync_cancel_token_free(now);
    nimsync_cancel_token_free(never);
    nimsync_cancel_token_free(root);
    nimsync_channel_free(ch);
}

struct counter {
    int runs;
    uint32_t reason;
};

static void count_run(void *ctx, uint32_t reason) {
    struct counter *c = ctx;
    __atomic_store_n(&c->reason, reason, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->runs, 1, __ATOMIC_RELEASE);
}

static void callbacks_run_once(void) {
    nimsync_cancel_token *root, *child;
    CHECK_OK(nimsync_cancel_token_new(&root));
    CHECK_OK(nimsync_cancel_token_child(root, &child));
    struct counter on_root = {0, 0}, on_child = {0, 0}, withdrawn = {0, 0}, late = {0, 0};
    nimsync_cancel_callback *g_root, *g_child, *g_withdrawn, *g_late;
    CHECK_OK(nimsync_cancel_token_on_cancel(root, count_run, &on_root, &g_root));
    CHECK_OK(nimsync_cancel_token_on_cancel(child, count_run, &on_child, &g_child));
    CHECK_OK(nimsync_cancel_token_on_cancel(child, count_run, &withdrawn, &g_withdrawn));
    nimsync_cancel_callback_free(g_withdrawn); /* withdrawn before it ran */
    CHECK(on_root.runs == 0 && on_child.runs == 0);

    CHECK_OK(nimsync_cancel_token_cancel(child, "child first", NULL));
    CHECK(on_child.runs == 1 && on_root.runs == 0);
    CHECK(on_child.reason == NIMSYNC_CANCEL_REASON_REQUESTED);
    CHECK_OK(nimsync_cancel_token_cancel(root, "then root", NULL));
    CHECK_OK(nimsync_cancel_token_cancel(root, "again", NULL));
    CHECK(on_root.runs == 1);
    CHECK(on_child.runs == 1); /* the child was already cancelled */
    CHECK(withdrawn.runs == 0);

    /* Registered after the cancel: runs at once, before on_cancel returns. */
    CHECK_OK(nimsync_cancel_token_on_cancel(child, count_run, &late, &g_late));
    CHECK(late.runs == 1 && late.reason == NIMSYNC_CANCEL_REASON_REQUESTED);

    nimsync_cancel_callback_free(g_root);
    nimsync_cancel_callback_free(g_child);
    nimsync_cancel_callback_free(g_late);
    nimsync_cancel_token_free(child);
    nimsync_cancel_token_free(root);

    /* A deadline's callbacks run on the library's timer thread. */
    nimsync_cancel_token *base, *soon;
    struct counter on_deadline = {0, 0};
    nimsync_cancel_callback *g_deadline;
    CHECK_OK(nimsync_cancel_token_new(&base));
    CHECK_OK(nimsync_cancel_token_with_timeout(base, 5 * MS, &soon));
    CHECK_OK(nimsync_cancel_token_on_cancel(soon, count_run, &on_deadline, &g_deadline));
    CHECK(wait_for_flag(&on_deadline.runs));
    CHECK(on_deadline.runs == 1 && on_deadline.reason == NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED);
    nimsync_cancel_callback_free(g_deadline);
    nimsync_cancel_token_free(soon);
    nimsync_cancel_token_free(base);
}

struct slow_callback {
    int started;
    int finished;
};

static void run_slowly(void *ctx, uint32_t reason) {
    struct slow_callback *s = ctx;
    (void)reason;
    __atomic_store_n(&s->started, 1, __ATOMIC_RELEASE);
    sleep_ms(50);
    __atomic_store_n(&s->finished, 1, __ATOMIC_RELEASE);
}

static void *cancel_it(void *p) {
    nimsync_cancel_token_cancel(p, "from another thread", NULL);
    return NULL;
}

struct self_freeing {
    nimsync_cancel_callback *guard;
    int runs;
};

static void free_own_guard(void *ctx, uint32_t reason) {
    struct self_freeing *s = ctx;
    (void)reason;
    s->runs++;
    nimsync_cancel_callback_free(s->guard); /* from inside: must not deadlock */
}

static void callback_free_waits_for_a_run(void) {
    nimsync_cancel_token *token;
    CHECK_OK(nimsync_cancel_token_new(&token));
    struct slow_callback slow = {0, 0};
    nimsync_cancel_callback *guard;
    CHECK_OK(nimsync_cancel_token_on_cancel(token, run_slowly, &slow, &guard));
    pthread_t t;
    pthread_create(&t, NULL, cancel_it, token);
    CHECK(wait_for_flag(&slow.started));
    /* The callback is running on the other thread: free returns only after
     * it has, so its context may be released right away. */
    nimsync_cancel_callback_free(guard);
    CHECK(__atomic_load_n(&slow.finished, __ATOMIC_ACQUIRE) == 1);
    pthread_join(t, NULL);
    nimsync_cancel_token_free(token);

    CHECK_OK(nimsync_cancel_token_new(&token));
    struct self_freeing self = {NULL, 0};
    CHECK_OK(nimsync_cancel_token_on_cancel(token, free_own_guard, &self, &self.guard));
    CHECK_OK(nimsync_cancel_token_cancel(token, NULL, NULL));
    CHECK(self.runs == 1);
    nimsync_cancel_token_free(token);
}

static void message_is_copied_like_snprintf(void) {
    nimsync_cancel_token *token;
    CHECK_OK(nimsync_cancel_token_new(&token));
    size_t len = 99;
    CHECK_OK(nimsync_cancel_token_message(token, NULL, 0, &len));
    CHECK(len == 0); /* not cancelled yet */
    CHECK_OK(nimsync_cancel_token_cancel(token, "a rather long message", NULL));
    CHECK_OK(nimsync_cancel_token_message(token, NULL, 0, &len));
    CHECK(len == strlen("a rather long message"));
    char small[8];
    CHECK_OK(nimsync_cancel_token_message(token, small, sizeof small, &len));
    CHECK(strcmp(small, "a rathe") == 0);
    CHECK(len == strlen("a rather long message"));
    char *whole = malloc(len + 1);
    CHECK_OK(nimsync_cancel_token_message(token, whole, len + 1, NULL));
    CHECK(strcmp(whole, "a rather long message") == 0);
    free(whole);
    nimsync_cancel_token_free(token);
}

static void null_handles(void) {
    nimsync_cancel_token *token = NULL, *t2 = NULL;
    nimsync_cancel_callback *guard = NULL;
    uint32_t reason;
    bool first;
    uintptr_t item, index;
    CHECK_STATUS(nimsync_cancel_token_new(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_token");
    CHECK_STATUS(nimsync_cancel_token_child(NULL, &token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("parent");
    CHECK_STATUS(nimsync_cancel_token_shielded(NULL, &token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("parent");
    CHECK_STATUS(nimsync_cancel_token_with_timeout(NULL, MS, &token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("parent");
    CHECK_STATUS(nimsync_cancel_token_clone(NULL, &token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("token");
    CHECK_STATUS(nimsync_cancel_token_cancel(NULL, "x", &first), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("token");
    CHECK_STATUS(nimsync_cancel_token_check(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_cancel_token_reason(NULL, &reason), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("token");
    CHECK_STATUS(nimsync_cancel_token_message(NULL, NULL, 0, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_cancel_token_on_cancel(NULL, count_run, NULL, &guard), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("token");
    CHECK(!nimsync_cancel_token_is_cancelled(NULL));
    CHECK(token == NULL && guard == NULL);
    nimsync_cancel_token_free(NULL);    /* no-ops */
    nimsync_cancel_callback_free(NULL);

    CHECK_OK(nimsync_cancel_token_new(&token));
    CHECK_STATUS(nimsync_cancel_token_child(token, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_token");
    CHECK_STATUS(nimsync_cancel_token_clone(token, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_cancel_token_reason(token, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_reason");
    CHECK_STATUS(nimsync_cancel_token_message(token, NULL, 4, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("buffer");
    CHECK_STATUS(nimsync_cancel_token_on_cancel(token, NULL, NULL, &guard), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("callback");
    CHECK_STATUS(nimsync_cancel_token_on_cancel(token, count_run, NULL, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_guard");
    CHECK_STATUS(nimsync_channel_recv_with(NULL, &item, 0, token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("channel");
    CHECK_STATUS(nimsync_channel_send_with(NULL, 1, 0, token), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("channel");
    CHECK_STATUS(nimsync_select_with(NULL, 1, 0, token, &index, &item), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("cases");

    /* A clone is the same token. */
    CHECK_OK(nimsync_cancel_token_clone(token, &t2));
    CHECK_OK(nimsync_cancel_token_cancel(t2, NULL, &first));
    CHECK(first && nimsync_cancel_token_is_cancelled(token));
    nimsync_cancel_token_free(t2);
    nimsync_cancel_token_free(token);
}

int main(void) {
    TEST(tree_cancel_reaches_grandchild);
    TEST(cancel_reports_first_once);
    TEST(cancel_releases_blocked_threads);
    TEST(timeout_token_times_out);
    TEST(callbacks_run_once);
    TEST(callback_free_waits_for_a_run);
    TEST(message_is_copied_like_snprintf);
    TEST(null_handles);
    TEST_EXIT();
}
