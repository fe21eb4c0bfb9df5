"""nimsync.Collector: exact counts from threads, percentiles, summaries, labels, the Prometheus
exposition, bad input, and the /metrics endpoint fetched with urllib."""

import math
import threading
import time
import urllib.error
import urllib.request

import pytest

import nimsync

THREADS = 8
PER_THREAD = 20_000


def test_threads_record_exact_counts():
    c = nimsync.Collector(sampling_rate=1.0)
    jobs = c.counter("jobs_total", "Jobs.", labels=("kind",))
    latency = c.histogram("job_ns", "Job time.")
    in_flight = c.gauge("in_flight", "In flight.")
    series = jobs.labels(kind="work")
    start = threading.Barrier(THREADS)

    def work():
        start.wait()
        for i in range(1, PER_THREAD + 1):
            series.inc()
            latency.record(i)
            in_flight.inc()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = THREADS * PER_THREAD
    assert jobs.labels("work").value == total
    assert in_flight.value == total
    s = latency.summary()
    assert s["count"] == total == latency.count
    assert (s["min"], s["max"]) == (1, PER_THREAD)
    assert s["sum"] == THREADS * PER_THREAD * (PER_THREAD + 1) // 2
    assert s["mean"] == pytest.approx((PER_THREAD + 1) / 2)
    text = c.expose()
    assert f'jobs_total{{kind="work"}} {total}\n' in text
    assert f"job_ns_count {total}\n" in text


def test_percentiles_within_one_percent():
    c = nimsync.Collector()
    h = c.histogram("lat", "Latency.")
    values = list(range(1, 100_001))
    for v in values:
        h.record(v)
    for p in (50, 90, 95, 99, 99.9):
        exact = values[math.ceil(p / 100 * len(values)) - 1]
        assert abs(h.percentile(p) - exact) <= 0.01 * exact, p
    assert h.percentile(100) == 100_000
    s = h.summary()
    assert set(s) == {"count", "sum", "min", "max", "mean", "p50", "p90", "p95", "p99", "p999"}
    assert s["p99"] == h.percentile(99)
    h.record(2.6)  # floats are rounded
    assert h.summary()["min"] == 1 and h.count == 100_001


def test_exposition_text():
    c = nimsync.Collector()
    req = c.counter("http_requests_total", "Requests served.", labels=("method", "path"))
    req.labels("GET", '/a"b\\c\nd').inc(3)
    req.labels(method="POST", path="/").inc()
    c.gauge("temperature", "Degrees.").set(-1.5)
    h = c.histogram("latency_seconds", "Latency.", buckets=(0.001, 0.01), scale=1e-9)
    h.record(2_500_000)
    q = c.histogram("size_bytes", quantiles=(0.5, 0.99))
    q.record(100)
    text = c.expose()
    assert "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n" in text
    assert 'http_requests_total{method="GET",path="/a\\"b\\\\c\\nd"} 3\n' in text
    assert 'http_requests_total{method="POST",path="/"} 1\n' in text
    assert "# TYPE temperature gauge\ntemperature -1.5\n" in text
    assert (
        '# TYPE latency_seconds histogram\nlatency_seconds_bucket{le="0.001"} 0\n'
        'latency_seconds_bucket{le="0.01"} 1\nlatency_seconds_bucket{le="+Inf"} 1\n'
        "latency_seconds_sum 0.0025\nlatency_seconds_count 1\n"
    ) in text
    assert '# TYPE size_bytes summary\nsize_bytes{quantile="0.5"} 100\n' in text
    assert c.unregister("temperature") and "temperature" not in c.expose()


def test_registration_returns_the_same_metric():
    c = nimsync.Collector()
    a = c.counter("x_total")
    b = c.counter("x_total")
    a.inc(2)
    assert b.value == 2
    with pytest.raises(ValueError, match="already registered"):
        c.gauge("x_total")


