"""Prometheus metrics (SPEC 9.7, ``METRICS=on``): the names and labels of the
SPEC, served at ``<ADMIN_PATH>/metrics`` and in the default registry, parsed
with ``prometheus_client``'s own parser. Behaviour tests run on both shells and
both stores."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SECRET, FakeClock, Harness
from redis_servers import RedisServer
from sessionguard import Config, ConfigurationError, SessionGuard

ADMIN_TOKEN = "m" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PLATFORMS = ("web", "mobile", "desktop")
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/_sessionguard/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


@pytest.fixture
def metered(make_harness: Callable[..., Harness]) -> Callable[..., Harness]:
    def make(**settings: Any) -> Harness:
        return make_harness(metrics=True, admin_token=ADMIN_TOKEN, **settings)

    return make


def test_logins_endings_and_their_reasons(metered: Callable[..., Harness], clock: FakeClock) -> None:
    harness = metered(web_max_sessions=2)
    first, second, third = harness.client, harness.new_client(), harness.new_client()
    for client in (first, second, third):  # the third evicts the first
        harness.login("ada", client=client)
        clock.advance(1)
    harness.login("bob", client=harness.new_client(), platform="mobile")
    second.post("/logout")
    response = harness.new_client().post("/_sessionguard/api/users/bob/signout", headers=ADMIN)
    assert response.json() == {"ended": 1}
    clock.advance(2 * 3600)
    assert harness.whoami(client=third)["ended_reason"] == "idle_timeout"
    samples = scrape(harness.new_client())
    logins = {p: value(samples, "sessionguard_logins_total", platform=p) for p in PLATFORMS}
    assert logins == {"web": 3, "mobile": 1, "desktop": 0}
    ended = {labels: n for labels, n in samples["sessionguard_sessions_ended_total"].items() if n}
    assert ended == {
        (("platform", "web"), ("reason", "evicted")): 1,
        (("platform", "web"), ("reason", "signed_out")): 1,
        (("platform", "mobile"), ("reason", "revoked")): 1,
        (("platform", "web"), ("reason", "idle_timeout")): 1,
    }
    assert value(samples, "sessionguard_sessions_ended_total", platform="desktop", reason="evicted") == 0


def test_rejected_logins(metered: Callable[..., Harness]) -> None:
    harness = metered(max_sessions=1, on_limit="reject")
    harness.login()
    assert harness.new_client().post("/login", json={"user": "ada"}).status_code == 409
    samples = scrape(harness.new_client())
    assert value(samples, "sessionguard_login_rejections_total", platform="web") == 1
    assert value(samples, "sessionguard_logins_total", platform="web") == 1


def test_sign_out_of_everyone_counts_each_ending_once_as_noticed(metered: Callable[..., Harness]) -> None:
    harness = metered()
    other = harness.new_client()
    token = harness.login("ada")["token"]
    harness.login("bob", client=other)
    harness.guard.end_all()
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # the second finds the tombstone: the ending was counted already
        assert harness.new_client().get("/whoami", headers=bearer).json()["ended_reason"] == "signout_all"
    samples = scrape(harness.new_client())
    assert value(samples, "sessionguard_sessions_ended_total", platform="web", reason="signout_all") == 1


def test_check_seconds_times_each_store_check(metered: Callable[..., Harness]) -> None:
    harness = metered()
    harness.login()
    for _ in range(3):
        harness.whoami()
    harness.new_client().get("/whoami", headers={"Cookie": "sg_session=forged"})  # no store check
    samples = scrape(harness.new_client())
    assert value(samples, "sessionguard_check_seconds_count", platform="web") == 3
    total = value(samples, "sessionguard_check_seconds_sum", platform="web")
    assert total is not None and total > 0
    buckets = {dict(labels)["le"]: n for labels, n in samples["sessionguard_check_seconds_bucket"].items()
               if dict(labels)["platform"] == "web"}
    assert buckets["+Inf"] == 3
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative


def test_sessions_active_memory_is_exact(make_guard: Callable[..., SessionGuard], clock: FakeClock,
                                         store_kind: str) -> None:
    if store_kind != "memory":
        pytest.skip("the memory store counts at once; Redis: see below")
    harness = Harness("asgi", make_guard(metrics=True, admin_token=ADMIN_TOKEN), clock)
    harness.login("ada")
    harness.login("bob", client=harness.new_client(), platform="desktop")
    harness.login("eve", client=harness.new_client())
    harness.client.post("/logout")
    samples = scrape(harness.new_client())
    active = {p: value(samples, "sessionguard_sessions_active", platform=p) for p in PLATFORMS}
    assert active == {"web": 1, "mobile": 0, "desktop": 1}
    harness.close()


def _active_when(client: httpx.Client, expected: dict[str, float], clock: FakeClock) -> Samples:
    """Scrape until the gauge reads ``expected`` (the Redis count runs in a thread)."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(client)
        active = {p: value(samples, "sessionguard_sessions_active", platform=p) for p in expected}
        if active == expected:
            return samples
        assert time.monotonic() < deadline, f"the count stayed {active}, expected {expected}"
        time.sleep(0.05)


