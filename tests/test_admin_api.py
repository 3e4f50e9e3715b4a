"""The admin sub-app's JSON API (SPEC §5), written once and run on both shells
(ASGI through Starlette, WSGI through Flask) and every store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import sessionguard.admin
from conftest import BASE_URL, Harness
from sessionguard import StoreUnavailable
from sessionguard.admin.auth import Signing
from sessionguard.audit import iso

ADMIN_TOKEN = "admin-" + "t" * 40
ADMIN = "/_sessionguard"
API = f"{ADMIN}/api"
TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = 86400


def ms_of(moment: str) -> int:
    """Epoch milliseconds of an ISO 8601 UTC time as the API writes it."""
    return round(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() * 1000)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """A harness with an admin token, plus helpers to log users in without
    sharing cookies (each login's token is then used as a bearer token)."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.client = harness.client  # the cookie-carrying browser of the tests
        self.anon = harness.new_client()

    def login(self, user: str, roles: list[str] | None = None, **body: Any) -> dict[str, Any]:
        """Log ``user`` in from a fresh client; ``{"token", "session"}``."""
        metadata = {"roles": roles} if roles is not None else {}
        answer = self.h.login(user, client=self.anon, metadata=metadata, **body)
        self.anon.cookies.clear()
        return dict(answer)

    def browser_login(self, user: str = "root", roles: list[str] | None = None) -> dict[str, Any]:
        """Log in on :attr:`client` (cookie authentication)."""
        return dict(self.h.login(user, metadata={"roles": roles or ["admin"]}))

    def csrf(self) -> dict[str, str]:
        response = self.client.get(f"{API}/csrf")
        assert response.status_code == 200, response.text
        return {"X-CSRF-Token": response.json()["csrf_token"]}

    def ended_reason(self, token: str) -> Any:
        return self.h.whoami(client=self.anon, headers=bearer(token))["ended_reason"]

    def events(self, **params: Any) -> list[dict[str, Any]]:
        response = self.anon.get(f"{API}/audit", params=params, headers=TOKEN)
        assert response.status_code == 200, response.text
        return list(response.json()["events"])


@pytest.fixture
def api(make_harness: Callable[..., Harness]) -> Api:
    return Api(make_harness(admin_token=ADMIN_TOKEN, readonly_roles="auditor"))


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code
    return dict(error)


# -- every endpoint: who may call it ------------------------------------------

ENDPOINTS = [
    pytest.param("GET", "/api/sessions", "sessions:read", id="list"),
    pytest.param("DELETE", "/api/sessions/0000AAAAAAAAAAAAAAAAAAAAAA", "sessions:revoke", id="end"),
    pytest.param("POST", "/api/users/ada/signout", "sessions:revoke", id="signout-user"),
    pytest.param("POST", "/api/signout-all", "sessions:revoke", id="signout-all"),
    pytest.param("PUT", "/api/users/ada/roles", "sessions:revoke+settings:update", id="set-roles"),
    pytest.param("GET", "/api/policy", "sessions:read", id="get-policy"),
    pytest.param("PUT", "/api/policy", "settings:update", id="put-policy"),
    pytest.param("GET", "/api/audit", "sessions:read", id="audit"),
    pytest.param("GET", "/api/me/sessions", "session", id="me-sessions"),
    pytest.param("DELETE", "/api/me/sessions/0000AAAAAAAAAAAAAAAAAAAAAA", "session", id="me-end"),
    pytest.param("POST", "/api/me/signout-others", "session", id="me-others"),
    pytest.param("POST", "/api/me/signout-all", "session", id="me-all"),
    pytest.param("GET", "/api/me/settings", "session", id="me-settings"),
    pytest.param("PUT", "/api/me/settings", "session", id="me-put-settings"),
    pytest.param("GET", "/api/csrf", "session", id="csrf"),
]


@pytest.mark.parametrize(("method", "path", "needs"), ENDPOINTS)
def test_permissions(api: Api, method: str, path: str, needs: str) -> None:
    url = ADMIN + path
    assert_error(api.anon.request(method, url), 401, "unauthenticated")
    forged = api.anon.request(method, url, headers=bearer("x" * 50))
    assert_error(forged, 401)
    plain = api.login("eve")["token"]
    auditor = api.login("carol", roles=["auditor"])["token"]
    admin = api.login("root", roles=["admin"])["token"]
    answers = {
        "eve": api.anon.request(method, url, headers=bearer(plain)),
        "carol": api.anon.request(method, url, headers=bearer(auditor)),
        "root": api.anon.request(method, url, headers=bearer(admin)),
        "token": api.anon.request(method, url, headers=TOKEN),
    }
    allowed = {
        "session": {"eve", "carol", "root"},
        "sessions:read": {"carol", "root", "token"},
    }.get(needs, {"root", "token"})
    for who, response in answers.items():
        code = response.status_code
        refused = code == 403 and response.json()["error"]["code"] in ("forbidden", "session_required")
        assert refused == (who not in allowed), (who, response.text)
        assert code not in (401, 500), (who, code)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("POST", "/api/sessions", "GET, HEAD", id="post-list"),
        pytest.param("GET", "/api/signout-all", "POST", id="get-signout-all"),
        pytest.param("PATCH", "/api/policy", "GET, HEAD, PUT", id="patch-policy"),
        pytest.param("PUT", "/api/sessions/abc", "DELETE", id="put-session"),
    ],
)
def test_wrong_method_is_405_with_allow(api: Api, method: str, path: str, allow: str) -> None:
    response = api.anon.request(method, ADMIN + path, headers=TOKEN)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    "path", ["/api/nope", "/api", "/api/sessions/", "/api/users/ada", "/nope.json", "/api/me"]
)
def test_unknown_admin_path_is_404_json(api: Api, path: str) -> None:
    assert_error(api.anon.get(ADMIN + path, headers=TOKEN), 404, "not_found")


