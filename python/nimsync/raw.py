"""Channels of integers that live in ``libnimsync`` and cross language boundaries.

A :class:`RawChannel` is a channel of C ``uintptr_t`` values made through the C ABI of
``libnimsync.so``, the library that C programs and the Nim package use. Its
:attr:`~RawChannel.handle` is the ``nimsync_channel *`` pointer, so a channel created in
Python can be handed to C or Nim code in the same process, and one created there can be
adopted with :meth:`RawChannel.from_handle`. Its :attr:`~RawChannel.aio` face awaits on any
asyncio loop while C threads send, with no polling.

The library is found through ``NIMSYNC_LIBRARY`` (a path), then next to this package,
then on the system's library path (``ctypes.util.find_library("nimsync")``).

>>> from nimsync.raw import RawChannel
>>> ch = RawChannel(8, "mpsc")
>>> ch.send(42); ch.recv()
42
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import itertools
import os
import pathlib
import weakref
from typing import Any, Dict, Optional

from ._errors import ChannelBusy, ChannelClosed, ChannelEmpty, ChannelFull, NimsyncError, Timeout

__all__ = ["RawChannel", "load_library"]

_OK, _NULL, _INVALID, _FULL, _EMPTY, _CLOSED, _TIMEOUT = 0, 1, 2, 3, 4, 5, 6
_BUSY, _OOM, _PENDING = 9, 10, 12
_WAIT_FOREVER = 2**64 - 1
_MODES = {"spsc": 0, "mpsc": 1, "spmc": 2, "mpmc": 3}

_lib: Optional[ctypes.CDLL] = None


def load_library(path: Optional[str] = None) -> ctypes.CDLL:
    """Loads ``libnimsync`` (once) and declares its functions."""
    global _lib
    if _lib is not None:
        return _lib
    candidates = [path, os.environ.get("NIMSYNC_LIBRARY"),
                  str(pathlib.Path(__file__).with_name("libnimsync.so")), ctypes.util.find_library("nimsync")]
    errors = []
    for c in candidates:
        if not c:
            continue
        try:
            lib = ctypes.CDLL(c)
            break
        except OSError as e:
            errors.append(f"{c}: {e}")
    else:
        raise OSError("libnimsync not found; set NIMSYNC_LIBRARY to its path (" + "; ".join(errors) + ")")
    p, u, sz, u64, st = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_int
    pu = ctypes.POINTER(ctypes.c_size_t)
    sigs = {
        "nimsync_abi_version": ([], ctypes.c_uint32),
        "nimsync_last_error_message": ([], ctypes.c_char_p),
        "nimsync_channel_new": ([sz, ctypes.c_uint32, p, p, ctypes.POINTER(p)], st),
        "nimsync_channel_clone": ([p, ctypes.POINTER(p)], st),
        "nimsync_channel_free": ([p], None),
        "nimsync_channel_try_send": ([p, u], st),
        "nimsync_channel_send_timeout": ([p, u, u64], st),
        "nimsync_channel_try_recv": ([p, pu], st),
        "nimsync_channel_recv_timeout": ([p, pu, u64], st),
        "nimsync_channel_close": ([p], st),
        "nimsync_channel_len": ([p, pu], st),
        "nimsync_channel_capacity": ([p, pu], st),
        "nimsync_channel_is_closed": ([p, ctypes.POINTER(ctypes.c_bool)], st),
        "nimsync_loop_waker_new": ([ctypes.POINTER(p)], st),
        "nimsync_loop_waker_fd": ([p, ctypes.POINTER(ctypes.c_int)], st),
        "nimsync_loop_waker_drain": ([p, ctypes.POINTER(u64), sz, pu], st),
        "nimsync_loop_waker_free": ([p], None),
        "nimsync_async_op_new": ([p, u64, ctypes.POINTER(p)], st),
        "nimsync_async_op_free": ([p], None),
        "nimsync_channel_poll_recv": ([p, p, pu], st),
        "nimsync_channel_poll_send": ([p, p, u], st),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    if lib.nimsync_abi_version() != 1:
        raise OSError(f"libnimsync has ABI version {lib.nimsync_abi_version()}, this module needs 1")
    _lib = lib
    return lib


def _raise(status: int, value: Any = None) -> None:
    lib = load_library()
    msg = (lib.nimsync_last_error_message() or b"").decode()
    cls = {_CLOSED: ChannelClosed, _FULL: ChannelFull, _EMPTY: ChannelEmpty, _TIMEOUT: Timeout,
           _BUSY: ChannelBusy}.get(status)
    if cls is None:
        if status in (_NULL, _INVALID):
            raise ValueError(msg)
        if status == _OOM:
            raise MemoryError(msg)
        raise NimsyncError(f"status {status}: {msg}")
    exc = cls(msg)
    exc.value = value
    raise exc


class RawChannel:
    """A channel of integers (``uintptr_t``) in ``libnimsync``; see the module docs.

    ``RawChannel(capacity, mode="mpmc")`` creates one; :meth:`from_handle` adopts one made
    elsewhere. Each object holds one reference; the channel lives until the last reference
    (in any language) is freed.
    """

    __slots__ = ("_h", "_aio", "__weakref__")

    def __init__(self, capacity: int, mode: str = "mpmc", *, _handle: Optional[int] = None) -> None:
        lib = load_library()
        if _handle is not None:
            self._h = ctypes.c_void_p(_handle)
            return
        if mode.lower() not in _MODES:
            raise ValueError(f"unknown channel mode {mode!r}; expected one of {sorted(_MODES)}")
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative int, got {capacity!r}")
        h = ctypes.c_void_p()
        st = lib.nimsync_channel_new(capacity, _MODES[mode.lower()], None, None, ctypes.byref(h))
        if st != _OK:
            _raise(st)
        self._h = h

    @classmethod
    def from_handle(cls, handle: int) -> "RawChannel":
        """Takes a new reference to the channel behind a ``nimsync_channel *`` (an int)."""
        lib = load_library()
        if not handle:
            raise ValueError("handle is NULL")
        h = ctypes.c_void_p()
        st = lib.nimsync_channel_clone(ctypes.c_void_p(handle), ctypes.byref(h))
        if st != _OK:
            _raise(st)
        return cls(0, _handle=h.value)

    @property
    def handle(self) -> int:
        """The ``nimsync_channel *`` as an int; valid while this object lives (code that keeps
        it longer takes its own reference with ``nimsync_channel_clone``)."""
        return self._h.value or 0

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is not None and h.value and _lib is not None:
            _lib.nimsync_channel_free(h)
            self._h = ctypes.c_void_p()

    def send(self, item: int, timeout: Optional[float] = None) -> None:
        """Sends, waiting while full (GIL released); raises ChannelClosed or Timeout."""
        st = load_library().nimsync_channel_send_timeout(self._h, item, _ns(timeout))
        if st != _OK:
            _raise(st, item)

    def recv(self, timeout: Optional[float] = None) -> int:
        """Receives, waiting while empty (GIL released); raises ChannelClosed or Timeout."""
        out = ctypes.c_size_t()
        st = load_library().nimsync_channel_recv_timeout(self._h, ctypes.byref(out), _ns(timeout))
        if st != _OK:
            _raise(st)
        return out.value

    def try_send(self, item: int) -> None:
        """Sends without waiting; raises ChannelFull or ChannelClosed."""
        st = load_library().nimsync_channel_try_send(self._h, item)
        if st != _OK:
            _raise(st, item)

    def try_recv(self) -> int:
        """Receives without waiting; raises ChannelEmpty or ChannelClosed."""
        out = ctypes.c_size_t()
        st = load_library().nimsync_channel_try_recv(self._h, ctypes.byref(out))
        if st != _OK:
            _raise(st)
        return out.value

    def close(self) -> None:
        """Closes the channel (see nimsync.Channel.close)."""
        load_library().nimsync_channel_close(self._h)

    def __len__(self) -> int:
        out = ctypes.c_size_t()
        load_library().nimsync_channel_len(self._h, ctypes.byref(out))
        return out.value

    def __iter__(self):
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return

    @property
    def aio(self) -> "AsyncRawChannel":
        """The asyncio face: ``await send(i)``, ``await recv()``, ``async for``."""
        try:
            return self._aio
        except AttributeError:
            self._aio = AsyncRawChannel(self)
            return self._aio


def _ns(timeout: Optional[float]) -> int:
    if timeout is None:
        return _WAIT_FOREVER
    if timeout < 0:
        raise ValueError(f"timeout must be non-negative or None, got {timeout}")
    return min(int(timeout * 1e9), _WAIT_FOREVER - 1)


class _CLoopBridge:
    """A libnimsync loop waker registered with one asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        lib = load_library()
        self.loop = loop
        self.waker = ctypes.c_void_p()
        st = lib.nimsync_loop_waker_new(ctypes.byref(self.waker))
        if st != _OK:
            _raise(st)
        fd = ctypes.c_int()
        lib.nimsync_loop_waker_fd(self.waker, ctypes.byref(fd))
        self.fd = fd.value
        self.waiters: Dict[int, asyncio.Future[None]] = {}
        self.tokens = itertools.count(1)
        self._buf = (ctypes.c_uint64 * 64)()
        loop.add_reader(self.fd, self._on_readable)
        weakref.finalize(self, lib.nimsync_loop_waker_free, self.waker)

    def _on_readable(self) -> None:
        lib = load_library()
        n = ctypes.c_size_t()
        while True:
            lib.nimsync_loop_waker_drain(self.waker, self._buf, 64, ctypes.byref(n))
            for i in range(n.value):
                fut = self.waiters.pop(self._buf[i], None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            if n.value < 64:
                return


_c_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _CLoopBridge]" = weakref.WeakKeyDictionary()


