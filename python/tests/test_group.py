"""nimsync.TaskGroup: tasks on nimsync's workers, results in spawn order, every failure in
an ExceptionGroup, fail-fast cancellation, nesting, the concurrency limit, deadlines,
Ctrl-C, nothing outliving its block, and the pool's metrics."""

import contextvars
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nimsync

if sys.version_info >= (3, 11):
    import builtins

    def test_exception_group_is_the_builtin():
        assert nimsync.ExceptionGroup is builtins.ExceptionGroup
        assert nimsync.BaseExceptionGroup is builtins.BaseExceptionGroup


def wait_for(predicate, limit=10.0):
    """Returns once ``predicate()`` holds (an observable state, not a guess of time)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.0005)


def receivers_waiting(ch):
    return ch._waiting()[1]


WORKERS = len(nimsync.scheduler_metrics()["workers"])


def square(x, offset=0):
    return x * x + offset


# --- results and where tasks run ------------------------------------------------------


def test_results_in_spawn_order():
    with nimsync.TaskGroup() as g:
        handles = [g.spawn(square, i, offset=1) for i in range(200)]
        none = g.spawn(lambda: None)
    assert [h.result() for h in handles] == [i * i + 1 for i in range(200)]
    assert g.results() == [i * i + 1 for i in range(200)] + [None]
    assert none.result() is None and none.exception() is None and none.done()
    assert [h.index for h in handles] == list(range(200))
    assert "done" in repr(handles[0]) and "closed" in repr(g)


def test_tasks_run_on_nimsync_workers_in_a_copy_of_the_spawners_context():
    var = contextvars.ContextVar("var", default="unset")
    var.set("spawner's")
    main = threading.get_native_id()

    def where():
        tid = threading.get_native_id()
        comm = pathlib.Path(f"/proc/self/task/{tid}/comm")
        name = comm.read_text().strip() if comm.exists() else "nimsync-worker (no /proc)"
        token = nimsync.current_cancel_token()
        var.set("changed in the task")  # stays in the task's copy
        return tid, name, token

    with nimsync.TaskGroup() as g:
        assert nimsync.current_cancel_token() is g.token  # the body waits under it too
        seen = var.get()
        handles = [g.spawn(where) for _ in range(4)]
    for h in handles:
        tid, name, token = h.result()
        assert tid != main
        assert name.startswith("nimsync-worker"), name
        assert token is g.token
    assert seen == var.get() == "spawner's"
    assert nimsync.current_cancel_token() is None
    assert g.token.cancelled and g.token.reason == "cancelled: task group exited"


def test_tasks_release_the_gil_while_they_wait():
    """Tasks blocked in nimsync calls (and the joining thread) hold no GIL: a ring of
    tasks each waiting for the previous one's item completes."""
    n = min(WORKERS, 5)
    chans = [nimsync.Channel(1) for _ in range(n)]

    def relay(i):
        item = chans[i].recv()
        if i + 1 < n:
            chans[i + 1].send(item + 1)
        return item

    with nimsync.TaskGroup() as g:
        handles = [g.spawn(relay, i) for i in reversed(range(n))]
        wait_for(lambda: sum(receivers_waiting(c) for c in chans) == n)
        chans[0].send(0)
    assert sorted(h.result() for h in handles) == list(range(n))


def test_tasks_can_spawn_siblings_while_the_group_is_joined():
    gate = nimsync.Channel(1)

    def parent(g):
        gate.recv()  # the body has reached its end: the group is being joined
        return [g.spawn(square, i) for i in range(10)]

    with nimsync.TaskGroup() as g:
        first = g.spawn(parent, g)
        gate.send("go")
    children = first.result()
    assert [h.result() for h in children] == [i * i for i in range(10)]
    assert len(g.results()) == 11


# --- failures -------------------------------------------------------------------------


