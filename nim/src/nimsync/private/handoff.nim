## Handing a closure to another thread under ORC.
##
## ORC counts references without atomics and keeps the candidates of its
## cycle collector in a per-thread buffer. A closure whose environment is
## also referenced elsewhere (a sibling closure of the same scope, the
## enclosing proc's frame, a copy kept by the caller) would have its count
## changed by two threads, or be registered in one thread's buffer and freed
## by another: memory corruption. `checkHandoff` refuses such a closure with
## a ``ValueError`` before it leaves the thread, and empties this thread's
## candidate buffer when the environment is in it.

proc checkHandoff*[P: proc](fn: P, what: string) =
  ## Raises ``ValueError`` unless `fn`'s environment (if it has one) is
  ## referenced by `fn` alone.
  when defined(gcOrc) or defined(gcArc):
    let env = rawEnv(fn)
    if env == nil:
      return
    type RefHeader = object
      # The layout of the header ORC and ARC put before every ref object
      # (system/arc.nim of Nim 1.6).
      rc: int
      when defined(gcOrc):
        rootIdx: int
    const rcShift = when defined(gcOrc): 4 else: 3
    let header = cast[ptr RefHeader](cast[uint](env) - uint(sizeof(RefHeader)))
    if (header.rc shr rcShift) != 0:
      raise newException(ValueError, what & ": the closure's environment is shared with other code " &
        "(another closure made in the same scope, the enclosing proc, or a copy kept elsewhere); " &
        "make the closure in a proc of its own that captures only what the task needs, and pass " &
        "it directly")
    when defined(gcOrc):
      if header.rootIdx != 0:
        # A cycle-collection candidate of this thread: collecting clears
        # the buffer, so another thread may free the environment.
        GC_runOrc()
