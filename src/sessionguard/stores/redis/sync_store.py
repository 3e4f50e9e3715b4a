"""The Redis store, synchronous side (WSGI shell, CLI), and the factory of both
Redis stores (``redis://``, ``rediss://``, ``redis+sentinel://``,
``redis+cluster://``).

The store only drives the I/O-free operations of :mod:`.operations`;
:class:`~.async_store.AsyncRedisStore` drives the same ones with ``await``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

import redis
import redis.cluster
import redis.sentinel

from ...audit import Event
from ...core import Record
from ...errors import StoreUnavailable
from ...inflight import failed
from ...policy import Policy
from ..protocol import ActiveCounts, Binding, Check, Created, NewSession, Page
from .binding import bind_device, redeem_challenge
from .calls import Commands, Op, Read, Request, Script
from .census import count_active, read_counts
from .clients import DEADLINE, Health, Retry, connect, logger, reruns
from .failover import Address, PrimaryWatch, SyncSentinel, confirmed, cut_others, wait_ms
from .functions import Caller
from .internals import pool_connections
from .lane import Encoder, LaneUnavailable, SyncLane
from .operations import Operations
from .scripts import library
from .state import Subscriber
from .urls import Target

T = TypeVar("T")

_SYNC = SimpleNamespace(
    Redis=redis.Redis, BlockingConnectionPool=redis.BlockingConnectionPool, Sentinel=redis.sentinel.Sentinel,
    RedisCluster=redis.cluster.RedisCluster, ClusterNode=redis.cluster.ClusterNode, Retry=Retry,
)


class Shared:
    """What a process's sync and async Redis store share: the target, the
    operations (with the cached state), the health log, the subscriber and,
    on Sentinel, the watch of the primary (:mod:`.failover`)."""

    def __init__(self, target: Target, timeout: float, ops: Operations, spin: float) -> None:
        self.target = target
        self.timeout = timeout
        self.spin = spin  # STORE_SPIN: how long a lane polls for a reply (lane.Spin)
        self.ops = ops
        self.caller = Caller(library())
        self.health = Health(self.caller.library)
        self.subscriber = Subscriber(self.sync_client, ops.keys, ops.cache)
        #: on Sentinel: the primary, followed; writes in ``DURABLE`` wait up to this long for a replica
        self.watch: PrimaryWatch | None = None
        self.wait_ms = 0
        if target.kind == "sentinel":
            self.watch = PrimaryWatch(target, timeout)
            self.wait_ms = wait_ms(timeout)
            self.health.on_failure = self.watch.suspect
            self.watch.followers.append(self._follow)
        #: starts a count of the active sessions in the background (the sync store's
        #: :meth:`RedisStore.recount`, which both stores ask)
        self.recount: Callable[[], None] = lambda: None
        self._client: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the background threads (at a store's first use; every call
        after the first returns at once)."""
        self.subscriber.start()
        if self.watch is not None:
            self.watch.start()

    def stop(self) -> None:
        self.subscriber.stop()
        if self.watch is not None:
            self.watch.stop()

    def sync_client(self) -> Any:
        """The sync client (created, not connected, on first call)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    ns = _SYNC
                    if self.watch is not None:
                        ns = SimpleNamespace(**{**vars(_SYNC), "Sentinel": functools.partial(
                            SyncSentinel, self.watch)})
                    self._client = connect(self.target, self.timeout, ns)
        return self._client

    def _follow(self, primary: Address) -> None:
        client = self._client
        if client is not None:
            cut_others(pool_connections(client.connection_pool), primary)

    def close_sync_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
            # a Sentinel client's pool holds the clients of the Sentinels themselves
            manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                sentinel.close()


class RedisStore:
    """A :class:`~sessionguard.stores.protocol.Store` on Redis: one read (one
    round trip) per authenticated request. Build it with :func:`open_redis_stores`."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._ops = shared.ops
        self._encoder = Encoder(shared.caller.library.names)
        self._lane = None if shared.target.cluster else SyncLane(
            lambda: shared.sync_client().connection_pool, shared.spin)
        if shared.watch is not None and self._lane is not None:
            shared.watch.followers.append(self._lane.sever)

    def _run(self, op: Op[T]) -> T:
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
                    reply = self._execute(request)
                except StoreUnavailable as exc:
                    error = exc
        except StoreUnavailable:
            failed()  # the request in progress answers the 503, not the framework's 500
            raise
        finally:
            DEADLINE.reset(deadline)

    def _execute(self, request: Request) -> Any:
        if self._lane is not None and not isinstance(request, Commands) and request.hot:
            encoder = self._encoder
            packed = encoder.mget(request.keys) if isinstance(request, Read) else encoder.fcall(request)
            try:
                reply = self._lane.call(packed)
            except LaneUnavailable:
                # the ordinary path below retries (within the call's deadline), loads the
                # library, reports errors; the lane fails over only on an answer ("Function
                # not found", an error reply) or a dropped connection: a silent Redis is a
                # TimeoutError here
                pass
            except redis.TimeoutError as exc:
                raise self._shared.health.failed(exc) from exc
            else:
                self._shared.health.answered()
                return reply
        with self._shared.health.translated(), reruns(request.rerun):
            client = self._shared.sync_client()  # a Cluster client connects when built
            if isinstance(request, Script):
                watch = self._shared.watch
                if watch is not None and request.durable and watch.replicated:
                    return self._replicated(client, request, watch)
                return self._shared.caller.call(client, request)
            if isinstance(request, Read):
                return client.execute_command("MGET", *request.keys)
            if len(request.commands) == 1:
                return [client.execute_command(*request.commands[0])]
            pipe = client.pipeline(transaction=False)
            for command in request.commands:
                pipe.execute_command(*command)
            return pipe.execute()

    def _replicated(self, client: Any, request: Script, watch: PrimaryWatch) -> Any:
        """``request`` and ``WAIT 1`` on one connection (:mod:`.failover`)."""
        wait = self._shared.wait_ms
        return confirmed(self._shared.caller.call_waiting(client, request, wait), wait, watch)

    @property
    def subscribed(self) -> bool:
        """Whether the state subscription is up: policy and epoch then come from
        the process's cache, and a check costs exactly one round trip (none on a
        ``LOCAL_CACHE`` hit)."""
        return self._ops.cache.trusted

    def now(self) -> int:
        return self._run(self._ops.now())

    def policy(self) -> Policy:
        return self._run(self._ops.policy())

    def set_policy(self, policy: Policy) -> None:
        self._run(self._ops.set_policy(policy))

    def slot_tag(self, user_id: str) -> str:
        return self._run(self._ops.slot_tag(user_id))

    def reread_state(self) -> None:
        """Read the shared state into the process's cache: the subscriber's re-read.
        A failure is the subscriber's to retry (it raises the Redis error), not a
        request's to log."""
        op = self._ops.reread_state()
        request = next(op)
        with contextlib.suppress(StopIteration):
            while True:  # the state function, and once a process the limits it applies recorded
                assert isinstance(request, Script)
                request = op.send(self._shared.caller.call(self._shared.sync_client(), request))

    def cached_check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check | None:
        return self._ops.cached(session_id, passive, unbound_token)

    def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
        hit = self._ops.cached(session_id, passive, unbound_token)  # LOCAL_CACHE: no round trip
        if hit is not None:
            return hit
        return self._run(self._ops.check(session_id, passive, unbound_token))

    def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding:
        return self._run(bind_device(self._ops, session_id, key, challenge, issued))

    def redeem(self, session_id: str, challenge: str, issued: int) -> Binding:
        return self._run(redeem_challenge(self._ops, session_id, challenge, issued))

    def create(self, new: NewSession, *, ending: str | None = None) -> Created:
        return self._run(self._ops.users.create(new, ending))

    def end(self, session_id: str, reason: str, *, user_id: str | None = None) -> Record | None:
        return self._run(self._ops.end(session_id, reason, user_id))

    def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]:
        return self._run(self._ops.users.end_user(user_id, reason, platform, keep))

    def end_all(self, *, keep: str | None = None) -> None:
        self._run(self._ops.end_all(keep))

    def user_sessions(self, user_id: str) -> list[Record]:
        return self._run(self._ops.users.user_sessions(user_id))

    def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page:
        return self._run(self._ops.list_sessions(user_id, platform, limit, cursor, status))

    def sweep(self) -> int:
        return self._run(self._ops.endings.sweep())

    def on_swept(self, callback: Callable[[Sequence[Event]], None]) -> None:
        self._ops.on_swept = callback

    def user_timeouts(self, user_id: str) -> dict[str, int | None]:
        return self._run(self._ops.users.user_timeouts(user_id))

    def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None:
        self._run(self._ops.users.set_user_timeouts(user_id, timeouts))

    def rotate(self, session_id: str, new_id: str) -> Check:
        return self._run(self._ops.users.rotate(session_id, new_id))

    def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]:
        return self._run(self._ops.users.set_roles(user_id, roles))

    def active_counts(self) -> ActiveCounts | None:
        counts, due = self._run(read_counts(self._ops))
        if due:
            self._shared.recount()
        return counts

    def recount(self) -> None:
        """Count the active sessions anew (:func:`.census.count_active`) in a thread of
        its own: a count reads every session, never on a caller's time."""
        threading.Thread(target=self._count, name="sessionguard-census", daemon=True).start()

    def _count(self) -> None:
        try:
            self._run(count_active(self._ops))
        except StoreUnavailable:
            logger.warning("sessionguard: the count of active sessions failed (store unavailable)")

    def append_events(self, events: Sequence[Event]) -> None:
        self._run(self._ops.append_events(events))

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        self._run(self._ops.append_self_service(user_id, events))

    def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page:
        return self._run(self._ops.events(user_id, limit, cursor))

    def write_due(self, *, everything: bool = False) -> int:
        """Write back the uses that are owed (see :mod:`..write_behind`); the subscriber
        calls this about four times a second. Never raises: a use that could not
        be written is lost (its session may then idle out up to one touch interval
        early), and the outage is logged once."""
        try:
            return self._run(self._ops.write_due(everything))
        except StoreUnavailable:
            return 0

    def tick(self) -> None:
        """The subscriber's housekeeping, about four times a second: write back the
        uses that are owed (:meth:`write_due`), measure the store's clock once a
        second (:meth:`.server_clock.ServerClock.measure`), take a step of the listing
        index's sweep (:func:`.listing.sweep_step`) and one of the sweep of endings
        (:meth:`.endings.Endings.step`; on the server's clock only: a test's injected
        clock sweeps when told). Never raises."""
        self.write_due()
        try:
            self._run(self._ops.server_clock.measure(time.monotonic()))
            self._run(self._ops.sweep.step(time.monotonic()))
            if self._ops.clock is None:
                self._run(self._ops.endings.step())
        except StoreUnavailable:
            pass  # the next tick goes on from the same place

    def close(self) -> None:
        """Write back the uses still owed, stop the subscriber, release the connections."""
        self.write_due(everything=True)
        self._shared.stop()
        if self._lane is not None:
            self._lane.close()
        self._shared.close_sync_client()
