"""OWASP ASVS 5.0 requirements sessionguard meets that no other test proved
(docs/security.md, "ASVS 5.0 mapping", names these tests in its tables)."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from apps import flask_app, starlette_app
from conftest import BASE_URL, SECRET, Harness
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard
from sessionguard.tokens import TAG_LENGTH, Tokens


def events_of(harness: Harness) -> list[Any]:
    return list(harness.guard.store.events(user_id=None, limit=100, cursor=None).items)


def app_client(shell: str, guard: SessionGuard) -> httpx.Client:
    if shell == "asgi":
        return TestClient(starlette_app(guard), base_url=BASE_URL)
    return httpx.Client(transport=httpx.WSGITransport(app=flask_app(guard)), base_url=BASE_URL)


def test_v7_2_3_a_sid_holds_128_bits_from_the_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    real = secrets.token_urlsafe

    def counting(nbytes: int) -> str:
        drawn.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(secrets, "token_urlsafe", counting)
    sid = Tokens([SECRET]).new_sid("abcd")
    assert drawn == [16]  # 16 bytes = 128 bits, from secrets (the OS CSPRNG)
    assert len(sid) == TAG_LENGTH + 22  # all of them in the sid, none dropped


def test_v16_3_1_a_login_refused_by_the_limit_is_audited(make_harness: Any) -> None:
    harness = make_harness(max_sessions="1", on_limit="reject")
    harness.login()
    refused = harness.new_client().post("/login", json={"user": "ada"})
    assert refused.status_code == 409
    [event] = [e for e in events_of(harness) if e.type == "rejected"]
    assert (event.user_id, event.actor, event.reason, event.platform) == ("ada", "user:ada", "limit", "web")
    assert event.session_id is None  # no session was made


def test_v16_2_2_audit_times_are_utc(harness: Harness) -> None:
    harness.login()
    [event] = [e.to_json() for e in events_of(harness) if e.type == "login"]
    assert event["at"].endswith("Z")
    moment = datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
    assert moment == datetime.fromtimestamp(harness.clock(), tz=timezone.utc)


def test_v16_4_1_a_hostile_user_id_stays_one_json_log_line(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = 'eve\n{"type": "login", "user_id": "root"}\r\x1b[2J'
    with caplog.at_level(logging.INFO, logger="sessionguard.audit"):
        harness.login(hostile)
    [line] = [r.getMessage() for r in caplog.records if r.name == "sessionguard.audit"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert json.loads(line)["user_id"] == hostile


@pytest.mark.redis
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_v16_5_3_store_unavailable_anonymous_never_lets_the_session_through(
    shell: str, private_redis: RedisServer
) -> None:
    config = Config(secret_key=SECRET, store_url=private_redis.url, cookie_secure=False,
                    store_unavailable="anonymous", store_timeout=0.3)
    guard = SessionGuard(config)
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        assert client.get("/whoami").json()["session"]["user_id"] == "ada"
        private_redis.stop()
        response = client.get("/whoami")
        assert response.status_code == 200
        assert response.json() == {"session": None, "ended_reason": None}  # unchecked: not the user
    guard.store.close()


@pytest.mark.redis
@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_v16_3_4_an_outage_is_logged_once_and_its_end_too(
    shell: str, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(secret_key=SECRET, store_url=private_redis.url, cookie_secure=False, store_timeout=0.3)
    guard = SessionGuard(config)
    with app_client(shell, guard) as client:
        assert client.post("/login", json={"user": "ada"}).status_code == 200
        private_redis.stop()
        with caplog.at_level(logging.WARNING, logger="sessionguard"):
            assert [client.get("/whoami").status_code for _ in range(3)] == [503] * 3
            private_redis.start()
            assert client.get("/whoami").status_code == 200
        lines = [r.getMessage() for r in caplog.records if r.name == "sessionguard"]
        assert [line for line in lines if "session store unavailable" in line] == lines[:1], lines
        assert lines[-1] == "sessionguard: session store answers again", lines
    guard.store.close()


# -- 16.3.2 / 16.3.3: refused admin requests and refused tokens are logged ----------------------


@pytest.fixture
def throttle_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fresh per-process throttle of the security log lines, on a clock moved by hand."""
    from sessionguard import alerts

    now = [0.0]
    monkeypatch.setattr(alerts, "THROTTLE", alerts.Throttle(clock=lambda: now[0]))
    return now


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records
             if r.name == "sessionguard" and r.levelno == logging.WARNING and r.module == "alerts"]
    caplog.clear()
    return lines


