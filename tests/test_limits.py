"""``MAX_SESSIONS_TOTAL`` and lowered limits (SPEC 9.1), on both shells and
both stores (``harness``), with what only Redis has to prove (racing logins,
a second process, a restart with a lower limit, Redis Cluster) at the end."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from conftest import SECRET, FakeClock, Harness
from sessionguard import Config, SessionGuard, SessionLimitReached
from sessionguard.core import Outcome
from sessionguard.policy import Policy
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import RedisStore, open_redis_stores
from sessionguard.tokens import Tokens, session_id

ADMIN_TOKEN = "t" * 40
TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API = "/_sessionguard/api"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(harness: Harness, platform: str = "web", user: str = "ada", **body: Any) -> str:
    """Log in from a new client, a second later than the last; the session's token."""
    harness.clock.advance(1)
    response = harness.new_client().post("/login", json={"user": user, "platform": platform, **body})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def seen(harness: Harness, token: str) -> Any:
    """What a request presenting ``token`` sees: the session's id, or why it ended."""
    answer = harness.whoami(client=harness.new_client(), headers=bearer(token))
    return answer["session"]["id"] if answer["session"] else answer["ended_reason"]


def valid(harness: Harness, token: str) -> bool:
    return seen(harness, token) not in ("evicted", "idle_timeout", "absolute_timeout", "invalid", None)


def events(harness: Harness, kind: str, user: str = "ada") -> list[dict[str, Any]]:
    response = harness.new_client().get(f"{API}/audit", params={"user_id": user, "limit": 100}, headers=TOKEN)
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["type"] == kind]


def put_policy(harness: Harness, body: Any) -> Any:
    return harness.new_client().put(f"{API}/policy", json=body, headers=TOKEN)


# -- MAX_SESSIONS_TOTAL at login --------------------------------------------------------------


def test_total_limit_evicts_the_oldest_login_of_all_platforms(make_harness: Any) -> None:
    harness = make_harness(max_sessions_total="3", admin_token=ADMIN_TOKEN)
    web, mobile, desktop = login(harness, "web"), login(harness, "mobile"), login(harness, "desktop")
    fourth = login(harness, "mobile")
    assert seen(harness, web) == "evicted"
    assert all(valid(harness, t) for t in (mobile, desktop, fourth))
    assert [e["platform"] for e in events(harness, "evicted")] == ["web"]
    assert login(harness, "web", user="grace")  # per user


def test_total_limit_evicts_the_least_recent(make_harness: Any) -> None:
    harness = make_harness(max_sessions_total="2", evict="least_recent")
    web, mobile = login(harness, "web"), login(harness, "mobile")
    harness.clock.advance(5)
    assert valid(harness, web)  # the web session is now the most recently used
    login(harness, "desktop")
    assert seen(harness, mobile) == "evicted" and valid(harness, web)


def test_total_limit_rejects_and_changes_nothing(make_harness: Any) -> None:
    harness = make_harness(max_sessions_total="2", on_limit="reject", max_sessions="5")
    tokens = [login(harness, "web"), login(harness, "mobile")]
    response = harness.new_client().post("/login", json={"user": "ada", "platform": "desktop"})
    assert response.status_code == 409 and response.json() == {"error": "limit", "limit": 2}
    assert all(valid(harness, t) for t in tokens)


def test_both_limits_hold_after_every_login(make_harness: Any) -> None:
    # the platform's limit evicts first; the total then counts what it leaves
    harness = make_harness(web_max_sessions="2", max_sessions_total="3")
    first, mobile, second = login(harness, "web"), login(harness, "mobile"), login(harness, "web")
    third = login(harness, "web")  # web over its limit: the first web login goes, the total holds
    assert seen(harness, first) == "evicted"
    assert all(valid(harness, t) for t in (mobile, second, third))
    fourth = login(harness, "desktop")  # the total: the oldest of all (mobile) goes
    assert seen(harness, mobile) == "evicted"
    assert all(valid(harness, t) for t in (second, third, fourth))


def test_total_limit_under_enforce_report_is_reported(make_harness: Any) -> None:
    harness = make_harness(max_sessions_total="1", enforce="report", admin_token=ADMIN_TOKEN)
    first, second = login(harness, "web"), login(harness, "mobile")
    assert valid(harness, first) and valid(harness, second)
    reported = events(harness, "would_end")
    assert [(e["session_id"], e["reason"]) for e in reported] == [(seen(harness, first), "evicted")]


