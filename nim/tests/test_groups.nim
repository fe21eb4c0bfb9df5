## Task groups: values through handles, fail-fast cancelling a blocked
## receive, every failure in spawn order, the policies, the concurrency and
## task limits, cancel, timeout, nesting (groups and cancel scopes), a group
## dropped without a join, and an asyncdispatch join that leaves the loop
## running. Each task is a fresh closure from a factory proc: closures
## handed to worker threads must not share their environment.

import std/[asyncdispatch, atomics, strutils, unittest]
import nimsync

var running, highWater, finishedTasks: Atomic[int]

proc limitedTask() {.gcsafe.} =
  # AcqRel / Relaxed: the high-water mark only needs each increment to be
  # seen by the compare-exchange that follows it on the same thread.
  let now = running.fetchAdd(1, moAcquireRelease) + 1
  var seen = highWater.load(moRelaxed)
  while now > seen and not highWater.compareExchangeWeak(seen, now, moRelaxed, moRelaxed):
    discard
  for _ in 0 ..< 2000:
    discard finishedTasks.load(moRelaxed)   # a little work to overlap with others
  discard running.fetchSub(1, moAcquireRelease)
  discard finishedTasks.fetchAdd(1, moRelaxed)

proc squares(n: int): proc (): int {.gcsafe.} =
  result = proc (): int {.gcsafe.} = n * n

proc failIfOdd(i: int): proc (): int {.gcsafe.} =
  result = proc (): int {.gcsafe.} =
    if i mod 2 == 1:
      raise newException(IOError, "task " & $i & " failed")
    i

proc receiveOrCancel(ch: nimsync.Channel[int]): proc (token: CancelToken): int {.gcsafe.} =
  result = proc (token: CancelToken): int {.gcsafe.} = ch.recvBlocking(token)

proc announceThenReceive(ready, never: nimsync.Channel[int]): proc (token: CancelToken): int {.gcsafe.} =
  result = proc (token: CancelToken): int {.gcsafe.} =
    ready.sendBlocking(1)
    never.recvBlocking(token)

proc failAfterSignal(ready: nimsync.Channel[int]): proc (): int {.gcsafe.} =
  result = proc (): int {.gcsafe.} =
    discard ready.recvBlocking()
    raise newException(IOError, "disk full")

proc receivePlusOne(gate: nimsync.Channel[int]): proc (): int {.gcsafe.} =
  result = proc (): int {.gcsafe.} = gate.recvBlocking() + 1

proc sendSeven(into: nimsync.Channel[int]): proc () {.gcsafe.} =
  result = proc () {.gcsafe.} = into.sendBlocking(7)

proc spawnSibling(g: TaskGroup, into: nimsync.Channel[int]): proc () {.gcsafe.} =
  result = proc () {.gcsafe.} =
    discard g.spawn(sendSeven(into))

proc spawnSharingClosure(g: TaskGroup) =
  var n = 1
  # `n` lives in an environment this proc's frame shares with the closure.
  discard g.spawn(proc (): int {.gcsafe.} = n)
  inc n

proc templateMain(): Future[int] {.async.} =
  var h: TaskHandle[int]
  taskGroup:
    h = g.spawn(squares(9))
  return h.read

