## Cancel scopes: the original API (hierarchy, shields, reasons, the current
## scope), blocking channel operations woken by a cancellation from another
## thread, timeout scopes fired by the runtime's timer, withTimeout and
## withDeadline on asyncdispatch futures, and sends that hand their value back.

import std/[unittest, algorithm, asyncdispatch, monotimes, os, times, strutils]
import nimsync

const
  cancelWakeBound = initDuration(milliseconds = 10)
    ## Upper bound on the typical (median) time from `cancel` on one thread
    ## to the exception in a thread blocked in a receive watching the scope.
  cancelWakeWorst = initDuration(milliseconds = 200)
    ## Upper bound on every such wake-up: generous, because on a loaded
    ## machine the woken thread may wait a scheduler time slice or more
    ## before it runs.
  wakeRounds = 11

type
  Outcome = enum
    Nothing, Received, Cancelled, TimedOut, Other

  BlockedRecv = object
    ch: nimsync.Channel[int]
    ready: nimsync.Channel[int]    # the worker says it is about to block
    done: nimsync.Channel[int64]   # MonoTime ticks when the receive raised
    outcome: ptr Outcome

proc recvWatchingScope(args: (BlockedRecv, CancelScope)) {.thread.} =
  let (b, scope) = args
  b.ready.sendBlocking(1)
  try:
    discard b.ch.recvBlocking(scope)
    b.outcome[] = Received
  except TimeoutError:
    b.outcome[] = TimedOut
  except AsyncCancelledError:
    b.outcome[] = Cancelled
  except CatchableError:
    b.outcome[] = Other
  b.done.sendBlocking(getMonoTime().ticks)

proc recvWatchingToken(args: (BlockedRecv, CancelToken)) {.thread.} =
  let (b, token) = args
  b.ready.sendBlocking(1)
  try:
    discard b.ch.recvBlocking(token)
    b.outcome[] = Received
  except TimeoutError:
    b.outcome[] = TimedOut
  except AsyncCancelledError:
    b.outcome[] = Cancelled
  except CatchableError:
    b.outcome[] = Other
  b.done.sendBlocking(getMonoTime().ticks)

proc sendWatchingScope(args: (nimsync.Channel[string], nimsync.Channel[int],
                              nimsync.Channel[string], CancelScope)) {.thread.} =
  let (full, ready, back, scope) = args
  ready.sendBlocking(1)
  try:
    full.sendBlocking("kept " & $getThreadId(), scope)
    back.sendBlocking("sent")
  except AsyncCancelledError as e:
    back.sendBlocking(e.unsentValue(string))

proc cancelFromThread(scope: CancelScope) {.thread.} =
  scope.cancel(CancelReason.ResourceLimit)

var canceller: Thread[CancelScope]

proc newBlockedRecv(outcome: ptr Outcome): BlockedRecv =
  BlockedRecv(ch: newChannel[int](4, MPMC), ready: newChannel[int](1, MPMC),
              done: newChannel[int64](1, MPMC), outcome: outcome)

proc median(xs: seq[Duration]): Duration =
  xs.sorted()[xs.len div 2]

proc waitReady(b: BlockedRecv) =
  discard b.ready.recvBlocking()
  # The worker is about to block; the pause only makes it likely that it is
  # parked when the cancellation comes (the outcome is the same either way).
  sleep(5)

