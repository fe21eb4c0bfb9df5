"""Cancellation: tokens, and scopes that every blocking nimsync call inside obeys.

A :class:`CancelToken` is one node of a tree: cancelling it cancels every descendant.
Every blocking call takes one explicitly (``ch.recv(cancel=token)``,
``nimsync.select(cases, cancel=token)``) and raises :class:`~nimsync.Cancelled` — or
:class:`~nimsync.Timeout` for a deadline token — as soon as it fires.

Scopes make a token *ambient*: inside ``with nimsync.cancel_scope() as token:`` or
``with nimsync.timeout(seconds) as token:``, every blocking nimsync call of that thread
or asyncio task that is given no ``cancel=`` waits under the scope's token — the
blocking methods of :class:`~nimsync.Channel`, :func:`~nimsync.select`, and the awaits
of ``channel.aio``. Scopes nest: a scope's token is a child of the enclosing scope's
token, so cancelling an outer scope stops the calls of the inner ones.

The current token is kept in a :class:`contextvars.ContextVar`, so each thread and each
asyncio task has its own; ``asyncio.to_thread`` and ``contextvars.copy_context().run``
carry it along, a plain ``threading.Thread`` does not (give it the token, and let it
open ``nimsync.cancel_scope(token)``).

No magic on the way out: a call that the scope's deadline or cancellation stopped
raises :class:`~nimsync.Timeout` / :class:`~nimsync.Cancelled`, and the exception
propagates out of the ``with`` block like any other (catch it outside if the timeout is
expected). Leaving the block, however it is left, cancels the scope's token, so work
that was started inside with that token (threads given ``token``, callbacks registered
on it) stops too.

A call that can complete at once completes, even under a cancelled token: tokens stop
*waiting*, as in Go's ``select`` on ``ctx.Done()``. Use :meth:`CancelToken.check` to
stop a loop that never waits.

>>> import nimsync
>>> ch = nimsync.Channel(1)
>>> with nimsync.timeout(0.01):
...     ch.recv()
Traceback (most recent call last):
...
nimsync._errors.Timeout: deadline exceeded
"""

from __future__ import annotations

import numbers
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Optional, Type

from ._native import CancelCallback, CancelToken

__all__ = [
    "CancelToken",
    "CancelCallback",
    "CancelScope",
    "cancel_scope",
    "timeout",
    "current_cancel_token",
]

# The token of the innermost scope of this thread or task. The native blocking methods
# read it (through ``_current.get``) only after their non-blocking attempt failed.
_current: ContextVar[Optional[CancelToken]] = ContextVar("nimsync.cancel_token", default=None)


def current_cancel_token() -> Optional[CancelToken]:
    """The token of the innermost :func:`cancel_scope` / :func:`timeout` block of this
    thread or task, or None outside every scope.

    >>> with nimsync.cancel_scope() as token:
    ...     assert nimsync.current_cancel_token() is token
    >>> nimsync.current_cancel_token() is None
    True
    """
    return _current.get()


class CancelScope:
    """A ``with`` block whose token every blocking nimsync call inside obeys.

    Made by :func:`cancel_scope` and :func:`timeout`; ``with scope as token`` gives the
    scope's token. A scope can be entered once. See the module documentation.
    """

    __slots__ = ("_parent", "_seconds", "_shield", "_token", "_reset")

    def __init__(
        self,
        parent: Optional[CancelToken] = None,
        seconds: Optional[float] = None,
        shield: bool = False,
    ) -> None:
        if parent is not None and not isinstance(parent, CancelToken):
            raise TypeError(f"parent must be a nimsync.CancelToken or None, not {type(parent).__name__}")
        if parent is not None and shield:
            raise ValueError("a shielded scope has no parent: pass parent or shield=True, not both")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
                raise TypeError(f"seconds must be a number or None, not {type(seconds).__name__}")
            seconds = float(seconds)
            if not seconds >= 0.0:  # also catches NaN
                raise ValueError(f"invalid argument `seconds`: must be a non-negative number, got {seconds}")
        self._parent = parent
        self._seconds = seconds
        self._shield = shield
        self._token: Optional[CancelToken] = None
        self._reset: Optional[Token[Optional[CancelToken]]] = None

    @property
    def token(self) -> Optional[CancelToken]:
        """The scope's token (None until the scope is entered)."""
        return self._token

    def __enter__(self) -> CancelToken:
        if self._token is not None:
            raise RuntimeError("a cancel scope can be entered only once; make a new one")
        if self._shield:
            base = CancelToken()
        else:
            parent = self._parent if self._parent is not None else _current.get()
            base = parent.child() if parent is not None else CancelToken()
        token = base if self._seconds is None else base.with_timeout(self._seconds)
        self._token = token
        self._reset = _current.set(token)
        return token

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        assert self._token is not None and self._reset is not None, "__exit__ without __enter__"
        reset, self._reset = self._reset, None
        try:
            _current.reset(reset)
        finally:
            # Work started inside with this token stops with the block.
            self._token.cancel("cancel scope exited")

    def __repr__(self) -> str:
        state = "not entered" if self._token is None else repr(self._token)
        deadline = "" if self._seconds is None else f" timeout={self._seconds}"
        shield = " shield" if self._shield else ""
        return f"<nimsync.CancelScope{deadline}{shield} {state}>"


def cancel_scope(parent: Optional[CancelToken] = None, *, shield: bool = False) -> CancelScope:
    """A scope whose token every blocking nimsync call inside the ``with`` block obeys.

    The token is a child of ``parent`` if given, else of the enclosing scope's token (if
    any); with ``shield=True`` it is a new root, so that cancelling the enclosing scopes
    does not stop the block (for cleanup that must finish). Cancel it to stop every call
    waiting under it — from another thread, a callback, or the block itself.

    >>> def worker(ch, token):
    ...     with nimsync.cancel_scope(token):     # a thread's calls obey the token
    ...         for item in ch:
    ...             handle(item)
    >>> with nimsync.cancel_scope() as token:
    ...     threading.Timer(1.0, token.cancel).start()
    ...     ch.recv()                             # raises Cancelled after 1 s
    """
    return CancelScope(parent=parent, shield=shield)


def timeout(seconds: Optional[float], *, shield: bool = False) -> CancelScope:
    """A scope whose blocking nimsync calls raise :class:`~nimsync.Timeout` once
    ``seconds`` have passed since the ``with`` block began (None: no deadline).

    The deadline covers the whole block, not each call. Its token is a child of the
    enclosing scope's token, so an outer cancellation or an earlier outer deadline still
    applies (``shield=True`` ignores the enclosing scopes). The ``Timeout`` propagates
    out of the block; catch it where the timeout is an expected outcome.

    >>> try:
    ...     with nimsync.timeout(0.5):
    ...         request.send(query)
    ...         answer = reply.recv()
    ... except nimsync.Timeout:
    ...     answer = None
    """
    return CancelScope(seconds=seconds, shield=shield)