def test_head_and_no_store(api: Api) -> None:
    response = api.anon.head(f"{API}/policy", headers=TOKEN)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["cache-control"] == "no-store"


def test_admin_path_off_leaves_the_path_to_the_app(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(admin_path="off", admin_token=ADMIN_TOKEN)
    response = harness.client.get(f"{API}/policy", headers=TOKEN)
    assert response.status_code == 404 and "error" not in response.text


# -- listing -------------------------------------------------------------------


def test_list_sessions_newest_first_with_filters(api: Api) -> None:
    tokens = []
    for user, platform in [("ada", "web"), ("grace", "mobile"), ("ada", "mobile")]:
        tokens.append(api.login(user, platform=platform)["token"])
        api.h.clock.advance(5)
    response = api.anon.get(f"{API}/sessions", headers=TOKEN)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["next_cursor"] is None
    assert [(s["user_id"], s["platform"]) for s in body["sessions"]] == [
        ("ada", "mobile"), ("grace", "mobile"), ("ada", "web"),
    ]
    assert set(body["sessions"][0]) == {
        "id", "user_id", "platform", "created_at", "last_seen_at", "expires_at", "remember_me",
        "ip", "city", "user_agent", "device", "metadata", "device_bound", "status",
    }
    assert not any(token in response.text for token in tokens)
    only = api.anon.get(f"{API}/sessions", params={"user_id": "ada", "platform": "mobile"}, headers=TOKEN)
    assert [(s["user_id"], s["platform"]) for s in only.json()["sessions"]] == [("ada", "mobile")]
    blank = api.anon.get(f"{API}/sessions?user_id=&platform=&limit=&cursor=", headers=TOKEN)
    assert len(blank.json()["sessions"]) == 3


def test_list_sessions_pages_with_cursor(api: Api) -> None:
    ids = {api.login(f"user{i}")["session"]["id"] for i in range(5)}  # same millisecond: ties
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.anon.get(f"{API}/sessions", params=params, headers=TOKEN).json()
        seen += [s["id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 5 and set(seen) == ids


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("limit=0", "limit", id="limit-zero"),
        pytest.param("limit=501", "limit", id="limit-over-max"),
        pytest.param("limit=ten", "limit", id="limit-text"),
        pytest.param("limit=-1", "limit", id="limit-negative"),
        pytest.param("limit=1&limit=2", "limit", id="limit-twice"),
        pytest.param("platform=toaster", "platform", id="platform"),
        pytest.param("cursor=garbage", "cursor", id="cursor-garbage"),
        pytest.param("cursor=%FF%FE", "cursor", id="cursor-bad-utf8"),
        pytest.param("user_id=" + "u" * 300, "user_id", id="user-id-too-long"),
    ],
)
def test_list_sessions_bad_query_is_422_naming_the_field(api: Api, query: str, field: str) -> None:
    error = assert_error(api.anon.get(f"{API}/sessions?{query}", headers=TOKEN), 422, "invalid_field")
    assert error["field"] == field and field in error["message"]


def test_cursor_of_one_listing_is_refused_by_another(api: Api) -> None:
    for i in range(3):
        api.login(f"user{i}")
    cursor = api.anon.get(f"{API}/sessions?limit=1", headers=TOKEN).json()["next_cursor"]
    assert cursor is not None
    error = assert_error(api.anon.get(f"{API}/audit", params={"cursor": cursor}, headers=TOKEN), 422)
    assert error["field"] == "cursor"
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert_error(api.anon.get(f"{API}/sessions", params={"cursor": tampered}, headers=TOKEN), 422)


# -- ending sessions -----------------------------------------------------------


def test_end_one_session_is_revoked(api: Api) -> None:
    api.browser_login()
    victim = api.login("ada")
    url = f"{API}/sessions/{victim['session']['id']}"
    assert_error(api.client.delete(url), 403, "csrf_failed")
    assert_error(api.client.delete(url, headers={"X-CSRF-Token": "nope"}), 403, "csrf_failed")
    response = api.client.delete(url, headers=api.csrf())
    assert response.status_code == 204 and response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert api.ended_reason(victim["token"]) == "revoked"
    assert_error(api.client.delete(url, headers=api.csrf()), 404, "not_found")
    assert_error(api.anon.delete(f"{API}/sessions/not-an-id", headers=TOKEN), 404, "not_found")
    event = api.events(user_id="ada")[0]
    assert event == {
        "type": "revoked", "at": event["at"], "user_id": "ada", "session_id": victim["session"]["id"],
        "platform": "web", "reason": "revoked", "actor": "user:root",
        # where the session was signed in from (SPEC 9.3)
        "ip": victim["session"]["ip"], "device": victim["session"]["device"], "city": None,
    }


def test_csrf_token_is_bound_to_the_session(api: Api, make_harness: Callable[..., Harness]) -> None:
    api.browser_login()
    victim = api.login("ada")["session"]["id"]
    other = Signing([api.h.guard.config.secret_key[0]]).csrf_token("0000" + "A" * 22)
    response = api.client.delete(f"{API}/sessions/{victim}", headers={"X-CSRF-Token": other})
    assert_error(response, 403, "csrf_failed")


def test_session_bearer_needs_no_csrf(api: Api) -> None:
    admin = api.login("root", roles=["admin"])["token"]
    victim = api.login("ada")
    response = api.anon.delete(f"{API}/sessions/{victim['session']['id']}", headers=bearer(admin))
    assert response.status_code == 204
    assert api.events(user_id="ada")[0]["actor"] == "user:root"


def test_admin_token_revokes_with_its_actor(api: Api) -> None:
    victim = api.login("ada")
    response = api.anon.delete(f"{API}/sessions/{victim['session']['id']}", headers=TOKEN)
    assert response.status_code == 204
    assert api.ended_reason(victim["token"]) == "revoked"
    assert api.events()[0]["actor"] == "admin-token"


def test_signout_user_on_one_platform(api: Api) -> None:
    web, mobile = api.login("ada", platform="web"), api.login("ada", platform="mobile")
    other = api.login("grace")
    url = f"{API}/users/ada/signout"
    response = api.anon.post(url, json={"platform": "mobile"}, headers=TOKEN)
    assert response.status_code == 200 and response.json() == {"ended": 1}
    assert api.ended_reason(mobile["token"]) == "revoked"
    assert api.ended_reason(web["token"]) is None
    assert api.anon.post(url, headers=TOKEN).json() == {"ended": 1}
    assert api.ended_reason(web["token"]) == "revoked"
    assert api.ended_reason(other["token"]) is None
    assert api.anon.post(f"{API}/users/nobody/signout", headers=TOKEN).json() == {"ended": 0}
    types = [(e["type"], e["reason"], e["actor"]) for e in api.events(user_id="ada")[:2]]
    assert types == [("revoked", "revoked", "admin-token")] * 2


def test_signout_user_with_odd_user_ids(api: Api) -> None:
    # (Not "%" itself: Starlette's TestClient decodes the path twice.)
    for user in ["a/b", "ünï cødé", "semi;colon?&=#"]:
        token = api.login(user)["token"]
        response = api.anon.post(f"{API}/users/{quote(user, safe='')}/signout", headers=TOKEN)
        assert response.json() == {"ended": 1}, user
        assert api.ended_reason(token) == "revoked"


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        pytest.param(b'{"platform": "toaster"}', 422, "platform", id="bad-platform"),
        pytest.param(b'{"platfrom": "web"}', 422, "platfrom", id="unknown-field"),
        pytest.param(b"[1, 2]", 422, "body", id="not-an-object"),
        pytest.param(b"{nope", 400, None, id="not-json"),
        pytest.param(b"\xff\xfe", 400, None, id="not-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, 400, None, id="too-deep"),
        pytest.param(b'{"platform": NaN}', 400, None, id="nan"),
        pytest.param(b"1" * 5000, 400, None, id="huge-int"),
    ],
)
def test_signout_user_bad_bodies(api: Api, content: bytes, status: int, field: str | None) -> None:
    response = api.anon.post(f"{API}/users/ada/signout", content=content, headers=TOKEN)
    error = assert_error(response, status)
    assert error.get("field") == field


