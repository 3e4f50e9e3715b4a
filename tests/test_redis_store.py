"""What only the Redis store has to prove: round trips counted at the
connection, Redis Cluster and Sentinel, login races, faults (stopped, paused,
restarted Redis; late replies; cancelled tasks), one clock, no resurrection,
key layout (slots, TTLs, memory) and the ``maxmemory-policy`` warning.

The contract every store shares is in ``test_store_contract.py``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from starlette.testclient import TestClient

from apps import flask_app, starlette_app
from conftest import BASE_URL, SECRET, FakeClock
from redis_servers import CountingProxy, RedisServer, free_ports, require_binaries
from sessionguard import Config, ConfigurationError, SessionGuard, SessionLimitReached, StoreUnavailable
from sessionguard.audit import Event
from sessionguard.core import Outcome, Record
from sessionguard.policy import Policy
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import AsyncRedisStore, RedisStore, open_redis_stores
from sessionguard.stores.redis import state as redis_state
from sessionguard.stores.redis.keys import Keys, encode_user
from sessionguard.stores.redis.lane import Spin
from sessionguard.stores.redis.records import (
    decode_record,
    idx_bound,
    idx_member,
    idx_position,
    pack_id,
    record_tail,
    unpack_id,
    user_member,
)
from sessionguard.stores.redis.urls import parse_url
from sessionguard.tokens import SlotTags, Tokens, session_id

TOKENS = Tokens([SECRET])
UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36")[:120]
# the sessions in one user's index, read atomically: the probe of the race tests (every live
# session is in the index, so the live ones are never more)
PROBE = "return redis.call('ZCARD', KEYS[1])"


Stores = tuple[RedisStore, AsyncRedisStore]


@pytest.fixture
def make_stores() -> Iterator[Callable[..., Stores]]:
    """``make_stores(url, prefix, clock=None, **config)``: both stores of one
    "process"; their subscribers are stopped and connections closed at teardown."""
    made: list[RedisStore] = []

    def make(url: str, prefix: str = "sg", *, clock: Callable[[], int] | None = None,
             **config: Any) -> Stores:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix=prefix, **config)
        stores = open_redis_stores(cfg, Policy.from_config(cfg), clock=clock)
        made.append(stores[0])
        return stores

    yield make
    for store in made:
        store.close()


@pytest.fixture(autouse=True)
def _no_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    # the subscriber's periodic re-read would show up in the round-trip counts
    monkeypatch.setattr(redis_state, "RESYNC_SECONDS", 3600.0)


def new(store: Any, user: str = "ada", platform: str = "web", **fields: Any) -> NewSession:
    """A login of ``user`` for ``store`` (its ids carry the store's slot tag of the user)."""
    sid = TOKENS.new_sid(store.slot_tag(user))
    return NewSession(id=session_id(sid), user_id=user, platform=platform, **fields)


def unknown_id() -> str:
    """A well-formed id of a session no store knows."""
    return session_id(TOKENS.new_sid(secrets.token_hex(2)))


#: slot tags of a deployment of its own, for the tests of the key layout and codecs
FIXED = SimpleNamespace(slot_tag=SlotTags(b"t" * 32))


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def request_commands(proxy: CountingProxy) -> list[str]:
    """Data commands sent since the last reset, leaving out the subscriber's
    connection (SUBSCRIBE, and PINGs that prove it alive)."""
    subscriber = {r.connection for r in proxy.records if r.name == "SUBSCRIBE"}
    return [r.name for r in proxy.records if not r.is_setup and r.connection not in subscriber]


def app_client(shell: str, guard: SessionGuard) -> httpx.Client:
    if shell == "asgi":
        return TestClient(starlette_app(guard), base_url=BASE_URL)
    return httpx.Client(transport=httpx.WSGITransport(app=flask_app(guard)), base_url=BASE_URL)


def cleanup(client: Any, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.unlink(key)


# -- round trips, counted at the connection ------------------------------------------------


def test_a_check_is_one_round_trip(private_redis: RedisServer, counting_proxy: Any,
                                   make_stores: Any) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url)
    record = sync.create(new(sync)).record
    sync.check(record.id, passive=True)  # the first call loads the library (Function not found)
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    for passive in (False, True) * 10:
        assert sync.check(record.id, passive=passive).outcome is Outcome.VALID
    assert request_commands(proxy) == ["MGET"] * 20  # the record and its tombstone: a read


def test_unknown_sessions_cost_one_read_and_write_nothing(private_redis: RedisServer, counting_proxy: Any,
                                                          make_stores: Any) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url)
    sync.check(unknown_id(), passive=False)
    wait_until(lambda: sync.subscribed)

    def dirty() -> int:
        info = private_redis.client().info("persistence")
        return int(info["rdb_changes_since_last_save"])

    before, keys = dirty(), private_redis.client().dbsize()
    proxy.reset()
    for _ in range(5):
        assert sync.check(unknown_id(), passive=False).outcome is Outcome.INVALID
    assert request_commands(proxy) == ["MGET"] * 5
    assert (dirty(), private_redis.client().dbsize()) == (before, keys)


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_requests_through_a_guarded_app(shell: str, private_redis: RedisServer, counting_proxy: Any) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    guard = SessionGuard(Config(secret_key=SECRET, store_url=proxy.url))
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        assert client.get("/whoami").status_code == 200  # loads the library (Function not found)
        wait_until(lambda: guard.store.subscribed)  # type: ignore[attr-defined]
        proxy.reset()
        anonymous = httpx.Client(transport=client._transport, base_url=BASE_URL)
        for _ in range(5):
            assert anonymous.get("/whoami").json() == {"session": None, "ended_reason": None}
        assert request_commands(proxy) == []
        for _ in range(5):
            assert client.get("/whoami").json()["session"]["user_id"] == "ada"
        assert request_commands(proxy) == ["MGET"] * 5
    guard.store.close()


