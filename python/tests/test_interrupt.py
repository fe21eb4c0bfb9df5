"""Ctrl-C (SIGINT) interrupts a blocked call with KeyboardInterrupt."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent(
    """
    import sys, nimsync
    ch = nimsync.Channel(1)
    op = sys.argv[1]
    if op == "send":
        ch.send("fill")
    print("ready", flush=True)
    try:
        if op == "recv":
            ch.recv()
        elif op == "send":
            ch.send("blocked")
        elif op == "join":
            ch.send("task")
            ch.recv()
            ch.join()
        elif op == "select":
            nimsync.select([ch])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


@pytest.mark.parametrize("op", ["recv", "send", "join", "select"])
def test_sigint_interrupts_a_blocked_call(op):
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, op], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.1)  # let it reach the blocking call; a signal earlier is also handled
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 3, (out, err)
        assert "interrupted" in out
        assert time.monotonic() - t0 < 5
    finally:
        proc.kill()
