"""The asyncio face of nimsync objects.

Every nimsync object that can wait has an ``aio`` attribute: the same operations,
awaitable, usable from coroutines while threads use the blocking methods of the same
object (the model of ``janus``). ``Channel.aio`` is also ``asyncio.Queue``-compatible, so
``q = asyncio.Queue(100)`` becomes ``q = nimsync.Channel(100).aio``.

Waiting does not poll. Each event loop gets one native ``LoopWaker`` whose file descriptor
is registered with ``loop.add_reader``; a pending operation registers in the channel's
wait queue, and the thread (or coroutine, or C or Nim code) that makes it possible marks
its token and makes the descriptor readable. The descriptor is written only when an
awaiting operation exists. Cancelling an awaiting task leaves the channel consistent and
loses no item.

The awaits take ``cancel=`` (a ``nimsync.CancelToken``) like the blocking methods, and
without it obey the ambient token of ``nimsync.cancel_scope`` / ``nimsync.timeout``
(it is per task): inside such a block an awaiting operation that the scope's token stops
raises ``nimsync.Cancelled`` (``nimsync.Timeout`` for a deadline), exactly like the
blocking methods. ``asyncio.timeout`` and task cancellation work as usual besides.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from functools import partial
from typing import Any, Callable, Dict, Generic, Optional, TypeVar

from . import _native
from ._cancel import CancelToken, _current
from ._errors import ChannelClosed, NimsyncError

__all__ = ["AsyncChannel"]

T = TypeVar("T")

_MISSING = object()


class _LoopBridge:
    """One event loop's readiness descriptor and the coroutines waiting on it."""

    __slots__ = ("loop", "waker", "waiters", "tokens", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waker = _native.LoopWaker()
        self.waiters: Dict[int, asyncio.Future[None]] = {}
        self.tokens = itertools.count(1)
        loop.add_reader(self.waker.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for token in self.waker.drain():
            self.wake(token)

    def wake(self, token: int) -> None:
        """Wakes the coroutine waiting under ``token``, if any (on the loop's thread)."""
        fut = self.waiters.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def wake_threadsafe(self, token: int) -> None:
        """:meth:`wake`, from any thread (a cancel token's callback)."""
        try:
            self.loop.call_soon_threadsafe(self.wake, token)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to wake

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.waker.fileno())


_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBridge]" = weakref.WeakKeyDictionary()


def _bridge() -> _LoopBridge:
    loop = asyncio.get_running_loop()
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = _LoopBridge(loop)
    return bridge


def _check_cancel(cancel: Any) -> None:
    """Rejects a ``cancel=`` argument that is neither a token nor None."""
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel must be a nimsync.CancelToken or None, not {type(cancel).__name__}")


async def _drive(
    make_op: Callable[[Any, int], Any],
    finish: Callable[[Any], Any],
    item: Any = _MISSING,
    cancel: Optional[CancelToken] = None,
) -> Any:
    """Polls a native operation until it completes, sleeping on the loop in between.

    ``make_op(waker, token)`` creates the operation, ``finish(poll_result)`` returns the
    outcome or ``_MISSING`` while pending. ``item`` is a send's item: the exception of a
    send that the cancel token stopped carries it as ``value``. ``cancel`` is the
    operation's own token; without one it waits under the ambient token.
    """
    bridge = _bridge()
    token = next(bridge.tokens)
    op = make_op(bridge.waker, token)
    # The slow path: only now look for the ambient cancel token.
    scope: Optional[CancelToken] = cancel if cancel is not None else _current.get()
    on_cancel = None
    try:
        while True:
            outcome = finish(op.poll())
            if outcome is not _MISSING:
                return outcome
            if scope is not None and scope.cancelled:
                return _stop(op, scope, item)
            # No await between the poll and this registration: the reader callback
            # runs on this same loop, so it cannot miss the token.
            fut = bridge.loop.create_future()
            bridge.waiters[token] = fut
            if scope is not None and on_cancel is None:
                # Runs at once if the token fired since the check above; the wake-up
                # goes through the loop either way, after this registration.
                on_cancel = scope.on_cancel(partial(bridge.wake_threadsafe, token))
            await fut
    finally:
        if on_cancel is not None:
            on_cancel.remove()
        bridge.waiters.pop(token, None)
        # A completed operation ignores this; a pending one withdraws, passing any
        # wake-up it received to another waiter.
        op.cancel()


