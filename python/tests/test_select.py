"""nimsync.select: one of several channel operations."""

import threading
import time

import pytest

import nimsync


def test_ready_case_default_and_timeout():
    a, b = nimsync.Channel(4), nimsync.Channel(4)
    assert nimsync.select([a, b], default=True) is None
    b.send("x")
    assert nimsync.select([a, b]) == (1, "x")
    t0 = time.monotonic()
    with pytest.raises(nimsync.Timeout):
        nimsync.select([a, b], timeout=0.05)
    assert time.monotonic() - t0 >= 0.045


def test_send_cases_and_closed_cases_carry_index_and_value():
    full = nimsync.Channel(1)
    full.send(0)
    empty = nimsync.Channel(1)
    item = object()
    threading.Timer(0.02, full.recv).start()
    assert nimsync.select([empty, (full, item)]) == (1, None)
    assert full.recv() is item
    full.close()
    with pytest.raises(nimsync.ChannelClosed) as info:
        nimsync.select([empty, (full, item)])
    assert info.value.index == 1 and info.value.value is item
    empty.close()
    with pytest.raises(nimsync.ChannelClosed) as info:
        nimsync.select([empty])
    assert info.value.index == 0


def test_blocked_select_wakes_for_a_thread_send():
    a, b = nimsync.Channel(4, "mpsc"), nimsync.Channel(4, "spsc")
    threading.Timer(0.02, lambda: a.send(5)).start()
    assert nimsync.select([a, b], timeout=10) == (0, 5)


def test_bad_cases():
    with pytest.raises(TypeError, match="case 0"):
        nimsync.select([42])
    with pytest.raises(ValueError, match="forever"):
        nimsync.select([])


def test_fairness_over_100_000_rounds():
    rounds = 100_000
    a, b = nimsync.Channel(2), nimsync.Channel(2)
    a.send(0)
    b.send(0)
    counts = [0, 0]
    chans = (a, b)
    for _ in range(rounds):
        i, _value = nimsync.select(chans)
        counts[i] += 1
        chans[i].send(0)
    fair = rounds / 2
    assert min(counts) >= 0.4 * fair, counts


def test_select_does_not_count_unsent_items_as_tasks():
    a, b = nimsync.Channel(1), nimsync.Channel(1)
    b.send("occupied")
    nimsync.select([(a, 1), (b, 2)])
    assert a.get() == 1
    a.task_done()
    a.join()  # would block forever if the unchosen send to b were counted
    b.get()
    b.task_done()
    b.join()
