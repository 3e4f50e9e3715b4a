"""What the sync and async Redis stores share: store URLs, client options,
retries, error translation, key names and the record codec.

The operations themselves live in :mod:`.redis_ops` as I/O-free generators,
the cached policy and sign-out epoch in :mod:`.redis_state`; :mod:`.redis` and
:mod:`.redis_async` only run them, so the two stores differ by ``await`` alone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import resources
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialBackoff

from ..audit import compact_json
from ..config import redact_url
from ..core import Record
from ..errors import ConfigurationError, StoreUnavailable
from .base import NewSession

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
SESSION_SCRIPTS = ("check", "create", "end", "end_user", "list_user", "set_user_timeouts")


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    sources["state"] = (folder / "state.lua").read_text(encoding="utf-8")
    return sources


# -- store URLs and client options ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives, from ``STORE_URL``."""

    kind: str  # "redis", "sentinel" or "cluster"
    url: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"


def parse_url(url: str) -> Target:
    """``redis://``, ``rediss://``, ``redis+sentinel://h:p[,h:p]/service[?db=N]``
    or ``redis+cluster://h:p[,h:p]``. Raises :class:`ConfigurationError`."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss"):
        return Target("redis", url=url)
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if userinfo:
        user, colon, password = userinfo.partition(":")
        options.update(username=unquote(user) or None, password=unquote(password) if colon else None)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        hosts = tuple(_host(h) for h in hostlist.split(","))
        if "db" in query:
            options["db"] = int(query["db"])
    except ValueError:
        raise _bad_url(url, "a host:port list") from None
    if scheme == "redis+cluster":
        return Target("cluster", hosts=hosts, options=options)
    service = parts.path.strip("/")
    if not service:
        raise _bad_url(url, "a service name after the hosts, as in redis+sentinel://h:26379/mymaster")
    return Target("sentinel", hosts=hosts, service=service, options=options)


def _host(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(text)
    return host.strip("[]"), int(port)


def _bad_url(url: str, expected: str) -> ConfigurationError:
    return ConfigurationError([f"SESSIONGUARD_STORE_URL={redact_url(url)!r} needs {expected}"])


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

ERRORS = (redis.RedisError, OSError, redis.exceptions.RedisClusterException)


class Health:
    """Logs when the store stops answering and when it is back (once each, not
    once per request)."""

    def __init__(self) -> None:
        self.down = False

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """Turn a Redis or socket error into :class:`StoreUnavailable` (whose
        text names no host and carries no Redis message)."""
        try:
            yield
        except ERRORS as exc:
            if not self.down or isinstance(exc, redis.ResponseError):
                logger.warning("sessionguard: session store unavailable: %s: %s", type(exc).__name__, exc)
            self.down = True
            raise StoreUnavailable(f"the session store did not answer ({type(exc).__name__})") from exc
        if self.down:
            self.down = False
            logger.warning("sessionguard: session store answers again")


# -- keys and records ------------------------------------------------------------


def encode_user(user_id: str) -> str:
    """A user id as it appears in key names: base64url of its UTF-8, so no ``{``,
    ``}`` or ``:`` of the id can move the hash tag or split the name."""
    raw = user_id.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_user(encoded: bytes) -> str:
    raw = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    return raw.decode("utf-8", "surrogatepass")


class Keys:
    """Key names. Every key starts with the prefix; per-session and per-user keys
    carry the hash tag after it (the first four characters of the id, which are
    the user's :func:`~sessionguard.tokens.Tokens.slot_tag`)."""

    def __init__(self, prefix: str) -> None:
        self.state = f"{prefix}:state"
        self.idx = f"{prefix}:idx"
        self.audit = f"{prefix}:audit"
        self.bus = f"{prefix}:bus"
        self.prefix = prefix

    def base(self, tag: str) -> str:
        return f"{self.prefix}:{{{tag}}}:"

    def session(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}s:{session_id}"

    def tombstone(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}e:{session_id}"

    def user_index(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}u:{encode_user(user_id)}"

    def settings(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}t:{encode_user(user_id)}"


def idx_member(created: int, session_id: str) -> str:
    """The listing-index member of a session: newest login first in lexical order."""
    return f"{99_999_999_999_999 - created:014d}:{session_id}"


def idx_position(member: bytes) -> tuple[int, str]:
    inverted, _, session_id = member.decode("ascii").partition(":")
    return 99_999_999_999_999 - int(inverted), session_id


def record_tail(new: NewSession) -> bytes:
    """The part of a record the scripts never read (see ``rules.lua``)."""
    tail = [new.ip, new.city, new.user_agent, new.device, dict(new.metadata)]
    return compact_json(tail).encode("utf-8", "surrogatepass")


def decode_record(session_id: str, value: bytes) -> Record:
    created, seen, remember, idle, platform, user, tail = value.split(b"|", 6)
    ip, city, user_agent, device, metadata = json.loads(tail.decode("utf-8", "surrogatepass"))
    return Record(
        id=session_id, user_id=decode_user(user), platform=platform.decode("ascii"),
        created=int(created), last_seen=int(seen), remember_me=remember == b"1", ip=ip, city=city,
        user_agent=user_agent, device=device, metadata=metadata, user_idle=int(idle) if idle else None,
    )


def decode_pairs(flat: list[Any]) -> list[Record]:
    """``[id1, record1, id2, record2, ...]`` as records."""
    return [decode_record(flat[i].decode("ascii"), flat[i + 1]) for i in range(0, len(flat), 2)]
