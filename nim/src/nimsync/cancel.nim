## Cancellation: hierarchical scopes, shields, timeouts and deadlines — the
## original nimsync ``cancel`` API, on the runtime's cancel tokens.
##
## .. code-block:: nim
##   import nimsync
##
##   withCancelScope(proc(outer: var CancelScope) =
##     var inner = initCancelScope()     # a child of `outer`
##     outer.cancel()
##     doAssert inner.cancelled
##     doAssert inner.getReason == CancelReason.ParentCancel
##   )
##
## Every `CancelScope` owns a token of the runtime (``nimsync_cancel_token``),
## so cancellation is real rather than a flag in one language: cancelling a
## scope cancels the tokens of its children in Rust, at once and on any
## thread; a thread blocked in `recvBlocking(c, scope) <#recvBlocking,Channel[T],CancelScope>`_
## or `sendBlocking(c, v, scope) <#sendBlocking,Channel[T],sinkT,CancelScope>`_
## is woken by the cancellation itself; a timeout scope is cancelled by the
## runtime's timer. The mapping:
##
## ==============================  =========================================
## Nim                             runtime token
## ==============================  =========================================
## `initCancelScope`               a child of the current scope's token
## `shield`                        a shielded token (the parent does not
##                                 cancel it)
## `initTimeoutScope`,             a child with a deadline, cancelled by the
## `withTimeout`, `withDeadline`   timer
## `getToken`                      another reference to the token
## ==============================  =========================================
##
## **Current scope.** Each thread has a stack of scopes: `withCancelScope`,
## `withTimeout` and `withDeadline` push theirs while the body runs, and
## `initCancelScope` links a new scope to the top one. With several
## asyncdispatch coroutines interleaving on one thread, the top is the scope
## entered last and not yet left; to be exact, pass scopes explicitly
## (`initCancelScope(parent) <#initCancelScope,CancelScope>`_).
##
## **Ownership.** A `CancelScope` is a value with reference-counting hooks,
## like `Channel[T] <channels.html#Channel>`_: copies (into another thread's
## arguments, a closure, an async proc) share the scope — cancelling one
## copy cancels them all — and the token is freed with the last copy. A
## `CancelToken` is a read-only view that keeps only the token alive.
##
## **Errors.** `checkCancelled` and the scope-aware blocking operations raise
## `TimeoutError` when a timeout cancelled the scope (its own or an
## ancestor's) and `AsyncCancelledError` otherwise. A send that fails hands
## its value back, as `sendBlocking` does: `AsyncCancelledSendError[T]` and
## `TimeoutSendError[T]` carry it (`unsentValue`). `TimeoutError` is a
## `CancellationError`, not an `AsyncCancelledError` (as in the original
## hierarchy); the original ``withTimeout`` raised `AsyncCancelledError` on
## a timeout, so code that handled timeouts that way catches both:
##
## .. code-block:: nim
##   try:
##     discard waitFor withTimeout(100, fetch)
##   except AsyncCancelledError, TimeoutError:
##     echo "gave up"

import std/[asyncdispatch, atomics, monotimes, options, strutils, times]
import private/abi
import channels, errors

export errors, monotimes

type
  AsyncCancelledError* = object of CatchableError
    ## A scope (or the scope of a blocking operation) was cancelled.
  TimeoutError* = object of CancellationError
    ## A scope's timeout (or an ancestor's) passed. Not the same as
    ## `ChannelTimeoutError`, which the ``timeout`` argument of a channel
    ## operation raises.
  AsyncCancelledSendError*[T] = object of AsyncCancelledError
    ## A send ended by a cancelled scope; `value` is the item that was not
    ## sent.
    value*: T
  TimeoutSendError*[T] = object of TimeoutError
    ## A send ended by a scope's timeout; `value` is the item that was not
    ## sent.
    value*: T

  CancelState* {.pure.} = enum
    ## Where a scope is in its life: it ends either cancelled or completed.
    Active = 0     ## neither cancelled nor completed yet
    Cancelled = 1  ## cancelled (directly, by a parent, or by its timeout)
    Completed = 2  ## completed normally: later cancellation does not apply

  CancelReason* {.pure.} = enum
    ## Why a scope was cancelled.
    Manual = "manual"           ## `cancel` was called on it
    Timeout = "timeout"         ## its timeout or deadline passed
    ParentCancel = "parent"     ## an ancestor was cancelled
    TaskError = "task_error"    ## its body raised (`withCancelScope`)
    ResourceLimit = "resource"  ## cancelled for lack of resources

  ScopeState = object
    ## What the copies of one scope share (in shared memory).
    refs: Atomic[int]                 # copies alive
    state: Atomic[int]                # a CancelState
    cancelTicks: Atomic[int64]        # MonoTime ticks of the cancellation
    id: int                           # names the scope in cancel messages
    token: ptr CancelTokenHandle      # owned
    parent: ptr CancelTokenHandle     # owned reference to the parent's token, or nil
    guard: ptr CancelCallbackHandle   # records the cancellation into this block
    shielded: bool
    hasDeadline: bool
    deadline: MonoTime

  CancelScope* = object
    ## A cancellation scope: cancelled directly (`cancel`), by its parent
    ## (unless shielded) or by its timeout; copies share it (see the module
    ## docs).
    st: ptr ScopeState

  CancelToken* = object
    ## A read-only view of a scope's cancellation (`getToken`): it can be
    ## checked, handed to other threads and given to blocking operations,
    ## but not used to cancel. It stays valid after the scope is gone.
    handle: ptr CancelTokenHandle
    id: int
    hasDeadline: bool

