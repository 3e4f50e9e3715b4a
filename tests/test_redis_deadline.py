"""One deadline per store call, kept under CLIENT PAUSE and SIGSTOP by every
request (lane, fallback and retries included); which calls are sent again after
a late reply or a dropped connection (calls.Rerun); the private attributes of
redis-py and asyncio (stores/redis/internals.py) and the public path without them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio.connection
import redis.connection

from conftest import SECRET
from redis_servers import RedisServer
from sessionguard import Config, StoreUnavailable
from sessionguard.core import Outcome
from sessionguard.policy import Policy
from sessionguard.stores.redis import AsyncRedisStore, RedisStore, internals, lane_async, open_redis_stores
from sessionguard.stores.redis import state as redis_state
from sessionguard.stores.redis.clients import MAX_CONNECTIONS
from test_redis_store import new, request_commands, wait_until

pytestmark = pytest.mark.redis
Stores = tuple[RedisStore, AsyncRedisStore]


@pytest.fixture
def make_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stores]]:
    """``make_stores(url, **config)``: both stores of one "process", closed at teardown."""
    monkeypatch.setattr(redis_state, "RESYNC_SECONDS", 3600.0)  # no re-reads in the counts
    made: list[RedisStore] = []

    def make(url: str, **config: Any) -> Stores:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix="sg", **config)
        stores = open_redis_stores(cfg, Policy.from_config(cfg))
        made.append(stores[0])
        return stores

    yield make
    for store in made:
        store.close()


def test_a_login_whose_reply_is_late_is_not_sent_again(private_redis: RedisServer, counting_proxy: Any,
                                                        make_stores: Any) -> None:
    # a login (Rerun.ON_DROP: its admission may read a page of the user's sessions and
    # evict): after a timeout Redis may still be running it, so it is not run again; it
    # did take its one slot
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5, max_sessions=1, on_limit="reject")
    sync.create(new(sync, "bob"))  # loads the library (Function not found)
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    sleeper = threading.Thread(target=private_redis.command, args=("DEBUG", "SLEEP", "0.3"))
    sleeper.start()
    time.sleep(0.05)
    with pytest.raises(StoreUnavailable):
        sync.create(new(sync))  # the reply comes after the 0.2 s read timeout
    sleeper.join()
    assert request_commands(proxy).count("FCALL") == 1
    assert len(sync.user_sessions("ada")) == 1


def test_an_end_whose_reply_is_late_is_sent_again(private_redis: RedisServer, counting_proxy: Any,
                                                   make_stores: Any) -> None:
    # ending one session is cheap and idempotent (Rerun.ALWAYS): a late reply is retried
    # within STORE_TIMEOUT
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5)
    record = sync.create(new(sync)).record
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    sleeper = threading.Thread(target=private_redis.command, args=("DEBUG", "SLEEP", "0.3"))
    sleeper.start()
    time.sleep(0.05)
    sync.end(record.id, "signed_out")  # the first reply comes after the 0.2 s read timeout
    sleeper.join()
    assert request_commands(proxy).count("FCALL") == 2
    assert sync.check(record.id, passive=True).outcome is Outcome.SIGNED_OUT


def test_a_login_is_sent_again_after_a_dropped_connection(private_redis: RedisServer, counting_proxy: Any,
                                                          make_stores: Any) -> None:
    # a dropped connection (not a timeout) is worth one more try even for a login
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5, max_sessions=1, on_limit="reject")
    sync.create(new(sync, "bob"))
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    private_redis.command("CLIENT", "PAUSE", 150, "WRITE")  # the login waits, unanswered

    def kill() -> None:
        time.sleep(0.05)
        private_redis.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    killer = threading.Thread(target=kill)
    killer.start()
    created = sync.create(new(sync))
    killer.join()
    assert request_commands(proxy).count("FCALL") == 2
    assert sync.user_sessions("ada") == [created.record]


def test_a_paged_call_is_not_sent_again_after_a_dropped_connection(
        private_redis: RedisServer, counting_proxy: Any, make_stores: Any) -> None:
    # a page of end_user (Rerun.NEVER) run twice would lose the sessions it ended from its
    # answer: a dropped connection is a 503, and the page, never run, ended nothing
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5)
    record = sync.create(new(sync)).record
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    private_redis.command("CLIENT", "PAUSE", 150, "WRITE")  # the page waits, unanswered

    def kill() -> None:
        time.sleep(0.05)
        private_redis.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    killer = threading.Thread(target=kill)
    killer.start()
    with pytest.raises(StoreUnavailable):
        sync.end_user("ada", "revoked")
    killer.join()
    assert request_commands(proxy).count("FCALL") == 1
    assert sync.check(record.id, passive=True).outcome is Outcome.VALID


# -- one deadline per call: every 503 within STORE_TIMEOUT + 0.1 s ---------------------

TIMEOUT = 0.5
LATE = TIMEOUT + 0.1


@contextlib.contextmanager
def stalled(server: RedisServer, how: str) -> Iterator[None]:
    """Redis stops answering: ``CLIENT PAUSE`` (it still accepts connections and
    reads commands) or ``SIGSTOP`` (only the kernel accepts and buffers)."""
    pid = server.pid
    assert pid is not None
    if how == "pause":
        server.pause(int(LATE * 2 * 1000))
        try:
            yield
        finally:
            time.sleep(LATE * 2)  # the pause cannot be ended early
    else:
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


def timed(call: Callable[[], Any]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        call()
        answer = "answered"
    except StoreUnavailable:
        answer = "503"
    return answer, time.monotonic() - started


async def timed_async(call: Awaitable[Any], delay: float) -> tuple[str, float]:
    await asyncio.sleep(delay)
    started = time.monotonic()
    try:
        await call
        answer = "answered"
    except StoreUnavailable:
        answer = "503"
    return answer, time.monotonic() - started


def assert_all_in_time(results: list[tuple[str, float]]) -> None:
    late = sorted(round(elapsed, 3) for answer, elapsed in results if answer != "503" or elapsed > LATE)
    assert not late, f"{len(late)} of {len(results)} requests without a 503 within {LATE} s: {late}"


@pytest.mark.parametrize("how", ["pause", "sigstop"])
async def test_every_async_request_gets_its_503_in_time(private_redis: RedisServer, make_stores: Any,
                                                        how: str) -> None:
    # requests queued on the lane behind one that times out go to the ordinary path:
    # with what is left of their own deadline, not a fresh STORE_TIMEOUT
    sync, async_ = make_stores(private_redis.url, store_timeout=TIMEOUT)
    records = [sync.create(new(sync, f"user{i}")).record for i in range(24)]
    await async_.check(records[0].id, passive=True)  # the lane is open, the script loaded
    with stalled(private_redis, how):
        calls = [async_.check(r.id, passive=True) for r in records]
        calls += [async_.end(r.id, "signed_out") for r in records[:8]]  # the ordinary path, retried
        results = await asyncio.gather(*(timed_async(c, 0.01 * (i % 12)) for i, c in enumerate(calls)))
    assert_all_in_time(results)
    await async_.close()


@pytest.mark.parametrize("how", ["pause", "sigstop"])
def test_every_sync_request_gets_its_503_in_time(private_redis: RedisServer, make_stores: Any,
                                                 how: str) -> None:
    sync, _ = make_stores(private_redis.url, store_timeout=TIMEOUT)
    records = [sync.create(new(sync, f"user{i}")).record for i in range(16)]
    sync.check(records[0].id, passive=True)
    calls: list[Callable[[], Any]] = [
        functools.partial(sync.check, r.id, passive=True) for r in records]
    calls += [functools.partial(sync.end, r.id, "signed_out") for r in records[:8]]
    calls += [functools.partial(sync.create, new(sync, f"user{i}")) for i in range(8)]
    with stalled(private_redis, how), ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(timed, calls))
    assert_all_in_time(results)


# -- the private attributes of redis-py and asyncio (stores/redis/internals.py) ----------


def test_the_installed_redis_py_and_asyncio_have_what_the_lanes_use() -> None:
    # CI runs this on the lowest redis-py allowed and on the newest
    assert internals.check() == internals.Found(sync_socket=True, async_streams=True, loop_ready=True,
                                                pool_connections=True)


async def test_without_them_the_accessors_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "found", internals.NONE)
    sync_connection = redis.connection.Connection()
    async_connection = redis.asyncio.connection.Connection()
    assert internals.sync_socket(sync_connection) is None
    assert not internals.can_detach_streams()
    assert internals.detach_streams(async_connection) is None
    assert internals.others_ready(asyncio.get_running_loop())  # taken as busy: no polling
    assert internals.connection_socket(sync_connection) is None  # a failover cuts nothing
    assert internals.pool_connections(redis.connection.ConnectionPool()) == []


def normal_clients(server: RedisServer) -> int:
    """Connections of ordinary clients, not counting the one asking."""
    listing = server.command("CLIENT", "LIST", "TYPE", "normal")
    assert isinstance(listing, bytes)
    return len(listing.splitlines()) - 1


async def test_without_them_the_store_uses_redis_py_alone(private_redis: RedisServer, make_stores: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "found", internals.NONE)  # the documented switch

    def no_take_over(*args: Any) -> None:
        raise AssertionError("the async lane took redis-py's streams over")

    monkeypatch.setattr(lane_async, "_take_over", no_take_over)
    sync, async_ = make_stores(private_redis.url, store_timeout=TIMEOUT)
    records = [sync.create(new(sync, f"user{i}")).record for i in range(64)]
    checks = await asyncio.gather(*(async_.check(r.id, passive=False) for r in records))
    assert [c.outcome for c in checks] == [Outcome.VALID] * 64
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda r: sync.check(r.id, passive=False).outcome, records))
    assert outcomes == [Outcome.VALID] * 64
    assert await async_.end(records[0].id, "signed_out") is not None
    assert (await async_.check(records[0].id, passive=True)).outcome is Outcome.SIGNED_OUT
    # bounded: the sync and the async client's pools (MAX_CONNECTIONS each), a lane
    # connection per sync thread
    bound = 2 * MAX_CONNECTIONS + 8
    assert normal_clients(private_redis) <= bound

    with stalled(private_redis, "pause"):
        results = await asyncio.gather(*(timed_async(async_.check(r.id, passive=True), 0.01 * (i % 12))
                                         for i, r in enumerate(records[:24])))
        with ThreadPoolExecutor(8) as pool:
            results += list(pool.map(timed, [functools.partial(sync.check, r.id, passive=True)
                                             for r in records[:8]]))
    assert_all_in_time(results)
    assert (await async_.check(records[1].id, passive=True)).outcome is Outcome.VALID  # and back
    assert normal_clients(private_redis) <= bound  # the timed-out ones were closed

    await async_.close()
    sync.close()
    assert normal_clients(private_redis) == 0  # nothing left open
