"""Cancellation from Python: the token tree, callbacks, ``cancel=`` on every blocking call,
``cancel_scope`` / ``timeout`` scopes, shields, the asyncio face, and argument checks."""

import asyncio
import gc
import statistics
import sys
import threading
import time

import pytest

import nimsync


def wait_for(predicate, limit=10.0):
    """Returns once ``predicate()`` holds (an observable state, not a guess of time)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.0005)


def receivers_waiting(ch):
    return ch._waiting()[1]


def senders_waiting(ch):
    return ch._waiting()[0]


# --- the token tree -------------------------------------------------------------------


def test_cancelling_a_parent_cancels_every_descendant_once():
    root = nimsync.CancelToken()
    children = [root.child() for _ in range(100)]
    grandchildren = [c.child() for c in children for _ in range(10)]
    fired = []
    for t in grandchildren:
        t.on_cancel(lambda: fired.append(1))
    assert not any(t.cancelled for t in children + grandchildren)
    assert root.cancel("shutting down") is True
    assert root.cancel("again") is False  # the first reason stands
    assert all(t.cancelled for t in children + grandchildren)
    assert {t.reason for t in grandchildren} == {"cancelled: shutting down"}
    assert len(fired) == len(grandchildren)


def test_concurrent_cancels_cancel_once():
    root = nimsync.CancelToken()
    leaves = [root.child().child() for _ in range(1000)]
    count = [0]
    lock = threading.Lock()

    def bump():
        with lock:
            count[0] += 1

    for leaf in leaves:
        leaf.on_cancel(bump)
    barrier = threading.Barrier(8)
    wins = []

    def canceller(i):
        barrier.wait()
        wins.append(root.cancel(f"by {i}"))

    threads = [threading.Thread(target=canceller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert count[0] == len(leaves)
    assert len({leaf.reason for leaf in leaves}) == 1


def test_a_child_does_not_cancel_its_parent_and_a_late_child_starts_cancelled():
    root = nimsync.CancelToken()
    child = root.child()
    child.cancel()
    assert child.cancelled and child.reason == "cancelled"
    assert not root.cancelled and root.reason is None
    root.cancel("stop")
    late = root.child()
    assert late.cancelled and late.reason == "cancelled: stop"


def test_check_raises_cancelled_or_timeout():
    token = nimsync.CancelToken()
    token.check()
    token.cancel("enough")
    with pytest.raises(nimsync.Cancelled, match="cancelled: enough"):
        token.check()
    expired = nimsync.CancelToken().with_timeout(0)
    wait_for(lambda: expired.cancelled)
    with pytest.raises(nimsync.Timeout, match="deadline exceeded") as info:
        expired.check()
    assert isinstance(info.value, TimeoutError)
    assert "cancelled" in repr(token) and "active" in repr(nimsync.CancelToken())


# --- callbacks ------------------------------------------------------------------------


def test_callbacks_run_once_on_cancel_and_at_once_after_it():
    token = nimsync.CancelToken()
    calls = []
    handle = token.on_cancel(lambda: calls.append("early"))
    assert calls == []
    token.cancel()
    assert calls == ["early"]
    token.cancel()
    assert calls == ["early"]  # once
    assert handle.remove() is False  # it has run
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]  # registered after the cancel: ran at once


def test_removed_callbacks_never_run():
    token = nimsync.CancelToken()
    calls = []
    handle = token.on_cancel(lambda: calls.append("removed"))
    assert handle.remove() is True
    assert handle.remove() is False
    with token.on_cancel(lambda: calls.append("scoped")):
        pass
    kept = token.on_cancel(lambda: calls.append("kept"))
    del kept  # dropping the handle keeps the callback
    gc.collect()
    token.cancel()
    assert calls == ["kept"]


def test_callback_runs_on_the_cancelling_thread_and_its_exception_is_unraisable(monkeypatch):
    token = nimsync.CancelToken()
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    ran_on = []
    token.on_cancel(lambda: ran_on.append(threading.get_ident()))
    token.on_cancel(lambda: 1 / 0)
    token.on_cancel(lambda: ran_on.append("after the failing one"))
    t = threading.Thread(target=token.cancel)
    t.start()
    t.join()
    assert ran_on == [t.ident, "after the failing one"]
    assert len(seen) == 1 and isinstance(seen[0], ZeroDivisionError)


def test_a_callback_may_cancel_other_tokens():
    a, b = nimsync.CancelToken(), nimsync.CancelToken()
    a.on_cancel(lambda: b.cancel("because of a"))
    a.cancel()
    assert b.reason == "cancelled: because of a"


# --- blocking calls -------------------------------------------------------------------


def test_a_blocked_recv_raises_cancelled_promptly():
    """A thread blocked in ``recv(cancel=token)`` raises ``Cancelled`` soon after another
    thread cancels: the median latency over several rounds is under 10 ms (a generous
    upper bound; it is typically tens of microseconds)."""
    latencies = []
    for _ in range(7):
        ch = nimsync.Channel(1)
        token = nimsync.CancelToken()
        outcome = []

        def receiver():
            try:
                ch.recv(cancel=token)
            except nimsync.Cancelled as exc:
                outcome.append((time.perf_counter(), str(exc)))

        t = threading.Thread(target=receiver)
        t.start()
        wait_for(lambda: receivers_waiting(ch) == 1)
        t0 = time.perf_counter()
        token.cancel("stop now")
        t.join()
        stopped, message = outcome[0]
        assert message == "cancelled: stop now"
        latencies.append(stopped - t0)
        assert receivers_waiting(ch) == 0
    assert max(latencies) < 1.0, latencies
    assert statistics.median(latencies) < 0.010, latencies


def test_cancelling_a_parent_stops_a_call_waiting_on_a_child():
    ch = nimsync.Channel(1)
    root = nimsync.CancelToken()
    errors = []

    def receiver():
        try:
            ch.recv(cancel=root.child().child())
        except nimsync.Cancelled as exc:
            errors.append(exc)

    t = threading.Thread(target=receiver)
    t.start()
    wait_for(lambda: receivers_waiting(ch) == 1)
    root.cancel("root")
    t.join()
    assert str(errors[0]) == "cancelled: root"


def test_timeout_scope_fires_between_50_and_200_ms():
    ch = nimsync.Channel(1)
    t0 = time.monotonic()
    with pytest.raises(nimsync.Timeout, match="deadline exceeded") as info:
        with nimsync.timeout(0.05):
            ch.recv()
    elapsed = time.monotonic() - t0
    assert 0.05 <= elapsed < 0.2, elapsed
    assert isinstance(info.value, TimeoutError)


def test_timeout_covers_the_whole_block_not_each_call():
    ch = nimsync.Channel(1)
    with pytest.raises(nimsync.Timeout):
        with nimsync.timeout(0.05) as token:
            ch.send("fits")  # completes at once
            assert ch.recv() == "fits"
            ch.recv()  # waits until the block's deadline
    assert token.cancelled and token.reason == "deadline exceeded"


def test_timeout_none_never_fires_and_zero_fires_at_once():
    ch = nimsync.Channel(1)
    with nimsync.timeout(None) as token:
        ch.send(1)
        assert ch.recv() == 1
        assert not token.cancelled
    with pytest.raises(nimsync.Timeout):
        with nimsync.timeout(0):
            ch.recv()


def test_send_cancelled_hands_the_item_back():
    ch = nimsync.Channel(1)
    ch.send("filler")
    token = nimsync.CancelToken()
    item = object()
    base = sys.getrefcount(item)
    caught = []

    def sender():
        try:
            ch.send(item, cancel=token)
        except nimsync.Cancelled as exc:
            caught.append(exc)

    t = threading.Thread(target=sender)
    t.start()
    wait_for(lambda: senders_waiting(ch) == 1)
    token.cancel()
    t.join()
    exc = caught.pop()
    assert exc.value is item
    del exc
    assert sys.getrefcount(item) == base  # nothing else holds it
    assert len(ch) == 1 and ch.try_recv() == "filler"
    ch.task_done()
    ch.join()  # the unsent item is not counted as an unfinished task


def test_put_get_join_iteration_and_select_take_a_token():
    ch = nimsync.Channel(1)
    token = nimsync.CancelToken()
    token.cancel("no")
    with pytest.raises(nimsync.Cancelled):
        ch.get(cancel=token)
    with pytest.raises(nimsync.Cancelled):
        nimsync.select([ch], cancel=token)
    ch.put("x")
    with pytest.raises(nimsync.Cancelled) as info:
        ch.put("y", cancel=token)
    assert info.value.value == "y"
    with pytest.raises(nimsync.Cancelled) as info:
        nimsync.select([(ch, "z")], cancel=token)
    assert len(ch) == 1
    with pytest.raises(nimsync.Cancelled):
        ch.join(cancel=token)  # "x" is not done
    assert ch.get(cancel=token) == "x"  # an operation that can complete at once does
    ch.task_done()
    ch.join(cancel=token)
    with pytest.raises(nimsync.Cancelled):
        with nimsync.cancel_scope(token):
            for _ in ch:
                pass


def test_select_under_a_timeout_scope():
    a, b = nimsync.Channel(1), nimsync.Channel(1)
    t0 = time.monotonic()
    with pytest.raises(nimsync.Timeout):
        with nimsync.timeout(0.05):
            nimsync.select([a, b])
    assert time.monotonic() - t0 >= 0.05


def test_own_timeout_and_token_deadline_are_told_apart():
    ch = nimsync.Channel(1)
    # The call's own timeout= keeps its queue.Queue meaning for get().
    with nimsync.cancel_scope():
        with pytest.raises(nimsync.ChannelEmpty):
            ch.get(timeout=0.01)
    with pytest.raises(nimsync.Timeout, match="deadline exceeded"):
        ch.get(cancel=nimsync.CancelToken().with_timeout(0.01))


# --- scopes ---------------------------------------------------------------------------


def test_scopes_nest_and_restore_the_current_token():
    assert nimsync.current_cancel_token() is None
    with nimsync.cancel_scope() as outer:
        assert nimsync.current_cancel_token() is outer
        with nimsync.timeout(10) as inner:
            assert nimsync.current_cancel_token() is inner
            outer.cancel("outer")
            assert inner.cancelled and inner.reason == "cancelled: outer"
            with pytest.raises(nimsync.Cancelled, match="outer"):
                nimsync.Channel(1).recv()
        assert nimsync.current_cancel_token() is outer
    assert nimsync.current_cancel_token() is None


def test_leaving_a_scope_cancels_its_token_and_the_work_under_it():
    ch = nimsync.Channel(1)
    errors = []
    with nimsync.cancel_scope() as token:
        child = token.child()

        def worker():
            with nimsync.cancel_scope(child):  # a plain thread opts in explicitly
                try:
                    ch.recv()
                except nimsync.Cancelled as exc:
                    errors.append(exc)

        t = threading.Thread(target=worker)
        t.start()
        wait_for(lambda: receivers_waiting(ch) == 1)
    t.join()
    assert token.reason == "cancelled: cancel scope exited"
    assert len(errors) == 1


def test_a_cancel_scope_stops_a_blocked_call_from_another_thread():
    ch = nimsync.Channel(1)
    with nimsync.cancel_scope() as token:
        timer = threading.Thread(target=lambda: (wait_for(lambda: receivers_waiting(ch) == 1), token.cancel("t")))
        timer.start()
        with pytest.raises(nimsync.Cancelled, match="cancelled: t"):
            ch.recv()
        timer.join()


def test_a_scope_is_entered_once():
    scope = nimsync.cancel_scope()
    with scope as token:
        assert scope.token is token
        with pytest.raises(RuntimeError):
            scope.__enter__()
    assert "CancelScope" in repr(scope)


def test_explicit_cancel_wins_over_the_scope():
    ch = nimsync.Channel(1)
    ch.send(1)
    with nimsync.cancel_scope() as token:
        token.cancel()
        own = nimsync.CancelToken()
        # Full channel: the send waits, under its own token, until that one's deadline.
        with pytest.raises(nimsync.Timeout) as info:
            ch.send(2, cancel=own.with_timeout(0.01))
        assert info.value.value == 2


# --- shields --------------------------------------------------------------------------


def test_a_shielded_token_ignores_its_parent():
    parent = nimsync.CancelToken()
    shield = parent.shielded()
    parent.cancel()
    assert not shield.cancelled
    shield.cancel("direct")
    assert shield.reason == "cancelled: direct"


def test_a_shielded_scope_lets_cleanup_finish():
    ch = nimsync.Channel(1)
    with nimsync.cancel_scope() as outer:
        outer.cancel("shutting down")
        with pytest.raises(nimsync.Cancelled):
            ch.recv()
        with nimsync.cancel_scope(shield=True) as shielded:
            assert not shielded.cancelled
            feeder = threading.Thread(
                target=lambda: (wait_for(lambda: receivers_waiting(ch) == 1), ch.send("final"))
            )
            feeder.start()
            assert ch.recv() == "final"  # waits despite the outer cancellation
            feeder.join()
        with nimsync.timeout(0.01, shield=True):
            with pytest.raises(nimsync.Timeout):
                ch.recv()  # the shielded scope's own deadline still applies


# --- asyncio --------------------------------------------------------------------------


def test_aio_awaits_obey_the_scope_of_their_task():
    async def main():
        ch = nimsync.Channel(1)
        with nimsync.cancel_scope() as token:
            asyncio.get_running_loop().call_later(0.01, token.cancel, "from the loop")
            with pytest.raises(nimsync.Cancelled, match="from the loop"):
                await ch.aio.recv()
        t0 = time.monotonic()
        with pytest.raises(nimsync.Timeout):
            with nimsync.timeout(0.05):
                await ch.aio.recv()
        assert 0.05 <= time.monotonic() - t0 < 0.5
        assert ch._waiting() == (0, 0)

        # A token cancelled from another thread wakes the loop too.
        with nimsync.cancel_scope() as token:
            threading.Timer(0.01, token.cancel).start()
            with pytest.raises(nimsync.Cancelled):
                await ch.aio.recv()

        # Other tasks are not affected by this task's scope.
        async def other():
            return await ch.aio.recv()

        helper = asyncio.ensure_future(other())
        with nimsync.cancel_scope() as token:
            token.cancel()
            with pytest.raises(nimsync.Cancelled):
                await ch.aio.recv()
        await ch.aio.send("for the other task")
        assert await helper == "for the other task"

    asyncio.run(main())


def test_aio_send_cancelled_hands_the_item_back():
    async def main():
        ch = nimsync.Channel(1)
        await ch.aio.send("filler")
        item = ["payload"]
        with nimsync.cancel_scope() as token:
            asyncio.get_running_loop().call_later(0.01, token.cancel)
            with pytest.raises(nimsync.Cancelled) as info:
                await ch.aio.send(item)
        assert info.value.value is item
        assert len(ch) == 1 and await ch.aio.recv() == "filler"
        ch.task_done()
        await asyncio.wait_for(ch.aio.join(), 5)  # the unsent item is not counted

    asyncio.run(main())


def test_aio_awaits_take_an_explicit_token():
    async def main():
        ch = nimsync.Channel(1)
        token = nimsync.CancelToken()
        asyncio.get_running_loop().call_later(0.01, token.cancel, "explicit")
        with pytest.raises(nimsync.Cancelled, match="explicit"):
            await ch.aio.recv(cancel=token)
        with pytest.raises(nimsync.Cancelled):
            await ch.aio.get(cancel=token)
        await ch.aio.send(1, cancel=token)  # completes at once: no wait to stop
        with pytest.raises(nimsync.Cancelled) as info:
            await ch.aio.put(2, cancel=token)
        assert info.value.value == 2
        with pytest.raises(nimsync.Cancelled):
            await ch.aio.join(cancel=token)
        assert await ch.aio.recv(cancel=token) == 1
        with pytest.raises(TypeError, match="CancelToken"):
            await ch.aio.recv(cancel="soon")

    asyncio.run(main())


# --- bad arguments --------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    ch = nimsync.Channel(1)
    token = nimsync.CancelToken()
    message = "cancel must be a nimsync.CancelToken or None, not "
    with pytest.raises(TypeError, match=message + "int"):
        ch.recv(cancel=42)
    with pytest.raises(TypeError, match=message + "str"):
        ch.send(1, cancel="token")
    with pytest.raises(TypeError, match=message + "object"):
        nimsync.select([ch], cancel=object())
    for call in (ch.get, ch.join, lambda cancel: ch.put(1, cancel=cancel)):
        with pytest.raises(TypeError, match=message + "float"):
            call(cancel=1.5)
    with pytest.raises(ValueError, match="seconds"):
        nimsync.timeout(-1)
    with pytest.raises(ValueError, match="seconds"):
        nimsync.timeout(float("nan"))
    with pytest.raises(TypeError, match="seconds"):
        nimsync.timeout("1")
    with pytest.raises(TypeError, match="seconds"):
        nimsync.timeout(True)
    with pytest.raises(ValueError, match="seconds"):
        token.with_timeout(-0.5)
    with pytest.raises(ValueError, match="seconds"):
        token.with_timeout(float("nan"))
    with pytest.raises(TypeError):
        token.with_timeout("1")
    with pytest.raises(TypeError, match="callable"):
        token.on_cancel(42)
    with pytest.raises(TypeError):
        token.cancel(42)
    with pytest.raises(TypeError, match="CancelToken"):
        nimsync.cancel_scope("parent")
    with pytest.raises(ValueError, match="shield"):
        nimsync.cancel_scope(token, shield=True)
    assert len(ch) == 0 and not token.cancelled
    # A huge timeout is fine: it never comes.
    with nimsync.timeout(1e300) as far:
        assert not far.cancelled
    assert not token.with_timeout(1e300).cancelled