def test_signout_all_needs_the_phrase(api: Api) -> None:
    token = api.login("ada")["token"]
    for body in [None, {}, {"confirm": "sign out all"}, {"confirm": "SIGN OUT ALL "}, {"confirm": 1}]:
        response = api.anon.post(f"{API}/signout-all", json=body, headers=TOKEN)
        assert assert_error(response, 422, "invalid_field")["field"] == "confirm"
    response = api.anon.post(
        f"{API}/signout-all", json={"confirm": "SIGN OUT ALL", "keep_mine": "yes"}, headers=TOKEN
    )
    assert assert_error(response, 422)["field"] == "keep_mine"
    assert api.ended_reason(token) is None


def test_signout_all_keep_mine(api: Api) -> None:
    api.browser_login("root")
    mine_elsewhere = api.login("root", roles=["admin"])
    others = [api.login("ada"), api.login("grace", platform="mobile")]
    api.h.clock.advance(1)
    body = {"confirm": "SIGN OUT ALL", "keep_mine": True}
    response = api.client.post(f"{API}/signout-all", json=body, headers=api.csrf())
    assert response.status_code == 200 and response.json() == {"ended": "all"}
    api.h.clock.advance(1)
    assert api.h.whoami()["session"]["user_id"] == "root"
    for answer in [mine_elsewhere, *others]:
        assert api.ended_reason(answer["token"]) == "signout_all"
    event = admin_events(api)[0]
    assert (event["type"], event["reason"], event["actor"]) == ("signout_all", "signout_all", "user:root")
    assert api.login("ada")["token"]  # new logins work at once