# -- Redis Cluster and Sentinel --------------------------------------------------------------


def test_the_audit_allowance_is_in_the_streams_slot(redis_cluster: Any, make_stores: Any) -> None:
    # audit.lua changes the user's allowance and the stream in one step: on a Cluster too
    prefix = f"sgt-{secrets.token_hex(4)}"
    keys = Keys(prefix)
    assert {key_slot(k.encode()) for k in (keys.audit, keys.allowance("ada{x}"), keys.allowance("bob"))} \
        == {key_slot(keys.audit.encode())}
    sync, _ = make_stores(redis_cluster.url, prefix)
    cluster = redis_cluster.client()
    try:
        ended = [Event("logout", 1, "user:ada{x}", "ada{x}", f"s{i}") for i in range(61)]
        sync.append_self_service("ada{x}", ended)
        kinds = [e.type for e in sync.events(user_id="ada{x}", limit=100, cursor=None).items]
        assert kinds == ["rate_limited"] + ["logout"] * 60
    finally:
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


def test_cluster_login_check_evict_and_signout_all(redis_cluster: Any, make_stores: Any) -> None:
    prefix = f"sgt-{secrets.token_hex(4)}"
    user = "ada{x}:é"
    sync, async_ = make_stores(redis_cluster.url, prefix, max_sessions=2)
    cluster = redis_cluster.client()
    try:
        records = []
        for who in (user, user, user, "bob"):
            records.append(sync.create(new(sync, who)).record)
            time.sleep(0.002)  # distinct login times: the listing order is known
        first, second, third, bob = records
        assert [sync.check(r.id, passive=False).outcome for r in (first, second, third, bob)] == [
            Outcome.EVICTED, Outcome.VALID, Outcome.VALID, Outcome.VALID]
        listed = sync.list_sessions(user_id=None, platform=None, limit=10, cursor=None)
        assert [r.id for r in listed.items] == [bob.id, third.id, second.id]
        keys = [k for node in cluster.get_primaries()
                for k in cluster.scan_iter(match=f"{prefix}:{{{first.id[:4]}}}*", target_nodes=node)]
        assert len(keys) >= 4  # records, tombstone, index
        assert len({cluster.keyslot(k) for k in keys}) == 1
        other, _ = make_stores(redis_cluster.url, prefix, max_sessions=2)  # another process
        assert other.check(third.id, passive=True).outcome is Outcome.VALID
        wait_until(lambda: other.subscribed)
        sync.end_all(keep=third.id)
        time.sleep(0.002)
        assert asyncio.run(async_.check(second.id, passive=False)).outcome is Outcome.SIGNOUT_ALL
        wait_until(lambda: other.check(bob.id, passive=True).outcome is Outcome.SIGNOUT_ALL, timeout=0.5)
        assert [sync.check(r.id, passive=False).outcome for r in (third, bob)] == [
            Outcome.VALID, Outcome.SIGNOUT_ALL]
        assert [r.id for r in sync.end_user(user, "revoked")] == [third.id]
        assert sync.user_sessions(user) == []
    finally:
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


def test_cluster_login_replacing_the_presented_session(redis_cluster: Any, make_stores: Any) -> None:
    # the presented session: the user's own (the user's slot, ended by create) or another
    # user's (another slot, ended after); a refused login changes nothing
    prefix = f"sgt-{secrets.token_hex(4)}"
    sync, _ = make_stores(redis_cluster.url, prefix, max_sessions=1, on_limit="reject")
    cluster = redis_cluster.client()
    try:
        web, mobile = sync.create(new(sync, "ada")).record, sync.create(new(sync, "ada", "mobile")).record
        bob = sync.create(new(sync, "bob")).record
        for presented in (mobile, bob):
            with pytest.raises(SessionLimitReached):
                sync.create(new(sync, "ada"), ending=presented.id)
            assert sync.check(presented.id, passive=True).outcome is Outcome.VALID
        again = sync.create(new(sync, "ada"), ending=web.id)  # the same client signing in again
        assert again.replaced == web and again.evicted == ()
        grace = sync.create(new(sync, "grace"), ending=bob.id)  # bob's client, now grace's
        assert grace.replaced == bob
        assert [sync.check(r.id, passive=True).outcome for r in (web, mobile, bob)] == [
            Outcome.SIGNED_OUT, Outcome.VALID, Outcome.SIGNED_OUT]
    finally:
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


