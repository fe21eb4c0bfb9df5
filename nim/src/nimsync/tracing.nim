## Distributed tracing — the original nimsync ``tracing`` API, on the
## runtime's OpenTelemetry-model tracer: spans with attributes, events and
## errors, parent-child links through the thread's current span, W3C
## ``traceparent``/``tracestate``/``baggage`` headers, sampling, and export in
## OTLP/HTTP JSON to a file or a collector from a background thread.
##
## .. code-block:: nim
##   import nimsync
##
##   let tracing = initTracingContext(enabled = true, samplingRate = 1.0,
##                                    exportPath = "traces.jsonl")
##   let span = startSpan("operation_name")
##   setAttribute("user_id", "12345")
##   setBaggage("request_id", "req-123")
##   # ... do work ...
##   endSpan()
##
##   let traceparent = createTraceparent(span)   # "00-<trace id>-<span id>-01"
##   doAssert parseTraceparent(traceparent).traceId == span.traceId
##   tracing.flush()
##
## **The current span.** Each thread has a stack of current spans:
## `startSpan(name) <#startSpan,string,SpanKind>`_ starts a child of the
## current span (a new trace when there is none) and makes it current;
## `endSpan() <#endSpan>`_ ends the current span and restores the one before.
## `setAttribute`, `addEvent`, `recordError` without a span argument act on
## the current span; each also has a form taking the span. Tasks spawned on
## the scheduler or in a task group while a span is current run in its
## context, so spans they start are its children.
##
## **asyncdispatch.** Coroutines interleave on one thread, so the thread's
## current span is not theirs across an ``await``. In async code give the
## parent explicitly: `startSpan(name, parent) <#startSpan,string,Span,SpanKind>`_
## starts a child without touching the thread's stack, and
## `endSpan(span) <#endSpan,Span>`_ ends it.
##
## **Threads.** `captureContext` takes the current span and baggage as a
## `TraceContext`, a value that can be passed to another thread; there
## `withContext(cx): body` (or `attachContext`/`detachContext`) makes it
## current, so spans started in the body continue the trace.
##
## **Baggage** (`setBaggage`, `getBaggage`) belongs to the thread's current
## context: set while a span started with `startSpan(name)` is current, it
## lasts until that span ends, and spans started meanwhile carry it along
## (`captureContext` includes it). Set with no current span, it stays for
## the thread.
##
## **Sampling and export.** `initTracingContext` installs the process's
## tracer. Unsampled spans still get real ids, so context propagates, but
## record nothing. Ending a span never blocks: sampled spans wait in a
## bounded buffer for the export thread, and a full buffer drops them and
## counts the drop (`getStats`). Until `initTracingContext` is called, no
## span is sampled.
##
## **Errors.** Invalid arguments (a key that is not allowed, a malformed
## header) raise ``ValueError``; `parseTraceparent` raises
## `TraceparentError` (a ``ValueError``) naming what was wrong.

import std/strutils
import private/abi
import errors

