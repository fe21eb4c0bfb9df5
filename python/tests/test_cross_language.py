"""One channel across languages in one process: created in Python, filled by a C thread,
awaited by an asyncio consumer; and created in C, adopted by Python by handle."""

import asyncio
import ctypes
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIBDIR = ROOT / "target" / "release"
os.environ.setdefault("NIMSYNC_LIBRARY", str(LIBDIR / "libnimsync.so"))

from nimsync import ChannelClosed, ChannelEmpty  # noqa: E402
from nimsync.raw import RawChannel, load_library  # noqa: E402

pytestmark = pytest.mark.skipif(
    not pathlib.Path(os.environ["NIMSYNC_LIBRARY"]).exists() or shutil.which("cc") is None,
    reason="needs libnimsync.so (cargo build --release -p nimsync-ffi) and a C compiler",
)


@pytest.fixture(scope="module")
def producer_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "libproducer.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-I", str(ROOT / "include"),
         str(pathlib.Path(__file__).with_name("c_helpers") / "producer.c"),
         "-o", str(out), "-L", os.path.dirname(os.environ["NIMSYNC_LIBRARY"]), "-lnimsync", "-lpthread",
         "-Wl,-rpath," + os.path.dirname(os.environ["NIMSYNC_LIBRARY"])],
        check=True,
    )
    load_library()  # the same libnimsync the C library links against
    lib = ctypes.CDLL(str(out))
    lib.start_producer.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.start_producer.restype = ctypes.c_int
    lib.make_channel.argtypes = [ctypes.c_size_t]
    lib.make_channel.restype = ctypes.c_void_p
    return lib


def test_a_c_thread_feeds_a_python_asyncio_consumer(producer_lib):
    n = 50_000

    async def main():
        ch = RawChannel(64, "spsc")
        assert producer_lib.start_producer(ch.handle, n) == 0
        total = count = 0
        async for i in ch.aio:
            total += i
            count += 1
        return count, total

    assert asyncio.run(main()) == (n, n * (n + 1) // 2)


def test_a_channel_made_in_c_is_adopted_by_handle(producer_lib):
    handle = producer_lib.make_channel(16)
    ch = RawChannel.from_handle(handle)
    load_library().nimsync_channel_free(ctypes.c_void_p(handle))  # C drops its reference
    ch.send(7)
    assert ch.recv() == 7
    with pytest.raises(ChannelEmpty):
        ch.try_recv()
    assert producer_lib.start_producer(ch.handle, 100) == 0
    assert sum(ch) == 5050  # blocking iteration ends when the C thread closes it
    with pytest.raises(ChannelClosed):
        ch.send(1)


def test_async_send_to_a_c_consumer_and_cancellation(producer_lib):
    async def main():
        ch = RawChannel(1, "mpmc")
        await ch.aio.send(1)
        pending = asyncio.ensure_future(ch.aio.send(2))
        await asyncio.sleep(0.01)
        assert not pending.done()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert ch.recv() == 1
        with pytest.raises(ChannelEmpty):
            ch.try_recv()  # the cancelled send did not happen

    asyncio.run(main())
