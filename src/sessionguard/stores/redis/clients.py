"""How the sync and async Redis stores reach Redis: clients built from a
:class:`~.urls.Target` with short timeouts and a bounded pool, bounded
retries, and the translation of Redis errors into :class:`StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialBackoff

from ...errors import StoreUnavailable
from .urls import Target

if TYPE_CHECKING:
    from .scripts import Library

logger = logging.getLogger("sessionguard")
T = TypeVar("T")

#: Connections per client (per event loop for the async store); a flood waits for
#: a free one at most ``STORE_TIMEOUT``.
MAX_CONNECTIONS = 50
#: Each connect or read waits at most this share of ``STORE_TIMEOUT``: room for a
#: retry within it.
ATTEMPT_SHARE = 0.4
#: Idle connections are checked with a PING before reuse after this many seconds.
HEALTH_CHECK_INTERVAL = 30

def connect(target: Target, timeout: float, ns: SimpleNamespace) -> Any:
    """A client for ``target`` built from the classes in ``ns`` (redis-py's sync or
    asyncio ones, so the construction is written once). Nothing connects yet.

    A read waits at most :data:`ATTEMPT_SHARE` of ``timeout`` and a connect at
    most ``timeout`` (a busy event loop delays a connect's completion, and a
    failed connect is not worth a retry within the budget); a call is retried
    only while the whole stays within ``timeout`` (see :class:`Budget`). Reads go
    to the primary only (no replica reads; Sentinel's ``master_for``). RESP2 keeps
    the connection handshake to one round trip and works with any Redis >= 6.2.
    """
    attempt = timeout * ATTEMPT_SHARE
    common: dict[str, Any] = dict(
        socket_timeout=attempt, socket_connect_timeout=timeout, protocol=2,
        health_check_interval=HEALTH_CHECK_INTERVAL, **target.options,
    )
    if target.kind == "cluster":
        nodes = [ns.ClusterNode(host, port) for host, port in target.hosts]
        return ns.RedisCluster(startup_nodes=nodes, retry=ns.Retry(timeout, retries=1), **common)
    if target.kind == "sentinel":
        db = common.pop("db", 0)
        sentinel = ns.Sentinel(list(target.hosts), sentinel_kwargs=dict(
            socket_timeout=attempt, socket_connect_timeout=timeout), **common)
        return sentinel.master_for(target.service, db=db, max_connections=MAX_CONNECTIONS,
                                   retry=ns.Retry(timeout))
    pool = ns.BlockingConnectionPool.from_url(
        target.url, max_connections=MAX_CONNECTIONS, timeout=timeout, retry=ns.Retry(timeout), **common
    )
    return ns.Redis.from_pool(pool)


# -- retries ---------------------------------------------------------------------

#: Set around calls that must not be repeated (the audit log's XADD).
NO_RETRY: ContextVar[bool] = ContextVar("sessionguard_no_retry", default=False)


@contextlib.contextmanager
def retries(allowed: bool) -> Iterator[None]:
    """Run the enclosed calls with retries allowed or not."""
    token = NO_RETRY.set(not allowed)
    try:
        yield
    finally:
        NO_RETRY.reset(token)


class Budget:
    """Whether another attempt fits: every script is idempotent (a login carries
    its own id, a touch only moves last-seen forward, an end finds a tombstone),
    so a call whose reply was lost or late is tried again after a short backoff,
    as long as that attempt can end within ``timeout`` of the first one's start.
    So a hung Redis answers :class:`StoreUnavailable` within ``STORE_TIMEOUT``,
    while a dropped connection or one stalled reply is retried inside it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def allows(self, started: float, delay: float) -> bool:
        if NO_RETRY.get():
            return False
        elapsed = time.monotonic() - started
        return elapsed + delay + self.timeout * ATTEMPT_SHARE <= self.timeout


class Retry(redis.retry.Retry):
    """redis-py's retry, bounded by a :class:`Budget` (sync connections)."""

    def __init__(self, timeout: float, retries: int = 2) -> None:
        super().__init__(ExponentialBackoff(cap=0.1, base=0.01), retries)
        self.budget = Budget(timeout)

    def get_retries(self) -> int:
        # the Cluster client only asks for the count
        return 0 if NO_RETRY.get() else super().get_retries()

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        started, failures = time.monotonic(), 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                delay = self._backoff.compute(failures)
                if failures > self._retries or not self.budget.allows(started, delay):
                    raise
                time.sleep(delay)


class AsyncRetry(redis.asyncio.retry.Retry):
    """The same bounded retry for asyncio connections."""

    def __init__(self, timeout: float, retries: int = 2) -> None:
        super().__init__(ExponentialBackoff(cap=0.1, base=0.01), retries)
        self.budget = Budget(timeout)

    def get_retries(self) -> int:
        return 0 if NO_RETRY.get() else super().get_retries()

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[..., Any],
                              is_retryable: Callable[[Exception], bool] | None = None,
                              with_failure_count: bool = False) -> T:
        import asyncio

        started, failures = time.monotonic(), 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                delay = self._backoff.compute(failures)
                if failures > self._retries or not self.budget.allows(started, delay):
                    raise
                await asyncio.sleep(delay)


# -- errors ------------------------------------------------------------------------

# where Redis says a library function's command failed, and the command a Lua line calls
_SCRIPT_LINE = re.compile(r"script: (\S+), on @user_function:(\d+)")
_CALL = re.compile(r"\bp?call\(\s*['\"]([A-Za-z]+)")  # redis.call('X', ...), or its local alias call

ERRORS = (redis.RedisError, OSError, redis.exceptions.RedisClusterException)


class Health:
    """Logs when the store stops answering and when it is back (once each, not
    once per request), and every command Redis refuses (an error reply: a
    missing ACL permission, ``NOREPLICAS``, ``OOM``), naming the command.
    ``library``: the store's functions, to name a command one of them ran."""

    def __init__(self, library: Library | None = None) -> None:
        self.down = False
        self._lines = [] if library is None else library.source.splitlines()
        self._names = {} if library is None else {full: name for name, full in library.names.items()}

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """Turn a Redis or socket error into :class:`StoreUnavailable` (whose
        text names no host and carries no Redis message)."""
        try:
            yield
        except ERRORS as exc:
            raise self.failed(exc) from exc
        self.answered()

    def failed(self, exc: BaseException) -> StoreUnavailable:
        """The error to raise for ``exc``, logged once per outage (each time
        for a refused command: a request that meets one says which)."""
        if isinstance(exc, redis.ResponseError):
            logger.warning("sessionguard: the session store refused a command: %s", self.refused(exc))
        elif not self.down:
            logger.warning("sessionguard: session store unavailable: %s: %s", type(exc).__name__, exc)
        self.down = True
        return StoreUnavailable(f"the session store did not answer ({type(exc).__name__})")

    def refused(self, exc: redis.ResponseError) -> str:
        """Redis's error reply, led by the command it refused when a script ran
        it (Redis names the script's hash and line, not the command)."""
        message = str(exc)
        where = _SCRIPT_LINE.search(message)
        name = self._names.get(where.group(1)) if where else None
        if where is None or name is None:
            return message
        number, lines = int(where.group(2)), self._lines  # lines of the library's source
        call = _CALL.search(lines[number - 1]) if 0 < number <= len(lines) else None
        command = call.group(1).upper() if call else "a command"
        return f"{command} in the {name} function: {message}"

    def answered(self) -> None:
        if self.down:
            self.down = False
            logger.warning("sessionguard: session store answers again")
