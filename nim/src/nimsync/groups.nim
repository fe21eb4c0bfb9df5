## Task groups: structured concurrency on the work-stealing pool — the
## original nimsync ``TaskGroup`` API, with tasks that run on real worker
## threads and a join that asyncdispatch can await without blocking.
##
## .. code-block:: nim
##   import nimsync, std/asyncdispatch
##
##   proc total(): Future[int] {.async.} =
##     var g = initTaskGroup()
##     let a = g.spawn(proc (): int = 20)
##     let b = g.spawn(proc (): int = 22)
##     await g.joinAll()          # the loop keeps running meanwhile
##     return a.read + b.read
##
##   doAssert waitFor(total()) == 42
##
## From a thread, `wait` blocks until the group is done (the thread parks;
## nothing polls). `joinAll` is woken through the loop's readiness
## descriptor when the last task finishes.
##
## **Tasks** are ordinary procs or closures, run on the scheduler's worker
## threads (`getScheduler <scheduler.html#getScheduler>`_ unless another
## pool is given). A task may take the group's `CancelToken
## <cancel.html#CancelToken>`_ and hand it to blocking calls
## (``recvBlocking(ch, token)``) or check it (``token.checkCancelled()``).
## Its result lands in the `TaskHandle` that `spawn` returns. As with
## spawning on the `scheduler <scheduler.html>`_, a task's closure moves to the worker and must be the only
## reference to its environment: make it in a proc of its own that captures
## only what it needs (values, channels, ``ptr``, a `TaskGroup`; no ``ref``
## used elsewhere) and pass it directly, or `spawn` raises ``ValueError``.
##
## .. code-block:: nim
##   proc square(n: int): proc (): int {.gcsafe.} =
##     result = proc (): int {.gcsafe.} = n * n
##
##   var g = initTaskGroup()
##   let h = g.spawn(square(7))
##   g.wait()
##   doAssert h.read == 49
##
## **Failures** follow the group's `TaskPolicy`:
##
## ==================  =======================================================
## ``FailFast``        the first task that raises cancels the group: tasks not
##                     started are skipped, running ones see the token; the
##                     join raises `TaskGroupError` with every failure
## ``CollectErrors``   failures do not cancel the others; the join raises
##                     `TaskGroupError` with every failure
## ``IgnoreErrors``    failures are counted (`failed`) and their tasks read as
##                     ``default(T)``; the join does not raise for them
## ==================  =======================================================
##
## A task that raises `AsyncCancelledError` or `CancellationError` after
## the group was cancelled stopped because of it: that is not a failure.
##
## **Cancellation and nesting.** A group's token is a child of the current
## cancel scope (`withCancelScope <cancel.html#withCancelScope>`_) when
## there is one, or of a parent group (``initTaskGroup(parent = g)``):
## cancelling the outer one cancels the group, never the other way round.
## A group with a ``timeout`` is cancelled when it passes; its join then
## raises `TimeoutError <cancel.html#TimeoutError>`_. Nothing outlives its
## group: a group dropped without a join is cancelled and waits for its
## tasks.

import std/[asyncdispatch, algorithm, atomics, importutils, locks]
import private/[abi, handoff, loop]
import errors, cancel, channels, scheduler

privateAccess(CancelToken)
privateAccess(WorkStealingScheduler)

