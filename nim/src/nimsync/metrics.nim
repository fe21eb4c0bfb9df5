## Metrics: counters, gauges and histograms in a collector, exported in the
## Prometheus text format (0.0.4) or served at ``/metrics`` over HTTP — the
## original nimsync ``metrics`` API on the runtime's lock-free collector.
##
## .. code-block:: nim
##   import nimsync
##
##   let collector = initMetricsCollector(enabled = true, samplingRate = 1.0)
##
##   let histogram = registerHistogram(collector, "request_latency")
##   recordHistogram(histogram, 1_250_000)          # e.g. nanoseconds
##   let p95 = getPercentile(histogram, 95.0)       # within 1%
##
##   let counter = registerCounter(collector, "requests_total")
##   incrementCounter(counter)
##
##   let gauge = registerGauge(collector, "active_connections")
##   setGauge(gauge, 12.0)
##
##   let prometheus = exportPrometheus(collector)   # text format 0.0.4
##   echo getSummary(collector)                     # count, avg, p50/p95/p99 ...
##
## Recording is lock-free from any number of threads and loses nothing: N
## threads recording M values each leave a count of exactly N×M. Copies of a
## collector or a metric share it (copies may go to other threads).
##
## **Values.** Histograms hold non-negative integers (nanoseconds, bytes,
## ...): `recordHistogram` takes integers, ``Duration`` s (as nanoseconds)
## and floats (rounded to the nearest integer); negative values and NaN
## raise ``ValueError``. Percentiles are within 1% over the whole ``uint64``
## range (log-linear buckets); min, max, sum and count are exact.
##
## **Sampling.** `samplingRate` (0.0–1.0) is the probability that a
## histogram record is kept; counters and gauges are never sampled. A
## disabled collector records nothing.
##
## **Names and labels** follow Prometheus: metric names match
## ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names ``[a-zA-Z_][a-zA-Z0-9_]*``;
## anything else raises ``ValueError``. Registering a name again with the
## same kind and labels returns the same metric; another kind raises
## ``ValueError``. Metrics registered with `labels` take as many
## `labelValues` on every call.
##
## **Exposition.** Histograms are exposed as Prometheus histograms
## (``_bucket{le=...}``, ``_sum``, ``_count``; decade buckets from 1 to
## 10^12 unless `buckets` says otherwise), or as summaries with precomputed
## quantiles when `quantiles` is given.

import std/[strutils, times]
import private/abi
import errors
import channels
import scheduler

type
  MetricsCollector* = object
    ## A registry of metrics. Copies share it.
    handle: ptr MetricsCollectorHandle

  CounterMetric* = object
    ## A count that only goes up (Prometheus ``counter``). Copies share it.
    handle: ptr MetricsCounterHandle
    collector: MetricsCollector
    name: string

  GaugeMetric* = object
    ## A value that goes up and down (Prometheus ``gauge``). Copies share it.
    handle: ptr MetricsGaugeHandle
    collector: MetricsCollector
    name: string

  HistogramMetric* = object
    ## A distribution of non-negative integers. Copies share it.
    handle: ptr MetricsHistogramHandle
    collector: MetricsCollector
    name: string

  HistogramSummary* = object
    ## The numbers most often asked of a histogram, from one snapshot
    ## (all 0 when nothing was recorded).
    count*: uint64   ## values recorded (kept by sampling)
    sum*: float      ## their sum (exact up to 2^53)
    min*: uint64     ## the smallest
    max*: uint64     ## the largest
    mean*: float     ## the mean
    p50*: uint64     ## the median (within 1%, like every percentile here)
    p90*: uint64     ## the 90th percentile
    p95*: uint64     ## the 95th percentile
    p99*: uint64     ## the 99th percentile
    p999*: uint64    ## the 99.9th percentile

  MetricsServer* = object
    ## A running ``/metrics`` HTTP endpoint (`serveMetrics`). Stops when
    ## `stop` is called or when it goes out of scope. Cannot be copied.
    handle: ptr MetricsServerHandle

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc notInitialized(what: string) {.noreturn.} =
  raise newException(ValueError, "the " & what & " is not initialized: use initMetricsCollector and register*")