def test_signout_all_by_admin_token_ends_everyone(api: Api) -> None:
    tokens = [api.login("ada")["token"], api.login("root", roles=["admin"])["token"]]
    api.h.clock.advance(1)
    body = {"confirm": "SIGN OUT ALL", "keep_mine": True}  # the token has no session to keep
    assert api.anon.post(f"{API}/signout-all", json=body, headers=TOKEN).json() == {"ended": "all"}
    api.h.clock.advance(1)
    assert [api.ended_reason(t) for t in tokens] == ["signout_all", "signout_all"]
    assert admin_events(api)[0]["actor"] == "admin-token"


def admin_events(api: Api) -> list[dict[str, Any]]:
    """Events written by admin actions (not the ``system`` ones a request
    writes when it finds its session ended)."""
    return [e for e in api.events() if e["actor"] != "system"]


# -- policy --------------------------------------------------------------------


def test_policy_get_and_partial_put(api: Api) -> None:
    policy = api.anon.get(f"{API}/policy", headers=TOKEN).json()
    assert policy == {
        "platforms": {p: {"idle_timeout": "1h", "absolute_timeout": "30d", "session_timeout": "30d",
                          "max_sessions": None}
                      for p in ("web", "mobile", "desktop")},
        "remember_me_period": "14d", "on_limit": "evict_oldest", "max_sessions_total": None,
    }
    change = {"platforms": {"mobile": {"idle_timeout": "never", "max_sessions": 3}}, "on_limit": "reject"}
    response = api.anon.put(f"{API}/policy", json=change, headers=TOKEN)
    assert response.status_code == 200
    updated = response.json()
    assert updated["platforms"]["mobile"] == {"idle_timeout": "never", "absolute_timeout": "30d",
                                              "session_timeout": "30d", "max_sessions": 3}
    assert updated["platforms"]["web"] == policy["platforms"]["web"] and updated["on_limit"] == "reject"
    assert api.anon.get(f"{API}/policy", headers=TOKEN).json() == updated
    assert api.anon.put(f"{API}/policy", json=updated, headers=TOKEN).json() == updated  # round trip
    event = api.events()[0]
    assert (event["type"], event["actor"], event["user_id"]) == ("policy_changed", "admin-token", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"platforms": {"web": {"idle_timeout": "15x"}}}, "platforms.web.idle_timeout", id="dur"),
        pytest.param({"platforms": {"web": {"max_sessions": 0}}}, "platforms.web.max_sessions", id="max0"),
        pytest.param({"platforms": {"web": {"max_sessions": True}}}, "platforms.web.max_sessions", id="bool"),
        pytest.param({"platforms": {"tv": {}}}, "platforms.tv", id="platform"),
        pytest.param({"platforms": []}, "platforms", id="platforms-list"),
        pytest.param({"on_limit": "explode"}, "on_limit", id="on-limit"),
        pytest.param({"max_sessions_total": 0}, "max_sessions_total", id="total0"),
        pytest.param({"remember_me_period": -5}, "remember_me_period", id="negative"),
        pytest.param({"colour": "blue"}, "colour", id="unknown"),
        pytest.param(["platforms"], "body", id="list"),
        pytest.param(None, "body", id="empty"),
    ],
)
def test_policy_put_422_names_the_field(api: Api, body: Any, field: str) -> None:
    before = api.anon.get(f"{API}/policy", headers=TOKEN).json()
    error = assert_error(api.anon.put(f"{API}/policy", json=body, headers=TOKEN), 422, "invalid_field")
    assert error["field"] == field and error["message"].startswith(field)
    assert api.anon.get(f"{API}/policy", headers=TOKEN).json() == before


