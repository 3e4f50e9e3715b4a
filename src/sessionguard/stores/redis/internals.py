"""Every private attribute of redis-py and asyncio that the store relies on,
named here and nowhere else, checked once at import, and read through the
accessors below.

Why any at all: the request path's lanes (:mod:`.lane`, :mod:`.lane_async`)
halve the client's own cost of a check on a loopback Redis, and they need
three things that neither library offers publicly:

- :attr:`Found.sync_socket`: redis-py's sync ``Connection._sock``, the socket
  the sync lane polls for its reply for up to ``STORE_SPIN``;
- :attr:`Found.async_streams`: redis-py's asyncio ``Connection._reader`` and
  ``._writer``, the streams the async lane takes over once redis-py has done the
  handshake (AUTH, SELECT, TLS, Sentinel's master);
- :attr:`Found.loop_ready`: asyncio's ``BaseEventLoop._ready``, the callbacks
  waiting for a turn of the loop (a request alone polls; one with company
  yields first, so the others send theirs and share the trip).

Missing, each one falls back to redis-py's public path, never to a hang nor to
a leaked connection: without ``_sock`` the sync lane sleeps on its reply
instead of polling (redis-py's ``read_response``, with its own timeout);
without ``_reader``/``_writer`` the async store has no lane and sends its
checks through its redis-py client and pool like every other call; without
``_ready`` every loop is taken as busy (no polling, as on uvloop).

The switch (tests, or a redis-py release that moved one of them): set
``sessionguard.stores.redis.internals.found = internals.NONE`` before the
stores are built, and they use redis-py's public path only.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import socket
from dataclasses import dataclass
from typing import Any

import redis.asyncio.connection
import redis.connection

__all__ = [
    "NONE", "Found", "can_detach_streams", "check", "detach_streams", "found", "others_ready", "sync_socket",
]


@dataclass(frozen=True, slots=True)
class Found:
    """Which of the private attributes this redis-py and this asyncio have."""

    sync_socket: bool
    async_streams: bool
    loop_ready: bool


#: None of them: redis-py's public path only.
NONE = Found(sync_socket=False, async_streams=False, loop_ready=False)


def check() -> Found:
    """Look for each attribute on a fresh, unconnected object of the installed
    redis-py and asyncio (they are set in ``__init__``; nothing connects)."""
    sync_connection = redis.connection.Connection()  # type: ignore[no-untyped-call]
    async_connection = redis.asyncio.connection.Connection()
    loop = asyncio.base_events.BaseEventLoop()
    try:
        ready = getattr(loop, "_ready", None)
    finally:
        loop.close()
    return Found(
        sync_socket=hasattr(sync_connection, "_sock"),
        async_streams=hasattr(async_connection, "_reader") and hasattr(async_connection, "_writer"),
        loop_ready=ready is not None and hasattr(ready, "__len__"),
    )


#: What the installed libraries have (replace it with :data:`NONE` to switch the lanes' use off).
found = check()


def sync_socket(connection: Any) -> socket.socket | None:
    """The socket of redis-py's sync ``connection`` (``None``: not connected, or
    not known here: the caller then reads through redis-py alone)."""
    if not found.sync_socket:
        return None
    sock = getattr(connection, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def can_detach_streams() -> bool:
    """Whether :func:`detach_streams` can work with this redis-py."""
    return found.async_streams


def detach_streams(connection: Any) -> asyncio.StreamWriter | None:
    """Take the stream writer of redis-py's connected asyncio ``connection`` and
    make redis-py forget both streams (so that closing or collecting its
    connection object leaves the transport to the caller). ``None``, with
    nothing changed, when this redis-py keeps them elsewhere."""
    if not found.async_streams:
        return None
    writer = getattr(connection, "_writer", None)
    if not isinstance(writer, asyncio.StreamWriter):
        return None
    connection._reader = connection._writer = None
    return writer


def others_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether callbacks other than the running one wait for a turn of ``loop``
    (asyncio's own loop tells; any other loop, uvloop's say, is taken as busy)."""
    ready = getattr(loop, "_ready", None) if found.loop_ready else None
    return ready is None or len(ready) > 0
