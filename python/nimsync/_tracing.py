"""Tracing: ``with nimsync.span("name") as s:`` and W3C Trace Context helpers.

Spans are made and exported by nimsync's core (see ``nimsync.tracing_init``); this
module keeps the *current* span of each thread and asyncio task in a
:class:`contextvars.ContextVar`, so a span opened inside another becomes its child,
across ``await`` too.

>>> import nimsync
>>> nimsync.tracing_init(sampling_rate=1.0)
>>> with nimsync.span("request", attributes={"http.method": "GET"}) as req:
...     with nimsync.span("query") as q:
...         q.set_attribute("rows", 3)
...     header = nimsync.traceparent()
>>> q.parent_span_id == req.span_id and header == req.traceparent
True
>>> nimsync.parse_traceparent(header).trace_id == req.trace_id
True
"""

from __future__ import annotations

import contextvars
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from . import _native

__all__ = [
    "Span",
    "span",
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
]

AttributeValue = Union[str, int, float, bool]

_current: contextvars.ContextVar[Optional["Span"]] = contextvars.ContextVar(
    "nimsync_current_span", default=None
)


class Span:
    """One timed operation. Made by :func:`span`; usable from any thread."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Span) -> None:
        self._native = native

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Sets an attribute (str, int, float or bool)."""
        self._native.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        timestamp_ns: Optional[int] = None,
    ) -> None:
        """Adds an event, stamped now unless ``timestamp_ns`` (Unix nanoseconds) is given."""
        self._native.add_event(name, dict(attributes) if attributes else None, timestamp_ns)

    def record_error(self, error: Union[BaseException, str]) -> None:
        """Records an exception (or a message): an ``exception`` event, status error."""
        if isinstance(error, BaseException):
            self._native.record_error(type(error).__qualname__, str(error))
        else:
            self._native.record_error("Error", str(error))

    def set_status(self, code: str, message: Optional[str] = None) -> None:
        """``"ok"`` (final), ``"error"`` (with ``message``) or ``"unset"``."""
        self._native.set_status(code, message)

    def end(self, timestamp_ns: Optional[int] = None) -> None:
        """Ends the span (the ``with`` block does this)."""
        self._native.end(timestamp_ns)

    @property
    def trace_id(self) -> str:
        """The trace id, 32 lowercase hex digits."""
        return self._native.trace_id

    @property
    def span_id(self) -> str:
        """The span id, 16 lowercase hex digits."""
        return self._native.span_id

    @property
    def parent_span_id(self) -> Optional[str]:
        """The parent's span id, or None for a root span."""
        return self._native.parent_span_id

    @property
    def sampled(self) -> bool:
        """Whether the span was sampled (and will be exported)."""
        return self._native.sampled

    @property
    def is_recording(self) -> bool:
        """Whether it still records (sampled and not ended)."""
        return self._native.is_recording

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` header for calls made inside this span."""
        return self._native.traceparent

    @property
    def tracestate(self) -> Optional[str]:
        """The ``tracestate`` header, or None when empty."""
        return self._native.tracestate

    def __repr__(self) -> str:
        return f"<nimsync.Span trace_id={self.trace_id} span_id={self.span_id}>"


class span:
    """``with nimsync.span("name", attributes={...}) as s:`` times the block as a span.

    The span is the current one inside the block (in this thread or asyncio task), so
    spans opened inside become its children. ``parent`` overrides that: a :class:`Span`,
    or a ``traceparent`` header received from a caller (with its ``tracestate``) to
    continue a remote trace; an invalid header raises ``ValueError``. ``kind`` is
    ``"internal"``, ``"server"``, ``"client"``, ``"producer"`` or ``"consumer"``. An
    exception leaving the block is recorded on the span (status error) and re-raised.
    """

    __slots__ = ("_args", "_span", "_token")

    def __init__(
        self,
        name: str,
        attributes: Optional[Mapping[str, AttributeValue]] = None,
        *,
        kind: str = "internal",
        parent: Union[Span, str, None] = None,
        tracestate: Optional[str] = None,
    ) -> None:
        self._args = (name, attributes, kind, parent, tracestate)
        self._span: Optional[Span] = None
        self._token: Optional[contextvars.Token] = None

    def __enter__(self) -> Span:
        if self._span is not None:
            raise RuntimeError("a nimsync.span block cannot be entered twice")
        name, attributes, kind, parent, tracestate = self._args
        if parent is None:
            parent = _current.get()
        native_parent = parent._native if isinstance(parent, Span) else parent
        s = Span(
            _native.start_span(
                name,
                native_parent,
                tracestate,
                kind,
                dict(attributes) if attributes else None,
            )
        )
        self._span = s
        self._token = _current.set(s)
        return s

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        s = self._span
        assert s is not None and self._token is not None
        if exc is not None:
            s.record_error(exc)
        _current.reset(self._token)
        s.end()


def current_span() -> Optional[Span]:
    """The span of the innermost ``with nimsync.span(...)`` block, or None."""
    return _current.get()


def traceparent() -> Optional[str]:
    """The ``traceparent`` header to send from inside the current span (None outside)."""
    s = _current.get()
    return s.traceparent if s is not None else None


def tracestate() -> Optional[str]:
    """The ``tracestate`` header to send from inside the current span (None if empty)."""
    s = _current.get()
    return s.tracestate if s is not None else None


class TraceParent(NamedTuple):
    """A parsed ``traceparent`` header."""

    version: int
    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        """The sampled flag."""
        return bool(self.flags & 1)


def parse_traceparent(header: str) -> TraceParent:
    """Parses a ``traceparent`` header strictly (W3C Trace Context level 1).

    Raises ``ValueError`` naming what is wrong (length, uppercase hex, version ``ff``,
    all-zero ids, ...).
    """
    return TraceParent(*_native.parse_traceparent(header))


def parse_tracestate(header: str) -> List[Tuple[str, str]]:
    """The ``(key, value)`` members of a ``tracestate`` header; ``ValueError`` if invalid."""
    return _native.parse_tracestate(header)


def parse_baggage(header: str) -> Dict[str, str]:
    """A W3C ``baggage`` header as ``{key: value}`` (values decoded); ``ValueError`` if invalid."""
    return dict(_native.parse_baggage(header))


def format_baggage(items: Mapping[str, str]) -> str:
    """Formats ``{key: value}`` as a ``baggage`` header (values percent-encoded)."""
    return _native.format_baggage(list(items.items()))


def tracing_init(
    sampling_rate: float = 1.0,
    exporter: Optional[str] = None,
    *,
    service_name: Optional[str] = None,
    enabled: bool = True,
    max_queue_size: int = 2048,
    max_batch_size: int = 512,
    schedule_delay: float = 1.0,
) -> None:
    """Configures tracing for the process.

    ``sampling_rate`` (0..1) samples that fraction of new traces (by trace id, as
    OpenTelemetry's ``TraceIdRatioBased``); spans with a parent follow the parent's
    decision. ``exporter`` is a file path (one OTLP JSON ``ExportTraceServiceRequest``
    per line) or an ``http://host:port/v1/traces`` collector URL (OTLP/HTTP JSON), or
    None to export nothing. Export runs on a background thread with a bounded buffer
    (``max_queue_size``): when it is full, spans are dropped and counted
    (:func:`tracing_stats`), never waited for.
    """
    _native.tracing_init(
        sampling_rate,
        exporter,
        service_name,
        enabled,
        max_queue_size,
        max_batch_size,
        schedule_delay,
    )


def tracing_flush(timeout: float = 30.0) -> None:
    """Exports every ended span now; waits up to ``timeout`` seconds."""
    _native.tracing_flush(timeout)


def tracing_shutdown() -> None:
    """Exports what is queued and stops exporting; tracing is disabled afterwards."""
    _native.tracing_shutdown()


def tracing_stats() -> Dict[str, Any]:
    """Export counters: queued, dropped, exported, failed, last_error, queue_capacity."""
    return _native.tracing_stats()
