## Channels: bounded (SPSC, MPSC, SPMC, MPMC), rendezvous and unbounded, for
## any ``T``, between threads and asyncdispatch coroutines.
##
## The original nimsync API — `newChannel`, `trySend`, `tryReceive`, `send`
## and `recv` (awaitable), `capacity`, `isEmpty`, `isFull` — plus what it
## never had: `close`, blocking `sendBlocking`/`recvBlocking` for threads,
## timeouts, `len`, unbounded and rendezvous channels, and `select`.
##
## .. code-block:: nim
##   import nimsync
##
##   let ch = newChannel[string](1024, SPSC)
##   proc producer(ch: nimsync.Channel[string]) {.thread.} =
##     for i in 1 .. 3:
##       ch.sendBlocking("message " & $i)
##     ch.close()
##   var t: Thread[nimsync.Channel[string]]
##   createThread(t, producer, ch)
##   for msg in ch:            # blocks for each item; ends when closed and drained
##     echo msg
##   joinThread(t)
##
## **The name.** With ``--threads:on`` the system module has a ``Channel`` of
## its own; where both are visible, write ``nimsync.Channel[T]`` in type
## positions (values made by `newChannel` need no annotation).
##
## **Ownership.** `Channel[T]` is a value with reference-counting hooks: copying
## it (into another thread's arguments, a closure, a collection) takes another
## reference in the library (an atomic count), and the channel is freed with
## its last copy. Items still inside are then destroyed.
##
## **Items.** Plain data no larger than a pointer travels inside the channel's
## word. Anything else (string, seq, ref, objects with them) is moved into a
## block of shared memory and moved out by the receiver, so nothing is copied
## twice and no reference count is touched by two threads. A ``ref`` sent to
## another thread must not be used by the sender afterwards (ORC counts are not
## atomic): send the last reference.
##
## **Failed sends.** `trySend` returns false when full and leaves the value with
## the caller; blocking and async sends raise `ChannelClosedSendError[T]` or
## `ChannelTimeoutSendError[T]`, which carry the value (`unsentValue`).
##
## **Async.** `send` and `recv` are asyncdispatch procs: they wait on a file
## descriptor that the thread making progress possible writes, never by
## polling. Threads and coroutines (in any number of dispatcher threads) can
## share one channel.

import std/[asyncdispatch, times, typetraits]
import private/[abi, loop]
import errors

export errors

type
  ChannelMode* = enum
    ## How many threads may use each side at the same moment.
    SPSC ## one sender, one receiver (a cached-index ring)
    MPSC ## any senders, one receiver
    SPMC ## one sender, any receivers
    MPMC ## any senders and receivers

  Channel*[T] = object
    ## A channel of ``T``; copies share it (see the module docs).
    handle: ptr ChannelHandle

proc `=destroy`*[T](c: var Channel[T]) =
  ## Releases this reference; the last one frees the channel.
  if c.handle != nil:
    nimsync_channel_free(c.handle)
    c.handle = nil

proc `=copy`*[T](dest: var Channel[T], src: Channel[T]) =
  ## Takes another reference to `src`'s channel.
  if dest.handle == src.handle:
    return
  `=destroy`(dest)
  if src.handle != nil:
    discard nimsync_channel_clone(src.handle, addr dest.handle)

template inline(T: typedesc): bool =
  supportsCopyMem(T) and sizeof(T) <= sizeof(uint)

proc encodeItem*[T](c: Channel[T], value: sink T): uint =
  ## Turns a value into the channel's word (internal; used by `select`).
  when inline(T):
    copyMem(addr result, unsafeAddr value, sizeof(T))
  else:
    let p = cast[ptr T](allocShared0(sizeof(T)))
    p[] = move(value)
    result = cast[uint](p)

proc decodeItem*[T](c: Channel[T], item: uint): T =
  ## Turns a word taken from the channel back into the value (internal).
  when inline(T):
    copyMem(addr result, unsafeAddr item, sizeof(T))
  else:
    let p = cast[ptr T](item)
    result = move(p[])
    deallocShared(p)

proc dropItem[T](item: uint) =
  when not inline(T):
    let p = cast[ptr T](item)
    `=destroy`(p[])
    deallocShared(p)

proc discardItem*[T](c: Channel[T], item: uint) =
  ## Destroys a word that will not be sent (internal; used by `select`).
  dropItem[T](item)

proc dropCallback[T](item: uint, ctx: pointer) {.cdecl, gcsafe, raises: [].} =
  try:
    dropItem[T](item)
  except Exception:
    discard

