"""Behaviour of the middleware, written once and run on both shells (ASGI
through Starlette, WSGI through Flask) and every store (memory, Redis)."""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any

import httpx
import pytest

from conftest import BASE_URL, OLD_SECRET, SECRET, Harness
from sessionguard import Config, SessionGuard
from sessionguard.tokens import Tokens

HOUR = 3600
DAY = 86400


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fresh_client_whoami(harness: Harness, token: str) -> Any:
    """What a request presenting ``token`` as a bearer token sees."""
    return harness.whoami(client=harness.new_client(), headers=bearer(token))


# -- login, logout, cookies ----------------------------------------------------


def test_login_sets_cookie_and_session_is_seen(harness: Harness) -> None:
    response = harness.client.post("/login", json={"user": "ada", "metadata": {"name": "Ada"}})
    assert response.status_code == 200
    body = response.json()
    cookies = set_cookies(response)
    assert len(cookies) == 1
    assert cookies[0].startswith(f"sg_session={body['token']};")
    assert response.headers["cache-control"] == "no-store"
    seen = harness.whoami()
    assert seen["ended_reason"] is None
    session = seen["session"]
    assert session["user_id"] == "ada"
    assert session["metadata"] == {"name": "Ada"}
    assert session["id"] == body["session"]["id"]
    assert body["token"] not in str(seen)  # the token is never part of a Session's JSON
    assert set(session) == {
        "id", "user_id", "platform", "created_at", "last_seen_at", "expires_at", "remember_me",
        "ip", "city", "user_agent", "device", "metadata", "device_bound",
    }


def test_cookie_attributes(harness: Harness) -> None:
    cookie = set_cookies(harness.client.post("/login", json={"user": "ada"}))[0]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "max-age" not in attributes and "expires" not in attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie


def test_cookie_settings_are_honoured(make_harness: Any) -> None:
    harness = make_harness(
        cookie_name="__Host-sid", cookie_samesite="strict", cookie_secure=True
    )
    cookie = set_cookies(harness.client.post("/login", json={"user": "ada"}))[0]
    assert cookie.startswith("__Host-sid=")
    assert "SameSite=Strict" in cookie and "Domain" not in cookie
    assert harness.whoami()["session"]["user_id"] == "ada"


def test_logout_ends_session_and_clears_cookie(harness: Harness) -> None:
    token = harness.login()["token"]
    response = harness.client.post("/logout")
    cookie = set_cookies(response)[0]
    assert "Max-Age=0" in cookie and response.headers["cache-control"] == "no-store"
    assert harness.whoami()["session"] is None
    assert fresh_client_whoami(harness, token) == {"session": None, "ended_reason": "signed_out"}


def test_plain_responses_carry_no_cookie(harness: Harness) -> None:
    harness.login()
    response = harness.client.get("/whoami")
    assert set_cookies(response) == []
    anonymous = harness.new_client().get("/whoami")
    assert set_cookies(anonymous) == [] and anonymous.json()["ended_reason"] is None


def test_streaming_response_passes_untouched(harness: Harness) -> None:
    harness.login()
    response = harness.client.get("/stream")
    assert response.text == "chunk0;chunk1;chunk2;"


def test_login_fixation_defence(harness: Harness) -> None:
    first = harness.login()["token"]
    second = harness.login()["token"]
    assert first != second
    assert fresh_client_whoami(harness, first)["ended_reason"] == "signed_out"
    assert fresh_client_whoami(harness, second)["session"]["user_id"] == "ada"


def test_bearer_token_is_accepted(harness: Harness) -> None:
    token = harness.login(platform="mobile")["token"]
    seen = fresh_client_whoami(harness, token)
    assert seen["session"]["platform"] == "mobile"


def test_bearer_can_be_turned_off(make_harness: Any) -> None:
    harness = make_harness(accept_bearer=False)
    token = harness.login()["token"]
    assert fresh_client_whoami(harness, token) == {"session": None, "ended_reason": None}