type
  SpanKind* = enum
    ## What role a span plays (OpenTelemetry's span kinds).
    skInternal ## an operation inside the application (the default)
    skServer   ## the server side of a synchronous remote call
    skClient   ## the client side of a synchronous remote call
    skProducer ## the sending side of an asynchronous message
    skConsumer ## the receiving side of an asynchronous message

  SpanStatus* = enum
    ## A span's outcome.
    ssUnset ## not set (the default)
    ssOk    ## explicitly successful; final
    ssError ## failed

  Span* = object
    ## One timed operation. A value with reference-counting hooks: copies
    ## share the span, and the last copy to go ends it if `endSpan` was not
    ## called. Thread-safe.
    handle: ptr SpanHandle
    name: string

  TraceContext* = object
    ## A captured context (the current span's identity and the baggage) to
    ## continue in another thread. Copies share it.
    handle: ptr TraceContextHandle

  TracingContext* = object
    ## The settings of the process's tracer, as installed by
    ## `initTracingContext`.
    enabled*: bool         ## whether spans are sampled at all
    samplingRate*: float   ## fraction of new traces that are sampled
    serviceName*: string   ## the ``service.name`` resource attribute
    exportPath*: string    ## file of OTLP JSON lines ("" for none)
    collectorUrl*: string  ## OTLP/HTTP collector ("" for none)

  TracingStats* = object
    ## The exporter's counters.
    queued*: uint64         ## sampled spans accepted for export
    dropped*: uint64        ## spans dropped: buffer full or exporter stopped
    exported*: uint64       ## spans the exporter delivered
    failed*: uint64         ## spans the exporter failed to deliver
    queueCapacity*: int     ## the export buffer's size (0 without exporter)
    lastError*: string      ## the exporter's last error ("" if none)

  TraceParent* = object
    ## A parsed W3C ``traceparent`` header.
    version*: int      ## 0 (higher: parsed by the forward-compatible rule)
    traceId*: string   ## 32 lowercase hex digits
    parentId*: string  ## 16 lowercase hex digits: the caller's span
    flags*: uint8      ## the trace flags as received
    sampled*: bool     ## whether the sampled flag is set

  TraceparentError* = object of ValueError
    ## A ``traceparent`` header that the W3C grammar rejects.

  FrameKind = enum
    fkSpan, fkBaggage, fkAttached

  Frame = object
    kind: FrameKind
    span: Span

var frames {.threadvar.}: seq[Frame]
  ## Mirrors the contexts this module pushed on this thread, in order.

proc `=destroy`*(s: var Span) =
  ## Releases this copy; the last one ends the span if it has not ended.
  if s.handle != nil:
    nimsync_trace_span_free(s.handle)
    s.handle = nil
  `=destroy`(s.name)

proc `=copy`*(dest: var Span, src: Span) =
  ## Shares `src`'s span.
  if dest.handle != src.handle:
    `=destroy`(dest)
    if src.handle != nil:
      discard nimsync_trace_span_clone(src.handle, addr dest.handle)
  dest.name = src.name

proc `=destroy`*(cx: var TraceContext) =
  ## Releases this copy of the captured context.
  if cx.handle != nil:
    nimsync_trace_context_free(cx.handle)
    cx.handle = nil

proc `=copy`*(dest: var TraceContext, src: TraceContext) =
  ## Shares `src`'s captured context.
  if dest.handle == src.handle:
    return
  `=destroy`(dest)
  if src.handle != nil:
    discard nimsync_trace_context_clone(src.handle, addr dest.handle)

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc live(s: Span): ptr SpanHandle {.inline.} =
  if s.handle == nil:
    raise newException(ValueError, "the Span is not initialized: create it with startSpan")
  s.handle

type TextFill = proc (buf: cstring, cap: csize_t, outLen: ptr csize_t): Status {.closure, gcsafe, raises: [].}

proc readText(fill: TextFill): tuple[status: Status, text: string] =
  ## Calls a ``snprintf``-style C function, growing the buffer once if the
  ## text did not fit.
  var text = newString(96)
  var n: csize_t
  # A Nim string keeps room for a terminating NUL after its length.
  var status = fill(cstring(text), csize_t(text.len + 1), addr n)
  if status == StatusOk and int(n) > text.len:
    text = newString(int(n))
    status = fill(cstring(text), csize_t(text.len + 1), addr n)
  if status == StatusOk:
    text.setLen(int(n))
  else:
    text.setLen(0)
  (status, text)

proc text(fill: TextFill): string =
  let (status, t) = readText(fill)
  check status
  t

proc hexOf(a: openArray[char]): string =
  for c in a:
    if c == '\0': break
    result.add c

# --- The tracer ----------------------------------------------------------------