def test_bad_input_raises_with_messages():
    with pytest.raises(ValueError, match="sampling_rate"):
        nimsync.Collector(sampling_rate=1.5)
    with pytest.raises(ValueError, match="sampling_rate"):
        nimsync.Collector(sampling_rate=-0.01)
    with pytest.raises(ValueError, match="sampling_rate"):
        nimsync.Collector(sampling_rate=float("nan"))
    c = nimsync.Collector()
    with pytest.raises(ValueError, match="sampling_rate"):
        c.sampling_rate = 2.0
    with pytest.raises(ValueError, match="name"):
        c.counter("bad-name")
    with pytest.raises(ValueError, match="label"):
        c.counter("x", labels=("a b",))
    with pytest.raises(TypeError, match="sequence of label names"):
        c.counter("x", labels="method")
    with pytest.raises(ValueError, match="le"):
        c.histogram("h", labels=("le",))
    with pytest.raises(ValueError, match="ascending"):
        c.histogram("h", buckets=(2.0, 1.0))
    with pytest.raises(ValueError, match="not both"):
        c.histogram("h", buckets=(1.0,), quantiles=(0.5,))
    labelled = c.counter("req_total", labels=("method",))
    with pytest.raises(ValueError, match=r"labels\(method=\.\.\.\)"):
        labelled.inc()
    with pytest.raises(ValueError, match="got 2 value"):
        labelled.labels("GET", "x")
    with pytest.raises(ValueError, match="missing label"):
        labelled.labels(verb="GET")
    with pytest.raises(TypeError, match="not both"):
        labelled.labels("GET", method="GET")
    with pytest.raises(ValueError, match="whole numbers"):
        labelled.labels("GET").inc(-1)
    plain = c.counter("plain_total")
    with pytest.raises(ValueError, match="no labels"):
        plain.labels("x")
    h = c.histogram("lat")
    with pytest.raises(ValueError, match=">= 0"):
        h.record(-1)
    with pytest.raises(ValueError, match=">= 0"):
        h.record(float("nan"))
    with pytest.raises(TypeError):
        h.record("12")
    with pytest.raises(ValueError, match="between 0 and 100"):
        h.percentile(101)
    with pytest.raises(ValueError, match="addr"):
        c.serve("not an address")


def test_disabled_and_sampled():
    c = nimsync.Collector(enabled=False, sampling_rate=0.5)
    k = c.counter("k_total")
    h = c.histogram("h")
    k.inc()
    h.record(1)
    assert (k.value, h.count) == (0, 0)
    c.enabled = True
    for _ in range(100_000):
        h.record(7)
    k.inc()
    assert k.value == 1
    # Half kept; five standard deviations are 790.
    assert 45_000 < h.count < 55_000
    assert c.sampling_rate == 0.5


def test_runtime_channel_metrics():
    c = nimsync.Collector()
    ch = nimsync.Channel(8)
    ch.send("x")
    c.register_channel("jobs", ch)
    assert 'nimsync_channel_length{channel="jobs"' in c.expose()
    assert c.unregister_runtime("jobs")


def test_task_pool_and_group_metrics():
    c = nimsync.Collector()
    c.register_scheduler("tasks")
    gate = nimsync.Channel(1)
    with nimsync.TaskGroup() as g:
        c.register_group("batch", g)
        g.spawn(gate.recv)
        text = c.expose()
        assert 'nimsync_group_tasks_spawned_total{group="batch"} 1' in text
        assert 'nimsync_group_tasks_pending{group="batch"} 1' in text
        gate.send("go")
    text = c.expose()
    assert 'nimsync_group_tasks_pending{group="batch"} 0' in text

    def executed():
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in c.expose().splitlines()
            if line.startswith("nimsync_scheduler_tasks_executed_total") and 'scheduler="tasks"' in line
        )

    # A worker counts a task once it has returned, a moment after the join saw it
    # finish: wait (bounded) for the count.
    deadline = time.monotonic() + 10
    while executed() < 1:
        assert time.monotonic() < deadline, c.expose()
        time.sleep(0.001)
    with pytest.raises(TypeError, match="nimsync.TaskGroup inside its with block"):
        c.register_group("later", nimsync.TaskGroup())
    assert c.unregister_runtime("batch") and c.unregister_runtime("tasks")


def test_timed_records_the_block():
    h = nimsync.Collector().histogram("op_ns")
    with pytest.raises(RuntimeError):
        with nimsync.timed(h):
            raise RuntimeError("recorded anyway")
    assert h.count == 1


def test_serve_metrics_endpoint():
    c = nimsync.Collector()
    c.counter("scrapes_total", "Scrapes.").inc(9)
    with c.serve(("127.0.0.1", 0)) as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(server.url, timeout=30) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = reply.read().decode()
        assert "# HELP scrapes_total Scrapes.\n# TYPE scrapes_total counter\nscrapes_total 9\n" in body
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=30)
        assert missing.value.code == 404
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30)
    server.stop()  # idempotent