@pytest.mark.redis
def test_sessions_active_on_redis_is_the_whole_deployment(
    redis_server: RedisServer, key_prefix: str, clock: FakeClock
) -> None:
    settings = {"secret_key": SECRET, "store_url": redis_server.url, "key_prefix": key_prefix,
                "metrics": True, "admin_token": ADMIN_TOKEN}
    # two processes of one deployment, on one Redis, one ASGI and one WSGI
    one = Harness("asgi", SessionGuard(Config(**settings), clock=clock), clock)
    two = Harness("wsgi", SessionGuard(Config(**settings), clock=clock), clock)
    try:
        one.login("ada")
        one.login("bob", client=one.new_client(), platform="mobile")
        two.login("eve")
        two.login("mallory", client=two.new_client(), platform="desktop")
        two.client.post("/logout")  # eve
        expected = {"web": 1, "mobile": 1, "desktop": 1}
        _active_when(one.new_client(), expected, clock)
        assert _active_when(two.new_client(), expected, clock)  # the same shared count
        two.login("trent", client=two.new_client())
        assert _active_when(one.new_client(), expected, clock)  # a count is kept 30 s ...
        clock.advance(31)
        _active_when(one.new_client(), {**expected, "web": 2}, clock)  # ... then counted anew
    finally:
        for harness in (one, two):
            harness.close()
            harness.guard.close()


@pytest.mark.redis
def test_local_cache_hits_are_counted_and_not_timed(
    make_guard: Callable[..., SessionGuard], clock: FakeClock, store_kind: str, shell: str
) -> None:
    if store_kind != "redis":
        pytest.skip("LOCAL_CACHE is the Redis store's")
    harness = Harness(shell, make_guard(metrics=True, admin_token=ADMIN_TOKEN, local_cache="1h"), clock)
    harness.login()
    deadline = time.monotonic() + 10
    while True:  # the cache is used once the process's subscription is confirmed alive
        harness.whoami()
        samples = scrape(harness.new_client())
        hits = value(samples, "sessionguard_local_cache_hits_total", platform="web")
        if hits:
            break
        assert time.monotonic() < deadline, "no LOCAL_CACHE hit"
        time.sleep(0.02)
    harness.whoami()
    later = scrape(harness.new_client())
    assert value(later, "sessionguard_local_cache_hits_total", platform="web") == hits + 1
    checks = value(later, "sessionguard_check_seconds_count", platform="web")
    assert checks == value(samples, "sessionguard_check_seconds_count", platform="web")  # a hit is no check
    harness.close()


@pytest.mark.redis
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_store_errors_while_redis_is_down_and_the_endpoint_still_answers(
    private_redis: RedisServer, clock: FakeClock, shell: str
) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, store_url=private_redis.url, metrics=True,
                                admin_token=ADMIN_TOKEN, store_timeout="200ms"), clock=clock)
    harness = Harness(shell, guard, clock)
    try:
        harness.login()
        _active_when(harness.new_client(), {"web": 1}, clock)
        private_redis.stop()
        assert harness.client.get("/whoami").status_code == 503
        samples = scrape(harness.new_client())  # served without the store
        assert "sessionguard_sessions_active" not in samples
        errors = value(samples, "sessionguard_store_errors_total", platform="unknown")
        assert errors is not None and errors >= 2  # the check, and the scrape's own count
    finally:
        harness.close()
        guard.close()


def test_the_endpoint_needs_sessions_read(metered: Callable[..., Harness]) -> None:
    harness = metered()
    anonymous = harness.new_client().get("/_sessionguard/metrics")
    assert anonymous.status_code == 401
    harness.login("ada")
    assert harness.client.get("/_sessionguard/metrics").status_code == 403
    admin = harness.new_client()
    harness.login("root", client=admin, metadata={"roles": ["admin"]})
    response = admin.get("/_sessionguard/metrics")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "sessionguard_logins_total" in parse(response.text)


def test_off_by_default_and_not_described(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN)
    assert harness.guard.metrics is None
    assert harness.client.get("/_sessionguard/metrics", headers=ADMIN).status_code == 404
    paths = harness.client.get("/_sessionguard/openapi.json").json()["paths"]
    assert "/_sessionguard/metrics" not in paths
    on = make_harness(admin_token=ADMIN_TOKEN, metrics=True)
    assert "/_sessionguard/metrics" in on.client.get("/_sessionguard/openapi.json").json()["paths"]


@pytest.fixture
def registry_guards() -> Iterator[list[SessionGuard]]:
    guards: list[SessionGuard] = []
    yield guards
    for guard in guards:
        guard.close()


def _registry_logins() -> float | None:
    samples = parse(prometheus_client.generate_latest().decode())
    return value(samples, "sessionguard_logins_total", platform="web")


def test_the_default_registry_holds_the_newest_guards_metrics(
    registry_guards: list[SessionGuard], clock: FakeClock
) -> None:
    def guard() -> SessionGuard:
        made = SessionGuard(Config(secret_key=SECRET, metrics=True), clock=clock)
        registry_guards.append(made)
        return made

    first = guard()
    harness = Harness("wsgi", first, clock)
    harness.login()
    assert _registry_logins() == 1
    samples = parse(prometheus_client.generate_latest().decode())
    assert value(samples, "sessionguard_sessions_active", platform="web") == 1  # an app's own /metrics
    second = guard()
    assert _registry_logins() == 0  # the newest guard's, not both (the registry refuses twins)
    second.close()
    assert _registry_logins() is None
    first.close()  # no longer the registered one: nothing to take out
    harness.close()


def test_building_a_guard_registers_without_a_store_call(registry_guards: list[SessionGuard]) -> None:
    # nothing listens on this port: a store call at start-up would fail
    config = Config(secret_key=SECRET, metrics=True, store_url="redis://127.0.0.1:1/0", store_timeout="100ms")
    guard = SessionGuard(config)
    registry_guards.append(guard)
    samples = parse(prometheus_client.generate_latest().decode())  # a scrape meets the outage
    assert "sessionguard_sessions_active" not in samples
    assert value(samples, "sessionguard_store_errors_total", platform="unknown") == 1


def test_a_missing_prometheus_client_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    with pytest.raises(ConfigurationError) as caught:
        SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_METRICS": "on"})
    assert "SESSIONGUARD_METRICS=on" in str(caught.value)
    assert "sessionguard-middleware[metrics]" in str(caught.value)
