"""How the sync and async Redis stores reach Redis: clients built from a
:class:`~.urls.Target` with short timeouts and a bounded pool, bounded
retries, and the translation of Redis errors into :class:`StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import AbstractBackoff, ExponentialBackoff

from ...errors import StoreUnavailable
from .calls import Rerun
from .urls import Target

if TYPE_CHECKING:
    from .scripts import Library

logger = logging.getLogger("sessionguard")
T = TypeVar("T")

#: Connections per client (per event loop for the async store).
MAX_CONNECTIONS = 50
#: Each connect or read waits at most this share of ``STORE_TIMEOUT``: room for a
#: retry within it.
ATTEMPT_SHARE = 0.4
#: Idle connections are checked with a PING before reuse after this many seconds.
HEALTH_CHECK_INTERVAL = 30
#: redis-py's major version.
REDIS_PY_MAJOR = int(redis.__version__.partition(".")[0])


def connect(target: Target, timeout: float, ns: SimpleNamespace) -> Any:
    """A client for ``target`` built from the classes in ``ns`` (redis-py's sync or
    asyncio ones, so the construction is written once). Nothing connects yet.

    A read waits at most :data:`ATTEMPT_SHARE` of ``timeout``, a wait for a free
    pooled connection (a flood) at most what is left of ``timeout`` after one
    read, and a connect at most ``timeout`` (a busy event loop delays a
    connect's completion, and a TLS handshake takes CPU); a call is retried only
    while it can still end before its deadline (see :class:`Budget`), and an
    asyncio call is cancelled at its deadline. Reads go to the primary only (no
    replica reads; Sentinel's ``master_for``). RESP2 keeps the connection
    handshake to one round trip and works with any Redis >= 6.2.
    """
    attempt = timeout * ATTEMPT_SHARE
    # redis-py 5 retries a command only after the errors named here; 6 and later
    # after those of the Retry (these two), so the list changes nothing there
    common: dict[str, Any] = dict(
        socket_timeout=attempt, socket_connect_timeout=timeout, protocol=2,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError], **target.options,
    )
    if target.kind == "cluster":
        nodes = [ns.ClusterNode(host, port) for host, port in target.hosts]
        if REDIS_PY_MAJOR < 6:
            # 5 repeats a failed command this often without asking its Retry (our Budget):
            # once at most (its asyncio pipeline needs 1 to run at all)
            common["cluster_error_retry_attempts"] = 1
        return ns.RedisCluster(startup_nodes=nodes, retry=ns.Retry(timeout, retries=1), **common)
    if target.kind == "sentinel":
        db = common.pop("db", 0)
        sentinel = ns.Sentinel(list(target.hosts), sentinel_kwargs=dict(
            socket_timeout=attempt, socket_connect_timeout=timeout), **common)
        return sentinel.master_for(target.service, db=db, max_connections=MAX_CONNECTIONS,
                                   retry=ns.Retry(timeout))
    pool = ns.BlockingConnectionPool.from_url(
        target.url, max_connections=MAX_CONNECTIONS, timeout=timeout - attempt, retry=ns.Retry(timeout),
        **common
    )
    return ns.Redis.from_pool(pool)


# -- retries ---------------------------------------------------------------------

#: When the store call being made must have its answer (``time.monotonic()``):
#: set once per call by the stores, so a lane, the fallback to the ordinary
#: path and every retry spend the one ``STORE_TIMEOUT``. ``None`` outside a
#: store call (the subscriber's own reads).
DEADLINE: ContextVar[float | None] = ContextVar("sessionguard_deadline", default=None)
#: Whether the call being sent may be sent again (see :class:`~.calls.Rerun`).
RERUN: ContextVar[Rerun] = ContextVar("sessionguard_rerun", default=Rerun.ALWAYS)


@contextlib.contextmanager
def reruns(rerun: Rerun) -> Iterator[None]:
    """Send the enclosed calls under ``rerun``."""
    token = RERUN.set(rerun)
    try:
        yield
    finally:
        RERUN.reset(token)


def remaining() -> float | None:
    """Seconds left before :data:`DEADLINE` (``None``: no deadline)."""
    deadline = DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


class NoTimeLeft(redis.TimeoutError):
    """Another attempt could not end before the call's deadline."""


class Budget(AbstractBackoff):
    """redis-py's backoff, asked by its ``Retry`` between a failed attempt and
    the next one, so the one place that can still stop the retry: it does, by
    raising, when the call may not be sent again (:data:`RERUN`, judged on the
    error being handled) or when the next attempt, waiting up to ``attempt``
    seconds for its reply, could not end before :data:`DEADLINE`. redis-py has
    already closed the failed connection then (``fail`` runs first), so nothing
    is left half-read. Between attempts it waits 10, 20, 40 ms... (at most 0.1 s)."""

    def __init__(self, attempt: float) -> None:
        self.attempt = attempt
        self.spacing = ExponentialBackoff(cap=0.1, base=0.01)

    def reset(self) -> None:
        self.spacing.reset()  # type: ignore[no-untyped-call]

    def compute(self, failures: int) -> float:
        delay: float = self.spacing.compute(failures)
        error = sys.exc_info()[1]  # redis-py asks from inside its ``except``
        if error is not None and not RERUN.get().allows(error):
            raise error
        left = remaining()
        if left is not None and delay + self.attempt > left:
            raise NoTimeLeft(f"no time left for another attempt after {type(error).__name__}") from error
        return delay


class Retry(redis.retry.Retry):
    """redis-py's sync ``Retry`` with a :class:`Budget`. A subclass only for
    :meth:`get_retries`, a public method: a Cluster client asks it for its own
    count of attempts and repeats them without consulting the backoff."""

    def __init__(self, timeout: float, retries: int = 2) -> None:
        super().__init__(Budget(timeout * ATTEMPT_SHARE), retries)

    def get_retries(self) -> int:
        return super().get_retries() if RERUN.get() is Rerun.ALWAYS else 0


class AsyncRetry(redis.asyncio.retry.Retry):
    """The same for asyncio connections."""

    def __init__(self, timeout: float, retries: int = 2) -> None:
        super().__init__(Budget(timeout * ATTEMPT_SHARE), retries)

    def get_retries(self) -> int:
        return super().get_retries() if RERUN.get() is Rerun.ALWAYS else 0


async def within_deadline(call: Awaitable[T]) -> T:
    """Await ``call``, cancelled at :data:`DEADLINE` (``TimeoutError``, which
    :class:`Health` reports). redis-py's asyncio client closes a connection
    whose command is cancelled and gives it back to its pool."""
    left = remaining()
    if left is None:
        return await call
    if sys.version_info >= (3, 11):  # no task of its own, unlike wait_for
        async with asyncio.timeout(max(left, 0.0)):
            return await call
    return await asyncio.wait_for(call, max(left, 0.0))


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
        #: told of every failure (a Sentinel store looks for a new primary then)
        self.on_failure: Callable[[], None] | None = None

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
        if self.on_failure is not None:
            self.on_failure()
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