def test_exception_group_carries_every_failure_in_spawn_order():
    n = min(WORKERS, 4)
    barrier = threading.Barrier(n)  # every task is running before any fails
    kinds = [ValueError, KeyError, TypeError, ZeroDivisionError]

    def fail(i):
        barrier.wait(timeout=30)
        raise kinds[i](f"task {i}")

    with pytest.raises(nimsync.ExceptionGroup) as info:
        with nimsync.TaskGroup() as g:
            handles = [g.spawn(fail, i) for i in range(n)]
    eg = info.value
    assert [type(e) for e in eg.exceptions] == kinds[:n]
    assert [h.exception() for h in handles] == list(eg.exceptions)
    for e in eg.exceptions:
        assert e.__traceback__ is not None  # where it was raised, in the task
    with pytest.raises(ValueError, match="task 0"):
        handles[0].result()
    with pytest.raises(ValueError):
        g.results()
    assert g.token.reason.startswith("cancelled: task 0 failed: ValueError: task 0") or g.token.cancelled


@pytest.mark.skipif(sys.version_info < (3, 11), reason="except* is Python 3.11 syntax")
def test_except_star_matches_task_failures():
    # Compiled at run time so that this file still parses on Python 3.10.
    code = textwrap.dedent(
        """
        def fail():
            raise OSError("disk full")

        caught = []
        try:
            with nimsync.TaskGroup() as g:
                g.spawn(fail)
        except* OSError as eg:
            caught.extend(eg.exceptions)
        """
    )
    scope = {"nimsync": nimsync}
    exec(compile(code, "<except*>", "exec"), scope)
    assert [str(e) for e in scope["caught"]] == ["disk full"]


def test_first_failure_cancels_a_task_blocked_in_recv_within_10ms():
    """The task blocked in ``recv`` (under the group's ambient token) raises
    ``Cancelled`` soon after its sibling fails; the median over several rounds is under
    10 ms (a generous bound), and the Cancelled is not reported as a failure."""
    latencies = []
    for _ in range(5):
        ch = nimsync.Channel(1)
        failed_at = []
        stopped_at = []

        def blocked():
            try:
                ch.recv()
            except nimsync.Cancelled:
                stopped_at.append(time.perf_counter())
                raise

        def failing():
            wait_for(lambda: receivers_waiting(ch) == 1)
            failed_at.append(time.perf_counter())
            raise RuntimeError("boom")

        with pytest.raises(nimsync.ExceptionGroup) as info:
            with nimsync.TaskGroup() as g:
                waiter = g.spawn(blocked)
                g.spawn(failing)
        assert [type(e) for e in info.value.exceptions] == [RuntimeError]
        assert waiter.cancelled()
        with pytest.raises(nimsync.Cancelled):
            waiter.result()
        latencies.append(stopped_at[0] - failed_at[0])
    assert max(latencies) < 1.0, latencies
    assert statistics.median(latencies) < 0.010, latencies


def test_tasks_not_started_when_the_group_fails_are_skipped():
    ran = []

    def first():
        raise ValueError("first")

    with pytest.raises(nimsync.ExceptionGroup) as info:
        with nimsync.TaskGroup(limit=1) as g:
            g.spawn(first)
            rest = [g.spawn(ran.append, i) for i in range(20)]
    assert len(info.value.exceptions) == 1
    assert ran == []  # the limit held them back until the failure cancelled the group
    assert all(h.cancelled() for h in rest)
    assert "cancelled" in repr(rest[0])


def test_body_exception_cancels_the_group_and_is_grouped():
    ch = nimsync.Channel(1)

    def blocked():
        ch.recv()

    with pytest.raises(nimsync.ExceptionGroup) as info:
        with nimsync.TaskGroup() as g:
            h = g.spawn(blocked)
            wait_for(lambda: receivers_waiting(ch) == 1)
            raise LookupError("in the body")
    assert [type(e) for e in info.value.exceptions] == [LookupError]
    assert h.cancelled()
    assert g.token.reason == "cancelled: task group body raised LookupError"


def test_keyboard_interrupt_in_the_body_cancels_joins_and_propagates():
    ch = nimsync.Channel(1)
    finished = []

    def blocked():
        try:
            ch.recv()
        finally:
            finished.append(True)

    with pytest.raises(KeyboardInterrupt):
        with nimsync.TaskGroup() as g:
            g.spawn(blocked)
            wait_for(lambda: receivers_waiting(ch) == 1)
            raise KeyboardInterrupt
    assert finished == [True]


# --- cancellation, nesting, deadlines -------------------------------------------------