type
  TaskId* = distinct uint64
    ## A task's position in its group's spawn order (0 for the first).

  TaskPolicy* {.pure.} = enum
    ## How a group handles failed tasks (see the module docs).
    FailFast = "fail_fast"         ## cancel the group on the first failure
    CollectErrors = "collect_all"  ## collect every failure, keep going
    IgnoreErrors = "ignore"        ## count failures, keep going, do not raise

  TaskState* {.pure.} = enum
    ## Where a task is in its life.
    Pending = 0    ## spawned, not started yet
    Running = 1    ## running on a worker
    Completed = 2  ## returned (or failed under ``IgnoreErrors``)
    Failed = 3     ## raised
    Cancelled = 4  ## skipped because the group was cancelled first, or
                   ## stopped by the cancellation

  TaskGroupError* = object of NimAsyncError
    ## Raised by a join when tasks failed: every failure, in spawn order.
    errors*: seq[ref CatchableError]  ## what each failed task raised
    taskIds*: seq[TaskId]             ## which task raised each of `errors`
    skipped*: int                     ## tasks that never ran (group cancelled first)

  GroupState = object
    ## What the copies of one group and its running tasks share.
    refs: Atomic[int]                 # TaskGroup copies alive
    handle: ptr TaskGroupHandle       # owned
    token: ptr CancelTokenHandle      # owned reference to the group's token
    policy: TaskPolicy
    maxTasks: int
    hasDeadline: bool
    cancelRequested: Atomic[bool]     # `cancel` was called
    spawned, completed, failed, running, skipped: Atomic[int]
    lock: Lock
    errors: seq[(int, ref CatchableError)]   # guarded by `lock`

  TaskGroup* = object
    ## A set of tasks joined as a whole. Copies share the group (a task may
    ## capture one to spawn siblings); the last copy of a group that was not
    ## joined cancels it and waits for its tasks.
    st: ptr GroupState

  Cell[T] = object
    ## The result slot shared by a task and its handles.
    refs: Atomic[int]
    state: Atomic[int]                # a TaskState
    index: int
    when T isnot void:
      value: T
    error: ref CatchableError

  TaskHandle*[T] = object
    ## The future-like result of one task (`spawn`): `read` its value after
    ## the join. Copies share it.
    cell: ptr Cell[T]

  Box[T] = object
    ## One spawned task on its way to a worker: one of the two procs.
    group: ptr GroupState
    cell: ptr Cell[T]
    withToken: proc (token: CancelToken): T {.closure, gcsafe.}
    plain: proc (): T {.closure, gcsafe.}

var runningIn {.threadvar.}: ptr GroupState
  ## The group whose task (or skipped task's cleanup) this worker is in.

proc `==`*(a, b: TaskId): bool {.borrow.}
  ## Whether two ids name the same position.
proc `$`*(id: TaskId): string {.borrow.}
  ## The id as a number.

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc notInitialized() {.noreturn.} =
  raise newException(ValueError, "the TaskGroup is not initialized: create it with initTaskGroup")

# --- Result cells and handles ----------------------------------------------------

proc releaseCell[T](cell: ptr Cell[T]) {.raises: [].} =
  # AcqRel: the last release sees every write made through other references.
  if cell.refs.fetchSub(1, moAcquireRelease) == 1:
    try:
      `=destroy`(cell[])
    except Exception:
      discard   # a destructor that raises: nothing may unwind into the runtime
    deallocShared(cell)

proc `=destroy`*[T](h: var TaskHandle[T]) =
  ## Releases this copy of the handle.
  if h.cell != nil:
    releaseCell(h.cell)
    h.cell = nil

proc `=copy`*[T](dest: var TaskHandle[T], src: TaskHandle[T]) =
  ## Shares the result slot.
  if dest.cell == src.cell:
    return
  if src.cell != nil:
    # Relaxed: taking a reference publishes nothing (as with Arc::clone).
    discard src.cell.refs.fetchAdd(1, moRelaxed)
  `=destroy`(dest)
  dest.cell = src.cell

proc cellOf[T](h: TaskHandle[T]): ptr Cell[T] =
  if h.cell == nil:
    raise newException(ValueError, "the TaskHandle is not initialized: it comes from spawn")
  h.cell

proc state*[T](h: TaskHandle[T]): TaskState =
  ## Where the task is now.
  # Acquire: pairs with the task's Release, so a finished state shows its value.
  TaskState(cellOf(h).state.load(moAcquire))

proc id*[T](h: TaskHandle[T]): TaskId =
  ## The task's position in its group's spawn order.
  TaskId(cellOf(h).index)

proc finished*[T](h: TaskHandle[T]): bool =
  ## Whether the task has completed, failed or been cancelled.
  h.state in {TaskState.Completed, TaskState.Failed, TaskState.Cancelled}

proc failed*[T](h: TaskHandle[T]): bool =
  ## Whether the task raised (or, under ``IgnoreErrors``, raised and was
  ## read as ``default(T)``: then `error` is set but `state` is
  ## ``Completed``).
  h.state == TaskState.Failed or (h.finished and cellOf(h).error != nil and
                                  h.state != TaskState.Cancelled)