proc initTracingContext*(enabled = true, samplingRate = 1.0, serviceName = "",
                         exportPath = "", collectorUrl = "", batchSize = 512,
                         queueSize = 2048, exportDelayMs = 1000): TracingContext =
  ## Installs the process's tracer and returns its settings.
  ##
  ## `samplingRate` (0.0..1.0) is the fraction of new traces that are
  ## sampled, decided from the trace id so that every service with the same
  ## rate agrees; a span with a parent follows the parent's decision.
  ## `enabled = false` samples nothing (ids still propagate). Sampled spans
  ## are exported as OTLP JSON: appended as lines to `exportPath`, or POSTed
  ## to `collectorUrl` (``http://host[:port][/path]``, path default
  ## ``/v1/traces``), at most `batchSize` per batch, from a buffer of
  ## `queueSize` spans, at the latest `exportDelayMs` after they end. A
  ## tracer installed before is shut down (its spans are exported).
  ## Raises ``ValueError`` for a rate outside 0..1, both destinations, a
  ## file that cannot be opened or a URL that is not ``http://``.
  ##
  ## .. code-block:: nim
  ##   let tracing = initTracingContext(enabled = true, samplingRate = 0.01,
  ##                                    collectorUrl = "http://127.0.0.1:4318",
  ##                                    serviceName = "checkout")
  if batchSize < 1 or queueSize < 1 or exportDelayMs < 0:
    raise newException(ValueError, "batchSize and queueSize must be at least 1, exportDelayMs at least 0")
  var cfg: TraceConfigC
  check nimsync_trace_config_init(addr cfg)
  cfg.sampler = if enabled: TraceSamplerParentBased else: TraceSamplerAlwaysOff
  cfg.samplingRate = samplingRate
  if serviceName.len > 0: cfg.serviceName = cstring(serviceName)
  if exportPath.len > 0: cfg.filePath = cstring(exportPath)
  if collectorUrl.len > 0: cfg.collectorUrl = cstring(collectorUrl)
  cfg.maxBatchSize = csize_t(batchSize)
  cfg.maxQueueSize = csize_t(queueSize)
  cfg.scheduledDelayNs = uint64(exportDelayMs) * 1_000_000'u64
  check nimsync_trace_init(addr cfg)
  TracingContext(enabled: enabled, samplingRate: samplingRate,
                 serviceName: (if serviceName.len > 0: serviceName else: "unknown_service"),
                 exportPath: exportPath, collectorUrl: collectorUrl)

proc flush*(tracing: TracingContext, timeoutMs = 10_000) =
  ## Exports every span ended so far, waiting up to `timeoutMs`; raises
  ## `ChannelTimeoutError` past it.
  check nimsync_trace_flush(uint64(max(timeoutMs, 0)) * 1_000_000'u64)

proc shutdown*(tracing: TracingContext) =
  ## Exports what is buffered and stops the export thread; spans ended later
  ## are dropped (and counted) until `initTracingContext` is called again.
  check nimsync_trace_shutdown()

proc getStats*(tracing: TracingContext): TracingStats =
  ## The exporter's counters.
  var s: TraceStatsC
  check nimsync_trace_get_stats(addr s)
  TracingStats(queued: s.queued, dropped: s.dropped, exported: s.exported, failed: s.failed,
               queueCapacity: int(s.queueCapacity),
               lastError: text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
                 nimsync_trace_last_export_error(b, c, l)))

# --- Spans -----------------------------------------------------------------------

proc wrap(handle: ptr SpanHandle, name: string): Span =
  result.handle = handle
  result.name = name

proc push(s: Span) =
  check nimsync_trace_context_push(s.handle)
  frames.add Frame(kind: fkSpan, span: s)