def test_explicit_cancel_stops_the_tasks_without_an_exception():
    ch = nimsync.Channel(1)
    with nimsync.TaskGroup() as g:
        handles = [g.spawn(ch.recv) for _ in range(3)]
        wait_for(lambda: receivers_waiting(ch) == 3)
        assert g.cancel("enough") is True
        assert g.cancel("again") is False
    assert all(h.cancelled() for h in handles)
    with pytest.raises(nimsync.Cancelled, match="enough"):
        handles[0].result()


def test_a_cancelled_parent_token_cancels_the_group():
    ch = nimsync.Channel(1)
    parent = nimsync.CancelToken()
    with pytest.raises(nimsync.Cancelled, match="^cancelled: from outside$"):
        with nimsync.TaskGroup(cancel=parent) as g:
            h = g.spawn(ch.recv)
            wait_for(lambda: receivers_waiting(ch) == 1)
            threading.Thread(target=parent.cancel, args=("from outside",)).start()
            ch.recv()  # the body is stopped too, and its Cancelled propagates
    assert h.cancelled()
    # Cancelled while the block waits for its tasks: the group raises Cancelled.
    parent = nimsync.CancelToken()
    with pytest.raises(nimsync.Cancelled, match="^task group cancelled: from a task$"):
        with nimsync.TaskGroup(cancel=parent) as g:
            h = g.spawn(ch.recv)
            g.spawn(lambda: (wait_for(lambda: receivers_waiting(ch) == 1), parent.cancel("from a task")))
    assert h.cancelled()


def test_nested_groups_cancel_downward_only():
    ch = nimsync.Channel(1)
    inner_tokens = []

    def inner_fails():
        with pytest.raises(nimsync.ExceptionGroup):
            with nimsync.TaskGroup() as inner:
                inner_tokens.append(inner.token)
                inner.spawn(lambda: 1 / 0)
        # The inner group's failure did not cancel the outer group.
        assert not nimsync.current_cancel_token().cancelled
        return "inner failed alone"

    with nimsync.TaskGroup() as outer:
        h = outer.spawn(inner_fails)
        sibling = outer.spawn(lambda: "sibling done")
    assert h.result() == "inner failed alone" and sibling.result() == "sibling done"

    # Cancelling the outer group reaches a task of an inner group.
    inner_tasks = []

    def inner_blocks():
        with nimsync.TaskGroup() as inner:
            inner_tokens.append(inner.token)
            inner_tasks.append(inner.spawn(ch.recv))

    def outer_fails():
        wait_for(lambda: receivers_waiting(ch) == 1)
        raise ValueError("outer task")

    with pytest.raises(nimsync.ExceptionGroup) as info:
        with nimsync.TaskGroup() as outer:
            nested = outer.spawn(inner_blocks)
            outer.spawn(outer_fails)
    # Only the real failure: the inner group's Cancelled is the cancellation arriving.
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert nested.cancelled() and inner_tasks[0].cancelled()
    assert inner_tokens[1].reason == "cancelled: task 1 failed: ValueError: outer task"


def test_group_deadline_raises_timeout_between_50_and_200_ms():
    ch = nimsync.Channel(1)
    t0 = time.monotonic()
    with pytest.raises(nimsync.Timeout, match="deadline exceeded") as info:
        with nimsync.TaskGroup(timeout=0.05) as g:
            h = g.spawn(ch.recv)
    elapsed = time.monotonic() - t0
    assert 0.05 <= elapsed < 0.2, elapsed
    assert isinstance(info.value, TimeoutError)
    assert h.cancelled()


def test_a_group_inside_a_timeout_scope_inherits_the_deadline():
    ch = nimsync.Channel(1)
    with pytest.raises(nimsync.Timeout):
        with nimsync.timeout(0.05):
            with nimsync.TaskGroup() as g:
                g.spawn(ch.recv)
    assert g.token.reason == "deadline exceeded"


def test_a_group_that_finishes_in_time_raises_nothing():
    with nimsync.TaskGroup(timeout=60) as g:
        h = g.spawn(square, 7)
    assert h.result() == 49


