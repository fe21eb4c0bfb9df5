## The nimsync exception hierarchy (that of the original nimsync), and the one
## proc that turns a C status into the right exception.
##
## .. code-block:: nim
##   try:
##     ch.sendBlocking("late")
##   except ChannelClosedError as e:
##     echo "not sent: ", e.msg
##
## Exceptions of sends derive from generic types that carry the unsent value:
## ``ChannelClosedSendError[T]``, ``ChannelTimeoutSendError[T]``,
## ``ChannelFullSendError[T]`` and ``ChannelBusySendError[T]`` (see
## `unsentValue`).

import private/abi

type
  NimAsyncError* = object of CatchableError
    ## Base of every nimsync error.
  ChannelError* = object of NimAsyncError
    ## A channel operation failed.
  ChannelClosedError* = object of ChannelError
    ## The channel is closed (receives: and drained).
  ChannelFullError* = object of ChannelError
    ## A send that may not wait found no free slot.
  ChannelTimeoutError* = object of ChannelError
    ## The timeout passed before the operation completed.
  ChannelEmptyError* = object of ChannelError
    ## A receive that may not wait found no item.
  ChannelBusyError* = object of ChannelError
    ## Two threads used a single-thread side of a channel (both sides of SPSC,
    ## the receiving side of MPSC, the sending side of SPMC) at the same moment.
  ChannelClosedSendError*[T] = object of ChannelClosedError
    ## A send on a closed channel; `value` is the item that was not sent.
    value*: T
  ChannelTimeoutSendError*[T] = object of ChannelTimeoutError
    ## A send that timed out; `value` is the item that was not sent.
    value*: T
  ChannelFullSendError*[T] = object of ChannelFullError
    ## A send that may not wait found the channel full; `value` is the item
    ## that was not sent.
    value*: T
  ChannelBusySendError*[T] = object of ChannelBusyError
    ## A send on a single-thread side that another thread was using; `value`
    ## is the item that was not sent.
    value*: T
  CancellationError* = object of NimAsyncError
    ## An operation was cancelled.
  SystemError* = object of NimAsyncError
    ## An operating-system call failed, or the library reported an internal
    ## error.

proc lastMessage*(): string =
  ## The calling thread's last nimsync error message.
  $nimsync_last_error_message()

proc statusName*(status: Status): string =
  ## The name of a C status, e.g. ``"NIMSYNC_STATUS_FULL"``.
  $nimsync_status_str(status)

proc raiseStatus*(status: Status) {.noreturn.} =
  ## Raises the exception for a failed nimsync call. Argument errors become
  ## ``ValueError``, allocation failures the system's ``ResourceExhaustedError``.
  let msg = lastMessage()
  case status
  of StatusClosed: raise newException(ChannelClosedError, msg)
  of StatusFull: raise newException(ChannelFullError, msg)
  of StatusTimeout: raise newException(ChannelTimeoutError, msg)
  of StatusEmpty: raise newException(ChannelEmptyError, msg)
  of StatusBusy: raise newException(ChannelBusyError, msg)
  of StatusCancelled, StatusInterrupted: raise newException(CancellationError, msg)
  of StatusInvalidArgument, StatusNullArgument: raise newException(ValueError, msg)
  of StatusOutOfMemory: raise newException(ResourceExhaustedError, msg)
  else: raise newException(SystemError, statusName(status) & ": " & msg)

proc raiseSendStatus*[T](status: Status, value: sink T) {.noreturn.} =
  ## Like `raiseStatus`, for a send: closed, timeout, full and busy errors
  ## carry `value`.
  let msg = lastMessage()
  case status
  of StatusClosed:
    raise (ref ChannelClosedSendError[T])(msg: msg, value: value)
  of StatusTimeout:
    raise (ref ChannelTimeoutSendError[T])(msg: msg, value: value)
  of StatusFull:
    raise (ref ChannelFullSendError[T])(msg: msg, value: value)
  of StatusBusy:
    raise (ref ChannelBusySendError[T])(msg: msg, value: value)
  else:
    raiseStatus(status)

proc unsentValue*[T](e: ref ChannelError, _: typedesc[T]): T =
  ## The item a failed send of a ``T`` did not send.
  ##
  ## .. code-block:: nim
  ##   except ChannelClosedError as e:
  ##     let s = e.unsentValue(string)
  if e of (ref ChannelClosedSendError[T]):
    result = (ref ChannelClosedSendError[T])(e).value
  elif e of (ref ChannelTimeoutSendError[T]):
    result = (ref ChannelTimeoutSendError[T])(e).value
  elif e of (ref ChannelFullSendError[T]):
    result = (ref ChannelFullSendError[T])(e).value
  elif e of (ref ChannelBusySendError[T]):
    result = (ref ChannelBusySendError[T])(e).value
  else:
    raise newException(ValueError, "this error carries no unsent " & $T)