proc error*[T](h: TaskHandle[T]): ref CatchableError =
  ## What the task raised, or nil. Read it after the join.
  let cell = cellOf(h)
  if h.finished: cell.error else: nil

proc read*[T](h: TaskHandle[T]): T =
  ## The task's value, after the group was joined (or once `finished`).
  ## Raises what the task raised if it failed, `AsyncCancelledError` if it
  ## was cancelled before it could finish, and ``ValueError`` if it has not
  ## finished yet.
  ##
  ## .. code-block:: nim
  ##   let h = g.spawn(proc (): string = "done")
  ##   g.wait()
  ##   doAssert h.read == "done"
  let cell = cellOf(h)
  case h.state
  of TaskState.Completed:
    when T isnot void:
      result = cell.value
  of TaskState.Failed:
    raise cell.error
  of TaskState.Cancelled:
    if cell.error != nil:
      raise cell.error
    raise newException(AsyncCancelledError, "task " & $cell.index & " was skipped: its group was cancelled first")
  of TaskState.Pending, TaskState.Running:
    raise newException(ValueError, "task " & $cell.index & " has not finished: join its group first")

# --- Group state -------------------------------------------------------------------

proc freeState(st: ptr GroupState) {.raises: [].} =
  ## Frees the group (cancelling and waiting for unfinished tasks) and its state.
  nimsync_task_group_free(st.handle)
  nimsync_cancel_token_free(st.token)
  try:
    `=destroy`(st.errors)
  except Exception:
    discard
  deinitLock(st.lock)
  deallocShared(st)

proc freeStateLater(arg: pointer) {.cdecl, gcsafe, raises: [].} =
  freeState(cast[ptr GroupState](arg))

proc releaseState(st: ptr GroupState) {.raises: [].} =
  # AcqRel: the last release sees every write made through other copies.
  if st.refs.fetchSub(1, moAcquireRelease) != 1:
    return
  if runningIn != st:
    freeState(st)
    return
  # The last copy went away inside one of the group's own tasks, which the
  # free would wait for: hand the free to the global pool instead (it runs
  # once this task has returned).
  var pool: ptr SchedulerHandle
  if nimsync_scheduler_global(addr pool) == StatusOk:
    discard nimsync_task_group_cancel(st.handle, "task group dropped before join")
    discard nimsync_scheduler_spawn(pool, freeStateLater, st, freeStateLater)
    nimsync_scheduler_free(pool)

proc `=destroy`*(g: var TaskGroup) =
  ## Releases this copy; the last copy of a group that was not joined
  ## cancels it and waits for its tasks.
  if g.st != nil:
    releaseState(g.st)
    g.st = nil

proc `=copy`*(dest: var TaskGroup, src: TaskGroup) =
  ## Shares the group.
  if dest.st == src.st:
    return
  if src.st != nil:
    # Relaxed: taking a reference publishes nothing.
    discard src.st.refs.fetchAdd(1, moRelaxed)
  `=destroy`(dest)
  dest.st = src.st

proc stateOf(g: TaskGroup): ptr GroupState {.inline.} =
  if g.st == nil: notInitialized()
  g.st

proc newGroup(parent: ptr CancelTokenHandle, policy: TaskPolicy, maxTasks, maxConcurrent: int,
              timeoutNs: uint64, scheduler: WorkStealingScheduler): TaskGroup =
  if maxConcurrent < 0:
    raise newException(ValueError, "maxConcurrent must be 0 (no limit) or more, got " & $maxConcurrent)
  var handle: ptr TaskGroupHandle
  check nimsync_task_group_new(scheduler.handle, parent, csize_t(maxConcurrent), timeoutNs, addr handle)
  var token: ptr CancelTokenHandle
  let status = nimsync_task_group_token(handle, addr token)
  if status != StatusOk:
    nimsync_task_group_free(handle)
    raiseStatus(status)
  let st = createShared(GroupState)
  # Relaxed: not shared with any other thread yet.
  st.refs.store(1, moRelaxed)
  st.handle = handle
  st.token = token
  st.policy = policy
  st.maxTasks = maxTasks
  st.hasDeadline = timeoutNs != WaitForever
  initLock(st.lock)
  result.st = st