# -- the policy JSON ----------------------------------------------------------------------------


def test_policy_json_has_the_total_limit(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN, max_sessions_total="4")
    client = harness.new_client()
    assert client.get(f"{API}/policy", headers=TOKEN).json()["max_sessions_total"] == 4
    updated = put_policy(harness, {"max_sessions_total": None})
    assert updated.status_code == 200 and updated.json()["max_sessions_total"] is None
    assert put_policy(harness, {"max_sessions_total": 2}).json()["max_sessions_total"] == 2
    assert harness.guard.store.policy().max_sessions_total == 2
    for bad in (0, -1, True, "3", 1.5, 100_001):
        response = put_policy(harness, {"max_sessions_total": bad})
        assert response.status_code == 422, bad
        assert response.json()["error"]["field"] == "max_sessions_total"
    assert client.get(f"{API}/policy", headers=TOKEN).json()["max_sessions_total"] == 2


def test_the_environment_variable_is_validated() -> None:
    with pytest.raises(Exception, match="SESSIONGUARD_MAX_SESSIONS_TOTAL"):
        SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_MAX_SESSIONS_TOTAL": "0"})
    guard = SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_MAX_SESSIONS_TOTAL": "7"})
    assert guard.default_policy.max_sessions_total == 7
    guard.close()


# -- lowering a limit applies to existing sessions ------------------------------------------------


def test_lowering_a_platform_limit_ends_the_surplus_at_its_next_request(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN)
    webs = [login(harness, "web") for _ in range(3)]
    mobile = login(harness, "mobile")
    other = login(harness, "web", user="grace")
    harness.clock.advance(1)
    assert put_policy(harness, {"platforms": {"web": {"max_sessions": 1}}}).status_code == 200
    harness.clock.advance(1)
    # the first request of a surplus session finds it ended; the newest web login stays
    assert seen(harness, webs[0]) == "evicted"
    assert seen(harness, webs[1]) == "evicted"
    assert valid(harness, webs[2]) and valid(harness, mobile) and valid(harness, other)
    assert seen(harness, webs[0]) == "evicted"  # and it stays so
    ended = events(harness, "evicted")
    assert sorted(e["session_id"] for e in ended) == sorted(_ids(harness, webs[:2]))
    assert all(e["actor"] == "system" for e in ended)
    assert events(harness, "evicted", user="grace") == []


def test_lowering_the_total_ends_the_surplus_in_evict_order(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN, evict="least_recent")
    web, mobile, desktop = login(harness, "web"), login(harness, "mobile"), login(harness, "desktop")
    harness.clock.advance(5)
    assert valid(harness, web)  # the web session: the most recently used
    harness.clock.advance(1)
    assert put_policy(harness, {"max_sessions_total": 2}).status_code == 200
    harness.clock.advance(1)
    assert valid(harness, desktop)  # a kept session's request reconciles the user
    assert seen(harness, mobile) == "evicted"  # the least recently used
    assert valid(harness, web) and valid(harness, desktop)
    assert [e["platform"] for e in events(harness, "evicted")] == ["mobile"]


def test_an_extra_platform_counts_and_its_lowered_limit_applies(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN, platforms="web,mobile,desktop,messenger",
                           max_sessions_total="4")
    chats = [login(harness, "messenger") for _ in range(2)]
    web, desktop = login(harness, "web"), login(harness, "desktop")
    third = login(harness, "messenger")  # the total: the oldest login of all, a messenger session, ends
    assert seen(harness, chats[0]) == "evicted"
    assert all(valid(harness, t) for t in (chats[1], web, desktop, third))
    harness.clock.advance(1)
    assert put_policy(harness, {"platforms": {"messenger": {"max_sessions": 1}}}).status_code == 200
    harness.clock.advance(1)
    assert valid(harness, web)  # a request of any of the user's sessions reconciles them
    assert seen(harness, chats[1]) == "evicted" and valid(harness, third)
    assert [e["platform"] for e in events(harness, "evicted")] == ["messenger", "messenger"]


def test_raising_a_limit_ends_nothing(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN, max_sessions="3")
    tokens = [login(harness, "web") for _ in range(3)]
    assert put_policy(harness, {"platforms": {"web": {"max_sessions": 5}}}).status_code == 200
    harness.clock.advance(1)
    assert all(valid(harness, t) for t in tokens)


