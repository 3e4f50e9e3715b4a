"""The lean lane of the request path: the check script sent as one EVALSHA
encoded in advance, on connections kept for it, with nothing in between.

Why: a check is one round trip, and on a loopback Redis the client's own work
around that round trip (building a command of 27 arguments, taking a pooled
connection and checking it, timeouts, parsing) cost as much as the trip
itself. Here the part of the command shared by every check under the same
state (17 of its arguments: the epoch and the policy) is encoded once
(:class:`Encoder`), the sync store keeps one connection per thread
(:class:`SyncLane`) and the async store one pipelined connection per event
loop (:class:`AsyncLane`), whose replies ``hiredis`` parses. A request polls
for its reply for up to ``STORE_SPIN`` before it sleeps on it (:class:`Spin`):
on loopback the reply comes sooner than a sleeping thread is woken.

What stays redis-py's: every connection is opened by redis-py (address,
Sentinel's master, TLS, AUTH, SELECT; the lanes then use two of its private
attributes, the sync connection's ``_sock`` to poll and the async one's
``_writer`` to take its transport over; asyncio's loop's ``_ready`` tells
whether other callbacks wait), and everything that is not a plain
answer goes back to the store's ordinary path, which retries, loads a missing
script and reports errors: a dropped connection, a ``NOSCRIPT``, any error
reply (a ``READONLY`` from a demoted master also closes the lane's connection).
A read that times out is not retried here: Redis did not answer within the
attempt's share of ``STORE_TIMEOUT``, and the request gets its 503.
A Redis Cluster has no lane (its client routes each key to its node).
"""

from __future__ import annotations

import abc
import asyncio
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis

from .redis_common import Arg, Script

__all__ = ["AsyncLane", "Encoder", "LaneUnavailable", "SyncLane"]


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
    """EVALSHA commands as RESP bytes. The context of a :class:`Script` (the
    same tuple object for as long as the state is unchanged) is encoded once."""

    def __init__(self, shas: dict[str, str]) -> None:
        self._shas = {name: _bulk(b"EVALSHA") + _bulk(sha.encode()) for name, sha in shas.items()}
        self._context: tuple[tuple[Arg, ...], bytes] = ((), b"")
        #: (script, numbers of keys, context and args) -> the command's head
        self._heads: dict[tuple[str, int, int, int], bytes] = {}

    def evalsha(self, request: Script) -> bytes:
        context = self._context
        if context[0] is not request.context:
            context = (request.context, _bulks(request.context))
            self._context = context
        keys, args = request.keys, request.args
        shape = (request.name, len(keys), len(request.context), len(args))
        head = self._heads.get(shape)
        if head is None:
            count = 3 + len(keys) + len(request.context) + len(args)
            head = self._heads[shape] = b"*%d\r\n" % count + self._shas[request.name] + _bulk(len(keys))
        return b"".join((head, _bulks(keys), context[1], _bulks(args)))


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
    sock = getattr(connection, "_sock", None)
    if sock is None:
        return True  # not one we can poll: no verdict against polling
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline = time.perf_counter() + budget
    while not poller.poll(0):
        if time.perf_counter() > deadline:
            return False
    return True


def _new_connection(pool: Any) -> Any:
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
        self._count = 0  # connections open (idle or in use), changed under the lock
        _SYNC_LANES.add(self)

    def call(self, command: bytes) -> Any:
        """The reply to ``command``. Raises redis-py's ``TimeoutError`` when
        Redis does not answer in time, :class:`LaneUnavailable` otherwise."""
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = _new_connection(self._pool())
            self._counted(+1)
        try:
            connection.send_packed_command((command,), check_health=False)
            # polls only while no other thread's check is in flight: they would share the cores
            if self._count - len(self._idle) == 1 and self._spin.on():
                self._spin.after(_await_readable(connection, self._spin.budget))
            reply = connection.read_response()
        except redis.TimeoutError:
            self._discard(connection)
            raise
        except redis.exceptions.NoScriptError as exc:
            self._idle.append(connection)
            raise LaneUnavailable("NOSCRIPT") from exc
        except (redis.RedisError, OSError) as exc:
            self._discard(connection)  # an error reply too: READONLY means a demoted master
            raise LaneUnavailable(type(exc).__name__) from exc
        self._idle.append(connection)
        return reply

    def _counted(self, change: int) -> None:
        with self._count_lock:
            self._count += change

    def _discard(self, connection: Any) -> None:
        connection.disconnect()
        self._counted(-1)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)

    def forget(self) -> None:
        """In a forked child: the parent's connections are not this process's."""
        self._idle = []
        self._count_lock = threading.Lock()
        self._count = 0


def _after_fork() -> None:
    for lane in list(_SYNC_LANES):
        lane.forget()


os.register_at_fork(after_in_child=_after_fork)


# -- async -----------------------------------------------------------------------------