suite "cancel scopes":
  test "the error hierarchy of the original cancel module":
    check AsyncCancelledError is CatchableError
    check not (AsyncCancelledError is CancellationError)
    check CancellationError is CatchableError
    check CancellationError is NimAsyncError
    check TimeoutError is CancellationError
    check not (TimeoutError is ChannelTimeoutError)
    check AsyncCancelledSendError[string] is AsyncCancelledError
    check TimeoutSendError[string] is TimeoutError
    let e: ref CatchableError = newException(TimeoutError, "late")
    check e of (ref CancellationError)
    check not (e of (ref AsyncCancelledError))

  test "a new scope is active; cancel, reasons and the first cancellation stands":
    let scope = initCancelScope()
    check scope.active and not scope.cancelled and not scope.completed
    check scope.getReason == CancelReason.Manual
    check scope.getCancelTime == MonoTime()
    let before = getMonoTime()
    scope.cancel(CancelReason.TaskError)
    check scope.cancelled and not scope.active
    check scope.getReason == CancelReason.TaskError
    check scope.getCancelTime >= before and scope.getCancelTime <= getMonoTime()
    scope.cancel(CancelReason.ResourceLimit)
    check scope.getReason == CancelReason.TaskError
    expect AsyncCancelledError:
      scope.checkCancelled()
    try:
      scope.checkCancelled()
    except AsyncCancelledError as e:
      check e.msg == "Cancelled due to task error"

  test "cancelling a parent cancels its children and grandchildren":
    let root = initCancelScope()
    let child = initCancelScope(root)
    let grandchild = initCancelScope(child)
    let sibling = initCancelScope()       # no current scope: a root
    root.cancel()
    check child.cancelled and grandchild.cancelled
    check root.getReason == CancelReason.Manual
    check child.getReason == CancelReason.ParentCancel
    check grandchild.getReason == CancelReason.ParentCancel
    check not sibling.cancelled
    expect AsyncCancelledError:
      grandchild.checkCancelled()
    # Cancelling a child leaves its parent alone.
    let parent2 = initCancelScope()
    let child2 = initCancelScope(parent2)
    child2.cancel()
    check child2.cancelled and not parent2.cancelled
    # A child of a cancelled parent starts cancelled.
    let late = initCancelScope(root)
    check late.cancelled and late.getReason == CancelReason.ParentCancel

  test "the current scope: withCancelScope links, pushes and pops":
    check getCurrentScope() == nil
    check not cancelled()
    var inner: CancelScope
    withCancelScope(proc(outer: var CancelScope) =
      check getCurrentScope() == addr outer
      inner = initCancelScope()              # a child of `outer`
      let sameOuter = outer                  # a copy shares the scope
      withCancelScope(proc(nested: var CancelScope) =
        check getCurrentScope() == addr nested
        sameOuter.cancel()
        check nested.cancelled
        check cancelled()
        expect AsyncCancelledError:
          checkCancelled())
      check getCurrentScope() == addr outer
      check outer.getReason == CancelReason.Manual)
    check getCurrentScope() == nil
    check inner.cancelled and inner.getReason == CancelReason.ParentCancel

  test "withCancelScope completes on return, cancels with TaskError on an error":
    var kept: CancelScope
    withCancelScope(proc(scope: var CancelScope) =
      kept = scope)
    check kept.completed
    kept.cancel()
    check kept.completed and not kept.cancelled

    var child: CancelScope
    expect ValueError:
      withCancelScope(proc(scope: var CancelScope) =
        kept = scope
        child = initCancelScope()
        raise newException(ValueError, "bad input"))
    check kept.cancelled and kept.getReason == CancelReason.TaskError
    check child.cancelled and child.getReason == CancelReason.ParentCancel
    check getCurrentScope() == nil

    # A cancellation error passes through without turning into TaskError.
    expect AsyncCancelledError:
      withCancelScope(proc(scope: var CancelScope) =
        kept = scope
        scope.cancel()
        scope.checkCancelled())
    check kept.getReason == CancelReason.Manual

  test "complete: a completed scope stays completed":
    let parent = initCancelScope()
    let scope = initCancelScope(parent)
    scope.complete()
    parent.cancel()
    check scope.completed and not scope.cancelled
    scope.checkCancelled()     # does not raise
    let cancelledFirst = initCancelScope()
    cancelledFirst.cancel()
    cancelledFirst.complete()
    check cancelledFirst.cancelled and not cancelledFirst.completed

  test "shield: the parent's cancellation does not reach a shielded scope":
    withCancelScope(proc(outer: var CancelScope) =
      var cleanup = initCancelScope()
      cleanup.shield()
      let underCleanup = initCancelScope(cleanup)
      let plain = initCancelScope()
      outer.cancel()
      check plain.cancelled
      check not cleanup.cancelled and cleanup.active
      check not underCleanup.cancelled
      cleanup.checkCancelled()
      # A shielded scope can still be cancelled directly; its children follow.
      cleanup.cancel()
      check cleanup.cancelled and cleanup.getReason == CancelReason.Manual
      check underCleanup.cancelled
      check underCleanup.getReason == CancelReason.ParentCancel)

  test "shield(false) links a scope to its parent again":
    let parent = initCancelScope()
    let scope = initCancelScope(parent)
    scope.shield()
    scope.shield(false)
    parent.cancel()
    check scope.cancelled and scope.getReason == CancelReason.ParentCancel
    # Shielding a cancelled scope does not undo the cancellation.
    let parent2 = initCancelScope()
    let late = initCancelScope(parent2)
    parent2.cancel()
    late.shield()
    check late.cancelled

  test "copies share one scope; uninitialized scopes are an error":
    let scope = initCancelScope()
    let copy = scope
    copy.cancel()
    check scope.cancelled
    var empty: CancelScope
    check not empty.cancelled
    expect ValueError:
      empty.cancel()
    expect ValueError:
      discard empty.getToken()
    expect ValueError:
      discard initCancelScope(empty)

  test "tokens: read-only views that outlive the scope":
    var token: CancelToken
    check not token.cancelled
    token.checkCancelled()              # a default token never raises
    block:
      let scope = initCancelScope()
      token = scope.getToken()
      check not token.cancelled
      scope.cancel()
    check token.cancelled
    expect AsyncCancelledError:
      token.checkCancelled()
    let copy = token
    check copy.cancelled

  test "a cancelled scope's copy on another thread cancels it for everybody":
    let scope = initCancelScope()
    let child = initCancelScope(scope)
    var t: Thread[CancelScope]
    createThread(t, cancelFromThread, scope)
    joinThread(t)
    check scope.cancelled and scope.getReason == CancelReason.ResourceLimit
    check child.cancelled and child.getReason == CancelReason.ParentCancel

