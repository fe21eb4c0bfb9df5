## `select` over receive and send branches, timeout and default.

import std/[unittest, times, os]
import nimsync

proc sendLater(ch: nimsync.Channel[string]) {.thread.} =
  sleep(20)
  ch.sendBlocking("late")

suite "select":
  test "the ready branch runs; default when none is ready":
    let a = newChannel[int](4, MPMC)
    let b = newChannel[string](4, MPMC)
    var ran = ""
    select:
      x <- a:
        ran = "a" & $x
      default:
        ran = "default"
    check ran == "default"
    b.sendBlocking("hi")
    select:
      x <- a:
        ran = "a" & $x
      recv(b, s):
        ran = "b " & s
    check ran == "b hi"

  test "send branches, and values of unchosen sends are destroyed":
    let full = newChannel[string](1, MPMC)
    full.sendBlocking("occupied")
    let room = newChannel[string](1, MPMC)
    var ran = ""
    select:
      send(full, "never"):
        ran = "full"
      send(room, "sent"):
        ran = "room"
    check ran == "room"
    check room.recvBlocking() == "sent"
    check full.recvBlocking() == "occupied"
    check full.isEmpty

  test "timeout, and waking for a thread's send":
    let a = newChannel[string](2, MPSC)
    var ran = ""
    let t0 = epochTime()
    select:
      x <- a:
        ran = x
      timeout(30):
        ran = "timeout"
    check ran == "timeout"
    check epochTime() - t0 >= 0.029
    var t: Thread[nimsync.Channel[string]]
    createThread(t, sendLater, a)
    select:
      x <- a:
        ran = x
      timeout(initDuration(seconds = 10)):
        ran = "timeout"
    joinThread(t)
    check ran == "late"

  test "a closed channel raises ChannelClosedError":
    let a = newChannel[int](2, MPMC)
    a.close()
    expect ChannelClosedError:
      select:
        x <- a:
          discard x

  test "fairness over 10,000 rounds":
    let a = newChannel[int](2, MPMC)
    let b = newChannel[int](2, MPMC)
    a.sendBlocking(0)
    b.sendBlocking(0)
    var na, nb = 0
    for _ in 0 ..< 10_000:
      select:
        x <- a:
          inc na
          a.sendBlocking(x)
        x <- b:
          inc nb
          b.sendBlocking(x)
    check na >= 2_000 and nb >= 2_000
