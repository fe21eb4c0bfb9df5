## Tracing: the guide's snippets with real W3C ids, parent-child links
## through the thread's current span, strict traceparent parsing, baggage and
## tracestate, export to a file of OTLP JSON lines, sampling, spans from
## asyncdispatch coroutines, threads and scheduler tasks, and bad input.

import std/[unittest, asyncdispatch, os, re, strutils]
import nimsync

let traceFile = getTempDir() / ("nimsync-test-tracing-" & $getCurrentProcessId() & ".jsonl")

proc isHex(s: string, n: int): bool =
  s.len == n and s.allCharsInSet({'0'..'9', 'a'..'f'})

proc exported(tracing: TracingContext): string =
  tracing.flush()
  readFile(traceFile)

proc spanInThread(args: (TraceContext, nimsync.Channel[string])) {.thread.} =
  let (cx, results) = args
  withContext(cx):
    let span = startSpan("in thread")
    results.sendBlocking(span.traceId & " " & span.parentSpanId & " " & getBaggage("tenant"))
    endSpan()

proc child(parent: Span, name: string, delayMs: int): Future[Span] {.async.} =
  let span = startSpan(name, parent, skClient)
  await sleepAsync(delayMs)
  span.setAttribute("delay_ms", delayMs)
  endSpan(span)
  return span

proc handler(parent: Span): Future[seq[Span]] {.async.} =
  let a = child(parent, "slow", 20)
  let b = child(parent, "fast", 1)
  return @[await a, await b]