proc startSpan*(name: string, kind = skInternal): Span =
  ## Starts a span that is a child of the thread's current span (or begins a
  ## new trace) and makes it the current span until `endSpan`.
  ##
  ## .. code-block:: nim
  ##   let span = startSpan("operation_name")
  ##   setAttribute("user_id", "12345")
  ##   endSpan()
  var h: ptr SpanHandle
  check nimsync_trace_span_start(cstring(name), uint32(ord(kind)), addr h)
  result = wrap(h, name)
  push(result)

proc startSpan*(name: string, parent: Span, kind = skInternal, current = false): Span =
  ## Starts a child of `parent` (which may have ended). It becomes the
  ## thread's current span only if `current` is true: this is the form for
  ## asyncdispatch code, where the thread's current span belongs to whichever
  ## coroutine ran last.
  ##
  ## .. code-block:: nim
  ##   proc fetch(parent: Span): Future[void] {.async.} =
  ##     let span = startSpan("fetch", parent, skClient)
  ##     await sleepAsync(1)
  ##     endSpan(span)
  var h: ptr SpanHandle
  check nimsync_trace_span_start_child(parent.live, cstring(name), uint32(ord(kind)), addr h)
  result = wrap(h, name)
  if current:
    push(result)

proc startSpan*(name: string, traceparent: string, tracestate = "", kind = skServer,
                current = false): Span =
  ## Starts a span continuing a remote trace: its parent is the caller's span
  ## given by a received `traceparent` header (and `tracestate`, ignored if
  ## invalid, as the W3C specification requires). Raises `TraceparentError`
  ## for an invalid `traceparent`. Current only if `current` is true.
  var h: ptr SpanHandle
  let status = nimsync_trace_span_start_remote(cstring(name), uint32(ord(kind)), cstring(traceparent),
                                               cstring(tracestate), addr h)
  if status == StatusInvalidArgument and "traceparent" in lastMessage():
    raise newException(TraceparentError, lastMessage())
  check status
  result = wrap(h, name)
  if current:
    push(result)

proc startRootSpan*(name: string, kind = skInternal): Span =
  ## Starts a span that begins a new trace whatever the current span, and
  ## makes it current until `endSpan`.
  var h: ptr SpanHandle
  check nimsync_trace_span_start_root(cstring(name), uint32(ord(kind)), addr h)
  result = wrap(h, name)
  push(result)

proc isEnded*(span: Span): bool =
  ## Whether `endSpan` was called on the span.
  nimsync_trace_span_is_ended(span.handle)

proc isRecording*(span: Span): bool =
  ## Whether the span records what is set on it: sampled and not ended.
  nimsync_trace_span_is_recording(span.handle)

proc popEnded() =
  ## Pops ended spans off the top of the thread's stack.
  while frames.len > 0 and frames[^1].kind == fkSpan and frames[^1].span.isEnded:
    check nimsync_trace_context_pop()
    frames.setLen(frames.len - 1)

proc currentSpan*(): Span =
  ## The thread's current span: the last one started with `startSpan(name)`
  ## (or made current) on this thread and not ended. Raises ``ValueError``
  ## when there is none.
  for i in countdown(frames.high, 0):
    if frames[i].kind == fkSpan and not frames[i].span.isEnded:
      return frames[i].span
  raise newException(ValueError, "no current span on this thread: start one with startSpan")

proc hasCurrentSpan*(): bool =
  ## Whether this thread has a current span (see `currentSpan`).
  for i in countdown(frames.high, 0):
    if frames[i].kind == fkSpan and not frames[i].span.isEnded:
      return true

proc endSpan*(span: Span) =
  ## Ends `span` now and hands it to the exporter without blocking. If it was
  ## the thread's current span, the span current before it is restored.
  ## Ending twice is harmless.
  check nimsync_trace_span_end(span.live)
  popEnded()

proc endSpan*() =
  ## Ends the thread's current span (see `currentSpan`) and restores the one
  ## before it. Raises ``ValueError`` when there is none.
  endSpan(currentSpan())