# --- the concurrency limit ------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_limit_is_never_exceeded(limit):
    limit = min(limit, WORKERS)
    lock = threading.Lock()
    state = {"running": 0, "high": 0}
    order = []
    # Every `limit` tasks meet at the barrier: the limit is reached, deterministically.
    barrier = threading.Barrier(limit)

    def task(i):
        with lock:
            state["running"] += 1
            state["high"] = max(state["high"], state["running"])
            order.append(i)
        barrier.wait(timeout=30)
        with lock:
            state["running"] -= 1
        return i

    n = 12 * limit
    with nimsync.TaskGroup(limit=limit) as g:
        for i in range(n):
            g.spawn(task, i)
    assert g.results() == list(range(n))
    assert state["high"] == limit
    if limit == 1:
        assert order == list(range(n))  # held tasks start in spawn order


# --- nothing outlives the block -------------------------------------------------------


def test_no_task_runs_after_the_with_block():
    lock = threading.Lock()
    events = []
    ch = nimsync.Channel(1)

    def task(i):
        with lock:
            events.append(("start", i))
        try:
            if i == 7:
                raise ValueError("seven")
            if i % 3 == 0:
                ch.recv()  # stopped by the failure
            return i
        finally:
            with lock:
                events.append(("end", i))

    with pytest.raises(nimsync.ExceptionGroup):
        with nimsync.TaskGroup(limit=4) as g:
            for i in range(40):
                g.spawn(task, i)
    with lock:
        snapshot = list(events)
    started = {i for kind, i in snapshot if kind == "start"}
    ended = {i for kind, i in snapshot if kind == "end"}
    assert started == ended  # every task that started has finished
    assert 7 in started
    # Drain the pool through another group: nothing of the first one runs later.
    with nimsync.TaskGroup() as g2:
        for _ in range(WORKERS * 4):
            g2.spawn(time.sleep, 0.001)
    assert events == snapshot
    with pytest.raises(RuntimeError, match="closed"):
        g.spawn(task, 99)


# --- Ctrl-C ---------------------------------------------------------------------------


def test_sigint_during_the_join_cancels_waits_and_reraises():
    """A real SIGINT sent to the main thread while it waits at the end of the block: the
    group is cancelled, every task finishes, then KeyboardInterrupt propagates.

    A signal that lands in the instant between the GIL's release and the start of the
    sleep is seen by no one until the next one (as with CPython's own lock waits), so
    the signal is repeated until the group reacts; the handler raises only once."""
    ch = nimsync.Channel(1)
    finished = []
    main = threading.main_thread()
    raised = []

    def on_sigint(signum, frame):
        if not raised:
            raised.append(signum)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)

    def blocked(i):
        try:
            ch.recv()
        finally:
            finished.append(i)

    def interrupter(token):
        wait_for(lambda: receivers_waiting(ch) == 2)
        deadline = time.monotonic() + 20
        while not token.cancelled:
            assert time.monotonic() < deadline, "the group never reacted to SIGINT"
            signal.pthread_kill(main.ident, signal.SIGINT)
            time.sleep(0.05)

    try:
        with pytest.raises(KeyboardInterrupt):
            with nimsync.TaskGroup() as g:
                handles = [g.spawn(blocked, i) for i in range(2)]
                killer = threading.Thread(target=interrupter, args=(g.token,))
                killer.start()
        killer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert raised == [signal.SIGINT]
    assert sorted(finished) == [0, 1]
    assert all(h.cancelled() for h in handles)
    assert g.token.cancelled


PROGRAM = textwrap.dedent(
    """
    import signal, sys, threading, nimsync
    # Python installs its Ctrl-C handler only if SIGINT was not ignored when it started
    # (shells ignore it in background jobs): install it whatever the parent did.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ch = nimsync.Channel(1)
    finished = []
    def blocked(i):
        try:
            ch.recv()
        finally:
            finished.append(i)
    try:
        with nimsync.TaskGroup() as g:
            for i in range(3):
                g.spawn(blocked, i)
            while ch._waiting()[1] < 3:
                pass
            print("ready", flush=True)
    except KeyboardInterrupt:
        print("interrupted", sorted(finished), flush=True)
        sys.exit(3)
    """
)


