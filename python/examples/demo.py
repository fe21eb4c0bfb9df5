"""nimsync from Python: a producer thread and a consumer thread share a channel (the consumer
records each batch's latency in a histogram), then a thread feeds an asyncio coroutine
through the same kind of channel, a task group on the work-stealing pool fails fast, a
receive runs into a 50 ms deadline, and the histogram is read back and exposed for
Prometheus."""

import asyncio
import threading
import time

import nimsync

N = 1_000_000
BATCH = 10_000  # items per latency sample


def threads_demo(batch_ns: nimsync.Histogram) -> None:
    ch = nimsync.Channel(1024, mode="spsc")
    print(f"[python] nimsync {nimsync.__version__}: SPSC channel, {N:,} objects from a producer thread")

    def producer() -> None:
        for i in range(1, N + 1):
            ch.send(("item", i))
        ch.close()  # the consumer drains what is left, then the loop ends

    t0 = time.perf_counter()
    batch_start = time.perf_counter_ns()
    threading.Thread(target=producer).start()
    count = total = 0
    for _tag, i in ch:
        count += 1
        total += i
        if count % BATCH == 0:
            now = time.perf_counter_ns()
            batch_ns.record(now - batch_start)
            batch_start = now
        if count % 200_000 == 0:
            print(f"\r[python] received {count:,} / {N:,}", end="", flush=True)
    dt = time.perf_counter() - t0
    ok = total == N * (N + 1) // 2
    print(f"\r[python] received {count:,} objects, sum {total} ({'correct' if ok else 'WRONG'}), "
          f"{count / dt / 1e6:.2f} M objects/s")


async def asyncio_demo() -> None:
    ch = nimsync.Channel(64)
    n = 100_000

    def producer() -> None:
        for i in range(n):
            ch.send(i)
        ch.close()

    t0 = time.perf_counter()
    threading.Thread(target=producer).start()
    total = 0
    async for i in ch.aio:  # awaits without polling; the thread wakes the loop
        total += i
    dt = time.perf_counter() - t0
    print(f"[python] asyncio consumer got {n:,} items from a thread, sum {total}, "
          f"{n / dt / 1e6:.2f} M items/s")


TASKS = 8
FAILING_TASK = 1
RANGE = 10_000_000  # numbers each task sums
CHUNK = 1_000_000  # numbers summed between two looks at the token


def sum_range(index: int, started: list, done: list, sums: list) -> int:
    """Sums its range chunk by chunk; task FAILING_TASK raises a tenth of the way."""
    started[index] = True
    lo = index * RANGE
    token = nimsync.current_cancel_token()  # the group's token, inside a task
    for start in range(lo, lo + RANGE, CHUNK):
        token.check()  # raises nimsync.Cancelled once a sibling has failed
        if index == FAILING_TASK and done[index] >= RANGE // 10:
            raise ValueError(f"task {index}: bad input after {done[index]:,} numbers")
        sums[index] += sum(range(start, start + CHUNK))
        done[index] += CHUNK
    return sums[index]


def group_demo() -> None:
    workers = len(nimsync.scheduler_metrics()["workers"])
    print(f"[python] task group on the {workers}-worker pool: {TASKS} tasks each sum {RANGE:,} numbers, "
          f"task {FAILING_TASK} fails a tenth of the way")
    started = [False] * TASKS  # skipped tasks never start
    done = [0] * TASKS  # numbers each task summed
    sums = [0] * TASKS
    t0 = time.perf_counter()
    try:
        with nimsync.TaskGroup() as g:
            handles = [g.spawn(sum_range, i, started, done, sums) for i in range(TASKS)]
    except nimsync.ExceptionGroup as eg:
        failures, outcome = eg.exceptions, f"raised ExceptionGroup ({len(eg.exceptions)} exception(s))"
    else:
        failures, outcome = (), "ended without an exception?!"
    ms = (time.perf_counter() - t0) * 1e3
    states = []
    counts = {"done": 0, "cancelled": 0, "skipped": 0, "FAILED": 0}
    for i, h in enumerate(handles):
        exc = h.exception()
        if exc is None:
            state = "done"
        elif isinstance(exc, nimsync.Cancelled):
            state = "cancelled" if started[i] else "skipped"
        else:
            state = "FAILED"
        counts[state] += 1
        states.append(f"#{i} skipped" if state == "skipped" else f"#{i} {state}@{done[i] * 100 // RANGE}%")
    sums_ok = all(sums[i] == sum(range(i * RANGE, i * RANGE + done[i])) for i in range(TASKS))
    print("[python] " + " ".join(states))
    print(f"[python] with-block {outcome} after {ms:.0f} ms: {counts['done']} done, "
          f"{counts['cancelled']} cancelled mid-sum, {counts['skipped']} skipped, {counts['FAILED']} failed; "
          f"every (partial) sum {'correct' if sums_ok else 'WRONG'}")
    for e in failures:
        print(f"[python]   {type(e).__name__}: {e}")


def deadline_demo() -> None:
    ch = nimsync.Channel(16)
    t0 = time.perf_counter()
    try:
        with nimsync.timeout(0.050):
            ch.recv()
        outcome = "received an item?!"
    except nimsync.Timeout as e:
        outcome = f"raised {type(e).__name__}({str(e)!r})"
    ms = (time.perf_counter() - t0) * 1e3
    print(f"[python] deadline: recv on an empty channel in nimsync.timeout(0.050) {outcome} after {ms:.1f} ms")


def metrics_demo(metrics: nimsync.Collector, batch_ns: nimsync.Histogram) -> None:
    m = batch_ns.summary()
    print(f"[python] metrics: {m['count']} batches of {BATCH:,} objects, p50 {m['p50'] / 1e3:.1f} us, "
          f"p99 {m['p99'] / 1e3:.1f} us, max {m['max'] / 1e3:.1f} us")
    for line in metrics.expose().splitlines():
        if line.startswith("demo_channel_batch_seconds{quantile="):
            print(f"[python]   {line}")


if __name__ == "__main__":
    metrics = nimsync.Collector()
    batch_ns = metrics.histogram("demo_channel_batch_seconds", "Time the consumer took to receive a batch "
                                 "of objects.", quantiles=(0.5, 0.99), scale=1e-9)
    threads_demo(batch_ns)
    asyncio.run(asyncio_demo())
    group_demo()
    deadline_demo()
    metrics_demo(metrics, batch_ns)
