"""Every private attribute of redis-py and asyncio that the store relies on,
named here and nowhere else, checked once at import, and read through the
accessors below.

Why any at all: the request path's lanes (:mod:`.lane`, :mod:`.lane_async`)
halve the client's own cost of a check on a loopback Redis, and they and the
following of a Sentinel failover (:mod:`.failover`) need four things that
neither library offers publicly:

- :attr:`Found.sync_socket`: redis-py's sync ``Connection._sock``, the socket
  the sync lane polls for its reply for up to ``STORE_SPIN``;
- :attr:`Found.async_streams`: redis-py's asyncio ``Connection._reader`` and
  ``._writer``, the streams the async lane takes over once redis-py has done the
  handshake (AUTH, SELECT, TLS, Sentinel's master);
- :attr:`Found.loop_ready`: asyncio's ``BaseEventLoop._ready``, the callbacks
  waiting for a turn of the loop (a request alone polls; one with company
  yields first, so the others send theirs and share the trip);
- :attr:`Found.pool_connections`: redis-py's ``ConnectionPool._available_connections``
  and ``._in_use_connections``, the connections a failover cuts when they are
  not to the new primary (with ``_sock`` and ``_writer`` for their sockets).

Missing, each one falls back to redis-py's public path, never to a hang nor to
a leaked connection: without ``_sock`` the sync lane sleeps on its reply
instead of polling (redis-py's ``read_response``, with its own timeout);
without ``_reader``/``_writer`` the async store has no lane and sends its
checks through its redis-py client and pool like every other call; without
``_ready`` every loop is taken as busy (no polling, as on uvloop); without the
pool's lists (or the sockets) a failover cuts nothing, and a connection to the
old primary is dropped when that server refuses it (``READONLY``) or closes it,
then reconnects to the new one (the sync connections ask for the primary at
every connect they cannot tell is not needed).

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
    "NONE", "Found", "can_detach_streams", "check", "connection_socket", "detach_streams", "found",
    "others_ready", "pool_connections", "sync_socket",
]


@dataclass(frozen=True, slots=True)
class Found:
    """Which of the private attributes this redis-py and this asyncio have."""

    sync_socket: bool
    async_streams: bool
    loop_ready: bool
    pool_connections: bool


#: None of them: redis-py's public path only.
NONE = Found(sync_socket=False, async_streams=False, loop_ready=False, pool_connections=False)


def check() -> Found:
    """Look for each attribute on a fresh, unconnected object of the installed
    redis-py and asyncio (they are set in ``__init__``; nothing connects)."""
    sync_connection = redis.connection.Connection()  # type: ignore[no-untyped-call]
    async_connection = redis.asyncio.connection.Connection()
    pools = (redis.connection.ConnectionPool(), redis.asyncio.connection.ConnectionPool())
    loop = asyncio.base_events.BaseEventLoop()
    try:
        ready = getattr(loop, "_ready", None)
    finally:
        loop.close()
    return Found(
        sync_socket=hasattr(sync_connection, "_sock"),
        async_streams=hasattr(async_connection, "_reader") and hasattr(async_connection, "_writer"),
        loop_ready=ready is not None and hasattr(ready, "__len__"),
        pool_connections=all(hasattr(pool, name) for pool in pools
                             for name in ("_available_connections", "_in_use_connections")),
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


def connection_socket(connection: Any) -> Any:
    """The socket of a redis-py connection, sync (``_sock``) or asyncio (its
    ``_writer``'s transport's), for a failover to shut down from any thread;
    ``None`` when it is not connected or not known here."""
    sock = sync_socket(connection)
    if sock is not None or not found.async_streams:
        return sock
    transport = getattr(getattr(connection, "_writer", None), "transport", None)
    return None if transport is None else transport.get_extra_info("socket")


def pool_connections(pool: Any) -> list[Any]:
    """The connections of a redis-py pool, idle and in use (copied whole: a
    builtin ``list``/``set`` copy is atomic, as the pool's thread or loop may
    change them meanwhile); none when this redis-py keeps them elsewhere."""
    if not found.pool_connections:
        return []
    idle, in_use = getattr(pool, "_available_connections", ()), getattr(pool, "_in_use_connections", ())
    return [*tuple(idle), *tuple(in_use)]
