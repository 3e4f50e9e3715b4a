"""Hijack signals (SPEC 9.7, ``ON_ANOMALY``): a session whose client suddenly
changes (browser family or system; or network together with the User-Agent)
gives one ``anomaly`` audit event, ``ctx.anomaly`` under ``flag``, and the
session's end under ``revoke``. Every test runs on both shells and both stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import BASE_URL, Harness
from sessionguard.anomaly import Anomaly, Watch, network
from sessionguard.core import Record

ADMIN_TOKEN = "a" * 40
CHROME_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
              " Chrome/131.0.0.0 Safari/537.36")
CHROME_MAC_NEWER = CHROME_MAC.replace("Chrome/131", "Chrome/132")
CHROME_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
                  " Chrome/131.0.0.0 Safari/537.36")
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
HOME = "203.0.113.7"


def peer_client(harness: Harness) -> httpx.Client:
    """A client whose peer is 127.0.0.1 (a trusted proxy in these tests), so that
    each request states its address in ``X-Forwarded-For``."""
    if harness.shell == "asgi":
        client: httpx.Client = TestClient(harness.app, base_url=BASE_URL, client=("127.0.0.1", 50000))
    else:
        client = httpx.Client(transport=httpx.WSGITransport(app=harness.app, remote_addr="127.0.0.1"),
                              base_url=BASE_URL)
    return client


@pytest.fixture
def make(make_harness: Callable[..., Harness]) -> Callable[..., tuple[Harness, httpx.Client]]:
    def build(**settings: Any) -> tuple[Harness, httpx.Client]:
        harness = make_harness(trusted_proxies="127.0.0.1", admin_token=ADMIN_TOKEN, **settings)
        client = peer_client(harness)
        response = client.post("/login", json={"user": "ada"},
                               headers={"User-Agent": CHROME_MAC, "X-Forwarded-For": HOME})
        assert response.status_code == 200, response.text
        return harness, client

    return build


def request(client: httpx.Client, user_agent: str, ip: str = HOME, *, bearer: str | None = None) -> Any:
    headers = {"User-Agent": user_agent, "X-Forwarded-For": ip}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    response = client.get("/anomaly", headers=headers)
    assert response.status_code == 200, response.text
    return response


def anomalies(harness: Harness, kind: str = "anomaly") -> list[dict[str, Any]]:
    """The audit log's events of ``kind``, newest first (read by a client without a session)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = harness.new_client().get("/_sessionguard/api/audit", headers=admin)
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["type"] == kind]


@pytest.mark.parametrize(("user_agent", "ip"), [
    pytest.param(CHROME_MAC, "198.51.100.9", id="same-agent-other-network"),
    pytest.param(CHROME_MAC_NEWER, "203.0.200.1", id="browser-update-same-16"),
    pytest.param(CHROME_MAC_NEWER, HOME, id="browser-update-same-address"),
])
def test_no_anomaly(make: Any, user_agent: str, ip: str) -> None:
    harness, client = make(on_anomaly="flag")
    body = request(client, user_agent, ip).json()
    assert body == {"user": "ada", "ended_reason": None, "anomaly": None}
    assert anomalies(harness) == []


@pytest.mark.parametrize(("user_agent", "ip", "reason", "change"), [
    pytest.param(FIREFOX_MAC, HOME, "client_changed", "Firefox on macOS", id="other-browser"),
    pytest.param(CHROME_WINDOWS, HOME, "client_changed", "Chrome on Windows", id="other-system"),
    pytest.param("", HOME, "client_changed", "unknown on unknown", id="agent-dropped"),
    pytest.param(CHROME_MAC_NEWER, "198.51.100.9", "network_changed", "198.51.0.0/16",
                 id="update-and-other-network"),
])
def test_log_records_one_event_and_keeps_the_session(
    make: Any, user_agent: str, ip: str, reason: str, change: str
) -> None:
    harness, client = make()  # ON_ANOMALY=log, the default
    for _ in range(3):
        body = request(client, user_agent, ip).json()
        assert body == {"user": "ada", "ended_reason": None, "anomaly": None}  # log does not flag
    [event] = anomalies(harness)
    assert (event["reason"], event["actor"], event["user_id"], event["platform"]) == (
        reason, "system", "ada", "web")
    detail = json.loads(event["detail"])
    assert detail["change"] == change
    assert (detail["ip"], detail["login_ip"]) == (ip, HOME)
    assert detail["login_device"] == "Chrome 131 on macOS"
    assert request(client, CHROME_MAC).json()["user"] == "ada"  # back on the login's client: nothing


