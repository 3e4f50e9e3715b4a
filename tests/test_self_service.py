"""Permissions by role, self-service switched off, the idle timeouts a user may
pick (``never`` among them) and signing out everywhere (SPEC §9.4), through
the admin API on both shells and both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import Harness
from test_admin_api import ADMIN, ADMIN_TOKEN, API, TOKEN, Api, assert_error, bearer

HOUR = 3600
DAY = 86400


@pytest.fixture
def api(make_harness: Callable[..., Harness]) -> Api:
    return Api(make_harness(admin_token=ADMIN_TOKEN))


# -- USER_IDLE_TIMEOUT_CHOICES -------------------------------------------------------


def test_a_user_may_choose_never_and_the_absolute_timeout_still_applies(
    make_harness: Callable[..., Harness],
) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, allow_user_timeouts=True, idle_timeout="2h",
                           absolute_timeout="1d"))
    api.browser_login("ada", roles=[])
    url = f"{API}/me/settings"
    response = api.client.put(url, json={"idle_timeout": {"web": "never"}}, headers=api.csrf())
    assert response.status_code == 200, response.text
    assert response.json()["idle_timeout"] == {"web": "never", "mobile": None, "desktop": None}
    assert api.client.get(url).json()["idle_timeout"]["web"] == "never"
    later = api.login("ada")  # a session created after the choice follows it too
    phone = api.login("ada", platform="mobile")  # another platform keeps the admin's 2 h
    api.h.clock.advance(3 * HOUR)
    seen = api.h.whoami()["session"]
    assert seen is not None
    assert seen["expires_at"] == _at(seen["created_at"], DAY)  # only the absolute timeout is left
    assert (api.ended_reason(later["token"]), api.ended_reason(phone["token"])) == (None, "idle_timeout")
    api.h.clock.advance(DAY)
    assert api.h.whoami()["ended_reason"] == "absolute_timeout"
    assert api.ended_reason(later["token"]) == "absolute_timeout"
    event = [e for e in api.events(user_id="ada") if e["type"] == "settings_changed"][0]
    assert '"web":"never"' in event["detail"]


def _at(iso: str, seconds: int) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_only_the_configured_choices_are_accepted(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(allow_user_timeouts=True, user_idle_timeout_choices="15m, 2h,15m"))
    token = api.login("ada")["token"]
    url = f"{API}/me/settings"
    settings = api.anon.get(url, headers=bearer(token)).json()
    assert settings["choices"] == ["15m", "2h"]
    accepted = api.anon.put(url, json={"idle_timeout": {"web": "900", "mobile": "2h"}}, headers=bearer(token))
    assert accepted.json()["idle_timeout"] == {"web": "15m", "mobile": "2h", "desktop": None}
    for value in ("never", "30m", "1d", "soon"):
        refused = api.anon.put(url, json={"idle_timeout": {"desktop": value}}, headers=bearer(token))
        error = assert_error(refused, 422, "invalid_field")
        assert error["field"] == "idle_timeout.desktop"
        assert "15m, 2h" in error["message"], error
    assert api.anon.get(url, headers=bearer(token)).json()["idle_timeout"]["desktop"] is None


# -- POST api/me/signout-all ------------------------------------------------------


def test_signout_all_ends_every_session_of_the_caller_including_this_one(api: Api) -> None:
    mine = api.browser_login("ada", roles=[])
    others = [api.login("ada", platform=p) for p in ("web", "mobile")]
    stranger = api.login("grace")
    url = f"{API}/me/signout-all"
    assert_error(api.client.post(url), 403, "csrf_failed")
    response = api.client.post(url, headers=api.csrf())
    assert response.status_code == 200 and response.json() == {"ended": 3}
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert response.headers.get("session-expires") is None
    assert api.h.whoami() == {"session": None, "ended_reason": None}  # the cookie is gone
    tokens = [mine["token"], *(o["token"] for o in others)]
    assert [api.ended_reason(t) for t in tokens] == ["signed_out"] * 3
    assert api.ended_reason(stranger["token"]) is None
    logouts = [e for e in api.events(user_id="ada") if e["type"] == "logout"]
    assert [(e["reason"], e["actor"]) for e in logouts] == [("signed_out", "user:ada")] * 3
    phone = api.login("ada", platform="mobile")
    by_bearer = api.anon.post(url, headers=bearer(phone["token"]))  # no CSRF, no cookie to clear
    assert by_bearer.json() == {"ended": 1} and "set-cookie" not in by_bearer.headers
    assert api.ended_reason(phone["token"]) == "signed_out"


# -- SELF_SERVICE=off ---------------------------------------------------------------


def test_self_service_off_removes_me_but_keeps_the_admin_api(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, self_service="off"))
    admin = api.browser_login("root", roles=["admin"])
    user = api.login("ada")
    for method, path in [("GET", "/api/me/sessions"), ("POST", "/api/me/signout-others"),
                         ("POST", "/api/me/signout-all"), ("GET", "/api/me/settings"),
                         ("DELETE", f"/api/me/sessions/{user['session']['id']}"), ("GET", "/me")]:
        for headers in (bearer(user["token"]), TOKEN, {}):
            assert_error(api.anon.request(method, ADMIN + path, headers=headers), 404, "not_found")
    assert api.ended_reason(user["token"]) is None
    assert api.client.get(f"{API}/sessions").status_code == 200  # the admin API stays
    assert api.client.get(f"{API}/csrf").status_code == 200  # (its writes need CSRF tokens)
    ended = api.client.delete(f"{API}/sessions/{user['session']['id']}", headers=api.csrf())
    assert ended.status_code == 204
    page = api.client.get(f"{ADMIN}/")
    assert page.status_code == 200 and f'href="{ADMIN}/me"' not in page.text
    paths = api.anon.get(f"{ADMIN}/openapi.json").json()["paths"]
    assert f"{API}/sessions" in paths and f"{API}/csrf" in paths
    assert not [p for p in paths if p.startswith(f"{API}/me") or p == f"{ADMIN}/me"]
    assert admin["session"]["user_id"] == "root"


def test_self_service_on_by_default_is_linked_and_described(api: Api) -> None:
    api.browser_login("root", roles=["admin"])
    assert f'href="{ADMIN}/me"' in api.client.get(f"{ADMIN}/").text
    paths = api.anon.get(f"{ADMIN}/openapi.json").json()["paths"]
    assert {f"{API}/me/signout-all", f"{API}/me/settings", f"{ADMIN}/me"} <= set(paths)


# -- ROLE_PERMISSIONS ------------------------------------------------------------------


def test_role_permissions_replace_admin_and_readonly_roles(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(
        admin_token=ADMIN_TOKEN, readonly_roles="auditor",
        role_permissions="helpdesk=sessions:read+sessions:revoke; policy=settings:update",
    )
    api = Api(harness)
    victims = [api.login("grace") for _ in range(2)]
    helpdesk = bearer(api.login("hd", roles=["helpdesk"])["token"])
    policy = bearer(api.login("po", roles=["policy"])["token"])
    both = bearer(api.login("lead", roles=["policy", "helpdesk"])["token"])
    former = [bearer(api.login(u, roles=[r])["token"]) for u, r in (("root", "admin"), ("carol", "auditor"))]

    def status(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> int:
        response: httpx.Response = api.anon.request(method, API + path, headers=headers, **kwargs)
        return response.status_code

    change = {"json": {"on_limit": "reject"}}
    assert status("GET", "/sessions", helpdesk) == 200
    assert status("DELETE", f"/sessions/{victims[0]['session']['id']}", helpdesk) == 204
    assert status("PUT", "/policy", helpdesk, **change) == 403  # revokes, but changes no policy
    assert status("PUT", "/policy", policy, **change) == 200
    assert status("GET", "/sessions", policy) == 403  # changes the policy, but lists no sessions
    assert status("DELETE", f"/sessions/{victims[1]['session']['id']}", policy) == 403
    assert status("GET", "/audit", both) == 200 and status("PUT", "/policy", both, **change) == 200
    for headers in former:  # ADMIN_ROLES and READONLY_ROLES no longer count
        assert status("GET", "/sessions", headers) == 403
    assert status("GET", "/me/sessions", policy) == 200  # self-service needs no permission
    assert api.ended_reason(victims[1]["token"]) is None


def test_put_roles_changes_permissions_at_the_next_request(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN,
                           role_permissions="admin=sessions:read+sessions:revoke+settings:update;"
                                            "helpdesk=sessions:read+sessions:revoke"))
    boss = api.browser_login("root", roles=["admin"])
    demoted = api.login("eve", roles=["admin"])
    helpdesk = bearer(api.login("hd", roles=["helpdesk"])["token"])
    url = f"{API}/users/eve/roles"
    assert api.anon.get(f"{API}/sessions", headers=bearer(demoted["token"])).status_code == 200
    refused = api.anon.put(url, json={"roles": []}, headers=helpdesk)  # revokes, but may not change roles
    assert assert_error(refused, 403, "forbidden")["message"] == (
        "This needs the sessions:revoke and settings:update permissions.")
    assert_error(api.client.put(url, json={"roles": ["helpdesk"]}), 403, "csrf_failed")
    response = api.client.put(url, json={"roles": ["helpdesk"]}, headers=api.csrf())
    assert response.status_code == 200 and response.json() == {"updated": 1}
    seen = api.anon.put(url, json={"roles": []}, headers=bearer(demoted["token"]))
    assert_error(seen, 403, "forbidden")  # eve's own next request already has the new roles
    assert api.anon.put(url, json={"roles": []}, headers=TOKEN).json() == {"updated": 1}
    event = [e for e in api.events(user_id="eve") if e["type"] == "roles_changed"][0]
    assert event["actor"] == "admin-token" and '"roles":[]' in event["detail"]
    for body, field in [({"roles": "admin"}, "roles"), ({"roles": [1]}, "roles"), ({}, "roles"),
                        ({"roles": [], "extra": 1}, "extra")]:
        assert assert_error(api.client.put(url, json=body, headers=api.csrf()), 422)["field"] == field
    assert boss["session"]["metadata"] == {"roles": ["admin"]}


# -- a 401 says why the session ended -------------------------------------------------


def test_the_401_of_an_ended_session_says_why(api: Api) -> None:
    token = api.login("ada")["token"]
    assert api.anon.post(f"{API}/users/ada/signout", headers=TOKEN).json() == {"ended": 1}
    error = assert_error(api.anon.get(f"{API}/csrf", headers=bearer(token)), 401, "unauthenticated")
    assert (error["reason"], error["message"]) == ("revoked", "You were signed out by an administrator.")
    anonymous = assert_error(api.anon.get(f"{API}/csrf"), 401, "unauthenticated")
    assert "reason" not in anonymous


# -- ending one's own session through the admin API ------------------------------------


def test_ending_ones_own_remembered_session_clears_the_cookie_only(api: Api) -> None:
    api.h.login("ada", remember_me=True)
    api.h.clock.advance(DAY + 60)  # this request's touch would re-send the remember-me cookie
    own = api.h.whoami(headers={"X-Session-Passive": "1"})["session"]["id"]
    csrf = api.csrf()
    api.h.clock.advance(DAY)
    response = api.client.delete(f"{API}/me/sessions/{own}", headers=csrf)
    assert response.status_code == 204
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1 and "Max-Age=0" in cookies[0], cookies
    assert response.headers.get("session-expires") is None
    assert api.h.whoami() == {"session": None, "ended_reason": None}