def test_policy_change_applies_at_once_on_every_guard(
    api: Api, make_harness: Callable[..., Harness], store_kind: str
) -> None:
    # A second app server on the same store: shared objects for memory, the same prefix for Redis.
    second = make_harness(share_store=api.h.guard) if store_kind == "memory" else make_harness()
    token = api.login("ada")["token"]
    api.h.clock.advance(40 * 60)
    change = {"platforms": {"web": {"idle_timeout": "30m"}}}
    assert api.anon.put(f"{API}/policy", json=change, headers=TOKEN).status_code == 200
    assert second.guard.store.policy().web.idle_timeout == 30 * 60
    seen = second.whoami(client=second.new_client(), headers=bearer(token))
    assert seen["ended_reason"] == "idle_timeout"


# -- audit ---------------------------------------------------------------------


def test_audit_filters_and_pages(api: Api) -> None:
    for user in ["ada", "grace", "ada"]:
        api.login(user)
        api.h.clock.advance(1)
    events = api.events(user_id="ada")
    assert [e["type"] for e in events] == ["login", "login"]
    assert all(e["actor"] == "user:ada" and e["platform"] == "web" for e in events)
    first = api.anon.get(f"{API}/audit", params={"limit": 2}, headers=TOKEN).json()
    assert [e["user_id"] for e in first["events"]] == ["ada", "grace"]
    rest = api.anon.get(f"{API}/audit", params={"limit": 2, "cursor": first["next_cursor"]}, headers=TOKEN)
    assert [e["user_id"] for e in rest.json()["events"]] == ["ada"] and rest.json()["next_cursor"] is None
    assert assert_error(api.anon.get(f"{API}/audit?limit=0", headers=TOKEN), 422)["field"] == "limit"


