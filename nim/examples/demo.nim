## nimsync from Nim: a producer thread and a consumer thread share a channel
## of strings, then a thread feeds an asyncdispatch coroutine.

import std/[asyncdispatch, monotimes, times, strutils]
import nimsync

const N = 1_000_000

proc producer(ch: nimsync.Channel[string]) {.thread.} =
  for i in 1 .. N:
    ch.sendBlocking("item " & $i)
  ch.close()              # the consumer drains what is left, then stops

proc threadsDemo() =
  let ch = newChannel[string](1024, SPSC)
  echo "[nim] nimsync ", libraryVersion(), ": SPSC channel, ", N, " strings from a producer thread"
  let t0 = getMonoTime()
  var t: Thread[nimsync.Channel[string]]
  createThread(t, producer, ch)
  var count, total = 0
  for msg in ch:
    inc count
    total += parseInt(msg[5 .. ^1])
    if count mod 200_000 == 0:
      stdout.write "\r[nim] received ", count, " / ", N
      stdout.flushFile()
  joinThread(t)
  let secs = (getMonoTime() - t0).inNanoseconds.float / 1e9
  let ok = total == N * (N + 1) div 2
  echo "\r[nim] received ", count, " strings, sum ", total, " (", (if ok: "correct" else: "WRONG"),
       "), ", formatFloat(count.float / secs / 1e6, ffDecimal, 2), " M strings/s"

proc numbers(ch: nimsync.Channel[int]) {.thread.} =
  for i in 0 ..< 100_000:
    ch.sendBlocking(i)
  ch.close()

proc asyncDemo() =
  let ch = newChannel[int](64, SPSC)
  var t: Thread[nimsync.Channel[int]]
  let t0 = getMonoTime()
  createThread(t, numbers, ch)
  proc consume(): Future[int] {.async.} =
    while true:
      try:
        result += await ch.recv()   # the loop sleeps on a descriptor; the thread wakes it
      except ChannelClosedError:
        return
  let total = waitFor consume()
  joinThread(t)
  let secs = (getMonoTime() - t0).inNanoseconds.float / 1e9
  echo "[nim] asyncdispatch consumer got 100000 ints from a thread, sum ", total, ", ",
       formatFloat(100_000 / secs / 1e6, ffDecimal, 2), " M items/s"

threadsDemo()
asyncDemo()
