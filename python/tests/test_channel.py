"""nimsync.Channel between threads: construction errors, every exception with its value,
close, timeouts, iteration, exactly-once delivery, and reference counts."""

import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import nimsync
from nimsync import ChannelClosed, ChannelEmpty, ChannelFull, NimsyncError, Timeout

MODES = ["spsc", "mpsc", "spmc", "mpmc"]


def test_version_and_exports():
    assert nimsync.__version__.count(".") == 2
    for name in nimsync.__all__:
        assert hasattr(nimsync, name), name


@pytest.mark.parametrize("mode", MODES)
def test_capacity_rounds_up_to_a_power_of_two(mode):
    for asked, got in [(1, 1), (3, 4), (5, 8), (1000, 1024)]:
        ch = nimsync.Channel(asked, mode=mode)
        assert ch.capacity == got
        assert ch.mode == mode
        assert len(ch) == 0 and ch.is_empty() and not ch.is_full()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="capacity"):
        nimsync.Channel(0, mode="spsc")
    with pytest.raises(ValueError, match="negative"):
        nimsync.Channel(-3)
    with pytest.raises(ValueError, match="maximum"):
        nimsync.Channel(2**40)
    with pytest.raises(ValueError, match="maximum"):
        nimsync.Channel(2**80)
    with pytest.raises(TypeError, match="capacity"):
        nimsync.Channel("8")
    with pytest.raises(TypeError, match="capacity"):
        nimsync.Channel(True)
    with pytest.raises(ValueError, match="mode"):
        nimsync.Channel(8, mode="fifo")
    with pytest.raises(ValueError, match="mpmc"):
        nimsync.Channel(None, mode="spsc")
    with pytest.raises(ValueError, match="timeout"):
        nimsync.Channel(8).recv(timeout=-1)
    assert nimsync.Channel(8, mode="SPSC").mode == "spsc"


def test_exception_hierarchy():
    import asyncio
    import queue

    assert issubclass(ChannelFull, NimsyncError) and issubclass(ChannelFull, queue.Full)
    assert issubclass(ChannelFull, asyncio.QueueFull)
    assert issubclass(ChannelEmpty, queue.Empty) and issubclass(ChannelEmpty, asyncio.QueueEmpty)
    assert issubclass(Timeout, TimeoutError) and issubclass(Timeout, NimsyncError)
    for cls in (ChannelClosed, nimsync.Cancelled, nimsync.ChannelBusy):
        assert issubclass(cls, NimsyncError)


@pytest.mark.parametrize("mode", MODES)
def test_full_and_empty_hand_values_back(mode):
    ch = nimsync.Channel(2, mode=mode)
    with pytest.raises(ChannelEmpty):
        ch.try_recv()
    ch.try_send("a")
    ch.try_send("b")
    assert ch.is_full() and len(ch) == 2
    item = object()
    with pytest.raises(ChannelFull) as info:
        ch.try_send(item)
    assert info.value.value is item
    with pytest.raises(Timeout) as info:
        ch.send(item, timeout=0.01)
    assert info.value.value is item
    assert ch.recv() == "a" and ch.try_recv() == "b"


def test_close_drains_then_raises_closed_and_hands_values_back():
    ch = nimsync.Channel(4)
    ch.send(1)
    assert ch.close() is True
    assert ch.close() is False
    assert ch.is_closed()
    item = ["payload"]
    with pytest.raises(ChannelClosed) as info:
        ch.send(item)
    assert info.value.value is item
    with pytest.raises(ChannelClosed) as info:
        ch.try_send(item)
    assert info.value.value is item
    assert ch.recv() == 1
    with pytest.raises(ChannelClosed):
        ch.recv()
    with pytest.raises(ChannelClosed):
        ch.try_recv()


