"""Shared pieces of the benchmark: a private ``redis-server``, Redis command
and round-trip counting, the machine description, statistics and markdown.

Nothing here measures anything by itself; see ``run.py``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPBACK = "127.0.0.1"

#: A typical desktop browser user agent, 120 characters (the issue's "120-byte UA").
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.112"
)
assert len(USER_AGENT) == 120, len(USER_AGENT)


# --------------------------------------------------------------------------
# A private redis-server (the 30 lines of tests/redis_servers.py we need)
# --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private ``redis-server`` on a free loopback port, without persistence
    (``--save "" --appendonly no``), stopped by pid and its temp dir removed."""

    def __init__(self, *extra_args: str, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server") or shutil.which("valkey-server")
        if found is None:
            raise SystemExit("the benchmark needs redis-server on PATH (apt-get install redis-server)")
        self.binary = found
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sg-bench-redis-"))
        args = [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(self.dir),
                "--logfile", str(self.dir / "log"), *self.extra_args]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return self
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of this server (the caller closes it)."""
        return redis.Redis(host=LOOPBACK, port=self.port, **kwargs)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sessionguard_redis_available() -> str | None:
    """``None`` when ``sessionguard.stores.redis`` imports, else why not."""
    try:
        import sessionguard.stores.redis  # noqa: F401
    except ImportError as exc:
        return f"sessionguard.stores.redis is not importable yet ({exc})"
    return None


# --------------------------------------------------------------------------
# Counting what reaches Redis
# --------------------------------------------------------------------------


#: Not attributed to requests: our own ``INFO``, and the ``PING`` that keeps
#: sessionguard's pub/sub subscription alive (twice a second, in its own thread).
NOT_COUNTED = frozenset({"info", "ping"})


def commandstats(client: redis.Redis) -> dict[str, int]:
    """``INFO commandstats`` as ``{command: calls}``. Redis counts the commands
    a Lua script runs (``redis.call``) as well as the ``EVALSHA`` itself."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()}


def command_usec(client: redis.Redis) -> dict[str, int]:
    """``INFO commandstats`` as ``{command: usec}``: the server's time in each
    command, a script's or function's own commands counted in it and again on
    their own line."""
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stats["usec"]) for name, stats in info.items()}


#: The commands that run a script or a Redis function.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
#: The commands a request sends itself: a script or function, or sessionguard's read (``MGET``).
REQUEST_COMMANDS = SCRIPT_COMMANDS | {"mget"}


def server_cost(before: dict[str, int], after: dict[str, int], n: int) -> tuple[float, float]:
    """Redis server µs per request between two :func:`command_usec`: the request's
    own command (a script or function, or sessionguard's ``MGET``), and the sum over
    every command, write-backs included (the commands a script runs counted twice,
    as Redis reports them)."""
    delta = {name: usec - before.get(name, 0) for name, usec in after.items() if name not in NOT_COUNTED}
    scripts = sum(usec for name, usec in delta.items() if name in REQUEST_COMMANDS)
    return scripts / n, sum(delta.values()) / n


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per command between two :func:`commandstats`, without ``INFO`` itself."""
    delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in delta.items() if calls and name not in NOT_COUNTED}


def write_commands(client: redis.Redis, names: Sequence[str]) -> set[str]:
    """Which of ``names`` Redis flags as ``write`` (``COMMAND INFO``; sub-commands
    such as ``config|get`` never write session data)."""
    plain = [n for n in names if "|" not in n]
    if not plain:
        return set()
    info = client.execute_command("COMMAND", "INFO", *plain)
    return {name for name, entry in info.items() if entry and "write" in entry.get("flags", ())}


class RoundTrips:
    """Counts request/response round trips of redis-py connections (sync and
    asyncio) by wrapping ``send_packed_command``: one call per command, or per
    pipeline; and of sessionguard's async lane (``stores.redis.lane_async.AsyncLane.call``,
    which writes to its transport itself; the sync lane sends through redis-py).
    Only calls from the thread that installed it count (not a background
    pub/sub thread's PINGs). Installed only for counting passes, never while
    timing."""

    def __init__(self) -> None:
        self.count = 0
        self._thread = threading.get_ident()

    @contextlib.contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        sync_cls = redis.connection.AbstractConnection
        async_cls = redis.asyncio.connection.AbstractConnection
        sync_send, async_send = sync_cls.send_packed_command, async_cls.send_packed_command

        def counting_sync(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self.count += 1
            return sync_send(conn, *args, **kwargs)

        async def counting_async(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self.count += 1
            return await async_send(conn, *args, **kwargs)

        sync_cls.send_packed_command = counting_sync  # type: ignore[method-assign]
        async_cls.send_packed_command = counting_async  # type: ignore[method-assign]
        lane_cls = _async_lane()
        lane_call = lane_cls.call if lane_cls is not None else None

        async def counting_lane(lane: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self.count += 1
            return await lane_call(lane, *args, **kwargs)  # type: ignore[misc]

        if lane_cls is not None:
            lane_cls.call = counting_lane
        try:
            yield self
        finally:
            sync_cls.send_packed_command = sync_send  # type: ignore[method-assign]
            async_cls.send_packed_command = async_send  # type: ignore[method-assign]
            if lane_cls is not None:
                lane_cls.call = lane_call


def _async_lane() -> Any:
    try:
        from sessionguard.stores.redis.lane_async import AsyncLane
    except ImportError:  # an older sessionguard: no lane
        return None
    return AsyncLane


# --------------------------------------------------------------------------
# Machine, statistics, markdown
# --------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown CPU"


def redis_version() -> str:
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        return "no redis-server"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.split(" sha=")[0].strip()


def versions(*names: str) -> str:
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} (missing)")
    return ", ".join(parts)


def git_revision() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    return "unknown"


def machine_line() -> str:
    """One line naming the machine and the software measured."""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()} ({sys.implementation.name}); {redis_version()}; "
        f"sessionguard {git_revision()}; "
        + versions("starlette", "starsessions", "Flask", "Flask-Session", "redis", "uvicorn", "gunicorn")
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, digits: int = 1, *, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals (``sign``: always with + or −); NaN/None as –."""
    if value is None or value != value:  # None or NaN
        return "–"
    text = f"{value:+,.{digits}f}" if sign else f"{value:,.{digits}f}"
    return text.replace("-", "−")


@dataclass
class Table:
    """A markdown table built row by row."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: one letter per column (``l``, ``r``, ``c``); by default the first left, the rest right
    align: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        align = self.align or "l" + "r" * (len(self.headers) - 1)
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join({"l": "---", "r": "---:", "c": ":---:"}[a] for a in align) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def verdict(ok: bool | None) -> str:
    """A target check mark for the tables."""
    return "–" if ok is None else ("✅" if ok else "❌")
