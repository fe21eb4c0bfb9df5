"""Metrics: counters, gauges and histograms in a :class:`Collector`, exposed in the Prometheus
text format (0.0.4) or served at ``/metrics`` over HTTP.

>>> import nimsync
>>> c = nimsync.Collector(sampling_rate=1.0)
>>> requests = c.counter("http_requests_total", "Requests served.", labels=("method",))
>>> requests.labels(method="GET").inc()
>>> latency = c.histogram("latency_ns", "Request latency.")
>>> for v in (1000, 2000, 3000):
...     latency.record(v)
>>> abs(latency.percentile(50) - 2000) <= 20   # within 1%
True
>>> latency.percentile(100)                    # the maximum, exactly
3000
>>> latency.summary()["count"]
3
>>> 'http_requests_total{method="GET"} 1' in c.expose()
True

Recording is lock-free and exact from any number of threads (N threads recording M values
each leave a count of N×M). Histograms hold values >= 0 (ints; floats are rounded) and answer
any percentile within 1%; min, max, sum and count are exact. ``sampling_rate`` is the
probability that a histogram record is kept; counters and gauges are never sampled. Metric
names follow Prometheus (``[a-zA-Z_:][a-zA-Z0-9_:]*``); bad names, labels and values raise
``ValueError``.

A metric registered with ``labels=`` records through ``.labels(...)`` (values by position or
by keyword), which returns the series for those values; keep it for hot paths.

``collector.serve(("127.0.0.1", 0))`` starts the endpoint on one background thread and
returns a :class:`MetricsServer`, a context manager that stops it on exit::

    with collector.serve(("127.0.0.1", 0)) as server:
        urllib.request.urlopen(server.url).read()
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Tuple, Union

from . import _native
from ._native import Counter, Gauge, Histogram, MetricsServer

__all__ = ["Collector", "Counter", "Gauge", "Histogram", "MetricsServer", "timed"]


class Collector(_native.Collector):
    """A registry of metrics: ``Collector(enabled=True, sampling_rate=1.0)``.

    ``counter(name, help="", labels=())``, ``gauge(...)`` and ``histogram(..., buckets=None,
    quantiles=None, scale=1.0)`` register a metric, or return the one already registered
    under that name with the same kind and labels. ``expose()`` is the Prometheus text;
    ``serve(address)`` serves it at ``/metrics``. ``register_channel(name, channel)``
    publishes a :class:`~nimsync.Channel`'s length, capacity and waiting threads,
    ``register_scheduler(name)`` the workers that run :class:`~nimsync.TaskGroup` tasks, and
    ``register_group(name, group)`` a task group's counts (inside its ``with`` block).

    Histograms are exposed as Prometheus histograms (``_bucket``/``_sum``/``_count``, decade
    buckets from 1 to 10^12 unless ``buckets=`` says otherwise), or as summaries with
    precomputed quantiles when ``quantiles=`` is given. ``scale`` multiplies recorded values
    on exposition (``1e-9`` shows recorded nanoseconds as seconds).
    """

    __slots__ = ()

    def register_group(self, name: str, group: Any) -> None:
        """Publishes a :class:`~nimsync.TaskGroup`'s counts under ``group=name``; the group
        must have entered its ``with`` block. Stops by itself once the group is gone."""
        native = getattr(group, "_native", None)
        if not isinstance(native, _native.TaskGroup):
            raise TypeError(
                f"group must be a nimsync.TaskGroup inside its with block, not {type(group).__name__}"
            )
        super().register_group(name, native)

    def serve(self, address: Union[str, Tuple[str, int]] = ("127.0.0.1", 9464)) -> MetricsServer:
        """Serves :meth:`expose` at ``GET /metrics`` on ``address`` (``(host, port)`` or
        ``"host:port"``; port 0 picks a free one, see :attr:`MetricsServer.address`)."""
        return super().serve(address)


@contextlib.contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Records the nanoseconds the ``with`` block took in ``histogram`` (also when it raises).

    >>> import nimsync
    >>> h = nimsync.Collector().histogram("op_ns")
    >>> with nimsync.timed(h):
    ...     pass
    >>> h.count
    1
    """
    start = time.perf_counter_ns()
    try:
        yield
    finally:
        histogram.record(time.perf_counter_ns() - start)