var nextScopeId: Atomic[int]
var scopeStack {.threadvar.}: seq[ptr CancelScope]

proc check(status: Status) {.inline.} =
  if status != StatusOk:
    raiseStatus(status)

proc notInitialized() {.noreturn.} =
  raise newException(ValueError, "the CancelScope is not initialized: create it with initCancelScope")

# --- Shared state -------------------------------------------------------------

{.push stackTrace: off.}
proc recordCancel(ctx: pointer, reason: uint32) {.cdecl, gcsafe, raises: [].} =
  # Runs on the cancelling thread, which may be the runtime's timer thread:
  # atomics only, nothing that allocates.
  let st = cast[ptr ScopeState](ctx)
  # Relaxed: only a hint that skips the clock for a completed scope; the
  # exchange below decides.
  if st.state.load(moRelaxed) == ord(CancelState.Active):
    # Relaxed: the release of the exchange below publishes it to readers
    # that see the Cancelled state (getCancelTime).
    st.cancelTicks.store(getMonoTime().ticks, moRelaxed)
  var expected = ord(CancelState.Active)
  # AcqRel on success: releases the time stored above to readers that load
  # the state with acquire, and orders this against `complete`'s exchange.
  discard st.state.compareExchange(expected, ord(CancelState.Cancelled), moAcquireRelease,
                                   moAcquire)
{.pop.}