def test_audit_also_goes_to_logger_and_callback(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    api.h.guard.on_event = seen.append
    victim = api.login("ada")
    seen.clear()
    with caplog.at_level("INFO", logger="sessionguard.audit"):
        api.anon.delete(f"{API}/sessions/{victim['session']['id']}", headers=TOKEN)
    assert [(e.type, e.actor) for e in seen] == [("revoked", "admin-token")]
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sessionguard.audit"]
    assert [e["type"] for e in logged] == ["revoked"]
    assert victim["token"] not in caplog.text


# -- self-service --------------------------------------------------------------


def test_me_sessions_and_ending_one(api: Api) -> None:
    mine = api.browser_login("ada", roles=[])
    api.h.clock.advance(1)
    phone = api.login("ada", platform="mobile")
    stranger = api.login("grace")
    sessions = api.client.get(f"{API}/me/sessions").json()["sessions"]
    assert [(s["platform"], s["current"]) for s in sessions] == [("mobile", False), ("web", True)]
    assert sessions[1]["id"] == mine["session"]["id"]
    url = f"{API}/me/sessions/{phone['session']['id']}"
    assert_error(api.client.delete(url), 403, "csrf_failed")
    assert api.client.delete(url, headers=api.csrf()).status_code == 204
    assert api.ended_reason(phone["token"]) == "signed_out"
    foreign = f"{API}/me/sessions/{stranger['session']['id']}"
    assert_error(api.client.delete(foreign, headers=api.csrf()), 404, "not_found")
    assert api.ended_reason(stranger["token"]) is None
    event = api.events(user_id="ada")[0]
    assert (event["type"], event["reason"], event["actor"]) == ("logout", "signed_out", "user:ada")


def test_listings_show_this_process_own_recent_use(api: Api) -> None:
    # SPEC 9.2, issue 16 item 14: a request 1.5 s after login waits for its touch moment (the
    # touch interval is 20 minutes here), yet every listing this process serves shows it
    laptop = api.login("ada")
    phone = api.login("ada", platform="mobile")
    api.h.clock.advance(1.5)
    assert api.ended_reason(laptop["token"]) is None  # the use
    api.h.clock.advance(0.5)
    created = laptop["session"]["created_at"]
    used = iso(ms_of(created) + 1500)

    def last_seen(sessions: list[dict[str, Any]]) -> tuple[str, str]:
        [shown] = [s for s in sessions if s["id"] == laptop["session"]["id"]]
        return shown["last_seen_at"], shown["expires_at"]

    expected = (used, iso(ms_of(created) + 1500 + 3600_000))
    answers = [api.anon.get(f"{API}/sessions", headers=TOKEN),
               api.anon.get(f"{API}/sessions", params={"user_id": "ada"}, headers=TOKEN),
               api.anon.get(f"{API}/me/sessions", headers=bearer(phone["token"]))]
    assert [last_seen(a.json()["sessions"]) for a in answers] == [expected] * 3


def test_me_ending_the_current_session_clears_the_cookie(api: Api) -> None:
    mine = api.browser_login("ada", roles=[])
    response = api.client.delete(f"{API}/me/sessions/{mine['session']['id']}", headers=api.csrf())
    assert response.status_code == 204
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert api.ended_reason(mine["token"]) == "signed_out"


def test_me_signout_others(api: Api) -> None:
    api.browser_login("ada", roles=[])
    others = [api.login("ada", platform=p) for p in ("mobile", "desktop")]
    stranger = api.login("grace")
    response = api.client.post(f"{API}/me/signout-others", headers=api.csrf())
    assert response.json() == {"ended": 2}
    assert [api.ended_reason(o["token"]) for o in others] == ["signed_out", "signed_out"]
    assert api.h.whoami()["session"]["user_id"] == "ada"
    assert api.ended_reason(stranger["token"]) is None
    # With a session bearer token no CSRF token is needed.
    phone = api.login("ada", platform="mobile")
    assert api.anon.post(f"{API}/me/signout-others", headers=bearer(phone["token"])).json() == {"ended": 1}


def test_me_endpoints_need_a_session_of_ones_own(api: Api) -> None:
    assert_error(api.anon.get(f"{API}/me/sessions"), 401, "unauthenticated")
    assert_error(api.anon.get(f"{API}/me/sessions", headers=TOKEN), 403, "session_required")
    assert_error(api.anon.get(f"{API}/csrf", headers=TOKEN), 403, "session_required")


def test_me_settings_refused_unless_allowed(api: Api) -> None:
    token = api.login("ada")["token"]
    settings_ = api.anon.get(f"{API}/me/settings", headers=bearer(token)).json()
    assert settings_ == {
        "allowed": False, "idle_timeout": {"web": None, "mobile": None, "desktop": None},
        "choices": ["never", "10m", "30m", "90m", "1h", "4h", "8h", "12h", "1d", "2d"],
    }
    change = {"idle_timeout": {"web": "30m"}}
    response = api.anon.put(f"{API}/me/settings", json=change, headers=bearer(token))
    assert_error(response, 403, "user_timeouts_disabled")


def test_me_settings_when_allowed(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, allow_user_timeouts=True, idle_timeout="2h"))
    api.browser_login("ada", roles=[])
    url = f"{API}/me/settings"
    assert_error(api.client.put(url, json={"idle_timeout": {"web": "30m"}}), 403, "csrf_failed")
    response = api.client.put(url, json={"idle_timeout": {"web": "30m"}}, headers=api.csrf())
    expected = {"allowed": True, "idle_timeout": {"web": "30m", "mobile": None, "desktop": None},
                "choices": ["never", "10m", "30m", "90m", "1h", "4h", "8h", "12h", "1d", "2d"]}
    assert response.status_code == 200 and response.json() == expected
    assert api.client.get(url).json() == expected
    event = api.events(user_id="ada")[0]
    assert (event["type"], event["actor"]) == ("settings_changed", "user:ada")
    api.h.clock.advance(31 * 60)
    assert api.h.whoami()["ended_reason"] == "idle_timeout"  # the user's 30 m, not the admin's 2 h
    token = api.login("ada")["token"]
    cleared = api.anon.put(url, json={"idle_timeout": {"web": None}}, headers=bearer(token))
    assert cleared.json()["idle_timeout"]["web"] is None
    for body, field in [
        ({"idle_timeout": {"web": "15x"}}, "idle_timeout.web"),
        ({"idle_timeout": {"web": "15m"}}, "idle_timeout.web"),  # a duration, but not a choice
        ({"idle_timeout": {"web": 0}}, "idle_timeout.web"),
        ({"idle_timeout": {"tv": "1h"}}, "idle_timeout.tv"),
        ({"idle_timeout": "1h"}, "idle_timeout"),
        ({"timeouts": {}}, "timeouts"),
        ([], "body"),
    ]:
        response = api.anon.put(url, json=body, headers=bearer(token))
        assert assert_error(response, 422)["field"] == field, body


