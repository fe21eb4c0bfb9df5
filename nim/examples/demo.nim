## nimsync from Nim: a producer thread and a consumer thread share a channel
## of strings (the consumer records each batch's latency in a histogram), then
## a thread feeds an asyncdispatch coroutine, a task group on the
## work-stealing pool fails fast, a receive runs into a 50 ms deadline, and the
## histogram is read back and exposed for Prometheus.

import std/[asyncdispatch, monotimes, times, strutils]
import nimsync

const
  N = 1_000_000
  Batch = 10_000   # items per latency sample

proc producer(ch: nimsync.Channel[string]) {.thread.} =
  for i in 1 .. N:
    ch.sendBlocking("item " & $i)
  ch.close()              # the consumer drains what is left, then stops

proc threadsDemo(batchNs: HistogramMetric) =
  let ch = newChannel[string](1024, SPSC)
  echo "[nim] nimsync ", libraryVersion(), ": SPSC channel, ", N, " strings from a producer thread"
  let t0 = getMonoTime()
  var batchStart = t0
  var t: Thread[nimsync.Channel[string]]
  createThread(t, producer, ch)
  var count, total = 0
  for msg in ch:
    inc count
    total += parseInt(msg[5 .. ^1])
    if count mod Batch == 0:
      let now = getMonoTime()
      batchNs.recordHistogram(now - batchStart)
      batchStart = now
    if count mod 200_000 == 0:
      stdout.write "\r[nim] received ", count, " / ", N
      stdout.flushFile()
  joinThread(t)
  let secs = (getMonoTime() - t0).inNanoseconds.float / 1e9
  let ok = total == N * (N + 1) div 2
  echo "\r[nim] received ", count, " strings, sum ", total, " (", (if ok: "correct" else: "WRONG"),
       "), ", formatFloat(count.float / secs / 1e6, ffDecimal, 2), " M strings/s"

proc numbers(ch: nimsync.Channel[int]) {.thread.} =
  for i in 0 ..< 100_000:
    ch.sendBlocking(i)
  ch.close()

proc asyncDemo() =
  let ch = newChannel[int](64, SPSC)
  var t: Thread[nimsync.Channel[int]]
  let t0 = getMonoTime()
  createThread(t, numbers, ch)
  proc consume(): Future[int] {.async.} =
    while true:
      try:
        result += await ch.recv()   # the loop sleeps on a descriptor; the thread wakes it
      except ChannelClosedError:
        return
  let total = waitFor consume()
  joinThread(t)
  let secs = (getMonoTime() - t0).inNanoseconds.float / 1e9
  echo "[nim] asyncdispatch consumer got 100000 ints from a thread, sum ", total, ", ",
       formatFloat(100_000 / secs / 1e6, ffDecimal, 2), " M items/s"

const
  Tasks = 8
  FailingTask = 1
  Range = 50_000_000   # numbers each task sums
  Chunk = 1_000_000    # numbers summed between two looks at the token

type
  Progress = object
    ## One task's progress; a task writes its own entry only, and the join
    ## orders those writes before `groupDemo` reads them.
    started: bool
    done, sum: int     # numbers summed so far, and their sum

proc sumTask(index: int, progress: ptr array[Tasks, Progress]): proc (token: CancelToken): int {.gcsafe.} =
  ## Sums the task's range chunk by chunk; task `FailingTask` raises a tenth
  ## of the way.
  result = proc (token: CancelToken): int {.gcsafe.} =
    let p = addr progress[index]
    p.started = true
    let lo = index * Range
    for start in countup(lo, lo + Range - 1, Chunk):
      token.checkCancelled()   # raises AsyncCancelledError once a sibling failed
      if index == FailingTask and p.done >= Range div 10:
        raise newException(ValueError, "task " & $index & ": bad input after " & $p.done & " numbers")
      var sum = p.sum
      for k in start ..< start + Chunk:
        sum += k
      p.sum = sum
      p.done += Chunk
    p.sum