def _stop(op: Any, scope: CancelToken, item: Any) -> None:
    """Ends an operation that the ambient token stopped: withdraws it, then raises the
    token's ``Cancelled`` / ``Timeout`` — unless a send completed after all."""
    withdrawn = op.cancel()
    if item is not _MISSING and withdrawn is False:
        return None  # the item was taken before we could withdraw it: it is sent
    try:
        scope.check()
    except NimsyncError as exc:
        if item is not _MISSING:
            exc.value = item
        raise
    raise AssertionError("a cancelled token's check() raises")


def _recv_done(result: Any) -> Any:
    done, value = result
    return value if done else _MISSING


def _send_done(done: bool) -> Any:
    return None if done else _MISSING


def _join_done(done: bool) -> Any:
    return None if done else _MISSING


class AsyncChannel(Generic[T]):
    """The asyncio face of a :class:`nimsync.Channel` (``channel.aio``).

    ``await send(item)``, ``await recv()`` and ``async for item in channel.aio`` wait
    without blocking the loop; ``put``/``get``/``put_nowait``/``get_nowait``/``qsize``/
    ``empty``/``full``/``maxsize``/``task_done``/``join`` follow ``asyncio.Queue``.
    """

    # The fast paths are kept as bound methods: one attribute load instead of two on
    # every send and receive.
    __slots__ = ("_ch", "_offer", "_take")

    def __init__(self, channel: Any) -> None:
        self._ch = channel
        self._offer = channel._try_send_or_full
        self._take = channel._try_recv_or

    @property
    def channel(self) -> Any:
        """The channel this face belongs to (its blocking face)."""
        return self._ch

    async def send(self, item: T, *, cancel: Optional[CancelToken] = None) -> None:
        """Sends ``item``, waiting while the channel is full.

        Raises :class:`ChannelClosed` (with the item as ``value``). If the awaiting task
        is cancelled before the item was taken, the item is not sent; the same when the
        ``cancel`` token (default: the enclosing :func:`nimsync.cancel_scope`'s) stops it
        (``Cancelled``/``Timeout`` with the item as ``value``).
        """
        _check_cancel(cancel)
        if self._offer(item):
            return
        ch = self._ch
        await _drive(lambda waker, token: ch._send_op(item, waker, token), _send_done, item, cancel)

    async def recv(self, *, cancel: Optional[CancelToken] = None) -> T:
        """Receives an item, waiting while the channel is empty, or until the ``cancel``
        token (default: the enclosing :func:`nimsync.cancel_scope`'s) fires.

        Raises :class:`ChannelClosed` once the channel is closed and drained.
        """
        _check_cancel(cancel)
        item = self._take(_MISSING)
        if item is not _MISSING:
            return item
        return await _drive(self._ch._recv_op, _recv_done, _MISSING, cancel)

    def __aiter__(self) -> "AsyncChannel[T]":
        return self

    async def __anext__(self) -> T:
        try:
            return await self.recv()
        except ChannelClosed:
            raise StopAsyncIteration from None

    # asyncio.Queue-compatible methods.

    async def put(self, item: T, *, cancel: Optional[CancelToken] = None) -> None:
        """``asyncio.Queue.put``: same as :meth:`send`."""
        await self.send(item, cancel=cancel)

    async def get(self, *, cancel: Optional[CancelToken] = None) -> T:
        """``asyncio.Queue.get``: same as :meth:`recv`."""
        return await self.recv(cancel=cancel)

    def put_nowait(self, item: T) -> None:
        """Raises :class:`ChannelFull` (an ``asyncio.QueueFull``) when full."""
        self._ch.put_nowait(item)

    def get_nowait(self) -> T:
        """Raises :class:`ChannelEmpty` (an ``asyncio.QueueEmpty``) when empty."""
        return self._ch.get_nowait()

    def qsize(self) -> int:
        """Items inside right now."""
        return self._ch.qsize()

    def empty(self) -> bool:
        """True when no item is inside."""
        return self._ch.empty()

    def full(self) -> bool:
        """True when every slot is taken."""
        return self._ch.full()

    @property
    def maxsize(self) -> int:
        """The capacity, 0 for an unbounded channel."""
        return self._ch.maxsize

    def task_done(self) -> None:
        """Marks one received item as processed (``asyncio.Queue.task_done``)."""
        self._ch.task_done()

    async def join(self, *, cancel: Optional[CancelToken] = None) -> None:
        """Waits until every item sent has been marked with :meth:`task_done`, or until
        the ``cancel`` token (default: the enclosing cancel scope's) fires."""
        _check_cancel(cancel)
        ch = self._ch
        await _drive(ch._join_op, _join_done, _MISSING, cancel)

    def close(self) -> bool:
        """Closes the channel (see :meth:`nimsync.Channel.close`)."""
        return self._ch.close()

    def __repr__(self) -> str:
        return f"<aio face of {self._ch!r}>"
