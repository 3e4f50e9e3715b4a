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
