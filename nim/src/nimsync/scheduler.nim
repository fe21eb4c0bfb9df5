## The work-stealing scheduler: a pool of worker threads that runs Nim procs
## and closures, with live metrics — the original nimsync ``scheduler`` API
## on the runtime's real pool.
##
## .. code-block:: nim
##   import nimsync
##
##   let scheduler = initScheduler(numWorkers = 4)
##   for i in 1 .. 1000:
##     scheduler.spawn(proc () {.gcsafe.} = discard)
##   scheduler.shutdown()                 # runs what is queued, joins the workers
##   let imbalance = getLoadImbalance(scheduler)
##   let metrics = getMetricsSnapshot(scheduler)
##   echo formatMetrics(metrics)          # 1000 tasks executed, per worker
##
## Each worker owns a deque; tasks spawned from outside the pool go to a
## global queue, tasks spawned by a task to its worker's deque. Idle workers
## take from the global queue, then steal from the worker they last stole
## from, then from the others in random order, backing off under
## contention; with nothing to do they sleep until a spawn wakes one (no
## timed polling). Every counter is kept by the pool itself without locks.
##
## What the original's calls do now:
##
## =========================  ===============================================
## `initScheduler`            starts a real pool and makes it the default
##                            (`getScheduler`, task groups)
## `getScheduler`             the default pool: the last `initScheduler`, or
##                            the process-wide pool with one worker per core
## `recordTaskSpawn`,         count work run *outside* the pool (your own
## `recordTaskComplete`       threads or event loop), shown beside the pool's
##                            own counts; the pool counts its tasks itself
## `getLoadImbalance`         the pool's real imbalance (0 = even)
## `selectStealVictim`        the worker with the deepest queue right now
## `getMetricsSnapshot`       a snapshot of the pool's per-worker counters
## `formatMetrics`            that snapshot as text
## =========================  ===============================================
##
## **Tasks** run on the pool's threads. A task's closure moves to the worker
## and must be the only reference to its environment: ORC counts references
## without atomics and keeps its cycle candidates per thread, so an
## environment shared with the spawning code would be corrupted. Make each
## task's closure in a proc of its own that captures only what the task
## needs (values, `Channel[T] <channels.html#Channel>`_ handles, ``ptr``;
## no ``ref`` used elsewhere) and pass it directly; `spawn` raises
## ``ValueError`` for a closure whose environment is shared. A plain proc
## (no environment) is always fine. An exception
## escaping a task given to `spawn` is written to stderr and counted in
## `SchedulerMetrics.uncaughtErrors`; use a `TaskGroup <groups.html>`_ to
## receive it instead.

import std/[atomics, locks, math]
import private/[abi, handoff]
import errors

type
  WorkStealingScheduler* = object
    ## A handle on a pool of worker threads. Copies share the pool (it may
    ## be copied into other threads); a pool made by `initScheduler` stops
    ## when it is no longer the default and its last copy is gone.
    handle: ptr SchedulerHandle

  WorkerMetrics* = object
    ## Counters of one worker.
    spawned*: uint64       ## tasks spawned by tasks running on this worker
    executed*: uint64      ## tasks this worker ran
    stolenBy*: uint64      ## tasks this worker stole from others
    stolenFrom*: uint64    ## tasks others stole from this worker
    queueDepth*: uint64    ## tasks waiting in its deque at the snapshot
    parks*: uint64         ## times it went to sleep for lack of work
    panics*: uint64        ## tasks that failed inside the runtime (caught)

  SchedulerMetrics* = object
    ## A snapshot of a pool (`getMetricsSnapshot`).
    workerCount*: int               ## worker threads in the pool
    totalTasksSpawned*: uint64      ## tasks spawned on the pool
    totalTasksCompleted*: uint64    ## tasks the pool ran
    totalSteals*: uint64            ## tasks moved between workers by stealing
    totalParks*: uint64             ## times a worker went to sleep for lack of work
    injected*: uint64               ## tasks spawned from outside the pool
    queued*: uint64                 ## tasks waiting (global queue and deques) at the snapshot
    averageLoadBalance*: float      ## the load imbalance (see `getLoadImbalance`)
    recordedSpawns*: uint64         ## `recordTaskSpawn` calls
    recordedCompletions*: uint64    ## `recordTaskComplete` calls
    uncaughtErrors*: uint64         ## exceptions that escaped `spawn`ed tasks
    workers*: seq[WorkerMetrics]    ## per worker, by index

  TaskBox = object
    fn: proc () {.closure, gcsafe.}

