"""Events about one session say where it was signed in from (SPEC 9.3): the
session's ``ip``, ``device`` and ``city`` beside ``user_id``, ``platform`` and
``session_id``; events about no session carry them as null. Both shells, both
stores, read back through ``GET /api/audit``."""

from __future__ import annotations

from collections.abc import Callable

from conftest import Harness
from sessionguard.audit import Event

ADMIN_TOKEN = "admin-" + "w" * 40
CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")


def test_session_events_carry_ip_device_and_city(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN)
    harness.client.headers["user-agent"] = CHROME
    harness.login("ada")
    assert harness.client.post("/logout").status_code == 200
    answer = harness.client.get("/_sessionguard/api/audit?user_id=ada",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200, answer.text
    events = {e["type"]: e for e in answer.json()["events"]}
    for kind in ("login", "logout"):
        event = events[kind]
        assert event["ip"] and event["ip"] != "None"
        assert event["device"] == "Chrome 131 on macOS"
        assert "city" in event and event["city"] is None  # no GeoIP database configured


def test_events_about_no_session_carry_nulls_and_read_back() -> None:
    shown = Event("policy_changed", 0, "cli").to_json()
    assert (shown["ip"], shown["device"], shown["city"]) == (None, None, None)
    full = Event("logout", 1, "user:ada", "ada", "sid", "web", "signed_out", None, "192.0.2.1",
                 "Chrome 131 on macOS", "Berlin")
    assert Event.from_fields(full.to_fields()) == full  # the Redis stream's flat fields