def test_cluster_set_roles_and_rotate(redis_cluster: Any, make_stores: Any) -> None:
    prefix = f"sgt-{secrets.token_hex(4)}"
    user = "ada{x}:é"
    sync, async_ = make_stores(redis_cluster.url, prefix)
    cluster = redis_cluster.client()
    try:
        web = sync.create(new(sync, user, metadata={"name": "Ada", "roles": ["admin"]})).record
        phone = sync.create(new(sync, user, "mobile", metadata={"roles": ["admin"]})).record
        updated = asyncio.run(async_.set_roles(user, ["viewer"]))
        assert sorted(r.id for r in updated) == sorted([web.id, phone.id])
        seen = sync.check(web.id, passive=True).record
        assert seen is not None and seen.metadata == {"name": "Ada", "roles": ["viewer"]}
        assert [r.metadata["roles"] for r in sync.user_sessions(user)] == [["viewer"], ["viewer"]]
        new_id = new(sync, user).id
        moved = asyncio.run(async_.rotate(web.id, new_id))
        assert moved.outcome is Outcome.VALID and moved.record is not None and moved.record.id == new_id
        assert sync.check(web.id, passive=True).outcome is Outcome.INVALID
        listed = sync.list_sessions(user_id=None, platform=None, limit=10, cursor=None).items
        assert sorted(r.id for r in listed) == sorted([new_id, phone.id])  # the other slot followed
    finally:
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


def test_cluster_through_a_guarded_app(redis_cluster: Any) -> None:
    prefix = f"sgt-{secrets.token_hex(4)}"
    guard = SessionGuard(Config(secret_key=SECRET, store_url=redis_cluster.url, key_prefix=prefix,
                                max_sessions=1))
    try:
        with app_client("wsgi", guard) as one, app_client("wsgi", guard) as two:
            assert one.post("/login", json={"user": "ada"}).status_code == 200
            assert one.get("/whoami").json()["session"]["user_id"] == "ada"
            assert two.post("/login", json={"user": "ada"}).status_code == 200
            assert one.get("/whoami").json() == {"session": None, "ended_reason": "evicted"}
    finally:
        guard.store.close()
        cluster = redis_cluster.client()
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