def test_one_user_cannot_push_other_users_events_out(make_harness: Callable[..., Harness]) -> None:
    # Issue 16 item 8: PUT /api/me/settings flooded a 50-event log, pushing out another user's
    # 'revoked'. (160: enough for Redis's approximate MAXLEN trimming to drop whole nodes.)
    api = Api(make_harness(admin_token=ADMIN_TOKEN, allow_user_timeouts=True, audit_maxlen=50))
    bob = api.login("bob")
    assert api.anon.delete(f"{API}/sessions/{bob['session']['id']}", headers=TOKEN).status_code == 204
    ada = bearer(api.login("ada")["token"])
    for n in range(160):
        change = api.anon.put(f"{API}/me/settings", json={"idle_timeout": {"web": ("10m", "30m")[n % 2]}},
                              headers=ada)
        assert change.status_code == 200
    assert api.anon.get(f"{API}/me/settings", headers=ada).json()["idle_timeout"]["web"] == "30m"
    events = api.events(limit=200)
    assert [e["type"] for e in events if e["user_id"] == "bob"] == ["revoked", "login"]
    assert [e["type"] for e in events if e["user_id"] == "ada"] == ["settings_changed", "login"]


def test_self_service_over_sixty_events_an_hour_is_done_and_counted(api: Api) -> None:
    for _ in range(70):
        phone = api.login("ada", platform="mobile")
    assert api.anon.post(f"{API}/me/signout-others", headers=bearer(phone["token"])).json() == {"ended": 69}
    events = api.events(user_id="ada", limit=200)
    assert [e["type"] for e in events].count("logout") == 60
    [report] = [e for e in events if e["type"] == "rate_limited"]
    assert (report["actor"], json.loads(report["detail"])["not_recorded"]) == ("user:ada", 9)
    assert events[0] == report


