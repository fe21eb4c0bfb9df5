## The bridge between nimsync's loop waker and std/asyncdispatch.
##
## Each thread's dispatcher gets one loop waker whose descriptor is registered
## with ``addRead``. A pending operation waits on a future keyed by its token;
## when the descriptor becomes readable, the tokens drained from the waker
## complete their futures and the operations are polled again. Nothing polls
## in between.

import std/[asyncdispatch, tables]
import abi

type
  LoopBridge* = ref object
    ## One dispatcher's waker and the futures waiting on it.
    waker*: ptr LoopWakerHandle
    fd: AsyncFD
    waiters: Table[uint64, Future[void]]
    next: uint64

var bridge {.threadvar.}: LoopBridge

proc onReadable(b: LoopBridge) =
  var tokens: array[64, uint64]
  while true:
    var n: csize_t
    if nimsync_loop_waker_drain(b.waker, addr tokens[0], csize_t(tokens.len), addr n) != StatusOk:
      return
    for i in 0 ..< int(n):
      var fut: Future[void]
      if b.waiters.pop(tokens[i], fut) and not fut.finished:
        fut.complete()
    if int(n) < tokens.len:
      return

proc loopBridge*(): LoopBridge =
  ## This thread's bridge, created (and its descriptor registered with the
  ## thread's dispatcher) on first use.
  if bridge.isNil:
    var w: ptr LoopWakerHandle
    let st = nimsync_loop_waker_new(addr w)
    if st != StatusOk:
      raise newException(OSError, "cannot create the nimsync loop waker: " & $nimsync_last_error_message())
    var fd: cint
    discard nimsync_loop_waker_fd(w, addr fd)
    let b = LoopBridge(waker: w, fd: AsyncFD(fd))
    register(b.fd)
    addRead(b.fd, proc (fd: AsyncFD): bool {.gcsafe.} =
      onReadable(b)
      false)
    bridge = b
  bridge

proc newToken*(b: LoopBridge): uint64 =
  ## A token for a new operation.
  inc b.next
  b.next

proc waitToken*(b: LoopBridge, token: uint64): Future[void] =
  ## A future completed the next time `token` is woken.
  result = newFuture[void]("nimsync.waitToken")
  b.waiters[token] = result

proc forget*(b: LoopBridge, token: uint64) =
  ## Drops the waiter of `token`, if any.
  b.waiters.del(token)