suite "tracing":
  setup:
    removeFile(traceFile)

  teardown:
    removeFile(traceFile)

  test "the guide's snippet produces W3C ids that parse back":
    let tracing = initTracingContext(enabled = true, samplingRate = 1.0, exportPath = traceFile)
    let span = startSpan("operation_name")
    setAttribute("user_id", "12345")
    setBaggage("request_id", "req-123")
    check getBaggage("request_id") == "req-123"
    # ... do work ...
    endSpan()

    let traceparent = createTraceparent(span)
    check traceparent.match(re"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
    let tp = parseTraceparent(traceparent)
    check tp.traceId == span.traceId and tp.parentId == span.spanId and tp.sampled
    check span.traceId.isHex(32) and span.spanId.isHex(16) and span.parentSpanId == ""
    check span.isEnded and not span.isRecording and not hasCurrentSpan()
    # The baggage lived in the span's context and ended with it.
    check getBaggage("request_id", "none") == "none"
    let json = tracing.exported()
    check "\"traceId\":\"" & span.traceId & "\"" in json
    check "\"spanId\":\"" & span.spanId & "\"" in json
    check "\"operation_name\"" in json and "\"user_id\"" in json and "\"12345\"" in json
    check tracing.getStats().exported == 1

  test "the guide's setup forms compile and configure sampling":
    let tracing = initTracingContext(enabled = true, samplingRate = 0.01)
    check tracing.enabled and tracing.samplingRate == 0.01
    let dev = initTracingContext(samplingRate = 1.0)
    check dev.serviceName == "unknown_service"
    let span = startSpan("myOperation")
    check span.isSampled and span.isRecording
    endSpan()
    let off = initTracingContext(enabled = false)
    let quiet = startSpan("quiet")
    check not quiet.isSampled and not quiet.isRecording
    check quiet.traceId.isHex(32)  # ids still propagate
    check createTraceparent(quiet).endsWith("-00")
    endSpan()
    check off.getStats().queued == 0

  test "nested spans: children, current span, restore on end":
    discard initTracingContext(exportPath = traceFile)
    let parent = startSpan("request", skServer)
    let kid = startSpan("query", skClient)
    check kid.traceId == parent.traceId
    check kid.parentSpanId == parent.spanId
    check currentSpan().spanId == kid.spanId
    check createTraceparent() == createTraceparent(kid)
    addEvent("cache miss", {"key": "user:42"})
    recordError("connection reset", "IOError")
    endSpan()
    check currentSpan().spanId == parent.spanId
    let explicitRoot = startRootSpan("background")
    check explicitRoot.traceId != parent.traceId and explicitRoot.parentSpanId == ""
    endSpan(explicitRoot)
    parent.setStatus(ssOk)
    endSpan(parent)
    check not hasCurrentSpan()
    expect ValueError:
      endSpan()
    expect ValueError:
      setAttribute("k", "v")
    let json = initTracingContext().exported()  # replacing the tracer exports its spans
    check "\"parentSpanId\":\"" & parent.spanId & "\"" in json
    check "\"cache miss\"" in json and "\"user:42\"" in json
    check "\"exception\"" in json and "connection reset" in json and "IOError" in json

  test "ending an outer span first keeps the inner one current":
    discard initTracingContext()
    let outer = startSpan("outer")
    let inner = startSpan("inner")
    endSpan(outer)
    check currentSpan().spanId == inner.spanId
    endSpan(inner)
    check not hasCurrentSpan()

  test "withSpan records an escaping exception and ends the span":
    let tracing = initTracingContext(exportPath = traceFile)
    var seen: Span
    expect KeyError:
      withSpan("lookup"):
        seen = span
        span.setAttribute("table", "users")
        raise newException(KeyError, "no such user")
    check seen.isEnded and not hasCurrentSpan()
    let json = tracing.exported()
    check "\"lookup\"" in json and "no such user" in json and "KeyError" in json

  test "strict traceparent parsing":
    let tp = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    check tp.version == 0 and tp.traceId == "0af7651916cd43dd8448eb211c80319c"
    check tp.parentId == "b7ad6b7169203331" and tp.sampled and tp.flags == 1
    check parseTraceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future").version == 0xcc
    for bad in ["", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"]:
      expect TraceparentError:
        discard parseTraceparent(bad)
    try:
      discard parseTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01")
    except TraceparentError as e:
      check "all zeros" in e.msg
    check createTraceparent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", sampled = false) ==
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    expect ValueError:
      discard createTraceparent("0af7", "b7ad6b7169203331")

  test "a remote parent continues the caller's trace":
    discard initTracingContext(samplingRate = 0.0)
    let span = startSpan("handle", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "congo=t61rcWkgMzE")
    check span.traceId == "4bf92f3577b34da6a3ce929d0e0e4736"
    check span.parentSpanId == "00f067aa0ba902b7"
    check span.isSampled  # the caller sampled it; rate 0 applies to new traces only
    check span.tracestate == "congo=t61rcWkgMzE"
    check not hasCurrentSpan()  # explicit parents do not touch the thread's stack
    endSpan(span)
    expect TraceparentError:
      discard startSpan("handle", "not-a-traceparent")

  test "baggage and tracestate headers":
    setBaggage("user", "alice smith")
    check baggageHeader() == "user=alice%20smith"
    check removeBaggage("user") and not removeBaggage("user")
    setBaggageHeader("k1=v%201;p=x, k2=v2")
    check getBaggage("k1") == "v 1" and getBaggage("k2") == "v2"
    expect ValueError:
      setBaggage("bad key", "v")
    expect ValueError:
      setBaggageHeader("k=%zz")
    check normalizeTracestate("rojo=1 ,congo=2") == "rojo=1,congo=2"
    check getTracestate("rojo=1,congo=2", "congo") == "2"
    check getTracestate("rojo=1", "congo", "-") == "-"
    check insertTracestate("rojo=1,congo=2", "congo", "3") == "congo=3,rojo=1"
    expect ValueError:
      discard normalizeTracestate("a=1,a=2")

  test "spans from asyncdispatch coroutines keep their own parents":
    discard initTracingContext()
    let parent = startSpan("handler", skServer)
    let kids = waitFor handler(parent)
    check kids.len == 2
    for k in kids:
      check k.traceId == parent.traceId and k.parentSpanId == parent.spanId and k.isEnded
    check kids[0].spanId != kids[1].spanId
    check currentSpan().spanId == parent.spanId  # the coroutines left the stack alone
    endSpan()

  test "a captured context continues in another thread":
    discard initTracingContext()
    let parent = startSpan("fan out")
    setBaggage("tenant", "acme")
    let results = newChannel[string](4, MPSC)
    var t: Thread[(TraceContext, nimsync.Channel[string])]
    createThread(t, spanInThread, (captureContext(), results))
    let got = results.recvBlocking().split(' ')
    joinThread(t)
    check got == @[parent.traceId, parent.spanId, "acme"]
    endSpan()

  test "scheduler tasks run in the context they were spawned in":
    discard initTracingContext()
    let pool = initScheduler(2)
    let results = newChannel[string](4, MPSC)
    let parent = startSpan("spawner")
    pool.spawn(proc () {.gcsafe.} =
      let span = startSpan("task")
      results.sendBlocking(span.traceId & " " & span.parentSpanId)
      endSpan())
    let got = results.recvBlocking().split(' ')
    check got == @[parent.traceId, parent.spanId]
    endSpan()
    pool.shutdown()

  test "formatSpan describes the span":
    discard initTracingContext()
    let span = startSpan("describe me")
    let text = formatSpan(span)
    check text.startsWith("\"describe me\"")
    check ("traceId=" & span.traceId) in text and ("spanId=" & span.spanId) in text
    check "parentSpanId=none" in text and "sampled=true" in text and "ended=false" in text
    endSpan()
    check "ended=true" in $span

  test "bad input raises ValueError with a clear message":
    expect ValueError:
      discard initTracingContext(samplingRate = 2.0)
    try:
      discard initTracingContext(exportPath = traceFile, collectorUrl = "http://127.0.0.1:4318")
      check false
    except ValueError as e:
      check "choose one" in e.msg
    expect ValueError:
      discard initTracingContext(collectorUrl = "https://collector:4318")
    expect ValueError:
      discard initTracingContext(batchSize = 0)
    discard initTracingContext()
    let span = startSpan("x")
    expect ValueError:
      span.setAttribute("", 1)
    var blank: Span
    expect ValueError:
      blank.setAttribute("k", "v")
    check formatSpan(blank) == "Span(uninitialized)"
    expect ValueError:
      detachContext()
    endSpan()
    initTracingContext().shutdown()
