## The metrics API of the nimsync v0.2 guide on the runtime's collector:
## the guide's snippets with real numbers, exact counts from threads,
## percentiles, the exposition, bad input, and the /metrics endpoint.

import std/[unittest, strutils, net, times]
import nimsync

const
  Threads = 4
  PerThread = 50_000

type Recorders = tuple[counter: CounterMetric, histogram: HistogramMetric, gauge: GaugeMetric]

proc recordMany(r: Recorders) {.thread.} =
  for i in 1 .. PerThread:
    incrementCounter(r.counter)
    recordHistogram(r.histogram, i)
    addGauge(r.gauge, 1.0)

proc httpGet(port: int, path: string): string =
  let s = newSocket()
  defer: s.close()
  s.connect("127.0.0.1", Port(port))
  s.send("GET " & path & " HTTP/1.1\r\nHost: localhost\r\n\r\n")
  while true:
    let chunk = s.recv(4096)
    if chunk.len == 0:
      break
    result.add chunk

suite "metrics (the guide's API)":
  test "the guide's usage snippet reports real numbers":
    let collector = initMetricsCollector(enabled = true, samplingRate = 1.0)
    let histogram = registerHistogram(collector, "request_latency")
    for latencyNs in 1 .. 1000:
      recordHistogram(histogram, latencyNs * 1000)
    let p95 = getPercentile(histogram, 95.0)
    check abs(p95 - 950_000.0) <= 9_500.0
    let counter = registerCounter(collector, "requests_total")
    incrementCounter(counter)
    incrementCounter(counter, 4)
    let gauge = registerGauge(collector, "active_connections")
    let count = 7
    setGauge(gauge, float(count))
    let prometheus = exportPrometheus(collector)
    check "# TYPE request_latency histogram\n" in prometheus
    check "request_latency_count 1000\n" in prometheus
    check "request_latency_sum 500500000\n" in prometheus
    check "requests_total 5\n" in prometheus
    check "active_connections 7\n" in prometheus
    check toPrometheus(collector) == prometheus
    let summary = getSummary(collector)
    check summary.startsWith("Metrics Summary\n")
    check "Histograms: 1\n" in summary
    check "  request_latency: count=1000, avg=500500.00, p50=" in summary
    check "  requests_total: 5\n" in summary
    check "  active_connections: 7\n" in summary
    check abs(getHistogramPercentile(collector, "request_latency", 50.0) - 500_000.0) <= 5_000.0

  test "the guide's tuning snippets":
    let metrics = initMetricsCollector(samplingRate = 0.1)
    check metrics.samplingRate == 0.1
    check metrics.enabled
    let full = initMetricsCollector(enabled = true)
    check full.samplingRate == 1.0
    let h = registerHistogram(metrics, "operation_latency")
    for i in 0 ..< 100_000:
      recordHistogram(h, 5)
    let kept = getSummary(h).count
    check kept > 8_000'u64 and kept < 12_000'u64   # 10% of 100000, far beyond 5 sigma

  test "threads record exact counts":
    let collector = initMetricsCollector()
    let r: Recorders = (registerCounter(collector, "jobs_total", "Jobs."),
                        registerHistogram(collector, "job_ns", "Job time."),
                        registerGauge(collector, "in_flight"))
    var threads: array[Threads, Thread[Recorders]]
    for t in threads.mitems:
      createThread(t, recordMany, r)
    joinThreads(threads)
    check r.counter.value == uint64(Threads * PerThread)
    check r.gauge.value == float(Threads * PerThread)
    let s = getSummary(r.histogram)
    check s.count == uint64(Threads * PerThread)
    check s.min == 1 and s.max == PerThread
    check s.sum == float(Threads) * float(PerThread) * float(PerThread + 1) / 2
    check abs(s.mean - float(PerThread + 1) / 2) < 1e-9
    check abs(float(s.p99) - 0.99 * PerThread) <= 0.01 * 0.99 * PerThread
    check "jobs_total " & $(Threads * PerThread) & "\n" in exportPrometheus(collector)

  test "percentiles of durations and floats, summaries":
    let collector = initMetricsCollector()
    let h = collector.registerHistogram("wait_seconds", "Wait.", buckets = [0.001, 0.01], scale = 1e-9)
    h.recordHistogram(initDuration(milliseconds = 3))
    h.recordHistogram(2_000_000.4)
    let s = h.getSummary
    check s.count == 2 and s.min == 2_000_000 and s.max == 3_000_000 and s.mean == 2_500_000.0
    check "count=2, sum=5000000, min=2000000, max=3000000, mean=2500000.00" in $s
    check abs(h.getPercentile(0.0) - 2_000_000.0) <= 20_000.0   # within 1%
    check h.getPercentile(100.0) == 3_000_000.0
    let text = toPrometheus(h)
    check text == "# HELP wait_seconds Wait.\n# TYPE wait_seconds histogram\n" &
      "wait_seconds_bucket{le=\"0.001\"} 0\nwait_seconds_bucket{le=\"0.01\"} 2\n" &
      "wait_seconds_bucket{le=\"+Inf\"} 2\nwait_seconds_sum 0.005\nwait_seconds_count 2\n"

  test "labels, escaping and per-metric exposition":
    let collector = initMetricsCollector()
    let requests = collector.registerCounter("http_requests_total", "Requests.", labels = ["method", "path"])
    requests.incrementCounter(["GET", "/a\"b\\c\nd"], 3)
    requests.incrementCounter(["POST", "/"])
    check requests.value(["GET", "/a\"b\\c\nd"]) == 3
    let text = toPrometheus(requests)
    check "http_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 3\n" in text
    check "http_requests_total{method=\"POST\",path=\"/\"} 1\n" in text
    let sizes = collector.registerHistogram("size_bytes", labels = ["kind"], quantiles = [0.5, 0.99])
    sizes.recordHistogram(100, ["a"])
    check "size_bytes{kind=\"a\",quantile=\"0.99\"} 100\n" in exportPrometheus(collector)
    check sizes.getPercentile(50.0, ["a"]) == 100.0
    let summary = getSummary(collector)
    check "  size_bytes{kind=\"a\"}: count=1\n" in summary
    check "  http_requests_total{method=\"POST\",path=\"/\"}: 1\n" in summary
    check collector.unregister("http_requests_total")
    check toPrometheus(requests) == ""

  test "bad input raises ValueError with a message":
    expect ValueError:
      discard initMetricsCollector(samplingRate = 1.5)
    expect ValueError:
      discard initMetricsCollector(samplingRate = -0.1)
    expect ValueError:
      discard initMetricsCollector(samplingRate = NaN)
    let collector = initMetricsCollector()
    try:
      discard collector.registerCounter("bad-name")
      check false
    except ValueError as e:
      check "name" in e.msg
    expect ValueError:
      discard collector.registerCounter("x", labels = ["a b"])
    expect ValueError:
      discard collector.registerCounter("nul\0name")
    let h = collector.registerHistogram("h")
    expect ValueError:
      discard collector.registerGauge("h")
    expect ValueError:
      h.recordHistogram(-1)
    expect ValueError:
      h.recordHistogram(NaN)
    expect ValueError:
      discard h.getPercentile(101.0)
    expect ValueError:
      h.recordHistogram(1, ["unexpected"])
    try:
      discard collector.getHistogramPercentile("missing", 50.0)
      check false
    except ValueError as e:
      check "missing" in e.msg
    var unset: CounterMetric
    expect ValueError:
      unset.incrementCounter()
    expect ValueError:
      discard collector.registerHistogram("scaled", scale = -1.0)

  test "disabled collectors record nothing":
    let collector = initMetricsCollector(enabled = false)
    let c = collector.registerCounter("c_total")
    c.incrementCounter()
    check c.value == 0
    collector.setEnabled(true)
    c.incrementCounter()
    check c.value == 1

  test "runtime channels are published":
    let collector = initMetricsCollector()
    let ch = newChannel[int](8, MPMC)
    discard ch.trySend(1)
    collector.registerChannel("jobs", ch)
    check "nimsync_channel_length{channel=\"jobs\"" in exportPrometheus(collector)
    check collector.unregisterRuntime("jobs")

  test "the scheduler's worker metrics are published":
    let collector = initMetricsCollector()
    let pool = getScheduler()
    collector.registerScheduler("pool", pool)
    check "nimsync_scheduler_tasks_executed_total{scheduler=\"pool\"" in exportPrometheus(collector)
    check collector.unregisterRuntime("pool")
    expect ValueError:
      collector.registerScheduler("none", WorkStealingScheduler())

  test "the /metrics endpoint serves the exposition":
    let collector = initMetricsCollector()
    registerCounter(collector, "scrapes_total", "Scrapes.").incrementCounter(9)
    let server = collector.serveMetrics("127.0.0.1:0")
    check server.port > 0
    check server.address == "127.0.0.1:" & $server.port
    let reply = httpGet(server.port, "/metrics")
    check reply.startsWith("HTTP/1.1 200 OK\r\n")
    check reply.endsWith("# HELP scrapes_total Scrapes.\n# TYPE scrapes_total counter\nscrapes_total 9\n")
    check httpGet(server.port, "/nope").startsWith("HTTP/1.1 404")
    server.stop()
    expect OSError:
      discard httpGet(server.port, "/metrics")
    expect ValueError:
      discard collector.serveMetrics("no address")
