"""The Redis store, asyncio side (ASGI shell): the operations of
:mod:`.operations`, driven with ``await`` over ``redis.asyncio``.

An asyncio connection belongs to the event loop that opened it, and one
process may run several loops (a test client per test, a thread with its own
loop), so the store keeps one client per running loop. A loop's client is
closed while that loop shuts down (``asyncio.run``, anyio and uvicorn all
finalise async generators then), so no connection outlives its loop.

Cancellation: ``redis.asyncio`` disconnects a connection whose command is
cancelled mid-flight (``Connection.read_response`` closes it on any
``BaseException``), so a later call never reads a stale reply.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel

from ...audit import Event
from ...core import Record
from ...errors import StoreUnavailable
from ...inflight import failed
from ...policy import Policy
from ..protocol import ActiveCounts, Binding, Check, Created, NewSession, Page
from .binding import bind_device, redeem_challenge
from .calls import Commands, Op, Read, Request, Script
from .census import read_counts
from .clients import ATTEMPT_SHARE, DEADLINE, AsyncRetry, connect, logger, reruns, within_deadline
from .failover import Address, AsyncSentinel, PrimaryWatch, confirmed, cut_others
from .internals import can_detach_streams, pool_connections
from .lane import Encoder, LaneUnavailable
from .lane_async import AsyncLane

if TYPE_CHECKING:
    from .sync_store import Shared

T = TypeVar("T")

_ASYNC = SimpleNamespace(
    Redis=redis.asyncio.Redis, BlockingConnectionPool=redis.asyncio.BlockingConnectionPool,
    Sentinel=redis.asyncio.sentinel.Sentinel, RedisCluster=redis.asyncio.cluster.RedisCluster,
    ClusterNode=redis.asyncio.cluster.ClusterNode, Retry=AsyncRetry,
)


class _LoopClients:
    """One asyncio client (and, but on a Cluster, one :class:`~.lane_async.AsyncLane`)
    per event loop, closed when its loop shuts down."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._lock = threading.Lock()
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lanes: dict[asyncio.AbstractEventLoop, AsyncLane] = {}
        # the lane takes redis-py's streams over (.internals): without them, no lane
        self._lanes_on = not shared.target.cluster and can_detach_streams()
        self._ns = _ASYNC
        if shared.watch is not None:
            self._ns = SimpleNamespace(**{**vars(_ASYNC), "Sentinel": functools.partial(
                AsyncSentinel, shared.watch)})
            shared.watch.followers.append(self.follow)

    def follow(self, primary: Address) -> None:
        """Cut every loop's connections to another address than ``primary``
        (called on the watch's thread: see :func:`~.failover.cut`)."""
        with self._lock:
            clients, lanes = list(self._clients.values()), list(self._lanes.values())
        for client in clients:
            cut_others(pool_connections(client.connection_pool), primary)
        for lane in lanes:
            lane.sever(primary)

    async def lane(self) -> AsyncLane | None:
        """This loop's lane (``None`` on a Cluster, or without :mod:`.internals`)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None and self._lanes_on:
            client = await self.get()
            lane = AsyncLane(client.connection_pool, self._shared.timeout * ATTEMPT_SHARE, self._shared.spin)
            with self._lock:
                self._lanes[loop] = lane
        return lane

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = connect(self._shared.target, self._shared.timeout, self._ns)
            closer = self._closer(loop, client)
            # Started, the generator is one the loop finalises at shutdown; the
            # strong reference here keeps it alive until then.
            await closer.asend(None)
            with self._lock:
                self._clients[loop], self._closers[loop] = client, closer
        return client

    async def _closer(self, loop: asyncio.AbstractEventLoop, client: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                self._clients.pop(loop, None)
                self._closers.pop(loop, None)
                lane = self._lanes.pop(loop, None)
            if lane is not None:
                lane.close()
                # an asyncio transport closes its socket in a callback of the loop's next
                # turn: give it that turn, or a loop stopped right after close() never
                # runs it (and the socket is left to the GC, with a ResourceWarning)
                await asyncio.sleep(0)
            await client.aclose()
            # a Sentinel client's pool holds the clients of the Sentinels themselves
            manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                await sentinel.aclose()

    async def close(self) -> None:
        """Close this loop's client now, and ask running loops to close theirs."""
        here = asyncio.get_running_loop()
        with self._lock:
            closers = list(self._closers.items())
        for loop, closer in closers:
            if loop is here:
                await closer.aclose()
            elif loop.is_running():
                done = asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(done), self._shared.timeout)
                except TimeoutError:
                    logger.warning("sessionguard: another event loop did not close its Redis client")


