"""nimsync from Python: a producer thread and a consumer thread share a channel, then a
thread feeds an asyncio coroutine through the same kind of channel."""

import asyncio
import threading
import time

import nimsync

N = 1_000_000


def threads_demo() -> None:
    ch = nimsync.Channel(1024, mode="spsc")
    print(f"[python] nimsync {nimsync.__version__}: SPSC channel, {N:,} objects from a producer thread")

    def producer() -> None:
        for i in range(1, N + 1):
            ch.send(("item", i))
        ch.close()  # the consumer drains what is left, then the loop ends

    t0 = time.perf_counter()
    threading.Thread(target=producer).start()
    count = total = 0
    for _tag, i in ch:
        count += 1
        total += i
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


if __name__ == "__main__":
    threads_demo()
    asyncio.run(asyncio_demo())
