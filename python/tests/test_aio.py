"""Channel.aio: asyncio without polling, mixed with threads, cancellation without loss."""

import asyncio
import os
import statistics
import threading
import time

import pytest

import nimsync


def run(coro):
    return asyncio.run(coro)


def test_send_recv_and_async_iteration():
    async def main():
        ch = nimsync.Channel(4)
        await ch.aio.send(1)
        assert await ch.aio.recv() == 1

        async def producer():
            for i in range(100):
                await ch.aio.send(i)
            ch.close()

        task = asyncio.ensure_future(producer())
        got = [x async for x in ch.aio]
        await task
        assert got == list(range(100))
        with pytest.raises(nimsync.ChannelClosed) as info:
            await ch.aio.send("late")
        assert info.value.value == "late"

    run(main())


@pytest.mark.parametrize("mode", ["spsc", "mpsc", "mpmc"])
def test_threads_feed_a_coroutine(mode):
    n = 50_000

    async def main():
        ch = nimsync.Channel(64, mode)

        def produce():
            for i in range(n):
                ch.send(i)
            ch.close()

        t = threading.Thread(target=produce)
        t.start()
        total = 0
        count = 0
        async for x in ch.aio:
            total += x
            count += 1
        t.join()
        return count, total

    assert run(main()) == (n, n * (n - 1) // 2)


def test_coroutine_feeds_threads_through_a_full_channel():
    n = 20_000
    ch = nimsync.Channel(8, "mpmc")
    got = []
    lock = threading.Lock()

    def consume():
        for x in ch:
            with lock:
                got.append(x)

    consumers = [threading.Thread(target=consume) for _ in range(2)]
    for t in consumers:
        t.start()

    async def main():
        for i in range(n):
            await ch.aio.send(i)
        ch.close()

    run(main())
    for t in consumers:
        t.join()
    assert sorted(got) == list(range(n))


def test_two_event_loops_share_a_channel():
    ch = nimsync.Channel(16)
    n = 10_000
    out = []

    def loop_thread(fn):
        t = threading.Thread(target=lambda: out.append(asyncio.run(fn())))
        t.start()
        return t

    async def producer():
        for i in range(n):
            await ch.aio.send(i)
        ch.close()
        return "sent"

    async def consumer():
        return sum([x async for x in ch.aio])

    ts = [loop_thread(consumer), loop_thread(producer)]
    for t in ts:
        t.join(30)
    assert sorted(out, key=str) == [n * (n - 1) // 2, "sent"]


def test_cancelled_receives_lose_no_item():
    n = 3000

    async def main():
        ch = nimsync.Channel(4)
        received = []
        cancelled = 0

        def produce():
            for i in range(n):
                ch.send(i)
                if i % 100 == 0:
                    time.sleep(0.005)  # long enough for pending receives to time out
            ch.close()

        t = threading.Thread(target=produce)
        t.start()

        async def consumer():
            nonlocal cancelled
            while True:
                try:
                    received.append(await asyncio.wait_for(ch.aio.recv(), 0.001))
                except asyncio.TimeoutError:
                    cancelled += 1
                except nimsync.ChannelClosed:
                    return

        await asyncio.gather(*(consumer() for _ in range(3)))
        t.join()
        return received, cancelled

    received, cancelled = run(main())
    assert sorted(received) == list(range(n))
    assert cancelled > 0, "the test never cancelled a pending receive"


def test_cancelled_send_is_not_sent():
    async def main():
        ch = nimsync.Channel(1)
        await ch.aio.send("first")
        task = asyncio.ensure_future(ch.aio.send("second"))
        await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ch.try_recv() == "first"
        with pytest.raises(nimsync.ChannelEmpty):
            ch.try_recv()
        # The cancelled send is not an unfinished task either.
        ch.task_done()
        await asyncio.wait_for(ch.aio.join(), 5)

    run(main())


async def queue_program(q):
    """A program written for asyncio.Queue."""
    results = []

    async def worker():
        while True:
            item = await q.get()
            results.append(item + 1)
            q.task_done()

    workers = [asyncio.ensure_future(worker()) for _ in range(3)]
    for i in range(200):
        await q.put(i)
    await q.join()
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    q.put_nowait(0)
    assert q.qsize() == 1 and not q.empty()
    q.get_nowait()
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    return sorted(results)


@pytest.mark.parametrize("make", [lambda: asyncio.Queue(8), lambda: nimsync.Channel(8).aio])
def test_asyncio_queue_program_runs_on_both(make):
    async def main():
        return await queue_program(make())

    assert run(main()) == [i + 1 for i in range(200)]


def test_put_nowait_raises_queue_full():
    async def main():
        q = nimsync.Channel(1).aio
        q.put_nowait(1)
        assert q.full() and q.maxsize == 1
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(2)

    run(main())


def test_no_polling_while_blocked_and_prompt_wake():
    """A coroutine awaiting an empty channel for 1 s uses < 2% of a core, and wakes
    within 5 ms of a thread's send (the median of five wake-ups, so that one
    descheduling of the test process by a busy machine is not mistaken for a slow
    wake-up; the first one follows the 1 s blocked wait)."""

    async def main():
        ch = nimsync.Channel(4)
        latencies = []
        usage = []

        def sender(delay):
            time.sleep(delay)
            sent = time.perf_counter()
            ch.send(sent)

        for round_ in range(5):
            delay = 1.0 if round_ == 0 else 0.02
            cpu0, wall0 = time.process_time(), time.perf_counter()
            t = threading.Thread(target=sender, args=(delay,))
            t.start()
            sent = await ch.aio.recv()
            latencies.append(time.perf_counter() - sent)
            t.join()
            if round_ == 0:
                usage.append((time.process_time() - cpu0, time.perf_counter() - wall0))
        return usage[0], latencies

    (cpu, wall), latencies = run(main())
    assert wall >= 0.99
    assert cpu / wall < 0.02, f"{cpu / wall:.1%} of a core while blocked"
    median = statistics.median(latencies)
    shown = ", ".join(f"{x * 1e3:.2f}" for x in latencies)
    assert median < 0.005, f"woke {median * 1e3:.2f} ms after the send (median of {shown} ms)"


def test_the_descriptor_is_written_only_when_someone_waits():
    async def main():
        ch = nimsync.Channel(1024)
        await ch.aio.send(0)
        await ch.aio.recv()  # creates the loop's bridge
        from nimsync import _aio

        bridge = _aio._bridge()
        fd = bridge.waker.fileno()
        import select as _select

        for i in range(500):
            ch.send(i)  # nobody awaits: the descriptor stays quiet
        readable, _, _ = _select.select([fd], [], [], 0)
        assert readable == []
        assert [await ch.aio.recv() for _ in range(500)] == list(range(500))

    run(main())


def test_join_on_the_aio_face():
    async def main():
        ch = nimsync.Channel(4)
        await ch.aio.put("a")
        joined = asyncio.ensure_future(ch.aio.join())
        await asyncio.sleep(0.01)
        assert not joined.done()
        assert await ch.aio.get() == "a"
        ch.aio.task_done()
        await asyncio.wait_for(joined, 5)

    run(main())
