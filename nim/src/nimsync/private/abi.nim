## Low-level bindings to the nimsync C ABI (``include/nimsync.h``).
##
## Every ``importc`` of the package lives here; the idiomatic modules build on
## these and never expose raw pointers. Link against ``libnimsync.so`` (the
## default: pass ``--passL:-L<dir>`` if it is not on the linker's path) or,
## with ``-d:nimsyncStatic``, against ``libnimsync.a``.

when defined(nimsyncStatic):
  {.passL: "-l:libnimsync.a -lpthread -ldl -lm".}
else:
  {.passL: "-lnimsync".}

type
  Status* = cint
    ## A ``nimsync_status`` value.
  ChannelHandle* = object
    ## The opaque ``nimsync_channel``.
  LoopWakerHandle* = object
    ## The opaque ``nimsync_loop_waker``.
  AsyncOpHandle* = object
    ## The opaque ``nimsync_async_op``.
  CancelTokenHandle* = object
    ## The opaque ``nimsync_cancel_token``.
  CancelCallbackHandle* = object
    ## The opaque ``nimsync_cancel_callback``.
  DropFn* = proc (item: uint, ctx: pointer) {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_drop_fn``.
  CancelFn* = proc (ctx: pointer, reason: uint32) {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_cancel_fn``.
  SelectCase* {.bycopy.} = object
    ## ``nimsync_select_case``.
    channel*: ptr ChannelHandle
    op*: uint32
    item*: uint

const
  AbiVersion* = 1'u32 ## ``NIMSYNC_ABI_VERSION`` of the header this module follows.
  WaitForever* = high(uint64) ## ``NIMSYNC_WAIT_FOREVER``.

  StatusOk* = Status(0)
  StatusNullArgument* = Status(1)
  StatusInvalidArgument* = Status(2)
  StatusFull* = Status(3)
  StatusEmpty* = Status(4)
  StatusClosed* = Status(5)
  StatusTimeout* = Status(6)
  StatusCancelled* = Status(7)
  StatusInterrupted* = Status(8)
  StatusBusy* = Status(9)
  StatusOutOfMemory* = Status(10)
  StatusPanic* = Status(11)
  StatusPending* = Status(12)
  StatusSystem* = Status(13)

  ModeSpsc* = 0'u32
  ModeMpsc* = 1'u32
  ModeSpmc* = 2'u32
  ModeMpmc* = 3'u32

  SelectRecv* = 0'u32
  SelectSend* = 1'u32

  CancelReasonNone* = 0'u32 ## ``NIMSYNC_CANCEL_REASON_NONE``.
  CancelReasonRequested* = 1'u32 ## ``NIMSYNC_CANCEL_REASON_REQUESTED``.
  CancelReasonDeadlineExceeded* = 2'u32 ## ``NIMSYNC_CANCEL_REASON_DEADLINE_EXCEEDED``.

{.push cdecl, importc, raises: [], gcsafe.}

proc nimsync_version*(): cstring
proc nimsync_abi_version*(): uint32
proc nimsync_status_str*(status: cint): cstring
proc nimsync_last_error_message*(): cstring

proc nimsync_channel_new*(capacity: csize_t, mode: uint32, dropFn: DropFn, dropCtx: pointer,
                          outChannel: ptr ptr ChannelHandle): Status
proc nimsync_channel_new_unbounded*(dropFn: DropFn, dropCtx: pointer,
                                    outChannel: ptr ptr ChannelHandle): Status
proc nimsync_channel_clone*(channel: ptr ChannelHandle, outChannel: ptr ptr ChannelHandle): Status
proc nimsync_channel_free*(channel: ptr ChannelHandle)
proc nimsync_channel_try_send*(channel: ptr ChannelHandle, item: uint): Status
proc nimsync_channel_send*(channel: ptr ChannelHandle, item: uint): Status
proc nimsync_channel_send_timeout*(channel: ptr ChannelHandle, item: uint, timeoutNs: uint64): Status
proc nimsync_channel_try_recv*(channel: ptr ChannelHandle, outItem: ptr uint): Status
proc nimsync_channel_recv*(channel: ptr ChannelHandle, outItem: ptr uint): Status
proc nimsync_channel_recv_timeout*(channel: ptr ChannelHandle, outItem: ptr uint, timeoutNs: uint64): Status
proc nimsync_channel_send_with*(channel: ptr ChannelHandle, item: uint, timeoutNs: uint64,
                                token: ptr CancelTokenHandle): Status
proc nimsync_channel_recv_with*(channel: ptr ChannelHandle, outItem: ptr uint, timeoutNs: uint64,
                                token: ptr CancelTokenHandle): Status
proc nimsync_channel_close*(channel: ptr ChannelHandle): Status
proc nimsync_channel_len*(channel: ptr ChannelHandle, outLen: ptr csize_t): Status
proc nimsync_channel_capacity*(channel: ptr ChannelHandle, outCapacity: ptr csize_t): Status
proc nimsync_channel_is_empty*(channel: ptr ChannelHandle, outEmpty: ptr bool): Status
proc nimsync_channel_is_full*(channel: ptr ChannelHandle, outFull: ptr bool): Status
proc nimsync_channel_is_closed*(channel: ptr ChannelHandle, outClosed: ptr bool): Status
proc nimsync_channel_get_mode*(channel: ptr ChannelHandle, outMode: ptr uint32): Status

proc nimsync_select*(cases: ptr SelectCase, nCases: csize_t, timeoutNs: uint64,
                     outIndex: ptr csize_t, outItem: ptr uint): Status
proc nimsync_select_with*(cases: ptr SelectCase, nCases: csize_t, timeoutNs: uint64,
                          token: ptr CancelTokenHandle, outIndex: ptr csize_t, outItem: ptr uint): Status

proc nimsync_cancel_token_new*(outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_cancel_token_child*(parent: ptr CancelTokenHandle, outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_cancel_token_shielded*(parent: ptr CancelTokenHandle, outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_cancel_token_with_timeout*(parent: ptr CancelTokenHandle, timeoutNs: uint64,
                                        outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_cancel_token_clone*(token: ptr CancelTokenHandle, outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_cancel_token_free*(token: ptr CancelTokenHandle)
proc nimsync_cancel_token_cancel*(token: ptr CancelTokenHandle, message: cstring, outWasFirst: ptr bool): Status
proc nimsync_cancel_token_is_cancelled*(token: ptr CancelTokenHandle): bool
proc nimsync_cancel_token_check*(token: ptr CancelTokenHandle): Status
proc nimsync_cancel_token_reason*(token: ptr CancelTokenHandle, outReason: ptr uint32): Status
proc nimsync_cancel_token_message*(token: ptr CancelTokenHandle, buffer: cstring, capacity: csize_t,
                                   outLen: ptr csize_t): Status
proc nimsync_cancel_token_on_cancel*(token: ptr CancelTokenHandle, callback: CancelFn, ctx: pointer,
                                     outGuard: ptr ptr CancelCallbackHandle): Status
proc nimsync_cancel_callback_free*(guard: ptr CancelCallbackHandle)

proc nimsync_loop_waker_new*(outWaker: ptr ptr LoopWakerHandle): Status
proc nimsync_loop_waker_fd*(waker: ptr LoopWakerHandle, outFd: ptr cint): Status
proc nimsync_loop_waker_drain*(waker: ptr LoopWakerHandle, tokens: ptr uint64, capacity: csize_t,
                               outCount: ptr csize_t): Status
proc nimsync_loop_waker_free*(waker: ptr LoopWakerHandle)
proc nimsync_async_op_new*(waker: ptr LoopWakerHandle, token: uint64, outOp: ptr ptr AsyncOpHandle): Status
proc nimsync_async_op_cancel*(op: ptr AsyncOpHandle, outUnsent: ptr bool): Status
proc nimsync_async_op_free*(op: ptr AsyncOpHandle)
proc nimsync_channel_poll_recv*(channel: ptr ChannelHandle, op: ptr AsyncOpHandle, outItem: ptr uint): Status
proc nimsync_channel_poll_send*(channel: ptr ChannelHandle, op: ptr AsyncOpHandle, item: uint): Status

{.pop.}

proc checkAbi() =
  let loaded = nimsync_abi_version()
  if loaded != AbiVersion:
    raise newException(LibraryError,
      "libnimsync has ABI version " & $loaded & ", this nimsync package needs " & $AbiVersion &
      ": rebuild or reinstall the library and the package together")

checkAbi()

# --- Scheduler and task groups -------------------------------------------------
# ``nimsync_scheduler_*``, ``nimsync_task_group_*`` and ``nimsync_group_report_*``
# (used by ``nimsync/scheduler`` and ``nimsync/groups``).

type
  SchedulerHandle* = object
    ## The opaque ``nimsync_scheduler``.
  TaskGroupHandle* = object
    ## The opaque ``nimsync_task_group``.
  GroupReportHandle* = object
    ## The opaque ``nimsync_group_report``.
  TaskFn* = proc (arg: pointer) {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_task_fn``.
  TaskDropFn* = proc (arg: pointer) {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_task_drop_fn``.
  GroupTaskFn* = proc (arg: pointer, token: ptr CancelTokenHandle): cint {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_group_task_fn``.
  WorkerMetricsC* {.bycopy.} = object
    ## ``nimsync_worker_metrics``.
    spawned*, executed*, stolenBy*, stolenFrom*, queueDepth*, parks*, panics*: uint64
  SchedulerMetricsC* {.bycopy.} = object
    ## ``nimsync_scheduler_metrics``.
    workers*, injected*, spawned*, executed*, stolen*, injectorDepth*: uint64
    loadImbalance*: float64
  TaskErrorC* {.bycopy.} = object
    ## ``nimsync_task_error``.
    task*: csize_t
    status*: cint
    panicked*: bool
    message*: cstring
  GroupSummaryC* {.bycopy.} = object
    ## ``nimsync_group_summary``.
    errors*, skipped*: csize_t
    cancelReason*: uint32
    cancelMessage*: cstring
    interrupted*: bool

const
  StatusTaskFailed* = Status(14) ## ``NIMSYNC_STATUS_TASK_FAILED``.

{.push cdecl, importc, raises: [], gcsafe.}

proc nimsync_scheduler_new*(workers: csize_t, outScheduler: ptr ptr SchedulerHandle): Status
proc nimsync_scheduler_global*(outScheduler: ptr ptr SchedulerHandle): Status
proc nimsync_scheduler_clone*(scheduler: ptr SchedulerHandle, outScheduler: ptr ptr SchedulerHandle): Status
proc nimsync_scheduler_workers*(scheduler: ptr SchedulerHandle, outWorkers: ptr csize_t): Status
proc nimsync_scheduler_spawn*(scheduler: ptr SchedulerHandle, taskFn: TaskFn, taskArg: pointer,
                              dropFn: TaskDropFn): Status
proc nimsync_scheduler_get_metrics*(scheduler: ptr SchedulerHandle, outMetrics: ptr SchedulerMetricsC,
                                    workers: ptr WorkerMetricsC, capacity: csize_t): Status
proc nimsync_scheduler_shutdown*(scheduler: ptr SchedulerHandle): Status
proc nimsync_scheduler_free*(scheduler: ptr SchedulerHandle)

proc nimsync_task_group_new*(scheduler: ptr SchedulerHandle, parent: ptr CancelTokenHandle, limit: csize_t,
                             timeoutNs: uint64, outGroup: ptr ptr TaskGroupHandle): Status
proc nimsync_task_group_spawn*(group: ptr TaskGroupHandle, taskFn: GroupTaskFn, taskArg: pointer,
                               dropFn: TaskDropFn, outIndex: ptr csize_t): Status
proc nimsync_task_group_join*(group: ptr TaskGroupHandle, outReport: ptr ptr GroupReportHandle): Status
proc nimsync_task_group_join_with*(group: ptr TaskGroupHandle, timeoutNs: uint64, cancel: ptr CancelTokenHandle,
                                   outReport: ptr ptr GroupReportHandle): Status
proc nimsync_task_group_try_join*(group: ptr TaskGroupHandle, outReport: ptr ptr GroupReportHandle): Status
proc nimsync_task_group_poll_join*(group: ptr TaskGroupHandle, waker: ptr LoopWakerHandle, token: uint64,
                                   outReport: ptr ptr GroupReportHandle): Status
proc nimsync_task_group_cancel*(group: ptr TaskGroupHandle, message: cstring): Status
proc nimsync_task_group_token*(group: ptr TaskGroupHandle, outToken: ptr ptr CancelTokenHandle): Status
proc nimsync_task_group_free*(group: ptr TaskGroupHandle)
proc nimsync_group_report_summary*(report: ptr GroupReportHandle, outSummary: ptr GroupSummaryC): Status
proc nimsync_group_report_error*(report: ptr GroupReportHandle, index: csize_t, outError: ptr TaskErrorC): Status
proc nimsync_group_report_free*(report: ptr GroupReportHandle)

{.pop.}

# --- Metrics -------------------------------------------------------------------
# ``nimsync_metrics_*`` (used by ``nimsync/metrics``).

type
  MetricsCollectorHandle* = object
    ## The opaque ``nimsync_metrics_collector``.
  MetricsCounterHandle* = object
    ## The opaque ``nimsync_metrics_counter``.
  MetricsGaugeHandle* = object
    ## The opaque ``nimsync_metrics_gauge``.
  MetricsHistogramHandle* = object
    ## The opaque ``nimsync_metrics_histogram``.
  MetricsServerHandle* = object
    ## The opaque ``nimsync_metrics_server``.
  MetricsHistogramOptsC* {.bycopy.} = object
    ## ``nimsync_metrics_histogram_opts``.
    buckets*: ptr float64
    bucketCount*: csize_t
    quantiles*: ptr float64
    quantileCount*: csize_t
    scale*: float64
  MetricsSummaryC* {.bycopy.} = object
    ## ``nimsync_metrics_summary``.
    count*: uint64
    sum*: float64
    min*, max*: uint64
    mean*: float64
    p50*, p90*, p95*, p99*, p999*: uint64

{.push cdecl, importc, raises: [], gcsafe.}

proc nimsync_metrics_collector_new*(enabled: bool, samplingRate: float64,
                                    outCollector: ptr ptr MetricsCollectorHandle): Status
proc nimsync_metrics_collector_clone*(collector: ptr MetricsCollectorHandle,
                                      outCollector: ptr ptr MetricsCollectorHandle): Status
proc nimsync_metrics_collector_free*(collector: ptr MetricsCollectorHandle)
proc nimsync_metrics_collector_set_enabled*(collector: ptr MetricsCollectorHandle, enabled: bool): Status
proc nimsync_metrics_collector_set_sampling_rate*(collector: ptr MetricsCollectorHandle,
                                                  samplingRate: float64): Status
proc nimsync_metrics_collector_settings*(collector: ptr MetricsCollectorHandle, outEnabled: ptr bool,
                                         outSamplingRate: ptr float64): Status
proc nimsync_metrics_collector_prometheus*(collector: ptr MetricsCollectorHandle, buffer: cstring,
                                           capacity: csize_t, outLen: ptr csize_t): Status
proc nimsync_metrics_collector_prometheus_family*(collector: ptr MetricsCollectorHandle, name: cstring,
                                                  buffer: cstring, capacity: csize_t,
                                                  outLen: ptr csize_t): Status
proc nimsync_metrics_unregister*(collector: ptr MetricsCollectorHandle, name: cstring,
                                 outFound: ptr bool): Status
proc nimsync_metrics_register_counter*(collector: ptr MetricsCollectorHandle, name, help: cstring,
                                       labelNames: ptr cstring, labelCount: csize_t,
                                       outCounter: ptr ptr MetricsCounterHandle): Status
proc nimsync_metrics_register_gauge*(collector: ptr MetricsCollectorHandle, name, help: cstring,
                                     labelNames: ptr cstring, labelCount: csize_t,
                                     outGauge: ptr ptr MetricsGaugeHandle): Status
proc nimsync_metrics_register_histogram*(collector: ptr MetricsCollectorHandle, name, help: cstring,
                                         labelNames: ptr cstring, labelCount: csize_t,
                                         opts: ptr MetricsHistogramOptsC,
                                         outHistogram: ptr ptr MetricsHistogramHandle): Status
proc nimsync_metrics_find_histogram*(collector: ptr MetricsCollectorHandle, name: cstring,
                                     outHistogram: ptr ptr MetricsHistogramHandle): Status
proc nimsync_metrics_counter_clone*(counter: ptr MetricsCounterHandle,
                                    outCounter: ptr ptr MetricsCounterHandle): Status
proc nimsync_metrics_gauge_clone*(gauge: ptr MetricsGaugeHandle, outGauge: ptr ptr MetricsGaugeHandle): Status
proc nimsync_metrics_histogram_clone*(histogram: ptr MetricsHistogramHandle,
                                      outHistogram: ptr ptr MetricsHistogramHandle): Status
proc nimsync_metrics_counter_labels*(counter: ptr MetricsCounterHandle, labelValues: ptr cstring,
                                     labelCount: csize_t, outCounter: ptr ptr MetricsCounterHandle): Status
proc nimsync_metrics_gauge_labels*(gauge: ptr MetricsGaugeHandle, labelValues: ptr cstring,
                                   labelCount: csize_t, outGauge: ptr ptr MetricsGaugeHandle): Status
proc nimsync_metrics_histogram_labels*(histogram: ptr MetricsHistogramHandle, labelValues: ptr cstring,
                                       labelCount: csize_t,
                                       outHistogram: ptr ptr MetricsHistogramHandle): Status
proc nimsync_metrics_counter_free*(counter: ptr MetricsCounterHandle)
proc nimsync_metrics_gauge_free*(gauge: ptr MetricsGaugeHandle)
proc nimsync_metrics_histogram_free*(histogram: ptr MetricsHistogramHandle)
proc nimsync_metrics_counter_inc*(counter: ptr MetricsCounterHandle, labelValues: ptr cstring,
                                  labelCount: csize_t): Status
proc nimsync_metrics_counter_add*(counter: ptr MetricsCounterHandle, labelValues: ptr cstring,
                                  labelCount: csize_t, n: uint64): Status
proc nimsync_metrics_counter_get*(counter: ptr MetricsCounterHandle, labelValues: ptr cstring,
                                  labelCount: csize_t, outValue: ptr uint64): Status
proc nimsync_metrics_gauge_set*(gauge: ptr MetricsGaugeHandle, labelValues: ptr cstring,
                                labelCount: csize_t, value: float64): Status
proc nimsync_metrics_gauge_add*(gauge: ptr MetricsGaugeHandle, labelValues: ptr cstring,
                                labelCount: csize_t, delta: float64): Status
proc nimsync_metrics_gauge_get*(gauge: ptr MetricsGaugeHandle, labelValues: ptr cstring,
                                labelCount: csize_t, outValue: ptr float64): Status
proc nimsync_metrics_histogram_record*(histogram: ptr MetricsHistogramHandle, labelValues: ptr cstring,
                                       labelCount: csize_t, value: uint64): Status
proc nimsync_metrics_histogram_percentile*(histogram: ptr MetricsHistogramHandle, labelValues: ptr cstring,
                                           labelCount: csize_t, percentile: float64,
                                           outValue: ptr uint64): Status
proc nimsync_metrics_histogram_summary*(histogram: ptr MetricsHistogramHandle, labelValues: ptr cstring,
                                        labelCount: csize_t, outSummary: ptr MetricsSummaryC): Status
proc nimsync_metrics_register_scheduler*(collector: ptr MetricsCollectorHandle, name: cstring,
                                         scheduler: ptr SchedulerHandle): Status
proc nimsync_metrics_register_channel*(collector: ptr MetricsCollectorHandle, name: cstring,
                                       channel: ptr ChannelHandle): Status
proc nimsync_metrics_register_group*(collector: ptr MetricsCollectorHandle, name: cstring,
                                     group: ptr TaskGroupHandle): Status
proc nimsync_metrics_unregister_runtime*(collector: ptr MetricsCollectorHandle, name: cstring,
                                         outFound: ptr bool): Status
proc nimsync_metrics_serve*(collector: ptr MetricsCollectorHandle, address: cstring,
                            outServer: ptr ptr MetricsServerHandle): Status
proc nimsync_metrics_server_port*(server: ptr MetricsServerHandle, outPort: ptr uint16): Status
proc nimsync_metrics_server_address*(server: ptr MetricsServerHandle, buffer: cstring, capacity: csize_t,
                                     outLen: ptr csize_t): Status
proc nimsync_metrics_server_stop*(server: ptr MetricsServerHandle): Status
proc nimsync_metrics_server_free*(server: ptr MetricsServerHandle)

{.pop.}

# --- Tracing -------------------------------------------------------------------
# ``nimsync_trace_*`` (used by ``nimsync/tracing``).

type
  SpanHandle* = object
    ## The opaque ``nimsync_span``.
  TraceContextHandle* = object
    ## The opaque ``nimsync_trace_context``.
  TraceConfigC* {.bycopy.} = object
    ## ``nimsync_trace_config``.
    sampler*: uint32
    samplingRate*: cdouble
    filePath*, collectorUrl*, serviceName*: cstring
    maxBatchSize*, maxQueueSize*: csize_t
    scheduledDelayNs*: uint64
  TraceStatsC* {.bycopy.} = object
    ## ``nimsync_trace_stats``.
    queued*, dropped*, exported*, failed*: uint64
    queueCapacity*: csize_t
  SpanContextC* {.bycopy.} = object
    ## ``nimsync_span_context``.
    traceId*: array[33, char]
    spanId*: array[17, char]
    parentSpanId*: array[17, char]
    flags*: uint8
    sampled*, remote*: bool
  TraceParentC* {.bycopy.} = object
    ## ``nimsync_traceparent``.
    version*: uint8
    traceId*: array[33, char]
    parentId*: array[17, char]
    flags*: uint8
    sampled*: bool
  TraceAttributeC* {.bycopy.} = object
    ## ``nimsync_trace_attribute``.
    key*: cstring
    valueType*: uint32
    stringValue*: cstring
    intValue*: int64
    doubleValue*: cdouble
    boolValue*: bool

const
  TraceSamplerAlwaysOn* = 0'u32 ## ``NIMSYNC_TRACE_SAMPLER_ALWAYS_ON``.
  TraceSamplerAlwaysOff* = 1'u32 ## ``NIMSYNC_TRACE_SAMPLER_ALWAYS_OFF``.
  TraceSamplerRatio* = 2'u32 ## ``NIMSYNC_TRACE_SAMPLER_RATIO``.
  TraceSamplerParentBased* = 3'u32 ## ``NIMSYNC_TRACE_SAMPLER_PARENT_BASED``.
  SpanStatusUnset* = 0'u32 ## ``NIMSYNC_SPAN_STATUS_UNSET``.
  SpanStatusOk* = 1'u32 ## ``NIMSYNC_SPAN_STATUS_OK``.
  SpanStatusError* = 2'u32 ## ``NIMSYNC_SPAN_STATUS_ERROR``.
  TraceAttrString* = 0'u32 ## ``NIMSYNC_TRACE_ATTR_STRING``.
  TraceAttrInt* = 1'u32 ## ``NIMSYNC_TRACE_ATTR_INT``.
  TraceAttrDouble* = 2'u32 ## ``NIMSYNC_TRACE_ATTR_DOUBLE``.
  TraceAttrBool* = 3'u32 ## ``NIMSYNC_TRACE_ATTR_BOOL``.

{.push cdecl, importc, raises: [], gcsafe.}

proc nimsync_trace_config_init*(outConfig: ptr TraceConfigC): Status
proc nimsync_trace_init*(config: ptr TraceConfigC): Status
proc nimsync_trace_flush*(timeoutNs: uint64): Status
proc nimsync_trace_shutdown*(): Status
proc nimsync_trace_get_stats*(outStats: ptr TraceStatsC): Status
proc nimsync_trace_last_export_error*(buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status

proc nimsync_trace_span_start*(name: cstring, kind: uint32, outSpan: ptr ptr SpanHandle): Status
proc nimsync_trace_span_start_root*(name: cstring, kind: uint32, outSpan: ptr ptr SpanHandle): Status
proc nimsync_trace_span_start_child*(parent: ptr SpanHandle, name: cstring, kind: uint32,
                                     outSpan: ptr ptr SpanHandle): Status
proc nimsync_trace_span_start_remote*(name: cstring, kind: uint32, traceparent, tracestate: cstring,
                                      outSpan: ptr ptr SpanHandle): Status
proc nimsync_trace_span_clone*(span: ptr SpanHandle, outSpan: ptr ptr SpanHandle): Status
proc nimsync_trace_span_free*(span: ptr SpanHandle)
proc nimsync_trace_span_end*(span: ptr SpanHandle): Status
proc nimsync_trace_span_is_ended*(span: ptr SpanHandle): bool
proc nimsync_trace_span_is_recording*(span: ptr SpanHandle): bool
proc nimsync_trace_span_context*(span: ptr SpanHandle, outContext: ptr SpanContextC): Status
proc nimsync_trace_span_set_string*(span: ptr SpanHandle, key, value: cstring): Status
proc nimsync_trace_span_set_int*(span: ptr SpanHandle, key: cstring, value: int64): Status
proc nimsync_trace_span_set_double*(span: ptr SpanHandle, key: cstring, value: cdouble): Status
proc nimsync_trace_span_set_bool*(span: ptr SpanHandle, key: cstring, value: bool): Status
proc nimsync_trace_span_add_event*(span: ptr SpanHandle, name: cstring, attributes: ptr TraceAttributeC,
                                   count: csize_t): Status
proc nimsync_trace_span_record_error*(span: ptr SpanHandle, errorType, message: cstring): Status
proc nimsync_trace_span_set_status*(span: ptr SpanHandle, code: uint32, description: cstring): Status
proc nimsync_trace_span_update_name*(span: ptr SpanHandle, name: cstring): Status
proc nimsync_trace_span_traceparent*(span: ptr SpanHandle, buffer: cstring, capacity: csize_t,
                                     outLen: ptr csize_t): Status
proc nimsync_trace_span_tracestate*(span: ptr SpanHandle, buffer: cstring, capacity: csize_t,
                                    outLen: ptr csize_t): Status

proc nimsync_trace_context_push*(span: ptr SpanHandle): Status
proc nimsync_trace_context_push_remote*(traceparent, tracestate: cstring): Status
proc nimsync_trace_context_pop*(): Status
proc nimsync_trace_context_depth*(outDepth: ptr csize_t): Status
proc nimsync_trace_current_span_context*(outContext: ptr SpanContextC): Status
proc nimsync_trace_current_traceparent*(buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status
proc nimsync_trace_context_capture*(outContext: ptr ptr TraceContextHandle): Status
proc nimsync_trace_context_clone*(context: ptr TraceContextHandle, outContext: ptr ptr TraceContextHandle): Status
proc nimsync_trace_context_attach*(context: ptr TraceContextHandle): Status
proc nimsync_trace_context_free*(context: ptr TraceContextHandle)

proc nimsync_trace_baggage_set*(key, value: cstring): Status
proc nimsync_trace_baggage_remove*(key: cstring, outRemoved: ptr bool): Status
proc nimsync_trace_baggage_get*(key: cstring, buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status
proc nimsync_trace_baggage_header*(buffer: cstring, capacity: csize_t, outLen: ptr csize_t): Status
proc nimsync_trace_baggage_set_header*(header: cstring): Status

proc nimsync_trace_traceparent_parse*(header: cstring, outParent: ptr TraceParentC): Status
proc nimsync_trace_traceparent_format*(traceId, parentId: cstring, flags: uint8, buffer: cstring,
                                       capacity: csize_t, outLen: ptr csize_t): Status
proc nimsync_trace_tracestate_normalize*(header: cstring, buffer: cstring, capacity: csize_t,
                                         outLen: ptr csize_t): Status
proc nimsync_trace_tracestate_get*(header, key: cstring, buffer: cstring, capacity: csize_t,
                                   outLen: ptr csize_t): Status
proc nimsync_trace_tracestate_insert*(header, key, value: cstring, buffer: cstring, capacity: csize_t,
                                      outLen: ptr csize_t): Status

{.pop.}