def test_lowered_limits_with_a_local_cache(make_harness: Any) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN, local_cache="30s")
    first, second = login(harness, "web"), login(harness, "web")
    assert valid(harness, first) and valid(harness, first)  # cached where the store caches
    assert put_policy(harness, {"max_sessions_total": 1}).status_code == 200
    assert seen(harness, first) == "evicted" and valid(harness, second)


def _ids(harness: Harness, tokens: list[str]) -> list[str]:
    return [str(harness.guard.tokens.session_of(token)) for token in tokens]


# -- Redis: racing logins, processes, restarts, Cluster ---------------------------------------


@pytest.fixture
def stores() -> Iterator[Callable[..., RedisStore]]:
    """``make(url, prefix, **config)``: the sync store of one "process"."""
    made: list[RedisStore] = []

    def make(url: str, prefix: str, clock: Callable[[], int] | None = None, **config: Any) -> RedisStore:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix=prefix, **config)
        store = open_redis_stores(cfg, Policy.from_config(cfg), clock=clock)[0]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def new(store: Any, user: str = "ada", platform: str = "web") -> NewSession:
    sid = Tokens([SECRET]).new_sid(store.slot_tag(user))
    return NewSession(id=session_id(sid), user_id=user, platform=platform)


def test_racing_logins_never_exceed_the_total(redis_url: str, key_prefix: str, stores: Any) -> None:
    store = stores(redis_url, key_prefix, max_sessions_total="3", max_sessions="2")
    barrier = threading.Barrier(12)
    refused: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        try:
            store.create(new(store, platform=("web", "mobile", "desktop")[i % 3]))
        except SessionLimitReached:
            refused.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alive = store.user_sessions("ada")
    assert len(alive) == 3 and not refused
    assert all(sum(r.platform == p for r in alive) <= 2 for p in ("web", "mobile", "desktop"))
    client = redis.Redis.from_url(redis_url)
    index = [k for k in client.scan_iter(match=f"{key_prefix}:*u:*")]
    assert [client.zcard(k) for k in index] == [3]
    client.close()


def test_racing_logins_under_reject(redis_url: str, key_prefix: str, stores: Any) -> None:
    store = stores(redis_url, key_prefix, max_sessions_total="2", on_limit="reject")
    barrier = threading.Barrier(8)
    made: list[str] = []

    def race(i: int) -> None:
        barrier.wait()
        try:
            made.append(store.create(new(store, platform=("web", "mobile")[i % 2])).record.id)
        except SessionLimitReached as error:
            assert error.total and error.limit == 2

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 2 and sorted(r.id for r in store.user_sessions("ada")) == sorted(made)


