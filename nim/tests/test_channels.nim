## Channels between threads: the original API, close, timeouts, any T,
## exactly-once delivery, and destruction of leftovers.

import std/[unittest, atomics, times, algorithm, strutils]
import nimsync

var destroyed: Atomic[int]

type Tracked = object
  id: int
  payload: string

proc `=destroy`(x: var Tracked) =
  if x.id != 0:
    destroyed.atomicInc()
  `=destroy`(x.payload)

proc sendStrings(ch: nimsync.Channel[string]) {.thread.} =
  for i in 0 ..< 100_000:
    ch.sendBlocking("message " & $i & " " & repeat('x', i mod 17))
  ch.close()

proc receiveOne(args: (nimsync.Channel[int], ptr string)) {.thread.} =
  try:
    discard args[0].recvBlocking()
    args[1][] = "received"
  except ChannelClosedError:
    args[1][] = "closed"

proc produceRange(args: (nimsync.Channel[int], int)) {.thread.} =
  let (ch, p) = args
  for i in 0 ..< 20_000:
    ch.sendBlocking(p * 1_000_000 + i)

type Node = ref object
  value: int
  children: seq[int]

proc sendRefs(ch: nimsync.Channel[Node]) {.thread.} =
  for i in 0 ..< 1000:
    ch.sendBlocking(Node(value: i, children: @[i, i + 1]))
  ch.close()

suite "channels":
  test "the original API: trySend, tryReceive, capacity, isEmpty, isFull":
    let ch = newChannel[int](3, SPSC)
    check ch.capacity == 4
    check ch.isEmpty and not ch.isFull
    var x: int
    check not ch.tryReceive(x)
    for i in 1 .. 4:
      check ch.trySend(i)
    check ch.isFull
    check not ch.trySend(5)          # full: false, value stays with the caller
    check ch.len == 4
    for i in 1 .. 4:
      check ch.tryReceive(x) and x == i
    check ch.isEmpty

  test "every mode, capacity rounding and rendezvous":
    for mode in [SPSC, MPSC, SPMC, MPMC]:
      let ch = newChannel[string](5, mode)
      check ch.capacity == 8
      check ch.mode == mode
    let rv = newChannel[int](0, MPMC)
    check rv.capacity == 0
    check not rv.trySend(1)          # nobody is receiving
    let ub = newUnboundedChannel[int]()
    for i in 0 ..< 10_000:
      check ub.trySend(i)
    check ub.len == 10_000 and ub.capacity == high(int)

  test "bad sizes raise ValueError with the library's message":
    expect ValueError:
      discard newChannel[int](0, SPSC)
    expect ValueError:
      discard newChannel[int](-1, MPSC)
    expect ValueError:
      discard newChannel[int](1 shl 31, MPSC)
    try:
      discard newChannel[int](0, SPSC)
    except ValueError as e:
      check "capacity" in e.msg

  test "send after close raises ChannelClosedError, receivers drain first":
    let ch = newChannel[string](4, MPSC)
    ch.sendBlocking("kept")
    ch.close()
    check ch.isClosed
    expect ChannelClosedError:
      ch.sendBlocking("late")
    try:
      ch.sendBlocking("late")
    except ChannelError as e:
      check e of ref NimAsyncError
      check e.unsentValue(string) == "late"
    expect ChannelClosedError:
      discard ch.trySend("late")
    check ch.recvBlocking() == "kept"
    expect ChannelClosedError:
      discard ch.recvBlocking()
    var s: string
    check not ch.tryReceive(s)

  test "a thread sends 100,000 strings and another receives them intact":
    let ch = newChannel[string](1024, SPSC)
    var t: Thread[nimsync.Channel[string]]
    createThread(t, sendStrings, ch)
    var i = 0
    for msg in ch:
      check msg == "message " & $i & " " & repeat('x', i mod 17)
      inc i
    joinThread(t)
    check i == 100_000

  test "close wakes a blocked receiver":
    let ch = newChannel[int](4, SPSC)
    var outcome = ""
    var t: Thread[(nimsync.Channel[int], ptr string)]
    createThread(t, receiveOne, (ch, addr outcome))
    ch.close()
    joinThread(t)
    check outcome == "closed"

  test "timeouts":
    let ch = newChannel[int](1, MPMC)
    let t0 = epochTime()
    expect ChannelTimeoutError:
      discard ch.recvBlocking(initDuration(milliseconds = 30))
    check epochTime() - t0 >= 0.029
    ch.sendBlocking(1)
    try:
      ch.sendBlocking(2, 10)
      check false
    except ChannelTimeoutError as e:
      check e.unsentValue(int) == 2

  test "MPSC: several producer threads, every item exactly once":
    let ch = newChannel[int](64, MPSC)
    var threads: array[3, Thread[(nimsync.Channel[int], int)]]
    for p in 0 ..< 3:
      createThread(threads[p], produceRange, (ch, p))
    var got: seq[int]
    for _ in 0 ..< 60_000:
      got.add ch.recvBlocking()
    joinThreads(threads)
    got.sort()
    var expected: seq[int]
    for p in 0 ..< 3:
      for i in 0 ..< 20_000:
        expected.add p * 1_000_000 + i
    check got == expected

  test "refs and seqs cross threads":
    let ch = newChannel[Node](16, SPSC)
    var t: Thread[nimsync.Channel[Node]]
    createThread(t, sendRefs, ch)
    var n = 0
    for node in ch:
      check node.value == n and node.children == @[n, n + 1]
      inc n
    joinThread(t)
    check n == 1000

  test "items left inside are destroyed with the last copy":
    destroyed.store(0)
    block:
      let ch = newChannel[Tracked](16, MPMC)
      for i in 1 .. 10:
        check ch.trySend(Tracked(id: i, payload: "p" & $i))
      var t: Tracked
      check ch.tryReceive(t) and t.id == 1
      let copy = ch
      check copy.len == 9
    check destroyed.load == 10     # 9 left inside + the one received