def test_token_carries_only_the_sid(harness: Harness) -> None:
    # (a user id no random sid can hold by chance: "ada" turned up in one of ~1,500)
    body = harness.login("ada.lovelace@example.org", metadata={"name": "Ada Lovelace", "roles": ["admin"]})
    sid, _, signature = body["token"].rpartition(".")
    assert "lovelace" not in sid.lower() and "@" not in sid and len(sid) == 26
    assert len(base64.urlsafe_b64decode(signature + "==")) == 32  # HMAC-SHA-256
    assert body["session"]["id"] != sid and body["session"]["id"] not in body["token"]


def test_session_id_is_not_a_token(harness: Harness) -> None:
    session_id = harness.login()["session"]["id"]
    assert fresh_client_whoami(harness, session_id)["ended_reason"] == "invalid"


# -- timeouts ------------------------------------------------------------------


def test_idle_timeout_slides_with_activity(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="1h")
    harness.login()
    for _ in range(5):
        harness.clock.advance(50 * 60)
        assert harness.whoami()["session"] is not None
    harness.clock.advance(HOUR)
    assert harness.whoami() == {"session": None, "ended_reason": "idle_timeout"}


def test_idle_timeout_exact_to_the_second(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="10m")
    token = harness.login()["token"]
    harness.clock.advance(599)
    assert fresh_client_whoami(harness, token)["session"] is not None
    harness.clock.advance(599.5)
    assert fresh_client_whoami(harness, token)["session"] is not None
    harness.clock.advance(600)
    assert fresh_client_whoami(harness, token)["ended_reason"] == "idle_timeout"


def test_expires_at_reports_the_earliest_end(make_harness: Any) -> None:
    from datetime import datetime, timedelta

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    harness = make_harness(idle_timeout="1h", absolute_timeout="2h")
    session = harness.login()["session"]
    login = at(session["created_at"])
    assert at(session["expires_at"]) == login + timedelta(hours=1)  # idle first
    harness.clock.advance(50 * 60)
    seen = harness.whoami()["session"]
    assert at(seen["expires_at"]) == login + timedelta(minutes=110)  # idle, slid
    harness.clock.advance(40 * 60)
    seen = harness.whoami()["session"]
    assert at(seen["expires_at"]) == login + timedelta(hours=2)  # now the absolute is sooner


def test_absolute_timeout_beats_activity(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="1h", absolute_timeout="3h")
    harness.login()
    for _ in range(5):
        harness.clock.advance(30 * 60)
        assert harness.whoami()["session"] is not None
    harness.clock.advance(31 * 60)
    assert harness.whoami() == {"session": None, "ended_reason": "absolute_timeout"}


def test_absolute_timeout_beats_remember_me(make_harness: Any) -> None:
    harness = make_harness(absolute_timeout="2d", remember_me_period="14d")
    harness.login(remember_me=True)
    harness.clock.advance(DAY)
    assert harness.whoami()["session"] is not None
    harness.clock.advance(DAY)
    assert harness.whoami()["ended_reason"] == "absolute_timeout"


def test_remember_me_outlives_idle_timeout_with_max_age(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="30m", remember_me_period="14d", absolute_timeout="30d")
    response = harness.client.post("/login", json={"user": "ada", "remember_me": True})
    assert "Max-Age=1209600" in set_cookies(response)[0]
    assert response.json()["session"]["remember_me"] is True
    harness.clock.advance(13 * DAY)
    assert harness.whoami()["session"] is not None
    harness.clock.advance(14 * DAY + 1)
    assert harness.whoami()["ended_reason"] in {"idle_timeout", "absolute_timeout"}


def test_remember_me_max_age_capped_by_absolute(make_harness: Any) -> None:
    harness = make_harness(remember_me_period="14d", absolute_timeout="7d")
    response = harness.client.post("/login", json={"user": "ada", "remember_me": True})
    assert "Max-Age=604800" in set_cookies(response)[0]


def test_remember_me_cookie_is_refreshed_by_daily_activity(make_harness: Any) -> None:
    harness = make_harness(remember_me_period="14d", absolute_timeout="30d")
    harness.login(remember_me=True)
    harness.clock.advance(DAY + 5)
    response = harness.client.get("/whoami")
    cookies = set_cookies(response)
    assert len(cookies) == 1 and "Max-Age=1209600" in cookies[0]
    assert set_cookies(harness.client.get("/whoami")) == []


