"""``LOCAL_CACHE``: hot sessions validated without a round trip, and the bound
on staleness proven across two "app servers" (two guards with their own store
objects on one Redis and one key prefix).

Timeouts and logins run on the shared FakeClock; the cache's own bound is real
(monotonic) time, kept short (:data:`BOUND`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import SECRET, FakeClock
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard
from sessionguard.core import Outcome, Record
from sessionguard.stores.protocol import Check
from sessionguard.stores.redis.local_cache import Hit, LocalCache
from test_redis_store import app_client, new, request_commands, unknown_id, wait_until

BOUND = 0.3
#: a change reaches the other server through pub/sub well within the bound
PUSHED = 0.15

Server = Callable[..., SessionGuard]


@pytest.fixture
def server(redis_url: str, key_prefix: str, clock: FakeClock) -> Iterator[Server]:
    """``server(url=None, **config)``: one app server's guard (its own store objects)."""
    made: list[SessionGuard] = []

    def make(url: str | None = None, **settings: Any) -> SessionGuard:
        config = Config(secret_key=SECRET, store_url=url or redis_url, key_prefix=key_prefix,
                        local_cache=BOUND, **settings)
        guard = SessionGuard(config, clock=clock)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        guard.close()


def subscribed(*guards: SessionGuard) -> None:
    for guard in guards:
        guard.store.check(unknown_id(), passive=True)  # starts the subscriber, loads the script
    for guard in guards:
        wait_until(lambda g=guard: g.store.subscribed)  # type: ignore[attr-defined, misc]


def outcome(guard: SessionGuard, record: Record, passive: bool = False) -> Outcome:
    result: Outcome = guard.store.check(record.id, passive=passive).outcome
    return result


def refused_within(guard: SessionGuard, record: Record, timeout: float) -> tuple[float, Outcome]:
    """Seconds until ``guard`` refuses ``record`` (checking every millisecond, passively: the
    checks are not uses that could keep it alive), and why."""
    began = time.monotonic()
    while (result := outcome(guard, record, passive=True)) is Outcome.VALID:
        assert time.monotonic() - began < timeout, "still valid past the bound"
        time.sleep(0.001)
    return time.monotonic() - began, result


def local(guard: SessionGuard) -> LocalCache:
    cache: LocalCache = guard.store._ops.local  # type: ignore[attr-defined]
    return cache


# -- hits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_hits_cost_no_round_trip_until_the_bound(shell: str, private_redis: RedisServer,
                                                 counting_proxy: Any, clock: FakeClock) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    guard = SessionGuard(Config(secret_key=SECRET, store_url=proxy.url, local_cache=BOUND), clock=clock)
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        subscribed(guard)
        assert client.get("/whoami").json()["session"]["user_id"] == "ada"  # a miss: cached
        proxy.reset()
        for passive in ("0", "1") * 10:
            answer = client.get("/whoami", headers={"x-session-passive": passive}).json()
            assert answer["session"]["user_id"] == "ada"
        assert request_commands(proxy) == []
        time.sleep(BOUND)  # past the bound: one request revalidates, the next ones hit again
        for _ in range(5):
            assert client.get("/whoami").json()["session"]["user_id"] == "ada"
        assert request_commands(proxy) == ["MGET"]
    guard.close()


def test_hits_do_not_touch_and_the_next_miss_does(server: Server, clock: FakeClock) -> None:
    guard = server()
    subscribed(guard)
    record = guard.store.create(new(guard.store)).record
    assert outcome(guard, record) is Outcome.VALID  # cached
    clock.advance(5)
    assert guard.store.check(record.id, passive=False).record.last_seen == record.created
    time.sleep(BOUND)
    assert guard.store.check(record.id, passive=False).record.last_seen == record.created + 5000


def test_a_timeout_inside_the_window_still_ends_the_session(server: Server, clock: FakeClock) -> None:
    guard = server(idle_timeout="1h")
    subscribed(guard)
    record = guard.store.create(new(guard.store)).record
    assert outcome(guard, record) is Outcome.VALID
    clock.advance(3600)
    check = guard.store.check(record.id, passive=True)  # judged locally, confirmed by Redis
    assert (check.outcome, check.ended) == (Outcome.IDLE_TIMEOUT, record)


