"""The lean lane of the request path: the check sent as one ``MGET`` (or, on
its rare path, one ``FCALL``) encoded with little work, on connections kept for it, with nothing in between.

Why: a check is one round trip, and on a loopback Redis the client's own work
around that round trip (building a command, taking a pooled connection and
checking it, timeouts, parsing) cost as much as the trip itself. Here the
command's head is encoded once per shape (:class:`Encoder`; the policy and
epoch travel as one argument, the same string object while the state is the
same), the sync store keeps one connection per thread
(:class:`SyncLane`) and the async store one pipelined connection per event
loop (:class:`~sessionguard.stores.redis.lane_async.AsyncLane`), whose
replies ``hiredis`` parses. A request polls for its reply for up to
``STORE_SPIN`` before it sleeps on it (:class:`Spin`):
on loopback the reply comes sooner than a sleeping thread is woken.

What stays redis-py's: every connection is opened by redis-py (address,
Sentinel's master, TLS, AUTH, SELECT; the few private attributes the lanes
then use, and what happens without them, are in :mod:`.internals`), and
everything that is not a plain
answer goes back to the store's ordinary path, which retries, loads a missing
library and reports errors: a dropped connection, a "Function not found" (a
server that lost the library: restarted, flushed, or a new Cluster node), any
error reply (a ``READONLY`` from a demoted master also closes the lane's
connection).
A read that times out is not retried here: Redis did not answer within the
attempt's share of ``STORE_TIMEOUT``, and the request gets its 503.
A Redis Cluster has no lane (its client routes each key to its node).
"""

from __future__ import annotations

import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

import redis

from .calls import Arg, Script
from .failover import cut_others
from .functions import function_missing
from .internals import sync_socket
from .reads import MAX_READS

__all__ = ["Encoder", "LaneUnavailable", "Spin", "SyncLane"]


class LaneUnavailable(Exception):
    """The lane could not give an answer; the store's ordinary path will."""


def _bulk(value: Arg) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _bulks(values: tuple[Arg, ...]) -> bytes:
    """``values`` as RESP bulk strings. When every value is an ASCII ``str`` (as
    a check's keys and arguments are), a character is a byte: formatted as text
    and encoded once, a quarter of the cost of one :func:`_bulk` call each."""
    try:
        joined: str | None = "".join(values)  # type: ignore[arg-type]
    except TypeError:  # not all str
        joined = None
    if joined is None or not joined.isascii():
        return b"".join(map(_bulk, values))
    texts = cast("tuple[str, ...]", values)
    return "".join([f"${len(v)}\r\n{v}\r\n" for v in texts]).encode()


