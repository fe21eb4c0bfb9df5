## The original scheduler API on the real pool: the guide's snippet compiles
## and reports the pool's real numbers; Nim closures run on the workers.

import std/[atomics, strutils, unittest]
import nimsync

var ran: Atomic[int]

proc bump() {.gcsafe.} =
  # Relaxed: a count read after the pool is shut down (which joins the workers).
  discard ran.fetchAdd(1, moRelaxed)

proc sendSquare(done: nimsync.Channel[int], n: int): proc () {.gcsafe.} =
  result = proc () {.gcsafe.} = done.sendBlocking(n * n)

proc squareLater(done: nimsync.Channel[int], n: int): proc () {.gcsafe.} =
  ## A task that spawns a sibling (which goes to its worker's own deque).
  ## Each closure comes from its own proc: a task owns its environment.
  result = proc () {.gcsafe.} =
    getScheduler().spawn(sendSquare(done, n))

proc spawnSharingClosure(pool: WorkStealingScheduler) =
  let done = newChannel[int](1, MPMC)
  # `done` lives in an environment this proc's frame shares with the closure.
  pool.spawn(proc () {.gcsafe.} = done.sendBlocking(1))
  discard done.recvBlocking()

suite "scheduler":
  test "the guide's snippet reports the real pool's numbers":
    # The v0.2 guide's example, verbatim:
    let scheduler = initScheduler(numWorkers = 4)
    recordTaskSpawn(scheduler)
    let imbalance = getLoadImbalance(scheduler)
    let metrics = getMetricsSnapshot(scheduler)
    check imbalance == 0.0            # nothing ran yet
    check metrics.workerCount == 4
    check metrics.recordedSpawns >= 1
    check scheduler.workerCount == 4

    ran.store(0)
    for i in 1 .. 1000:
      scheduler.spawn(bump)
    recordTaskComplete(scheduler)
    scheduler.shutdown()              # drains, then joins the workers
    check ran.load == 1000
    let after = getMetricsSnapshot(scheduler)
    check after.totalTasksSpawned == 1000
    check after.totalTasksCompleted == 1000
    check after.injected == 1000
    check after.workers.len == 4
    var executed = 0'u64
    for w in after.workers:
      executed += w.executed
    check executed == 1000
    check after.queued == 0
    check after.recordedCompletions >= 1
    let imbalanceAfter = getLoadImbalance(scheduler)
    check imbalanceAfter >= 0.0 and imbalanceAfter <= 3.0   # at most 4x the mean of 4
    let text = formatMetrics(after)
    check "Tasks Completed: 1000" in text
    check "Worker 3:" in text
    echo text

  test "getScheduler returns the default pool":
    let a = initScheduler(2)
    let b = getScheduler()
    check b.workerCount == 2
    let victim = selectStealVictim(b, 0)
    check victim == 1                 # the only other worker
    check selectStealVictim(b, 1) == 0
    discard a

  test "closures run on the workers and spawn from tasks":
    let pool = initScheduler(2)
    let done = newChannel[int](64, MPMC)
    for i in 0 ..< 10:
      pool.spawn(squareLater(done, i))
    var total = 0
    for _ in 0 ..< 10:
      total += done.recvBlocking()
    check total == 285
    let m = getMetricsSnapshot(pool)
    var spawnedByWorkers = 0'u64
    for w in m.workers:
      spawnedByWorkers += w.spawned
    check spawnedByWorkers == 10      # the inner spawns came from workers
    check m.totalTasksCompleted >= 10

  test "bad arguments raise":
    expect ValueError:
      discard initScheduler(-1)
    expect ValueError:
      discard initScheduler(5000)
    expect ValueError:
      getScheduler().spawn(nil)
    expect ValueError:
      spawnSharingClosure(getScheduler())
    var unset: WorkStealingScheduler
    expect ValueError:
      discard unset.workerCount