proc newGroupInScope(policy: TaskPolicy, maxTasks, maxConcurrent: int, timeoutNs: uint64,
                     scheduler: WorkStealingScheduler): TaskGroup =
  ## A group whose token is a child of the current cancel scope's, if any.
  var parent: CancelToken
  let top = getCurrentScope()
  if top != nil:
    parent = top[].getToken()
  newGroup(parent.handle, policy, maxTasks, maxConcurrent, timeoutNs, scheduler)

proc initTaskGroup*(policy = TaskPolicy.FailFast, maxTasks = 1000, maxConcurrent = 0,
                    scheduler = getScheduler()): TaskGroup =
  ## A new group whose tasks run on `scheduler`. Its token is a child of
  ## the current cancel scope's, if there is one.
  ##
  ## - `policy`: what a failure does (see the module docs).
  ## - `maxTasks`: how many tasks the group may be given in all (`spawn`
  ##   raises ``ResourceExhaustedError`` beyond); 0 for no limit.
  ## - `maxConcurrent`: at most this many of its tasks run at once (the
  ##   rest wait in the group, in order, without blocking `spawn`); 0 for no
  ##   limit.
  ##
  ## .. code-block:: nim
  ##   var g = initTaskGroup(TaskPolicy.CollectErrors, maxConcurrent = 4)
  newGroupInScope(policy, maxTasks, maxConcurrent, WaitForever, scheduler)

proc initTaskGroup*(parent: TaskGroup, policy = TaskPolicy.FailFast, maxTasks = 1000,
                    maxConcurrent = 0, scheduler = getScheduler()): TaskGroup =
  ## A group nested in `parent`: cancelling `parent` (or its failing)
  ## cancels this one, not the other way round.
  newGroup(stateOf(parent).token, policy, maxTasks, maxConcurrent, WaitForever, scheduler)

proc initTaskGroup*(timeout: Timeout, policy = TaskPolicy.FailFast, maxTasks = 1000,
                    maxConcurrent = 0, scheduler = getScheduler()): TaskGroup =
  ## A group cancelled when `timeout` (a ``Duration``, ``TimeInterval`` or
  ## ``int`` milliseconds) has passed: its tasks' tokens raise
  ## `TimeoutError` and its join raises `TimeoutError` unless a task failed.
  ##
  ## .. code-block:: nim
  ##   var g = initTaskGroup(initDuration(seconds = 5))
  newGroupInScope(policy, maxTasks, maxConcurrent, timeoutNs(timeout), scheduler)

# --- Running tasks -------------------------------------------------------------------

proc isCancellation(e: ref CatchableError): bool =
  e of (ref AsyncCancelledError) or e of (ref CancellationError)

proc recordFailure(st: ptr GroupState, index: int, e: ref CatchableError) =
  withLock st.lock:
    st.errors.add((index, e))

proc taskToken(handle: ptr CancelTokenHandle, hasDeadline: bool): CancelToken {.raises: [].} =
  ## A `CancelToken` holding a new reference to the group's token. Its id
  ## names no scope: a cancellation reads as coming from outside the task.
  result.id = -1
  result.hasDeadline = hasDeadline
  discard nimsync_cancel_token_clone(handle, addr result.handle)