def test_timeouts_fire():
    ch = nimsync.Channel(1)
    t0 = time.monotonic()
    with pytest.raises(Timeout) as info:
        ch.recv(timeout=0.05)
    assert time.monotonic() - t0 >= 0.045
    assert info.value.value is None
    with pytest.raises(Timeout):
        ch.recv(timeout=0)

    ch.send("fill")
    item = object()
    t0 = time.monotonic()
    with pytest.raises(Timeout) as info:
        ch.send(item, timeout=0.05)
    assert time.monotonic() - t0 >= 0.045
    assert info.value.value is item
    # timeout=0 is a single try that raises Timeout (not ChannelFull).
    with pytest.raises(Timeout) as info:
        ch.send(item, timeout=0)
    assert type(info.value) is Timeout and info.value.value is item
    assert ch.recv(timeout=None) == "fill"


def test_failed_sends_leak_no_reference():
    ch = nimsync.Channel(1, mode="spsc")
    ch.send(0)
    item = object()
    before = sys.getrefcount(item)
    for _ in range(1000):
        for send in (ch.try_send, lambda x: ch.send(x, timeout=0), lambda x: ch.send(x, timeout=1e-4)):
            try:
                send(item)
            except (ChannelFull, Timeout) as e:
                assert e.value is item
    ch.close()
    try:
        ch.send(item)
    except ChannelClosed as e:
        assert e.value is item
    assert sys.getrefcount(item) == before