def _c_bridge() -> _CLoopBridge:
    loop = asyncio.get_running_loop()
    b = _c_bridges.get(loop)
    if b is None:
        b = _c_bridges[loop] = _CLoopBridge(loop)
    return b


class AsyncRawChannel:
    """The asyncio face of a :class:`RawChannel`."""

    __slots__ = ("_ch",)

    def __init__(self, channel: RawChannel) -> None:
        self._ch = channel

    async def _drive(self, poll) -> Any:
        lib = load_library()
        b = _c_bridge()
        token = next(b.tokens)
        op = ctypes.c_void_p()
        if lib.nimsync_async_op_new(b.waker, token, ctypes.byref(op)) != _OK:
            raise NimsyncError("cannot create an async operation")
        try:
            while True:
                fut = b.loop.create_future()
                b.waiters[token] = fut
                done, value = poll(lib, op)
                if done:
                    return value
                await fut
        finally:
            b.waiters.pop(token, None)
            lib.nimsync_async_op_free(op)  # cancels a pending operation, losing nothing

    async def recv(self) -> int:
        """Receives, awaiting while empty; raises ChannelClosed once closed and drained."""
        out = ctypes.c_size_t()
        h = self._ch._h

        def poll(lib, op):
            st = lib.nimsync_channel_poll_recv(h, op, ctypes.byref(out))
            if st == _OK:
                return True, out.value
            if st != _PENDING:
                _raise(st)
            return False, None

        return await self._drive(poll)

    async def send(self, item: int) -> None:
        """Sends, awaiting while full; raises ChannelClosed (with ``value``)."""
        h = self._ch._h

        def poll(lib, op):
            st = lib.nimsync_channel_poll_send(h, op, item)
            if st == _OK:
                return True, None
            if st != _PENDING:
                _raise(st, item)
            return False, None

        await self._drive(poll)

    def __aiter__(self) -> "AsyncRawChannel":
        return self

    async def __anext__(self) -> int:
        try:
            return await self.recv()
        except ChannelClosed:
            raise StopAsyncIteration from None
