"""The app-side API (SPEC §9.4, §9.5): the guard's ``sessions`` / ``end_*``
methods and their coroutines, the request context's ``end_others()`` and
``recheck()``, and the ``Session-Expires`` header. Run on both shells and
both stores; on the ASGI shell the guard's coroutines are used, on WSGI its
plain methods (as each kind of app would)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from conftest import Harness
from sessionguard import Session, SessionGuard

HOUR = 3600
ADMIN_TOKEN = "admin-" + "t" * 40


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class App:
    """The guard as the harness's kind of app calls it: coroutines on ASGI."""

    def __init__(self, harness: Harness) -> None:
        self.guard: SessionGuard = harness.guard
        self.is_async = harness.shell == "asgi"

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            coroutine: Coroutine[Any, Any, Any] = getattr(self.guard, "a" + name)(*args, **kwargs)
            return asyncio.run(coroutine)
        return getattr(self.guard, name)(*args, **kwargs)


def login(harness: Harness, user: str = "ada", **body: Any) -> dict[str, Any]:
    """A login from a fresh client; ``{"token", "session"}``."""
    return dict(harness.login(user, client=harness.new_client(), **body))


def reason(harness: Harness, token: str) -> str | None:
    """Why the session of ``token`` ended (``None``: valid)."""
    seen = harness.whoami(client=harness.new_client(), headers=bearer(token))
    return None if seen["ended_reason"] is None else str(seen["ended_reason"])


def events(harness: Harness) -> list[Any]:
    return list(harness.guard.store.events(user_id=None, limit=50, cursor=None).items)


# -- the guard's API -------------------------------------------------------------


def test_sessions_lists_active_sessions_with_filters(harness: Harness) -> None:
    app = App(harness)
    ada_web = login(harness, "ada")
    harness.clock.advance(1)
    ada_phone = login(harness, "ada", platform="mobile")
    harness.clock.advance(1)
    grace = login(harness, "grace")
    everyone = app.call("sessions")
    assert all(isinstance(s, Session) for s in everyone)
    assert [s.id for s in everyone] == [grace["session"]["id"], ada_phone["session"]["id"],
                                       ada_web["session"]["id"]]  # newest login first
    assert [s.to_json() for s in everyone][0] == {**grace["session"], "status": "active"}  # listed: a status
    ada = [ada_phone["session"]["id"], ada_web["session"]["id"]]
    assert [s.id for s in app.call("sessions", "ada")] == ada
    assert [s.id for s in app.call("sessions", user_id="ada", platform="web")] == [ada_web["session"]["id"]]
    assert [s.user_id for s in app.call("sessions", platform="web")] == ["grace", "ada"]
    assert app.call("sessions", "nobody") == []