proc runTask[T](arg: pointer, tokenHandle: ptr CancelTokenHandle): cint {.cdecl, gcsafe, raises: [].} =
  let box = cast[ptr Box[T]](arg)
  let st = box.group
  let cell = box.cell
  var withToken = move box.withToken
  var plain = move box.plain
  deallocShared(box)
  let outer = runningIn
  runningIn = st
  # Relaxed: statistics (`running`, `completed`, `failed`).
  discard st.running.fetchAdd(1, moRelaxed)
  # Release: pairs with `state`'s Acquire; nothing to publish yet, but
  # every store of the state uses one ordering.
  cell.state.store(ord(TaskState.Running), moRelease)
  var token = taskToken(tokenHandle, st.hasDeadline)
  var outcome = TaskState.Completed
  try:
    when T is void:
      if plain.isNil: withToken(token) else: plain()
    else:
      cell.value = if plain.isNil: withToken(token) else: plain()
    discard st.completed.fetchAdd(1, moRelaxed)
  except Exception as raised:
    let e: ref CatchableError =
      if raised of CatchableError: (ref CatchableError)(raised)
      else: (ref NimAsyncError)(msg: "task " & $cell.index & " raised " & $raised.name & ": " & raised.msg,
                                parent: raised)
    cell.error = e
    if isCancellation(e) and nimsync_cancel_token_is_cancelled(tokenHandle):
      outcome = TaskState.Cancelled
      result = StatusCancelled     # stopped by the group's cancellation
    else:
      discard st.failed.fetchAdd(1, moRelaxed)
      case st.policy
      of TaskPolicy.FailFast:
        outcome = TaskState.Failed
        try: recordFailure(st, cell.index, e) except Exception: discard
        result = 1                 # any non-zero status: cancels the group
      of TaskPolicy.CollectErrors:
        outcome = TaskState.Failed
        try: recordFailure(st, cell.index, e) except Exception: discard
      of TaskPolicy.IgnoreErrors:
        outcome = TaskState.Completed
  # Drop the closure and the token while still marked as inside the group.
  try:
    withToken = nil
    plain = nil
    `=destroy`(token)
  except Exception:
    discard
  let hadError = cell.error != nil
  discard st.running.fetchSub(1, moRelaxed)
  # Release: publishes the value or error to readers of `state`. After this
  # the task only drops its reference: the value is touched again here only
  # if no handle is left to read it.
  cell.state.store(ord(outcome), moRelease)
  releaseCell(cell)
  if hadError:
    # ORC's cycle collector keeps candidate roots per thread: the error's
    # reference count went up and down here (the cell and the group's list
    # share it), which made it a candidate in this thread's buffer.
    # Collecting empties that buffer, so the joining thread, which the join
    # orders after this task's return, may drop the error safely.
    when declared(GC_runOrc):
      try:
        GC_runOrc()
      except Exception:
        discard
  runningIn = outer

proc dropTask[T](arg: pointer) {.cdecl, gcsafe, raises: [].} =
  ## A task the group skipped (cancelled before it started).
  let box = cast[ptr Box[T]](arg)
  let st = box.group
  let cell = box.cell
  let outer = runningIn
  runningIn = st
  try:
    `=destroy`(box[])
  except Exception:
    discard
  deallocShared(box)
  # Relaxed: a statistic.
  discard st.skipped.fetchAdd(1, moRelaxed)
  # Release: as in `runTask`.
  cell.state.store(ord(TaskState.Cancelled), moRelease)
  releaseCell(cell)
  runningIn = outer

proc spawnTask[T](group: TaskGroup, withToken: sink proc (token: CancelToken): T {.closure, gcsafe.},
                  plain: sink proc (): T {.closure, gcsafe.}): TaskHandle[T] =
  let st = stateOf(group)
  if withToken.isNil and plain.isNil:
    raise newException(ValueError, "the task is nil")
  if plain.isNil: checkHandoff(withToken, "spawn") else: checkHandoff(plain, "spawn")
  # Relaxed: the count only needs to be exact, not ordered.
  let index = st.spawned.fetchAdd(1, moRelaxed)
  if st.maxTasks > 0 and index >= st.maxTasks:
    discard st.spawned.fetchSub(1, moRelaxed)   # Relaxed: as above
    raise newException(ResourceExhaustedError, "TaskGroup reached maximum task limit: " & $st.maxTasks)
  let cell = createShared(Cell[T])
  # Relaxed: not shared yet; the spawn below publishes it. Two references:
  # the handle and the task.
  cell.refs.store(2, moRelaxed)
  cell.index = index
  result.cell = cell
  let box = createShared(Box[T])
  box.group = st
  box.cell = cell
  box.withToken = withToken
  box.plain = plain
  let status = nimsync_task_group_spawn(st.handle, runTask[T], box, dropTask[T], nil)
  if status != StatusOk:
    # Refused: the runtime called nothing, so the task is still ours.
    `=destroy`(box[])
    deallocShared(box)
    releaseCell(cell)
    raiseStatus(status)

