/* Tracing through the C ABI: strict traceparent parsing (the W3C Trace
 * Context level-1 examples, valid and invalid), parent-child ids through the
 * thread's current context, explicit and remote parents, a context carried
 * into another thread, baggage and tracestate, export to a file of OTLP JSON
 * lines that holds the trace ids, sampling, exporter statistics, and the
 * documented statuses for bad input. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <ctype.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

#define SECOND 1000000000ull

/* Reads a whole file into a NUL-terminated heap string (NULL on failure). */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = 0;
    return buf;
}

static size_t count_lines(const char *text) {
    size_t n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

static void install_tracer(uint32_t sampler, double rate, const char *file) {
    nimsync_trace_config cfg;
    CHECK_OK(nimsync_trace_config_init(&cfg));
    cfg.sampler = sampler;
    cfg.sampling_rate = rate;
    cfg.file_path = file;
    cfg.service_name = "c-test";
    cfg.max_batch_size = 4;
    CHECK_OK(nimsync_trace_init(&cfg));
}

/* The valid examples of the W3C Trace Context level-1 specification and its
 * test suite, including future versions. */
static void traceparent_valid_examples(void) {
    nimsync_traceparent tp;
    CHECK_OK(nimsync_trace_traceparent_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &tp));
    CHECK(tp.version == 0 && tp.sampled && tp.flags == 1);
    CHECK(strcmp(tp.trace_id, "0af7651916cd43dd8448eb211c80319c") == 0);
    CHECK(strcmp(tp.parent_id, "b7ad6b7169203331") == 0);

    CHECK_OK(nimsync_trace_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &tp));
    CHECK(!tp.sampled && tp.flags == 0);
    /* Unknown flags are accepted; only the sampled bit has meaning. */
    CHECK_OK(nimsync_trace_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &tp));
    CHECK(tp.sampled && tp.flags == 9);
    /* Optional whitespace around the value. */
    CHECK_OK(nimsync_trace_traceparent_parse(" \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", &tp));
    /* A future version: more fields after a '-' are allowed and ignored. */
    CHECK_OK(nimsync_trace_traceparent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", &tp));
    CHECK(tp.version == 0xcc && tp.sampled);
    CHECK_OK(nimsync_trace_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &tp));
    CHECK(tp.version == 1);
}

static void check_invalid_traceparent(const char *header, const char *message_part) {
    nimsync_traceparent tp;
    nimsync_status s = nimsync_trace_traceparent_parse(header, &tp);
    if (s != NIMSYNC_STATUS_INVALID_ARGUMENT) {
        fprintf(stderr, "  accepted invalid traceparent \"%s\" (%s)\n", header, nimsync_status_str(s));
        check_failures_in_test++;
        return;
    }
    CHECK_MESSAGE_HAS("traceparent");
    CHECK_MESSAGE_HAS(message_part);
}

/* The invalid examples: each is rejected with INVALID_ARGUMENT and a message
 * naming the fault. */
static void traceparent_invalid_examples(void) {
    check_invalid_traceparent("", "at least 55");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0", "at least 55");
    check_invalid_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "version ff");
    check_invalid_traceparent("0G-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "version");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-", "exactly 55");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01.extra", "exactly 55");
    check_invalid_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01.what", "'-'");
    check_invalid_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "trace-id");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01", "parent-id");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0X", "trace-flags");
    check_invalid_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01", "trace-id is all zeros");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "parent-id is all zeros");
    check_invalid_traceparent("00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01", "separated");
    check_invalid_traceparent("00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01", "separated");

    nimsync_traceparent tp;
    CHECK_STATUS(nimsync_trace_traceparent_parse(NULL, &tp), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("header");
    CHECK_STATUS(nimsync_trace_traceparent_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL),
                 NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_traceparent_parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203\xff\xfe-01", &tp),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("UTF-8");
}

/* Formatting is the inverse of parsing; bad ids are refused; a short buffer
 * is filled like snprintf and the full length reported. */