@pytest.fixture
def sentinel(private_redis: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A Sentinel watching ``private_redis`` as service ``main``; its URL."""
    port = free_ports(1)[0]
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor main {private_redis.host} {private_redis.port} 1\n")
    proc = subprocess.Popen([require_binaries().server, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, socket_timeout=1)
        wait_until(lambda: _sentinel_ready(probe), timeout=10)
        probe.close()
        yield f"redis+sentinel://127.0.0.1:{port},127.0.0.1:{free_ports(1)[0]}/main?db=0"
    finally:
        proc.terminate()
        proc.wait(5)


def _sentinel_ready(probe: redis.Redis) -> bool:
    try:
        return probe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "main") is not None
    except redis.RedisError:
        return False


def test_sentinel_url_reaches_the_primary(sentinel: str, private_redis: RedisServer,
                                         make_stores: Any) -> None:
    sync, async_ = make_stores(sentinel)
    record = sync.create(new(sync)).record
    assert asyncio.run(async_.check(record.id, passive=True)).record == record
    assert sync.check(record.id, passive=True).record == record
    wait_until(lambda: sync.subscribed)
    assert private_redis.client().exists(Keys("sg").session(record.id)) == 1
    # the sync lane's connection asked Sentinel too (a first send alone would have
    # connected it to redis-py's default address, localhost:6379)
    assert [(c.host, c.port) for c in sync._lane._idle] == [(private_redis.host, private_redis.port)]


@pytest.mark.parametrize(("url", "kind", "hosts", "options"), [
    pytest.param("redis://h:1/2", "redis", (), {}, id="redis"),
    pytest.param("redis+cluster://a:7000,b:7001", "cluster", (("a", 7000), ("b", 7001)), {}, id="cluster"),
    pytest.param("redis+sentinel://u:p%40ss@s1:26379,[::1]:26380/main?db=3", "sentinel",
                 (("s1", 26379), ("::1", 26380)), {"username": "u", "password": "p@ss", "db": 3},
                 id="sentinel"),
])
def test_store_urls(url: str, kind: str, hosts: tuple[tuple[str, int], ...], options: dict[str, Any]) -> None:
    target = parse_url(url)
    assert (target.kind, target.hosts, target.options) == (kind, hosts, options)


@pytest.mark.parametrize("url", ["redis+sentinel://:secret@h:1", "redis+cluster://:secret@h:x"])
def test_bad_store_urls_name_the_variable_not_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="SESSIONGUARD_STORE_URL") as raised:
        parse_url(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(("url", "unknown"), [
    pytest.param("redis://h:1/0?colour=blue", "colour", id="unknown"),
    pytest.param("redis://h:1/0?ssl_password=hunter2", "ssl_password", id="tls-option-without-tls"),
    pytest.param("rediss://h:1/0?decode_responses=true", "decode_responses", id="set-by-the-store"),
    pytest.param("redis+sentinel://h:1/main?db=1&ssl=true", "ssl", id="sentinel"),
])
def test_unknown_store_url_options_stop_start_up(url: str, unknown: str) -> None:
    # redis-py would hand the option to the connection: a TypeError at the first request
    with pytest.raises(ConfigurationError) as raised:
        SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_STORE_URL": url})
    [line] = raised.value.errors
    assert line.startswith("SESSIONGUARD_STORE_URL=") and f"does not know: {unknown} (use " in line
    assert "hunter2" not in line


@pytest.mark.redis
def test_known_store_url_options_reach_the_connection(redis_server: Any, key_prefix: str) -> None:
    url = f"{redis_server.url}?client_name=sg-{key_prefix}&socket_keepalive=true&health_check_interval=5"
    guard = SessionGuard(Config(secret_key=SECRET, store_url=url, key_prefix=key_prefix))
    with app_client("wsgi", guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
    with redis_server.client() as admin:
        assert f"sg-{key_prefix}" in {c["name"] for c in admin.client_list()}
    guard.store.close()


# -- races ---------------------------------------------------------------------------------------


class Probe:
    """Counts the user's live sessions atomically, over and over, in a thread."""

    def __init__(self, url: str, prefix: str, user: str, tag: str) -> None:
        self._index = Keys(prefix).user_index(tag, user)
        self._client = redis.Redis.from_url(url)
        self._stop = threading.Event()
        self.most = 0
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        script = self._client.register_script(PROBE)
        try:
            while not self._stop.is_set():
                self.most = max(self.most, int(script(keys=[self._index])))
        except redis.RedisError as exc:
            self.error: redis.RedisError | None = exc

    def stop(self) -> int:
        """The most sessions seen at once (the probe's own error, re-raised)."""
        self._stop.set()
        self._thread.join()
        self._client.close()
        if getattr(self, "error", None) is not None:
            raise AssertionError("the probe failed") from self.error
        return self.most


def test_racing_logins_from_threads_never_exceed_the_limit(redis_url: str, key_prefix: str,
                                                           make_stores: Any) -> None:
    # a generous timeout: this is about atomicity, on a machine that may be busy
    processes = [make_stores(redis_url, key_prefix, max_sessions=3, store_timeout=5)[0] for _ in range(4)]
    probe = Probe(redis_url, key_prefix, "ada", processes[0].slot_tag("ada"))
    with ThreadPoolExecutor(max_workers=40) as pool:
        created = list(pool.map(lambda i: processes[i % 4].create(new(processes[i % 4])).record, range(200)))
    assert probe.stop() <= 3
    outcomes = [processes[0].check(r.id, passive=True).outcome for r in created]
    assert outcomes.count(Outcome.VALID) == 3 and outcomes.count(Outcome.EVICTED) == 197


async def test_racing_logins_from_asyncio_never_exceed_the_limit(redis_url: str, key_prefix: str,
                                                                 make_stores: Any) -> None:
    processes = [make_stores(redis_url, key_prefix, max_sessions=3, store_timeout=5)[1] for _ in range(2)]
    tag = await processes[0].slot_tag("ada")
    probe = Probe(redis_url, key_prefix, "ada", tag)
    fresh = SimpleNamespace(slot_tag=lambda user: tag)
    created = await asyncio.gather(*(processes[i % 2].create(new(fresh)) for i in range(200)))
    assert await asyncio.to_thread(probe.stop) <= 3
    outcomes = [(await processes[0].check(c.record.id, passive=True)).outcome for c in created]
    assert outcomes.count(Outcome.VALID) == 3 and outcomes.count(Outcome.EVICTED) == 197
    for store in processes:
        await store.close()


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_stopped_redis_gives_503_then_recovers(shell: str, private_redis: RedisServer) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, store_url=private_redis.url))
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        private_redis.stop()
        for response in (client.get("/whoami"), client.post("/login", json={"user": "ada"})):
            assert response.status_code == 503 and response.headers["retry-after"]
            assert str(private_redis.port) not in response.text and "127.0.0.1" not in response.text
        with pytest.raises(StoreUnavailable) as raised:
            guard.store.check(unknown_id(), passive=False)
        assert isinstance(raised.value.__cause__, redis.RedisError | OSError)
        assert str(private_redis.port) not in str(raised.value)
        private_redis.start()  # same port, empty: the old session is gone
        assert client.get("/whoami").json() == {"session": None, "ended_reason": "invalid"}
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        assert client.get("/whoami").json()["session"]["user_id"] == "ada"
    guard.store.close()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_unreachable_redis_is_unavailable_not_an_error(scheme: str, make_stores: Any) -> None:
    sync, async_ = make_stores(f"{scheme}://127.0.0.1:{free_ports(1)[0]}")
    with pytest.raises(StoreUnavailable):
        sync.check(unknown_id(), passive=False)
    with pytest.raises(StoreUnavailable):
        asyncio.run(async_.check(unknown_id(), passive=False))


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_paused_redis_gives_503_within_the_timeout(shell: str, private_redis: RedisServer) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, store_url=private_redis.url, store_timeout=0.5))
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        assert client.get("/whoami").json()["session"] is not None
        private_redis.pause(3000)
        began = time.monotonic()
        response = client.get("/whoami")
        waited = time.monotonic() - began
    assert response.status_code == 503
    assert waited < 0.5 + 0.1, waited
    guard.store.close()