template withSpan*(spanName: string, body: untyped) =
  ## Runs `body` inside a new current span named `spanName` (bound to
  ## `span` in the body), records an exception escaping it, and ends the
  ## span.
  ##
  ## .. code-block:: nim
  ##   withSpan("load config"):
  ##     span.setAttribute("path", "/etc/app.conf")
  block:
    let span {.inject.} = startSpan(spanName)
    try:
      body
    except CatchableError as e:
      recordError(span, e)
      raise
    finally:
      endSpan(span)

proc name*(span: Span): string =
  ## The name the span was started with.
  span.name

proc spanContext(span: Span): SpanContextC =
  check nimsync_trace_span_context(span.live, addr result)

proc traceId*(span: Span): string =
  ## The span's trace id: 32 lowercase hex digits.
  hexOf(span.spanContext.traceId)

proc spanId*(span: Span): string =
  ## The span's id: 16 lowercase hex digits.
  hexOf(span.spanContext.spanId)

proc parentSpanId*(span: Span): string =
  ## The parent's span id, or "" for a root span.
  hexOf(span.spanContext.parentSpanId)

proc isSampled*(span: Span): bool =
  ## Whether the span is sampled (recorded and exported).
  span.spanContext.sampled

proc setAttribute*(span: Span, key, value: string) =
  ## Sets a string attribute (replacing one with the same key). No effect
  ## on a span that is not recording. Raises ``ValueError`` for an empty key.
  check nimsync_trace_span_set_string(span.live, cstring(key), cstring(value))

proc setAttribute*(span: Span, key: string, value: int64) =
  ## Sets an integer attribute.
  check nimsync_trace_span_set_int(span.live, cstring(key), value)

proc setAttribute*(span: Span, key: string, value: int) =
  ## Sets an integer attribute.
  check nimsync_trace_span_set_int(span.live, cstring(key), int64(value))

proc setAttribute*(span: Span, key: string, value: float) =
  ## Sets a floating-point attribute.
  check nimsync_trace_span_set_double(span.live, cstring(key), cdouble(value))

proc setAttribute*(span: Span, key: string, value: bool) =
  ## Sets a boolean attribute.
  check nimsync_trace_span_set_bool(span.live, cstring(key), value)

proc setAttribute*(key, value: string) =
  ## Sets a string attribute on the current span.
  setAttribute(currentSpan(), key, value)

proc setAttribute*(key: string, value: int64) =
  ## Sets an integer attribute on the current span.
  setAttribute(currentSpan(), key, value)

proc setAttribute*(key: string, value: int) =
  ## Sets an integer attribute on the current span.
  setAttribute(currentSpan(), key, value)

proc setAttribute*(key: string, value: float) =
  ## Sets a floating-point attribute on the current span.
  setAttribute(currentSpan(), key, value)

proc setAttribute*(key: string, value: bool) =
  ## Sets a boolean attribute on the current span.
  setAttribute(currentSpan(), key, value)

proc addEvent*(span: Span, name: string, attributes: openArray[(string, string)] = []) =
  ## Adds an event stamped now, with string attributes.
  ##
  ## .. code-block:: nim
  ##   span.addEvent("cache miss", {"key": "user:42"})
  var attrs = newSeq[TraceAttributeC](attributes.len)
  for i, (k, v) in attributes:
    attrs[i] = TraceAttributeC(key: cstring(k), valueType: TraceAttrString, stringValue: cstring(v))
  let p = if attrs.len > 0: addr attrs[0] else: nil
  check nimsync_trace_span_add_event(span.live, cstring(name), p, csize_t(attrs.len))

proc addEvent*(name: string, attributes: openArray[(string, string)] = []) =
  ## Adds an event to the current span.
  addEvent(currentSpan(), name, attributes)

proc recordError*(span: Span, message: string, errorType = "Error") =
  ## Records an error: an ``exception`` event with ``exception.type`` and
  ## ``exception.message``, and the status error (unless already ok).
  check nimsync_trace_span_record_error(span.live, cstring(errorType), cstring(message))

