"""Following a Sentinel failover (``redis+sentinel://``), and confirming on a
replica the writes a caller is told about.

Why: redis-py asks Sentinel for the primary only when it opens a connection,
so after a planned ``SENTINEL FAILOVER`` the connections already open (the
lanes, the pools' idle ones, the state subscription) stay on the old primary,
which keeps answering as a primary until Sentinel demotes it about ten seconds
later and it resyncs (dropping what it took in meanwhile): sign-outs answered
``200`` and undone, logins lost, another process's revocation honoured late.

What is done here:

- :class:`PrimaryWatch`, a daemon thread per process, knows the primary: it
  listens for ``+switch-master`` on one sentinel and asks every sentinel
  (``SENTINEL MASTER``) every :data:`POLL_SECONDS`, at once after
  that message, and within :data:`RECHECK_SECONDS` after a store saw an error
  (``READONLY``, ``-MASTERDOWN``, ``NOREPLICAS``, a lost connection, a
  timeout). Sentinels may disagree for a moment after a failover; the answer
  with the highest ``config-epoch`` wins. Every connection (re)opens to the
  primary it knows (:class:`SyncConnection`, :class:`AsyncConnection`), and
  after every look it cuts each open connection to another address (pools,
  lanes, the subscription; sync and async): a request on one is retried by its
  store on a connection to the primary, within ``STORE_TIMEOUT``.
- A write the caller is told about (a login, a sign-out, a revocation, a new
  token, new roles, a sign-out of everyone, a policy or timeout change:
  ``Script.durable``) is sent with ``WAIT 1`` on the same connection, in the same round trip. When
  no replica confirms it within :func:`wait_ms`, the store reports itself
  unavailable (``503``): the change may be on a primary that is no longer
  one (the old primary of a failover has no replica left) or on one whose loss
  would lose it, and a ``200`` must mean it survives a failover. The cost: a
  replica's acknowledgement (well under a millisecond on a LAN), and no
  confirmed logins or sign-outs while the primary's replicas are all away
  (docs/deployment.md). When the sentinels know of no replica at all, nothing
  waits: no failover can happen then.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...errors import StoreUnavailable
from .background import Background
from .clients import ATTEMPT_SHARE, ERRORS
from .internals import connection_socket, sync_socket
from .urls import Target

logger = logging.getLogger("sessionguard")

#: Ask the sentinels at least this often (what bounds the lag when the
#: ``+switch-master`` message is lost: a subscription that died silently).
POLL_SECONDS = 0.5
#: After a store's error, ask them again within this much (and not more often).
RECHECK_SECONDS = 0.1
#: The channel on which each sentinel announces a new primary.
SWITCH = "+switch-master"

Address = tuple[str, int]


def wait_ms(timeout: float) -> int:
    """How long ``WAIT`` waits for a replica: half an attempt's share of
    ``STORE_TIMEOUT`` (the script and the wait share one read), at least 1 ms
    (``WAIT`` with 0 would wait for ever)."""
    return max(1, int(timeout * ATTEMPT_SHARE * 500))


def confirmed(replies: list[Any], waited_ms: int, watch: PrimaryWatch) -> Any:
    """The script's reply from the replies to ``[EVALSHA, WAIT]``. Raises the
    script's error, or :class:`StoreUnavailable` when no replica has the write
    while the sentinels know of one (asked after the wait, since their first
    answer may come during it)."""
    reply, replicas = replies
    for error in (reply, replicas):
        if isinstance(error, Exception):
            raise error
    if int(replicas) < 1 and watch.replicated:
        raise watch.unconfirmed(waited_ms)
    watch.confirmed()
    return reply


class PrimaryWatch(Background):
    """The primary of a Sentinel service, kept current by a daemon thread
    (started at a store's first use, like the state subscriber).

    Its ``followers`` are called on that thread after every look at the
    sentinels, with the primary's address; each cuts the connections it holds
    to any other address (:func:`cut_others`), and must not raise.
    """

    THREAD_NAME = "sessionguard-sentinel"

    def __init__(self, target: Target, timeout: float) -> None:
        self.service = target.service
        self._hosts = target.hosts
        self._timeout = timeout
        self.address: Address | None = None
        self._epoch = -1
        self._replicas: int | None = None  # the primary's, as Sentinel knows them
        self._unconfirmed = False  # writes are going unconfirmed (logged once, until one is)
        self.followers: list[Callable[[Address], None]] = []
        self._init_thread()
        self._wake = threading.Event()
        self._clients: list[redis.Redis] = []

    def _forked(self) -> None:
        super()._forked()
        self._wake = threading.Event()

    @property
    def replicated(self) -> bool:
        """Whether the primary has replicas (up or down) by the sentinels' last
        answer, or none has come yet: writes then wait for one. Without any, no
        failover can happen, and there is nothing to wait for."""
        return self._replicas != 0

    def suspect(self) -> None:
        """A store met an error: the primary may have moved, look again soon."""
        self._wake.set()

    def unconfirmed(self, waited_ms: int) -> StoreUnavailable:
        """No replica confirmed a write: the error to raise, logged once until
        one is confirmed again (a check succeeding meanwhile does not end it)."""
        self.suspect()
        if not self._unconfirmed:
            self._unconfirmed = True
            logger.warning("sessionguard: no Redis replica confirmed a write within %d ms: logins and "
                           "sign-outs answer 503 until one does (Sentinel, docs/deployment.md)", waited_ms)
        return StoreUnavailable("no replica confirmed the write")

    def confirmed(self) -> None:
        """A write was confirmed."""
        if self._unconfirmed:
            self._unconfirmed = False
            logger.warning("sessionguard: a Redis replica confirms writes again")

    def _run(self) -> None:
        attempt = self._timeout * ATTEMPT_SHARE
        self._clients = [redis.Redis(host, port, socket_timeout=attempt, socket_connect_timeout=attempt,
                                     protocol=2, retry=Retry(NoBackoff(), 0)) for host, port in self._hosts]
        listener: Any = None
        turn, looked = 0, time.monotonic()
        try:
            self._look()
            while not self._stop.is_set():
                if listener is None:
                    listener = self._listen(self._clients[turn % len(self._clients)])
                    turn += 1
                heard = False
                try:
                    if listener is not None:
                        message = listener.get_message(timeout=RECHECK_SECONDS)
                        heard = message is not None and message["type"] == "message"
                    else:
                        self._stop.wait(RECHECK_SECONDS)
                except ERRORS:
                    listener = self._closed(listener)
                now = time.monotonic()
                if heard or now - looked >= POLL_SECONDS or self._wake.is_set():
                    self._wake.clear()
                    looked = now
                    self._look()
        finally:
            self._closed(listener)
            for client in self._clients:
                client.close()

    def _listen(self, client: redis.Redis) -> Any:
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(SWITCH)
        except ERRORS:
            return self._closed(pubsub)
        return pubsub

    @staticmethod
    def _closed(pubsub: Any) -> None:
        if pubsub is not None:
            pubsub.close()

    def _look(self) -> None:
        """Ask every sentinel; take the primary named with the highest epoch."""
        best: dict[str, Any] | None = None
        for client in self._clients:
            try:
                state = cast("dict[str, Any]", client.sentinel_master(self.service))
            except ERRORS:
                continue
            if state.get("is_master") and (best is None or state["config-epoch"] > best["config-epoch"]):
                best = state  # (redis-py parses config-epoch, ip, port and num-slaves, always sent)
        if best is not None and best["config-epoch"] >= self._epoch:
            address = (str(best["ip"]), int(best["port"]))
            if address != self.address and self.address is not None:
                logger.warning("sessionguard: the Redis primary of %r moved to %s:%d (Sentinel); "
                               "following it", self.service, *address)
            self._epoch, self.address, self._replicas = best["config-epoch"], address, best["num-slaves"]
        if self.address is not None:
            for follow in self.followers:
                follow(self.address)


class SyncConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the primary that asks for its address at every connect.
    redis-py's asks only in ``connect()``; a command sent on a connection
    dropped by an error (a retry after :func:`cut`) reconnects it through
    ``connect_check_health``, to the address it had: the old primary."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if sync_socket(self) is None:  # not connected (or not known: asking again is cheap)
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health, retry_socket_connect)


class AsyncConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    """The asyncio twin of :class:`SyncConnection`."""

    async def connect_check_health(self, check_health: bool = True,
                                   retry_socket_connect: bool = True) -> None:
        if not self.is_connected:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect)


class SyncSentinel(redis.sentinel.Sentinel):
    """redis-py's Sentinel, whose connections (:class:`SyncConnection`) open to
    the primary ``watch`` knows (its own look at the sentinels until the
    watch has one)."""

    def __init__(self, watch: PrimaryWatch, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, connection_class=SyncConnection, **kwargs)
        self.watch = watch

    def discover_master(self, service_name: str) -> Any:
        return self.watch.address or super().discover_master(service_name)


class AsyncSentinel(redis.asyncio.sentinel.Sentinel):
    """The asyncio twin of :class:`SyncSentinel`."""

    def __init__(self, watch: PrimaryWatch, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, connection_class=AsyncConnection, **kwargs)
        self.watch = watch

    async def discover_master(self, service_name: str) -> Any:
        return self.watch.address or await super().discover_master(service_name)


# -- cutting connections -------------------------------------------------------------


def cut(sock: Any) -> None:
    """Shut ``sock`` down (both ways): whoever reads or writes it next sees the
    connection closed and handles that as any lost connection. Safe from any
    thread, unlike closing a connection another thread or event loop uses."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def cut_others(connections: Iterable[Any], primary: Address) -> None:
    """Cut every connection of ``connections`` not to ``primary``."""
    for connection in connections:
        if (connection.host, connection.port) != primary:
            cut(connection_socket(connection))