async def test_a_cancelled_check_leaves_no_reply_behind(private_redis: RedisServer, make_stores: Any) -> None:
    sync, async_ = make_stores(private_redis.url)
    valid, revoked = sync.create(new(sync)).record, sync.create(new(sync, "bob")).record
    sync.end(revoked.id, "revoked")
    assert (await async_.check(valid.id, passive=True)).outcome is Outcome.VALID
    private_redis.pause(300)
    task = asyncio.create_task(async_.check(valid.id, passive=True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert (await async_.check(revoked.id, passive=True)).outcome is Outcome.REVOKED
    assert (await async_.check(valid.id, passive=True)).outcome is Outcome.VALID
    await async_.close()


@pytest.mark.parametrize("spin", ["off", "1ms"])
async def test_polling_and_sleeping_lanes_give_every_request_its_own_answer(
        spin: str, private_redis: RedisServer, make_stores: Any) -> None:
    sync, async_ = make_stores(private_redis.url, store_spin=spin)
    valid, revoked = sync.create(new(sync)).record, sync.create(new(sync, "bob")).record
    sync.end(revoked.id, "revoked")
    unknown = unknown_id()
    expected = {valid.id: Outcome.VALID, revoked.id: Outcome.REVOKED, unknown: Outcome.INVALID}
    for sid, outcome in expected.items():  # one at a time: a request alone on its connection polls
        assert sync.check(sid, passive=True).outcome is outcome
        assert (await async_.check(sid, passive=True)).outcome is outcome
    ids = [valid.id, revoked.id, unknown] * 30  # at once: pipelined on the loop's one connection
    checks = await asyncio.gather(*(async_.check(sid, passive=True) for sid in ids))
    assert [check.outcome for check in checks] == [expected[sid] for sid in ids]
    with ThreadPoolExecutor(8) as pool:  # threads: one connection each
        outcomes = list(pool.map(lambda sid: sync.check(sid, passive=True).outcome, ids))
    assert outcomes == [expected[sid] for sid in ids]
    await async_.close()


async def test_a_polling_lane_still_times_out_and_recovers(private_redis: RedisServer,
                                                          make_stores: Any) -> None:
    sync, async_ = make_stores(private_redis.url, store_spin="1ms", store_timeout=0.3)
    record = sync.create(new(sync)).record
    assert (await async_.check(record.id, passive=True)).outcome is Outcome.VALID
    private_redis.pause(500)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        sync.check(record.id, passive=True)
    with pytest.raises(StoreUnavailable):
        await async_.check(record.id, passive=True)
    assert time.monotonic() - started < 0.3 * 2 + 0.2
    await asyncio.sleep(0.3)
    assert sync.check(record.id, passive=True).outcome is Outcome.VALID
    assert (await async_.check(record.id, passive=True)).outcome is Outcome.VALID
    await async_.close()


def test_polling_rests_after_replies_keep_missing_it() -> None:
    spin = Spin(0.0002)
    assert spin.on()
    for _ in range(Spin.MISSES - 1):
        spin.after(False)
    spin.after(True)  # an answer in time forgives the misses before it
    for _ in range(Spin.MISSES - 1):
        assert spin.on()
        spin.after(False)
    assert spin.on()
    spin.after(False)  # the last miss in a row: the next calls sleep
    assert [spin.on() for _ in range(Spin.REST)] == [False] * Spin.REST
    assert spin.on()  # then polling is tried again
    assert not any(Spin(0.0).on() for _ in range(Spin.REST + 1))  # STORE_SPIN=off: never


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS test needs the openssl command (Debian package openssl)")
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_redis_checks_on_both_stores(private_redis_factory: Any, make_stores: Any,
                                               tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    (tls_port,) = free_ports(1)
    server = private_redis_factory("--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                   "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                                   "--tls-auth-clients", "no")
    # a cold store's first check makes two TLS handshakes (the lane's, then the pool's
    # after its first reply) within one STORE_TIMEOUT: room for a loaded 2-core machine
    sync, async_ = make_stores(f"rediss://{server.host}:{tls_port}/0?ssl_ca_certs={cert}", store_timeout=2)
    valid, revoked = sync.create(new(sync)).record, sync.create(new(sync, "bob")).record
    sync.end(revoked.id, "revoked")
    expected = {valid.id: Outcome.VALID, revoked.id: Outcome.REVOKED}
    ids = [valid.id, revoked.id] * 20
    assert [sync.check(sid, passive=True).outcome for sid in ids] == [expected[sid] for sid in ids]
    checks = await asyncio.gather(*(async_.check(sid, passive=True) for sid in ids))
    assert [check.outcome for check in checks] == [expected[sid] for sid in ids]
    # over TLS the async lane keeps the asyncio transport (only it can read TLS records)
    lane = await async_._clients.lane()
    assert type(lane._pipeline).__name__ == "_TransportPipeline"
    with server.client() as client:  # the sessions were written to this server
        assert any(client.scan_iter("sg:*"))
    await async_.close()


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that cannot watch a socket for its users, like Windows' proactor."""

    def add_reader(self, *args: Any) -> None:
        raise NotImplementedError


def test_a_loop_without_add_reader_keeps_the_transport(private_redis: RedisServer, make_stores: Any) -> None:
    sync, async_ = make_stores(private_redis.url)
    valid = sync.create(new(sync)).record

    async def checks() -> tuple[list[Outcome], str]:
        outcomes = [(await async_.check(valid.id, passive=True)).outcome for _ in range(3)]
        outcomes += [c.outcome for c in await asyncio.gather(*(async_.check(valid.id, passive=True)
                                                               for _ in range(10)))]
        lane = await async_._clients.lane()
        kind = type(lane._pipeline).__name__
        await async_.close()
        return outcomes, kind

    loop = _NoReaderLoop()
    try:
        outcomes, kind = loop.run_until_complete(checks())
    finally:
        loop.close()
    assert outcomes == [Outcome.VALID] * 13
    assert kind == "_TransportPipeline"


# -- one clock, no resurrection --------------------------------------------------------------------


def test_in_flight_requests_cannot_resurrect_a_session(redis_url: str, key_prefix: str,
                                                       make_stores: Any) -> None:
    ticks = iter(range(10**9))
    lock = threading.Lock()

    def clock() -> int:  # every check is a touch interval later: every check writes
        with lock:
            return 1_800_000_000_000 + 600_001 * next(ticks)

    sync, _ = make_stores(redis_url, key_prefix, clock=clock, idle_timeout=None)
    raw = redis.Redis.from_url(redis_url)
    for _ in range(20):
        record = sync.create(new(sync)).record
        go = threading.Barrier(51)

        def request(record: Record = record, go: threading.Barrier = go) -> Outcome:
            go.wait()
            time.sleep(0.001 * secrets.randbelow(5))
            return sync.check(record.id, passive=False).outcome

        with ThreadPoolExecutor(max_workers=50) as pool:
            futures = [pool.submit(request) for _ in range(50)]
            go.wait()
            assert sync.end(record.id, "signed_out") is not None
            after = [sync.check(record.id, passive=False).outcome for _ in range(3)]
            results = [f.result() for f in futures]
        assert set(results) <= {Outcome.VALID, Outcome.SIGNED_OUT} and after == [Outcome.SIGNED_OUT] * 3
        assert sync.check(record.id, passive=False).outcome is Outcome.SIGNED_OUT
        assert raw.exists(Keys(key_prefix).session(record.id)) == 0
    raw.close()


# -- key layout -------------------------------------------------------------------------------------

USER_IDS = st.one_of(st.text(min_size=1, max_size=40),
                     st.text(alphabet="{}:|é\u2603\U0001f600 x", min_size=1, max_size=20))


@given(user_id=USER_IDS)
def test_every_key_of_a_user_shares_one_slot(user_id: str) -> None:
    keys = Keys("sg:a")
    tag = FIXED.slot_tag(user_id)
    ids = [new(FIXED, user_id).id for _ in range(3)]
    names = [keys.user_index(tag, user_id), keys.settings(tag, user_id)]
    names += [name for i in ids for name in (keys.session(i), keys.tombstone(i))]
    assert all(name.startswith(f"sg:a:{{{tag}}}:") for name in names)
    assert len({key_slot(name.encode()) for name in names}) == 1


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates too


@given(user_id=ANY_TEXT.filter(bool), ip=ANY_TEXT, city=st.none() | ANY_TEXT, agent=ANY_TEXT,
       metadata=st.dictionaries(ANY_TEXT, ANY_TEXT | st.integers() | st.lists(ANY_TEXT), max_size=3))
def test_the_record_codec_round_trips(user_id: str, ip: str, city: str | None, agent: str,
                                      metadata: dict[str, Any]) -> None:
    fresh = new(FIXED, user_id, "mobile", ip=ip, city=city, user_agent=agent, device="d", metadata=metadata)
    # the header as records.lua writes it (times in base 36), then the tail as the store sends it
    header = f"{base36(1_800_000_000_000)}|{base36(1_800_000_001_000)}|r900|m|{encode_user(user_id)}|"
    value = header.encode() + record_tail(fresh)
    assert decode_record(fresh.id, value) == Record(
        id=fresh.id, user_id=user_id, platform="mobile", created=1_800_000_000_000,
        last_seen=1_800_000_001_000, remember_me=True, ip=ip, city=city, user_agent=agent, device="d",
        metadata=metadata, user_idle=900)


def base36(n: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
        if not n:
            return digits


IDS = st.builds(lambda user: new(FIXED, user).id, st.text(max_size=5))
TIMES = st.integers(min_value=0, max_value=2**47)


@given(entries=st.lists(st.tuples(TIMES, IDS), min_size=2, max_size=20))
def test_listing_index_members_sort_as_the_listing(entries: list[tuple[int, str]]) -> None:
    members = [idx_member(created, sid) for created, sid in entries]
    assert [idx_position(m) for m in members] == entries
    by_member = [idx_position(m) for m in sorted(members)]
    assert by_member == sorted(entries, key=lambda e: (-e[0], e[1]))
    for created, sid in entries:  # idx_bound: later logins before it, this one and older after
        assert idx_member(created + 1, sid) < idx_bound(created) < idx_member(created, sid)


@given(sid=IDS)
def test_packed_ids_round_trip(sid: str) -> None:
    assert len(pack_id(sid)) == 20 and unpack_id(pack_id(sid), 26) == sid
    assert len(pack_id(sid[4:])) == 17 and unpack_id(pack_id(sid[4:]), 22) == sid[4:]


def test_lua_writes_the_layout_python_reads(redis_url: str, key_prefix: str, make_stores: Any) -> None:
    sync, _ = make_stores(redis_url, key_prefix)
    user = "ada.lovelace@example.com"
    record = sync.create(new(sync, user, "desktop", remember_me=True, metadata={"a": [1]})).record
    raw, keys = redis.Redis.from_url(redis_url), Keys(key_prefix)
    assert raw.zrange(keys.user_index(record.id[:4], user), 0, -1) == [user_member("desktop", record.id)]
    assert user_member("desktop", record.id) == b"d" + pack_id(record.id[4:])
    assert raw.zscore(keys.idx, idx_member(record.created, record.id)) == 0
    base = f"{key_prefix}:{{{record.id[:4]}}}:"
    assert raw.exists(f"{base}s:{record.id[4:]}", f"{base}u:{user}") == 2
    assert decode_record(record.id, raw.get(keys.session(record.id))) == record
    assert raw.get(keys.session(record.id)).startswith(f"{base36(record.created)}|".encode())
    raw.close()


@settings(max_examples=30, deadline=None)
@given(user_id=USER_IDS)
def test_the_cluster_agrees_on_the_slot(redis_cluster: Any, user_id: str) -> None:
    keys = Keys("sg")
    tag = FIXED.slot_tag(user_id)
    node = redis_cluster.nodes[0]
    for name in (keys.user_index(tag, user_id), keys.session(new(FIXED, user_id).id)):
        assert node.command("CLUSTER", "KEYSLOT", name) == key_slot(name.encode())


def test_every_key_expires_but_the_shared_ones(redis_url: str, key_prefix: str, make_stores: Any) -> None:
    sync, _ = make_stores(redis_url, key_prefix, max_sessions=1, allow_user_timeouts=True)
    sync.set_user_timeouts("ada", {"web": 600})
    first = sync.create(new(sync)).record
    sync.create(new(sync))
    sync.create(new(sync, "bob"))
    sync.end_user("bob", "revoked")
    sync.end_all()
    sync.set_policy(sync.policy())
    sync.append_self_service("ada", [Event("settings_changed", 1, "user:ada", "ada")])
    sync.append_events([Event("login", 1, "system", "ada")])
    sync.check(first.id, passive=False)
    raw = redis.Redis.from_url(redis_url)
    keys = Keys(key_prefix)
    ttls = {k.decode(): raw.pttl(k) for k in raw.scan_iter(match=f"{key_prefix}*")}
    shared = {keys.state, keys.idx, keys.audit, keys.deadlines, keys.deadlines_policy}
    assert shared - {keys.deadlines_policy} <= set(ttls) and all(ttls[k] == -1 for k in shared & set(ttls))
    assert all(ttl > 0 for k, ttl in ttls.items() if k not in shared), [k for k, t in ttls.items() if t <= 0]
    raw.close()


def test_memory_per_session_is_small(private_redis: RedisServer, make_stores: Any) -> None:
    # a typical session: its record, its user's index (the user's only session) and its entry
    # in the listing index (measured among enough entries to take its large encoding)
    sync, _ = make_stores(private_redis.url)
    records = [sync.create(new(sync, f"user{i:04d}.lovelace@example.com", ip="203.0.113.7", user_agent=UA,
                                device="Chrome 131 on macOS",
                                metadata={"name": "Ada Lovelace", "roles": ["admin"]})).record
               for i in range(1000)]
    raw, keys, record = private_redis.client(), Keys("sg"), records[0]
    usage = [raw.memory_usage(key, samples=0) for key in (
        keys.session(record.id), keys.user_index(record.id[:4], record.user_id), keys.idx)]
    assert raw.object("encoding", keys.idx) == b"skiplist"
    per_session = usage[0] + usage[1] + usage[2] / len(records)
    assert per_session <= 600, usage


# -- the state every process caches -----------------------------------------------------------------


def test_signout_all_reaches_other_processes_at_once(redis_url: str, key_prefix: str,
                                                     make_stores: Any) -> None:
    one, _ = make_stores(redis_url, key_prefix)
    two, _ = make_stores(redis_url, key_prefix)
    record = one.create(new(one)).record
    assert two.check(record.id, passive=True).outcome is Outcome.VALID
    wait_until(lambda: two.subscribed)
    one.end_all()
    began = time.monotonic()
    wait_until(lambda: two.check(record.id, passive=True).outcome is Outcome.SIGNOUT_ALL, timeout=1)
    assert time.monotonic() - began < 0.2


def test_another_process_sees_exact_idle_expiry(redis_url: str, key_prefix: str, make_stores: Any) -> None:
    """A use process A did not write back reaches Redis by its moment (A's
    subscriber writes it), so process B ends the session exactly an idle
    timeout after that use, not after the last written one."""
    clock = FakeClock()

    def millis() -> int:
        return round(clock() * 1000)

    a, _ = make_stores(redis_url, key_prefix, clock=millis, idle_timeout=1800)  # interval 10 min
    b, _ = make_stores(redis_url, key_prefix, clock=millis, idle_timeout=1800)
    record = a.create(new(a)).record
    wait_until(lambda: a.subscribed)
    clock.advance(120)
    assert a.check(record.id, passive=False).outcome is Outcome.VALID  # a use, kept unwritten
    assert len(a._ops.unwritten) == 1
    clock.advance(600)  # its moment: ten minutes after the use
    wait_until(lambda: len(a._ops.unwritten) == 0)
    clock.advance(1800 - 600 - 0.001)
    assert b.check(record.id, passive=True).outcome is Outcome.VALID
    clock.advance(0.001)
    assert b.check(record.id, passive=True).outcome is Outcome.IDLE_TIMEOUT


def test_a_steady_user_costs_one_write_per_touch_interval(private_redis: RedisServer,
                                                          make_stores: Any) -> None:
    """Issue 6: one request a second for ten minutes, idle timeout 30 minutes."""
    clock = FakeClock()

    def millis() -> int:
        return round(clock() * 1000)

    store, _ = make_stores(private_redis.url, clock=millis, idle_timeout=1800)
    record = store.create(new(store)).record
    client = private_redis.client()
    client.config_resetstat()
    for _ in range(600):
        clock.advance(1)
        assert store.check(record.id, passive=False).outcome is Outcome.VALID
    clock.advance(1800 - 0.001)
    store.write_due()
    assert store.check(record.id, passive=True).outcome is Outcome.VALID  # 30 minutes after the last use
    stats = client.info("commandstats")
    assert stats["cmdstat_set"]["calls"] <= 2, stats["cmdstat_set"]
    clock.advance(0.001)
    assert store.check(record.id, passive=True).outcome is Outcome.IDLE_TIMEOUT
    client.close()


def test_a_process_without_subscription_polls_within_a_second(redis_url: str, key_prefix: str,
                                                              make_stores: Any) -> None:
    one, _ = make_stores(redis_url, key_prefix)
    two, _ = make_stores(redis_url, key_prefix)
    assert two.policy() == one.policy()
    wait_until(lambda: two.subscribed)
    two._shared.subscriber.stop()
    wait_until(lambda: not two.subscribed)
    shorter = one.policy().updated({"platforms": {"web": {"idle_timeout": "5m"}}})
    one.set_policy(shorter)
    began = time.monotonic()
    wait_until(lambda: two.policy() == shorter, timeout=redis_state.POLL_SECONDS + 0.5)
    assert time.monotonic() - began <= redis_state.POLL_SECONDS + 0.1


# -- maxmemory-policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "warned"), [("allkeys-lru", True), ("noeviction", False)])
def test_maxmemory_policy_warning(policy: str, warned: bool, private_redis_factory: Any,
                                  make_stores: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sessionguard")
    server = private_redis_factory("--maxmemory-policy", policy)
    sync, _ = make_stores(server.url)
    sync.check(unknown_id(), passive=False)
    wait_until(lambda: sync.subscribed)
    warnings = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].levelno == logging.WARNING and policy in warnings[0].getMessage()


# -- device binding (DBSC) -----------------------------------------------------------------------


def test_a_device_key_lives_with_its_session(redis_server: Any, key_prefix: str, make_stores: Any) -> None:
    key = '{"crv":"P-256","kty":"EC","x":"x","y":"y"}'
    sync, _ = make_stores(redis_server.url, key_prefix)
    record = sync.create(new(sync)).record
    keys = Keys(key_prefix)
    with redis_server.client() as raw:
        assert sync.bind(record.id, key, "c1", sync.now()).record.device_bound
        assert raw.get(keys.session(record.id)).split(b"|")[2] == b"b"  # the flag, after remember-me's
        device = keys.device_key(record.id)
        assert raw.hget(device, "key") == key.encode() and raw.hexists(device, "c1")
        record_ttl, device_ttl = raw.pttl(keys.session(record.id)), raw.pttl(device)
        assert record_ttl < device_ttl <= record_ttl + 3_600_000
        assert sync.end(record.id, "revoked") is not None
        assert not raw.exists(device)
        unbound = sync.create(new(sync)).record
        assert sync.end(unbound.id, "revoked") is not None
        assert not raw.exists(keys.device_key(unbound.id))