def test_sessions_pages_through_every_session(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sessionguard.actions.PAGE", 2)  # several store pages for five sessions
    for n in range(5):
        login(harness, f"user{n}")
        harness.clock.advance(1)
    assert [s.user_id for s in App(harness).call("sessions")] == [f"user{n}" for n in reversed(range(5))]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        pytest.param({"status": "gone"}, "status must be", id="unknown-status"),
        pytest.param({"platform": "tv"}, "platform must be", id="unknown-platform"),
        pytest.param({"user_id": ""}, "user_id must be", id="empty-user"),
    ],
)
def test_sessions_refuses_bad_arguments(harness: Harness, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        App(harness).call("sessions", **kwargs)


def test_end_session_revokes_with_actor_app(harness: Harness) -> None:
    app = App(harness)
    victim, other = login(harness), login(harness)
    assert app.call("end_session", victim["session"]["id"]) is True
    assert app.call("end_session", victim["session"]["id"]) is False  # already ended
    assert app.call("end_session", "0000AAAAAAAAAAAAAAAAAAAAAA") is False  # never existed
    assert (reason(harness, victim["token"]), reason(harness, other["token"])) == ("revoked", None)
    event = events(harness)[0]
    assert (event.type, event.actor, event.session_id) == ("revoked", "app", victim["session"]["id"])


def test_end_user_keeps_the_excepted_session_and_other_users(harness: Harness) -> None:
    app = App(harness)
    here, phone = login(harness), login(harness, platform="mobile")
    desktop = login(harness, platform="desktop")
    grace = login(harness, "grace")
    assert app.call("end_user", "ada", platform="mobile") == 1
    assert reason(harness, phone["token"]) == "revoked"
    assert app.call("end_user", "ada", except_id=here["session"]["id"]) == 1  # after a password change
    assert [reason(harness, t["token"]) for t in (here, desktop, grace)] == [None, "revoked", None]
    assert app.call("end_user", "ada") == 1
    assert app.call("end_user", "ada") == 0
    assert {(e.type, e.actor) for e in events(harness) if e.type != "login"} == {("revoked", "app")}
    with pytest.raises(ValueError, match="platform must be"):
        app.call("end_user", "ada", platform="tv")


def test_end_all_signs_out_everyone_but_the_excepted_one(harness: Harness) -> None:
    app = App(harness)
    kept, others = login(harness), [login(harness, "grace"), login(harness, "alan", platform="mobile")]
    assert app.call("end_all", except_id=kept["session"]["id"]) is None
    assert [reason(harness, t["token"]) for t in others] == ["signout_all", "signout_all"]
    assert reason(harness, kept["token"]) is None
    event = events(harness)[0]
    assert (event.type, event.actor, event.reason) == ("signout_all", "app", "signout_all")
    app.call("end_all")
    assert reason(harness, kept["token"]) == "signout_all"


def test_set_roles_changes_live_sessions_at_their_next_request(make_harness: Any) -> None:
    harness = make_harness(local_cache="5s")  # a cached check learns the change at once too
    app = App(harness)
    web = login(harness, metadata={"name": "Ada", "roles": ["admin"]})
    phone = login(harness, platform="mobile", metadata={"roles": ["admin", "ops"]})
    grace = login(harness, "grace", metadata={"roles": ["admin"]})
    ended = login(harness, metadata={"roles": ["admin"]})
    app.call("end_session", ended["session"]["id"])

    def metadata(token: str) -> Any:
        return harness.whoami(client=harness.new_client(), headers=bearer(token))["session"]["metadata"]

    assert metadata(web["token"])["roles"] == ["admin"]  # (now in the local cache, if any)
    assert app.call("set_roles", "ada", ["helpdesk", "helpdesk", "viewer"]) == 2
    assert metadata(web["token"]) == {"name": "Ada", "roles": ["helpdesk", "viewer"]}  # the rest stays
    assert metadata(phone["token"]) == {"roles": ["helpdesk", "viewer"]}
    assert metadata(grace["token"]) == {"roles": ["admin"]}
    assert reason(harness, ended["token"]) == "revoked"  # an ended session stays ended
    assert [s.roles for s in app.call("sessions", "ada")] == [("helpdesk", "viewer")] * 2
    event = events(harness)[0]
    assert (event.type, event.actor, event.user_id) == ("roles_changed", "app", "ada")
    assert app.call("set_roles", "nobody", []) == 0
    for bad in ("admin", [""], ["x" * 65], [1], ["r"] * 33):
        with pytest.raises(ValueError, match="roles must be"):
            app.call("set_roles", "ada", bad)


# -- the request context ----------------------------------------------------------


def test_end_others_ends_the_users_other_sessions_only(harness: Harness) -> None:
    harness.login()
    others = [login(harness), login(harness, platform="mobile")]
    grace = login(harness, "grace")
    response = harness.client.post("/end-others")
    assert response.json() == {"ended": 2}
    assert [reason(harness, t["token"]) for t in others] == ["signed_out", "signed_out"]
    assert reason(harness, grace["token"]) is None
    assert harness.whoami()["session"] is not None
    assert harness.client.post("/end-others").json() == {"ended": 0}
    assert harness.new_client().post("/end-others").json() == {"ended": 0}  # no session: nothing
    ended = [e for e in events(harness) if e.type == "logout"]
    assert [(e.reason, e.actor) for e in ended] == [("signed_out", "user:ada")] * 2


def test_rotate_gives_the_session_a_new_token(harness: Harness) -> None:
    before = harness.login("ada", remember_me=True, metadata={"roles": ["staff"]})
    harness.clock.advance(60)
    response = harness.client.post("/rotate")
    rotated = response.json()
    token, session = rotated["token"], rotated["session"]
    assert token != before["token"] and session["id"] != before["session"]["id"]
    kept = ("user_id", "platform", "created_at", "remember_me", "metadata", "ip", "device")
    assert {k: session[k] for k in kept} == {k: before["session"][k] for k in kept}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"sg_session={token};") and "Max-Age=" in cookie  # still remembered
    assert response.headers["session-expires"] == session["expires_at"]
    assert harness.whoami()["session"]["id"] == session["id"]  # the browser holds the new cookie
    assert reason(harness, before["token"]) == "invalid"  # the old token is unknown
    assert [s.id for s in App(harness).call("sessions", "ada")] == [session["id"]]
    phone = login(harness, platform="mobile")  # a bearer client gets the token, no cookie
    answer = harness.new_client().post("/rotate", headers=bearer(phone["token"]))
    assert "set-cookie" not in answer.headers
    assert reason(harness, answer.json()["token"]) is None and reason(harness, phone["token"]) == "invalid"
    assert harness.new_client().post("/rotate").json() is None  # no session: nothing to rotate
    App(harness).call("end_user", "ada")
    gone = harness.client.post("/rotate")  # ended meanwhile: reported, cookie cleared
    assert gone.json() is None and "Max-Age=0" in gone.headers["set-cookie"]


