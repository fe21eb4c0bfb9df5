## nimsync: lock-free channels that block without polling, for threads and
## asyncdispatch, on the nimsync runtime shared with C and Python.
##
## .. code-block:: nim
##   import nimsync, std/asyncdispatch
##
##   let ch = newChannel[int](1024, MPSC)
##   proc worker(ch: nimsync.Channel[int]) {.thread.} =
##     for i in 1 .. 1000:
##       ch.sendBlocking(i)      # threads: blocking, parks while full
##     ch.close()
##   var t: Thread[nimsync.Channel[int]]
##   createThread(t, worker, ch)
##
##   proc consume(): Future[int] {.async.} =
##     while true:
##       try:
##         result += await ch.recv()   # coroutines: awaitable, no polling
##       except ChannelClosedError:
##         return
##   echo waitFor consume()
##   joinThread(t)
##
## Modules: `nimsync/channels <nimsync/channels.html>`_ (channels),
## `nimsync/select <nimsync/select.html>`_ (select), `nimsync/errors
## <nimsync/errors.html>`_ (the exception hierarchy), `nimsync/cancel
## <nimsync/cancel.html>`_ (cancel scopes, timeouts and deadlines),
## `nimsync/scheduler <nimsync/scheduler.html>`_ (the work-stealing pool and
## its metrics), `nimsync/groups <nimsync/groups.html>`_ (task groups),
## `nimsync/metrics <nimsync/metrics.html>`_ (counters, gauges, histograms,
## Prometheus exposition and a ``/metrics`` endpoint),
## `nimsync/tracing <nimsync/tracing.html>`_ (spans, W3C trace context and
## baggage, OTLP export).

import nimsync/[channels, errors, select]
import nimsync/private/abi
import nimsync/cancel
import nimsync/[scheduler, groups]
import nimsync/metrics
import nimsync/tracing

export channels, errors, select
export cancel
export scheduler, groups
export metrics
export tracing

const libraryAbiVersion* = AbiVersion
  ## The C ABI version this package was written for (checked against the
  ## loaded library when the package is imported).

proc libraryVersion*(): string =
  ## The version of the loaded libnimsync, e.g. ``"0.3.0"``.
  $nimsync_version()