var
  defaultLock: Lock
  defaultPool: ptr SchedulerHandle   # owned; nil until first use
  recordedSpawns, recordedCompletions, uncaughtErrors: Atomic[uint64]

initLock(defaultLock)

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc `=destroy`*(s: var WorkStealingScheduler) =
  ## Releases this copy's handle on the pool.
  if s.handle != nil:
    nimsync_scheduler_free(s.handle)
    s.handle = nil

proc `=copy`*(dest: var WorkStealingScheduler, src: WorkStealingScheduler) =
  ## Shares the pool: the copy has its own handle.
  if dest.handle == src.handle:
    return
  `=destroy`(dest)
  if src.handle != nil:
    check nimsync_scheduler_clone(src.handle, addr dest.handle)

proc notInitialized() {.noreturn.} =
  raise newException(ValueError, "the WorkStealingScheduler is not initialized: use initScheduler or getScheduler")

proc rawHandle*(s: WorkStealingScheduler): ptr SchedulerHandle {.inline.} =
  ## The C handle (internal; valid while `s` lives; nil before
  ## `initScheduler`/`getScheduler`).
  s.handle

proc initScheduler*(numWorkers: int = 0): WorkStealingScheduler =
  ## Starts a pool of `numWorkers` threads (0: one per available core; at
  ## most 1024) and makes it the default one, returned by `getScheduler`
  ## and used by task groups. The previous default pool stops once its
  ## last copy is gone (queued tasks still run). Raises ``ValueError`` for
  ## a negative or too large count.
  ##
  ## .. code-block:: nim
  ##   let scheduler = initScheduler(numWorkers = 4)
  ##   doAssert scheduler.workerCount == 4
  if numWorkers < 0:
    raise newException(ValueError, "numWorkers must be 0 (one per core) or more, got " & $numWorkers)
  check nimsync_scheduler_new(csize_t(numWorkers), addr result.handle)
  var extra: ptr SchedulerHandle
  check nimsync_scheduler_clone(result.handle, addr extra)
  var previous: ptr SchedulerHandle
  withLock defaultLock:
    previous = defaultPool
    defaultPool = extra
  # Freed outside the lock: the last handle of a pool waits for its workers.
  nimsync_scheduler_free(previous)

proc getScheduler*(): WorkStealingScheduler {.gcsafe.} =
  ## The default pool: the one the last `initScheduler` started, or else
  ## the process-wide pool (one worker per available core, started on first
  ## use and never stopped).
  {.cast(gcsafe).}:
    withLock defaultLock:
      if defaultPool == nil:
        check nimsync_scheduler_global(addr defaultPool)
      check nimsync_scheduler_clone(defaultPool, addr result.handle)

proc workerCount*(s: WorkStealingScheduler): int =
  ## Number of worker threads.
  if s.handle == nil: notInitialized()
  var n: csize_t
  check nimsync_scheduler_workers(s.handle, addr n)
  int(n)

# --- Spawning ------------------------------------------------------------------

proc runBox(arg: pointer) {.cdecl, gcsafe, raises: [].} =
  let box = cast[ptr TaskBox](arg)
  let fn = move box.fn
  deallocShared(box)
  try:
    fn()
  except Exception as e:   # nothing may unwind into the runtime's frames
    # Relaxed: a statistic.
    discard uncaughtErrors.fetchAdd(1, moRelaxed)
    try:
      stderr.writeLine("nimsync: a task raised ", $e.name, ": ", e.msg)
    except IOError:
      discard