def test_passive_requests_do_not_extend(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="1h", passive_paths="/poll")
    harness.login()
    harness.clock.advance(40 * 60)
    assert harness.client.get("/poll/status").json()["session"] is not None
    assert harness.whoami(headers={"X-Session-Passive": "1"})["session"] is not None
    harness.clock.advance(21 * 60)
    assert harness.client.get("/poll/status").json()["ended_reason"] == "idle_timeout"


def test_policy_change_applies_to_existing_sessions(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="8h")
    harness.login()
    harness.clock.advance(2 * HOUR)
    store = harness.guard.store
    from dataclasses import replace

    policy = store.policy()
    web = replace(policy.web, idle_timeout=HOUR)
    store.set_policy(replace(policy, platforms={**policy.platforms, "web": web}))
    assert harness.whoami()["ended_reason"] == "idle_timeout"


# -- platforms and limits ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "platform"),
    [
        pytest.param({}, "web", id="no-headers"),
        pytest.param({"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                      "AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"}, "mobile", id="iphone"),
        pytest.param({"User-Agent": "okhttp/4.12.0"}, "mobile", id="okhttp"),
        pytest.param({"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                      "(KHTML, like Gecko) MyApp/1.0 Chrome/120.0 Electron/28.0.0 Safari/537.36"},
                     "desktop", id="electron"),
        pytest.param({"Sec-CH-UA-Mobile": "?1"}, "mobile", id="client-hint"),
        pytest.param({"X-Client-Platform": "desktop", "User-Agent": "okhttp/4"}, "desktop", id="stated"),
        pytest.param({"X-Client-Platform": "toaster"}, "web", id="unknown-stated-ignored"),
    ],
)
def test_platform_is_classified_at_login(harness: Harness, headers: dict[str, str], platform: str) -> None:
    response = harness.client.post("/login", json={"user": "ada"}, headers=headers)
    assert response.json()["session"]["platform"] == platform


def test_explicit_platform_argument_wins(harness: Harness) -> None:
    response = harness.client.post(
        "/login", json={"user": "ada", "platform": "desktop"}, headers={"X-Client-Platform": "mobile"}
    )
    assert response.json()["session"]["platform"] == "desktop"


def test_device_label_and_ip_recorded(harness: Harness) -> None:
    ua = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
    session = harness.client.post("/login", json={"user": "ada"}, headers={"User-Agent": ua}).json()
    assert session["session"]["device"] == "Chrome 131 on macOS"
    assert session["session"]["user_agent"] == ua
    assert session["session"]["ip"]


def login_as(harness: Harness, user: str = "ada", **body: Any) -> str:
    """Log in from a new client; the session's token."""
    return str(harness.login(user, client=harness.new_client(), **body)["token"])


def test_oldest_session_is_evicted(make_harness: Any) -> None:
    harness = make_harness(max_sessions="2")
    tokens = []
    for _ in range(3):
        tokens.append(login_as(harness))
        harness.clock.advance(1)
    assert fresh_client_whoami(harness, tokens[0])["ended_reason"] == "evicted"
    for token in tokens[1:]:
        assert fresh_client_whoami(harness, token)["session"] is not None


def test_least_recent_session_is_evicted(make_harness: Any) -> None:
    harness = make_harness(max_sessions="2", evict="least_recent")
    first, second = login_as(harness), None
    harness.clock.advance(5)
    second = login_as(harness)
    harness.clock.advance(5)
    fresh_client_whoami(harness, first)  # the first login is now the most recently used
    harness.clock.advance(5)
    login_as(harness)
    assert fresh_client_whoami(harness, second)["ended_reason"] == "evicted"
    assert fresh_client_whoami(harness, first)["session"] is not None


def test_reject_mode_refuses_and_changes_nothing(make_harness: Any) -> None:
    harness = make_harness(max_sessions="1", on_limit="reject")
    token = login_as(harness)
    response = harness.new_client().post("/login", json={"user": "ada"})
    assert response.status_code == 409 and response.json() == {"error": "limit", "limit": 1}
    assert set_cookies(response) == []
    assert fresh_client_whoami(harness, token)["session"] is not None
    assert login_as(harness, "grace")  # other users are not affected


def test_a_refused_login_keeps_the_session_the_request_presented(make_harness: Any) -> None:
    # SPEC §4 "nothing changes": not even the session the refused login would have replaced
    harness = make_harness(max_sessions="1", on_limit="reject")
    login_as(harness)  # ada's one web session, elsewhere
    for user, platform in (("grace", "web"), ("ada", "mobile")):
        client = harness.new_client()
        harness.login(user, client=client, platform=platform)
        refused = client.post("/login", json={"user": "ada", "platform": "web"})
        assert refused.status_code == 409 and set_cookies(refused) == []
        assert harness.whoami(client)["session"]["user_id"] == user  # still signed in
    events = harness.guard.store.events(user_id=None, limit=100, cursor=None).items
    assert [e.type for e in events if e.type in ("logout", "rejected")] == ["rejected"] * 2


@pytest.mark.parametrize("on_limit", ["evict_oldest", "reject"])
def test_signing_in_again_at_the_limit_takes_the_own_sessions_place(make_harness: Any, on_limit: str) -> None:
    harness = make_harness(max_sessions="1", on_limit=on_limit)
    first = harness.login()["token"]
    again = harness.login()  # the same client, presenting its session
    assert fresh_client_whoami(harness, first)["ended_reason"] == "signed_out"
    assert harness.whoami()["session"]["id"] == again["session"]["id"]


def test_limits_are_per_platform(make_harness: Any) -> None:
    harness = make_harness(max_sessions="1", mobile_max_sessions="2")
    web = login_as(harness, platform="web")
    mobiles = [login_as(harness, platform="mobile") for _ in range(2)]
    for token in [web, *mobiles]:
        assert fresh_client_whoami(harness, token)["session"] is not None
    login_as(harness, platform="web")
    assert fresh_client_whoami(harness, web)["ended_reason"] == "evicted"
    assert all(fresh_client_whoami(harness, t)["session"] for t in mobiles)


def test_timeouts_are_per_platform(make_harness: Any) -> None:
    harness = make_harness(idle_timeout="1h", mobile_idle_timeout="never", desktop_idle_timeout="8h")
    tokens = {p: login_as(harness, platform=p) for p in ("web", "mobile", "desktop")}
    harness.clock.advance(2 * HOUR)
    assert fresh_client_whoami(harness, tokens["web"])["ended_reason"] == "idle_timeout"
    assert fresh_client_whoami(harness, tokens["desktop"])["session"] is not None
    harness.clock.advance(9 * HOUR)
    assert fresh_client_whoami(harness, tokens["desktop"])["ended_reason"] == "idle_timeout"
    assert fresh_client_whoami(harness, tokens["mobile"])["session"] is not None


# -- every ended reason --------------------------------------------------------


def test_revoked_by_admin(harness: Harness) -> None:
    body = harness.login()
    harness.guard.store.end(body["session"]["id"], "revoked")
    assert harness.whoami() == {"session": None, "ended_reason": "revoked"}


def test_signout_everyone_keeping_one(harness: Harness) -> None:
    ada, grace, kept = login_as(harness, "ada"), login_as(harness, "grace"), harness.login("root")
    harness.guard.store.end_all(keep=kept["session"]["id"])
    harness.clock.advance(1)
    assert fresh_client_whoami(harness, ada)["ended_reason"] == "signout_all"
    assert fresh_client_whoami(harness, grace)["ended_reason"] == "signout_all"
    assert harness.whoami()["session"]["user_id"] == "root"
    assert fresh_client_whoami(harness, login_as(harness, "ada"))["session"] is not None


def test_signout_user(harness: Harness) -> None:
    tokens = [login_as(harness, platform=p) for p in ("web", "mobile")]
    other = login_as(harness, "grace")
    ended = harness.guard.store.end_user("ada", "revoked", platform="mobile")
    assert [r.platform for r in ended] == ["mobile"]
    assert fresh_client_whoami(harness, tokens[1])["ended_reason"] == "revoked"
    assert fresh_client_whoami(harness, tokens[0])["session"] is not None
    assert len(harness.guard.store.end_user("ada", "revoked")) == 1
    assert fresh_client_whoami(harness, other)["session"] is not None


def test_forged_and_unknown_tokens_are_invalid(harness: Harness) -> None:
    forged = Tokens(["f" * 40]).sign(Tokens(["f" * 40]).new_sid("abcd"))
    unknown = Tokens([SECRET]).sign(Tokens([SECRET]).new_sid("abcd"))
    for token in (forged, unknown):
        response = harness.new_client().get("/whoami", headers={"Cookie": f"sg_session={token}"})
        assert response.json() == {"session": None, "ended_reason": "invalid"}
        assert "Max-Age=0" in set_cookies(response)[0]


def test_two_cookies_of_our_name_are_invalid(harness: Harness) -> None:
    token = harness.login()["token"]
    cookie = f"sg_session={token}; other=1; sg_session={token}"
    response = harness.new_client().get("/whoami", headers={"Cookie": cookie})
    assert response.json() == {"session": None, "ended_reason": "invalid"}


def test_key_rotation(make_harness: Any, store_kind: str) -> None:
    old = make_harness(secret_key=OLD_SECRET)
    token = old.login()["token"]
    # each configuration as another deployment would run it: its own Redis store objects
    # (the in-memory store can only be shared)
    share = old.guard if store_kind == "memory" else None
    rotated = make_harness(secret_key=f"{SECRET},{OLD_SECRET}", share_store=share)
    assert fresh_client_whoami(rotated, token)["session"]["user_id"] == "ada"
    new_token = rotated.login("grace")["token"]
    assert fresh_client_whoami(old, new_token)["ended_reason"] == "invalid"
    retired = make_harness(secret_key=SECRET, share_store=share)
    assert fresh_client_whoami(retired, token)["ended_reason"] == "invalid"
    assert fresh_client_whoami(retired, new_token)["session"]["user_id"] == "grace"
    # the session signed in during the rotation is still its user's, once the old key is gone:
    # listed, and ended by a sign-out of the user
    [listed] = retired.guard.store.user_sessions("grace")
    [ended] = retired.guard.store.end_user("grace", "revoked")
    assert listed.id == ended.id
    assert fresh_client_whoami(retired, new_token)["ended_reason"] == "revoked"


def test_a_token_does_not_tell_who_its_user_is(make_harness: Any, store_settings: dict[str, Any],
                                               store_kind: str) -> None:
    # Issue 16 item 6: a token's (and a public id's) first four characters were an unkeyed
    # hash of the user id, which told a user apart from a list of candidates.
    users = [f"user{n}@example.com" for n in range(40)]
    ours = make_harness()
    # another deployment: its own Redis prefix, or its own memory store
    elsewhere = {} if store_kind == "memory" else {"key_prefix": store_settings["key_prefix"] + "b"}
    theirs = make_harness(**elsewhere)

    def tags(harness: Harness) -> list[str]:
        tokens = [harness.login(user)["token"] for user in users]  # each login ends the one before
        assert tokens[-1][:4] == fresh_client_whoami(harness, tokens[-1])["session"]["id"][:4]
        return [t[:4] for t in tokens]

    mine = tags(ours)
    unkeyed = [hashlib.sha256(b"sessionguard.slot\x00" + u.encode()).hexdigest()[:4] for u in users]
    assert sum(a == b for a, b in zip(mine, unkeyed, strict=True)) <= 2  # chance: 40 / 65,536
    assert sum(a == b for a, b in zip(mine, tags(theirs), strict=True)) <= 2
    # one deployment files a user under one tag, in every process and across SECRET_KEY rotation
    share = ours.guard if store_kind == "memory" else None
    rotated = make_harness(secret_key=f"{OLD_SECRET},{SECRET}", share_store=share)
    assert [rotated.login(user)["token"][:4] for user in users[:5]] == mine[:5]


# -- ON_INVALID ----------------------------------------------------------------


def test_on_invalid_401(make_harness: Any) -> None:
    harness = make_harness(on_invalid="401")
    token = harness.login()["token"]
    harness.client.post("/logout")
    response = harness.new_client().get("/whoami", headers={"Cookie": f"sg_session={token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_invalid"
    assert "Max-Age=0" in set_cookies(response)[0]
    assert harness.new_client().get("/whoami").status_code == 200


def test_on_invalid_redirect(make_harness: Any) -> None:
    harness = make_harness(on_invalid="redirect:/signin")
    response = harness.new_client().get(
        "/whoami", headers={"Cookie": "sg_session=garbage"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert "Max-Age=0" in set_cookies(response)[0]


# -- garbage -------------------------------------------------------------------


def garbage_tokens(valid: str) -> list[bytes]:
    rng = random.Random(20261123)
    wrong_key = Tokens(["w" * 40]).sign(Tokens(["w" * 40]).new_sid("abcd"))
    values: list[bytes] = []
    for i in range(len(valid)):
        values.append(valid[:i].encode())  # truncated
    for _ in range(60):
        chars = bytearray(valid.encode())
        where = rng.randrange(len(chars))
        chars[where] = rng.choice([c for c in range(33, 127) if c != chars[where]])
        values.append(bytes(chars))  # one character flipped
    values += [
        wrong_key.encode(), b"", b".", b"..", valid.encode() + b"x", valid.upper().encode(),
        ("\u00e9\u4e2d\U0001f600" + valid).encode(), valid.encode() + b"\x00", b"\x00" * 64,
        b"A" * 10_000, b"." * 5000, valid.replace(".", "..").encode(), b"%00%0d%0a",
        valid.encode() + b"==", b"\xff\xfe\xfd", b"\r\n", b"'; DROP TABLE sessions;--",
    ]
    for _ in range(160):
        values.append(bytes(rng.randrange(0, 256) for _ in range(rng.randrange(1, 120))))
    return values


def raw_get(harness: Harness, name: bytes, value: bytes) -> tuple[int, Any]:
    """GET /whoami with one raw header, past the strictness of HTTP clients
    (httpx's WSGI transport refuses non-ASCII bytes; servers pass them on)."""
    if harness.shell == "asgi":
        response = harness.new_client().get("/whoami", headers=[(name, value)])
        return response.status_code, response.json()
    from werkzeug.test import Client

    key = "HTTP_" + name.decode().upper()
    answer = Client(harness.app, use_cookies=False).get(
        "/whoami", environ_overrides={key: value.decode("latin-1")}, base_url=BASE_URL
    )
    return answer.status_code, answer.get_json()


def test_garbage_tokens_are_anonymous_and_invalid(harness: Harness) -> None:
    valid = harness.login()["token"]
    values = garbage_tokens(valid)
    assert len(values) >= 300
    for value in values:
        if b"\r" in value or b"\n" in value:
            continue  # no HTTP server delivers a raw line break inside a header value
        for name, prefix in ((b"cookie", b"sg_session="), (b"authorization", b"Bearer ")):
            status, body = raw_get(harness, name, prefix + value)
            assert status == 200, value
            assert body["session"] is None, value
            presented = value.strip() if name == b"authorization" else value
            if presented and (name == b"authorization" or b";" not in value):
                assert body["ended_reason"] == "invalid", value
    assert harness.whoami()["session"] is not None  # the real session was never disturbed


# -- websocket -----------------------------------------------------------------


def test_websocket_scope_sees_the_session(make_guard: Any, clock: Any) -> None:
    harness = Harness("asgi", make_guard(), clock)
    token = harness.login()["token"]
    client: Any = harness.client
    with client.websocket_connect("/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["session"]["user_id"] == "ada"
    other: Any = harness.new_client()
    with other.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"session": None, "ended_reason": None}
    harness.close()


def test_from_env_builds_a_working_guard() -> None:
    guard = SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_IDLE_TIMEOUT": "5m"})
    assert guard.config.idle_timeout == 300 and isinstance(guard.config, Config)