proc rawHandle*[T](c: Channel[T]): ptr ChannelHandle {.inline.} =
  ## The C handle (internal; valid while `c` lives).
  c.handle

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc makeChannel[T](capacity: int, mode: uint32, unbounded: bool): Channel[T] =
  if capacity < 0:
    raise newException(ValueError, "invalid argument `size`: must not be negative, got " & $capacity)
  let drop = when inline(T): DropFn(nil) else: DropFn(dropCallback[T])
  let st =
    if unbounded: nimsync_channel_new_unbounded(drop, nil, addr result.handle)
    else: nimsync_channel_new(csize_t(capacity), mode, drop, nil, addr result.handle)
  check st

proc newChannel*[T](size: int, mode: ChannelMode): Channel[T] =
  ## Creates a channel of at least `size` slots (rounded up to a power of two,
  ## as in the original). A `size` of 0 with `MPMC` is a rendezvous channel:
  ## a send completes when a receiver takes the item. Raises ``ValueError``
  ## for a negative or too large size (or 0 in another mode).
  ##
  ## .. code-block:: nim
  ##   let ch = newChannel[int](100, MPSC)
  ##   doAssert ch.capacity == 128
  makeChannel[T](size, uint32(ord(mode)), false)

proc newUnboundedChannel*[T](): Channel[T] =
  ## Creates an unbounded MPMC channel: sends never wait, and fail only after
  ## `close`. Its `capacity` is ``high(int)``.
  makeChannel[T](0, ModeMpmc, true)

proc trySend*[T](c: Channel[T], value: sink T): bool =
  ## Sends without waiting: false when the channel is full (the value stays
  ## with the caller). Raises `ChannelClosedError` when closed and
  ## `ChannelBusyError` when another thread uses a single-thread side.
  let item = c.encodeItem(value)
  let st = nimsync_channel_try_send(c.handle, item)
  if st == StatusOk:
    return true
  dropItem[T](item)
  if st == StatusFull:
    return false
  raiseStatus(st)

proc tryReceive*[T](c: Channel[T], value: var T): bool =
  ## Receives without waiting: false when there is nothing to receive (empty,
  ## or closed and drained — see `isClosed`).
  var item: uint
  let st = nimsync_channel_try_recv(c.handle, addr item)
  case st
  of StatusOk:
    value = c.decodeItem(item)
    true
  of StatusEmpty, StatusClosed:
    false
  else:
    raiseStatus(st)

type
  Timeout* = Duration | TimeInterval | int
    ## A timeout: a ``Duration`` (``initDuration(milliseconds = 10)``), a
    ## ``TimeInterval`` (``10.milliseconds``) or an ``int`` of milliseconds.

proc toDuration*(timeout: Timeout): Duration =
  ## The `Timeout` as a ``Duration``.
  when timeout is Duration:
    timeout
  elif timeout is int:
    initDuration(milliseconds = timeout)
  else:
    let now = getTime()
    (now + timeout) - now

proc timeoutNs*(timeout: Timeout): uint64 =
  ## (internal) The `Timeout` in nanoseconds, 0 if negative.
  let ns = toDuration(timeout).inNanoseconds
  if ns < 0: 0'u64 else: uint64(ns)

proc sendBlocking*[T](c: Channel[T], value: sink T) =
  ## Sends, blocking this thread while the channel is full (the thread parks;
  ## nothing polls). Raises `ChannelClosedSendError[T]` (a
  ## `ChannelClosedError`) carrying the value if the channel is or becomes
  ## closed.
  let item = c.encodeItem(value)
  let st = nimsync_channel_send(c.handle, item)
  if st != StatusOk:
    raiseSendStatus(st, c.decodeItem(item))

proc sendBlocking*[T](c: Channel[T], value: sink T, timeout: Timeout) =
  ## Like `sendBlocking`, waiting at most `timeout`: raises
  ## `ChannelTimeoutSendError[T]` (a `ChannelTimeoutError`) with the value.
  let item = c.encodeItem(value)
  let st = nimsync_channel_send_timeout(c.handle, item, timeoutNs(timeout))
  if st != StatusOk:
    raiseSendStatus(st, c.decodeItem(item))

proc recvBlocking*[T](c: Channel[T]): T =
  ## Receives, blocking this thread while the channel is empty. Raises
  ## `ChannelClosedError` once the channel is closed and drained.
  var item: uint
  check nimsync_channel_recv(c.handle, addr item)
  c.decodeItem(item)

proc recvBlocking*[T](c: Channel[T], timeout: Timeout): T =
  ## Like `recvBlocking`, waiting at most `timeout` (`ChannelTimeoutError`).
  var item: uint
  check nimsync_channel_recv_timeout(c.handle, addr item, timeoutNs(timeout))
  c.decodeItem(item)