class Encoder:
    """``FCALL`` (and the check's ``MGET``) commands as RESP bytes, the part shared by every call of one
    function with the same numbers of keys and arguments encoded once."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = {name: _bulk(b"FCALL") + _bulk(function.encode()) for name, function in names.items()}
        #: (function, number of keys, number of args) -> the command's head
        self._heads: dict[tuple[str, int, int], bytes] = {}
        #: the check's MGET of each session's keys (the same tuple every time: .reads)
        self._mgets: dict[tuple[str, ...], bytes] = {}

    def fcall(self, request: Script) -> bytes:
        keys, args = request.keys, request.args
        shape = (request.name, len(keys), len(args))
        head = self._heads.get(shape)
        if head is None:
            count = 3 + len(keys) + len(args)
            head = self._heads[shape] = b"*%d\r\n" % count + self._names[request.name] + _bulk(len(keys))
        return b"".join((head, _bulks(keys), _bulks(args)))

    def mget(self, keys: tuple[str, ...]) -> bytes:
        """``MGET`` of ``keys`` (the request path's read, :class:`.calls.Read`),
        encoded once per session (bounded as :data:`.reads.MAX_READS`)."""
        packed = self._mgets.get(keys)
        if packed is None:
            if len(self._mgets) >= MAX_READS:
                self._mgets.clear()
            packed = self._mgets[keys] = b"*%d\r\n$4\r\nMGET\r\n" % (1 + len(keys)) + _bulks(keys)
        return packed


class Spin:
    """When to wait for a reply by polling instead of sleeping.

    Why: on a loopback Redis the reply to a check comes back in tens of
    microseconds, but a thread (or event loop) that sleeps until its socket is
    readable is woken up tens of microseconds later still. Polling for up to
    ``budget`` seconds trades that much CPU for the wake-up. A Redis that does
    not answer within the budget (a remote one, a busy one) is not polled for:
    after :data:`MISSES` polls in a row that ran out, the next :data:`REST`
    calls sleep as before, then polling is tried again.
    """

    MISSES = 4
    REST = 1000

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._misses = 0
        self._rest = 0 if budget > 0 else -1

    def on(self) -> bool:
        if self._rest == 0:
            return True
        if self._rest > 0:
            self._rest -= 1
        return False

    def after(self, answered: bool) -> None:
        if answered:
            self._misses = 0
        else:
            self._misses += 1
            if self._misses >= self.MISSES:
                self._misses, self._rest = 0, self.REST


def _await_readable(connection: Any, budget: float) -> bool:
    """Whether ``connection``'s socket became readable within ``budget``, polled."""
    sock = sync_socket(connection)
    if sock is None:
        return True  # not one we can poll: no verdict against polling
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline = time.perf_counter() + budget
    while not poller.poll(0):
        if time.perf_counter() > deadline:
            return False
        # Redis may share this core: give it the core rather than spin against it
        # (a no-op syscall when nothing else waits to run here)
        os.sched_yield()
    return True


def new_connection(pool: Any) -> Any:
    """A connection of ``pool``'s kind and settings, outside its accounting."""
    return pool.connection_class(**pool.connection_kwargs)


# -- sync ------------------------------------------------------------------------------

_SYNC_LANES: weakref.WeakSet[SyncLane] = weakref.WeakSet()


class SyncLane:
    """Connections for the sync check: one in use per thread at a time, kept
    in a free list (``list.pop`` and ``append`` need no lock)."""

    def __init__(self, pool: Callable[[], Any], spin: float) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._spin = Spin(spin)
        self._count_lock = threading.Lock()
        self._open: set[Any] = set()  # connections open (idle or in use), changed under the lock
        _SYNC_LANES.add(self)

    def call(self, command: bytes) -> Any:
        """The reply to ``command``. Raises redis-py's ``TimeoutError`` when
        Redis does not answer in time, :class:`LaneUnavailable` otherwise."""
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._opened()
        try:
            connection.send_packed_command((command,), check_health=False)
            # polls only while no other thread's check is in flight: they would share the cores
            if len(self._open) - len(self._idle) == 1 and self._spin.on():
                self._spin.after(_await_readable(connection, self._spin.budget))
            reply = connection.read_response()
        except redis.TimeoutError:
            self._discard(connection)
            raise
        except redis.ResponseError as exc:
            if function_missing(str(exc)):  # the connection is fine: the ordinary path loads the library
                self._idle.append(connection)
            else:
                self._discard(connection)  # READONLY means a demoted master
            raise LaneUnavailable(type(exc).__name__) from exc
        except (redis.RedisError, OSError) as exc:
            self._discard(connection)  # an error reply too: READONLY means a demoted master
            raise LaneUnavailable(type(exc).__name__) from exc
        self._idle.append(connection)
        return reply

    def _opened(self) -> Any:
        """A new connection, connected by redis-py's ``connect()``: the one that
        asks Sentinel for the primary (a first send would connect to the
        connection's default address, ``localhost:6379``, instead)."""
        connection = new_connection(self._pool())
        with self._count_lock:
            self._open.add(connection)
        try:
            connection.connect()
        except redis.TimeoutError:
            self._discard(connection)
            raise
        except (redis.RedisError, OSError) as exc:
            self._discard(connection)
            raise LaneUnavailable(type(exc).__name__) from exc
        return connection

    def _discard(self, connection: Any) -> None:
        connection.disconnect()
        with self._count_lock:
            self._open.discard(connection)

    def sever(self, primary: tuple[str, int]) -> None:
        """Cut the connections to another address than ``primary`` (Sentinel;
        from any thread): each is dropped at its next use (:mod:`.failover`)."""
        with self._count_lock:
            connections = list(self._open)
        cut_others(connections, primary)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)

    def forget(self) -> None:
        """In a forked child: the parent's connections are not this process's."""
        self._idle = []
        self._count_lock = threading.Lock()
        self._open = set()


def _after_fork() -> None:
    for lane in list(_SYNC_LANES):
        lane.forget()


os.register_at_fork(after_in_child=_after_fork)