proc groupDemo() =
  echo "[nim] task group on the ", getScheduler().workerCount, "-worker pool: ", Tasks, " tasks each sum ",
       Range, " numbers, task ", FailingTask, " fails a tenth of the way"
  var progress: array[Tasks, Progress]
  var g = initTaskGroup(TaskPolicy.FailFast)
  var handles: seq[TaskHandle[int]]
  let t0 = getMonoTime()
  for i in 0 ..< Tasks:
    handles.add g.spawn(sumTask(i, addr progress))
  var outcome = "returned without raising?!"
  var errors: seq[string]
  try:
    g.wait()
  except TaskGroupError as e:
    outcome = "raised TaskGroupError (" & $e.errors.len & " error(s), " & $e.skipped & " skipped)"
    for k, err in e.errors:
      errors.add "task " & $e.taskIds[k] & " raised " & $err.name & ": " & err.msg
  let ms = (getMonoTime() - t0).inNanoseconds div 1_000_000
  var states: seq[string]
  var done, cancelled, skipped, failed = 0
  var sumsOk = true
  for i, h in handles:
    let p = progress[i]
    let lo = i * Range
    sumsOk = sumsOk and p.sum == (if p.done == 0: 0 else: (2 * lo + p.done - 1) * p.done div 2)
    let pct = $(p.done * 100 div Range) & "%"
    case h.state
    of TaskState.Completed:
      inc done
      states.add "#" & $i & " done@" & pct
    of TaskState.Failed:
      inc failed
      states.add "#" & $i & " FAILED@" & pct
    of TaskState.Cancelled:
      if p.started:
        inc cancelled
        states.add "#" & $i & " cancelled@" & pct
      else:
        inc skipped
        states.add "#" & $i & " skipped"
    else:
      states.add "#" & $i & " " & $h.state
  echo "[nim] ", states.join(" ")
  echo "[nim] wait ", outcome, " after ", ms, " ms: ", done, " done, ", cancelled, " cancelled mid-sum, ",
       skipped, " skipped, ", failed, " failed; every (partial) sum ", (if sumsOk: "correct" else: "WRONG")
  for err in errors:
    echo "[nim]   ", err

proc deadlineDemo() =
  let ch = newChannel[int](16, SPSC)
  let t0 = getMonoTime()
  var outcome = "received an item?!"
  try:
    let scope = initTimeoutScope(50)
    discard ch.recvBlocking(scope)
  except TimeoutError as e:
    outcome = "raised TimeoutError(\"" & e.msg & "\")"
  let ms = (getMonoTime() - t0).inNanoseconds.float / 1e6
  echo "[nim] deadline: recvBlocking on an empty channel in initTimeoutScope(50) ", outcome, " after ",
       formatFloat(ms, ffDecimal, 1), " ms"

proc metricsDemo(metrics: MetricsCollector, batchNs: HistogramMetric) =
  let s = batchNs.getSummary()
  echo "[nim] metrics: ", s.count, " batches of ", Batch, " strings, p50 ",
       formatFloat(batchNs.getPercentile(50.0) / 1e3, ffDecimal, 1), " us, p99 ",
       formatFloat(batchNs.getPercentile(99.0) / 1e3, ffDecimal, 1), " us, max ",
       formatFloat(s.max.float / 1e3, ffDecimal, 1), " us"
  for line in metrics.exportPrometheus().splitLines:
    if line.startsWith("demo_channel_batch_seconds{quantile="):
      echo "[nim]   ", line

let metrics = initMetricsCollector()
let batchNs = metrics.registerHistogram("demo_channel_batch_seconds",
                                        "Time the consumer took to receive a batch of strings.",
                                        quantiles = [0.5, 0.99], scale = 1e-9)
threadsDemo(batchNs)
asyncDemo()
groupDemo()
deadlineDemo()
metricsDemo(metrics, batchNs)
