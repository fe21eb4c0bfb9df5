"""nimsync.Channel as a drop-in for queue.Queue (changing one line)."""

import queue
import threading

import pytest

import nimsync


def pipeline(q, n_workers=3, n_items=300):
    """A program written for queue.Queue: workers, task_done and join."""
    results = []
    lock = threading.Lock()

    def worker():
        while True:
            item = q.get()
            if item is None:
                q.task_done()
                break
            with lock:
                results.append(item * 2)
            q.task_done()

    threads = [threading.Thread(target=worker) for _ in range(n_workers)]
    for t in threads:
        t.start()
    for i in range(n_items):
        q.put(i)
    q.join()
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    return sorted(results)


@pytest.mark.parametrize("make", [lambda: queue.Queue(16), lambda: nimsync.Channel(16)])
def test_the_same_program_runs_on_both(make):
    assert pipeline(make()) == [2 * i for i in range(300)]


def test_put_and_get_raise_the_standard_exceptions():
    q = nimsync.Channel(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2 and q.maxsize == 2
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.get() == 1 and q.get_nowait() == 2
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    assert nimsync.Channel(None).maxsize == 0


def test_task_done_too_many_times():
    q = nimsync.Channel(4)
    q.put("x")
    q.get()
    q.task_done()
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


def test_join_waits_for_task_done():
    q = nimsync.Channel(4)
    q.put("x")
    done = threading.Event()

    def joiner():
        q.join()
        done.set()

    t = threading.Thread(target=joiner)
    t.start()
    assert not done.wait(0.05)
    q.get()
    q.task_done()
    assert done.wait(10)
    t.join()
    # Failed puts do not count as tasks.
    q2 = nimsync.Channel(1)
    q2.put(1)
    with pytest.raises(queue.Full):
        q2.put_nowait(2)
    q2.get()
    q2.task_done()
    q2.join()
