"""``GET <ADMIN_PATH>/api/stats``, what the admin page's charts draw: active
sessions per platform (the store's count) and endings per reason in each of
the last 24 clock hours (from the audit log). Both shells, both stores."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import FakeClock, Harness
from sessionguard.admin.stats import HOUR, HOURS, REASONS, Endings
from sessionguard.audit import Event
from sessionguard.core import ENDED_REASONS

ADMIN_TOKEN = "c" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def stats(harness: Harness) -> Any:
    response = harness.new_client().get("/_sessionguard/api/stats", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def counted(harness: Harness) -> Any:
    """The stats once the store has a count of the active sessions (Redis counts
    in a background thread)."""
    deadline = time.monotonic() + 10
    while True:
        body = stats(harness)
        if body["active"] is not None:
            return body
        assert time.monotonic() < deadline, "no count of the active sessions"
        time.sleep(0.05)


@pytest.fixture
def charted(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(admin_token=ADMIN_TOKEN, web_max_sessions=1)


def test_active_sessions_per_platform(charted: Harness) -> None:
    charted.login("ada")
    charted.login("bob", client=charted.new_client(), platform="mobile")
    charted.login("eve", client=charted.new_client(), platform="mobile")
    body = counted(charted)
    assert body["active"]["platforms"] == {"web": 1, "mobile": 2, "desktop": 0}
    assert body["active"]["counted_at"].endswith("Z")


def test_endings_by_reason_and_clock_hour(charted: Harness, clock: FakeClock) -> None:
    clock.now = 1_800_000_000.0 - 1_800_000_000 % 3600 + 1800  # half past an hour
    charted.login("old")  # 30 hours ago: outside the window
    charted.client.post("/logout")
    clock.advance(30 * 3600)
    now_hour = 1_800_000_000 - 1_800_000_000 % 3600 + 30 * 3600
    charted.login("ada")  # its eviction, now: the current hour
    charted.login("ada", client=charted.new_client())
    clock.advance(-3 * 3600)  # (the fake clock goes back: these are 3 hours older)
    bob = charted.new_client()
    charted.login("bob", client=bob, platform="desktop")
    clock.advance(3 * 3600)
    # bob's idle timeout is noticed now, and dated when it happened: 2 hours ago
    assert charted.whoami(client=bob)["ended_reason"] == "idle_timeout"
    body = stats(charted)
    endings = body["endings"]
    hours = endings["hours"]
    assert len(hours) == HOURS and hours[-1].startswith(_iso_hour(now_hour))
    assert set(endings["reasons"]) == set(REASONS)
    nonzero = {(r, i): n for r, counts in endings["reasons"].items() for i, n in enumerate(counts) if n}
    assert nonzero == {("evicted", HOURS - 1): 1, ("idle_timeout", HOURS - 3): 1}
    assert endings["complete"] is True


def test_the_stats_need_sessions_read(charted: Harness) -> None:
    assert charted.new_client().get("/_sessionguard/api/stats").status_code == 401
    charted.login("ada")
    assert charted.client.get("/_sessionguard/api/stats").status_code == 403


def _iso_hour(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:00:00", time.gmtime(epoch))


# -- the reading of the audit log ------------------------------------------------------


NOW = 1_800_000_000_000


def _event(kind: str, at: int, reason: str | None = None) -> Event:
    return Event(kind, at, "system", "ada", "s", "web", reason if reason is not None else kind)


def test_the_read_stops_at_the_first_event_recorded_before_the_window() -> None:
    endings = Endings(NOW)
    before = endings.first - 10 * 60_000  # beyond the clocks' skew
    assert endings.add(_event("revoked", NOW))
    assert endings.add(_event("idle_timeout", before))  # a late timeout: older events may follow
    assert endings.add(_event("login", endings.first - 60_000, ""))  # within the skew: go on
    assert not endings.add(_event("login", before, ""))
    assert endings.counts["revoked"][HOURS - 1] == 1
    assert sum(map(sum, endings.counts.values())) == 1


def test_what_counts_as_an_ending() -> None:
    endings = Endings(NOW)
    for event in (_event("logout", NOW, "signed_out"), _event("signout_all", NOW),
                  _event("anomaly", NOW, "client_changed"), _event("rejected", NOW, "limit"),
                  _event("login", NOW + HOUR, "")):
        endings.add(event)
    assert {r for r, counts in endings.counts.items() if any(counts)} == {"signed_out", "signout_all"}
    assert set(REASONS) == ENDED_REASONS - {"invalid"}