proc recordError*(span: Span, error: ref Exception) =
  ## Records a Nim exception (its type name and message) on `span`.
  recordError(span, error.msg, $error.name)

proc recordError*(message: string, errorType = "Error") =
  ## Records an error on the current span.
  recordError(currentSpan(), message, errorType)

proc recordError*(error: ref Exception) =
  ## Records a Nim exception on the current span.
  recordError(currentSpan(), error)

proc setStatus*(span: Span, status: SpanStatus, description = "") =
  ## Sets the span's status; `ssOk` is final, `ssUnset` is ignored.
  check nimsync_trace_span_set_status(span.live, uint32(ord(status)), cstring(description))

proc formatSpan*(span: Span): string =
  ## A one-line description of the span, for logs and debugging:
  ## ``"name" traceId=… spanId=… parentSpanId=… sampled=… ended=…``.
  if span.handle == nil:
    return "Span(uninitialized)"
  let cx = span.spanContext
  let parent = hexOf(cx.parentSpanId)
  result = escape(span.name) & " traceId=" & hexOf(cx.traceId) & " spanId=" & hexOf(cx.spanId) &
    " parentSpanId=" & (if parent.len > 0: parent else: "none") & " sampled=" & $cx.sampled &
    " ended=" & $span.isEnded

proc `$`*(span: Span): string =
  ## Same as `formatSpan`.
  formatSpan(span)

# --- W3C headers -------------------------------------------------------------------

proc createTraceparent*(span: Span): string =
  ## The ``traceparent`` header that makes `span` the parent of a downstream
  ## call: ``00-<trace id>-<span id>-<flags>``. Works after the span ended.
  let h = span.live
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status = nimsync_trace_span_traceparent(h, b, c, l))

proc createTraceparent*(): string =
  ## The ``traceparent`` of the thread's current context (including one
  ## attached from another thread). Raises ``ValueError`` when there is none.
  let (status, t) = readText(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_current_traceparent(b, c, l))
  if status == StatusEmpty:
    raise newException(ValueError, "no current span on this thread")
  check status
  t

proc createTraceparent*(traceId, parentId: string, sampled = true): string =
  ## A ``traceparent`` from its parts. Raises ``ValueError`` for ids that
  ## are not 32 and 16 lowercase hex digits, or all zeros.
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_traceparent_format(cstring(traceId), cstring(parentId), uint8(ord(sampled)), b, c, l))

proc parseTraceparent*(header: string): TraceParent =
  ## Parses a ``traceparent`` header strictly, as the W3C Trace Context
  ## specification (level 1) requires: wrong lengths, uppercase or non-hex
  ## digits, version ``ff``, and all-zero ids raise `TraceparentError`
  ## naming the fault; a future version is read by the forward-compatible
  ## rule.
  ##
  ## .. code-block:: nim
  ##   let tp = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
  ##   doAssert tp.sampled and tp.parentId == "b7ad6b7169203331"
  var c: TraceParentC
  let status = nimsync_trace_traceparent_parse(cstring(header), addr c)
  if status == StatusInvalidArgument:
    raise newException(TraceparentError, lastMessage())
  check status
  TraceParent(version: int(c.version), traceId: hexOf(c.traceId), parentId: hexOf(c.parentId),
              flags: c.flags, sampled: c.sampled)

proc tracestate*(span: Span): string =
  ## The span's ``tracestate`` header ("" when empty: send none).
  let h = span.live
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status = nimsync_trace_span_tracestate(h, b, c, l))

proc normalizeTracestate*(header: string): string =
  ## Validates a ``tracestate`` header and returns it normalised. Raises
  ## ``ValueError`` for a key or value outside the grammar, a duplicated key
  ## or more than 32 members.
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_tracestate_normalize(cstring(header), b, c, l))