# --- Lifetime -----------------------------------------------------------------

proc `=destroy`*(c: var MetricsCollector) =
  ## Releases this copy's handle.
  if c.handle != nil:
    nimsync_metrics_collector_free(c.handle)
    c.handle = nil

proc `=copy`*(dest: var MetricsCollector, src: MetricsCollector) =
  ## Shares the collector: the copy has its own handle.
  if dest.handle == src.handle:
    return
  `=destroy`(dest)
  if src.handle != nil:
    check nimsync_metrics_collector_clone(src.handle, addr dest.handle)

template metricHooks(T: typedesc, freeFn, cloneFn: untyped) =
  proc `=destroy`*(m: var T) =
    ## Releases this copy's handle (the metric stays registered).
    if m.handle != nil:
      freeFn(m.handle)
      m.handle = nil
    `=destroy`(m.collector)
    `=destroy`(m.name)

  proc `=copy`*(dest: var T, src: T) =
    ## Shares the metric: the copy has its own handle.
    if dest.handle == src.handle:
      return
    `=destroy`(dest)
    dest.collector = src.collector
    dest.name = src.name
    if src.handle != nil:
      check cloneFn(src.handle, addr dest.handle)

metricHooks(CounterMetric, nimsync_metrics_counter_free, nimsync_metrics_counter_clone)
metricHooks(GaugeMetric, nimsync_metrics_gauge_free, nimsync_metrics_gauge_clone)
metricHooks(HistogramMetric, nimsync_metrics_histogram_free, nimsync_metrics_histogram_clone)

proc `=destroy`*(s: var MetricsServer) =
  ## Stops the server and releases it.
  if s.handle != nil:
    nimsync_metrics_server_free(s.handle)
    s.handle = nil

proc `=copy`*(dest: var MetricsServer, src: MetricsServer) {.error.}
  ## A server has one owner.

# --- Strings in and out ---------------------------------------------------------

proc cstrings(values: openArray[string], what: string): seq[cstring] =
  ## The C strings of `values` (valid while `values` lives).
  result = newSeq[cstring](values.len)
  for i, v in values:
    if '\0' in v:
      raise newException(ValueError, "invalid argument `" & what & "`: " & v.escape & " contains a NUL byte")
    result[i] = cstring(v)

proc firstOrNil(s: var seq[cstring]): ptr cstring {.inline.} =
  if s.len == 0: nil else: addr s[0]

proc cname(s: string, what: string): cstring =
  if '\0' in s:
    raise newException(ValueError, "invalid argument `" & what & "`: " & s.escape & " contains a NUL byte")
  cstring(s)