@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_in_a_subprocess():
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        # Wait until the main thread sleeps in the join.
        deadline = time.monotonic() + 20
        stat = pathlib.Path(f"/proc/{proc.pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "S":
            assert time.monotonic() < deadline, "the child never blocked"
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, (out, err)
        assert "interrupted [0, 1, 2]" in out, (out, err)
    finally:
        proc.kill()
        proc.wait()


# --- metrics --------------------------------------------------------------------------


def test_scheduler_metrics():
    before = nimsync.scheduler_metrics()
    with nimsync.TaskGroup() as g:
        for i in range(100):
            g.spawn(square, i)
    after = nimsync.scheduler_metrics()
    assert len(after["workers"]) == WORKERS >= 1
    keys = {"spawned", "executed", "stolen_from", "stolen_by", "queue_depth", "parks", "panics"}
    for w in after["workers"]:
        assert set(w) == keys
        assert all(isinstance(v, int) and v >= 0 for v in w.values())
    assert after["executed"] - before["executed"] >= 100
    assert after["spawned"] - before["spawned"] >= 100
    assert sum(w["executed"] for w in after["workers"]) == after["executed"]
    assert isinstance(after["load_imbalance"], float) and after["load_imbalance"] >= 0.0
    assert {"injected", "stolen", "injector_depth"} <= set(after)


def test_worker_count_comes_from_the_environment():
    code = "import nimsync; print(len(nimsync.scheduler_metrics()['workers']))"
    env = dict(os.environ, NIMSYNC_PYTHON_WORKERS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"
    env["NIMSYNC_PYTHON_WORKERS"] = "many"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "NIMSYNC_PYTHON_WORKERS" in bad.stderr


# --- bad arguments and misuse ---------------------------------------------------------


def test_bad_arguments_and_misuse_raise_clear_errors():
    with pytest.raises(ValueError, match="limit"):
        nimsync.TaskGroup(limit=0)
    with pytest.raises(ValueError, match="limit"):
        nimsync.TaskGroup(limit=-3)
    with pytest.raises(TypeError, match="limit"):
        nimsync.TaskGroup(limit="2")
    with pytest.raises(TypeError, match="limit"):
        nimsync.TaskGroup(limit=True)
    with pytest.raises(ValueError, match="timeout"):
        nimsync.TaskGroup(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        nimsync.TaskGroup(timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        nimsync.TaskGroup(timeout="1")
    with pytest.raises(TypeError, match="cancel"):
        nimsync.TaskGroup(cancel=object())
    g = nimsync.TaskGroup()
    with pytest.raises(RuntimeError, match="not entered"):
        g.spawn(print)
    with pytest.raises(RuntimeError):
        g.token
    with pytest.raises(RuntimeError):
        g.cancel()
    with g:
        with pytest.raises(TypeError, match="callable"):
            g.spawn(42)

        async def coroutine_function():
            pass

        with pytest.raises(TypeError, match="coroutine function"):
            g.spawn(coroutine_function)
        with pytest.raises(RuntimeError, match="only once"):
            g.__enter__()
        with pytest.raises(RuntimeError, match="with block has ended"):
            g.results()
        h = g.spawn(square, 3)
        assert h.index == 0
    assert h.result() == 9
    with pytest.raises(RuntimeError, match="closed"):
        g.spawn(print)
    # Native argument checks too.
    with pytest.raises(TypeError, match="callable"):
        nimsync._native.TaskGroup().spawn(3)
    with pytest.raises(ValueError, match="limit"):
        nimsync._native.TaskGroup(limit=0)
    with pytest.raises(ValueError, match="limit"):
        nimsync._native.TaskGroup(limit=-(10**30))
    with pytest.raises(TypeError, match="limit"):
        nimsync._native.TaskGroup(limit=2.0)
    with nimsync.TaskGroup(limit=10**30) as g:  # more than any number of tasks
        big = g.spawn(square, 2)
    assert big.result() == 4
    # A handle before its group is joined.
    gate = nimsync.Channel(1)
    with nimsync.TaskGroup() as g:
        early = g.spawn(gate.recv)
        with pytest.raises(RuntimeError, match="not been joined"):
            early.result()
        assert not early.done() and "pending" in repr(early)
        gate.send("done")
    assert early.result() == "done"