def test_each_distinct_change_is_recorded_once(make: Any) -> None:
    harness, client = make()
    for agent, ip in [(FIREFOX_MAC, HOME), (FIREFOX_MAC, "198.51.100.9"), (CHROME_WINDOWS, HOME),
                      (FIREFOX_MAC, HOME), (CHROME_MAC_NEWER, "198.51.100.9"),
                      (CHROME_MAC_NEWER, "198.51.7.7"), (CHROME_MAC_NEWER, "192.0.2.1")]:
        request(client, agent, ip)
    changes = [(e["reason"], json.loads(e["detail"])["change"]) for e in reversed(anomalies(harness))]
    assert changes == [
        ("client_changed", "Firefox on macOS"), ("client_changed", "Chrome on Windows"),
        ("network_changed", "198.51.0.0/16"), ("network_changed", "192.0.0.0/16"),
    ]


def test_ipv6_networks_are_48s(make: Any) -> None:
    harness, client = make()
    client.post("/login", json={"user": "ada"},
                headers={"User-Agent": CHROME_MAC, "X-Forwarded-For": "2001:db8:1:2::5"})
    request(client, CHROME_MAC_NEWER, "2001:db8:1:ffff::9")  # same /48
    assert anomalies(harness) == []
    request(client, CHROME_MAC_NEWER, "2001:db8:2::9")
    [event] = anomalies(harness)
    assert json.loads(event["detail"])["change"] == "2001:db8:2::/48"


def test_flag_sets_ctx_anomaly_on_every_changed_request(make: Any) -> None:
    harness, client = make(on_anomaly="flag")
    for _ in range(2):
        body = request(client, FIREFOX_MAC, "198.51.100.9").json()
        assert body["user"] == "ada"
        assert body["anomaly"] == {
            "reason": "client_changed", "change": "Firefox on macOS", "device": "Firefox 133 on macOS",
            "ip": "198.51.100.9", "login_device": "Chrome 131 on macOS", "login_ip": HOME,
        }
    assert len(anomalies(harness)) == 1
    assert request(client, CHROME_MAC).json()["anomaly"] is None
    # the app asks for re-authentication: a new login records the current client
    client.post("/login", json={"user": "ada"},
                headers={"User-Agent": FIREFOX_MAC, "X-Forwarded-For": "198.51.100.9"})
    assert request(client, FIREFOX_MAC, "198.51.100.9").json() == {
        "user": "ada", "ended_reason": None, "anomaly": None}


def test_revoke_ends_the_session(make: Any) -> None:
    harness, client = make(on_anomaly="revoke")
    response = request(client, FIREFOX_MAC)
    assert response.json() == {"user": None, "ended_reason": "revoked", "anomaly": None}
    assert "sg_session=;" in response.headers["set-cookie"]  # cleared
    [revoked] = anomalies(harness, "revoked")
    assert (revoked["actor"], revoked["reason"], revoked["user_id"]) == ("system", "revoked", "ada")
    assert len(anomalies(harness)) == 1
    assert harness.guard.sessions(user_id="ada") == []