iterator items*[T](c: Channel[T]): T =
  ## Receives (blocking) until the channel is closed and drained.
  while true:
    var item: uint
    let st = nimsync_channel_recv(c.handle, addr item)
    if st == StatusClosed:
      break
    check st
    yield c.decodeItem(item)

proc close*[T](c: Channel[T]) =
  ## Closes the channel: later sends raise `ChannelClosedError`, blocked and
  ## awaiting senders and receivers wake, receivers get what is left and then
  ## `ChannelClosedError`. Closing twice does nothing.
  check nimsync_channel_close(c.handle)

proc isClosed*[T](c: Channel[T]): bool =
  ## Whether `close` was called.
  check nimsync_channel_is_closed(c.handle, addr result)

proc capacity*[T](c: Channel[T]): int =
  ## The number of slots: the requested size rounded up to a power of two; 0
  ## for a rendezvous channel, ``high(int)`` for an unbounded one.
  var n: csize_t
  check nimsync_channel_capacity(c.handle, addr n)
  if n > csize_t(high(int)): high(int) else: int(n)

proc len*[T](c: Channel[T]): int =
  ## Items inside right now.
  var n: csize_t
  check nimsync_channel_len(c.handle, addr n)
  int(n)

proc isEmpty*[T](c: Channel[T]): bool =
  ## True when no item is inside.
  check nimsync_channel_is_empty(c.handle, addr result)

proc isFull*[T](c: Channel[T]): bool =
  ## True when every slot is taken.
  check nimsync_channel_is_full(c.handle, addr result)

proc mode*[T](c: Channel[T]): ChannelMode =
  ## The mode the channel was created with (unbounded channels are `MPMC`).
  var m: uint32
  check nimsync_channel_get_mode(c.handle, addr m)
  ChannelMode(m)

# Async (asyncdispatch).

proc newOp(b: LoopBridge, token: uint64): ptr AsyncOpHandle =
  check nimsync_async_op_new(b.waker, token, addr result)

proc send*[T](c: Channel[T], value: T): Future[void] {.async.} =
  ## Sends, awaiting while the channel is full (the original nimsync's
  ## ``await ch.send(v)``, without its polling). Fails with
  ## `ChannelClosedSendError[T]` carrying the value if the channel is closed.
  let item = c.encodeItem(value)
  var st = nimsync_channel_try_send(c.handle, item)
  if st == StatusOk:
    return
  if st != StatusFull:
    raiseSendStatus(st, c.decodeItem(item))
  let b = loopBridge()
  let token = b.newToken()
  let op = b.newOp(token)
  try:
    while true:
      let woken = b.waitToken(token)
      st = nimsync_channel_poll_send(c.handle, op, item)
      if st == StatusOk:
        return
      if st != StatusPending:
        raiseSendStatus(st, c.decodeItem(item))
      await woken
  finally:
    b.forget(token)
    nimsync_async_op_free(op)

proc recvImpl[T](c: Channel[T], timeoutMs: int): Future[T] {.async.} =
  var item: uint
  var st = nimsync_channel_try_recv(c.handle, addr item)
  if st == StatusOk:
    return c.decodeItem(item)
  if st != StatusEmpty:
    raiseStatus(st)
  let b = loopBridge()
  let token = b.newToken()
  let op = b.newOp(token)
  let timer = if timeoutMs >= 0: sleepAsync(timeoutMs) else: nil
  try:
    while true:
      let woken = b.waitToken(token)
      st = nimsync_channel_poll_recv(c.handle, op, addr item)
      if st == StatusOk:
        return c.decodeItem(item)
      if st != StatusPending:
        raiseStatus(st)
      if timer.isNil:
        await woken
      else:
        await woken or timer
        if timer.finished and not woken.finished:
          # Withdraw; a wake-up that raced with the timeout passes to
          # another waiter, so no item is lost.
          discard nimsync_async_op_cancel(op, nil)
          raise newException(ChannelTimeoutError, "operation timed out")
  finally:
    b.forget(token)
    nimsync_async_op_free(op)

proc recv*[T](c: Channel[T]): Future[T] =
  ## Receives, awaiting while the channel is empty (the original nimsync's
  ## ``await ch.recv()``). Fails with `ChannelClosedError` once the channel is
  ## closed and drained.
  ##
  ## Do not abandon the future (e.g. with ``withTimeout``): it would still
  ## take an item when one arrives. Use `recv(c, timeout)` instead.
  recvImpl(c, -1)

proc recv*[T](c: Channel[T], timeout: Timeout): Future[T] =
  ## Receives, awaiting at most `timeout`; fails with `ChannelTimeoutError`
  ## and then takes nothing.
  recvImpl(c, max(0, int(toDuration(timeout).inMilliseconds)))