proc getTracestate*(header, key: string, default = ""): string =
  ## The value of `key` in a ``tracestate`` header, or `default`.
  let (status, t) = readText(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_tracestate_get(cstring(header), cstring(key), b, c, l))
  if status == StatusEmpty:
    return default
  check status
  t

proc insertTracestate*(header, key, value: string): string =
  ## `header` with `key` set to `value` and moved to the front (the W3C
  ## update rule).
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_tracestate_insert(cstring(header), cstring(key), cstring(value), b, c, l))

# --- Baggage -------------------------------------------------------------------

proc setBaggage*(key, value: string) =
  ## Sets baggage `key` to `value` in the thread's current context (see the
  ## module docs for how long it lasts). `key` must be an HTTP token
  ## (``ValueError`` otherwise); the value may be any text.
  ##
  ## .. code-block:: nim
  ##   setBaggage("request_id", "req-123")
  ##   doAssert getBaggage("request_id") == "req-123"
  let before = frames.len
  check nimsync_trace_baggage_set(cstring(key), cstring(value))
  var depth: csize_t
  check nimsync_trace_context_depth(addr depth)
  if int(depth) > before:
    frames.add Frame(kind: fkBaggage)

proc getBaggage*(key: string, default = ""): string =
  ## The value of baggage `key` in the thread's current context, or
  ## `default`.
  let (status, t) = readText(proc (b: cstring, c: csize_t, l: ptr csize_t): Status =
    nimsync_trace_baggage_get(cstring(key), b, c, l))
  if status == StatusEmpty:
    return default
  check status
  t

proc removeBaggage*(key: string): bool =
  ## Removes baggage `key` from the thread's current context; whether it
  ## was there.
  check nimsync_trace_baggage_remove(cstring(key), addr result)

proc baggageHeader*(): string =
  ## The W3C ``baggage`` header of the thread's current context ("" when
  ## there is no baggage).
  text(proc (b: cstring, c: csize_t, l: ptr csize_t): Status = nimsync_trace_baggage_header(b, c, l))

proc setBaggageHeader*(header: string) =
  ## Replaces the current context's baggage with a received ``baggage``
  ## header. Raises ``ValueError`` for a header outside the grammar.
  let before = frames.len
  check nimsync_trace_baggage_set_header(cstring(header))
  var depth: csize_t
  check nimsync_trace_context_depth(addr depth)
  if int(depth) > before:
    frames.add Frame(kind: fkBaggage)

# --- Contexts across threads ------------------------------------------------------

proc captureContext*(): TraceContext =
  ## The thread's current context (span identity and baggage), to continue
  ## in another thread with `withContext` or `attachContext`.
  check nimsync_trace_context_capture(addr result.handle)

proc attachContext*(cx: TraceContext) =
  ## Makes a captured context current on this thread until `detachContext`.
  if cx.handle == nil:
    raise newException(ValueError, "the TraceContext is not initialized: create it with captureContext")
  check nimsync_trace_context_attach(cx.handle)
  frames.add Frame(kind: fkAttached)

proc detachContext*() =
  ## Ends the last `attachContext` on this thread (and anything made
  ## current after it). Raises ``ValueError`` when nothing is attached.
  var i = frames.high
  while i >= 0 and frames[i].kind != fkAttached:
    dec i
  if i < 0:
    raise newException(ValueError, "no attached context on this thread")
  while frames.len > i:
    check nimsync_trace_context_pop()
    frames.setLen(frames.len - 1)
  popEnded()

template withContext*(cx: TraceContext, body: untyped) =
  ## Runs `body` with a captured context current on this thread.
  ##
  ## .. code-block:: nim
  ##   proc worker(cx: TraceContext) {.thread.} =
  ##     withContext(cx):
  ##       let span = startSpan("in thread")   # continues the captured trace
  ##       endSpan(span)
  attachContext(cx)
  try:
    body
  finally:
    detachContext()