proc spawn*[T](group: TaskGroup, fn: sink proc (token: CancelToken): T {.gcsafe.}, name = ""): TaskHandle[T] =
  ## Starts `fn` in the group on a worker thread, with the group's token,
  ## and returns the handle its value will land in. `name` is accepted for
  ## compatibility. Raises ``ResourceExhaustedError`` past the group's
  ## `maxTasks`.
  ##
  ## .. code-block:: nim
  ##   let h = g.spawn(proc (token: CancelToken): int =
  ##     var sum = 0
  ##     for i in 1 .. 1000:
  ##       token.checkCancelled()
  ##       sum += i
  ##     sum)
  discard name
  spawnTask[T](group, fn, nil)

proc spawn*[T](group: TaskGroup, fn: sink proc (): T {.gcsafe.}, name = ""): TaskHandle[T] =
  ## Starts `fn` in the group on a worker thread (see the other overload).
  ##
  ## .. code-block:: nim
  ##   let h = g.spawn(proc (): int = 6 * 7)
  ##   g.wait()
  ##   doAssert h.read == 42
  discard name
  spawnTask[T](group, nil, fn)

proc spawn*(group: TaskGroup, fn: sink proc (token: CancelToken) {.gcsafe.}, name = ""): TaskHandle[void] =
  ## Starts `fn`, which returns nothing, with the group's token (see the
  ## generic overloads).
  discard name
  spawnTask[void](group, fn, nil)

proc spawn*(group: TaskGroup, fn: sink proc () {.gcsafe.}, name = ""): TaskHandle[void] =
  ## Starts `fn`, which returns nothing (see the generic overloads).
  ##
  ## .. code-block:: nim
  ##   discard g.spawn(proc () = echo "on a worker")
  discard name
  spawnTask[void](group, nil, fn)

# --- Joining ----------------------------------------------------------------------------

proc finishJoin(st: ptr GroupState, status: Status, report: ptr GroupReportHandle) =
  ## Turns a join's status and report into the outcome: return or raise.
  var summary: GroupSummaryC
  if report != nil:
    discard nimsync_group_report_summary(report, addr summary)
    nimsync_group_report_free(report)
  case status
  of StatusOk, StatusTaskFailed, StatusCancelled, StatusTimeout, StatusInterrupted:
    discard
  else:
    raiseStatus(status)
  var failures: seq[(int, ref CatchableError)]
  withLock st.lock:
    failures = st.errors
  if failures.len > 0 and st.policy != TaskPolicy.IgnoreErrors:
    failures.sort(proc (a, b: (int, ref CatchableError)): int = cmp(a[0], b[0]))
    let e = newException(TaskGroupError, "")
    for (index, err) in failures:
      e.errors.add err
      e.taskIds.add TaskId(index)
    e.skipped = int(summary.skipped)
    let first = failures[0]
    e.msg = (if failures.len == 1: "task " else: $failures.len & " tasks failed; the first: task ") &
      $first[0] & " raised " & $first[1].name & ": " & first[1].msg
    raise e
  case status
  of StatusTimeout:
    raise newException(TimeoutError, "the task group's timeout passed (" & $summary.skipped &
                       " tasks skipped)")
  of StatusCancelled, StatusInterrupted:
    # Relaxed: set by `cancel` on this or another thread before the join saw
    # the cancellation (which the runtime orders).
    if not st.cancelRequested.load(moRelaxed):
      raise newException(AsyncCancelledError, "the task group was cancelled from outside (" &
                         $summary.skipped & " tasks skipped)")
  else:
    discard

proc wait*(group: TaskGroup) =
  ## Blocks this thread until every task of the group has finished (it
  ## parks; nothing polls). Raises `TaskGroupError` with every failure in
  ## spawn order (unless the policy is ``IgnoreErrors``), `TimeoutError` if
  ## the group's timeout passed, `AsyncCancelledError` if it was cancelled
  ## from outside (a parent scope or group). A group cancelled with
  ## `cancel` joins without raising. From a task on the same pool, the
  ## thread runs other queued tasks while it waits. Use `joinAll` on an
  ## event loop's thread.
  let st = stateOf(group)
  var report: ptr GroupReportHandle
  let status = nimsync_task_group_join(st.handle, addr report)
  finishJoin(st, status, report)