def test_memory_store_ignores_the_setting(clock: FakeClock) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, local_cache=BOUND), clock=clock)
    record = guard.store.create(new(guard.store)).record
    assert outcome(guard, record) is Outcome.VALID
    guard.store.end(record.id, "revoked")
    assert outcome(guard, record) is Outcome.REVOKED


# -- changes made on another server ---------------------------------------------------------


def _set_policy(a: SessionGuard, record: Record) -> None:
    a.store.set_policy(a.store.policy().updated({"platforms": {"web": {"absolute_timeout": "1m"}}}))


CHANGES = [
    pytest.param({}, lambda a, r: a.store.end(r.id, "revoked"), Outcome.REVOKED, id="revoke"),
    pytest.param({}, lambda a, r: a.store.end_user(r.user_id, "revoked"), Outcome.REVOKED,
                 id="sign-out-user"),
    pytest.param({}, lambda a, r: a.store.end_all(), Outcome.SIGNOUT_ALL, id="sign-out-everyone"),
    pytest.param({}, _set_policy, Outcome.ABSOLUTE_TIMEOUT, id="policy"),
    pytest.param({"max_sessions": 1}, lambda a, r: a.store.create(new(a.store, r.user_id)), Outcome.EVICTED,
                 id="eviction"),
    pytest.param({"allow_user_timeouts": True},
                 lambda a, r: a.store.set_user_timeouts(r.user_id, {"web": 60}), Outcome.IDLE_TIMEOUT,
                 id="user-timeouts"),
]


@pytest.mark.parametrize(("settings", "change", "reason"), CHANGES)
def test_a_change_on_one_server_reaches_the_other_at_once(
        server: Server, clock: FakeClock, settings: dict[str, Any],
        change: Callable[[SessionGuard, Record], Any], reason: Outcome) -> None:
    a, b = server(**settings), server(**settings)
    subscribed(a, b)
    record = a.store.create(new(a.store)).record
    assert outcome(b, record) is Outcome.VALID  # B caches it
    clock.advance(61)  # still valid on B by the old rules
    # passive: an active request now would be a use, which a 60 s own idle timeout counts
    assert outcome(b, record, passive=True) is Outcome.VALID and len(local(b)) == 1
    change(a, record)
    elapsed, why = refused_within(b, record, timeout=BOUND)
    assert why is reason
    assert elapsed < PUSHED, elapsed


def test_new_roles_reach_the_other_servers_cache_at_once(server: Server) -> None:
    a, b = server(), server()
    subscribed(a, b)
    record = a.store.create(new(a.store, metadata={"name": "Ada", "roles": ["admin"]})).record

    def metadata_on_b() -> Any:
        seen = b.store.check(record.id, passive=True).record
        assert seen is not None
        return seen.metadata

    assert metadata_on_b()["roles"] == ["admin"] and len(local(b)) == 1  # B caches it
    assert [r.id for r in a.store.set_roles(record.user_id, ["viewer"])] == [record.id]
    began = time.monotonic()
    while metadata_on_b()["roles"] != ["viewer"]:
        assert time.monotonic() - began < BOUND, "old roles past the bound"
        time.sleep(0.001)
    assert time.monotonic() - began < PUSHED
    assert metadata_on_b() == {"name": "Ada", "roles": ["viewer"]}


# -- when the invalidation channel fails ------------------------------------------------------


@pytest.mark.parametrize("cut", ["client-kill", "proxy-drop"])
def test_a_revocation_is_refused_within_the_bound_when_pubsub_is_cut(
        cut: str, private_redis: RedisServer, counting_proxy: Any, server: Server) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    a, b = server(private_redis.url), server(proxy.url)
    subscribed(a, b)
    record = a.store.create(new(a.store)).record
    assert outcome(b, record) is Outcome.VALID
    if cut == "client-kill":
        private_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    else:
        proxy.disconnect_all()
    a.store.end(record.id, "revoked")
    elapsed, why = refused_within(b, record, timeout=BOUND + 0.05)
    assert why is Outcome.REVOKED and elapsed <= BOUND