def test_a_lower_limit_at_restart_applies_to_existing_sessions(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    settings = {"secret_key": SECRET, "store_url": redis_url, "key_prefix": key_prefix,
                "admin_token": ADMIN_TOKEN}
    before = Harness("wsgi", SessionGuard(Config(**settings), clock=clock), clock)
    webs = [login(before, "web") for _ in range(3)]
    mobile = login(before, "mobile")
    before.close()
    before.guard.close()
    clock.advance(60)
    # a restart with lower limits in the environment (a new Config on the same prefix)
    after = Harness("asgi", SessionGuard(Config(**settings, web_max_sessions="2", max_sessions_total="2"),
                                         clock=clock), clock)
    try:
        # web over 2: the oldest web login; then the total over 2: the oldest login left
        assert seen(after, webs[1]) == "evicted"
        assert seen(after, webs[0]) == "evicted"
        assert valid(after, webs[2]) and valid(after, mobile)
        assert len(events(after, "evicted")) == 2
        # a restart that keeps them ends nothing more
        again = Harness("wsgi", SessionGuard(Config(**settings, max_sessions_total="2"), clock=clock), clock)
        clock.advance(1)
        assert valid(again, webs[2]) and valid(again, mobile)
        again.close()
        again.guard.close()
    finally:
        after.close()
        after.guard.close()


def test_a_kind_taken_out_of_platforms_follows_webs_lowered_limit(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    settings = {"secret_key": SECRET, "store_url": redis_url, "key_prefix": key_prefix,
                "admin_token": ADMIN_TOKEN}
    before = Harness("wsgi", SessionGuard(Config(**settings, platforms="web,mobile,desktop,messenger"),
                                          clock=clock), clock)
    chats = [login(before, "messenger") for _ in range(3)]
    before.close()
    before.guard.close()
    clock.advance(60)
    after = Harness("asgi", SessionGuard(Config(**settings, web_max_sessions="1"), clock=clock), clock)
    try:
        assert valid(after, chats[2])  # the newest stays; its request reconciles the user
        assert seen(after, chats[0]) == "evicted" and seen(after, chats[1]) == "evicted"
    finally:
        after.close()
        after.guard.close()


def test_two_processes_agree(redis_url: str, key_prefix: str, clock: FakeClock) -> None:
    settings = {"secret_key": SECRET, "store_url": redis_url, "key_prefix": key_prefix,
                "admin_token": ADMIN_TOKEN}
    one = Harness("asgi", SessionGuard(Config(**settings), clock=clock), clock)
    two = Harness("wsgi", SessionGuard(Config(**settings), clock=clock), clock)
    try:
        tokens = [login(one, "web") for _ in range(4)]
        assert all(valid(two, t) for t in tokens)  # both processes have seen them all
        assert put_policy(one, {"max_sessions_total": 2}).status_code == 200
        pushed = time.monotonic() + 5  # the change reaches the other process through pub/sub
        while two.guard.store.policy().max_sessions_total != 2:
            assert time.monotonic() < pushed, "the lowered limit did not reach the other process"
            time.sleep(0.005)
        clock.advance(1)
        assert seen(two, tokens[0]) == "evicted"  # the other process reconciles
        assert seen(one, tokens[1]) == "evicted"  # and this one agrees
        assert valid(one, tokens[2]) and valid(two, tokens[3])
        assert valid(one, tokens[3]) and valid(two, tokens[2])
        assert len(events(one, "evicted")) == 2
    finally:
        for harness in (one, two):
            harness.close()
            harness.guard.close()


def test_cluster_total_limit_and_lowering(redis_cluster: Any, stores: Any) -> None:
    prefix = f"sgt-{secrets.token_hex(4)}"
    user = "ada{x}"
    store = stores(redis_cluster.url, prefix, max_sessions_total="3")
    cluster = redis_cluster.client()
    try:
        made = []
        for platform in ("web", "mobile", "desktop", "web"):
            made.append(store.create(new(store, user, platform)).record)
            time.sleep(0.002)
        assert [store.check(r.id, passive=True).outcome for r in made] == [
            Outcome.EVICTED, Outcome.VALID, Outcome.VALID, Outcome.VALID]
        other = stores(redis_cluster.url, prefix, max_sessions_total="3")  # another process
        assert other.check(made[1].id, passive=True).outcome is Outcome.VALID
        store.set_policy(store.policy().updated({"max_sessions_total": 1}))
        deadline = time.monotonic() + 5
        while other.policy().max_sessions_total != 1:  # the change reaches the other process
            assert time.monotonic() < deadline
            time.sleep(0.01)
        check = other.check(made[2].id, passive=False)
        assert check.outcome is Outcome.EVICTED and {r.id for r in check.evicted} == {made[1].id}
        assert store.check(made[1].id, passive=True).outcome is Outcome.EVICTED
        assert store.check(made[3].id, passive=True).outcome is Outcome.VALID
        assert [r.id for r in store.user_sessions(user)] == [made[3].id]
    finally:
        for node in cluster.get_primaries():
            for key in cluster.scan_iter(match=f"{prefix}*", target_nodes=node):
                cluster.unlink(key)
        cluster.close()


def test_a_lowered_limit_reaches_the_other_servers_local_cache_at_once(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    from test_local_cache import BOUND, PUSHED, local, refused_within, subscribed

    a, b = (SessionGuard(Config(secret_key=SECRET, store_url=redis_url, key_prefix=key_prefix,
                                local_cache=BOUND), clock=clock) for _ in range(2))
    try:
        subscribed(a, b)
        first = a.store.create(new(a.store)).record
        clock.advance(1)
        second = a.store.create(new(a.store)).record
        for record in (first, second):
            assert b.store.check(record.id, passive=True).outcome is Outcome.VALID  # B caches them
        assert len(local(b)) == 2
        clock.advance(1)
        a.store.set_policy(a.store.policy().updated({"max_sessions_total": 1}))
        elapsed, why = refused_within(b, first, timeout=BOUND)
        assert why is Outcome.EVICTED and elapsed < PUSHED
        assert b.store.check(second.id, passive=True).outcome is Outcome.VALID
    finally:
        a.close()
        b.close()