suite "task groups":
  test "values land in handles":
    var g = initTaskGroup(maxTasks = 0)
    var handles: seq[TaskHandle[int]]
    for i in 0 ..< 100:
      handles.add g.spawn(squares(i))
    g.wait()
    var total = 0
    for h in handles:
      check h.finished
      total += h.read
    check total == 328350
    check g.len == 100 and g.completed == 100 and g.failed == 0
    check handles[5].id == TaskId(5)

  test "fail-fast cancels a task blocked in recv, and join reports the failure":
    let never = newChannel[int](4, MPMC)
    let ready = newChannel[int](4, MPMC)
    var g = initTaskGroup(scheduler = initScheduler(2))
    let blocked = g.spawn(announceThenReceive(ready, never))
    let failing = g.spawn(failAfterSignal(ready))
    try:
      g.wait()
      check false
    except TaskGroupError as e:
      check e.errors.len == 1                 # the cancelled receive is no failure
      check e.errors[0] of ref IOError
      check e.taskIds == @[TaskId(1)]
      check "disk full" in e.msg
    check blocked.state == TaskState.Cancelled
    expect AsyncCancelledError:
      discard blocked.read
    check failing.failed
    expect IOError:
      discard failing.read
    check g.cancelled and g.failed == 1

  test "CollectErrors reports every failure in spawn order":
    var g = initTaskGroup(TaskPolicy.CollectErrors)
    var handles: seq[TaskHandle[int]]
    for i in 0 ..< 7:
      handles.add g.spawn(failIfOdd(i))
    try:
      g.wait()
      check false
    except TaskGroupError as e:
      check e.errors.len == 3
      check e.taskIds == @[TaskId(1), TaskId(3), TaskId(5)]
      check e.errors[0].msg == "task 1 failed" and e.errors[2].msg == "task 5 failed"
    check not g.cancelled                     # failures did not cancel the others
    check handles[6].read == 6
    check g.getErrors().len == 3

  test "IgnoreErrors reads failures as default values":
    var g = initTaskGroup(TaskPolicy.IgnoreErrors)
    let bad = g.spawn(failIfOdd(1))
    let good = g.spawn(failIfOdd(2))
    g.wait()                                   # does not raise
    check bad.read == 0 and bad.failed and bad.error of ref IOError
    check good.read == 2
    check g.failed == 1 and g.getErrors().len == 0

  test "the concurrency limit is never exceeded":
    running.store(0)
    highWater.store(0)
    finishedTasks.store(0)
    var g = initTaskGroup(maxTasks = 0, maxConcurrent = 2, scheduler = initScheduler(4))
    for _ in 0 ..< 200:
      discard g.spawn(limitedTask)
    g.wait()
    check finishedTasks.load == 200
    check highWater.load >= 1 and highWater.load <= 2

  test "maxTasks caps the number of tasks":
    var g = initTaskGroup(maxTasks = 2)
    discard g.spawn(squares(1))
    discard g.spawn(squares(2))
    expect ResourceExhaustedError:
      discard g.spawn(squares(3))
    g.wait()
    check g.len == 2

  test "cancel skips tasks that have not started":
    var g = initTaskGroup()
    g.cancel()
    let h = g.spawn(squares(3))
    g.wait()                                   # cancelled on purpose: no raise
    check h.state == TaskState.Cancelled and g.skipped == 1
    expect AsyncCancelledError:
      discard h.read

  test "a timeout cancels blocked tasks and the join raises TimeoutError":
    let never = newChannel[int](4, MPMC)
    var g = initTaskGroup(50)
    let h = g.spawn(receiveOrCancel(never))
    expect TimeoutError:
      g.wait()
    check h.state == TaskState.Cancelled
    expect TimeoutError:
      discard h.read

  test "nested groups cancel downward only":
    var outer = initTaskGroup()
    var inner = initTaskGroup(parent = outer)
    var sibling = initTaskGroup(parent = outer)
    inner.cancel()
    check inner.cancelled and not outer.cancelled and not sibling.cancelled
    outer.cancel()
    check sibling.cancelled
    expect AsyncCancelledError:
      sibling.wait()                           # cancelled from outside

  test "a group made in a cancel scope is cancelled with it":
    var cancelledWithScope = false
    withCancelScope(proc (scope: var CancelScope) =
      var g = initTaskGroup()
      scope.cancel()
      cancelledWithScope = g.cancelled)
    check cancelledWithScope

  test "tasks spawn siblings through a captured group":
    let into = newChannel[int](4, MPMC)
    var g = initTaskGroup()
    discard g.spawn(spawnSibling(g, into))
    check into.recvBlocking() == 7
    g.wait()
    check g.len == 2

  test "a group dropped without a join cancels and waits":
    let never = newChannel[int](4, MPMC)
    let started = newChannel[int](4, MPMC)
    var h: TaskHandle[int]
    block:
      var g = initTaskGroup()
      h = g.spawn(announceThenReceive(started, never))
      discard started.recvBlocking()
    check h.state == TaskState.Cancelled       # finished before the group went away

  test "joinAll leaves the event loop running":
    let gate = newChannel[int](1, MPMC)
    proc main(): Future[int] {.async.} =
      var g = initTaskGroup()
      let h = g.spawn(receivePlusOne(gate))
      let join = g.joinAll()
      check not join.finished
      await gate.send(41)                      # runs on the loop while the join waits
      await join
      return h.read
    check waitFor(main()) == 42

  test "joinAll raises the group's failures":
    proc main() {.async.} =
      var g = initTaskGroup()
      discard g.spawn(failIfOdd(1))
      await g.joinAll()
    expect TaskGroupError:
      waitFor main()

  test "the taskGroup template joins in an async proc":
    check waitFor(templateMain()) == 81

  test "bad arguments raise":
    var unset: TaskGroup
    expect ValueError:
      unset.wait()
    var shared = initTaskGroup()
    expect ValueError:
      spawnSharingClosure(shared)
    shared.wait()
    var unsetHandle: TaskHandle[int]
    expect ValueError:
      discard unsetHandle.read
    expect ValueError:
      discard initTaskGroup(maxConcurrent = -1)
    let gate = newChannel[int](1, MPMC)
    var g = initTaskGroup()
    let h = g.spawn(receivePlusOne(gate))
    expect ValueError:
      discard h.read                           # not finished: join first
    gate.sendBlocking(5)
    g.wait()
    check h.read == 6