suite "blocking channel operations watching a scope":
  test "a thread blocked in recvBlocking(ch, scope) raises promptly on cancel":
    var wakes: seq[Duration]
    for round in 0 ..< wakeRounds:
      var outcome = Nothing
      let b = newBlockedRecv(addr outcome)
      let parent = initCancelScope()
      let scope = initCancelScope(parent)
      var t: Thread[(BlockedRecv, CancelScope)]
      createThread(t, recvWatchingScope, (b, scope))
      b.waitReady()
      let start = getMonoTime()
      # Alternate: cancel the scope itself, or its parent.
      if round mod 2 == 0: scope.cancel() else: parent.cancel()
      let woke = cast[MonoTime](b.done.recvBlocking())
      joinThread(t)
      check outcome == Cancelled
      wakes.add woke - start
    checkpoint "wake-up after cancel (scope): median " & $median(wakes).inMicroseconds &
      " us, worst " & $max(wakes).inMicroseconds & " us"
    check median(wakes) < cancelWakeBound
    check max(wakes) < cancelWakeWorst

  test "a thread blocked in recvBlocking(ch, token) raises promptly on cancel":
    var wakes: seq[Duration]
    for round in 0 ..< wakeRounds:
      var outcome = Nothing
      let b = newBlockedRecv(addr outcome)
      let scope = initCancelScope()
      var t: Thread[(BlockedRecv, CancelToken)]
      createThread(t, recvWatchingToken, (b, scope.getToken()))
      b.waitReady()
      let start = getMonoTime()
      scope.cancel()
      let woke = cast[MonoTime](b.done.recvBlocking())
      joinThread(t)
      check outcome == Cancelled
      wakes.add woke - start
    checkpoint "wake-up after cancel (token): median " & $median(wakes).inMicroseconds &
      " us, worst " & $max(wakes).inMicroseconds & " us"
    check median(wakes) < cancelWakeBound
    check max(wakes) < cancelWakeWorst

  test "an item already there is received even in a cancelled scope":
    let ch = newChannel[int](2, SPSC)
    ch.sendBlocking(7)
    let scope = initCancelScope()
    scope.cancel()
    check ch.recvBlocking(scope) == 7
    expect AsyncCancelledError:
      discard ch.recvBlocking(scope)

  test "a 50 ms timeout scope ends a blocked receive after 50-200 ms":
    let ch = newChannel[int](4, MPMC)
    let start = getMonoTime()
    let scope = initTimeoutScope(50)
    var raised = false
    try:
      discard ch.recvBlocking(scope)
    except TimeoutError as e:
      raised = true
      check e.msg == "Operation timed out"
    let elapsed = getMonoTime() - start
    checkpoint "timeout scope fired after " & $elapsed.inMicroseconds & " us"
    check raised
    check elapsed >= initDuration(milliseconds = 50)
    check elapsed <= initDuration(milliseconds = 200)
    check scope.cancelled and scope.getReason == CancelReason.Timeout

  test "a timeout scope ends a receive blocked on another thread (token)":
    var outcome = Nothing
    let b = newBlockedRecv(addr outcome)
    let start = getMonoTime()
    let scope = initTimeoutScope(initDuration(milliseconds = 50))
    var t: Thread[(BlockedRecv, CancelToken)]
    createThread(t, recvWatchingToken, (b, scope.getToken()))
    let woke = cast[MonoTime](b.done.recvBlocking())
    joinThread(t)
    check outcome == TimedOut
    let elapsed = woke - start
    checkpoint "timeout token fired after " & $elapsed.inMicroseconds & " us"
    check elapsed >= initDuration(milliseconds = 50)
    check elapsed <= initDuration(milliseconds = 200)

  test "a child of a timed-out scope raises TimeoutError with ParentCancel":
    let outer = initDeadlineScope(getMonoTime())     # already passed
    let inner = initCancelScope(outer)
    check inner.cancelled and inner.getReason == CancelReason.ParentCancel
    let ch = newChannel[int](1, SPSC)
    expect TimeoutError:
      discard ch.recvBlocking(inner)
    try:
      inner.checkCancelled()
    except TimeoutError as e:
      check e.msg == "Cancelled by parent (timed out)"

  test "the channel's own timeout is ChannelTimeoutError, not TimeoutError":
    let ch = newChannel[int](1, SPSC)
    let scope = initCancelScope()
    expect ChannelTimeoutError:
      discard ch.recvBlocking(scope, 10)
    check not scope.cancelled

  test "a closed channel still raises ChannelClosedError":
    let ch = newChannel[int](1, SPSC)
    ch.close()
    let scope = initCancelScope()
    expect ChannelClosedError:
      discard ch.recvBlocking(scope)

  test "a cancelled send hands the value back (unsentValue)":
    let ch = newChannel[string](1, MPMC)
    ch.sendBlocking("first")
    let scope = initCancelScope()
    scope.cancel()
    try:
      ch.sendBlocking("second " & repeat('x', 40), scope)
      check false
    except AsyncCancelledError as e:
      check e of (ref AsyncCancelledSendError[string])
      check e.unsentValue(string) == "second " & repeat('x', 40)
    # Through a token too.
    try:
      ch.sendBlocking("third", scope.getToken())
      check false
    except AsyncCancelledError as e:
      check e.unsentValue(string) == "third"
    check ch.len == 1
    check ch.recvBlocking() == "first"

  test "a thread blocked in sendBlocking(ch, v, scope) gets its value back on cancel":
    let full = newChannel[string](1, MPMC)
    full.sendBlocking("first")
    let ready = newChannel[int](1, MPMC)
    let back = newChannel[string](1, MPMC)
    let scope = initCancelScope()
    var t: Thread[(nimsync.Channel[string], nimsync.Channel[int], nimsync.Channel[string],
                   CancelScope)]
    createThread(t, sendWatchingScope, (full, ready, back, scope))
    discard ready.recvBlocking()
    sleep(5)       # only makes it likely that the sender is parked
    scope.cancel()
    let returned = back.recvBlocking()
    joinThread(t)
    check returned.startsWith("kept ")
    check full.len == 1 and full.recvBlocking() == "first"

  test "a timed-out send hands the value back (TimeoutSendError)":
    let ch = newChannel[seq[int]](1, MPMC)
    ch.sendBlocking(@[1])
    let start = getMonoTime()
    let scope = initTimeoutScope(30)
    try:
      ch.sendBlocking(@[2, 3], scope)
      check false
    except TimeoutError as e:
      check e of (ref TimeoutSendError[seq[int]])
      check e.unsentValue(seq[int]) == @[2, 3]
    check getMonoTime() - start >= initDuration(milliseconds = 30)
    # The channel's own timeout still hands the value back as before.
    try:
      ch.sendBlocking(@[4], initCancelScope(), 5)
      check false
    except ChannelTimeoutError as e:
      check e.unsentValue(seq[int]) == @[4]
    check ch.recvBlocking() == @[1]

  test "a send that can complete at once does, even in a cancelled scope":
    let ch = newChannel[int](1, SPSC)
    let scope = initCancelScope()
    scope.cancel()
    ch.sendBlocking(5, scope)
    check ch.recvBlocking() == 5

