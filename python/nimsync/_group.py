"""Task groups: structured concurrency on nimsync's work-stealing pool.

``with nimsync.TaskGroup() as g:`` opens a group; ``g.spawn(f, *args, **kwargs)`` runs
``f(*args, **kwargs)`` on a worker of the task pool and returns a :class:`TaskHandle`.
Leaving the block waits for every task — with the GIL released, so the tasks run — and
nothing spawned in the group outlives the block.

Failures are fail-fast and all reported: the first exception a task raises cancels the
group's token (:attr:`TaskGroup.token`), tasks that have not started yet are skipped,
and running ones stop at their next blocking nimsync call (inside a task the group's
token is the ambient one: ``nimsync.current_cancel_token()`` is ``g.token``, and every
blocking ``Channel``, ``select`` or nested-group call waits under it). The block then
raises an :class:`ExceptionGroup` holding every task's exception in spawn order. A task
that stops with ``nimsync.Cancelled``/``Timeout`` *because* the group was cancelled did
not fail on its own and is not listed.

As in :class:`asyncio.TaskGroup`, an exception raised by the body of the ``with``
block cancels the group too; it is reported in the ``ExceptionGroup`` before the
tasks' exceptions (alone, if no task failed). ``KeyboardInterrupt`` and ``SystemExit``
are not grouped: the group is cancelled, every task is waited for, and the exception
propagates as it is — Ctrl-C during the wait at the end of the block does the same.

Options: ``limit`` runs at most that many tasks at once (the others wait in order in the
group, like Go's ``errgroup.SetLimit``, without blocking ``spawn``); ``timeout``
cancels the group that many seconds after the block starts, and the block then raises
:class:`~nimsync.Timeout` (if no task failed); ``cancel`` makes the group's token a
child of that token (default: the ambient token, so a group opened inside a task of
another group, or inside a :func:`~nimsync.cancel_scope`, is cancelled with it — and
never the other way round). A group cancelled from outside (its parent) raises
:class:`~nimsync.Cancelled`; one cancelled by :meth:`TaskGroup.cancel` raises nothing.

The task pool has ``min(32, cores + 4)`` workers (like
``concurrent.futures.ThreadPoolExecutor``; the environment variable
``NIMSYNC_PYTHON_WORKERS`` sets another number before the first group starts). A task
holds one worker until it returns, so tasks that block waiting for *later* tasks of a
larger fan-out can run out of workers, as in any thread pool. :func:`scheduler_metrics`
reports the pool's counters.

``ExceptionGroup`` is the builtin on Python 3.11 and later. On 3.10 nimsync uses the
``exceptiongroup`` backport if it is installed, else a minimal class of its own with the
same ``message`` and ``exceptions`` attributes; either way it is
``nimsync.ExceptionGroup``.

>>> import nimsync
>>> def square(x):
...     return x * x
>>> with nimsync.TaskGroup() as g:
...     handles = [g.spawn(square, i) for i in range(5)]
>>> [h.result() for h in handles]
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from functools import partial
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from . import _native
from ._cancel import CancelToken, _current
from ._errors import Cancelled, Timeout

__all__ = ["TaskGroup", "TaskHandle", "ExceptionGroup", "BaseExceptionGroup", "scheduler_metrics"]

T = TypeVar("T")

try:  # Python 3.11+
    BaseExceptionGroup = BaseExceptionGroup  # type: ignore[misc]  # noqa: PLW0127
    ExceptionGroup = ExceptionGroup  # type: ignore[misc]  # noqa: PLW0127
except NameError:  # Python 3.10
    try:
        from exceptiongroup import BaseExceptionGroup, ExceptionGroup  # type: ignore[no-redef]
    except ImportError:

        class BaseExceptionGroup(BaseException):  # type: ignore[no-redef]
            """A minimal stand-in for Python 3.11's ``BaseExceptionGroup`` (3.10 only)."""

            def __new__(cls, message: str, exceptions: Sequence[BaseException]) -> Any:
                if cls is BaseExceptionGroup and all(isinstance(e, Exception) for e in exceptions):
                    cls = ExceptionGroup
                return super().__new__(cls, message, exceptions)

            def __init__(self, message: str, exceptions: Sequence[BaseException]) -> None:
                super().__init__(message, tuple(exceptions))
                self.message = message
                self.exceptions = tuple(exceptions)

            def __str__(self) -> str:
                n = len(self.exceptions)
                return f"{self.message} ({n} sub-exception{'s' if n != 1 else ''})"

        class ExceptionGroup(BaseExceptionGroup, Exception):  # type: ignore[no-redef]
            """A minimal stand-in for Python 3.11's ``ExceptionGroup`` (3.10 only)."""


