"""The async store's lane: one pipelined connection per event loop, taken
over from redis-py after its handshake (the reasons, and what stays
redis-py's: :mod:`sessionguard.stores.redis.lane`)."""

from __future__ import annotations

import abc
import asyncio
import os
import socket
import time
from collections import deque
from typing import Any

import hiredis
import redis

from .failover import cut
from .functions import function_missing
from .internals import detach_streams, others_ready
from .lane import LaneUnavailable, Spin, new_connection

__all__ = ["AsyncLane"]


class _Pipeline(abc.ABC):
    """One connection taken over from redis-py after its handshake: requests
    are written as they come, replies matched to them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.open = True
        self.address: tuple[str, int] | None = None  # the server's, as redis-py connected to it

    @abc.abstractmethod
    def socket(self) -> Any:
        """The connection's socket (for :func:`~.failover.cut`, from any thread)."""

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

    def socket(self) -> Any:
        return self.sock

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
            if not self.readable():
                if time.perf_counter() > deadline:
                    return False
                os.sched_yield()  # as lane._await_readable: Redis may share this core
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

    def socket(self) -> Any:
        return self.transport.get_extra_info("socket")

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


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(redis.TimeoutError("Timeout reading from the lane"))


def _take_over(writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> _Pipeline:
    """The pipeline of the stream ``writer`` taken from redis-py's connected
    connection (:func:`.internals.detach_streams`): its socket (a duplicate of
    the descriptor keeps the connection, AUTH and SELECT done, open when the
    transport closes), or its transport over TLS and on a loop that cannot
    watch a socket (Windows' proactor)."""
    transport = writer.transport
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
            connection = new_connection(self._pool)
            await connection.connect()  # redis-py's handshake: AUTH, SELECT, TLS, Sentinel
            writer = detach_streams(connection)
            if writer is None:  # not leaked: the lane is off then (AsyncLane.possible)
                await connection.disconnect()
                raise LaneUnavailable("this redis-py keeps its streams elsewhere")
            pipeline = _take_over(writer, loop)
            pipeline.address = (connection.host, connection.port)
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
            if others_ready(loop):
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
            if not function_missing(str(reply)):  # the ordinary path loads the library
                pipeline.close()  # READONLY: a demoted master; anything else: start afresh
            raise LaneUnavailable(str(reply).partition(" ")[0])
        return reply

    def sever(self, primary: tuple[str, int]) -> None:
        """Cut the connection if it is to another address than ``primary``
        (Sentinel; from any thread): its loop then closes the pipeline and the
        requests on it go to the store's ordinary path (:mod:`.failover`)."""
        pipeline = self._pipeline
        if pipeline is not None and pipeline.address != primary:
            cut(pipeline.socket())

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