proc readText(fill: proc (buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status): string =
  ## Calls a ``snprintf``-style C function until the text fits.
  var room = 4096
  while true:
    result = newString(room)          # a Nim string has room for its NUL too
    var needed: csize_t
    check fill(cstring(result), csize_t(room + 1), addr needed)
    if int(needed) <= room:
      result.setLen(int(needed))
      return
    room = int(needed) + 1024         # the text grew: try again with room to spare

# --- The collector --------------------------------------------------------------

proc initMetricsCollector*(enabled: bool = true, samplingRate: float = 1.0): MetricsCollector =
  ## A new collector. While `enabled` is false nothing is recorded; each
  ## histogram record is kept with probability `samplingRate` (0.0–1.0,
  ## else ``ValueError``).
  ##
  ## .. code-block:: nim
  ##   let metrics = initMetricsCollector(samplingRate = 0.1)  # 10% of histogram records
  check nimsync_metrics_collector_new(enabled, samplingRate, addr result.handle)

proc isInitialized*(c: MetricsCollector): bool =
  ## Whether `c` came from `initMetricsCollector` (a default value is not).
  c.handle != nil

proc raw(c: MetricsCollector): ptr MetricsCollectorHandle {.inline.} =
  if c.handle == nil:
    notInitialized("MetricsCollector")
  c.handle

proc enabled*(c: MetricsCollector): bool =
  ## Whether the collector records.
  check nimsync_metrics_collector_settings(c.raw, addr result, nil)

proc samplingRate*(c: MetricsCollector): float =
  ## The probability that a histogram record is kept.
  var rate: float64
  check nimsync_metrics_collector_settings(c.raw, nil, addr rate)
  rate

proc setEnabled*(c: MetricsCollector, enabled: bool) =
  ## Turns recording on or off for every metric of the collector.
  check nimsync_metrics_collector_set_enabled(c.raw, enabled)

proc setSamplingRate*(c: MetricsCollector, samplingRate: float) =
  ## Changes the histogram sampling rate (0.0–1.0, else ``ValueError``).
  check nimsync_metrics_collector_set_sampling_rate(c.raw, samplingRate)

proc registerCounter*(collector: MetricsCollector, name: string, help = "",
                      labels: openArray[string] = []): CounterMetric =
  ## Registers (or finds) the counter `name`. `help` becomes its ``# HELP``
  ## line; `labels` are label names, each call then takes as many values.
  var names = cstrings(labels, "labels")
  check nimsync_metrics_register_counter(collector.raw, cname(name, "name"), cname(help, "help"),
                                         firstOrNil(names), csize_t(names.len), addr result.handle)
  result.collector = collector
  result.name = name

proc registerGauge*(collector: MetricsCollector, name: string, help = "",
                    labels: openArray[string] = []): GaugeMetric =
  ## Registers (or finds) the gauge `name` (see `registerCounter`).
  var names = cstrings(labels, "labels")
  check nimsync_metrics_register_gauge(collector.raw, cname(name, "name"), cname(help, "help"),
                                       firstOrNil(names), csize_t(names.len), addr result.handle)
  result.collector = collector
  result.name = name

proc registerHistogram*(collector: MetricsCollector, name: string, help = "",
                        labels: openArray[string] = [], buckets: openArray[float] = [],
                        quantiles: openArray[float] = [], scale = 1.0): HistogramMetric =
  ## Registers (or finds) the histogram `name` (see `registerCounter`).
  ## `buckets` are ascending ``le`` bounds in exposed units (default: decades
  ## from 1 to 10^12); with `quantiles` (each 0–1) it is exposed as a
  ## Prometheus summary instead. Recorded values are multiplied by `scale`
  ## on exposition (1e-9 exposes recorded nanoseconds as seconds).
  ##
  ## .. code-block:: nim
  ##   let latency = collector.registerHistogram("latency_seconds", "Latency.",
  ##                                             buckets = [0.001, 0.01, 0.1], scale = 1e-9)
  ##   latency.recordHistogram(initDuration(milliseconds = 3))
  var names = cstrings(labels, "labels")
  var b = @buckets
  var q = @quantiles
  var opts = MetricsHistogramOptsC(
    buckets: (if b.len > 0: addr b[0] else: nil), bucketCount: csize_t(b.len),
    quantiles: (if q.len > 0: addr q[0] else: nil), quantileCount: csize_t(q.len),
    scale: scale)
  if scale == 0.0:
    raise newException(ValueError, "invalid argument `scale`: must be positive and finite, got 0")
  check nimsync_metrics_register_histogram(collector.raw, cname(name, "name"), cname(help, "help"),
                                           firstOrNil(names), csize_t(names.len), addr opts,
                                           addr result.handle)
  result.collector = collector
  result.name = name

proc unregister*(collector: MetricsCollector, name: string): bool {.discardable.} =
  ## Removes the metric `name` from the exposition; false if there was none.
  ## Metrics already registered keep recording, unseen.
  check nimsync_metrics_unregister(collector.raw, cname(name, "name"), addr result)

proc registerChannel*[T](collector: MetricsCollector, name: string, channel: channels.Channel[T]) =
  ## Publishes the channel's length, capacity, closed flag and waiting
  ## threads (``nimsync_channel_*`` families, label ``channel="<name>"``).
  ## The collector does not keep the channel alive; its series vanish with it.
  check nimsync_metrics_register_channel(collector.raw, cname(name, "name"), channel.rawHandle)

proc registerScheduler*(collector: MetricsCollector, name: string, pool: WorkStealingScheduler) =
  ## Publishes the pool's per-worker counters and load imbalance
  ## (``nimsync_scheduler_*`` families, label ``scheduler="<name>"``). The
  ## collector does not keep the pool alive; its series vanish with it.
  ##
  ## .. code-block:: nim
  ##   collector.registerScheduler("main", getScheduler())
  let handle = pool.rawHandle
  if handle == nil:
    raise newException(ValueError, "registerScheduler: the scheduler is not initialized")
  check nimsync_metrics_register_scheduler(collector.raw, cname(name, "name"), handle)

proc unregisterRuntime*(collector: MetricsCollector, name: string): bool {.discardable.} =
  ## Stops publishing the runtime object registered as `name`.
  check nimsync_metrics_unregister_runtime(collector.raw, cname(name, "name"), addr result)

# --- Recording ------------------------------------------------------------------

template rawOf(m: CounterMetric | GaugeMetric | HistogramMetric, what: string): untyped =
  (if m.handle == nil: notInitialized(what) else: m.handle)

proc name*(m: CounterMetric | GaugeMetric | HistogramMetric): string =
  ## The metric's name.
  m.name

proc incrementCounter*(counter: CounterMetric, amount: uint64 = 1) =
  ## Adds `amount` to an unlabelled counter.
  check nimsync_metrics_counter_add(counter.rawOf("CounterMetric"), nil, 0, amount)

proc incrementCounter*(counter: CounterMetric, labelValues: openArray[string], amount: uint64 = 1) =
  ## Adds `amount` to the series of a labelled counter picked by `labelValues`
  ## (in the order of the label names).
  var values = cstrings(labelValues, "labelValues")
  check nimsync_metrics_counter_add(counter.rawOf("CounterMetric"), firstOrNil(values),
                                    csize_t(values.len), amount)

proc value*(counter: CounterMetric, labelValues: openArray[string] = []): uint64 =
  ## The counter's current total.
  var values = cstrings(labelValues, "labelValues")
  check nimsync_metrics_counter_get(counter.rawOf("CounterMetric"), firstOrNil(values),
                                    csize_t(values.len), addr result)

proc setGauge*(gauge: GaugeMetric, value: float, labelValues: openArray[string] = []) =
  ## Sets the gauge.
  var values = cstrings(labelValues, "labelValues")
  check nimsync_metrics_gauge_set(gauge.rawOf("GaugeMetric"), firstOrNil(values), csize_t(values.len), value)

proc addGauge*(gauge: GaugeMetric, delta: float, labelValues: openArray[string] = []) =
  ## Adds `delta` (negative to subtract); concurrent adds are all applied.
  var values = cstrings(labelValues, "labelValues")
  check nimsync_metrics_gauge_add(gauge.rawOf("GaugeMetric"), firstOrNil(values), csize_t(values.len), delta)

proc value*(gauge: GaugeMetric, labelValues: openArray[string] = []): float =
  ## The gauge's current value.
  var values = cstrings(labelValues, "labelValues")
  var v: float64
  check nimsync_metrics_gauge_get(gauge.rawOf("GaugeMetric"), firstOrNil(values), csize_t(values.len), addr v)
  v

proc recordRaw(histogram: HistogramMetric, value: uint64, labelValues: openArray[string]) =
  var values = cstrings(labelValues, "labelValues")
  check nimsync_metrics_histogram_record(histogram.rawOf("HistogramMetric"), firstOrNil(values),
                                         csize_t(values.len), value)

proc recordHistogram*(histogram: HistogramMetric, value: SomeInteger, labelValues: openArray[string] = []) =
  ## Records `value` (kept with the collector's sampling probability).
  ## Negative values raise ``ValueError``.
  when value is SomeSignedInt:
    if value < 0:
      raise newException(ValueError, "invalid argument `value`: histograms hold values >= 0, got " & $value)
  histogram.recordRaw(uint64(value), labelValues)

proc recordHistogram*(histogram: HistogramMetric, value: float, labelValues: openArray[string] = []) =
  ## Records `value` rounded to the nearest integer (values beyond
  ## ``high(uint64)`` count as it). Negative values and NaN raise ``ValueError``.
  if value != value or value < 0.0:
    raise newException(ValueError, "invalid argument `value`: histograms hold values >= 0, got " & $value)
  let v = if value >= 18446744073709551615.0: high(uint64) else: uint64(value + 0.5)
  histogram.recordRaw(v, labelValues)

proc recordHistogram*(histogram: HistogramMetric, value: Duration, labelValues: openArray[string] = []) =
  ## Records a duration in nanoseconds. Negative durations raise ``ValueError``.
  histogram.recordHistogram(value.inNanoseconds, labelValues)

proc getPercentile*(histogram: HistogramMetric, percentile: float,
                    labelValues: openArray[string] = []): float =
  ## The value at `percentile` (0–100, else ``ValueError``) of what the
  ## histogram recorded, within 1%; 0 when nothing was recorded.
  var values = cstrings(labelValues, "labelValues")
  var v: uint64
  check nimsync_metrics_histogram_percentile(histogram.rawOf("HistogramMetric"), firstOrNil(values),
                                             csize_t(values.len), percentile, addr v)
  float(v)

proc getSummary*(histogram: HistogramMetric, labelValues: openArray[string] = []): HistogramSummary =
  ## Count, sum, min, max, mean and the usual percentiles, from one snapshot.
  var values = cstrings(labelValues, "labelValues")
  var s: MetricsSummaryC
  check nimsync_metrics_histogram_summary(histogram.rawOf("HistogramMetric"), firstOrNil(values),
                                          csize_t(values.len), addr s)
  HistogramSummary(count: s.count, sum: s.sum, min: s.min, max: s.max, mean: s.mean,
                   p50: s.p50, p90: s.p90, p95: s.p95, p99: s.p99, p999: s.p999)

proc `$`*(s: HistogramSummary): string =
  ## ``count=3, sum=6, min=1, max=3, mean=2.00, p50=2, p95=3, p99=3, p99.9=3``
  "count=" & $s.count & ", sum=" & formatFloat(s.sum, ffDecimal, 0).strip(leading = false, chars = {'.'}) &
    ", min=" & $s.min & ", max=" & $s.max & ", mean=" & formatFloat(s.mean, ffDecimal, 2) &
    ", p50=" & $s.p50 & ", p95=" & $s.p95 & ", p99=" & $s.p99 & ", p99.9=" & $s.p999

proc getHistogramPercentile*(collector: MetricsCollector, name: string, percentile: float): float =
  ## The `percentile` of the unlabelled histogram registered as `name`.
  ## ``ValueError`` when there is none.
  var h: ptr MetricsHistogramHandle
  check nimsync_metrics_find_histogram(collector.raw, cname(name, "name"), addr h)
  var v: uint64
  let status = nimsync_metrics_histogram_percentile(h, nil, 0, percentile, addr v)
  nimsync_metrics_histogram_free(h)
  check status
  float(v)

# --- Exposition -----------------------------------------------------------------

proc exportPrometheus*(collector: MetricsCollector): string =
  ## Every metric of the collector (and its registered runtime objects) in
  ## the Prometheus text format 0.0.4, families sorted by name.
  let h = collector.raw
  readText(proc (buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status =
    nimsync_metrics_collector_prometheus(h, buffer, capacity, outLen))

proc toPrometheus*(collector: MetricsCollector): string =
  ## Same as `exportPrometheus`.
  exportPrometheus(collector)

proc familyText(collector: MetricsCollector, name: string): string =
  let h = collector.raw
  let n = cname(name, "name")
  readText(proc (buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status =
    nimsync_metrics_collector_prometheus_family(h, n, buffer, capacity, outLen))

proc toPrometheus*(metric: CounterMetric | GaugeMetric | HistogramMetric): string =
  ## The metric's own lines of the exposition (``# HELP``, ``# TYPE`` and
  ## its samples); "" once it was unregistered.
  discard metric.rawOf("metric")
  familyText(metric.collector, metric.name)

proc sampleLines(text: string, name: string): seq[tuple[series, value: string]] =
  ## The samples of one family's exposition whose metric name is `name`.
  for line in text.splitLines:
    if line.len == 0 or line.startsWith("#"):
      continue
    let cut = line.rfind(' ')
    if cut < 0:
      continue
    let series = line[0 ..< cut]
    let metric = series.split('{', maxsplit = 1)[0]
    if metric == name:
      result.add((series, line[cut + 1 .. ^1]))

proc getSummary*(collector: MetricsCollector): string =
  ## A human-readable overview: for each histogram its count, mean and
  ## p50/p95/p99; for each counter and gauge its values (one line per
  ## label set).
  let text = exportPrometheus(collector)
  var histograms, counters, gauges: seq[string]
  for line in text.splitLines:
    if line.startsWith("# TYPE "):
      let parts = line.splitWhitespace()
      if parts.len == 4:
        case parts[3]
        of "histogram", "summary": histograms.add(parts[2])
        of "counter": counters.add(parts[2])
        of "gauge": gauges.add(parts[2])
        else: discard
  result = "Metrics Summary\n===============\n\n"
  result.add "Histograms: " & $histograms.len & "\n"
  for name in histograms:
    var h: ptr MetricsHistogramHandle
    if nimsync_metrics_find_histogram(collector.raw, cstring(name), addr h) == StatusOk:
      var s: MetricsSummaryC
      let status = nimsync_metrics_histogram_summary(h, nil, 0, addr s)
      nimsync_metrics_histogram_free(h)
      check status
      result.add "  " & name & ": count=" & $s.count & ", avg=" & formatFloat(s.mean, ffDecimal, 2) &
        ", p50=" & $s.p50 & ", p95=" & $s.p95 & ", p99=" & $s.p99 & "\n"
    else:
      # Labelled: one line per label set, from the exposition.
      for (series, value) in sampleLines(familyText(collector, name), name & "_count"):
        result.add "  " & series.replace("_count{", "{") & ": count=" & value & "\n"
  result.add "\nCounters: " & $counters.len & "\n"
  for name in counters:
    for (series, value) in sampleLines(familyText(collector, name), name):
      result.add "  " & series & ": " & value & "\n"
  result.add "\nGauges: " & $gauges.len & "\n"
  for name in gauges:
    for (series, value) in sampleLines(familyText(collector, name), name):
      result.add "  " & series & ": " & value & "\n"

# --- HTTP endpoint --------------------------------------------------------------

proc serveMetrics*(collector: MetricsCollector, address = "127.0.0.1:9464"): MetricsServer =
  ## Serves `exportPrometheus` at ``GET /metrics`` on `address` (port 0
  ## picks a free one, see `port`) from one background thread, until `stop`
  ## or the end of the server's scope. ``ValueError`` if the address cannot
  ## be listened on.
  ##
  ## .. code-block:: nim
  ##   let server = collector.serveMetrics("127.0.0.1:0")
  ##   echo "scrape http://", server.address, "/metrics"
  check nimsync_metrics_serve(collector.raw, cname(address, "address"), addr result.handle)

proc port*(server: MetricsServer): int =
  ## The port the server listens on.
  if server.handle == nil:
    notInitialized("MetricsServer")
  var p: uint16
  check nimsync_metrics_server_port(server.handle, addr p)
  int(p)

proc address*(server: MetricsServer): string =
  ## The address the server listens on, e.g. ``"127.0.0.1:40123"``.
  if server.handle == nil:
    notInitialized("MetricsServer")
  let h = server.handle
  readText(proc (buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status =
    nimsync_metrics_server_address(h, buffer, capacity, outLen))

proc stop*(server: MetricsServer) =
  ## Stops serving (closes the socket, joins the thread). Idempotent.
  if server.handle != nil:
    check nimsync_metrics_server_stop(server.handle)
