"""The nimsync exception hierarchy.

Every nimsync error is a :class:`NimsyncError`. The queue-style errors are also the
standard library's, so code written for ``queue.Queue`` or ``asyncio.Queue`` catches them
unchanged: :class:`ChannelFull` is a ``queue.Full`` and an ``asyncio.QueueFull``,
:class:`ChannelEmpty` a ``queue.Empty`` and an ``asyncio.QueueEmpty``, :class:`Timeout` a
``TimeoutError``.

A send that fails hands its item back: the exception's ``value`` attribute is the item
that was not sent (``None`` for errors of receives).
"""

from __future__ import annotations

import asyncio
import queue
from typing import Any, Optional

__all__ = [
    "NimsyncError",
    "ChannelClosed",
    "ChannelFull",
    "ChannelEmpty",
    "Timeout",
    "Cancelled",
    "ChannelBusy",
]


class NimsyncError(Exception):
    """Base class of every nimsync error."""

    #: The item a failed send did not send (None for other errors).
    value: Any = None
    #: For errors raised by :func:`nimsync.select`: the index of the case.
    index: Optional[int] = None


class ChannelClosed(NimsyncError):
    """The channel is closed: sends fail, receives fail once it is drained."""


class ChannelFull(NimsyncError, queue.Full, asyncio.QueueFull):
    """A send that may not wait found no free slot."""


class ChannelEmpty(NimsyncError, queue.Empty, asyncio.QueueEmpty):
    """A receive that may not wait found no item."""


class Timeout(NimsyncError, TimeoutError):
    """The timeout passed before the operation could complete."""


class Cancelled(NimsyncError):
    """The operation was cancelled."""


class ChannelBusy(NimsyncError):
    """Two threads used a single-thread side of a channel at the same moment.

    Both sides of an ``"spsc"`` channel, the receiving side of ``"mpsc"`` and the sending
    side of ``"spmc"`` allow one thread at a time; use ``"mpmc"`` for any number.
    """