proc dropBox(arg: pointer) {.cdecl, gcsafe, raises: [].} =
  let box = cast[ptr TaskBox](arg)
  try:
    `=destroy`(box[])
  except Exception:
    discard   # a destructor that raises: nothing may unwind into the runtime
  deallocShared(box)

proc spawn*(s: WorkStealingScheduler, task: sink proc () {.closure, gcsafe.}) =
  ## Runs `task` on one of the pool's workers; returns at once. From a task
  ## running on the pool, it goes to that worker's own deque (the others
  ## steal it if they are idle). After `shutdown` the task runs on the
  ## calling thread instead.
  ##
  ## The closure moves to the worker: it must be the only reference to its
  ## environment (see the module docs), or this raises ``ValueError``.
  ##
  ## .. code-block:: nim
  ##   proc answer(done: nimsync.Channel[int]): proc () {.gcsafe.} =
  ##     result = proc () {.gcsafe.} = done.sendBlocking(42)
  ##
  ##   let done = newChannel[int](16, MPSC)
  ##   getScheduler().spawn(answer(done))
  ##   doAssert done.recvBlocking() == 42
  if s.handle == nil: notInitialized()
  if task.isNil:
    raise newException(ValueError, "task is nil")
  checkHandoff(task, "spawn")
  let box = cast[ptr TaskBox](allocShared0(sizeof(TaskBox)))
  box.fn = task
  let status = nimsync_scheduler_spawn(s.handle, runBox, box, dropBox)
  if status != StatusOk:
    dropBox(box)
    raiseStatus(status)

proc shutdown*(s: WorkStealingScheduler) =
  ## Stops the pool: its workers run every task still queued (and the tasks
  ## those spawn), then exit; this waits for them. Later spawns run on the
  ## calling thread. Raises ``ValueError`` for the process-wide pool, which
  ## is never stopped.
  if s.handle == nil: notInitialized()
  check nimsync_scheduler_shutdown(s.handle)

# --- Metrics -------------------------------------------------------------------

proc recordTaskSpawn*(scheduler: WorkStealingScheduler) =
  ## Counts one task started *outside* the pool (on your own threads or
  ## event loop) so that it shows in `getMetricsSnapshot` beside the pool's
  ## own counts (`SchedulerMetrics.recordedSpawns`). Tasks given to `spawn`
  ## or to a task group are counted by the pool itself: do not record them.
  discard scheduler
  # Relaxed: a statistic; each counter is exact on its own.
  discard recordedSpawns.fetchAdd(1, moRelaxed)

proc recordTaskComplete*(scheduler: WorkStealingScheduler) =
  ## Counts one task finished outside the pool (see `recordTaskSpawn`).
  discard scheduler
  # Relaxed: a statistic.
  discard recordedCompletions.fetchAdd(1, moRelaxed)

proc snapshot(s: WorkStealingScheduler): (SchedulerMetricsC, seq[WorkerMetricsC]) =
  if s.handle == nil: notInitialized()
  var totals: SchedulerMetricsC
  var per = newSeq[WorkerMetricsC](s.workerCount)
  check nimsync_scheduler_get_metrics(s.handle, addr totals, addr per[0], csize_t(per.len))
  per.setLen(min(per.len, int(totals.workers)))
  (totals, per)