proc joinBlocking*(group: TaskGroup) =
  ## Another name for `wait`, after `sendBlocking` and `recvBlocking`.
  wait(group)

proc joinAll*(group: TaskGroup): Future[void] {.async.} =
  ## Waits for every task of the group without blocking the event loop: the
  ## loop is woken through its readiness descriptor when the last task
  ## finishes. Raises like `wait`.
  ##
  ## .. code-block:: nim
  ##   var g = initTaskGroup()
  ##   discard g.spawn(proc () = discard)
  ##   await g.joinAll()
  let st = stateOf(group)
  let b = loopBridge()
  let token = b.newToken()
  while true:
    var report: ptr GroupReportHandle
    let status = nimsync_task_group_poll_join(st.handle, b.waker, token, addr report)
    if status != StatusPending:
      finishJoin(st, status, report)
      return
    await b.waitToken(token)

template taskGroup*(policy: untyped, body: untyped): untyped =
  ## Runs `body` with a new group ``g`` (made with the `TaskPolicy`
  ## `policy`) in scope, then awaits its join; on the way out (also by an
  ## exception) the group is cancelled, so no task outlives the block. For
  ## async procs.
  ##
  ## .. code-block:: nim
  ##   proc main() {.async.} =
  ##     taskGroup(TaskPolicy.FailFast):
  ##       discard g.spawn(proc () = echo "in a worker")
  block:
    var g {.inject.} = initTaskGroup(policy)
    try:
      body
      await g.joinAll()
    finally:
      g.cancel()

template taskGroup*(body: untyped): untyped =
  ## `taskGroup` with the ``FailFast`` policy.
  block:
    var g {.inject.} = initTaskGroup(TaskPolicy.FailFast)
    try:
      body
      await g.joinAll()
    finally:
      g.cancel()

# --- Inspecting and cancelling ----------------------------------------------------------

proc cancel*(group: TaskGroup) =
  ## Cancels the group: tasks not started are skipped (their handles read
  ## as cancelled), running tasks see their token cancelled. The join then
  ## returns without raising unless tasks failed.
  let st = stateOf(group)
  # Relaxed: read by the join after the runtime has ordered the cancellation.
  st.cancelRequested.store(true, moRelaxed)
  check nimsync_task_group_cancel(st.handle, "task group cancelled")

proc getToken*(group: TaskGroup): CancelToken =
  ## The group's token, as tasks receive it: for blocking calls made on the
  ## group's behalf outside its tasks.
  let st = stateOf(group)
  taskToken(st.token, st.hasDeadline)

proc len*(group: TaskGroup): int =
  ## Number of tasks spawned into the group.
  # Relaxed: statistics, here and below.
  stateOf(group).spawned.load(moRelaxed)

proc completed*(group: TaskGroup): int =
  ## Number of tasks that returned (or failed under ``IgnoreErrors``).
  stateOf(group).completed.load(moRelaxed)

proc failed*(group: TaskGroup): int =
  ## Number of tasks that raised (cancellations not counted).
  stateOf(group).failed.load(moRelaxed)

proc running*(group: TaskGroup): int =
  ## Number of tasks running right now.
  stateOf(group).running.load(moRelaxed)

proc skipped*(group: TaskGroup): int =
  ## Number of tasks that never ran because the group was cancelled first.
  stateOf(group).skipped.load(moRelaxed)

proc cancelled*(group: TaskGroup): bool =
  ## Whether the group is cancelled (by `cancel`, a failure under
  ## ``FailFast``, its timeout, or a parent).
  nimsync_cancel_token_is_cancelled(stateOf(group).token)

proc getErrors*(group: TaskGroup): seq[ref CatchableError] =
  ## What the failed tasks raised so far, in spawn order (empty under
  ## ``IgnoreErrors``).
  let st = stateOf(group)
  if st.policy == TaskPolicy.IgnoreErrors:
    return
  var failures: seq[(int, ref CatchableError)]
  withLock st.lock:
    failures = st.errors
  failures.sort(proc (a, b: (int, ref CatchableError)): int = cmp(a[0], b[0]))
  for (_, e) in failures:
    result.add e