class _Pipeline(abc.ABC):
    """One connection taken over from redis-py after its handshake: requests
    are written as they come, replies matched to them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.open = True

    @abc.abstractmethod
    def send(self, command: bytes) -> None:
        """Write ``command`` (a failure closes the pipeline)."""

    def feed(self, data: bytes) -> None:
        """Replies in ``data`` go to the requests they answer, in order."""
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                future = self.waiting.popleft()
                if not future.done():  # a cancelled or timed-out request still takes its reply
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError):
            self.close()

    def close(self) -> None:
        self.open = False
        self.fail_waiting()

    def fail_waiting(self) -> None:
        """Every request still owed a reply gets :class:`LaneUnavailable` instead."""
        for future in self.waiting:
            if not future.done():
                future.set_exception(LaneUnavailable("the connection closed"))
        self.waiting.clear()


class _SocketPipeline(_Pipeline):
    """The connection's socket itself, no asyncio transport in between: a
    request alone on it reads its reply as soon as it is there (:class:`Spin`)
    without a turn of the event loop; otherwise the loop calls :meth:`readable`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        super().__init__(loop)
        self.sock = sock
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self.readable)

    def send(self, command: bytes) -> None:
        """Write ``command`` whole, or close the connection (Redis is not reading)."""
        try:
            sent = self.sock.send(command)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = -1
        if sent != len(command):
            self.close()  # a partial command is never run: Redis drops it with the connection

    def readable(self) -> bool:
        """Read what has come; whether anything came."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if data:
            self.feed(data)
        else:
            self.close()
        return True

    def spin(self, future: asyncio.Future[Any], budget: float) -> bool:
        """Poll for ``future``'s reply for up to ``budget`` seconds, holding the
        loop; whether it came."""
        deadline = time.perf_counter() + budget
        while not future.done():
            if not self.readable() and time.perf_counter() > deadline:
                return False
        return True

    def close(self) -> None:
        if self.open and not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        super().close()


class _TransportPipeline(_Pipeline, asyncio.Protocol):
    """The connection's asyncio transport, for TLS (whose records only the
    transport can read): replies come with the loop's turns, nothing polls."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        super().__init__(loop)
        # the writer stays referenced: collected, it would close the transport
        self.writer = writer
        self.transport = writer.transport

    def send(self, command: bytes) -> None:
        self.transport.write(command)

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        super().close()

    def close(self) -> None:
        if self.open:
            self.transport.close()
        super().close()


def _others_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether callbacks other than the running one wait for a turn of ``loop``
    (asyncio's own loop tells; any other loop, uvloop's say, is assumed busy)."""
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) > 0


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(redis.TimeoutError("Timeout reading from the lane"))


def _take_over(connection: Any, loop: asyncio.AbstractEventLoop) -> _Pipeline:
    """The pipeline of redis-py's connected ``connection``, which no longer
    uses it: its socket (a duplicate of the descriptor keeps the connection,
    AUTH and SELECT done, open when the transport closes), or its transport
    over TLS and on a loop that cannot watch a socket (Windows' proactor)."""
    writer = getattr(connection, "_writer", None)
    transport = getattr(writer, "transport", None)
    if writer is None or transport is None:
        raise LaneUnavailable("this redis-py keeps its transport elsewhere")
    connection._reader = connection._writer = None
    if transport.get_extra_info("sslcontext") is None:
        raw = transport.get_extra_info("socket")
        try:
            sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
        except OSError:
            pass
        else:
            try:
                socket_pipeline = _SocketPipeline(loop, sock)
            except NotImplementedError:  # no add_reader on this loop
                sock.close()
            else:
                transport.abort()  # closes its own descriptor only
                return socket_pipeline
    pipeline = _TransportPipeline(loop, writer)
    transport.set_protocol(pipeline)
    return pipeline


class AsyncLane:
    """The async check's connection on one event loop: pipelined, so that
    concurrent requests share it without waiting for one another's turn."""

    def __init__(self, pool: Any, timeout: float, spin: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._spin = Spin(spin)
        self._pipeline: _Pipeline | None = None
        self._opening: asyncio.Future[_Pipeline] | None = None

    async def _open(self) -> _Pipeline:
        if self._opening is not None:
            return await asyncio.shield(self._opening)
        loop = asyncio.get_running_loop()
        self._opening = opening = loop.create_future()
        try:
            connection = _new_connection(self._pool)
            await connection.connect()  # redis-py's handshake: AUTH, SELECT, TLS, Sentinel
            pipeline = _take_over(connection, loop)
            self._pipeline = pipeline
            opening.set_result(pipeline)
            # the transport given up closes its socket in a callback of the loop's next
            # turn: take that turn now, or a loop stopped right after this request never
            # runs it (the socket is then left to the GC, with a ResourceWarning)
            await asyncio.sleep(0)
            return pipeline
        except BaseException as exc:
            # a timeout stays one (Redis does not answer: the request gets its 503 now)
            wrap = isinstance(exc, redis.RedisError | OSError) and not isinstance(exc, redis.TimeoutError)
            error = LaneUnavailable(type(exc).__name__) if wrap else exc
            opening.set_exception(error)
            opening.exception()  # retrieved: nobody else may be waiting
            if wrap:
                raise error from exc
            raise
        finally:
            self._opening = None

    async def call(self, command: bytes) -> Any:
        """The reply to ``command`` (an error reply raises :class:`LaneUnavailable`).
        Raises redis-py's ``TimeoutError`` when Redis does not answer in time."""
        pipeline = self._pipeline
        if pipeline is None or not pipeline.open:
            pipeline = await self._open()
        loop = pipeline.loop
        future = loop.create_future()
        pipeline.waiting.append(future)
        pipeline.send(command)
        if isinstance(pipeline, _SocketPipeline) and self._spin.on():
            if _others_ready(loop):
                # one turn of the loop first: requests ready to run send theirs and share the trip
                await asyncio.sleep(0)
            if len(pipeline.waiting) == 1 and not future.done():  # still alone: poll
                self._spin.after(pipeline.spin(future, self._spin.budget))
        if not future.done():
            expiry = loop.call_at(loop.time() + self._timeout, _expire, future)
            try:
                await future
            except redis.TimeoutError:
                pipeline.close()  # the replies still owed would answer later requests
                raise
            finally:
                expiry.cancel()
        reply = future.result()
        if isinstance(reply, hiredis.ReplyError):
            if not str(reply).startswith("NOSCRIPT"):
                pipeline.close()  # READONLY: a demoted master; anything else: start afresh
            raise LaneUnavailable(str(reply).partition(" ")[0])
        return reply

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