def scheduler_metrics() -> Dict[str, Any]:
    """The task pool's counters, read without a lock.

    ``{"workers": [{"spawned", "executed", "stolen_from", "stolen_by", "queue_depth",
    "parks", "panics"}, ...], "injected", "spawned", "executed", "stolen",
    "injector_depth", "load_imbalance"}``; ``load_imbalance`` is the busiest worker's
    executed count over the mean, minus one (0 is perfectly even).

    >>> m = nimsync.scheduler_metrics()
    >>> len(m["workers"]) >= 1 and m["load_imbalance"] >= 0
    True
    """
    return _native.scheduler_metrics()


_MISSING: Any = object()

# States of a group.
_NEW, _OPEN, _JOINING, _CLOSED = "not entered", "open", "joining", "closed"


class TaskHandle:
    """One task of a :class:`TaskGroup` (returned by :meth:`TaskGroup.spawn`).

    Its outcome is known once the group's ``with`` block has ended: :meth:`result`
    returns the task's value or raises its exception (``nimsync.Cancelled`` for a task
    that the group's cancellation skipped or stopped).
    """

    __slots__ = ("_native", "_value", "_exception", "__weakref__")

    def __init__(self, native: Any) -> None:
        self._native = native
        self._value: Any = _MISSING
        self._exception: Optional[BaseException] = None

    @property
    def index(self) -> int:
        """The task's position in spawn order (0 for the first)."""
        return self._native.index

    def done(self) -> bool:
        """Whether the task's outcome is known (its group has been joined)."""
        return self._value is not _MISSING or self._exception is not None

    def result(self) -> Any:
        """The task's return value; raises the task's exception if it failed,
        ``nimsync.Cancelled`` if the group's cancellation skipped or stopped it, and
        ``RuntimeError`` before the group's ``with`` block has ended."""
        if self._value is not _MISSING:
            return self._value
        raise self._outcome_exception()

    def exception(self) -> Optional[BaseException]:
        """The task's exception (``nimsync.Cancelled`` for a cancelled task), or None if
        it returned a value. ``RuntimeError`` before the group's ``with`` block ended."""
        if self._value is not _MISSING:
            return None
        return self._outcome_exception()

    def cancelled(self) -> bool:
        """Whether the task was skipped or stopped by the group's cancellation."""
        return isinstance(self._exception, Cancelled) and getattr(self._exception, "_skipped", False)

    def _outcome_exception(self) -> BaseException:
        if self._exception is None:
            raise RuntimeError(
                f"task {self.index} has no outcome yet: its task group has not been joined "
                "(call result() after the group's with block)"
            )
        return self._exception

    def _settle(self, errors: Dict[int, BaseException], reason: Optional[str]) -> None:
        done, value = self._native._take()
        if done:
            self._value = value
        elif self.index in errors:
            self._exception = errors[self.index]
        else:
            exc = Cancelled(f"task {self.index} was cancelled ({reason or 'task group cancelled'})")
            exc._skipped = True  # type: ignore[attr-defined]
            self._exception = exc

    def __repr__(self) -> str:
        if self._value is not _MISSING:
            state = "done"
        elif self._exception is not None:
            state = "cancelled" if self.cancelled() else f"failed {type(self._exception).__name__}"
        else:
            state = "pending"
        return f"<nimsync.TaskHandle index={self.index} {state}>"