static void traceparent_format(void) {
    char buf[64];
    size_t len = 0;
    CHECK_OK(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0x01,
                                              buf, sizeof buf, &len));
    CHECK(strcmp(buf, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == 0 && len == 55);
    /* Only the sampled bit is propagated. */
    CHECK_OK(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0xfe,
                                              buf, sizeof buf, &len));
    CHECK(strcmp(buf + 53, "00") == 0);
    char tiny[10];
    CHECK_OK(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1,
                                              tiny, sizeof tiny, &len));
    CHECK(len == 55 && strlen(tiny) == 9 && strncmp(tiny, "00-0af765", 9) == 0);
    CHECK_OK(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1,
                                              NULL, 0, &len));
    CHECK(len == 55);
    CHECK_STATUS(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1,
                                                  NULL, 8, &len),
                 NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_traceparent_format("00000000000000000000000000000000", "b7ad6b7169203331", 1,
                                                  buf, sizeof buf, &len),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("trace_id");
    CHECK_STATUS(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c80319c", "B7AD6B7169203331", 1,
                                                  buf, sizeof buf, &len),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_trace_traceparent_format("0af7651916cd43dd8448eb211c8031", "b7ad6b7169203331", 1,
                                                  buf, sizeof buf, &len),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
}

static void tracestate_headers(void) {
    char buf[256];
    size_t len;
    CHECK_OK(nimsync_trace_tracestate_normalize("rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == 0);
    CHECK_OK(nimsync_trace_tracestate_get("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "congo", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "t61rcWkgMzE") == 0 && len == 11);
    CHECK_STATUS(nimsync_trace_tracestate_get("rojo=1", "congo", buf, sizeof buf, &len), NIMSYNC_STATUS_EMPTY);
    CHECK_OK(nimsync_trace_tracestate_insert("rojo=1,congo=2", "congo", "3", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "congo=3,rojo=1") == 0);
    CHECK_OK(nimsync_trace_tracestate_insert(NULL, "tenant@vendor", "x", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "tenant@vendor=x") == 0);
    CHECK_STATUS(nimsync_trace_tracestate_normalize("foo=1,foo=2", buf, sizeof buf, &len),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("twice");
    CHECK_STATUS(nimsync_trace_tracestate_normalize("Upper=1", buf, sizeof buf, &len), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_trace_tracestate_insert("a=1", "a", "bad,value", buf, sizeof buf, &len),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("tracestate");
}

/* A span pushed as current is the parent of the next span on the thread;
 * popping restores the previous state. */
static void parent_child_through_current_context(void) {
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_ON, 1.0, NULL);
    nimsync_span *parent, *child, *sibling;
    nimsync_span_context pc, cc, sc, cur;
    CHECK_STATUS(nimsync_trace_current_span_context(&cur), NIMSYNC_STATUS_EMPTY);
    CHECK_OK(nimsync_trace_span_start("request", NIMSYNC_SPAN_KIND_SERVER, &parent));
    CHECK(nimsync_trace_span_is_recording(parent));
    CHECK_OK(nimsync_trace_context_push(parent));
    size_t depth = 0;
    CHECK_OK(nimsync_trace_context_depth(&depth));
    CHECK(depth == 1);
    CHECK_OK(nimsync_trace_span_start("query", NIMSYNC_SPAN_KIND_CLIENT, &child));
    CHECK_OK(nimsync_trace_span_context(parent, &pc));
    CHECK_OK(nimsync_trace_span_context(child, &cc));
    CHECK_OK(nimsync_trace_current_span_context(&cur));
    CHECK(strlen(pc.trace_id) == 32 && strlen(pc.span_id) == 16);
    CHECK(strcmp(pc.parent_span_id, "") == 0);
    CHECK(strcmp(cc.trace_id, pc.trace_id) == 0);
    CHECK(strcmp(cc.parent_span_id, pc.span_id) == 0);
    CHECK(strcmp(cc.span_id, pc.span_id) != 0);
    CHECK(strcmp(cur.span_id, pc.span_id) == 0 && cc.sampled);
    char tp[64];
    size_t len;
    CHECK_OK(nimsync_trace_current_traceparent(tp, sizeof tp, &len));
    CHECK(len == 55 && strncmp(tp + 3, pc.trace_id, 32) == 0 && strncmp(tp + 36, pc.span_id, 16) == 0);
    CHECK(strcmp(tp + 52, "-01") == 0);
    CHECK_OK(nimsync_trace_context_pop());
    CHECK_STATUS(nimsync_trace_context_pop(), NIMSYNC_STATUS_EMPTY);
    CHECK_STATUS(nimsync_trace_current_traceparent(tp, sizeof tp, &len), NIMSYNC_STATUS_EMPTY);
    /* Nothing current: a new trace. */
    CHECK_OK(nimsync_trace_span_start("other", NIMSYNC_SPAN_KIND_INTERNAL, &sibling));
    CHECK_OK(nimsync_trace_span_context(sibling, &sc));
    CHECK(strcmp(sc.trace_id, pc.trace_id) != 0 && strcmp(sc.parent_span_id, "") == 0);
    nimsync_trace_span_free(sibling);

    /* An explicit parent, even after it ended; a root ignores the current. */
    CHECK(!nimsync_trace_span_is_ended(parent));
    CHECK_OK(nimsync_trace_span_end(parent));
    CHECK(!nimsync_trace_span_is_recording(parent) && nimsync_trace_span_is_ended(parent));
    nimsync_span *late, *root;
    CHECK_OK(nimsync_trace_span_start_child(parent, "late", NIMSYNC_SPAN_KIND_INTERNAL, &late));
    nimsync_span_context lc, rc;
    CHECK_OK(nimsync_trace_span_context(late, &lc));
    CHECK(strcmp(lc.trace_id, pc.trace_id) == 0 && strcmp(lc.parent_span_id, pc.span_id) == 0);
    CHECK_OK(nimsync_trace_context_push(late));
    CHECK_OK(nimsync_trace_span_start_root("root", NIMSYNC_SPAN_KIND_INTERNAL, &root));
    CHECK_OK(nimsync_trace_span_context(root, &rc));
    CHECK(strcmp(rc.trace_id, pc.trace_id) != 0 && strcmp(rc.parent_span_id, "") == 0);
    CHECK_OK(nimsync_trace_context_pop());
    nimsync_trace_span_free(root);
    nimsync_trace_span_free(late);
    nimsync_trace_span_free(child);
    nimsync_trace_span_free(parent);
}

/* A remote parent continues the caller's trace; its sampled flag decides
 * under the parent-based sampler; its tracestate travels along. */
static void remote_parent(void) {
    install_tracer(NIMSYNC_TRACE_SAMPLER_PARENT_BASED, 0.0, NULL);
    nimsync_span *s;
    nimsync_span_context c;
    CHECK_OK(nimsync_trace_span_start_remote("handle", NIMSYNC_SPAN_KIND_SERVER,
                                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                             "congo=t61rcWkgMzE", &s));
    CHECK_OK(nimsync_trace_span_context(s, &c));
    CHECK(strcmp(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK(strcmp(c.parent_span_id, "00f067aa0ba902b7") == 0);
    CHECK(c.sampled && nimsync_trace_span_is_recording(s) && !c.remote);
    char ts[64];
    size_t len;
    CHECK_OK(nimsync_trace_span_tracestate(s, ts, sizeof ts, &len));
    CHECK(strcmp(ts, "congo=t61rcWkgMzE") == 0);
    nimsync_trace_span_free(s);

    /* Not sampled upstream: not recorded here (rate 0 would say the same). */
    CHECK_OK(nimsync_trace_span_start_remote("handle", NIMSYNC_SPAN_KIND_SERVER,
                                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL, &s));
    CHECK(!nimsync_trace_span_is_recording(s));
    CHECK_OK(nimsync_trace_span_context(s, &c));
    CHECK(!c.sampled && strcmp(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    /* Setting attributes on a non-recording span is allowed and does nothing. */
    CHECK_OK(nimsync_trace_span_set_int(s, "n", 1));
    nimsync_trace_span_free(s);

    /* A pushed remote context parents local spans. */
    CHECK_OK(nimsync_trace_context_push_remote("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL));
    nimsync_span_context cur;
    CHECK_OK(nimsync_trace_current_span_context(&cur));
    CHECK(cur.remote && strcmp(cur.span_id, "00f067aa0ba902b7") == 0);
    CHECK_OK(nimsync_trace_span_start("child", NIMSYNC_SPAN_KIND_INTERNAL, &s));
    CHECK_OK(nimsync_trace_span_context(s, &c));
    CHECK(strcmp(c.parent_span_id, "00f067aa0ba902b7") == 0 && c.sampled);
    nimsync_trace_span_free(s);
    CHECK_OK(nimsync_trace_context_pop());

    /* An invalid remote parent is refused and nothing is started or pushed. */
    s = NULL;
    CHECK_STATUS(nimsync_trace_span_start_remote("handle", NIMSYNC_SPAN_KIND_SERVER,
                                                 "00-00000000000000000000000000000000-00f067aa0ba902b7-01", NULL, &s),
                 NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("all zeros");
    CHECK(s == NULL);
    CHECK_STATUS(nimsync_trace_context_push_remote("garbage", NULL), NIMSYNC_STATUS_INVALID_ARGUMENT);
    size_t depth = 9;
    CHECK_OK(nimsync_trace_context_depth(&depth));
    CHECK(depth == 0);
}

static nimsync_span_context worker_seen;
static nimsync_status worker_status = NIMSYNC_STATUS_PANIC;
static char worker_baggage[32];

static void *worker(void *arg) {
    nimsync_trace_context *cx = arg;
    nimsync_span *s;
    nimsync_status st = nimsync_trace_context_attach(cx);
    if (st == NIMSYNC_STATUS_OK) st = nimsync_trace_span_start("in thread", NIMSYNC_SPAN_KIND_INTERNAL, &s);
    if (st == NIMSYNC_STATUS_OK) {
        st = nimsync_trace_span_context(s, &worker_seen);
        nimsync_trace_span_free(s);
    }
    size_t len;
    if (st == NIMSYNC_STATUS_OK) st = nimsync_trace_baggage_get("tenant", worker_baggage, sizeof worker_baggage, &len);
    if (st == NIMSYNC_STATUS_OK) st = nimsync_trace_context_pop();
    worker_status = st;
    return NULL;
}

/* A captured context (span and baggage) continues in another thread. */
static void context_into_thread(void) {
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_ON, 1.0, NULL);
    nimsync_span *parent;
    nimsync_span_context pc;
    CHECK_OK(nimsync_trace_span_start("fan out", NIMSYNC_SPAN_KIND_INTERNAL, &parent));
    CHECK_OK(nimsync_trace_context_push(parent));
    CHECK_OK(nimsync_trace_baggage_set("tenant", "acme"));
    nimsync_trace_context *cx;
    CHECK_OK(nimsync_trace_context_capture(&cx));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, cx) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_OK(worker_status);
    CHECK_OK(nimsync_trace_span_context(parent, &pc));
    CHECK(strcmp(worker_seen.trace_id, pc.trace_id) == 0);
    CHECK(strcmp(worker_seen.parent_span_id, pc.span_id) == 0);
    CHECK(strcmp(worker_baggage, "acme") == 0);
    nimsync_trace_context_free(cx);
    nimsync_trace_context_free(NULL);
    CHECK_OK(nimsync_trace_context_pop());
    nimsync_trace_span_free(parent);
}

static void baggage(void) {
    char buf[128];
    size_t len;
    CHECK_STATUS(nimsync_trace_baggage_get("user", buf, sizeof buf, &len), NIMSYNC_STATUS_EMPTY);
    CHECK_MESSAGE_HAS("user");
    CHECK_OK(nimsync_trace_baggage_set("user", "alice smith"));
    CHECK_OK(nimsync_trace_baggage_set("region", "eu,1"));
    CHECK_OK(nimsync_trace_baggage_get("user", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "alice smith") == 0 && len == 11);
    CHECK_OK(nimsync_trace_baggage_header(buf, sizeof buf, &len));
    CHECK(strcmp(buf, "user=alice%20smith,region=eu%2C1") == 0);
    size_t depth = 0;
    CHECK_OK(nimsync_trace_context_depth(&depth));
    CHECK(depth == 1); /* one context pushed for the baggage, then changed in place */
    bool removed = false;
    CHECK_OK(nimsync_trace_baggage_remove("region", &removed));
    CHECK(removed);
    CHECK_OK(nimsync_trace_baggage_remove("region", &removed));
    CHECK(!removed);
    CHECK_STATUS(nimsync_trace_baggage_set("bad key", "v"), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("bad key");
    CHECK_STATUS(nimsync_trace_baggage_set(NULL, "v"), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_OK(nimsync_trace_baggage_get("user", buf, sizeof buf, &len)); /* unchanged */
    CHECK_OK(nimsync_trace_baggage_set_header("k1=v%201;prop=x, k2 = v2"));
    CHECK_OK(nimsync_trace_baggage_get("k1", buf, sizeof buf, &len));
    CHECK(strcmp(buf, "v 1") == 0);
    CHECK_STATUS(nimsync_trace_baggage_get("user", buf, sizeof buf, &len), NIMSYNC_STATUS_EMPTY);
    CHECK_STATUS(nimsync_trace_baggage_set_header("k1=%zz"), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("baggage");
    CHECK_OK(nimsync_trace_context_depth(&depth));
    CHECK(depth == 1);
    CHECK_OK(nimsync_trace_context_pop());
    CHECK_OK(nimsync_trace_baggage_header(buf, sizeof buf, &len));
    CHECK(len == 0 && buf[0] == 0);
}

/* Sampled spans reach the file as OTLP JSON lines holding their ids,
 * attributes, events and status; unsampled ones do not. */
static void export_to_file(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/nimsync-test-tracing-%ld.jsonl", (long)getpid());
    unlink(path);
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_ON, 1.0, path);

    nimsync_span *parent, *child;
    nimsync_span_context pc, cc;
    CHECK_OK(nimsync_trace_span_start_root("checkout", NIMSYNC_SPAN_KIND_SERVER, &parent));
    CHECK_OK(nimsync_trace_context_push(parent));
    CHECK_OK(nimsync_trace_span_start("charge card", NIMSYNC_SPAN_KIND_CLIENT, &child));
    CHECK_OK(nimsync_trace_span_set_string(child, "payment.provider", "acme \"pay\""));
    CHECK_OK(nimsync_trace_span_set_int(child, "payment.cents", 4200));
    CHECK_OK(nimsync_trace_span_set_double(child, "payment.ratio", 0.25));
    CHECK_OK(nimsync_trace_span_set_bool(child, "payment.retry", true));
    nimsync_trace_attribute attrs[] = {
        {.key = "attempt", .value_type = NIMSYNC_TRACE_ATTR_INT, .int_value = 2},
        {.key = "gateway", .value_type = NIMSYNC_TRACE_ATTR_STRING, .string_value = "eu-1"},
    };
    CHECK_OK(nimsync_trace_span_add_event(child, "retrying", attrs, 2));
    CHECK_OK(nimsync_trace_span_add_event(child, "no attributes", NULL, 0));
    CHECK_OK(nimsync_trace_span_record_error(child, "CardDeclined", "card declined"));
    CHECK_OK(nimsync_trace_span_context(parent, &pc));
    CHECK_OK(nimsync_trace_span_context(child, &cc));
    CHECK_OK(nimsync_trace_span_end(child));
    CHECK_OK(nimsync_trace_span_end(child)); /* twice: harmless */
    CHECK_OK(nimsync_trace_context_pop());
    CHECK_OK(nimsync_trace_span_set_status(parent, NIMSYNC_SPAN_STATUS_OK, NULL));
    CHECK_OK(nimsync_trace_span_update_name(parent, "POST /checkout"));
    nimsync_trace_span_free(parent); /* ends it */
    nimsync_trace_span_free(child);
    nimsync_trace_span_free(NULL);
    CHECK_OK(nimsync_trace_flush(10 * SECOND));

    nimsync_trace_stats st;
    CHECK_OK(nimsync_trace_get_stats(&st));
    CHECK(st.exported == 2 && st.dropped == 0 && st.failed == 0 && st.queued == 2);
    CHECK(st.queue_capacity >= 2048);

    char *text = read_file(path);
    CHECK(text != NULL);
    if (text) {
        CHECK(count_lines(text) >= 1);
        CHECK(strstr(text, "\"resourceSpans\"") != NULL);
        CHECK(strstr(text, "\"service.name\"") != NULL && strstr(text, "\"c-test\"") != NULL);
        char needle[64];
        snprintf(needle, sizeof needle, "\"traceId\":\"%s\"", pc.trace_id);
        CHECK(strstr(text, needle) != NULL);
        snprintf(needle, sizeof needle, "\"spanId\":\"%s\"", cc.span_id);
        CHECK(strstr(text, needle) != NULL);
        snprintf(needle, sizeof needle, "\"parentSpanId\":\"%s\"", pc.span_id);
        CHECK(strstr(text, needle) != NULL);
        CHECK(strstr(text, "\"POST /checkout\"") != NULL);
        CHECK(strstr(text, "\"charge card\"") != NULL);
        CHECK(strstr(text, "acme \\\"pay\\\"") != NULL);
        CHECK(strstr(text, "\"payment.cents\"") != NULL && strstr(text, "\"4200\"") != NULL);
        CHECK(strstr(text, "\"retrying\"") != NULL && strstr(text, "\"exception\"") != NULL);
        CHECK(strstr(text, "card declined") != NULL && strstr(text, "CardDeclined") != NULL);
        free(text);
    }

    /* Not sampled: nothing more is written. */
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_OFF, 1.0, path);
    nimsync_span *quiet;
    CHECK_OK(nimsync_trace_span_start("quiet", NIMSYNC_SPAN_KIND_INTERNAL, &quiet));
    CHECK(!nimsync_trace_span_is_recording(quiet));
    nimsync_trace_span_free(quiet);
    CHECK_OK(nimsync_trace_flush(10 * SECOND));
    CHECK_OK(nimsync_trace_get_stats(&st));
    CHECK(st.queued == 0 && st.exported == 0);

    /* After shutdown, ended spans are dropped and counted. */
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_ON, 1.0, path);
    CHECK_OK(nimsync_trace_shutdown());
    CHECK_OK(nimsync_trace_shutdown()); /* idempotent */
    nimsync_span *late;
    CHECK_OK(nimsync_trace_span_start("late", NIMSYNC_SPAN_KIND_INTERNAL, &late));
    nimsync_trace_span_free(late);
    CHECK_OK(nimsync_trace_get_stats(&st));
    CHECK(st.dropped == 1 && st.exported == 0);
    CHECK_OK(nimsync_trace_flush(SECOND));
    char err[128];
    size_t len = 99;
    CHECK_OK(nimsync_trace_last_export_error(err, sizeof err, &len));
    CHECK(len == 0);

    text = read_file(path);
    CHECK(text != NULL && strstr(text, "\"quiet\"") == NULL && strstr(text, "\"late\"") == NULL);
    free(text);
    unlink(path);
}

/* A one-request OTLP/HTTP receiver on loopback: keeps the request and
 * answers with `status`. */
typedef struct {
    int listener;
    int status;
    char request[65536];
    size_t len;
} receiver;

/* Case-insensitive strstr (HTTP header names are case-insensitive). */
static const char *find_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return hay;
    }
    return NULL;
}

static void *receive_one(void *arg) {
    receiver *r = arg;
    int c = accept(r->listener, NULL, NULL);
    if (c < 0) return NULL;
    size_t want = 0;
    for (;;) {
        ssize_t n = read(c, r->request + r->len, sizeof r->request - 1 - r->len);
        if (n <= 0) break;
        r->len += (size_t)n;
        r->request[r->len] = 0;
        char *end = strstr(r->request, "\r\n\r\n");
        if (end && want == 0) {
            const char *cl = find_ci(r->request, "content-length:");
            want = (size_t)(end + 4 - r->request) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        }
        if (want && r->len >= want) break;
    }
    char answer[128];
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 %d Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     r->status);
    ssize_t w = write(c, answer, (size_t)n);
    (void)w;
    close(c);
    return NULL;
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Batches reach a collector URL as OTLP/HTTP JSON POSTs; a refusing
 * collector is counted as failed and its answer kept as the last error. */
static void export_to_collector(void) {
    static receiver r;
    int port = 0;
    r.listener = listen_loopback(&port);
    CHECK(r.listener >= 0);
    if (r.listener < 0) return;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/traces", port);
    nimsync_trace_config cfg;
    CHECK_OK(nimsync_trace_config_init(&cfg));
    cfg.sampler = NIMSYNC_TRACE_SAMPLER_ALWAYS_ON;
    cfg.collector_url = url;
    CHECK_OK(nimsync_trace_init(&cfg));

    for (int round = 0; round < 2; round++) {
        r.status = round == 0 ? 200 : 400;
        r.len = 0;
        pthread_t t;
        CHECK(pthread_create(&t, NULL, receive_one, &r) == 0);
        nimsync_span *s;
        nimsync_span_context c;
        CHECK_OK(nimsync_trace_span_start_root(round == 0 ? "posted" : "refused", NIMSYNC_SPAN_KIND_PRODUCER, &s));
        CHECK_OK(nimsync_trace_span_context(s, &c));
        nimsync_trace_span_free(s);
        CHECK_OK(nimsync_trace_flush(30 * SECOND));
        CHECK(pthread_join(t, NULL) == 0);
        CHECK(strncmp(r.request, "POST /v1/traces HTTP/1.1\r\n", 26) == 0);
        CHECK(find_ci(r.request, "content-type: application/json") != NULL);
        char needle[64];
        snprintf(needle, sizeof needle, "\"traceId\":\"%s\"", c.trace_id);
        CHECK(strstr(r.request, needle) != NULL);
    }
    nimsync_trace_stats st;
    CHECK_OK(nimsync_trace_get_stats(&st));
    CHECK(st.exported == 1 && st.failed == 1 && st.dropped == 0);
    char err[256];
    size_t len;
    CHECK_OK(nimsync_trace_last_export_error(err, sizeof err, &len));
    CHECK(strstr(err, "HTTP 400") != NULL && len == strlen(err));
    CHECK_OK(nimsync_trace_shutdown());
    close(r.listener);
}

/* Spans and captured contexts are reference-counted: a clone outlives the
 * original's free, and the span ends with its last reference. */
static void references(void) {
    install_tracer(NIMSYNC_TRACE_SAMPLER_ALWAYS_ON, 1.0, NULL);
    nimsync_span *a, *b;
    nimsync_span_context ca, cb;
    CHECK_OK(nimsync_trace_span_start("shared", NIMSYNC_SPAN_KIND_INTERNAL, &a));
    CHECK_OK(nimsync_trace_span_clone(a, &b));
    CHECK(a == b);
    CHECK_OK(nimsync_trace_span_context(a, &ca));
    nimsync_trace_span_free(a);
    CHECK(nimsync_trace_span_is_recording(b) && !nimsync_trace_span_is_ended(b));
    CHECK_OK(nimsync_trace_span_context(b, &cb));
    CHECK(strcmp(ca.span_id, cb.span_id) == 0);
    nimsync_trace_span_free(b);
    CHECK_STATUS(nimsync_trace_span_clone(NULL, &b), NIMSYNC_STATUS_NULL_ARGUMENT);

    nimsync_trace_context *c1, *c2;
    CHECK_OK(nimsync_trace_context_capture(&c1));
    CHECK_OK(nimsync_trace_context_clone(c1, &c2));
    nimsync_trace_context_free(c1);
    CHECK_OK(nimsync_trace_context_attach(c2));
    CHECK_OK(nimsync_trace_context_pop());
    nimsync_trace_context_free(c2);
}

/* Every documented failure: statuses and messages that name the argument. */
static void bad_input(void) {
    nimsync_trace_config cfg;
    CHECK_STATUS(nimsync_trace_config_init(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_OK(nimsync_trace_config_init(&cfg));
    CHECK(cfg.sampler == NIMSYNC_TRACE_SAMPLER_PARENT_BASED && cfg.sampling_rate == 1.0);
    cfg.sampler = 7;
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampler");
    nimsync_trace_config_init(&cfg);
    cfg.sampler = NIMSYNC_TRACE_SAMPLER_RATIO;
    cfg.sampling_rate = 1.5;
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampling_rate");
    nimsync_trace_config_init(&cfg);
    cfg.max_batch_size = 0;
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("max_batch_size");
    nimsync_trace_config_init(&cfg);
    cfg.file_path = "/tmp/x.jsonl";
    cfg.collector_url = "http://127.0.0.1:4318";
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("choose one");
    nimsync_trace_config_init(&cfg);
    cfg.collector_url = "https://collector:4318";
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("url");
    nimsync_trace_config_init(&cfg);
    cfg.file_path = "/nonexistent-dir/traces.jsonl";
    CHECK_STATUS(nimsync_trace_init(&cfg), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("nonexistent-dir");
    CHECK_OK(nimsync_trace_init(NULL)); /* defaults */

    nimsync_span *s = NULL;
    CHECK_STATUS(nimsync_trace_span_start(NULL, 0, &s), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("name");
    CHECK_STATUS(nimsync_trace_span_start("x", 0, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_start("x", 9, &s), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("kind");
    CHECK_STATUS(nimsync_trace_span_start("\xc3\x28", 0, &s), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("UTF-8");
    CHECK_STATUS(nimsync_trace_span_start_child(NULL, "x", 0, &s), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("parent");
    CHECK(s == NULL);

    CHECK_OK(nimsync_trace_span_start("x", 0, &s));
    CHECK_STATUS(nimsync_trace_span_set_string(NULL, "k", "v"), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_set_string(s, NULL, "v"), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_set_string(s, "k", NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_set_int(s, "", 1), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("key");
    CHECK_STATUS(nimsync_trace_span_add_event(s, "e", NULL, 2), NIMSYNC_STATUS_NULL_ARGUMENT);
    nimsync_trace_attribute bad = {.key = "k", .value_type = 42};
    CHECK_STATUS(nimsync_trace_span_add_event(s, "e", &bad, 1), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("attributes[0]");
    nimsync_trace_attribute nostr = {.key = "k", .value_type = NIMSYNC_TRACE_ATTR_STRING};
    CHECK_STATUS(nimsync_trace_span_add_event(s, "e", &nostr, 1), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("attributes[0].string_value");
    CHECK_STATUS(nimsync_trace_span_set_status(s, 5, NULL), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_record_error(s, NULL, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_end(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_context(s, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_span_traceparent(s, NULL, 4, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_context_push(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_context_attach(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_context_capture(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_trace_get_stats(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK(!nimsync_trace_span_is_recording(NULL));
    char tp[64];
    size_t len;
    CHECK_OK(nimsync_trace_span_traceparent(s, tp, sizeof tp, &len));
    nimsync_traceparent parsed;
    CHECK_OK(nimsync_trace_traceparent_parse(tp, &parsed)); /* what it makes, it accepts */
    nimsync_trace_span_free(s);
    CHECK_OK(nimsync_trace_shutdown());
}

int main(void) {
    TEST(traceparent_valid_examples);
    TEST(traceparent_invalid_examples);
    TEST(traceparent_format);
    TEST(tracestate_headers);
    TEST(parent_child_through_current_context);
    TEST(remote_parent);
    TEST(context_into_thread);
    TEST(baggage);
    TEST(export_to_file);
    TEST(export_to_collector);
    TEST(references);
    TEST(bad_input);
    TEST_EXIT();
}