proc getMetricsSnapshot*(scheduler: WorkStealingScheduler): SchedulerMetrics =
  ## A snapshot of the pool's counters, per worker and in total. Reading
  ## takes no lock and does not slow the workers; each counter is exact,
  ## though the snapshot is not a single instant.
  ##
  ## .. code-block:: nim
  ##   let m = getMetricsSnapshot(getScheduler())
  ##   echo m.totalTasksCompleted, " tasks run on ", m.workerCount, " workers"
  let (totals, per) = snapshot(scheduler)
  result = SchedulerMetrics(
    workerCount: int(totals.workers),
    totalTasksSpawned: totals.spawned,
    totalTasksCompleted: totals.executed,
    totalSteals: totals.stolen,
    injected: totals.injected,
    queued: totals.injectorDepth,
    averageLoadBalance: totals.loadImbalance,
    # Relaxed: statistics.
    recordedSpawns: recordedSpawns.load(moRelaxed),
    recordedCompletions: recordedCompletions.load(moRelaxed),
    uncaughtErrors: uncaughtErrors.load(moRelaxed))
  for w in per:
    result.totalParks += w.parks
    result.queued += w.queueDepth
    result.workers.add WorkerMetrics(spawned: w.spawned, executed: w.executed, stolenBy: w.stolenBy,
                                     stolenFrom: w.stolenFrom, queueDepth: w.queueDepth,
                                     parks: w.parks, panics: w.panics)

proc getLoadImbalance*(scheduler: WorkStealingScheduler): float =
  ## How unevenly the pool's work was spread: the busiest worker's count of
  ## tasks run over the mean, minus one. 0 means perfectly even (and is the
  ## value before any task ran); 1 means the busiest worker ran twice its
  ## share.
  snapshot(scheduler)[0].loadImbalance

proc selectStealVictim*(scheduler: WorkStealingScheduler, currentWorkerId: int): int =
  ## The worker other than `currentWorkerId` that a thief would do best to
  ## steal from right now: the one with the most tasks queued in its deque
  ## (ties: the one that has had the most stolen from it, then the lowest
  ## index). The pool's workers pick their own victims internally (the last
  ## successful one first, then random order); this reports the same kind
  ## of choice from the live queue depths, for monitoring and tests. With
  ## one worker, returns 0.
  let (_, per) = snapshot(scheduler)
  if per.len <= 1:
    return 0
  result = -1
  for i, w in per:
    if i == currentWorkerId:
      continue
    if result < 0 or w.queueDepth > per[result].queueDepth or
        (w.queueDepth == per[result].queueDepth and w.stolenFrom > per[result].stolenFrom):
      result = i

proc formatMetrics*(metrics: SchedulerMetrics): string =
  ## The snapshot as readable text, one line per total and per worker.
  ##
  ## .. code-block:: nim
  ##   echo formatMetrics(getMetricsSnapshot(getScheduler()))
  let m = metrics
  let completion = if m.totalTasksSpawned == 0: 0.0
                   else: float(m.totalTasksCompleted) / float(m.totalTasksSpawned) * 100.0
  result = "SchedulerMetrics(\n" &
    "  Workers: " & $m.workerCount & "\n" &
    "  Tasks Spawned: " & $m.totalTasksSpawned & " (" & $m.injected & " from outside the pool)\n" &
    "  Tasks Completed: " & $m.totalTasksCompleted & " (" & $completion.round(2) & "%)\n" &
    "  Tasks Queued: " & $m.queued & "\n" &
    "  Successful Steals: " & $m.totalSteals & "\n" &
    "  Worker Parks: " & $m.totalParks & "\n" &
    "  Load Imbalance: " & $m.averageLoadBalance.round(3) & "\n" &
    "  Recorded Outside The Pool: " & $m.recordedSpawns & " spawned, " &
      $m.recordedCompletions & " completed\n" &
    "  Uncaught Task Errors: " & $m.uncaughtErrors & "\n"
  for i, w in m.workers:
    result.add "  Worker " & $i & ": executed " & $w.executed & ", spawned " & $w.spawned &
      ", stole " & $w.stolenBy & ", stolen from " & $w.stolenFrom & ", queued " & $w.queueDepth &
      ", parks " & $w.parks & "\n"
  result.add ")"
