"""nimsync: lock-free channels that block without polling.

One runtime (written in Rust) serves C, Python and Nim. In Python:

- :class:`Channel` carries any object between threads; its blocking methods release the
  GIL and can be interrupted with Ctrl-C. It is ``queue.Queue``-compatible.
- ``channel.aio`` is its asyncio face: the same operations, awaitable, usable from any
  event loop at the same time as threads use the blocking ones; it is
  ``asyncio.Queue``-compatible. Every nimsync object that can wait spells its asyncio face
  this way.
- :func:`select` completes one of several channel operations.
- :class:`CancelToken` stops blocking calls: pass it as ``cancel=``, or open
  ``with nimsync.cancel_scope() as token:`` / ``with nimsync.timeout(seconds):`` and every
  blocking call inside the block (in that thread or asyncio task) obeys it. A stopped call
  raises :class:`Cancelled` (:class:`Timeout` for a deadline).
- :class:`TaskGroup` runs callables on nimsync's work-stealing pool:
  ``with nimsync.TaskGroup() as g: g.spawn(f, x)``; the block waits for every task, and
  failures cancel the group and raise an :class:`ExceptionGroup` of all of them.
- :class:`Collector` holds counters, gauges and histograms (``c.histogram("x").record(v)``,
  ``h.percentile(99)``), exposes them as Prometheus text (``c.expose()``) and serves them at
  ``/metrics`` (``with c.serve(("127.0.0.1", 0)) as server: ...``).

Errors derive from :class:`NimsyncError`; a failed send hands its item back as the
exception's ``value``.

>>> import nimsync
>>> ch = nimsync.Channel(4)
>>> ch.send("hello")
>>> ch.recv()
'hello'
"""

from __future__ import annotations

from typing import Any, Generic, Optional, TypeVar

from . import _native
from ._aio import AsyncChannel
from ._cancel import (
    CancelCallback,
    CancelScope,
    CancelToken,
    cancel_scope,
    current_cancel_token,
    timeout,
)
from ._errors import (
    Cancelled,
    ChannelBusy,
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    NimsyncError,
    Timeout,
)
from ._group import (
    BaseExceptionGroup,
    ExceptionGroup,
    TaskGroup,
    TaskHandle,
    scheduler_metrics,
)
from ._metrics import Collector, Counter, Gauge, Histogram, MetricsServer, timed
from ._native import select
from ._tracing import (
    Span,
    TraceParent,
    current_span,
    format_baggage,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
    span,
    traceparent,
    tracestate,
    tracing_flush,
    tracing_init,
    tracing_shutdown,
    tracing_stats,
)

__version__: str = _native.__version__

__all__ = [
    "Channel",
    "AsyncChannel",
    "select",
    "CancelToken",
    "CancelCallback",
    "CancelScope",
    "cancel_scope",
    "timeout",
    "current_cancel_token",
    "TaskGroup",
    "TaskHandle",
    "ExceptionGroup",
    "BaseExceptionGroup",
    "scheduler_metrics",
    "NimsyncError",
    "ChannelClosed",
    "ChannelFull",
    "ChannelEmpty",
    "Timeout",
    "Cancelled",
    "ChannelBusy",
    "span",
    "Span",
    "current_span",
    "traceparent",
    "tracestate",
    "TraceParent",
    "parse_traceparent",
    "parse_tracestate",
    "parse_baggage",
    "format_baggage",
    "tracing_init",
    "tracing_flush",
    "tracing_shutdown",
    "tracing_stats",
    "Collector",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsServer",
    "timed",
    "__version__",
]

T = TypeVar("T")


class Channel(_native.Channel, Generic[T]):
    """A channel of Python objects between threads and coroutines.

    ``Channel(capacity, mode="mpmc")``: ``capacity`` is rounded up to a power of two;
    ``0`` (mode ``"mpmc"``) is a rendezvous channel where a send waits for a receiver;
    ``None`` is unbounded. ``mode`` says how many threads may send and receive at the same
    moment: ``"spsc"``, ``"mpsc"``, ``"spmc"`` or ``"mpmc"``; a single-thread side used by
    two threads at once raises :class:`ChannelBusy`.

    Blocking: ``send``/``recv`` (with ``timeout=``), ``try_send``/``try_recv``,
    ``for item in channel`` (ends at close), ``with Channel(...) as ch`` (closes at the
    end). ``queue.Queue``: ``put``, ``get``, ``put_nowait``, ``get_nowait``, ``qsize``,
    ``empty``, ``full``, ``maxsize``, ``task_done``, ``join``. Async: :attr:`aio`.
    """

    __slots__ = ("_aio",)

    @property
    def aio(self) -> AsyncChannel[T]:
        """The asyncio face of this channel (see :class:`AsyncChannel`)."""
        try:
            return self._aio
        except AttributeError:
            face: AsyncChannel[T] = AsyncChannel(self)
            self._aio = face
            return face
