"""nimsync channels from Python, beside the standard library's queues.

What is measured (every message is a small int; a ``None`` sentinel ends a stream):

1. ``threads`` -- one producer thread, one consumer thread, 1,000,000 messages:
   ``nimsync.Channel(1024, "spsc")`` send/recv, ``nimsync.Channel(1024)`` (mpmc) put/get,
   ``queue.Queue(1024)`` put/get, ``queue.SimpleQueue`` put/get (unbounded) and
   ``nimsync.Channel(None)`` (unbounded) send/recv. Reported in million messages/s.
2. ``asyncio`` -- a producer task and a consumer task in one event loop, 200,000 messages,
   capacity 1024: ``await ch.aio.send/recv`` against ``asyncio.Queue(1024)`` put/get.
3. ``thread->asyncio`` -- a plain thread produces 100,000 messages that a coroutine awaits
   one at a time: ``ch.send`` in the thread and ``await ch.aio.recv()`` on the loop
   (``nimsync.Channel(1024)``), against ``loop.call_soon_threadsafe(q.put_nowait, x)`` into
   an unbounded ``asyncio.Queue``. Then the wake latency, ``thread<->asyncio``: the thread
   sends one message and blocks for the coroutine's reply, 20,000 round trips; nimsync both
   ways (capacity-1 channels) against ``call_soon_threadsafe`` there and a
   ``queue.SimpleQueue`` back. Reported as median and p99 round trip in ns.
4. ``try_send+try_recv`` -- the cost of the binding layer: one thread, an empty queue, ns
   per non-blocking send+receive pair for ``nimsync.Channel(1024)`` (PyO3),
   ``nimsync.raw.RawChannel(1024)`` (ctypes over ``libnimsync.so``, ints),
   ``queue.SimpleQueue`` put_nowait+get_nowait and ``collections.deque`` append+popleft,
   the floor (the loop itself). 1,000,000 pairs (200,000 for the ctypes channel).

Every case is warmed up once (a tenth of its messages), then runs 3 rounds, the
implementations interleaved within each round so that a noisy spell of the machine hits
them all alike; the median round is reported. Every run checks that the consumer received
exactly what was sent (count and sum, or each reply) and raises otherwise. The
interpreter's defaults are kept (GIL switch interval included), since those are what a
program meets.

Run from the repository root, after ``make build-python``::

    .venv/bin/python python/bench/bench_channels.py

``NIMSYNC_BENCH_SCALE`` (a float, default 1.0) multiplies every message count, e.g. 0.05
for a quick look. ``RawChannel`` needs ``libnimsync.so`` (``cargo build --release -p
nimsync-ffi``); it is taken from ``NIMSYNC_LIBRARY`` or ``target/release`` and its case is
skipped, with a note, when absent. Results are JSON lines on stdout, one object per result
(these from one run on a noisy 2-core machine)::

    {"suite":"python","metric":"throughput","case":"threads","impl":"queue.Queue",
     "mps":0.2124,"threads":2,"cores":2}
    {"suite":"python","metric":"pingpong","case":"thread<->asyncio","impl":"nimsync aio",
     "median_ns":58981,"p99_ns":110656,"cores":2}
    {"suite":"python","metric":"op_ns","case":"try_send+try_recv","impl":"collections.deque",
     "ns":97.7,"cores":2}

Progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import json
import os
import pathlib
import queue
import statistics
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

import nimsync

ROUNDS = 3
CAPACITY = 1024
CORES = os.cpu_count() or 1

THREAD_MESSAGES = 1_000_000
ASYNCIO_MESSAGES = 200_000
WAKE_MESSAGES = 100_000
PINGPONG_ROUNDS = 20_000
PAIR_OPS = 1_000_000
STRAGGLER_TIMEOUT = 10.0  # s a thread may run on once its partner has finished
CTYPES_PAIR_SHARE = 0.2  # of PAIR_OPS: a ctypes call costs about a microsecond

R = TypeVar("R")
Send = Callable[[Any], Any]
Recv = Callable[[], Any]
AsyncSend = Callable[[Any], Awaitable[Any]]
AsyncRecv = Callable[[], Awaitable[Any]]


class BenchmarkError(AssertionError):
    """A run moved the wrong data."""


# --------------------------------------------------------------------------- plumbing


def scale_from_env() -> float:
    raw = os.environ.get("NIMSYNC_BENCH_SCALE", "1.0")
    try:
        scale = float(raw)
    except ValueError:
        raise SystemExit(f"NIMSYNC_BENCH_SCALE must be a number, got {raw!r}") from None
    if not scale > 0:
        raise SystemExit(f"NIMSYNC_BENCH_SCALE must be positive, got {raw!r}")
    return scale


SCALE = scale_from_env()


def scaled(count: int, minimum: int = 100) -> int:
    """``count`` times NIMSYNC_BENCH_SCALE, at least ``minimum``."""
    return max(minimum, round(count * SCALE))


def progress(text: str) -> None:
    sys.stderr.write(f"\r  {text:<60}")
    sys.stderr.flush()


def emit(metric: str, case: str, impl: str, **values: Any) -> None:
    """Prints one result as a JSON line on stdout."""
    sys.stderr.write("\r" + " " * 64 + "\r")
    record = {"suite": "python", "metric": metric, "case": case, "impl": impl, **values, "cores": CORES}
    print(json.dumps(record, separators=(",", ":")), flush=True)


def check_stream(case: str, impl: str, sent: int, count: int, total: int) -> None:
    """Raises unless ``count`` messages summing to 0 + 1 + ... + (sent - 1) arrived."""
    want = sent * (sent - 1) // 2
    if count != sent or total != want:
        raise BenchmarkError(
            f"{case} / {impl}: received {count} messages summing to {total}, "
            f"sent {sent} summing to {want}"
        )


class Worker(threading.Thread):
    """A daemon thread whose return value or exception :meth:`result` hands back."""

    def __init__(self, name: str, target: Callable[[], Any]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as e:  # handed to the joining thread
            self._error = e

    def result(self, timeout: Optional[float] = None) -> Any:
        """Joins the thread (raising BenchmarkError if it is still running after ``timeout``
        seconds) and returns its value or raises its exception."""
        self.join(timeout)
        if self.is_alive():
            raise BenchmarkError(f"the {self.name} thread still runs {timeout} s after its partner ended")
        if self._error is not None:
            raise self._error
        return self._value


def measure(case: str, impls: Sequence[Tuple[str, Callable[[int], R]]], count: int) -> Dict[str, List[R]]:
    """Runs each implementation once on a tenth of ``count`` to warm up, then ``ROUNDS``
    rounds of all of them in turn; returns each one's per-round results."""
    warm = max(1, count // 10)
    for name, run in impls:
        progress(f"warm-up: {case} {name}")
        run(warm)
    results: Dict[str, List[R]] = {name: [] for name, _ in impls}
    for r in range(ROUNDS):
        for name, run in impls:
            progress(f"round {r + 1}/{ROUNDS}: {case} {name}")
            gc.collect()
            results[name].append(run(count))
    return results


def report_throughput(case: str, impls: Sequence[Tuple[str, Callable[[int], float]]], count: int,
                      threads: int) -> None:
    """Measures runs that return seconds for ``count`` messages; emits messages/s."""
    for name, seconds in measure(case, impls, count).items():
        mps = count / statistics.median(seconds) / 1e6
        emit("throughput", case, name, mps=round(mps, 4), threads=threads)


# --------------------------------------------------------------------------- producers, consumers


def produce(send: Send, n: int) -> None:
    """Sends 0 .. n-1, then the ``None`` sentinel (also after a failure, so the consumer ends)."""
    try:
        for i in range(n):
            send(i)
    finally:
        send(None)


def consume(recv: Recv) -> Tuple[int, int]:
    """Receives until the sentinel; returns (count, sum)."""
    count = total = 0
    while True:
        item = recv()
        if item is None:
            return count, total
        count += 1
        total += item


async def produce_async(send: AsyncSend, n: int) -> None:
    for i in range(n):
        await send(i)
    await send(None)


async def consume_async(recv: AsyncRecv) -> Tuple[int, int]:
    count = total = 0
    while True:
        item = await recv()
        if item is None:
            return count, total
        count += 1
        total += item


# --------------------------------------------------------------------------- 1. thread to thread


def thread_pair(case: str, impl: str, make: Callable[[], Tuple[Send, Recv]], n: int) -> float:
    """One producer thread, one consumer thread; returns the consumer's seconds."""
    send, recv = make()
    start = threading.Barrier(2)

    def producer() -> None:
        start.wait()
        produce(send, n)

    def consumer() -> Tuple[float, int, int]:
        start.wait()
        t0 = time.perf_counter()
        count, total = consume(recv)
        return time.perf_counter() - t0, count, total

    workers = Worker("producer", producer), Worker("consumer", consumer)
    for w in workers:
        w.start()
    elapsed, count, total = workers[1].result()  # the consumer first: it ends even if the producer fails
    workers[0].result(timeout=STRAGGLER_TIMEOUT)
    check_stream(case, impl, n, count, total)
    return elapsed


def nimsync_send_recv(capacity: Optional[int], mode: str = "mpmc") -> Tuple[Send, Recv]:
    ch: nimsync.Channel[Any] = nimsync.Channel(capacity, mode)
    return ch.send, ch.recv


def nimsync_put_get() -> Tuple[Send, Recv]:
    ch: nimsync.Channel[Any] = nimsync.Channel(CAPACITY)
    return ch.put, ch.get


def queue_put_get() -> Tuple[Send, Recv]:
    q: queue.Queue[Any] = queue.Queue(CAPACITY)
    return q.put, q.get


def simple_queue_put_get() -> Tuple[Send, Recv]:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    return q.put, q.get


def bench_threads() -> None:
    case = "threads"
    makers: List[Tuple[str, Callable[[], Tuple[Send, Recv]]]] = [
        ("nimsync.Channel spsc", functools.partial(nimsync_send_recv, CAPACITY, "spsc")),
        ("nimsync.Channel mpmc", nimsync_put_get),
        ("queue.Queue", queue_put_get),
        ("queue.SimpleQueue", simple_queue_put_get),
        ("nimsync.Channel unbounded", functools.partial(nimsync_send_recv, None)),
    ]
    impls = [(name, functools.partial(thread_pair, case, name, make)) for name, make in makers]
    report_throughput(case, impls, scaled(THREAD_MESSAGES), threads=2)


# --------------------------------------------------------------------------- 2. one event loop


async def task_pair(make: Callable[[], Tuple[AsyncSend, AsyncRecv]], n: int) -> Tuple[float, int, int]:
    send, recv = make()
    t0 = time.perf_counter()
    _, (count, total) = await asyncio.gather(produce_async(send, n), consume_async(recv))
    return time.perf_counter() - t0, count, total


def loop_pair(case: str, impl: str, make: Callable[[], Tuple[AsyncSend, AsyncRecv]], n: int) -> float:
    """A producer task and a consumer task in a fresh event loop; returns seconds."""
    elapsed, count, total = asyncio.run(task_pair(make, n))
    check_stream(case, impl, n, count, total)
    return elapsed


def nimsync_aio_pair() -> Tuple[AsyncSend, AsyncRecv]:
    ch: nimsync.Channel[Any] = nimsync.Channel(CAPACITY)
    return ch.aio.send, ch.aio.recv


def asyncio_queue_pair() -> Tuple[AsyncSend, AsyncRecv]:
    q: asyncio.Queue[Any] = asyncio.Queue(CAPACITY)
    return q.put, q.get


def bench_asyncio() -> None:
    case = "asyncio"
    makers: List[Tuple[str, Callable[[], Tuple[AsyncSend, AsyncRecv]]]] = [
        ("nimsync aio", nimsync_aio_pair),
        ("asyncio.Queue", asyncio_queue_pair),
    ]
    impls = [(name, functools.partial(loop_pair, case, name, make)) for name, make in makers]
    report_throughput(case, impls, scaled(ASYNCIO_MESSAGES), threads=1)


# --------------------------------------------------------------------------- 3. thread waking a loop


class Bridge(NamedTuple):
    """Both directions between a plain thread and a coroutine on the loop."""

    to_loop: Send  # called by the thread
    loop_recv: AsyncRecv  # awaited by the coroutine
    to_thread: Send  # called by the coroutine (ping-pong replies)
    thread_recv: Recv  # called by the thread, blocking


def nimsync_bridge(loop: asyncio.AbstractEventLoop, capacity: int) -> Bridge:
    there: nimsync.Channel[Any] = nimsync.Channel(capacity)
    back: nimsync.Channel[Any] = nimsync.Channel(capacity)
    return Bridge(there.send, there.aio.recv, back.send, back.recv)


def call_soon_bridge(loop: asyncio.AbstractEventLoop, capacity: int) -> Bridge:
    """``capacity`` is ignored: ``call_soon_threadsafe`` cannot make the thread wait."""
    there: asyncio.Queue[Any] = asyncio.Queue()
    back: queue.SimpleQueue[Any] = queue.SimpleQueue()
    return Bridge(functools.partial(loop.call_soon_threadsafe, there.put_nowait), there.get, back.put, back.get)


BridgeMaker = Callable[[asyncio.AbstractEventLoop, int], Bridge]
BRIDGES: List[Tuple[str, BridgeMaker]] = [("nimsync aio", nimsync_bridge), ("call_soon_threadsafe", call_soon_bridge)]


async def stream_from_thread(make: BridgeMaker, n: int) -> Tuple[float, int, int]:
    bridge = make(asyncio.get_running_loop(), CAPACITY)
    producer = Worker("producer", functools.partial(produce, bridge.to_loop, n))
    t0 = time.perf_counter()
    producer.start()
    count, total = await consume_async(bridge.loop_recv)
    elapsed = time.perf_counter() - t0
    producer.result(timeout=STRAGGLER_TIMEOUT)
    return elapsed, count, total


def thread_to_loop(case: str, impl: str, make: BridgeMaker, n: int) -> float:
    """A thread streams ``n`` messages to a coroutine; returns seconds."""
    elapsed, count, total = asyncio.run(stream_from_thread(make, n))
    check_stream(case, impl, n, count, total)
    return elapsed


def ping_from_thread(bridge: Bridge, rounds: int) -> List[int]:
    """The thread's side of the ping-pong: returns each round trip in ns. Ends the
    coroutine's side with a ``None`` sentinel, also after a failure."""
    samples = []
    clock = time.perf_counter_ns
    try:
        for i in range(rounds):
            t0 = clock()
            bridge.to_loop(i)
            reply = bridge.thread_recv()
            samples.append(clock() - t0)
            if reply != i:
                raise BenchmarkError(f"ping-pong: sent {i}, the reply was {reply!r}")
    finally:
        bridge.to_loop(None)
    return samples


async def pingpong_with_thread(make: BridgeMaker, rounds: int) -> List[int]:
    bridge = make(asyncio.get_running_loop(), 1)
    pinger = Worker("pinging", functools.partial(ping_from_thread, bridge, rounds))
    pinger.start()
    while (ping := await bridge.loop_recv()) is not None:
        bridge.to_thread(ping)
    return pinger.result(timeout=STRAGGLER_TIMEOUT)


def pingpong(make: BridgeMaker, rounds: int) -> Tuple[int, int]:
    """Returns the (median, p99) round trip in ns."""
    samples = asyncio.run(pingpong_with_thread(make, rounds))
    if len(samples) != rounds:
        raise BenchmarkError(f"ping-pong: {len(samples)} round trips, wanted {rounds}")
    return round(statistics.median(samples)), round(statistics.quantiles(samples, n=100)[98])


def bench_thread_to_asyncio() -> None:
    case = "thread->asyncio"
    impls = [(name, functools.partial(thread_to_loop, case, name, make)) for name, make in BRIDGES]
    report_throughput(case, impls, scaled(WAKE_MESSAGES), threads=2)

    case = "thread<->asyncio"
    pp_impls = [(name, functools.partial(pingpong, make)) for name, make in BRIDGES]
    for name, stats in measure(case, pp_impls, scaled(PINGPONG_ROUNDS)).items():
        emit("pingpong", case, name,
             median_ns=round(statistics.median(s[0] for s in stats)),
             p99_ns=round(statistics.median(s[1] for s in stats)))


# --------------------------------------------------------------------------- 4. binding layer


def pair_loop(impl: str, make: Callable[[], Tuple[Send, Recv]], share: float, count: int) -> float:
    """``share`` of ``count`` send+receive pairs in this thread on an empty queue; returns
    ns per pair."""
    n = max(1, round(count * share))
    send, recv = make()
    total = 0
    t0 = time.perf_counter()
    for i in range(n):
        send(i)
        total += recv()
    elapsed = time.perf_counter() - t0
    check_stream("try_send+try_recv", impl, n, n, total)
    return elapsed / n * 1e9


def nimsync_try_pair() -> Tuple[Send, Recv]:
    ch: nimsync.Channel[Any] = nimsync.Channel(CAPACITY)
    return ch.try_send, ch.try_recv


def simple_queue_nowait_pair() -> Tuple[Send, Recv]:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    return q.put_nowait, q.get_nowait


def deque_pair() -> Tuple[Send, Recv]:
    d: collections.deque[Any] = collections.deque()
    return d.append, d.popleft


def raw_channel_maker() -> Optional[Callable[[], Tuple[Send, Recv]]]:
    """The RawChannel pair maker, or None (with a note on stderr) without libnimsync.so."""
    built = pathlib.Path(__file__).resolve().parents[2] / "target" / "release" / "libnimsync.so"
    if built.exists():
        os.environ.setdefault("NIMSYNC_LIBRARY", str(built))
    from nimsync.raw import RawChannel, load_library

    try:
        load_library()
    except OSError as e:
        sys.stderr.write(f"\rskipping nimsync.RawChannel: {e}\n")
        return None

    def make() -> Tuple[Send, Recv]:
        ch = RawChannel(CAPACITY)
        return ch.try_send, ch.try_recv

    return make


def bench_layer_cost() -> None:
    case = "try_send+try_recv"
    makers: List[Tuple[str, Callable[[], Tuple[Send, Recv]], float]] = [
        ("nimsync.Channel", nimsync_try_pair, 1.0),
        ("queue.SimpleQueue", simple_queue_nowait_pair, 1.0),
        ("collections.deque", deque_pair, 1.0),
    ]
    raw = raw_channel_maker()
    if raw is not None:
        makers.insert(1, ("nimsync.RawChannel (ctypes)", raw, CTYPES_PAIR_SHARE))
    impls = [(name, functools.partial(pair_loop, name, make, share)) for name, make, share in makers]
    for name, per_pair in measure(case, impls, scaled(PAIR_OPS)).items():
        emit("op_ns", case, name, ns=round(statistics.median(per_pair), 2))


# --------------------------------------------------------------------------- main


def main() -> None:
    t0 = time.perf_counter()
    sys.stderr.write(
        f"nimsync {nimsync.__version__} channels from Python {sys.version.split()[0]}: "
        f"scale {SCALE:g}, {ROUNDS} rounds, {CORES} cores\n"
    )
    bench_threads()
    bench_asyncio()
    bench_thread_to_asyncio()
    bench_layer_cost()
    sys.stderr.write(f"\rdone in {time.perf_counter() - t0:.1f} s" + " " * 40 + "\n")


if __name__ == "__main__":
    main()
