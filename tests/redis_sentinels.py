"""Pytest plugin: a private Sentinel group on loopback (one primary, replicas,
three sentinels), for the failover tests.

Loaded from ``tests/conftest.py`` next to :mod:`redis_servers`, whose
:class:`~redis_servers.RedisServer` runs every process here: each is started and
stopped by its own pid, so a failed test leaves nothing behind.

Fixture:

``sentinel_group`` (function)
    ``sentinel_group(*data_args) -> SentinelGroup``: started, and stopped at
    teardown. ``data_args`` go to both data nodes (``--min-replicas-to-write 1``,
    say).

Waits are event-driven: :meth:`SentinelGroup.events` subscribes to the
sentinels' own announcements (``+switch-master``, ``+convert-to-slave``) before
the test triggers them, and every wait has a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest
import redis

from redis_servers import LOOPBACK, RedisServer, RedisServerError, require_binaries

if TYPE_CHECKING:
    from typing_extensions import Self

SERVICE = "main"
#: Data nodes: a replica's full sync starts at once (Redis waits 5 s by default).
FAST_SYNC = ("--repl-diskless-sync-delay", "0")
#: How long a sentinel waits before it calls an unanswering primary down.
DOWN_AFTER_MS = 500
READY_TIMEOUT = 20.0


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` monitoring ``primary`` as :data:`SERVICE`. Its
    configuration file lives in the server's own dir (Sentinel rewrites it)."""

    def __init__(self, binary: str, *, primary: tuple[str, int], quorum: int, name: str) -> None:
        super().__init__(binary, name=name)
        self.primary = primary
        self.quorum = quorum

    def command_line(self) -> list[str]:
        assert self.dir is not None
        conf = self.dir / "sentinel.conf"
        host, port = self.primary
        conf.write_text(
            f"sentinel monitor {SERVICE} {host} {port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        return [self.binary, str(conf), "--sentinel", "--port", str(self.port), "--bind", self.host,
                "--dir", str(self.dir), "--logfile", str(self.dir / "log")]

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of this sentinel, decoding replies (the caller closes it)."""
        return redis.Redis(self.host, self.port, socket_timeout=1.0, decode_responses=True, **kwargs)

    def master(self) -> dict[str, Any]:
        """``SENTINEL MASTER``: the primary as this sentinel knows it."""
        with self.client() as client:
            return dict(client.sentinel_master(SERVICE))

    def replicas(self) -> list[dict[str, Any]]:
        """``SENTINEL REPLICAS``: the replicas as this sentinel knows them."""
        with self.client() as client:
            return list(client.sentinel_slaves(SERVICE))


class Events:
    """The sentinels' announcements from the moment of subscribing: ``wait`` for one."""

    def __init__(self, sentinel: SentinelServer, *channels: str) -> None:
        self._client = redis.Redis(sentinel.host, sentinel.port, socket_timeout=5, decode_responses=True)
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(*channels)
        for _ in channels:  # the confirmations: subscribed before anything is triggered
            self._pubsub.get_message(timeout=5)

    def wait(self, channel: str, timeout: float) -> tuple[float, str]:
        """``(monotonic time received, data)`` of the next message on ``channel``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "message" and message["channel"] == channel:
                return time.monotonic(), str(message["data"])
        raise AssertionError(f"no {channel} from the sentinels within {timeout:g} s")

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SentinelGroup:
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a
    majority), all private processes on loopback."""

    def __init__(self, binary: str, *, data_args: Sequence[str] = (), replicas: int = 1,
                 sentinels: int = 3) -> None:
        self.binary = binary
        self.data_args = [*FAST_SYNC, *data_args]
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.nodes: list[RedisServer] = []
        self.sentinels: list[SentinelServer] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every sentinel."""
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> Self:
        try:
            primary = RedisServer(self.binary, extra_args=self.data_args, name="sentinel-primary").start()
            self.nodes.append(primary)
            for index in range(self.replica_count):
                replica = RedisServer(self.binary, name=f"sentinel-replica-{index}", extra_args=[
                    *self.data_args, "--replicaof", primary.host, str(primary.port)])
                self.nodes.append(replica.start())
            quorum = self.sentinel_count // 2 + 1
            for index in range(self.sentinel_count):
                sentinel = SentinelServer(self.binary, primary=(primary.host, primary.port), quorum=quorum,
                                          name=f"sentinel-{index}")
                self.sentinels.append(sentinel.start())
            self.wait_ready(primary)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, primary: RedisServer, timeout: float = READY_TIMEOUT) -> None:
        """Until every sentinel names ``primary``, sees every replica up and the other
        sentinels, and every replica's link is up: a failover can then happen."""
        deadline = time.monotonic() + timeout
        while not self._ready(primary):
            if time.monotonic() > deadline:
                states = [self._state(s) for s in self.sentinels]
                raise RedisServerError(f"sentinel group not ready in {timeout:g} s: {states}")
            time.sleep(0.05)

    def _ready(self, primary: RedisServer) -> bool:
        for sentinel in self.sentinels:
            state = self._state(sentinel)
            if (state.get("port") != str(primary.port) or state.get("flags") != "master"
                    or state.get("num-slaves") != str(self.replica_count)
                    or state.get("num-other-sentinels") != str(self.sentinel_count - 1)):
                return False
            if any(not r["is_slave"] or r["is_sdown"] or r["master-link-status"] != "ok"
                   for r in sentinel.replicas()):
                return False
        return self.linked(primary)

    def linked(self, primary: RedisServer) -> bool:
        """Whether ``primary`` has all the other running nodes online as its replicas."""
        try:
            info = redis_info(primary)
        except (OSError, redis.RedisError):
            return False
        online = sum(1 for key, value in info.items() if key.startswith("slave")
                     and isinstance(value, dict) and value.get("state") == "online")
        return info.get("role") == "master" and online == sum(1 for n in self.nodes if n.running) - 1

    @staticmethod
    def _state(sentinel: SentinelServer) -> dict[str, str]:
        try:
            reply = sentinel.master()
        except (OSError, redis.RedisError):
            return {}
        return {str(k): str(v) for k, v in reply.items()}

    def primary(self) -> RedisServer:
        """The node the first answering sentinel names as primary."""
        for sentinel in self.sentinels:
            state = self._state(sentinel)
            for node in self.nodes:
                if state and state.get("port") == str(node.port):
                    return node
        raise RedisServerError("no sentinel names a primary")

    def events(self, *channels: str) -> Events:
        """Subscribe to the sentinels' announcements (``+switch-master``...)."""
        for sentinel in self.sentinels:
            if sentinel.running:
                return Events(sentinel, *channels)
        raise RedisServerError("no sentinel runs")

    def failover(self) -> None:
        """A planned failover (``SENTINEL FAILOVER``): a replica becomes primary."""
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)

    def stop(self) -> None:
        for server in [*self.sentinels, *self.nodes]:
            server.stop()
        self.sentinels, self.nodes = [], []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def redis_info(server: RedisServer) -> dict[str, Any]:
    """``INFO replication`` of ``server`` (parsed by redis-py)."""
    with server.client(socket_timeout=1) as client:
        return dict(client.info("replication"))


@pytest.fixture
def sentinel_group() -> Iterator[Callable[..., SentinelGroup]]:
    """``sentinel_group(*data_args) -> SentinelGroup``, stopped at teardown."""
    groups: list[SentinelGroup] = []

    def start(*data_args: str) -> SentinelGroup:
        group = SentinelGroup(require_binaries().server, data_args=data_args)
        groups.append(group)
        return group.start()

    try:
        yield start
    finally:
        for group in groups:
            group.stop()


__all__ = ["LOOPBACK", "SERVICE", "SentinelGroup", "SentinelServer", "sentinel_group"]
