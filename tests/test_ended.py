"""Recently ended sessions listed (SPEC 9.2) and one audit event per ending,
timeouts of sessions never presented again included (SPEC 9.3): through the
admin API, the self-service API, the guard's API and the command line, on both
shells and both stores; the sweep racing across processes on one Redis prefix,
and on a Cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from conftest import SECRET, FakeClock, Harness
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard
from sessionguard.cli import main
from test_admin_api import ADMIN_TOKEN, API, TOKEN, Api, assert_error, bearer
from test_redis_functions import make_stores, new  # noqa: F401 (a fixture)
from test_redis_store import wait_until

MINUTE, HOUR, DAY = 60, 3600, 86400
CONFIRM = {"confirm": "SIGN OUT ALL"}


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def listing(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.anon.get(f"{API}/sessions", params=params, headers=TOKEN)
    assert response.status_code == 200, response.text
    return list(response.json()["sessions"])


@pytest.fixture
def api(make_harness: Callable[..., Harness]) -> Api:
    return Api(make_harness(admin_token=ADMIN_TOKEN, idle_timeout="1h", web_max_sessions=1,
                            mobile_idle_timeout="never", mobile_absolute_timeout="30m"))


def test_every_reason_is_listed_as_ended_and_recorded_once(api: Api) -> None:
    # signed out by the user
    lou = api.h.login("lou")
    assert api.h.client.post("/logout").status_code == 200
    # revoked by an admin
    rev = api.login("rev")
    assert api.anon.delete(f"{API}/sessions/{rev['session']['id']}", headers=TOKEN).status_code == 204
    # evicted by a second web login (WEB_MAX_SESSIONS=1)
    eve = api.login("eve")
    eve_again = api.login("eve")
    # idle timeout (web, 1 h) and absolute timeout (mobile, 30 min), never presented again
    ida = api.login("ida")
    abe = api.login("abe", platform="mobile")
    api.h.clock.advance(HOUR + MINUTE)
    assert api.h.guard.sweep() == 3  # ida, abe, and eve's second session (idle too)
    assert api.h.guard.sweep() == 0  # never twice
    # signed out with everyone
    sam = api.login("sam")
    assert api.anon.post(f"{API}/signout-all", json=CONFIRM, headers=TOKEN).status_code == 200

    ended = {s["id"]: s for s in listing(api, status="ended")}
    assert {i: s["ended_reason"] for i, s in ended.items()} == {
        lou["session"]["id"]: "signed_out", rev["session"]["id"]: "revoked", eve["session"]["id"]: "evicted",
        eve_again["session"]["id"]: "idle_timeout", ida["session"]["id"]: "idle_timeout",
        abe["session"]["id"]: "absolute_timeout", sam["session"]["id"]: "signout_all",
    }
    ended = {s["user_id"]: s for s in ended.values() if s["user_id"] != "eve"}
    assert all(s["status"] == "ended" and s["ended_at"] for s in ended.values())
    # a timeout ended at its deadline, not when it was noticed
    assert ms(ended["ida"]["ended_at"]) == ms(ida["session"]["created_at"]) + HOUR * 1000
    assert ms(ended["abe"]["ended_at"]) == ms(abe["session"]["created_at"]) + 30 * MINUTE * 1000
    assert ended["ida"]["ip"] and ended["ida"]["device"] == ida["session"]["device"]
    assert listing(api) == []  # everyone was signed out: nothing active
    everything = listing(api, status="all")
    assert {s["status"] for s in everything} == {"ended"}
    assert len(everything) == len(listing(api, status="ended"))
    # one event per ending, dated at the deadline, with where the session was signed in from
    events = api.events()
    idle = [e for e in events if e["type"] == "idle_timeout"]
    absolute = [e for e in events if e["type"] == "absolute_timeout"]
    assert sorted(e["session_id"] for e in idle) == sorted([ida["session"]["id"], eve_again["session"]["id"]])
    idle = [e for e in idle if e["session_id"] == ida["session"]["id"]]
    assert [e["session_id"] for e in absolute] == [abe["session"]["id"]]
    assert ms(idle[0]["at"]) == ms(ida["session"]["created_at"]) + HOUR * 1000
    assert idle[0]["actor"] == "system" and idle[0]["ip"] == ida["session"]["ip"]
    assert idle[0]["device"] == ida["session"]["device"]
    # the token presented afterwards learns why, and adds no event
    assert api.ended_reason(ida["token"]) == "idle_timeout"
    assert api.ended_reason(sam["token"]) == "signout_all"
    assert len([e for e in api.events() if e["type"] == "idle_timeout"]) == 2
    # listed for a day after the end, then no more
    api.h.clock.advance(DAY)
    assert listing(api, status="ended") == []


def test_a_timeout_noticed_by_a_request_first_is_not_recorded_again(api: Api) -> None:
    ida = api.login("ida")
    api.h.clock.advance(HOUR + 1)
    assert api.ended_reason(ida["token"]) == "idle_timeout"
    assert api.h.guard.sweep() == 0
    ended = listing(api, status="ended")
    assert [(s["id"], s["ended_reason"]) for s in ended] == [(ida["session"]["id"], "idle_timeout")]
    assert ms(ended[0]["ended_at"]) == ms(ida["session"]["created_at"]) + HOUR * 1000
    assert len([e for e in api.events() if e["type"] == "idle_timeout"]) == 1


def test_a_shortened_timeout_still_gets_its_events(api: Api) -> None:
    ida = api.login("ida")
    policy = {"platforms": {"web": {"idle_timeout": "10m"}}}
    assert api.h.guard.sweep() == 0  # the sweep knows the policy the deadlines were placed by
    assert api.anon.put(f"{API}/policy", json=policy, headers=TOKEN).status_code == 200
    api.h.clock.advance(11 * MINUTE)
    assert api.h.guard.sweep() == 1
    event = [e for e in api.events() if e["type"] == "idle_timeout"][0]
    assert event["session_id"] == ida["session"]["id"]
    assert ms(event["at"]) == ms(ida["session"]["created_at"]) + 10 * MINUTE * 1000


def test_cursor_paging_over_ended_sessions(api: Api) -> None:
    logins = []
    for i in range(7):
        logins.append(api.login(f"user{i}"))
        api.h.clock.advance(1)
    for login in logins:
        api.anon.post(f"{API}/users/{login['session']['user_id']}/signout", json={}, headers=TOKEN)
    active = api.login("still")
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"status": "ended", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = api.anon.get(f"{API}/sessions", params=params, headers=TOKEN).json()
        seen += body["sessions"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages >= 3
    # newest login first
    assert [s["id"] for s in seen] == [login["session"]["id"] for login in reversed(logins)]
    assert {s["ended_reason"] for s in seen} == {"revoked"}
    every = listing(api, status="all", limit=500)
    assert [s["id"] for s in every][0] == active["session"]["id"] and len(every) == 8
    assert [s["status"] for s in every] == ["active"] + ["ended"] * 7


@pytest.mark.parametrize("path", ["/sessions", "/me/sessions"])
def test_an_unknown_status_is_refused(api: Api, path: str) -> None:
    api.browser_login("root")
    response = api.client.get(f"{API}{path}", params={"status": "gone"})
    error = assert_error(response, 422)
    assert error["field"] == "status" and "status" in error["message"]
    with pytest.raises(ValueError, match="status"):
        api.h.guard.sessions(status="gone")


def test_me_lists_my_recently_ended_sessions(api: Api) -> None:
    me = api.h.login("ada", metadata={"roles": []}, platform="desktop")["session"]
    first = api.login("ada", roles=[])
    api.login("ada", roles=[])  # evicts the first web session (WEB_MAX_SESSIONS=1)
    phone = api.login("ada", roles=[], platform="mobile")
    response = api.client.delete(f"{API}/me/sessions/{phone['session']['id']}", headers=api.csrf())
    assert response.status_code == 204
    ended = api.client.get(f"{API}/me/sessions", params={"status": "ended"}).json()["sessions"]
    assert {s["id"]: s["ended_reason"] for s in ended} == {
        first["session"]["id"]: "evicted", phone["session"]["id"]: "signed_out"}
    assert all(s["status"] == "ended" and s["current"] is False and s["ended_at"] for s in ended)
    active = api.client.get(f"{API}/me/sessions").json()["sessions"]
    assert len(active) == 2 and me["id"] in {s["id"] for s in active}
    assert "status" not in api.h.whoami()["session"]  # only listings say status
    every = api.client.get(f"{API}/me/sessions", params={"status": "all"}).json()["sessions"]
    assert {s["id"] for s in every} == {s["id"] for s in active} | {s["id"] for s in ended}
    assert [s["id"] for s in every if s["current"]] == [me["id"]]
    assert [s["created_at"] for s in every] == sorted((s["created_at"] for s in every), reverse=True)


def test_the_guard_lists_ended_sessions(api: Api) -> None:
    ada = api.login("ada")
    assert api.h.guard.end_session(ada["session"]["id"])
    [session] = api.h.guard.sessions(status="ended")
    assert (session.id, session.status, session.ended_reason) == (ada["session"]["id"], "ended", "revoked")
    assert session.ended_at is not None
    assert api.h.guard.sessions(user_id="ada", status="ended") == [session]
    assert api.h.guard.sessions(user_id="ada") == []
    assert [s.status for s in api.h.guard.sessions(status="all")] == ["ended"]


# -- across processes: the sweep on one Redis prefix -----------------------------------------------


def _real_guard(redis_server: RedisServer, key_prefix: str, **settings: Any) -> SessionGuard:
    config = Config(secret_key=SECRET, store_url=redis_server.url, key_prefix=key_prefix,
                    admin_token=ADMIN_TOKEN, cookie_secure=False, **settings)
    return SessionGuard(config)


def test_two_processes_record_a_timeout_once_with_its_deadline(redis_server: RedisServer,
                                                               key_prefix: str) -> None:
    first = _real_guard(redis_server, key_prefix, idle_timeout="2")
    second = _real_guard(redis_server, key_prefix, idle_timeout="2")
    one, two = Harness("wsgi", first, FakeClock()), Harness("asgi", second, FakeClock())
    try:
        api = Api(one)
        logins = [api.login(f"user{i}") for i in range(8)]
        two.whoami()  # the second process is running too (its tick sweeps)
        deadlines = {s["session"]["id"]: ms(s["session"]["created_at"]) + 2000 for s in logins}
        time.sleep(2.1)
        # the sweeps of both processes, an on-demand sweep of each, and requests presenting
        # the tokens, all at once
        racers = [threading.Thread(target=g.sweep) for g in (first, second)]
        racers += [threading.Thread(target=Api(two).ended_reason, args=(s["token"],)) for s in logins[:4]]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()

        def recorded() -> list[dict[str, Any]]:
            return [e for e in api.events() if e["type"] == "idle_timeout"]

        wait_until(lambda: len(recorded()) >= len(logins))
        time.sleep(0.5)  # (a second event would come now)
        events = recorded()
        assert sorted(e["session_id"] for e in events) == sorted(deadlines)
        assert all(ms(e["at"]) == deadlines[e["session_id"]] for e in events)
        assert first.sweep() == 0 and second.sweep() == 0
        assert {s["ended_reason"] for s in listing(api, status="ended")} == {"idle_timeout"}
    finally:
        one.close()
        two.close()
        first.store.close()
        second.store.close()


def test_each_process_sweeps_by_itself(redis_server: RedisServer, key_prefix: str) -> None:
    guard = _real_guard(redis_server, key_prefix, idle_timeout="1")
    harness = Harness("asgi", guard, FakeClock())
    try:
        api = Api(harness)
        ada = api.login("ada")
        # nobody presents it again, and nobody asks for a sweep: the tick records it
        wait_until(lambda: any(e["type"] == "idle_timeout" for e in api.events()), timeout=10)
        [event] = [e for e in api.events() if e["type"] == "idle_timeout"]
        assert event["session_id"] == ada["session"]["id"]
    finally:
        harness.close()
        guard.store.close()


def test_the_memory_store_sweeps_by_itself(make_harness: Callable[..., Harness]) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, admin_token=ADMIN_TOKEN, idle_timeout="1"))
    harness = Harness("wsgi", guard, FakeClock())
    try:
        api = Api(harness)
        ada = api.login("ada")
        wait_until(lambda: any(e["type"] == "idle_timeout" for e in api.events()), timeout=10)
        recorded = [e["session_id"] for e in api.events() if e["type"] == "idle_timeout"]
        assert recorded == [ada["session"]["id"]]
    finally:
        harness.close()
        guard.store.close()


def test_the_sweep_command(redis_server: RedisServer, key_prefix: str, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    # sessions of an app whose process is gone (its clock put ten seconds back, so they idled out)
    past = FakeClock(time.time() - 10)
    app = SessionGuard(Config(secret_key=SECRET, store_url=redis_server.url, key_prefix=key_prefix,
                              idle_timeout="5", admin_token=ADMIN_TOKEN), clock=past)
    harness = Harness("wsgi", app, past)
    try:
        api = Api(harness)
        for user in ("ada", "bob", "cy"):
            api.login(user)
        for name, value in {"SECRET_KEY": SECRET, "STORE_URL": redis_server.url, "KEY_PREFIX": key_prefix,
                            "IDLE_TIMEOUT": "5"}.items():
            monkeypatch.setenv(f"SESSIONGUARD_{name}", value)
        assert main(["sweep"]) == 0
        assert capsys.readouterr().out.strip() == "recorded 3 endings"
        assert main(["sweep"]) == 0
        assert capsys.readouterr().out.strip() == "recorded 0 endings"
        assert main(["sessions", "--status", "ended"]) == 0
        out = capsys.readouterr().out
        assert "Signed out after inactivity (idle_timeout)" in out and "ended" in out and "ada" in out
        assert main(["sessions"]) == 0
        assert capsys.readouterr().out.strip() == "no active sessions"
    finally:
        harness.close()
        app.store.close()


# -- a Redis Cluster ---------------------------------------------------------------------------------


def test_ended_sessions_and_the_sweep_on_a_cluster(redis_cluster: Any, make_stores: Any) -> None:  # noqa: F811
    prefix = "sgt-ended"
    now = [1_800_000_000_000]
    sync, _ = make_stores(redis_cluster.url, prefix, clock=lambda: now[0], idle_timeout="1h")
    records = [sync.create(new(sync, f"user{i}")).record for i in range(6)]
    sync.end(records[0].id, "revoked")
    now[0] += HOUR * 1000 + 1
    assert sync.sweep() == 5
    assert sync.sweep() == 0
    ended = sync.list_sessions(user_id=None, platform=None, limit=50, cursor=None, status="ended").items
    assert {e.record.id: e.reason for e in ended} == {
        r.id: "revoked" if r is records[0] else "idle_timeout" for r in records}
    assert all(e.at == r.created + HOUR * 1000 for e in ended for r in records[1:] if e.record.id == r.id)
    mine = sync.list_sessions(user_id="user3", platform=None, limit=50, cursor=None, status="all").items
    assert [(e.record.id, e.reason) for e in mine] == [(records[3].id, "idle_timeout")]
    events = sync.events(user_id=None, limit=50, cursor=None).items
    recorded = sorted(e.session_id for e in events if e.type == "idle_timeout")
    assert recorded == sorted(r.id for r in records[1:])
    cluster = redis_cluster.client()
    for key in cluster.scan_iter(match=f"{prefix}*"):
        cluster.delete(key)
    cluster.close()


def test_the_token_path_reads_a_tombstone_with_its_record(api: Api) -> None:
    # a tombstone now carries the record: a request presenting its token still gets the reason
    ada = api.login("ada")
    api.anon.delete(f"{API}/sessions/{ada['session']['id']}", headers=TOKEN)
    assert api.h.whoami(client=api.anon, headers=bearer(ada["token"]))["ended_reason"] == "revoked"


def test_swept_endings_reach_the_logger_and_on_event(store_settings: dict[str, Any], clock: FakeClock,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    guard = SessionGuard(Config(secret_key=SECRET, idle_timeout="1h", **store_settings), clock=clock,
                         on_event=seen.append)
    harness = Harness("wsgi", guard, clock)
    try:
        ada = harness.login("ada")
        clock.advance(HOUR)
        with caplog.at_level("INFO", logger="sessionguard.audit"):
            assert guard.sweep() == 1
        swept = [(e.type, e.session_id) for e in seen if e.type != "login"]
        assert swept == [("idle_timeout", ada["session"]["id"])]
        assert any('"idle_timeout"' in r.getMessage() for r in caplog.records)
    finally:
        harness.close()
        guard.store.close()


def test_a_user_s_own_shorter_timeout_is_swept_by_it(make_harness: Callable[..., Harness]) -> None:
    api = Api(make_harness(admin_token=ADMIN_TOKEN, idle_timeout="1h", allow_user_timeouts=True))
    ada = api.browser_login("ada", roles=[])
    response = api.client.put(f"{API}/me/settings", json={"idle_timeout": {"web": "10m"}}, headers=api.csrf())
    assert response.status_code == 200, response.text
    api.h.clock.advance(11 * MINUTE)
    assert api.h.guard.sweep() == 1
    [event] = [e for e in api.events() if e["type"] == "idle_timeout"]
    assert event["session_id"] == ada["session"]["id"]