class AsyncRedisStore:
    """An :class:`~sessionguard.stores.protocol.AsyncStore` on Redis: the asyncio twin
    of :class:`~.redis.RedisStore`. Build it with
    :func:`~.redis.open_redis_stores`."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._ops = shared.ops
        self._encoder = Encoder(shared.caller.library.names)
        self._clients = _LoopClients(shared)

    async def _run(self, op: Op[T]) -> T:
        """Drive ``op``: send what it yields, give it the replies."""
        self._shared.start()
        reply: Any = None
        error: StoreUnavailable | None = None
        # one deadline for the whole call: its lane, fallback and retries (clients.DEADLINE)
        deadline = DEADLINE.set(time.monotonic() + self._shared.timeout)
        try:
            while True:
                try:
                    request = op.send(reply) if error is None else op.throw(error)
                except StopIteration as done:
                    result: T = done.value
                    return result
                reply, error = None, None
                try:
                    reply = await self._execute(request)
                except StoreUnavailable as exc:
                    error = exc
        except StoreUnavailable:
            failed()  # the request in progress answers the 503, not the framework's 500
            raise
        finally:
            DEADLINE.reset(deadline)

    async def _execute(self, request: Request) -> Any:
        if not isinstance(request, Commands) and request.hot:
            try:
                lane = await self._clients.lane()
                if lane is not None:
                    packed = (self._encoder.mget(request.keys) if isinstance(request, Read)
                              else self._encoder.fcall(request))
                    reply = await lane.call(packed)
                    self._shared.health.answered()
                    return reply
            except LaneUnavailable:
                pass  # the ordinary path below retries, loads the library, reports errors
            except redis.TimeoutError as exc:
                raise self._shared.health.failed(exc) from exc
        with self._shared.health.translated(), reruns(request.rerun):
            return await within_deadline(self._send(request))

    async def _send(self, request: Request) -> Any:
        """``request`` through redis-py's client: its pool, retries and library loading."""
        client = await self._clients.get()
        if isinstance(request, Script):
            watch = self._shared.watch
            if watch is not None and request.durable and watch.replicated:
                return await self._replicated(client, request, watch)
            return await self._shared.caller.acall(client, request)
        if isinstance(request, Read):
            return await client.execute_command("MGET", *request.keys)
        if len(request.commands) == 1:
            return [await client.execute_command(*request.commands[0])]
        pipe = client.pipeline(transaction=False)
        for command in request.commands:
            pipe.execute_command(*command)
        return await pipe.execute()

    async def _replicated(self, client: Any, request: Script, watch: PrimaryWatch) -> Any:
        """``request`` and ``WAIT 1`` on one connection (:mod:`.failover`)."""
        wait = self._shared.wait_ms
        return confirmed(await self._shared.caller.acall_waiting(client, request, wait), wait, watch)

    @property
    def subscribed(self) -> bool:
        """Whether the state subscription is up: policy and epoch then come from
        the process's cache, and a check costs exactly one round trip (none on a
        ``LOCAL_CACHE`` hit)."""
        return self._ops.cache.trusted

    async def now(self) -> int:
        return await self._run(self._ops.now())

    async def policy(self) -> Policy:
        return await self._run(self._ops.policy())

    async def set_policy(self, policy: Policy) -> None:
        await self._run(self._ops.set_policy(policy))

    async def slot_tag(self, user_id: str) -> str:
        return await self._run(self._ops.slot_tag(user_id))

    def cached_check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check | None:
        return self._ops.cached(session_id, passive, unbound_token)

    async def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
        hit = self._ops.cached(session_id, passive, unbound_token)  # LOCAL_CACHE: no round trip
        if hit is not None:
            return hit
        return await self._run(self._ops.check(session_id, passive, unbound_token))

    async def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding:
        return await self._run(bind_device(self._ops, session_id, key, challenge, issued))

    async def redeem(self, session_id: str, challenge: str, issued: int) -> Binding:
        return await self._run(redeem_challenge(self._ops, session_id, challenge, issued))

    async def create(self, new: NewSession, *, ending: str | None = None) -> Created:
        return await self._run(self._ops.users.create(new, ending))

    async def end(self, session_id: str, reason: str, *, user_id: str | None = None) -> Record | None:
        return await self._run(self._ops.end(session_id, reason, user_id))

    async def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]:
        return await self._run(self._ops.users.end_user(user_id, reason, platform, keep))

    async def end_all(self, *, keep: str | None = None) -> None:
        await self._run(self._ops.end_all(keep))

    async def user_sessions(self, user_id: str) -> list[Record]:
        return await self._run(self._ops.users.user_sessions(user_id))

    async def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page:
        return await self._run(self._ops.list_sessions(user_id, platform, limit, cursor, status))

    async def sweep(self) -> int:
        return await self._run(self._ops.endings.sweep())

    async def user_timeouts(self, user_id: str) -> dict[str, int | None]:
        return await self._run(self._ops.users.user_timeouts(user_id))

    async def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None:
        await self._run(self._ops.users.set_user_timeouts(user_id, timeouts))

    async def rotate(self, session_id: str, new_id: str) -> Check:
        return await self._run(self._ops.users.rotate(session_id, new_id))

    async def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]:
        return await self._run(self._ops.users.set_roles(user_id, roles))

    async def active_counts(self) -> ActiveCounts | None:
        counts, due = await self._run(read_counts(self._ops))
        if due:
            self._shared.recount()  # a thread with the sync client: see RedisStore.recount
        return counts

    async def append_events(self, events: Sequence[Event]) -> None:
        await self._run(self._ops.append_events(events))

    async def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        await self._run(self._ops.append_self_service(user_id, events))

    async def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page:
        return await self._run(self._ops.events(user_id, limit, cursor))

    async def close(self) -> None:
        """Write back the uses still owed, stop the subscriber, release this store's
        connections."""
        try:
            await self._run(self._ops.write_due(everything=True))
        except StoreUnavailable:
            logger.warning("sessionguard: last uses of sessions not written back (store unavailable)")
        self._shared.stop()
        await self._clients.close()