suite "withTimeout and withDeadline on asyncdispatch":
  test "a quick body completes with its value; its scope is current":
    var seen: ptr CancelScope
    let answer = waitFor withTimeout(initDuration(seconds = 5), proc (): Future[int] {.async.} =
      seen = getCurrentScope()
      await sleepAsync(1)
      return 42)
    check answer == 42
    check seen != nil
    check getCurrentScope() == nil

  test "a slow body fails with TimeoutError after the timeout":
    let start = getMonoTime()
    var raised = false
    try:
      discard waitFor withTimeout(50, proc (): Future[int] {.async.} =
        await sleepAsync(2000)
        return 1)
    except TimeoutError as e:
      raised = true
      check e.msg == "Operation timed out"
    let elapsed = getMonoTime() - start
    checkpoint "withTimeout fired after " & $elapsed.inMicroseconds & " us"
    check raised
    check elapsed >= initDuration(milliseconds = 50)
    check elapsed < initDuration(milliseconds = 1000)
    check getCurrentScope() == nil

  test "void bodies, and errors of the body propagate":
    waitFor withTimeout(1000, proc () {.async.} = await sleepAsync(1))
    expect ValueError:
      waitFor withTimeout(1000, proc () {.async.} =
        await sleepAsync(1)
        raise newException(ValueError, "bad"))
    expect KeyError:
      discard waitFor withTimeout(1000, proc (): Future[int] =
        raise newException(KeyError, "raised before the first await"))

  test "cancelling an enclosing scope (on another thread) ends withTimeout":
    var raised = false
    let start = getMonoTime()
    try:
      withCancelScope(proc (outer: var CancelScope) =
        let shared = outer
        # The timeout scope is a child of the current scope, `outer`.
        waitFor withTimeout(5000, proc () {.async.} =
          createThread(canceller, cancelFromThread, shared)
          await sleepAsync(2000)))
    except AsyncCancelledError as e:
      raised = true
      check e.msg == "Cancelled by parent"
    joinThread(canceller)
    check raised
    check getMonoTime() - start < initDuration(milliseconds = 1000)
    check getCurrentScope() == nil

  test "withDeadline: a passed deadline fails at once, a later one like withTimeout":
    expect TimeoutError:
      waitFor withDeadline(getMonoTime() - initDuration(milliseconds = 1),
                           proc () {.async.} = await sleepAsync(1))
    let v = waitFor withDeadline(getMonoTime() + initDuration(seconds = 5),
                                 proc (): Future[string] {.async.} =
      await sleepAsync(1)
      return "in time")
    check v == "in time"
    let start = getMonoTime()
    expect TimeoutError:
      waitFor withDeadline(getMonoTime() + initDuration(milliseconds = 40),
                           proc () {.async.} = await sleepAsync(2000))
    check getMonoTime() - start < initDuration(milliseconds = 1000)

  test "async withCancelScope":
    var kept: CancelScope
    waitFor withCancelScope(proc (scope: CancelScope) {.async.} =
      kept = scope
      await sleepAsync(1)
      scope.checkCancelled())
    check kept.completed
    expect ValueError:
      waitFor withCancelScope(proc (scope: CancelScope) {.async.} =
        kept = scope
        await sleepAsync(1)
        raise newException(ValueError, "bad"))
    check kept.cancelled and kept.getReason == CancelReason.TaskError

  test "async shield: the enclosing scope's cancellation does not reach the body":
    var inside: CancelScope
    var raised = false
    withCancelScope(proc (outer: var CancelScope) =
      outer.cancel()
      let v = waitFor shield(proc (): Future[int] {.async.} =
        inside = getCurrentScope()[]
        checkCancelled()                   # shielded: does not raise
        await sleepAsync(1)
        return 7)
      check v == 7
      try:
        checkCancelled()                   # `outer` is current again
      except AsyncCancelledError:
        raised = true)
    check raised
    check inside.completed
    check getCurrentScope() == nil
    expect ValueError:
      waitFor shield(proc () {.async.} =
        inside = getCurrentScope()[]
        raise newException(ValueError, "bad"))
    check inside.getReason == CancelReason.TaskError

  test "checkCancellation checks several scopes":
    let a = initCancelScope()
    let b = initCancelScope()
    checkCancellation([a, b])
    b.cancel(CancelReason.ResourceLimit)
    try:
      checkCancellation([a, b])
      check false
    except AsyncCancelledError as e:
      check e.msg == "Cancelled due to resource limits"
