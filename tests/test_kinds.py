"""SPEC 9.1: ``SESSION_TIMEOUT`` (the lifetime of a session without remember-me)
and ``PLATFORMS`` (extra kinds of session), from the configuration to the
stores, the admin API and the command line; on both shells and every store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Harness
from sessionguard import Config, ConfigurationError, SessionGuard
from sessionguard.core import Epoch, Record, judge, timed_out
from sessionguard.policy import PlatformPolicy, Policy, PolicyError
from sessionguard.stores.redis.records import decode_record, platform_code, user_member
from test_admin_api import ADMIN_TOKEN, API, TOKEN, Api, bearer
from test_cli import run
from test_redis_functions import make_stores, new  # noqa: F401 (a fixture)

KEY = "k" * 40
HOUR, DAY = 3600, 86400
MESSENGER = {"platforms": "web,mobile,desktop,messenger",
             "platform_settings": {"messenger": {"idle_timeout": "5m", "max_sessions": 1}}}


def env(**variables: str) -> dict[str, str]:
    return {"SESSIONGUARD_SECRET_KEY": KEY} | {f"SESSIONGUARD_{k.upper()}": v for k, v in variables.items()}


def problems(environ: dict[str, str] | None = None, **settings: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        if environ is not None:
            Config.from_env(environ)
        else:
            Config(secret_key=KEY, **settings)
    return tuple(caught.value.errors)


# -- configuration -----------------------------------------------------------------------


def test_extra_platforms_read_their_own_variables() -> None:
    config = Config.from_env(env(platforms="messenger, web,mobile,desktop,recorder", idle_timeout="30m",
                                 messenger_idle_timeout="5m", messenger_max_sessions="2",
                                 recorder_absolute_timeout="2h", recorder_session_timeout="1h",
                                 web_max_sessions="4"))
    assert config.platforms == ("web", "mobile", "desktop", "messenger", "recorder")
    # (idle, absolute, max, session); unset ones inherit the all-platform values
    assert config.platform_policy("messenger") == (300, 30 * DAY, 2, None)
    assert config.platform_policy("recorder") == (1800, 2 * HOUR, None, HOUR)
    assert config.platform_policy("web") == (1800, 30 * DAY, 4, None)
    policy = Policy.from_config(config)
    assert list(policy.platforms) == ["web", "mobile", "desktop", "messenger", "recorder"]
    assert policy.platform("recorder").session_lifetime == HOUR


def test_extra_platforms_in_code_take_a_mapping() -> None:
    config = Config(secret_key=KEY, platforms=("web", "mobile", "desktop", "messenger"),
                    platform_settings={"messenger": {"idle_timeout": 300, "max_sessions": "3"}})
    assert config.platform_policy("messenger") == (300, 30 * DAY, 3, None)
    assert Config(secret_key=KEY, **MESSENGER).platform_policy("messenger")[:3] == (300, 30 * DAY, 1)


def test_session_timeout_inherits() -> None:
    config = Config.from_env(env(session_timeout="8h", mobile_session_timeout="never",
                                 desktop_absolute_timeout="2h"))
    policy = Policy.from_config(config)
    assert policy.web.session_timeout == 8 * HOUR and policy.web.session_lifetime == 8 * HOUR
    assert policy.mobile.session_timeout is None and policy.mobile.session_lifetime == 30 * DAY
    # never above the absolute timeout: none of its own, the absolute timeout applies
    assert policy.desktop.session_timeout is None and policy.desktop.session_lifetime == 2 * HOUR
    default = Policy.from_config(Config(secret_key=KEY))
    assert default.web.session_lifetime == 30 * DAY  # = ABSOLUTE_TIMEOUT


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({"platforms": "web,mobile,desktop,Chat"},
                     "SESSIONGUARD_PLATFORMS='web,mobile,desktop,Chat' has 'Chat', which is not a platform",
                     id="bad-name"),
        pytest.param({"platforms": "web,mobile,desktop," + "x" * 17}, "which is not a platform name",
                     id="too-long"),
        pytest.param({"platforms": "web,mobile,desktop,chat,chat"}, "names chat twice", id="duplicate"),
        pytest.param({"platforms": "web,chat"}, "lacks mobile, desktop", id="built-in-missing"),
        pytest.param({"platforms": "web,mobile,desktop,chat", "chat_idle_timeout": "5x"},
                     "SESSIONGUARD_CHAT_IDLE_TIMEOUT='5x' is not a duration", id="bad-idle"),
        pytest.param({"platforms": "web,mobile,desktop,chat", "chat_max_sessions": "0"},
                     "SESSIONGUARD_CHAT_MAX_SESSIONS='0' is not a session limit", id="bad-limit"),
        pytest.param({"platforms": "web,mobile,desktop,chat", "chat_session_timeout": "soon"},
                     "SESSIONGUARD_CHAT_SESSION_TIMEOUT='soon' is not a duration", id="bad-session"),
        pytest.param({"session_timeout": "8x"}, "SESSIONGUARD_SESSION_TIMEOUT='8x' is not a duration",
                     id="bad-session-timeout"),
        pytest.param({"web_session_timeout": "-1"}, "SESSIONGUARD_WEB_SESSION_TIMEOUT='-1'", id="bad-web"),
    ],
)
def test_bad_values_name_the_variable(settings: dict[str, str], expected: str) -> None:
    assert any(line.startswith(expected) or expected in line for line in problems(env(**settings)))


def test_every_bad_variable_at_once() -> None:
    errors = problems(env(platforms="web,mobile,desktop,chat", chat_idle_timeout="5x",
                          chat_absolute_timeout="y", idle_timeout="z"))
    assert {e.partition("=")[0] for e in errors} == {
        "SESSIONGUARD_CHAT_IDLE_TIMEOUT", "SESSIONGUARD_CHAT_ABSOLUTE_TIMEOUT", "SESSIONGUARD_IDLE_TIMEOUT"}


def test_bad_platform_settings_in_code() -> None:
    assert "'chat' is not one of the extra platforms" in problems(platform_settings={"chat": {}})[0]
    assert "'web' is built in" in problems(platform_settings={"web": {"idle_timeout": 5}})[0]
    bad_key = problems(platforms="web,mobile,desktop,chat", platform_settings={"chat": {"idle": 5}})
    assert "'idle' is not a setting" in bad_key[0]
    bad_value = problems(platforms="web,mobile,desktop,chat",
                         platform_settings={"chat": {"idle_timeout": "x"}})
    assert bad_value[0].startswith("SESSIONGUARD_CHAT_IDLE_TIMEOUT='x'")


# -- the policy and its JSON -----------------------------------------------------------------


def test_policy_json_round_trip() -> None:
    policy = Policy.from_config(Config(secret_key=KEY, session_timeout="12h", **MESSENGER))
    data = policy.to_json()
    assert data["platforms"]["messenger"] == {
        "idle_timeout": "5m", "absolute_timeout": "30d", "session_timeout": "12h", "max_sessions": 1}
    assert data["platforms"]["web"]["session_timeout"] == "12h"
    assert policy.updated(data) == policy
    changed = policy.updated({"platforms": {"messenger": {"session_timeout": "1h"},
                                            "web": {"session_timeout": None}}})
    assert changed.platform("messenger").session_lifetime == HOUR
    assert changed.web.session_timeout is None
    assert changed.to_json()["platforms"]["web"]["session_timeout"] == "30d"
    # no cap of its own: raising the absolute timeout raises the lifetime too
    raised = changed.updated({"platforms": {"web": {"absolute_timeout": "60d"}}})
    assert raised.to_json()["platforms"]["web"]["session_timeout"] == "60d"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"platforms": {"messenger": {"session_timeout": "5x"}}},
                     "platforms.messenger.session_timeout", id="bad-session-timeout"),
        pytest.param({"platforms": {"tv": {}}}, "platforms.tv", id="unknown-platform"),
        pytest.param({"platforms": {"messenger": {"max_sessions": 0}}}, "platforms.messenger.max_sessions",
                     id="bad-limit"),
    ],
)
def test_policy_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    policy = Policy.from_config(Config(secret_key=KEY, **MESSENGER))
    with pytest.raises(PolicyError) as caught:
        policy.updated(data)
    assert caught.value.field == field


def test_a_stored_policy_naming_an_unknown_platform_applies_the_rest() -> None:
    policy = Policy.from_config(Config(secret_key=KEY))
    stored = policy.updated({"platforms": {"tv": {"idle_timeout": "1m"}, "web": {"idle_timeout": "2m"}}},
                            stored=True)
    assert stored.web.idle_timeout == 120 and "tv" not in stored.platforms


# -- the rules ---------------------------------------------------------------------------------


def _policy(**web: Any) -> Policy:
    web_policy = PlatformPolicy(**{"idle_timeout": HOUR, "absolute_timeout": DAY, "max_sessions": None} | web)
    other = PlatformPolicy(HOUR, DAY, None)
    return Policy({"web": web_policy, "mobile": other, "desktop": other}, 14 * DAY)


@pytest.mark.parametrize(
    ("remember", "seen", "now", "expected"),
    [
        pytest.param(False, 2 * HOUR - 1000, 2 * HOUR * 1000, "absolute_timeout", id="active-ends-at-2h"),
        pytest.param(False, 2 * HOUR - 1000, 2 * HOUR * 1000 - 1, "valid", id="just-before"),
        pytest.param(True, 2 * HOUR - 1000, 2 * HOUR * 1000, "valid", id="remember-me-lives-on"),
        pytest.param(True, DAY - 1000, DAY * 1000, "absolute_timeout", id="remember-me-to-absolute"),
        pytest.param(False, 0, 3 * HOUR * 1000, "idle_timeout", id="idled-out-first"),
    ],
)
def test_session_timeout_rule(remember: bool, seen: int, now: int, expected: str) -> None:
    record = Record("s", "u", "web", 0, seen * 1000, remember)
    assert judge(record, _policy(session_timeout=2 * HOUR), now, Epoch()).value == expected
    assert timed_out(record, _policy(session_timeout=2 * HOUR), now).value == expected


def test_record_codes_keep_the_built_in_letters() -> None:
    assert platform_code("web") == "w" and platform_code("messenger") == "+messenger."
    assert user_member("web", "abcd" + "A" * 22)[:1] == b"w"
    value = b"1|1||+chat_2.|ada|\x1fx\x1f\x1f\x1f{}"
    assert decode_record("id", value).platform == "chat_2"
    assert decode_record("id", b"1|1||m|ada|\x1fx\x1f\x1f\x1f{}").platform == "mobile"


# -- through HTTP, both shells, every store ----------------------------------------------------------


def test_an_extra_platform_by_header_and_by_argument(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, **MESSENGER))
    chat = api.anon.post("/login", json={"user": "ada"}, headers={"X-Client-Platform": " Messenger "})
    assert chat.status_code == 200 and chat.json()["session"]["platform"] == "messenger"
    first = chat.json()["token"]
    api.anon.cookies.clear()
    web = api.login("ada")
    assert web["session"]["platform"] == "web"
    second = api.login("ada", platform="messenger")  # login(platform=...): over the limit of 1
    assert second["session"]["platform"] == "messenger"
    assert api.ended_reason(first) == "evicted"
    assert api.ended_reason(web["token"]) is None  # another kind's sessions are not counted
    # an unknown header value is ignored (the client is classified)
    other = api.anon.post("/login", json={"user": "bob"}, headers={"X-Client-Platform": "tv"})
    assert other.json()["session"]["platform"] == "web"
    api.anon.cookies.clear()
    # its own idle timeout: 5 minutes, not web's hour
    api.h.clock.advance(6 * 60)
    assert api.ended_reason(second["token"]) == "idle_timeout"
    assert api.ended_reason(web["token"]) is None


def test_listing_filter_and_signout_by_extra_platform(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, platforms="web,mobile,desktop,messenger,recorder"))
    chat = api.login("ada", platform="messenger")
    rec = api.login("ada", platform="recorder")
    web = api.login("ada")
    listed = api.anon.get(f"{API}/sessions", params={"platform": "messenger"}, headers=TOKEN)
    assert [s["id"] for s in listed.json()["sessions"]] == [chat["session"]["id"]]
    mine = api.anon.get(f"{API}/sessions", params={"platform": "recorder", "user_id": "ada"}, headers=TOKEN)
    assert [s["id"] for s in mine.json()["sessions"]] == [rec["session"]["id"]]
    bad = api.anon.get(f"{API}/sessions", params={"platform": "tv"}, headers=TOKEN)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "platform"
    assert "messenger" in bad.json()["error"]["message"]
    ended = api.anon.post(f"{API}/users/ada/signout", json={"platform": "recorder"}, headers=TOKEN)
    assert ended.json() == {"ended": 1}
    assert api.ended_reason(rec["token"]) == "revoked"
    assert api.ended_reason(chat["token"]) is None and api.ended_reason(web["token"]) is None
    assert [s.platform for s in api.h.guard.sessions(platform="messenger")] == ["messenger"]
    with pytest.raises(ValueError, match="recorder"):
        api.h.guard.sessions(platform="tv")


def test_policy_api_covers_extra_platforms_and_session_timeout(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, **MESSENGER))
    got = api.anon.get(f"{API}/policy", headers=TOKEN).json()
    assert got["platforms"]["messenger"]["idle_timeout"] == "5m"
    assert got["platforms"]["web"]["session_timeout"] == "30d"
    put = api.anon.put(f"{API}/policy", headers=TOKEN,
                       json={"platforms": {"messenger": {"session_timeout": "2h", "max_sessions": 3}}})
    assert put.status_code == 200, put.text
    assert put.json()["platforms"]["messenger"] == {
        "idle_timeout": "5m", "absolute_timeout": "30d", "session_timeout": "2h", "max_sessions": 3}
    assert api.anon.get(f"{API}/policy", headers=TOKEN).json() == put.json()
    for body, field in (({"platforms": {"messenger": {"session_timeout": "2x"}}},
                         "platforms.messenger.session_timeout"),
                        ({"platforms": {"tv": {"idle_timeout": "1h"}}}, "platforms.tv")):
        refused = api.anon.put(f"{API}/policy", headers=TOKEN, json=body)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == field
    assert api.anon.get(f"{API}/policy", headers=TOKEN).json() == put.json()  # nothing changed
    document = api.anon.get("/_sessionguard/openapi.json").json()["components"]["schemas"]
    assert document["Session"]["properties"]["platform"]["enum"] == ["web", "mobile", "desktop", "messenger"]
    assert "session_timeout" in document["PlatformPolicy"]["properties"]


def test_session_timeout_ends_an_active_session_without_remember_me(
    make_harness: Callable[..., Harness],
) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, idle_timeout="1h", absolute_timeout="1d",
                           session_timeout="2h"))
    plain = api.login("ada")
    remembered = api.h.client.post("/login", json={"user": "ada", "remember_me": True})
    assert "Max-Age=86400" in remembered.headers["set-cookie"]  # remember-me: the absolute timeout's
    kept = remembered.json()
    for _ in range(4):  # active every 30 minutes: the idle timeout never comes
        api.h.clock.advance(30 * 60 - 1)
        assert api.ended_reason(plain["token"]) is None
        assert api.ended_reason(kept["token"]) is None
    seen = api.h.whoami(client=api.anon, headers=bearer(plain["token"]))["session"]
    assert _ms(seen["expires_at"]) - _ms(seen["created_at"]) == 2 * HOUR * 1000  # before the idle end
    api.h.clock.advance(4)
    assert api.ended_reason(plain["token"]) == "absolute_timeout"
    assert api.ended_reason(kept["token"]) is None
    for _ in range(43):  # the remember-me one lives on, to the absolute timeout
        api.h.clock.advance(30 * 60)
        assert api.ended_reason(kept["token"]) is None
    api.h.clock.advance(30 * 60)
    assert api.ended_reason(kept["token"]) == "absolute_timeout"


def test_expires_at_reflects_the_session_timeout(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(idle_timeout="never", absolute_timeout="1d", session_timeout="2h")
    plain = harness.login("ada")["session"]
    remembered = harness.login("bob", client=harness.new_client(), remember_me=True)["session"]
    hours = lambda s: (_ms(s["expires_at"]) - _ms(s["created_at"])) / 3_600_000  # noqa: E731
    assert hours(plain) == 2
    assert hours(remembered) == 24  # remember-me: the absolute timeout, not the session timeout


def _ms(moment: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() * 1000)


def test_user_timeouts_cover_extra_platforms(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(allow_user_timeouts=True, idle_timeout="1h", **MESSENGER))
    token = api.login("ada", platform="messenger")["token"]
    url = f"{API}/me/settings"
    assert api.anon.get(url, headers=bearer(token)).json()["idle_timeout"] == {
        "web": None, "mobile": None, "desktop": None, "messenger": None}
    changed = api.anon.put(url, json={"idle_timeout": {"messenger": "4h"}}, headers=bearer(token))
    assert changed.status_code == 200, changed.text
    assert changed.json()["idle_timeout"]["messenger"] == "4h"
    api.h.clock.advance(30 * 60)  # past messenger's 5 minutes, within the user's 4 hours
    assert api.ended_reason(token) is None
    refused = api.anon.put(url, json={"idle_timeout": {"tv": "4h"}}, headers=bearer(token))
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "idle_timeout.tv"


def test_a_kind_taken_out_of_platforms_follows_web(make_guard: Callable[..., SessionGuard], shell: str,
                                                   store_kind: str, clock: Any) -> None:
    if store_kind == "memory":  # one store object, one configuration: see test_unconfigured_kind_is_webs
        pytest.skip("a memory store is configured once")
    with_chat = Harness(shell, make_guard(idle_timeout="1h", **MESSENGER), clock)
    token = with_chat.login("ada", platform="messenger")["token"]
    without = Harness(shell, make_guard(idle_timeout="1h", admin_token=ADMIN_TOKEN), clock)
    clock.advance(10 * 60)  # past messenger's 5 minutes: web's hour applies
    assert without.whoami(headers=bearer(token))["session"]["platform"] == "messenger"
    listed = without.client.get(f"{API}/sessions", headers=TOKEN)
    assert listed.status_code == 200 and listed.json()["sessions"][0]["platform"] == "messenger"
    clock.advance(61 * 60)
    ended = without.whoami(client=without.new_client(), headers=bearer(token))
    assert ended["ended_reason"] == "idle_timeout"
    with_chat.close()
    without.close()


def test_unconfigured_kind_is_webs() -> None:
    policy = Policy.from_config(Config(secret_key=KEY, idle_timeout="1h", web_idle_timeout="2h"))
    assert policy.platform("gone").idle_timeout == 2 * HOUR
    record = Record("s", "u", "gone", 0, 0)
    assert timed_out(record, policy, 2 * HOUR * 1000 - 1).value == "valid"
    assert timed_out(record, policy, 2 * HOUR * 1000).value == "idle_timeout"


# -- Redis Cluster -----------------------------------------------------------------------------


@pytest.mark.redis
def test_extra_platforms_on_a_cluster(redis_cluster: Any, make_stores: Any) -> None:  # noqa: F811
    prefix = "sgt-kinds"
    sync, _ = make_stores(redis_cluster.url, prefix, **MESSENGER)
    first = sync.create(new(sync, "ada", "messenger")).record
    web = sync.create(new(sync, "ada", "web")).record
    second = sync.create(new(sync, "ada", "messenger"))
    assert [r.id for r in second.evicted] == [first.id]  # messenger's limit of 1
    assert {r.platform for r in sync.user_sessions("ada")} == {"web", "messenger"}
    page = sync.list_sessions(user_id="ada", platform="messenger", limit=10, cursor=None)
    assert [r.id for r in page.items] == [second.record.id]
    ended = sync.end_user("ada", "revoked", platform="messenger")
    assert [r.id for r in ended] == [second.record.id]
    assert [r.id for r in sync.user_sessions("ada")] == [web.id]
    cluster = redis_cluster.client()
    for key in cluster.scan_iter(match=f"{prefix}*"):
        cluster.delete(key)
    cluster.close()


# -- the command line ------------------------------------------------------------------------


def test_cli_platform_option_takes_the_configured_kinds() -> None:
    memory = {"SESSIONGUARD_SECRET_KEY": KEY, "SESSIONGUARD_STORE_URL": "memory://",
              "SESSIONGUARD_PLATFORMS": "web,mobile,desktop,messenger"}
    refused = run(memory, "sessions", "--platform", "tv")
    assert refused.returncode == 2
    assert "--platform must be one of web, mobile, desktop, messenger" in refused.stderr
    check = run({**memory, "SESSIONGUARD_MESSENGER_IDLE_TIMEOUT": "5m"}, "check", "--json")
    assert json.loads(check.stdout)["policy"]["platforms"]["messenger"]["idle_timeout"] == "5m"


def test_a_login_at_the_limit_ends_an_idled_out_session_with_the_earlier_reason(
    make_harness: Callable[..., Harness],
) -> None:
    """The store's own judging (Redis: the create function, which prunes the sessions it
    counts) reports the deadline that came first, as a request's check does."""
    api = Api(make_harness(idle_timeout="5m", absolute_timeout="1h", max_sessions=1))
    old = api.login("ada")
    api.h.clock.advance(2 * HOUR)  # idled out at 5 minutes, past the absolute timeout since
    new_one = api.login("ada")  # at the limit: the store judges (and ends) the old session
    assert api.ended_reason(new_one["token"]) is None
    assert api.ended_reason(old["token"]) == "idle_timeout"


def test_a_login_again_on_an_extra_platform_replaces_its_own_session_at_the_limit(
    make_harness: Callable[..., Harness],
) -> None:
    """The session a login presents takes no place under the limit (SPEC §2), on an extra
    kind too (Redis: create.lua counts by the platform's code)."""
    harness = make_harness(on_limit="reject", **MESSENGER)
    first = harness.login("ada", platform="messenger")  # the client keeps its cookie
    again = harness.login("ada", platform="messenger")
    assert again["session"]["platform"] == "messenger"
    assert harness.whoami(client=harness.new_client(), headers=bearer(first["token"]))["ended_reason"]
    assert harness.whoami()["session"]["id"] == again["session"]["id"]
    other = harness.new_client().post("/login", json={"user": "ada", "platform": "messenger"})
    assert (other.status_code, other.json()) == (409, {"error": "limit", "limit": 1})  # another client
    assert harness.whoami()["session"]["id"] == again["session"]["id"]