def test_v16_3_3_refused_tokens_are_logged_at_most_once_a_second(
    harness: Harness, caplog: pytest.LogCaptureFixture, throttle_clock: list[float]
) -> None:
    body = harness.login()
    token, public_id = body["token"], body["session"]["id"]
    signature = token.rpartition(".")[2]
    forged = token[:-len(signature)] + ("B" if signature[0] == "A" else "A") + signature[1:]
    cookie = harness.guard.cookie_name
    caplog.set_level(logging.WARNING, logger="sessionguard")
    caplog.clear()
    client = harness.new_client()

    def whoami(headers: dict[str, str]) -> Any:
        return harness.whoami(client=client, headers=headers)["ended_reason"]

    assert whoami({"Cookie": f"{cookie}={forged}"}) == "invalid"
    assert warnings_logged(caplog) == [
        f"sessionguard: presented session token refused: bad_signature (cookie), claims session {public_id}"]
    assert whoami({"Authorization": f"Bearer {forged}"}) == "invalid"
    assert warnings_logged(caplog) == []  # the same kind within a second
    throttle_clock[0] += 1.0
    assert whoami({"Authorization": f"Bearer {forged}"}) == "invalid"
    assert warnings_logged(caplog) == [
        f"sessionguard: presented session token refused: bad_signature (bearer), claims session {public_id}"
        " (and 1 more since the last such line)"]
    # other kinds have their own allowance
    assert whoami({"Authorization": "Bearer not-a-token"}) == "invalid"
    assert whoami({"Cookie": f"{cookie}={token}; {cookie}={token}"}) == "invalid"
    assert warnings_logged(caplog) == [
        "sessionguard: presented session token refused: malformed (bearer)",
        "sessionguard: presented session token refused: two_cookies (cookie)"]
    assert not any(token in r.getMessage() or forged in r.getMessage() for r in caplog.records)
    assert harness.whoami(headers={})["session"]["id"] == public_id  # the real session goes unlogged
    assert warnings_logged(caplog) == []


def test_v16_3_2_refused_admin_requests_are_logged(
    make_harness: Any, caplog: pytest.LogCaptureFixture, throttle_clock: list[float]
) -> None:
    harness = make_harness()
    caplog.set_level(logging.WARNING, logger="sessionguard")
    anonymous = harness.new_client()
    assert anonymous.get("/_sessionguard/api/sessions").status_code == 401
    assert warnings_logged(caplog) == [
        'sessionguard: admin request refused: 401 unauthenticated, GET "/_sessionguard/api/sessions",'
        " caller anonymous"]
    user = harness.new_client()
    hostile = harness.login("eve\nINFO forged line", client=user)["session"]["id"]
    assert user.get("/_sessionguard/api/sessions").status_code == 403
    [line] = warnings_logged(caplog)
    assert line == ('sessionguard: admin request refused: 403 forbidden, GET "/_sessionguard/api/sessions",'
                    f' caller "user:eve\\nINFO forged line", session {hostile}')
    admin = harness.new_client()
    mine = harness.login("ada", client=admin, metadata={"roles": ["admin"]})["session"]["id"]
    refused = admin.post("/_sessionguard/api/signout-all", json={"confirm": "SIGN OUT ALL"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    assert warnings_logged(caplog) == [
        'sessionguard: admin request refused: 403 csrf_failed, POST "/_sessionguard/api/signout-all",'
        f' caller "user:ada", session {mine}']
    assert admin.get("/_sessionguard/api/sessions").status_code == 200  # granted: not logged
    assert warnings_logged(caplog) == []
