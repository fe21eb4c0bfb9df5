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
  DropFn* = proc (item: uint, ctx: pointer) {.cdecl, gcsafe, raises: [].}
    ## ``nimsync_drop_fn``.
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
proc nimsync_channel_close*(channel: ptr ChannelHandle): Status
proc nimsync_channel_len*(channel: ptr ChannelHandle, outLen: ptr csize_t): Status
proc nimsync_channel_capacity*(channel: ptr ChannelHandle, outCapacity: ptr csize_t): Status
proc nimsync_channel_is_empty*(channel: ptr ChannelHandle, outEmpty: ptr bool): Status
proc nimsync_channel_is_full*(channel: ptr ChannelHandle, outFull: ptr bool): Status
proc nimsync_channel_is_closed*(channel: ptr ChannelHandle, outClosed: ptr bool): Status
proc nimsync_channel_get_mode*(channel: ptr ChannelHandle, outMode: ptr uint32): Status

proc nimsync_select*(cases: ptr SelectCase, nCases: csize_t, timeoutNs: uint64,
                     outIndex: ptr csize_t, outItem: ptr uint): Status

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
