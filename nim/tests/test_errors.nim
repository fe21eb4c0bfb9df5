## The exception hierarchy of the original nimsync, and the mapping of C
## statuses to exceptions.

import std/unittest
import nimsync
import nimsync/private/abi

suite "errors":
  test "hierarchy":
    check ChannelClosedError is ChannelError
    check ChannelFullError is ChannelError
    check ChannelTimeoutError is ChannelError
    check ChannelError is NimAsyncError
    check NimAsyncError is CatchableError
    check (ChannelClosedSendError[string]) is ChannelClosedError
    check (ChannelTimeoutSendError[int]) is ChannelTimeoutError

  test "statuses map to their exceptions":
    expect ChannelClosedError: raiseStatus(StatusClosed)
    expect ChannelFullError: raiseStatus(StatusFull)
    expect ChannelTimeoutError: raiseStatus(StatusTimeout)
    expect ChannelEmptyError: raiseStatus(StatusEmpty)
    expect ChannelBusyError: raiseStatus(StatusBusy)
    expect ValueError: raiseStatus(StatusInvalidArgument)
    expect ValueError: raiseStatus(StatusNullArgument)
    expect ResourceExhaustedError: raiseStatus(StatusOutOfMemory)
    expect SystemError: raiseStatus(StatusPanic)
    check statusName(StatusFull) == "NIMSYNC_STATUS_FULL"

  test "send errors carry the unsent value":
    try:
      raiseSendStatus(StatusClosed, "payload")
    except ChannelClosedError as e:
      check e.unsentValue(string) == "payload"
      expect ValueError:
        discard e.unsentValue(int)
    try:
      raiseSendStatus(StatusTimeout, 7)
    except ChannelTimeoutError as e:
      check e.unsentValue(int) == 7
    try:
      raiseSendStatus(StatusFull, @[1, 2])
    except ChannelFullError as e:
      check e.unsentValue(seq[int]) == @[1, 2]
    try:
      raiseSendStatus(StatusBusy, "busy")
    except ChannelBusyError as e:
      check e.unsentValue(string) == "busy"

  test "library version and ABI":
    check libraryAbiVersion == 1
    check libraryVersion().len >= 5