def test_revoke_a_bearer_session_and_on_invalid_401(make: Any) -> None:
    harness, client = make(on_anomaly="revoke", on_invalid="401")
    token = client.post("/login", json={"user": "bob"}, headers={"User-Agent": CHROME_MAC}).json()["token"]
    bare = harness.new_client()
    response = bare.get("/anomaly", headers={"Authorization": f"Bearer {token}", "User-Agent": CHROME_MAC})
    assert response.json()["user"] == "bob"
    response = bare.get("/anomaly", headers={"Authorization": f"Bearer {token}", "User-Agent": FIREFOX_MAC})
    assert response.status_code == 401
    assert [e["user_id"] for e in anomalies(harness, "revoked")] == ["bob"]


def test_the_local_cache_path_watches_too(make: Any, store_kind: str) -> None:
    harness, client = make(local_cache="30s", on_anomaly="flag")
    assert request(client, CHROME_MAC).json()["anomaly"] is None  # now cached (on Redis)
    assert request(client, FIREFOX_MAC).json()["anomaly"]["reason"] == "client_changed"
    assert len(anomalies(harness)) == 1


def test_websocket_handshake_is_watched(make: Any, shell: str) -> None:
    if shell != "asgi":
        pytest.skip("websockets are ASGI")
    harness, client = make(on_anomaly="revoke")
    token = client.post("/login", json={"user": "ada"}, headers={"User-Agent": CHROME_MAC}).json()["token"]
    ws_client: Any = harness.new_client()
    headers = {"Authorization": f"Bearer {token}", "User-Agent": FIREFOX_MAC}
    with ws_client.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_json() == {"session": None, "ended_reason": "revoked"}


# -- the rule itself ---------------------------------------------------------------


def _record(user_agent: str, ip: str) -> Record:
    return Record("id", "ada", "web", 0, 0, user_agent=user_agent, ip=ip, device="login device")


@pytest.mark.parametrize(("login_ip", "ip", "expected"), [
    pytest.param("10.1.2.3", "10.1.200.200", None, id="v4-same-16"),
    pytest.param("10.1.2.3", "10.2.0.1", "10.2.0.0/16", id="v4-other-16"),
    pytest.param("10.1.2.3", "::ffff:10.1.9.9", None, id="v4-mapped-same"),
    pytest.param("2001:db8:1::1", "2001:db8:1:ffff::1", None, id="v6-same-48"),
    pytest.param("2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::/48", id="v6-other-48"),
    pytest.param("", "10.2.0.1", None, id="login-address-unknown"),
    pytest.param("10.1.2.3", "testclient", None, id="address-unknown"),
])
def test_network_rule(login_ip: str, ip: str, expected: str | None) -> None:
    anomaly = Watch().judge(_record(CHROME_MAC, login_ip), CHROME_MAC_NEWER, lambda: (ip, None))
    assert (anomaly and anomaly.change) == expected


def test_the_address_is_not_read_while_the_agent_is_the_login_one() -> None:
    def unread() -> tuple[str, None]:
        raise AssertionError("the address was read")

    assert Watch().judge(_record(CHROME_MAC, HOME), CHROME_MAC, unread) is None
    long = CHROME_MAC + " x" * 300  # stored cut to 512 bytes at login; compared cut the same way
    assert Watch().judge(_record(long[:512], HOME), long, unread) is None


def test_a_process_remembers_a_bounded_number_of_sessions() -> None:
    watch = Watch(remembered=2)
    first = Anomaly("client_changed", "Firefox on macOS", "s1", "d", "1.2.3.4", "l", "1.2.3.4")
    assert watch.first(first) and not watch.first(first)
    for other in ("s2", "s3"):
        assert watch.first(Anomaly("client_changed", "x", other, "d", "", "l", ""))
    assert watch.first(first)  # s1 was forgotten: recorded again


def test_networks() -> None:
    assert network("192.0.2.1") == "192.0.0.0/16"
    assert network("[2001:db8::1]") == "2001:db8::/48"
    assert network("nonsense") is None