def test_a_lost_message_is_bounded_by_the_setting(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = server(), server()
    subscribed(a, b)
    record = a.store.create(new(a.store)).record
    monkeypatch.setattr(b.store._ops.cache, "announced", lambda payload: None)  # type: ignore[attr-defined]
    fetched = time.monotonic()
    assert outcome(b, record) is Outcome.VALID
    a.store.end(record.id, "revoked")
    assert outcome(b, record) is Outcome.VALID  # stale, for at most the bound
    refused_within(b, record, timeout=BOUND + 0.05)
    assert time.monotonic() - fetched <= BOUND + 0.05


def test_a_lost_subscription_empties_the_cache(private_redis: RedisServer, counting_proxy: Any,
                                               server: Server) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    guard = server(proxy.url)
    subscribed(guard)
    record = guard.store.create(new(guard.store)).record
    assert outcome(guard, record) is Outcome.VALID and len(local(guard)) == 1
    guard.store._shared.subscriber.stop()  # type: ignore[attr-defined]
    assert len(local(guard)) == 0
    proxy.reset()
    for _ in range(3):
        assert outcome(guard, record) is Outcome.VALID
    assert request_commands(proxy).count("MGET") == 3 and len(local(guard)) == 0


# -- the cache itself -------------------------------------------------------------------------


def valid(i: int) -> Hit:
    record = Record(id=f"r{i}", user_id="ada", platform="web", created=0, last_seen=0)
    return Hit(Check(Outcome.VALID, record), None, 1000, None)


def test_the_cache_is_bounded_oldest_out() -> None:
    cache = LocalCache(60, lambda now: True, max_entries=3)
    for i in range(5):
        cache.put(cache.ticket(), valid(i))  # type: ignore[arg-type]
    assert len(cache) == 3 and cache.get("r1") is None and cache.get("r4") == valid(4)


def test_an_answer_in_flight_across_a_drop_stays_out() -> None:
    cache = LocalCache(60, lambda now: True)
    ticket = cache.ticket()
    assert ticket is not None
    cache.drop(["r1"])
    cache.put(ticket, valid(1))
    cache.put(ticket, valid(2))
    assert cache.get("r1") is None and cache.get("r2") == valid(2)
    cache.clear()
    cache.put(ticket, valid(3))
    assert len(cache) == 0
    cache.put(cache.ticket(), valid(1))  # type: ignore[arg-type]
    assert cache.get("r1") == valid(1)


def test_an_untrusted_channel_empties_and_bypasses_the_cache() -> None:
    trusted = [True]
    cache = LocalCache(60, lambda now: trusted[0])
    cache.put(cache.ticket(), valid(1))  # type: ignore[arg-type]
    trusted[0] = False
    assert cache.get("r1") is None and len(cache) == 0 and cache.ticket() is None


def test_a_binding_on_one_server_reaches_the_other_at_once(server: Server, clock: FakeClock) -> None:
    a, b = server(), server()
    subscribed(a, b)
    record = a.store.create(new(a.store)).record
    assert b.store.check(record.id, passive=False, unbound_token=True).outcome is Outcome.VALID
    assert len(local(b)) == 1  # B caches the session as unbound
    a.store.bind(record.id, '{"kty":"EC"}', "c1", round(clock() * 1000))
    began = time.monotonic()
    while b.store.check(record.id, passive=False, unbound_token=True).outcome is Outcome.VALID:
        assert time.monotonic() - began < PUSHED, "the binding did not reach the other server"
        time.sleep(0.001)
    assert b.store.check(record.id, passive=False).record.device_bound  # cached again, bound
    assert len(local(b)) == 1
    assert b.store.check(record.id, passive=False, unbound_token=True).outcome is Outcome.STALE  # a hit