def test_recheck_sees_an_ending_during_the_request(harness: Harness) -> None:
    token = harness.login()["token"]
    assert harness.client.get("/recheck").json()["session"]["user_id"] == "ada"
    response = harness.client.get("/recheck?end=1")  # revoked while the request runs
    assert response.json() == {"session": None, "ended_reason": "revoked"}
    assert "Max-Age=0" in response.headers["set-cookie"]  # the response had not started: cleared
    assert response.headers.get("session-expires") is None
    assert reason(harness, token) == "revoked"
    assert harness.client.get("/recheck").json() == {"session": None, "ended_reason": None}


def test_recheck_counts_as_activity_unless_passive(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="10m")
    quiet = {"X-Session-Passive": "1"}  # the requests themselves are passive: only the recheck counts
    token = harness.login()["token"]
    start = harness.whoami()["session"]["last_seen_at"]
    harness.clock.advance(9 * 60)
    passive = harness.client.get("/recheck?passive=1", headers=quiet).json()["session"]
    assert passive["last_seen_at"] == start  # checked, not used
    harness.clock.advance(60)  # ten minutes after the last active use
    assert reason(harness, token) == "idle_timeout"
    token = harness.login()["token"]
    harness.clock.advance(9 * 60)
    active = harness.client.get("/recheck", headers=quiet).json()["session"]
    assert active["last_seen_at"] > start
    harness.clock.advance(5 * 60)  # fourteen minutes after login, five after the recheck
    assert reason(harness, token) is None


def test_websocket_recheck_reports_the_ending(make_guard: Any, clock: Any) -> None:
    harness = Harness("asgi", make_guard(), clock)
    token = harness.login()["token"]
    client: Any = harness.new_client()
    with client.websocket_connect("/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["session"]["user_id"] == "ada"
        ws.send_text("recheck")
        assert ws.receive_json()["session"]["user_id"] == "ada"
        harness.guard.end_user("ada")
        ws.send_text("recheck")
        assert ws.receive_json() == {"session": None, "ended_reason": "revoked"}
        ws.send_text("bye")
    clock.advance(2 * HOUR)
    with client.websocket_connect("/ws", headers=bearer(harness.login()["token"])) as ws:
        ws.receive_json()
        clock.advance(2 * HOUR)  # past the idle timeout: the recheck notices and audits it
        ws.send_text("recheck")
        assert ws.receive_json() == {"session": None, "ended_reason": "idle_timeout"}
        ws.send_text("bye")
    assert events(harness)[0].type == "idle_timeout"
    harness.close()


# -- Session-Expires ------------------------------------------------------------------


def expires_of(response: httpx.Response) -> str | None:
    return response.headers.get("session-expires")


def test_session_expires_on_every_response_with_a_session(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="30m", admin_token=ADMIN_TOKEN)
    anonymous = harness.client.get("/whoami")
    assert expires_of(anonymous) is None
    login_response = harness.client.post("/login", json={"user": "ada"})
    created = login_response.json()["session"]
    assert expires_of(login_response) == created["expires_at"]  # the new session's
    harness.clock.advance(60)
    response = harness.client.get("/whoami")
    session = response.json()["session"]
    assert expires_of(response) == session["expires_at"] != created["expires_at"]  # moved with the use
    moment = datetime.fromisoformat(session["expires_at"].replace("Z", "+00:00"))
    assert moment == datetime.fromtimestamp(harness.clock.now + 30 * 60, tz=timezone.utc)
    admin = harness.client.get("/_sessionguard/api/me/sessions")  # the admin sub-app too
    assert expires_of(admin) == session["expires_at"]
    passive = harness.client.get("/whoami", headers={"X-Session-Passive": "1"})
    assert expires_of(passive) == session["expires_at"]
    stream = harness.client.get("/stream")
    assert expires_of(stream) is not None and stream.text == "chunk0;chunk1;chunk2;"
    assert expires_of(harness.client.post("/logout")) is None  # the session ended in the request
    token = login(harness)["token"]
    assert expires_of(harness.new_client().get("/whoami", headers=bearer(token))) is not None
    harness.guard.end_all()
    assert expires_of(harness.new_client().get("/whoami", headers=bearer(token))) is None


def test_session_expires_is_absent_when_the_session_never_expires(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="never", absolute_timeout="never")
    harness.login()
    response = harness.client.get("/whoami")
    assert response.json()["session"]["expires_at"] is None
    assert expires_of(response) is None


def test_session_expires_is_absent_after_signing_out_everywhere(harness: Harness) -> None:
    harness.login()
    csrf = harness.client.get("/_sessionguard/api/csrf").json()["csrf_token"]
    response = harness.client.post("/_sessionguard/api/me/signout-all", headers={"X-CSRF-Token": csrf})
    assert response.json() == {"ended": 1}
    assert expires_of(response) is None