def wait_until(predicate, limit=10.0):
    """Yields the GIL until `predicate()` holds (a thread reached a blocking call)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.001)


def run(target):
    """Runs `target` in a thread; returns the thread and a list that gets the
    outcome: ("ok", result) or ("raised", exception)."""
    outcome = []

    def body():
        try:
            outcome.append(("ok", target()))
        except BaseException as e:  # noqa: B036 - the test inspects it
            outcome.append(("raised", e))

    t = threading.Thread(target=body)
    t.start()
    return t, outcome


@pytest.mark.parametrize("mode", MODES)
def test_close_wakes_a_blocked_receiver_after_it_drained(mode):
    ch = nimsync.Channel(4, mode=mode)
    ch.send("a")
    ch.send("b")
    got = []

    def receive_until_closed():
        while True:
            got.append(ch.recv())

    t, outcome = run(receive_until_closed)
    wait_until(lambda: ch._waiting() == (0, 1))  # drained "a" and "b", now parked
    assert got == ["a", "b"]
    # An item sent just before close is still received, then ChannelClosed.
    ch.send("c")
    assert ch.close() is True
    t.join(10)
    assert not t.is_alive()
    assert got == ["a", "b", "c"]
    [(how, exc)] = outcome
    assert how == "raised" and type(exc) is ChannelClosed and str(exc) == "channel is closed"
    assert ch._waiting() == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_close_wakes_a_blocked_sender_with_its_item(mode):
    ch = nimsync.Channel(1, mode=mode)
    ch.send("first")
    item = object()
    before = sys.getrefcount(item)
    t, outcome = run(lambda: ch.send(item))
    wait_until(lambda: ch._waiting() == (1, 0))
    ch.close()
    t.join(10)
    assert not t.is_alive()
    [(how, exc)] = outcome
    assert how == "raised" and type(exc) is ChannelClosed and exc.value is item
    del exc, outcome
    gc.collect()  # the exception's traceback and the outcome list form a cycle
    assert sys.getrefcount(item) == before
    assert ch.recv() == "first"
    with pytest.raises(ChannelClosed):
        ch.recv()


@pytest.mark.parametrize("mode", MODES)
def test_a_blocked_receiver_gets_an_item_sent_later(mode):
    ch = nimsync.Channel(2, mode=mode)
    t, outcome = run(lambda: ch.recv(timeout=30))
    wait_until(lambda: ch._waiting() == (0, 1))
    ch.send("late")
    t.join(10)
    assert outcome == [("ok", "late")]


def test_iteration_ends_at_close_and_with_closes():
    with nimsync.Channel(8) as ch:
        for i in range(5):
            ch.send(i)
        t = threading.Thread(target=lambda: (time.sleep(0.01), ch.close()))
        t.start()
        assert list(ch) == [0, 1, 2, 3, 4]
        t.join()
    ch2 = nimsync.Channel(2)
    with ch2 as entered:
        assert entered is ch2
    assert ch2.is_closed()
    with pytest.raises(RuntimeError):
        with nimsync.Channel(2) as ch3:
            raise RuntimeError("the with block fails")
    assert ch3.is_closed()


@pytest.mark.parametrize("mode", ["spsc", "mpsc"])
def test_one_million_objects_between_two_threads(mode):
    n = 1_000_000
    ch = nimsync.Channel(1024, mode=mode)
    sent = [object() for _ in range(1000)]  # reused objects keep memory flat

    def produce():
        for i in range(n):
            ch.send((i, sent[i % 1000]))
        ch.close()

    t = threading.Thread(target=produce)
    t.start()
    expected = 0
    for i, obj in ch:
        assert i == expected and obj is sent[i % 1000]
        expected += 1
    t.join()
    assert expected == n


def parties(mode):
    return {"spsc": (1, 1), "mpsc": (3, 1), "spmc": (1, 3), "mpmc": (3, 3)}[mode]


@pytest.mark.parametrize("kind", MODES + ["unbounded", "rendezvous"])
def test_exactly_once_with_n_producers_and_m_consumers(kind):
    per = 20_000
    if kind == "unbounded":
        ch, (producers, consumers) = nimsync.Channel(None), (3, 3)
    elif kind == "rendezvous":
        ch, (producers, consumers) = nimsync.Channel(0), (2, 2)
        per = 2_000
    else:
        ch, (producers, consumers) = nimsync.Channel(16, mode=kind), parties(kind)
    results = [None] * consumers

    def produce(p):
        for i in range(per):
            ch.send((p, i))

    def consume(c):
        seen = {}
        for p, i in ch:
            assert seen.get(p, -1) < i, "per-producer order"
            seen[p] = i
            seen[(p, "count")] = seen.get((p, "count"), 0) + 1
        results[c] = seen

    ps = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    cs = [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in ps + cs:
        t.start()
    for t in ps:
        t.join()
    ch.close()
    for t in cs:
        t.join()
    for p in range(producers):
        assert sum(r.get((p, "count"), 0) for r in results) == per


def test_reference_counts_are_balanced_after_free():
    item = object()
    before = sys.getrefcount(item)
    ch = nimsync.Channel(64, mode="mpsc")
    for _ in range(50):
        ch.send(item)
    for _ in range(20):
        assert ch.recv() is item
    assert sys.getrefcount(item) == before + 30
    del ch
    gc.collect()
    assert sys.getrefcount(item) == before


def test_items_left_inside_are_released():
    class Item:
        pass

    items = [Item() for _ in range(100)]
    refs = [weakref.ref(i) for i in items]
    ch = nimsync.Channel(None)
    for i in items:
        ch.send(i)
    del items, i
    assert all(r() is not None for r in refs)
    del ch
    gc.collect()
    assert all(r() is None for r in refs)


def test_rendezvous_send_waits_for_a_receiver():
    ch = nimsync.Channel(0)
    assert ch.capacity == 0
    with pytest.raises(ChannelFull):
        ch.try_send(1)
    got = []
    t = threading.Thread(target=lambda: got.append(ch.recv()))
    t.start()
    ch.send("hand")
    t.join()
    assert got == ["hand"]


def test_repr():
    assert "capacity=4" in repr(nimsync.Channel(4))
    assert "capacity=None" in repr(nimsync.Channel(None))


def test_out_of_memory_raises_memory_error():
    # In a child process whose address space is capped, so that the allocation
    # fails at once instead of exhausting the machine.
    program = textwrap.dedent(
        """
        import resource, nimsync
        limit = 4 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for mode in ("spsc", "mpsc"):
            try:
                nimsync.Channel(2**30, mode=mode)  # 8 or 16 GiB of slots
            except MemoryError as e:
                print(mode, "MemoryError", e)
        ch = nimsync.Channel(8)  # still usable afterwards
        ch.send(1)
        print("after", ch.recv())
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("spsc MemoryError out of memory")
    assert lines[1].startswith("mpsc MemoryError out of memory")
    assert lines[2] == "after 1"
