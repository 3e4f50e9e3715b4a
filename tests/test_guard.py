"""The guard's own duties: audit events of ended sessions, start-up errors, closing."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import SECRET, Harness
from sessionguard import Config, ConfigurationError, SessionGuard

HOUR = 3600


def events_of(harness: Harness) -> list[Any]:
    return list(harness.guard.store.events(user_id=None, limit=100, cursor=None).items)


def test_timeout_is_audited_once_dated_when_it_ended(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="1h")
    login = harness.login()["session"]
    harness.clock.advance(5 * HOUR)
    assert harness.whoami()["ended_reason"] == "idle_timeout"
    timeouts = [e for e in events_of(harness) if e.type == "idle_timeout"]
    assert len(timeouts) == 1
    event = timeouts[0]
    assert (event.session_id, event.actor, event.reason) == (login["id"], "system", "idle_timeout")
    logged_in = next(e for e in events_of(harness) if e.type == "login")
    assert event.at == logged_in.at + HOUR * 1000  # the moment it idled out, not when noticed


def test_signout_everyone_is_one_event_not_one_per_session(harness: Harness) -> None:
    tokens = [harness.login(f"user{i}", client=harness.new_client())["token"] for i in range(3)]
    harness.guard.store.end_all(keep=None)
    harness.clock.advance(1)
    for token in tokens:
        seen = harness.new_client().get("/whoami", headers={"Authorization": f"Bearer {token}"}).json()
        assert seen["ended_reason"] == "signout_all"
    assert [e for e in events_of(harness) if e.type == "signout_all"] == []


def test_logout_event_uses_the_guard_clock(harness: Harness) -> None:
    harness.login()
    harness.clock.advance(60)
    harness.client.post("/logout")
    logout = next(e for e in events_of(harness) if e.type == "logout")
    assert logout.at == round(harness.clock() * 1000)
    assert (logout.actor, logout.reason) == ("user:ada", "signed_out")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://h:abc/0", id="bad-port"),
        pytest.param("rediss://[::1", id="unclosed-bracket"),
        pytest.param("redis://localhost/0?socket_timeout=x", id="bad-option"),
        pytest.param("redis+cluster://", id="cluster-without-hosts"),
        pytest.param("redis+sentinel://h:26379", id="sentinel-without-service"),
    ],
)
def test_malformed_store_url_stops_start_up(url: str) -> None:
    with pytest.raises(ConfigurationError, match="SESSIONGUARD_STORE_URL"):
        SessionGuard(Config(secret_key=SECRET, store_url=url))


def test_building_a_guard_never_connects() -> None:
    # Nothing listens on port 1: building must still succeed (SPEC §2).
    guard = SessionGuard(Config(secret_key=SECRET, store_url="redis://127.0.0.1:1/0"))
    guard.close()


async def test_close_and_aclose(make_guard: Any) -> None:
    guard = make_guard()
    await guard.aclose()
    guard.close()
