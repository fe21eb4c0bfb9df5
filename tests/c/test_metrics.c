/* Metrics through the C ABI: argument checking with documented statuses and
 * messages, exact counts from many threads, percentiles and summaries, the
 * Prometheus exposition (also of one family and of runtime objects), and the
 * /metrics HTTP endpoint. */
#include <arpa/inet.h>
#include <math.h> /* NAN */
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

/* |x| without libm (the test links only what pkg-config names). */
static double absdiff0(double x) { return x < 0 ? -x : x; }

/* The whole exposition in a malloc'd string, grown until it fits. */
static char *exposition(const nimsync_metrics_collector *c) {
    size_t cap = 64, len = 0;
    char *text = malloc(cap);
    while (nimsync_metrics_collector_prometheus(c, text, cap, &len) == NIMSYNC_STATUS_OK && len >= cap) {
        cap = len + 1;
        text = realloc(text, cap);
    }
    return text;
}

static void bad_input(void) {
    nimsync_metrics_collector *c = NULL;
    CHECK_STATUS(nimsync_metrics_collector_new(true, 1.0, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_collector");
    CHECK_STATUS(nimsync_metrics_collector_new(true, 1.5, &c), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampling_rate");
    CHECK_STATUS(nimsync_metrics_collector_new(true, -0.1, &c), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampling_rate");
    CHECK_STATUS(nimsync_metrics_collector_new(true, NAN, &c), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampling_rate");
    CHECK(c == NULL);
    CHECK_OK(nimsync_metrics_collector_new(true, 1.0, &c));
    CHECK_STATUS(nimsync_metrics_collector_set_sampling_rate(c, 2.0), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("sampling_rate");

    nimsync_metrics_counter *k = NULL;
    CHECK_STATUS(nimsync_metrics_register_counter(NULL, "x", "", NULL, 0, &k), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("collector");
    CHECK_STATUS(nimsync_metrics_register_counter(c, NULL, "", NULL, 0, &k), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("name");
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", NULL, 0, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("out_counter");
    CHECK_STATUS(nimsync_metrics_register_counter(c, "1abc", "", NULL, 0, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("name");
    CHECK_STATUS(nimsync_metrics_register_counter(c, "a-b", "", NULL, 0, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("not a Prometheus metric name");
    CHECK_STATUS(nimsync_metrics_register_counter(c, "", "", NULL, 0, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    const char *bad_labels[] = {"a b"};
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", bad_labels, 1, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("label_names");
    const char *twice[] = {"a", "a"};
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", twice, 2, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("appears twice");
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", NULL, 1, &k), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("label_names");
    const char *null_label[] = {"a", NULL};
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", null_label, 2, &k), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("label_names[1]");
    const char *not_utf8[] = {"\xff"};
    CHECK_STATUS(nimsync_metrics_register_counter(c, "x", "", not_utf8, 1, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("UTF-8");
    CHECK(k == NULL);

    /* A name taken by another kind, or by a histogram's own lines. */
    nimsync_metrics_histogram *h = NULL;
    CHECK_OK(nimsync_metrics_register_histogram(c, "lat", "", NULL, 0, NULL, &h));
    CHECK_STATUS(nimsync_metrics_register_counter(c, "lat_count", "", NULL, 0, &k), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("lat_count");
    nimsync_metrics_gauge *g = NULL;
    CHECK_STATUS(nimsync_metrics_register_gauge(c, "lat", "", NULL, 0, &g), NIMSYNC_STATUS_INVALID_ARGUMENT);
    const char *le[] = {"le"};
    nimsync_metrics_histogram *h2 = NULL;
    CHECK_STATUS(nimsync_metrics_register_histogram(c, "h2", "", le, 1, NULL, &h2), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("le");
    double down[] = {2.0, 1.0}, q[] = {0.5};
    nimsync_metrics_histogram_opts opts = {down, 2, NULL, 0, 0.0};
    CHECK_STATUS(nimsync_metrics_register_histogram(c, "h2", "", NULL, 0, &opts, &h2), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("ascending");
    opts = (nimsync_metrics_histogram_opts){down, 1, q, 1, 0.0};
    CHECK_STATUS(nimsync_metrics_register_histogram(c, "h2", "", NULL, 0, &opts, &h2), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("not both");
    opts = (nimsync_metrics_histogram_opts){NULL, 0, NULL, 0, -1.0};
    CHECK_STATUS(nimsync_metrics_register_histogram(c, "h2", "", NULL, 0, &opts, &h2), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("scale");
    CHECK(h2 == NULL);

    /* Label values: the right number, none NULL. */
    const char *names[] = {"method"};
    CHECK_OK(nimsync_metrics_register_counter(c, "req_total", "", names, 1, &k));
    CHECK_STATUS(nimsync_metrics_counter_inc(k, NULL, 0), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("label_values");
    const char *two[] = {"GET", "x"};
    CHECK_STATUS(nimsync_metrics_counter_inc(k, two, 2), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("label_values");
    const char *null_value[] = {NULL};
    CHECK_STATUS(nimsync_metrics_counter_inc(k, null_value, 1), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("label_values[0]");
    CHECK_STATUS(nimsync_metrics_counter_inc(NULL, NULL, 0), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("counter");
    uint64_t v;
    CHECK_STATUS(nimsync_metrics_counter_get(k, two, 1, NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(nimsync_metrics_histogram_percentile(h, NULL, 0, 100.5, &v), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("percentile");
    CHECK_STATUS(nimsync_metrics_histogram_percentile(h, NULL, 0, NAN, &v), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(nimsync_metrics_histogram_record(h, two, 1, 5), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("label_values");

    /* Lookups by name. */
    nimsync_metrics_histogram *found = NULL;
    CHECK_STATUS(nimsync_metrics_find_histogram(c, "nope", &found), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("nope");
    CHECK_STATUS(nimsync_metrics_find_histogram(c, "req_total", &found), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_OK(nimsync_metrics_find_histogram(c, "lat", &found));
    CHECK_OK(nimsync_metrics_histogram_record(h, NULL, 0, 42));
    CHECK_OK(nimsync_metrics_histogram_percentile(found, NULL, 0, 50.0, &v));
    CHECK(v == 42);

    /* Strings out: buffer rules. */
    size_t len = 0;
    CHECK_STATUS(nimsync_metrics_collector_prometheus(c, NULL, 8, &len), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("buffer");
    CHECK_OK(nimsync_metrics_collector_prometheus(c, NULL, 0, &len));
    CHECK(len > 0);
    char small[8];
    CHECK_OK(nimsync_metrics_collector_prometheus(c, small, sizeof small, &len));
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(len > sizeof small);

    /* Serving on an address that cannot be used. */
    nimsync_metrics_server *server = NULL;
    CHECK_STATUS(nimsync_metrics_serve(c, "not an address", &server), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("addr");
    CHECK_STATUS(nimsync_metrics_serve(c, NULL, &server), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK(server == NULL);

    /* Releasing NULL is a no-op. */
    nimsync_metrics_collector_free(NULL);
    nimsync_metrics_counter_free(NULL);
    nimsync_metrics_gauge_free(NULL);
    nimsync_metrics_histogram_free(NULL);
    nimsync_metrics_server_free(NULL);
    CHECK_STATUS(nimsync_metrics_server_stop(NULL), NIMSYNC_STATUS_NULL_ARGUMENT);

    nimsync_metrics_histogram_free(found);
    nimsync_metrics_counter_free(k);
    nimsync_metrics_histogram_free(h);
    nimsync_metrics_collector_free(c);
}

#define THREADS 4
#define PER_THREAD 100000

struct recorder {
    nimsync_metrics_counter *counter;
    nimsync_metrics_histogram *histogram;
    nimsync_metrics_gauge *gauge;
    int failures;
};

static void *record_many(void *p) {
    struct recorder *r = p;
    const char *labels[] = {"worker"};
    for (uint64_t i = 1; i <= PER_THREAD; i++) {
        if (nimsync_metrics_counter_inc(r->counter, labels, 1) != NIMSYNC_STATUS_OK) r->failures++;
        if (nimsync_metrics_histogram_record(r->histogram, NULL, 0, i) != NIMSYNC_STATUS_OK) r->failures++;
        if (nimsync_metrics_gauge_add(r->gauge, NULL, 0, 1.0) != NIMSYNC_STATUS_OK) r->failures++;
    }
    return NULL;
}

static void threads_record_exact_counts(void) {
    nimsync_metrics_collector *c;
    CHECK_OK(nimsync_metrics_collector_new(true, 1.0, &c));
    const char *names[] = {"kind"};
    struct recorder r = {0};
    CHECK_OK(nimsync_metrics_register_counter(c, "jobs_total", "Jobs.", names, 1, &r.counter));
    CHECK_OK(nimsync_metrics_register_histogram(c, "job_ns", "Job time.", NULL, 0, NULL, &r.histogram));
    CHECK_OK(nimsync_metrics_register_gauge(c, "in_flight", "In flight.", NULL, 0, &r.gauge));
    struct recorder args[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = r;
        pthread_create(&threads[t], NULL, record_many, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(args[t].failures == 0);
    }
    const char *worker[] = {"worker"};
    uint64_t count = 0;
    CHECK_OK(nimsync_metrics_counter_get(r.counter, worker, 1, &count));
    CHECK(count == (uint64_t)THREADS * PER_THREAD);
    double gauge = 0;
    CHECK_OK(nimsync_metrics_gauge_get(r.gauge, NULL, 0, &gauge));
    CHECK(gauge == (double)THREADS * PER_THREAD);
    nimsync_metrics_summary s;
    CHECK_OK(nimsync_metrics_histogram_summary(r.histogram, NULL, 0, &s));
    CHECK(s.count == (uint64_t)THREADS * PER_THREAD);
    CHECK(s.min == 1 && s.max == PER_THREAD);
    CHECK(s.sum == (double)THREADS * PER_THREAD * (PER_THREAD + 1) / 2);
    CHECK(absdiff0(s.mean - (PER_THREAD + 1) / 2.0) < 1e-9);
    /* Nearest-rank p99 of four copies of 1..100000 is 99000, within 1%. */
    CHECK(absdiff0((double)s.p99 - 99000.0) <= 990.0);
    CHECK(absdiff0((double)s.p50 - 50000.0) <= 500.0);
    uint64_t p;
    CHECK_OK(nimsync_metrics_histogram_percentile(r.histogram, NULL, 0, 99.9, &p));
    CHECK(absdiff0((double)p - 99900.0) <= 999.0);
    CHECK(p == s.p999);
    char *text = exposition(c);
    CHECK(strstr(text, "jobs_total{kind=\"worker\"} 400000\n") != NULL);
    CHECK(strstr(text, "job_ns_count 400000\n") != NULL);
    CHECK(strstr(text, "job_ns_sum 20000200000\n") != NULL);
    CHECK(strstr(text, "in_flight 400000\n") != NULL);
    free(text);
    nimsync_metrics_counter_free(r.counter);
    nimsync_metrics_histogram_free(r.histogram);
    nimsync_metrics_gauge_free(r.gauge);
    nimsync_metrics_collector_free(c);
}

static void disabled_and_sampled(void) {
    nimsync_metrics_collector *c;
    CHECK_OK(nimsync_metrics_collector_new(false, 0.5, &c));
    bool enabled = true;
    double rate = 0;
    CHECK_OK(nimsync_metrics_collector_settings(c, &enabled, &rate));
    CHECK(!enabled && rate == 0.5);
    nimsync_metrics_counter *k;
    nimsync_metrics_histogram *h;
    CHECK_OK(nimsync_metrics_register_counter(c, "k_total", NULL, NULL, 0, &k));
    CHECK_OK(nimsync_metrics_register_histogram(c, "h", NULL, NULL, 0, NULL, &h));
    CHECK_OK(nimsync_metrics_counter_add(k, NULL, 0, 5));
    uint64_t v = 1;
    CHECK_OK(nimsync_metrics_counter_get(k, NULL, 0, &v));
    CHECK(v == 0);
    CHECK_OK(nimsync_metrics_collector_set_enabled(c, true));
    CHECK_OK(nimsync_metrics_counter_add(k, NULL, 0, 5));
    CHECK_OK(nimsync_metrics_counter_get(k, NULL, 0, &v));
    CHECK(v == 5);
    for (int i = 0; i < 100000; i++) nimsync_metrics_histogram_record(h, NULL, 0, 7);
    nimsync_metrics_summary s;
    CHECK_OK(nimsync_metrics_histogram_summary(h, NULL, 0, &s));
    /* Half kept, give or take far more than five standard deviations (158). */
    CHECK(s.count > 45000 && s.count < 55000);
    nimsync_metrics_counter_free(k);
    nimsync_metrics_histogram_free(h);
    nimsync_metrics_collector_free(c);
}

static void exposition_lines(void) {
    nimsync_metrics_collector *c;
    CHECK_OK(nimsync_metrics_collector_new(true, 1.0, &c));
    const char *names[] = {"method", "path"};
    nimsync_metrics_counter *k;
    CHECK_OK(nimsync_metrics_register_counter(c, "http_requests_total", "Requests served.", names, 2, &k));
    const char *get[] = {"GET", "/a\"b\\c\nd"};
    CHECK_OK(nimsync_metrics_counter_add(k, get, 2, 2));
    /* A handle bound to one label set records without label values. */
    nimsync_metrics_counter *gets;
    CHECK_OK(nimsync_metrics_counter_labels(k, get, 2, &gets));
    CHECK_OK(nimsync_metrics_counter_inc(gets, NULL, 0));
    CHECK_STATUS(nimsync_metrics_counter_labels(k, get, 1, &gets), NIMSYNC_STATUS_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("label_values");
    nimsync_metrics_counter_free(gets);
    nimsync_metrics_gauge *g;
    CHECK_OK(nimsync_metrics_register_gauge(c, "temperature", "Degrees.", NULL, 0, &g));
    CHECK_OK(nimsync_metrics_gauge_set(g, NULL, 0, -1.5));
    double bounds[] = {0.001, 0.01};
    nimsync_metrics_histogram_opts opts = {bounds, 2, NULL, 0, 1e-9};
    nimsync_metrics_histogram *h;
    CHECK_OK(nimsync_metrics_register_histogram(c, "latency_seconds", "Latency.", NULL, 0, &opts, &h));
    CHECK_OK(nimsync_metrics_histogram_record(h, NULL, 0, 2500000)); /* 2.5 ms */
    double quantiles[] = {0.5, 0.99};
    nimsync_metrics_histogram_opts summary_opts = {NULL, 0, quantiles, 2, 0.0};
    nimsync_metrics_histogram *sh;
    CHECK_OK(nimsync_metrics_register_histogram(c, "size_bytes", "", NULL, 0, &summary_opts, &sh));
    CHECK_OK(nimsync_metrics_histogram_record(sh, NULL, 0, 100));
    const char *kind[] = {"kind"}, *disk[] = {"disk"};
    nimsync_metrics_histogram *io, *io_disk;
    nimsync_metrics_gauge *temps, *temps_disk;
    CHECK_OK(nimsync_metrics_register_histogram(c, "io_ns", "", kind, 1, NULL, &io));
    CHECK_OK(nimsync_metrics_histogram_labels(io, disk, 1, &io_disk));
    CHECK_OK(nimsync_metrics_histogram_record(io_disk, NULL, 0, 10));
    CHECK_OK(nimsync_metrics_register_gauge(c, "temps", "", kind, 1, &temps));
    CHECK_OK(nimsync_metrics_gauge_labels(temps, disk, 1, &temps_disk));
    CHECK_OK(nimsync_metrics_gauge_set(temps_disk, NULL, 0, 41.5));
    CHECK_STATUS(nimsync_metrics_gauge_set(temps, NULL, 0, 1.0), NIMSYNC_STATUS_INVALID_ARGUMENT);

    char *text = exposition(c);
    CHECK(strstr(text, "# HELP http_requests_total Requests served.\n") != NULL);
    CHECK(strstr(text, "# TYPE http_requests_total counter\n") != NULL);
    CHECK(strstr(text, "http_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 3\n") != NULL);
    CHECK(strstr(text, "# TYPE temperature gauge\ntemperature -1.5\n") != NULL);
    CHECK(strstr(text, "# TYPE latency_seconds histogram\n") != NULL);
    CHECK(strstr(text, "latency_seconds_bucket{le=\"0.001\"} 0\n") != NULL);
    CHECK(strstr(text, "latency_seconds_bucket{le=\"0.01\"} 1\n") != NULL);
    CHECK(strstr(text, "latency_seconds_bucket{le=\"+Inf\"} 1\n") != NULL);
    CHECK(strstr(text, "latency_seconds_sum 0.0025\n") != NULL);
    CHECK(strstr(text, "latency_seconds_count 1\n") != NULL);
    CHECK(strstr(text, "# TYPE size_bytes summary\n") != NULL);
    CHECK(strstr(text, "size_bytes{quantile=\"0.99\"} 100\n") != NULL);
    CHECK(strstr(text, "# HELP size_bytes") == NULL);
    CHECK(strstr(text, "io_ns_count{kind=\"disk\"} 1\n") != NULL);
    CHECK(strstr(text, "temps{kind=\"disk\"} 41.5\n") != NULL);
    free(text);

    /* One family alone. */
    char family[256];
    size_t len;
    CHECK_OK(nimsync_metrics_collector_prometheus_family(c, "temperature", family, sizeof family, &len));
    CHECK(strcmp(family, "# HELP temperature Degrees.\n# TYPE temperature gauge\ntemperature -1.5\n") == 0);
    CHECK(len == strlen(family));
    CHECK_OK(nimsync_metrics_collector_prometheus_family(c, "missing", family, sizeof family, &len));
    CHECK(len == 0 && family[0] == '\0');

    /* Unregistered families leave the exposition; handles keep working. */
    bool found = false;
    CHECK_OK(nimsync_metrics_unregister(c, "temperature", &found));
    CHECK(found);
    CHECK_OK(nimsync_metrics_gauge_set(g, NULL, 0, 2.0));
    text = exposition(c);
    CHECK(strstr(text, "temperature") == NULL);
    free(text);

    nimsync_metrics_counter_free(k);
    nimsync_metrics_gauge_free(g);
    nimsync_metrics_histogram_free(h);
    nimsync_metrics_histogram_free(sh);
    nimsync_metrics_histogram_free(io);
    nimsync_metrics_histogram_free(io_disk);
    nimsync_metrics_gauge_free(temps);
    nimsync_metrics_gauge_free(temps_disk);
    nimsync_metrics_collector_free(c);
}

static void runtime_sources(void) {
    nimsync_metrics_collector *c;
    CHECK_OK(nimsync_metrics_collector_new(true, 1.0, &c));
    nimsync_channel *ch;
    CHECK_OK(nimsync_channel_new(8, NIMSYNC_CHANNEL_MODE_MPMC, NULL, NULL, &ch));
    CHECK_OK(nimsync_channel_try_send(ch, 1));
    CHECK_OK(nimsync_channel_try_send(ch, 2));
    CHECK_OK(nimsync_metrics_register_channel(c, "jobs", ch));
    CHECK_STATUS(nimsync_metrics_register_channel(c, "jobs", NULL), NIMSYNC_STATUS_NULL_ARGUMENT);
    CHECK_MESSAGE_HAS("channel");
    nimsync_scheduler *pool;
    CHECK_OK(nimsync_scheduler_new(2, &pool));
    CHECK_OK(nimsync_metrics_register_scheduler(c, "pool", pool));
    CHECK_STATUS(nimsync_metrics_register_scheduler(c, "pool", pool), NIMSYNC_STATUS_INVALID_ARGUMENT);
    nimsync_task_group *group;
    CHECK_OK(nimsync_task_group_new(pool, NULL, 0, NIMSYNC_WAIT_FOREVER, &group));
    CHECK_OK(nimsync_metrics_register_group(c, "batch", group));
    char *text = exposition(c);
    CHECK(strstr(text, "nimsync_group_tasks_pending{group=\"batch\"} 0\n") != NULL);
    CHECK(strstr(text, "nimsync_channel_length{channel=\"jobs\"") != NULL);
    CHECK(strstr(text, "nimsync_scheduler_workers{scheduler=\"pool\"} 2\n") != NULL);
    free(text);
    bool found = false;
    CHECK_OK(nimsync_metrics_unregister_runtime(c, "pool", &found));
    CHECK(found);
    nimsync_channel_free(ch);
    nimsync_task_group_free(group);
    text = exposition(c);
    /* A freed channel's series vanish; the collector did not keep it alive. */
    CHECK(strstr(text, "channel=\"jobs\"") == NULL);
    CHECK(strstr(text, "scheduler=\"pool\"") == NULL);
    CHECK(strstr(text, "group=\"batch\"") == NULL);
    free(text);
    nimsync_scheduler_free(pool);
    nimsync_metrics_collector_free(c);
}

/* GET `path` from 127.0.0.1:port; returns the malloc'd reply. */
static char *http_get(uint16_t port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    char request[256];
    int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, request, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *reply = malloc(cap);
    ssize_t got;
    while ((got = read(fd, reply + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len < 1024) reply = realloc(reply, cap *= 2);
    }
    reply[len] = '\0';
    close(fd);
    return reply;
}

static void http_endpoint(void) {
    nimsync_metrics_collector *c;
    CHECK_OK(nimsync_metrics_collector_new(true, 1.0, &c));
    nimsync_metrics_counter *k;
    CHECK_OK(nimsync_metrics_register_counter(c, "scrapes_seen_total", "Help.", NULL, 0, &k));
    CHECK_OK(nimsync_metrics_counter_add(k, NULL, 0, 7));
    nimsync_metrics_server *server;
    CHECK_OK(nimsync_metrics_serve(c, "127.0.0.1:0", &server));
    uint16_t port = 0;
    CHECK_OK(nimsync_metrics_server_port(server, &port));
    CHECK(port != 0);
    char address[64];
    CHECK_OK(nimsync_metrics_server_address(server, address, sizeof address, NULL));
    char expected[64];
    snprintf(expected, sizeof expected, "127.0.0.1:%u", (unsigned)port);
    CHECK(strcmp(address, expected) == 0);
    /* The collector handle may go; the server keeps the registry. */
    nimsync_metrics_collector_free(c);
    char *reply = http_get(port, "/metrics");
    CHECK(reply != NULL);
    if (reply) {
        CHECK(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17) == 0);
        CHECK(strstr(reply, "text/plain; version=0.0.4") != NULL);
        CHECK(strstr(reply, "\r\n\r\n# HELP scrapes_seen_total Help.\n") != NULL);
        CHECK(strstr(reply, "scrapes_seen_total 7\n") != NULL);
        free(reply);
    }
    reply = http_get(port, "/other");
    CHECK(reply != NULL && strncmp(reply, "HTTP/1.1 404", 12) == 0);
    free(reply);
    CHECK_OK(nimsync_metrics_server_stop(server));
    CHECK_OK(nimsync_metrics_server_stop(server)); /* again: nothing to do */
    reply = http_get(port, "/metrics");
    CHECK(reply == NULL); /* connection refused once stopped */
    free(reply);
    nimsync_metrics_server_free(server);
    nimsync_metrics_counter_free(k);
}

int main(void) {
    TEST(bad_input);
    TEST(threads_record_exact_counts);
    TEST(disabled_and_sampled);
    TEST(exposition_lines);
    TEST(runtime_sources);
    TEST(http_endpoint);
    TEST_EXIT();
}
