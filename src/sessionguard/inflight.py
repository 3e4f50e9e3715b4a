"""The request in progress, so that a store failure anywhere in the app answers
the store's ``503``, not the framework's ``500``.

The app may call the store in many ways while it serves a request: the
request object's methods (``login()``, ``end_others()``, ...), the guard's API
(``guard.end_user()``, ``guard.sessions()``, ...) or ``guard.store`` itself, in
the request's thread or task or in a worker thread the framework runs a sync
view in. Each shell sets :data:`CURRENT` to the request object before calling
the app; a context variable reaches every one of those places (asyncio tasks,
anyio's and asgiref's worker threads copy the context). The Redis stores call
:func:`failed` when a call fails, and the request object then turns the
framework's ``500`` into the ``503`` (see ``asgi._Unavailable`` and
``wsgi._Unavailable``), as long as the response has not started.

Nothing is reset after a request: the variable lives in the request's task
(ASGI servers run each request in a task of its own) or is set again by the
next request of the thread (WSGI). A request object left behind there has
started its response, or ended without one, so :func:`failed` changes nothing
that is still sent. A store call outside any request (the CLI, a background
thread) finds no request object.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol


class Failing(Protocol):
    """What the shells' request objects offer :func:`failed`."""

    def _unavailable(self) -> None:
        """Answer the store's ``503`` in place of the app's ``500``, if the
        response has not started."""


#: the request object of the request in progress (set by the shells)
CURRENT: ContextVar[Failing | None] = ContextVar("sessionguard_request", default=None)


def failed() -> None:
    """A store call failed: the request in progress, if any, answers the ``503``."""
    ctx = CURRENT.get()
    if ctx is not None:
        ctx._unavailable()
