"""Report-only mode (SPEC 9.7, ``ENFORCE=report``): idle and absolute timeouts
and the platforms' limits are judged and recorded (``would_end`` events, a
metric) but not applied; revocations, sign-outs and sign-out of everyone always
apply; the admin page says so. The behaviour on both shells and both stores;
the store contract of report-only mode is in ``test_store_contract.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SECRET, FakeClock, Harness
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard
from sessionguard.stores.redis.keys import Keys

ADMIN_TOKEN = "r" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOUR = 3600


# -- the behaviour ------------------------------------------------------------------------


@pytest.fixture
def reporting(make_harness: Callable[..., Harness]) -> Callable[..., Harness]:
    def make(**settings: Any) -> Harness:
        return make_harness(enforce="report", admin_token=ADMIN_TOKEN, **settings)

    return make


def events(harness: Harness, of_type: str | None = None) -> list[dict[str, Any]]:
    """The audit log, newest first (read by a client without a session)."""
    response = harness.new_client().get("/_sessionguard/api/audit", headers=ADMIN)
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if of_type is None or e["type"] == of_type]


def test_an_idle_session_goes_on_and_is_reported_once_per_gap(
    reporting: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = reporting(passive_paths="/poll")
    login_at = clock.now
    harness.login()
    clock.advance(2 * HOUR)
    for _ in range(3):  # a polling page: passive, the gap goes on, but it is reported once
        assert harness.client.get("/poll/status").json()["session"]["user_id"] == "ada"
    response = harness.client.get("/whoami")  # a use: the gap ends
    assert response.json()["session"]["expires_at"] is None  # no deadline applies
    assert "session-expires" not in response.headers
    [report] = events(harness, "would_end")
    assert (report["reason"], report["actor"], report["user_id"], report["platform"]) == (
        "idle_timeout", "system", "ada", "web")
    assert report["at"].startswith(_iso(login_at + HOUR))  # when it would have ended
    assert report["device"] is not None  # where it was signed in from, as every session event
    assert events(harness, "idle_timeout") == []
    clock.advance(2 * HOUR)
    harness.whoami()
    assert [e["reason"] for e in events(harness, "would_end")] == ["idle_timeout"] * 2


def test_a_session_past_its_absolute_timeout_goes_on(
    reporting: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = reporting(idle_timeout="never", absolute_timeout="2h")
    harness.login()
    for _ in range(6):
        clock.advance(HOUR)
        assert harness.whoami()["session"]["user_id"] == "ada"
    assert [e["reason"] for e in events(harness, "would_end")] == ["absolute_timeout"]


def test_limits_report_the_sessions_they_would_end(
    reporting: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = reporting(web_max_sessions=1)
    first = harness.login()["session"]["id"]
    clock.advance(1)
    other = harness.new_client()
    second = harness.login(client=other)["session"]["id"]
    assert harness.whoami()["session"]["id"] == first  # not evicted
    [report] = events(harness, "would_end")
    assert (report["reason"], report["session_id"]) == ("evicted", first)
    assert events(harness, "evicted") == []
    rejecting = reporting(web_max_sessions=1, on_limit="reject")
    rejecting.login("bob")
    third = rejecting.login("bob", client=rejecting.new_client())["session"]["id"]  # not refused
    reports = [(e["reason"], e["session_id"]) for e in events(rejecting, "would_end")]
    assert ("rejected", third) in reports
    assert second != third


def test_revocation_sign_out_and_sign_out_of_everyone_apply(
    reporting: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = reporting()
    token = harness.login()["token"]
    clock.advance(2 * HOUR)
    admin = harness.new_client()
    assert admin.post("/_sessionguard/api/users/ada/signout", headers=ADMIN).json() == {"ended": 1}
    bearer = {"Authorization": f"Bearer {token}"}
    assert harness.new_client().get("/whoami", headers=bearer).json()["ended_reason"] == "revoked"
    other = harness.new_client()
    harness.login("bob", client=other)
    other.post("/logout")
    assert harness.whoami(client=other)["session"] is None
    harness.login("eve")
    answer = admin.post("/_sessionguard/api/signout-all", headers=ADMIN, json={"confirm": "SIGN OUT ALL"})
    assert answer.status_code == 200
    assert harness.whoami()["ended_reason"] == "signout_all"


def test_the_metric_counts_the_reports(reporting: Callable[..., Harness], clock: FakeClock) -> None:
    harness = reporting(metrics=True, web_max_sessions=1)
    harness.login()
    clock.advance(2 * HOUR)
    harness.whoami()
    harness.login(client=harness.new_client())
    response = harness.new_client().get("/_sessionguard/metrics", headers=ADMIN)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    def counted(reason: str) -> float:
        return samples[("sessionguard_would_end_total", (("platform", "web"), ("reason", reason)))]
    assert (counted("idle_timeout"), counted("evicted"), counted("rejected")) == (1, 1, 0)
    ended = [v for (name, _), v in samples.items() if name == "sessionguard_sessions_ended_total"]
    assert sum(ended) == 0  # nothing ended


def test_the_admin_page_shows_the_banner(make_harness: Callable[..., Harness]) -> None:
    for enforce, shown in (("report", True), ("on", False)):
        harness = make_harness(enforce=enforce)
        harness.login("root", metadata={"roles": ["admin"]})
        page = harness.client.get("/_sessionguard/")
        assert page.status_code == 200
        assert ('id="report-only"' in page.text) is shown
        assert ("SESSIONGUARD_ENFORCE=report" in page.text) is shown


@pytest.mark.redis
def test_enforcing_again_ends_what_was_reported(
    redis_server: RedisServer, key_prefix: str, clock: FakeClock
) -> None:
    settings = {"secret_key": SECRET, "store_url": redis_server.url, "key_prefix": key_prefix}
    reporting = Harness("wsgi", SessionGuard(Config(**settings, enforce="report"), clock=clock), clock)
    token = reporting.login()["token"]
    clock.advance(2 * HOUR)
    assert reporting.whoami()["session"] is not None
    # the record still expires a day past the deadline its policy gives it (the store keeps
    # no session forever); the last use moved that deadline
    sid = reporting.whoami()["session"]["id"]
    ttl = redis_server.client().pttl(Keys(key_prefix).session(sid))
    assert 0 < ttl <= (HOUR + 24 * HOUR) * 1000
    clock.advance(2 * HOUR)
    enforcing = Harness("asgi", SessionGuard(Config(**settings), clock=clock), clock)
    bearer = {"Authorization": f"Bearer {token}"}
    assert enforcing.client.get("/whoami", headers=bearer).json()["ended_reason"] == "idle_timeout"
    for harness in (reporting, enforcing):
        harness.close()
        harness.guard.close()


def _iso(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def test_the_report_shape() -> None:
    from sessionguard.core import Record
    from sessionguard.report import Reports, would_end

    event = would_end(Record("id", "ada", "web", 0, 0, ip="10.0.0.1", device="Firefox"), "evicted", 5)
    assert json.loads(json.dumps(event.to_json()))["type"] == "would_end"
    reports = Reports(remembered=1)
    assert reports.first("a", 1) and not reports.first("a", 1) and reports.first("a", 2)
    assert reports.first("b", 1) and reports.first("a", 2)  # "a" was forgotten
