## Channels awaited on asyncdispatch, with plain threads on the other end.

import std/[unittest, asyncdispatch, times, os]
import nimsync

proc produce(ch: nimsync.Channel[int]) {.thread.} =
  for i in 1 .. 20_000:
    ch.sendBlocking(i)
  ch.close()

proc consume(args: (nimsync.Channel[string], ptr int)) {.thread.} =
  for s in args[0]:
    args[1][] += s.len

proc lateSend(ch: nimsync.Channel[int]) {.thread.} =
  sleep(200)
  ch.sendBlocking(42)

suite "async":
  test "await send and recv in one loop":
    let ch = newChannel[string](2, MPMC)
    proc main() {.async.} =
      await ch.send("a")
      await ch.send("b")
      let fut = ch.send("c")          # full: waits for room
      check not fut.finished
      check (await ch.recv()) == "a"
      await fut
      check (await ch.recv()) == "b"
      check (await ch.recv()) == "c"
    waitFor main()

  test "an async consumer with a plain thread producing":
    let ch = newChannel[int](64, SPSC)
    var t: Thread[nimsync.Channel[int]]
    createThread(t, produce, ch)
    proc main(): Future[int] {.async.} =
      var total = 0
      while true:
        try:
          total += await ch.recv()
        except ChannelClosedError:
          return total
    check waitFor(main()) == 20_000 * 20_001 div 2
    joinThread(t)

  test "an async producer with a plain thread consuming":
    let ch = newChannel[string](8, SPSC)
    var total = 0
    var t: Thread[(nimsync.Channel[string], ptr int)]
    createThread(t, consume, (ch, addr total))
    proc main() {.async.} =
      for i in 0 ..< 5_000:
        await ch.send("x" & $i)
      ch.close()
    waitFor main()
    joinThread(t)
    var expected = 0
    for i in 0 ..< 5_000: expected += ("x" & $i).len
    check total == expected

  test "recv with a timeout takes nothing after it fires":
    let ch = newChannel[int](4, MPMC)
    proc main() {.async.} =
      let t0 = epochTime()
      try:
        discard await ch.recv(20)
        check false
      except ChannelTimeoutError:
        check epochTime() - t0 >= 0.019
      ch.sendBlocking(5)
      check (await ch.recv(initDuration(seconds = 5))) == 5
    waitFor main()

  test "the loop sleeps, not polls, until a thread sends":
    let ch = newChannel[int](4, MPSC)
    var t: Thread[nimsync.Channel[int]]
    createThread(t, lateSend, ch)
    let cpu0 = cpuTime()
    let wall0 = epochTime()
    check waitFor(ch.recv()) == 42
    joinThread(t)
    let wall = epochTime() - wall0
    check wall >= 0.19
    check (cpuTime() - cpu0) / wall < 0.05

  test "a closed channel fails pending receives and sends with the value":
    let ch = newChannel[string](1, MPMC)
    proc main() {.async.} =
      let r = ch.recv()
      ch.close()
      try:
        discard await r
        check false
      except ChannelClosedError:
        discard
      try:
        await ch.send("late")
        check false
      except ChannelClosedError as e:
        check e.unsentValue(string) == "late"
    waitFor main()