# -- explicit mounting -----------------------------------------------------------


def test_explicit_mount_validates_sessions_itself(make_harness: Callable[..., Harness], shell: str) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN)
    token = harness.login("root", metadata={"roles": ["admin"]})["token"]
    if shell == "asgi":
        app = Starlette(routes=[Mount("/admin", app=sessionguard.admin.asgi_app(harness.guard))])
        client: httpx.Client = TestClient(app, base_url=BASE_URL)
    else:
        mounts = {"/admin": sessionguard.admin.wsgi_app(harness.guard)}
        wsgi = DispatcherMiddleware(lambda environ, start: [], mounts)  # type: ignore[arg-type]
        client = httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url=BASE_URL)
    calls = [
        ("/admin/api/sessions", TOKEN, 200),
        ("/admin/api/me/sessions", bearer(token), 200),
        ("/admin/api/me/sessions", {"Cookie": f"sg_session={token}"}, 200),
        ("/admin/api/sessions", {}, 401),
        ("/admin/api/nope", TOKEN, 404),
    ]
    with client:
        for path, headers, status in calls:
            response = client.get(path, headers=headers)
            assert response.status_code == status, (path, response.text)
        spec = client.get("/admin/openapi.json").json()
    assert "/admin/api/sessions" in spec["paths"]


# -- garbage in, never a 500 ---------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from(["api", "sessions", "users", "me", "signout", "signout-all", "policy", "audit",
                     "settings", "csrf", "openapi.json", "%zz", "%ff%fe", "..", "%00", "%2F"]),
    st.text(max_size=12).map(lambda s: quote(s, safe="")),
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                              max_size=3),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"confirm": st.text(max_size=14), "keep_mine": st.booleans()}).map(
        lambda v: json.dumps(v).encode()),
)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    segments=st.lists(SEGMENTS, max_size=5),
    query=st.text(max_size=30).map(lambda s: quote(s, safe="=&%")),
    body=BODIES,
    auth=st.sampled_from([None, "admin", "garbage", "user"]),
    csrf=st.one_of(st.none(), st.text(max_size=20).map(lambda s: s.encode("ascii", "replace").decode())),
)
def test_garbage_never_gets_a_500(
    api: Api, method: str, segments: list[str], query: str, body: bytes, auth: str | None, csrf: str | None
) -> None:
    headers: dict[str, str] = {}
    if auth == "admin":
        headers.update(TOKEN)
    elif auth == "garbage":
        headers["Authorization"] = "Bearer %%" + "x" * 30
    elif auth == "user":
        headers.update(bearer(api.login("ada")["token"]))
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    url = ADMIN + "/" + "/".join(segments) + ("?" + query if query else "")
    request = api.anon.build_request(method, url, content=body, headers=headers)
    assume(request.url.path.startswith(ADMIN))  # ".." segments may leave the sub-app
    response = api.anon.send(request)
    assert response.status_code < 500, (url, response.text)
    under_api = request.url.path.startswith(API + "/")  # the HTML pages answer in HTML
    if response.status_code >= 400 and method != "HEAD" and under_api:
        assert_error(response, response.status_code)


def test_store_unavailable_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("down")

    async def adown(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("down")

    monkeypatch.setattr(api.h.guard.store, "list_sessions", down)
    monkeypatch.setattr(api.h.guard.async_store, "list_sessions", adown)
    response = api.anon.get(f"{API}/sessions", headers=TOKEN)
    assert_error(response, 503, "store_unavailable")
    assert response.headers["retry-after"] == "1"