proc makeToken(st: ptr ScopeState): ptr CancelTokenHandle =
  ## The token for the scope's parent, shield and deadline.
  if st.hasDeadline:
    let ns = max(0'i64, (st.deadline - getMonoTime()).inNanoseconds)
    if st.parent != nil and not st.shielded:
      check nimsync_cancel_token_with_timeout(st.parent, uint64(ns), addr result)
    else:
      # The base is only a root to hang the deadline on: freeing it neither
      # cancels nor unlinks the deadline child.
      var base: ptr CancelTokenHandle
      check:
        if st.parent != nil: nimsync_cancel_token_shielded(st.parent, addr base)
        else: nimsync_cancel_token_new(addr base)
      let status = nimsync_cancel_token_with_timeout(base, uint64(ns), addr result)
      nimsync_cancel_token_free(base)
      check status
  elif st.parent == nil:
    check nimsync_cancel_token_new(addr result)
  elif st.shielded:
    check nimsync_cancel_token_shielded(st.parent, addr result)
  else:
    check nimsync_cancel_token_child(st.parent, addr result)

proc attach(st: ptr ScopeState, token: ptr CancelTokenHandle): ptr CancelCallbackHandle =
  ## Registers `recordCancel` on `token` (it runs at once if the token is
  ## already cancelled).
  let status = nimsync_cancel_token_on_cancel(token, recordCancel, st, addr result)
  if status != StatusOk:
    raiseStatus(status)

proc release(st: ptr ScopeState) =
  # AcqRel: the release orders this copy's uses of the block before the
  # drop; the acquire makes the last dropper see every other copy's uses
  # before it frees the block (as for Arc).
  if st.refs.fetchSub(1, moAcquireRelease) == 1:
    # Free the callback first: this waits for a run in progress elsewhere,
    # so nobody touches the block once it is deallocated.
    nimsync_cancel_callback_free(st.guard)
    nimsync_cancel_token_free(st.token)
    nimsync_cancel_token_free(st.parent)
    deallocShared(st)

proc `=destroy`*(scope: var CancelScope) =
  ## Releases this copy; the last one frees the scope's token.
  if scope.st != nil:
    release(scope.st)
    scope.st = nil

proc `=copy`*(dest: var CancelScope, src: CancelScope) =
  ## Shares `src`'s scope.
  if dest.st == src.st:
    return
  `=destroy`(dest)
  if src.st != nil:
    # Relaxed: a new copy comes from a live one, which keeps the block
    # alive meanwhile; nothing else is published by the count.
    discard src.st.refs.fetchAdd(1, moRelaxed)
  dest.st = src.st

proc `=destroy`*(token: var CancelToken) =
  ## Releases this view's reference to the token.
  if token.handle != nil:
    nimsync_cancel_token_free(token.handle)
    token.handle = nil

proc `=copy`*(dest: var CancelToken, src: CancelToken) =
  ## Takes another reference to `src`'s token.
  if dest.handle == src.handle:
    return
  `=destroy`(dest)
  dest.id = src.id
  dest.hasDeadline = src.hasDeadline
  if src.handle != nil:
    discard nimsync_cancel_token_clone(src.handle, addr dest.handle)

proc newScope(parent: ptr ScopeState, shielded = false, deadline = none(MonoTime)): CancelScope =
  let st = cast[ptr ScopeState](allocShared0(sizeof(ScopeState)))
  # Relaxed stores: the block is not shared yet; handing the scope to
  # another thread publishes it.
  st.refs.store(1, moRelaxed)
  st.state.store(ord(CancelState.Active), moRelaxed)
  # Relaxed: the id only has to be unique.
  st.id = nextScopeId.fetchAdd(1, moRelaxed) + 1
  st.shielded = shielded
  if deadline.isSome:
    st.hasDeadline = true
    st.deadline = deadline.get
  try:
    if parent != nil:
      check nimsync_cancel_token_clone(parent.token, addr st.parent)
    st.token = makeToken(st)
    st.guard = attach(st, st.token)
  except CatchableError as e:
    nimsync_cancel_token_free(st.token)
    nimsync_cancel_token_free(st.parent)
    deallocShared(st)
    raise e
  CancelScope(st: st)

# --- The thread's scope stack -------------------------------------------------

proc pushScope(scope: ptr CancelScope) =
  scopeStack.add scope

proc removeScope(scope: ptr CancelScope) =
  # Normally the top; coroutines that interleave may leave out of order.
  for i in countdown(scopeStack.high, 0):
    if scopeStack[i] == scope:
      scopeStack.delete(i)
      return

proc getCurrentScope*(): ptr CancelScope =
  ## The innermost scope entered on this thread (by `withCancelScope`,
  ## `withTimeout` or `withDeadline`) and not yet left, or nil. Valid until
  ## that scope is left; to keep it, copy it (``let s = getCurrentScope()[]``
  ## shares the scope).
  ##
  ## .. code-block:: nim
  ##   withCancelScope(proc(scope: var CancelScope) =
  ##     doAssert getCurrentScope() == addr scope)
  if scopeStack.len > 0: scopeStack[^1] else: nil

proc currentState(): ptr ScopeState =
  let top = getCurrentScope()
  if top == nil: nil else: top[].st

# --- Creating scopes ----------------------------------------------------------

proc initCancelScope*(): CancelScope =
  ## A new active scope, a child of the current scope (`getCurrentScope`) if
  ## there is one: cancelling that one cancels this one too (unless it is
  ## shielded). Created under a cancelled parent, it starts cancelled.
  ##
  ## .. code-block:: nim
  ##   var scope = initCancelScope()
  ##   doAssert scope.active
  ##   scope.cancel()
  ##   doAssert scope.cancelled and scope.getReason == CancelReason.Manual
  newScope(currentState())

proc initCancelScope*(parent: CancelScope): CancelScope =
  ## A new active scope, a child of `parent` (instead of the current scope).
  ##
  ## .. code-block:: nim
  ##   let root = initCancelScope()
  ##   let child = initCancelScope(root)
  ##   root.cancel()
  ##   doAssert child.cancelled
  if parent.st == nil: notInitialized()
  newScope(parent.st)

proc initTimeoutScope*(timeout: Timeout): CancelScope =
  ## A child of the current scope that the runtime's timer cancels, with
  ## reason `Timeout <#CancelReason>`_, `timeout` from now (a ``Duration``,
  ## ``TimeInterval`` or ``int`` milliseconds). Blocking operations given
  ## the scope then raise `TimeoutError`.
  ##
  ## .. code-block:: nim
  ##   let scope = initTimeoutScope(50)
  ##   try:
  ##     discard ch.recvBlocking(scope)      # at most 50 ms
  ##   except TimeoutError:
  ##     echo "nothing came"
  newScope(currentState(), deadline = some(getMonoTime() + toDuration(timeout)))

proc initDeadlineScope*(deadline: MonoTime): CancelScope =
  ## Like `initTimeoutScope`, cancelled at `deadline` (at once if it has
  ## passed).
  ##
  ## .. code-block:: nim
  ##   let scope = initDeadlineScope(getMonoTime() + initDuration(seconds = 1))
  newScope(currentState(), deadline = some(deadline))

# --- State --------------------------------------------------------------------

proc tokenReason(h: ptr CancelTokenHandle): uint32 =
  if h == nil or nimsync_cancel_token_reason(h, addr result) != StatusOk:
    result = CancelReasonNone

proc tokenMessage(h: ptr CancelTokenHandle): string =
  var buf: array[96, char]
  var n: csize_t
  if nimsync_cancel_token_message(h, cast[cstring](addr buf[0]), csize_t(buf.len), addr n) != StatusOk:
    return ""
  if int(n) < buf.len:
    result = newString(int(n))
    if n > 0: copyMem(addr result[0], addr buf[0], int(n))
  else:
    result = newString(int(n) + 1)
    discard nimsync_cancel_token_message(h, cast[cstring](addr result[0]), n + 1, nil)
    result.setLen(int(n))

proc encode(reason: CancelReason, id: int): string =
  ## The message a scope cancels its token with; `decode` reads it back.
  $reason & " (scope " & $id & ")"

proc decode(message: string): tuple[ok: bool, reason: CancelReason, id: int] =
  let at = message.rfind(" (scope ")
  if at < 0 or not message.endsWith(")"):
    return
  try:
    result.reason = parseEnum[CancelReason](message[0 ..< at])
    result.id = parseInt(message[at + 8 .. ^2])
    result.ok = true
  except ValueError:
    result.ok = false

proc reasonOf(h: ptr CancelTokenHandle, id: int, hasDeadline: bool): CancelReason =
  case tokenReason(h)
  of CancelReasonDeadlineExceeded:
    if hasDeadline: CancelReason.Timeout else: CancelReason.ParentCancel
  of CancelReasonRequested:
    let d = decode(tokenMessage(h))
    if d.ok and d.id == id: d.reason else: CancelReason.ParentCancel
  else:
    CancelReason.Manual

proc isTimeout(h: ptr CancelTokenHandle): bool =
  ## Whether a timeout (of this scope or an ancestor) cancelled the token.
  case tokenReason(h)
  of CancelReasonDeadlineExceeded: true
  of CancelReasonRequested:
    let d = decode(tokenMessage(h))
    d.ok and d.reason == CancelReason.Timeout
  else: false

proc cancelMessage(reason: CancelReason, timeout: bool): string =
  case reason
  of CancelReason.Timeout: "Operation timed out"
  of CancelReason.ParentCancel:
    if timeout: "Cancelled by parent (timed out)" else: "Cancelled by parent"
  of CancelReason.TaskError: "Cancelled due to task error"
  of CancelReason.ResourceLimit: "Cancelled due to resource limits"
  of CancelReason.Manual: "Operation was cancelled"

proc state(scope: CancelScope): CancelState =
  let st = scope.st
  if st == nil:
    return CancelState.Active
  # Acquire: pairs with the exchange in recordCancel/complete, so a reader
  # that sees Cancelled also sees the cancel time.
  result = CancelState(st.state.load(moAcquire))
  # The token is cancelled a moment before its callback records it.
  if result == CancelState.Active and nimsync_cancel_token_is_cancelled(st.token):
    result = CancelState.Cancelled

proc cancelled*(scope: CancelScope): bool =
  ## Whether the scope is cancelled (and was not completed first). One or
  ## two atomic loads.
  ##
  ## .. code-block:: nim
  ##   while not scope.cancelled:
  ##     doSomeWork()
  scope.state == CancelState.Cancelled

proc completed*(scope: CancelScope): bool =
  ## Whether the scope completed normally (`complete`).
  scope.state == CancelState.Completed

proc active*(scope: CancelScope): bool =
  ## Whether the scope is neither cancelled nor completed.
  ##
  ## .. code-block:: nim
  ##   let scope = initCancelScope()
  ##   doAssert scope.active
  scope.state == CancelState.Active

proc cancel*(scope: CancelScope, reason = CancelReason.Manual) =
  ## Cancels the scope and, at once and on any thread, every scope below it
  ## that is not shielded (their reason is `ParentCancel <#CancelReason>`_);
  ## threads blocked in operations given one of them wake up and raise. The
  ## first cancellation stands; a completed scope stays completed. Any copy
  ## of the scope, on any thread, may cancel it.
  ##
  ## .. code-block:: nim
  ##   let scope = initCancelScope()
  ##   scope.cancel(CancelReason.ResourceLimit)
  ##   doAssert scope.getReason == CancelReason.ResourceLimit
  let st = scope.st
  if st == nil: notInitialized()
  # Acquire: a hint only (the token's own cancel decides who is first);
  # skips the message for scopes that are already over.
  if st.state.load(moAcquire) != ord(CancelState.Active):
    return
  check nimsync_cancel_token_cancel(st.token, cstring(encode(reason, st.id)), nil)

proc complete*(scope: CancelScope) =
  ## Marks an active scope completed: it stays so, even if it or its parent
  ## is cancelled later. Does nothing to a cancelled scope.
  ##
  ## .. code-block:: nim
  ##   let scope = initCancelScope()
  ##   scope.complete()
  ##   scope.cancel()
  ##   doAssert scope.completed and not scope.cancelled
  let st = scope.st
  if st == nil: notInitialized()
  if nimsync_cancel_token_is_cancelled(st.token):
    return
  var expected = ord(CancelState.Active)
  # AcqRel: the same protocol as recordCancel's exchange; whichever of the
  # two succeeds first fixes the scope's end state.
  discard st.state.compareExchange(expected, ord(CancelState.Completed), moAcquireRelease,
                                   moAcquire)

proc shield*(scope: CancelScope, protected = true) =
  ## Protects the scope from its parent's cancellation (``protected =
  ## false`` links it to the parent again); it can still be cancelled
  ## directly or by its timeout. Shielding a scope that is already cancelled
  ## does not undo that.
  ##
  ## Shielding gives the scope a new token, so call it first thing, on the
  ## thread that created the scope: before sharing the scope with other
  ## threads, creating child scopes or taking tokens (`getToken`).
  ##
  ## .. code-block:: nim
  ##   withCancelScope(proc(outer: var CancelScope) =
  ##     var cleanup = initCancelScope()
  ##     cleanup.shield()
  ##     outer.cancel()
  ##     doAssert not cleanup.cancelled)
  let st = scope.st
  if st == nil: notInitialized()
  if st.shielded == protected:
    return
  if scope.state != CancelState.Active:
    st.shielded = protected
    return
  let oldToken = st.token
  let oldGuard = st.guard
  st.shielded = protected
  let token = makeToken(st)
  st.guard = attach(st, token)
  st.token = token
  # The old token is left now; if it was cancelled meanwhile, shielding came
  # too late and the new one follows it.
  nimsync_cancel_callback_free(oldGuard)
  if nimsync_cancel_token_is_cancelled(oldToken):
    var msg = tokenMessage(oldToken)
    discard nimsync_cancel_token_cancel(token, cstring(msg), nil)
  nimsync_cancel_token_free(oldToken)

proc getReason*(scope: CancelScope): CancelReason =
  ## Why the scope was cancelled: the reason given to `cancel`,
  ## `Timeout <#CancelReason>`_ for its own timeout, and
  ## `ParentCancel <#CancelReason>`_ when an ancestor was cancelled (or timed
  ## out). `Manual <#CancelReason>`_ while it is not cancelled.
  ##
  ## .. code-block:: nim
  ##   scope.cancel(CancelReason.TaskError)
  ##   doAssert scope.getReason == CancelReason.TaskError
  let st = scope.st
  if st == nil: return CancelReason.Manual
  reasonOf(st.token, st.id, st.hasDeadline)

proc getCancelTime*(scope: CancelScope): MonoTime =
  ## When the scope was cancelled (by whichever thread), or the default
  ## ``MonoTime()`` if it was not.
  ##
  ## .. code-block:: nim
  ##   let before = getMonoTime()
  ##   scope.cancel()
  ##   doAssert scope.getCancelTime >= before
  let st = scope.st
  if st == nil or not scope.cancelled:
    return MonoTime()
  # Relaxed: `scope.cancelled` above loaded the state with acquire, which
  # makes the time stored before the Cancelled state visible.
  let ticks = st.cancelTicks.load(moRelaxed)
  # Zero only in the instant between the token's cancellation and its record.
  if ticks == 0: getMonoTime() else: cast[MonoTime](ticks)

# --- Raising ------------------------------------------------------------------

type Watch = object
  ## What a check or a blocking operation needs of a scope or a token.
  handle: ptr CancelTokenHandle
  id: int
  hasDeadline: bool

proc watch(scope: CancelScope): Watch =
  if scope.st == nil: notInitialized()
  Watch(handle: scope.st.token, id: scope.st.id, hasDeadline: scope.st.hasDeadline)

proc watch(token: CancelToken): Watch =
  Watch(handle: token.handle, id: token.id, hasDeadline: token.hasDeadline)

proc fired(w: Watch): bool =
  nimsync_cancel_token_is_cancelled(w.handle)

proc raiseCancelled(w: Watch) {.noreturn.} =
  let timeout = isTimeout(w.handle)
  let msg = cancelMessage(reasonOf(w.handle, w.id, w.hasDeadline), timeout)
  if timeout:
    raise newException(TimeoutError, msg)
  raise newException(AsyncCancelledError, msg)

proc raiseCancelledSend[T](w: Watch, value: sink T) {.noreturn.} =
  let timeout = isTimeout(w.handle)
  let msg = cancelMessage(reasonOf(w.handle, w.id, w.hasDeadline), timeout)
  if timeout:
    raise (ref TimeoutSendError[T])(msg: msg, value: value)
  raise (ref AsyncCancelledSendError[T])(msg: msg, value: value)

proc checkCancelled*(scope: CancelScope) =
  ## Raises if the scope is cancelled: `TimeoutError` when a timeout (its own
  ## or an ancestor's) did it, `AsyncCancelledError` otherwise. The way to
  ## stop long work at safe points.
  ##
  ## .. code-block:: nim
  ##   for item in work:
  ##     scope.checkCancelled()
  ##     process(item)
  if scope.cancelled:
    raiseCancelled(watch(scope))

proc isCancellation(e: ref Exception): bool =
  e of (ref AsyncCancelledError) or e of (ref CancellationError)

# --- Tokens -------------------------------------------------------------------

proc getToken*(scope: CancelScope): CancelToken =
  ## A read-only view of the scope's cancellation, for code that should
  ## notice cancellation but not cause it; it may outlive the scope.
  ##
  ## .. code-block:: nim
  ##   let token = scope.getToken()
  ##   scope.cancel()
  ##   doAssert token.cancelled
  let st = scope.st
  if st == nil: notInitialized()
  result.id = st.id
  result.hasDeadline = st.hasDeadline
  check nimsync_cancel_token_clone(st.token, addr result.handle)

proc cancelled*(token: CancelToken): bool =
  ## Whether the token's scope was cancelled (false for a default token).
  ## One atomic load.
  nimsync_cancel_token_is_cancelled(token.handle)

proc checkCancelled*(token: CancelToken) =
  ## Raises like `checkCancelled(scope) <#checkCancelled,CancelScope>`_ if
  ## the token's scope was cancelled.
  ##
  ## .. code-block:: nim
  ##   proc worker(token: CancelToken) {.thread.} =
  ##     while true:
  ##       token.checkCancelled()
  ##       doSomeWork()
  if token.cancelled:
    raiseCancelled(watch(token))

# --- The current scope ----------------------------------------------------------

proc currentScopeCancelled*(): bool =
  ## Whether the current scope (`getCurrentScope`) is cancelled; false
  ## without one. The `cancelled()` template calls it.
  let top = getCurrentScope()
  top != nil and top[].cancelled

proc checkCurrentCancellation*() =
  ## Raises like `checkCancelled(scope) <#checkCancelled,CancelScope>`_ if
  ## the current scope is cancelled; does nothing without one.
  ##
  ## .. code-block:: nim
  ##   proc step() =
  ##     checkCurrentCancellation()   # no scope parameter needed
  let top = getCurrentScope()
  if top != nil:
    top[].checkCancelled()

template cancelled*(): bool =
  ## Whether the current scope is cancelled.
  ##
  ## .. code-block:: nim
  ##   while not cancelled():
  ##     doSomeWork()
  currentScopeCancelled()

template checkCancelled*() =
  ## Raises if the current scope is cancelled (`checkCurrentCancellation`).
  checkCurrentCancellation()

# --- Running bodies in scopes -----------------------------------------------------

proc withCancelScope*(body: proc(scope: var CancelScope)) =
  ## Runs `body` in a new scope (a child of the current one), which is the
  ## current scope meanwhile. When the body returns, the scope completes;
  ## when it raises a ``CatchableError`` other than a cancellation error
  ## (`AsyncCancelledError`, `CancellationError`), the scope is cancelled
  ## with `TaskError <#CancelReason>`_ — cancelling what the body started —
  ## and the error propagates.
  ##
  ## .. code-block:: nim
  ##   withCancelScope(proc(scope: var CancelScope) =
  ##     for i in 0 ..< 1000:
  ##       scope.checkCancelled()
  ##       echo i)
  var scope = initCancelScope()
  pushScope(addr scope)
  try:
    body(scope)
    scope.complete()
  except AsyncCancelledError, CancellationError:
    raise
  except CatchableError:
    scope.cancel(CancelReason.TaskError)
    raise
  finally:
    removeScope(addr scope)

proc withCancelScopeImpl[B](body: B): Future[void] {.async.} =
  var scope = initCancelScope()
  pushScope(addr scope)
  try:
    await body(scope)
    scope.complete()
  except AsyncCancelledError, CancellationError:
    raise
  except CatchableError:
    scope.cancel(CancelReason.TaskError)
    raise
  finally:
    removeScope(addr scope)

proc withCancelScope*(body: proc(scope: var CancelScope): Future[void]): Future[void] =
  ## The asyncdispatch form of `withCancelScope`: awaits the body's future
  ## in a new scope, with the same completion and error rules.
  ##
  ## asyncdispatch does not allow ``var`` parameters in ``{.async.}`` procs;
  ## use the overload taking ``scope: CancelScope`` for those (a copy of a
  ## scope is the same scope).
  withCancelScopeImpl(body)

proc withCancelScope*(body: proc(scope: CancelScope): Future[void]): Future[void] =
  ## `withCancelScope` for an ``{.async.}`` body.
  ##
  ## .. code-block:: nim
  ##   waitFor withCancelScope(proc(scope: CancelScope) {.async.} =
  ##     await sleepAsync(10)
  ##     scope.checkCancelled())
  withCancelScopeImpl(body)

proc shieldImpl[T](body: proc(): Future[T]): Future[T] {.async.} =
  # Shielded from the start: a child of an already cancelled scope would
  # start cancelled, and shielding afterwards does not undo that.
  var scope = newScope(currentState(), shielded = true)
  pushScope(addr scope)
  try:
    when T is void:
      await body()
    else:
      result = await body()
    scope.complete()
  except AsyncCancelledError, CancellationError:
    raise
  except CatchableError:
    scope.cancel(CancelReason.TaskError)
    raise
  finally:
    removeScope(addr scope)

proc shield*[T](body: proc(): Future[T]): Future[T] =
  ## Runs the async `body` in a new shielded scope (the current scope
  ## meanwhile) and completes with its value: cancelling the enclosing
  ## scopes does not reach the body's checks and blocking operations, so
  ## cleanup and final writes can finish. The scope can still be cancelled
  ## through `getCurrentScope`, and scopes the body creates follow it as
  ## usual. Completion and error rules are those of `withCancelScope`.
  ##
  ## .. code-block:: nim
  ##   withCancelScope(proc(outer: var CancelScope) =
  ##     outer.cancel()
  ##     waitFor shield(proc () {.async.} =
  ##       checkCancelled()          # does not raise: shielded
  ##       await flushLog()))
  shieldImpl(body)

proc checkCancellation*(scopes: openArray[CancelScope]) =
  ## Raises like `checkCancelled(scope) <#checkCancelled,CancelScope>`_ for
  ## the first cancelled scope among `scopes`.
  ##
  ## .. code-block:: nim
  ##   checkCancellation([requestScope, connectionScope])
  for scope in scopes:
    if scope.cancelled:
      raiseCancelled(watch(scope))

type ScopeBox = ref object
  ## Keeps a scope at a fixed address while it is on the stack.
  scope: CancelScope

proc raceScope[T](box: ScopeBox, body: proc(): Future[T]): Future[T] =
  ## Runs `body` in `box.scope` and completes with it, or fails as soon as
  ## the scope is cancelled (its deadline, or an ancestor).
  let res = newFuture[T]("nimsync.withTimeout")
  pushScope(addr box.scope)
  var fut: Future[T]
  try:
    fut = body()
  except CatchableError as e:
    removeScope(addr box.scope)
    if not isCancellation(e):
      box.scope.cancel(CancelReason.TaskError)
    res.fail(e)
    return res
  # The token's cancellation (on whichever thread) triggers an event the
  # dispatcher watches: no timer to leave behind, and a cancelled parent ends
  # the wait too.
  let ev = newAsyncEvent()
  var wake: ptr CancelCallbackHandle
  proc triggerEvent(ctx: pointer, reason: uint32) {.cdecl, gcsafe, raises: [].} =
    try:
      trigger(cast[AsyncEvent](ctx))
    except CatchableError:
      discard

  proc finish() {.gcsafe.} =
    if res.finished:
      return
    nimsync_cancel_callback_free(wake)   # no trigger after this
    try:
      unregister(ev)
      close(ev)
    except CatchableError:
      discard
    removeScope(addr box.scope)
    if fut.finished:
      if fut.failed:
        let e = fut.readError()
        if not isCancellation(e):
          box.scope.cancel(CancelReason.TaskError)
        res.fail(e)
      else:
        box.scope.complete()
        when T is void:
          res.complete()
        else:
          res.complete(fut.read())
    else:
      # The body goes on until it next checks its scope; its end is dropped.
      fut.addCallback(proc () = discard)
      try:
        raiseCancelled(watch(box.scope))
      except CatchableError as e:
        res.fail(e)

  let token = box.scope.st.token
  addEvent(ev, proc (fd: AsyncFD): bool {.gcsafe.} =
    # Only a cancellation ends the race from here: a stale readiness report
    # (a descriptor number reused within one dispatcher round) is ignored.
    if not nimsync_cancel_token_is_cancelled(token):
      return false
    finish()
    true)
  check nimsync_cancel_token_on_cancel(box.scope.st.token, triggerEvent, cast[pointer](ev), addr wake)
  fut.addCallback(finish)
  res

proc withTimeout*[T](duration: Timeout, body: proc(): Future[T]): Future[T] =
  ## Runs the async `body` in a timeout scope (`initTimeoutScope`, the
  ## current scope meanwhile) and completes with its value, or fails with
  ## `TimeoutError` once `duration` (a ``Duration``, ``TimeInterval`` or
  ## ``int`` milliseconds) has passed — or with `AsyncCancelledError` if an
  ## enclosing scope is cancelled first, from any thread. The runtime's timer
  ## cancels the scope and wakes the dispatcher; nothing polls, and no timer
  ## is left behind when the body is quick.
  ##
  ## asyncdispatch futures cannot be stopped: a body that overruns goes on
  ## until it next checks its scope (``checkCancelled()``, or a blocking
  ## operation given the scope), and its result is dropped.
  ##
  ## .. code-block:: nim
  ##   let answer = waitFor withTimeout(initDuration(seconds = 1), proc (): Future[int] {.async.} =
  ##     await sleepAsync(10)
  ##     return 42)
  ##   doAssert answer == 42
  raceScope(ScopeBox(scope: initTimeoutScope(duration)), body)

proc withDeadline*[T](deadline: MonoTime, body: proc(): Future[T]): Future[T] =
  ## `withTimeout` until `deadline`; fails with `TimeoutError` at once if the
  ## deadline has passed.
  ##
  ## .. code-block:: nim
  ##   let deadline = getMonoTime() + initDuration(milliseconds = 100)
  ##   waitFor withDeadline(deadline, proc () {.async.} = await sleepAsync(10))
  if deadline <= getMonoTime():
    result = newFuture[T]("nimsync.withDeadline")
    result.fail(newException(TimeoutError, "Deadline has already passed"))
    return
  raceScope(ScopeBox(scope: initDeadlineScope(deadline)), body)

# --- Blocking channel operations watching a scope or token --------------------------

proc unsentValue*[T](e: ref AsyncCancelledError, _: typedesc[T]): T =
  ## The item a send of a ``T`` ended by cancellation did not send.
  ##
  ## .. code-block:: nim
  ##   except AsyncCancelledError as e:
  ##     let s = e.unsentValue(string)
  if e of (ref AsyncCancelledSendError[T]):
    result = (ref AsyncCancelledSendError[T])(e).value
  else:
    raise newException(ValueError, "this error carries no unsent " & $T)

proc unsentValue*[T](e: ref TimeoutError, _: typedesc[T]): T =
  ## The item a send of a ``T`` ended by a scope's timeout did not send.
  if e of (ref TimeoutSendError[T]):
    result = (ref TimeoutSendError[T])(e).value
  else:
    raise newException(ValueError, "this error carries no unsent " & $T)

proc sendWith[T](c: channels.Channel[T], value: sink T, timeoutNs: uint64, w: Watch) =
  let item = c.encodeItem(value)
  let st = nimsync_channel_send_with(c.rawHandle, item, timeoutNs, w.handle)
  if st == StatusOk:
    return
  if st in [StatusCancelled, StatusTimeout] and w.fired:
    raiseCancelledSend(w, c.decodeItem(item))
  raiseSendStatus(st, c.decodeItem(item))

proc recvWith[T](c: channels.Channel[T], timeoutNs: uint64, w: Watch): T =
  var item: uint
  let st = nimsync_channel_recv_with(c.rawHandle, addr item, timeoutNs, w.handle)
  if st == StatusOk:
    return c.decodeItem(item)
  if st in [StatusCancelled, StatusTimeout] and w.fired:
    raiseCancelled(w)
  raiseStatus(st)

proc sendBlocking*[T](c: channels.Channel[T], value: sink T, scope: CancelScope) =
  ## Sends, blocking while the channel is full, until `scope` is cancelled:
  ## then raises `AsyncCancelledSendError[T]` (an `AsyncCancelledError`) or,
  ## for a timeout, `TimeoutSendError[T]` (a `TimeoutError`), carrying the
  ## value. A send that can complete at once does, even in a cancelled
  ## scope. `ChannelClosedSendError[T]` as for `sendBlocking`.
  ##
  ## .. code-block:: nim
  ##   try:
  ##     ch.sendBlocking(job, scope)
  ##   except AsyncCancelledError as e:
  ##     requeue(e.unsentValue(Job))
  sendWith(c, value, WaitForever, watch(scope))

proc sendBlocking*[T](c: channels.Channel[T], value: sink T, scope: CancelScope, timeout: Timeout) =
  ## Like `sendBlocking(c, value, scope)
  ## <#sendBlocking,Channel[T],sinkT,CancelScope>`_, waiting at most
  ## `timeout` as well (then `ChannelTimeoutSendError[T]`).
  sendWith(c, value, timeoutNs(timeout), watch(scope))

proc sendBlocking*[T](c: channels.Channel[T], value: sink T, token: CancelToken) =
  ## Like `sendBlocking(c, value, scope)
  ## <#sendBlocking,Channel[T],sinkT,CancelScope>`_, watching a token.
  sendWith(c, value, WaitForever, watch(token))

proc recvBlocking*[T](c: channels.Channel[T], scope: CancelScope): T =
  ## Receives, blocking while the channel is empty, until `scope` is
  ## cancelled: then raises `AsyncCancelledError`, or `TimeoutError` for a
  ## timeout. The blocked thread is woken by the cancellation itself, from
  ## any thread. An item that is already there is received even in a
  ## cancelled scope. `ChannelClosedError` as for `recvBlocking`.
  ##
  ## .. code-block:: nim
  ##   let scope = initTimeoutScope(initDuration(seconds = 5))
  ##   let job = jobs.recvBlocking(scope)    # TimeoutError after 5 s
  recvWith(c, WaitForever, watch(scope))

proc recvBlocking*[T](c: channels.Channel[T], scope: CancelScope, timeout: Timeout): T =
  ## Like `recvBlocking(c, scope) <#recvBlocking,Channel[T],CancelScope>`_,
  ## waiting at most `timeout` as well (then `ChannelTimeoutError`).
  recvWith(c, timeoutNs(timeout), watch(scope))

proc recvBlocking*[T](c: channels.Channel[T], token: CancelToken): T =
  ## Like `recvBlocking(c, scope) <#recvBlocking,Channel[T],CancelScope>`_,
  ## watching a token.
  ##
  ## .. code-block:: nim
  ##   proc worker(args: (nimsync.Channel[int], CancelToken)) {.thread.} =
  ##     try:
  ##       while true: echo args[0].recvBlocking(args[1])
  ##     except AsyncCancelledError:
  ##       discard
  recvWith(c, WaitForever, watch(token))