class TaskGroup:
    """A ``with`` block whose tasks all finish before it ends (see the module docs).

    >>> with nimsync.TaskGroup(limit=4, timeout=10.0) as g:
    ...     for url in urls:
    ...         g.spawn(fetch, url)
    >>> results = g.results()               # in spawn order

    Failures raise an :class:`ExceptionGroup` of every task's exception::

        try:
            with nimsync.TaskGroup() as g:
                g.spawn(step_one)
                g.spawn(step_two)
        except* ValueError as eg:
            ...
    """

    __slots__ = (
        "_limit",
        "_timeout",
        "_parent",
        "_native",
        "_token",
        "_handles",
        "_state",
        "_reset",
        "_lock",
        "_spawned",
        "_user_cancelled",
    )

    def __init__(
        self,
        limit: Optional[int] = None,
        timeout: Optional[float] = None,
        cancel: Optional[CancelToken] = None,
    ) -> None:
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
            if limit < 1:
                raise ValueError(f"invalid argument `limit`: must be at least 1, got {limit}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
            timeout = float(timeout)
            if not timeout >= 0.0:  # also catches NaN
                raise ValueError(f"invalid argument `timeout`: must be a non-negative number, got {timeout}")
        if cancel is not None and not isinstance(cancel, CancelToken):
            raise TypeError(f"cancel must be a nimsync.CancelToken or None, not {type(cancel).__name__}")
        self._limit = limit
        self._timeout = timeout
        self._parent = cancel
        self._native: Any = None
        self._token: Optional[CancelToken] = None
        self._handles: List[TaskHandle] = []
        self._state = _NEW
        self._reset: Optional[contextvars.Token[Optional[CancelToken]]] = None
        self._lock = threading.Lock()
        self._spawned = 0
        self._user_cancelled = False

    @property
    def token(self) -> CancelToken:
        """The group's token (the ambient token of its tasks and of the ``with`` body).
        Cancelled by the first failure, the deadline, the parent, or :meth:`cancel`."""
        if self._token is None:
            raise RuntimeError("the task group has no token before its with block starts")
        return self._token

    def __enter__(self) -> "TaskGroup":
        if self._state is not _NEW:
            raise RuntimeError("a task group can be entered only once; make a new one")
        parent = self._parent if self._parent is not None else _current.get()
        self._native = _native.TaskGroup(self._limit, self._timeout, parent)
        self._token = self._native.token
        # The body waits under the group's token too: a failing task stops it.
        self._reset = _current.set(self._token)
        self._state = _OPEN
        return self

    def spawn(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Runs ``fn(*args, **kwargs)`` as a task of the group, on a worker of the task
        pool, in a copy of the caller's context (``contextvars``) whose ambient cancel
        token is the group's. Returns its :class:`TaskHandle`.

        Allowed inside the ``with`` block and from the group's tasks while it is
        joined; ``RuntimeError`` before or after.
        """
        if not callable(fn):
            raise TypeError(f"spawn() argument must be callable, not {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                "spawn() runs plain callables on worker threads; "
                f"{getattr(fn, '__qualname__', fn)!s} is a coroutine function (use asyncio for it)"
            )
        ctx = contextvars.copy_context()
        ctx.run(_current.set, self._token)
        call = partial(ctx.run, fn, *args, **kwargs)
        with self._lock:
            if self._state is not _OPEN and self._state is not _JOINING:
                raise RuntimeError(
                    f"spawn() on a task group that is {self._state}: spawn inside its with block"
                )
            handle = TaskHandle(self._native.spawn(call))
            self._spawned += 1
            self._handles.append(handle)
        return handle

    def cancel(self, message: str = "") -> bool:
        """Cancels the group: tasks not yet started are skipped and running ones see
        the token (their blocking nimsync calls raise ``Cancelled``). The block then
        ends without an exception of its own (task failures are still raised). True the
        first time. After the block the token is always cancelled ("task group
        exited"), like a :func:`~nimsync.cancel_scope`'s."""
        if self._native is None:
            raise RuntimeError("the task group cannot be cancelled before its with block starts")
        first = bool(self._native.cancel(message))
        if first:
            self._user_cancelled = True
        return first

    def results(self) -> List[Any]:
        """Every task's value, in spawn order, once the ``with`` block has ended; raises
        the exception of the first task that did not return a value."""
        if self._state is not _CLOSED:
            raise RuntimeError("results() is available once the task group's with block has ended")
        return [h.result() for h in self._sorted_handles()]

    def _sorted_handles(self) -> List[TaskHandle]:
        return sorted(self._handles, key=lambda h: h.index)

    def _join_all(self) -> Tuple[Dict[int, BaseException], Optional[str], bool]:
        """Joins until no task is left, including tasks spawned by tasks meanwhile."""
        errors: Dict[int, BaseException] = {}
        reason: Optional[str] = None
        timed_out = False
        while True:
            with self._lock:
                seen = self._spawned
            found, why, deadline, _skipped = self._native.join()
            errors.update(found)
            if why is not None:
                reason, timed_out = why, deadline
            with self._lock:
                if self._spawned == seen:
                    self._state = _CLOSED
                    return errors, reason, timed_out

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Optional[bool]:
        assert self._state is _OPEN and self._reset is not None, "__exit__ without __enter__"
        try:
            return self._exit(exc)
        except BaseException:
            # However the exit ends early — above all Ctrl-C arriving between two
            # statements rather than during the wait — no task outlives the block.
            # (After a complete join this is a no-op.)
            self._native.cancel("join ended early: interrupted")
            self._native.join(interruptible=False)
            self._state = _CLOSED
            raise

    def _exit(self, exc: Optional[BaseException]) -> Optional[bool]:
        # A body stopped by the group's own cancellation did not fail on its own.
        body_cancelled = isinstance(exc, (Cancelled, Timeout)) and self._token.cancelled  # type: ignore[union-attr]
        if exc is not None and not body_cancelled:
            self._native.cancel(f"task group body raised {type(exc).__name__}")
        self._state = _JOINING
        try:
            errors, reason, timed_out = self._join_all()
        except BaseException:
            # Ctrl-C while waiting: the native join cancelled the group and waited
            # for every task before raising; settle what can be settled.
            for h in self._handles:
                h._settle({}, "interrupted")
            raise
        finally:
            if self._reset is not None:
                _current.reset(self._reset)
                self._reset = None
            # As with cancel_scope: anything still watching the token (threads or
            # callbacks given it) stops with the block.
            self._native.cancel("task group exited")
        for h in self._handles:
            h._settle(errors, reason)
        if exc is not None and not isinstance(exc, Exception):
            return None  # KeyboardInterrupt, SystemExit, ...: propagate as it is
        failures: List[BaseException] = [errors[i] for i in sorted(errors)]
        if exc is not None and not body_cancelled:
            failures.insert(0, exc)
        if failures:
            raise BaseExceptionGroup("task group failed", failures)
        if exc is not None:
            return None  # the body's Cancelled/Timeout propagates
        if reason is not None and not self._user_cancelled:
            if timed_out:
                raise Timeout(f"task group: {reason}")
            raise Cancelled(f"task group {reason}")
        return None

    def __repr__(self) -> str:
        cancelled = " cancelled" if self._token is not None and self._token.cancelled else ""
        return f"<nimsync.TaskGroup {self._state} tasks={len(self._handles)}{cancelled}>"
