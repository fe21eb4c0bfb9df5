"""Ctrl-C (SIGINT) interrupts a blocked call with KeyboardInterrupt, and a send that is
interrupted keeps its item out of the channel and leaks no reference to it."""

import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent(
    """
    import signal, sys, nimsync
    # Python installs its Ctrl-C handler only if SIGINT was not ignored when it started,
    # and shells start background jobs with SIGINT ignored: install it whatever the
    # parent did, so that the test checks nimsync and not how the suite was launched.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ch = nimsync.Channel(1)
    op = sys.argv[1]
    item = object()
    base = sys.getrefcount(item)
    if op == "send":
        ch.send("fill")
    print("ready", flush=True)
    try:
        if op == "recv":
            ch.recv()
        elif op == "recv-timeout":
            ch.recv(timeout=3600)
        elif op == "iterate":
            for _ in ch:
                pass
        elif op == "send":
            ch.send(item)
        elif op == "join":
            ch.send("task")
            ch.recv()
            ch.join()
        elif op == "select":
            nimsync.select([ch])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        if op == "send":
            # The item was not sent and nothing holds it but this frame.
            assert len(ch) == 1 and ch.try_recv() == "fill", "channel changed"
            assert sys.getrefcount(item) == base, "reference leaked"
            print("item intact", flush=True)
        sys.exit(3)
    """
)


def main_thread_state(pid):
    """The scheduler state of the process's main thread ("R", "S", ...)."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def wait_until_asleep(pid, limit=20.0):
    """Returns once the child's main thread sleeps: after printing "ready" the only
    thing left that can put it to sleep is the blocking call under test."""
    deadline = time.monotonic() + limit
    while main_thread_state(pid) != "S":
        assert time.monotonic() < deadline, "the child never blocked"
        time.sleep(0.001)


@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("op", ["recv", "recv-timeout", "iterate", "send", "join", "select"])
def test_sigint_interrupts_a_blocked_call(op):
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, op], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_until_asleep(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, (out, err)
        assert "interrupted" in out
        if op == "send":
            assert "item intact" in out, (out, err)
        assert time.monotonic() - t0 < 10
    finally:
        proc.kill()
        proc.wait()
