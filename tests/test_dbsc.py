"""Device-bound sessions (DBSC, SPEC 9.6) without a browser: a software
device (``tests/dbsc_device.py``, its own P-256 or RSA key) registers and
refreshes on both shells and every store, and every way a proof can be
wrong is refused with 400 or 401, binding nothing and never failing (500).
The real browser is ``tests/test_dbsc_browser.py``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import Harness
from dbsc_device import Device, b64, params
from sessionguard import SessionGuard
from sessionguard.core import CHALLENGE_MS
from sessionguard.dbsc import BoundCookies, Challenges, challenge_header, registration_header, request_origin
from sessionguard.jws import ProofError
from sessionguard.tokens import session_id

ADMIN = "/_sessionguard"
START = f"{ADMIN}/dbsc/start"
REFRESH = f"{ADMIN}/dbsc/refresh"
ADMIN_TOKEN = "admin-" + "t" * 40
LIFETIME = 30
TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BOUND = {"device_bound": True, "device_bound_cookie_lifetime": LIFETIME, "admin_token": ADMIN_TOKEN}


class Browser:
    """One client of ``harness`` playing a DBSC browser with a software key."""

    def __init__(self, harness: Harness, alg: str = "ES256") -> None:
        self.h = harness
        self.client = harness.new_client()
        self.device = Device(alg)
        self.login_answer: dict[str, Any] = {}
        self.offer: dict[str, str] = {}
        self.session_id = ""

    def login(self, user: str = "ada", **body: Any) -> httpx.Response:
        response = self.client.post("/login", json={"user": user, **body})
        assert response.status_code == 200, response.text
        self.login_answer = response.json()
        self.session_id = self.login_answer["session"]["id"]
        self.offer = params(response.headers.get("secure-session-registration", ""))
        return response

    def register(self, proof: str | None = None, **kwargs: Any) -> httpx.Response:
        if proof is None:
            proof = self.device.proof(self.offer["challenge"], with_key=True, **kwargs)
        # latin-1: what a server hands over for any header bytes
        headers = {"Secure-Session-Response": proof.encode("latin-1")}
        return self.client.post(self.offer["path"], headers=headers)

    def challenge(self, session_id: str | None = None) -> str:
        response = self.client.post(REFRESH, headers={"Sec-Secure-Session-Id": session_id or self.session_id})
        assert response.status_code == 403, response.text
        found = params(response.headers["secure-session-challenge"])
        assert found["id"] == (session_id or self.session_id)
        return found["challenge"]

    def refresh(self, proof: str | None = None, session_id: str | None = None,
                **kwargs: Any) -> httpx.Response:
        if proof is None:
            proof = self.device.proof(self.challenge(), **kwargs)
        headers = {"Sec-Secure-Session-Id": session_id or self.session_id, "Secure-Session-Response": proof}
        return self.client.post(REFRESH, headers=headers)

    def whoami(self, client: httpx.Client | None = None, **kwargs: Any) -> dict[str, Any]:
        return dict(self.h.whoami(client=client or self.client, **kwargs))

    def bound(self) -> bool:
        """Whether the admin listing shows the session device-bound."""
        return bool(_listed(self)["device_bound"])


@pytest.fixture
def bound_harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(**BOUND)


@pytest.fixture
def browser(bound_harness: Harness) -> Browser:
    return Browser(bound_harness)


def _registered(browser: Browser) -> httpx.Response:
    browser.login()
    response = browser.register()
    assert response.status_code == 200, response.text
    return response


# -- registration ------------------------------------------------------------------


def test_a_web_login_over_https_offers_binding(browser: Browser) -> None:
    response = browser.login()
    header = response.headers["secure-session-registration"]
    challenge = browser.offer["challenge"]
    assert header == f'(ES256 RS256);path="{START}";challenge="{challenge}"'
    assert len(challenge) >= 43


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_registration_binds_the_session_and_answers_with_the_bound_cookie(
    bound_harness: Harness, alg: str
) -> None:
    browser = Browser(bound_harness, alg)
    browser.login()
    assert browser.whoami()["session"]["device_bound"] is False
    response = browser.register()
    assert response.status_code == 200, response.text
    assert response.json() == {
        "session_identifier": browser.session_id,
        "refresh_url": REFRESH,
        "scope": {"origin": "https://testserver", "include_site": False},
        "credentials": [{"type": "cookie", "name": "sg_session",
                         "attributes": "Secure; HttpOnly; Path=/; SameSite=Lax"}],
    }
    cookies = response.headers.get_list("set-cookie")
    bound = next(c for c in cookies if c.startswith("sg_session="))
    assert f"Max-Age={LIFETIME}" in bound and "Secure; HttpOnly; Path=/; SameSite=Lax" in bound
    refresh = next(c for c in cookies if c.startswith("sg_session_refresh="))
    assert f"Path={REFRESH}" in refresh and "HttpOnly" in refresh and "Secure" in refresh
    assert response.headers["cache-control"] == "no-store"
    assert browser.whoami()["session"]["device_bound"] is True
    assert browser.bound()
    events = browser.h.client.get(f"{ADMIN}/api/audit", headers=TOKEN)
    bound_events = [e for e in events.json()["events"] if e["type"] == "device_bound"]
    assert [(e["session_id"], e["user_id"], e["actor"]) for e in bound_events] == [
        (browser.session_id, "ada", "user:ada")]


def test_the_bound_cookie_expires_and_the_key_renews_it(browser: Browser) -> None:
    _registered(browser)
    browser.h.clock.advance(LIFETIME - 1)
    assert browser.whoami()["session"]["id"] == browser.session_id
    browser.h.clock.advance(1)
    assert browser.whoami() == {"session": None, "ended_reason": None}
    response = browser.refresh()
    assert response.status_code == 200, response.text
    assert response.json()["session_identifier"] == browser.session_id
    assert browser.whoami()["session"]["id"] == browser.session_id
    assert browser.bound()  # alive all along, and still bound


def test_a_copied_cookie_stops_working_while_the_device_refreshes(browser: Browser) -> None:
    _registered(browser)
    thief = browser.h.new_client()
    for cookie in browser.client.cookies.jar:  # the whole jar: bound and refresh cookie
        thief.cookies.jar.set_cookie(cookie)
    assert browser.whoami(client=thief)["session"]["id"] == browser.session_id
    browser.h.clock.advance(LIFETIME)
    assert browser.whoami(client=thief) == {"session": None, "ended_reason": None}
    # the thief has the refresh cookie but not the key
    thief_device = Browser(browser.h)
    thief_device.client, thief_device.session_id = thief, browser.session_id
    refused = thief_device.refresh()
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
    assert browser.refresh().status_code == 200
    assert browser.whoami()["session"]["id"] == browser.session_id
    assert browser.whoami(client=thief) == {"session": None, "ended_reason": None}


@pytest.mark.parametrize("source", ["cookie", "bearer"])
def test_the_login_token_is_refused_once_bound_and_is_not_a_use(browser: Browser, source: str) -> None:
    login_token = browser.login().json()["token"]
    assert browser.register().status_code == 200
    other = browser.h.new_client()
    if source == "cookie":
        other.cookies.set("sg_session", login_token)
        headers = {}
    else:
        headers = {"Authorization": f"Bearer {login_token}"}
    seen = browser.h.whoami(client=browser.h.new_client(), headers={"Authorization": f"Bearer {login_token}"})
    assert seen == {"session": None, "ended_reason": None}
    before = _last_seen(browser)
    browser.h.clock.advance(5)
    assert browser.h.whoami(client=other, headers=headers) == {"session": None, "ended_reason": None}
    assert _last_seen(browser) == before
    assert browser.whoami()["session"]["id"] == browser.session_id  # the device is still signed in


def _last_seen(browser: Browser) -> str:
    return str(_listed(browser)["last_seen_at"])


def _listed(browser: Browser) -> dict[str, Any]:
    """The session of ``browser`` as the admin listing shows it."""
    response = browser.h.client.get(f"{ADMIN}/api/sessions", headers=TOKEN)
    assert response.status_code == 200, response.text
    return dict(next(s for s in response.json()["sessions"] if s["id"] == browser.session_id))


def test_the_bound_token_as_a_bearer_token_lives_as_long_as_the_cookie(browser: Browser) -> None:
    _registered(browser)
    token = browser.client.cookies["sg_session"]
    bearer = {"Authorization": f"Bearer {token}"}
    plain = browser.h.new_client()
    assert browser.h.whoami(client=plain, headers=bearer)["session"]["id"] == browser.session_id
    browser.h.clock.advance(LIFETIME)
    assert browser.h.whoami(client=plain, headers=bearer) == {"session": None, "ended_reason": None}


def test_timeouts_and_sign_out_apply_to_bound_sessions(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(**BOUND, idle_timeout=20)
    browser = Browser(harness)
    _registered(browser)
    harness.clock.advance(21)
    assert browser.whoami() == {"session": None, "ended_reason": "idle_timeout"}
    assert browser.refresh(browser.device.proof("x")).status_code in (400, 401)


def test_an_ended_session_refuses_its_refresh_with_401(browser: Browser) -> None:
    _registered(browser)
    challenge = browser.challenge()
    revoked = browser.h.client.delete(f"{ADMIN}/api/sessions/{browser.session_id}", headers=TOKEN)
    assert revoked.status_code == 204
    browser.client.cookies.delete("sg_session")  # as the browser's expired bound cookie
    response = browser.refresh(browser.device.proof(challenge))
    assert response.status_code == 401 and not _issued(response)
    assert response.json()["error"]["code"] == "session_ended"


def _issued(response: httpx.Response) -> list[str]:
    """The cookies ``response`` sets (not the ones it clears)."""
    return [c for c in response.headers.get_list("set-cookie") if "Max-Age=0" not in c]


def test_each_challenge_answers_once(browser: Browser) -> None:
    _registered(browser)
    proof = browser.device.proof(browser.challenge())
    assert browser.refresh(proof).status_code == 200
    again = browser.refresh(proof)
    assert again.status_code == 401 and "set-cookie" not in again.headers
    assert browser.register().status_code == 401  # its login's challenge, answered already


# -- refusals ------------------------------------------------------------------------


def _cut(proof: str) -> str:
    """``proof`` with the last byte of its signature cut (still canonical base64url)."""
    signed, _, signature = proof.rpartition(".")
    return f"{signed}.{b64(base64.urlsafe_b64decode(signature + '==')[:-1])}"


def _unsigned(proof: str) -> str:
    """``proof`` with an empty signature (as ``alg: none`` has)."""
    return proof.rpartition(".")[0] + "."


def _none_alg(device: Device, challenge: str) -> str:
    return _unsigned(device.proof(challenge, with_key=True, header={"alg": "none"}))


START_REFUSALS = [
    pytest.param(lambda d, c: d.proof(c, with_key=True, signer=Device()), 401, id="another-key-signed"),
    pytest.param(lambda d, c: d.proof(c, with_key=True, key_of=Device()), 401, id="another-key-named"),
    pytest.param(lambda d, c: d.proof(c, with_key=True, header={"typ": "JWT"}), 400, id="wrong-typ"),
    pytest.param(lambda d, c: d.proof(c, with_key=True, header={"alg": "HS256"}), 400, id="alg-hs256"),
    pytest.param(_none_alg, 400, id="alg-none"),
    pytest.param(lambda d, c: d.proof(c), 400, id="no-key"),
    pytest.param(lambda d, c: d.proof(c + "x", with_key=True), 401, id="wrong-challenge"),
    pytest.param(lambda d, c: d.proof(c, with_key=True, payload={"jti": 7}), 400, id="jti-not-text"),
    pytest.param(lambda d, c: d.proof(c, with_key=True, header={"jwk": {"kty": "oct", "k": "AA"}}), 400,
                 id="symmetric-key"),
    pytest.param(lambda d, c: "not.a.jwt", 400, id="malformed"),
    pytest.param(lambda d, c: d.proof(c, with_key=True) + ".x", 400, id="four-parts"),
    pytest.param(lambda d, c: _cut(d.proof(c, with_key=True)), 401, id="cut-signature"),
    pytest.param(lambda d, c: '"<b>" {} ; ,', 400, id="garbage"),
    pytest.param(lambda d, c: d.proof(c, with_key=True) + "A" * 9000, 400, id="too-long"),
]


@pytest.mark.parametrize(("forge", "status"), START_REFUSALS)
def test_a_bad_registration_is_refused_and_binds_nothing(
    browser: Browser, forge: Callable[[Device, str], str], status: int
) -> None:
    browser.login()
    response = browser.register(forge(browser.device, browser.offer["challenge"]))
    assert response.status_code == status, response.text
    assert "set-cookie" not in response.headers
    assert response.json()["error"]["code"]
    assert browser.whoami()["session"]["device_bound"] is False
    assert not browser.bound()
    assert browser.register().status_code == 200  # the genuine proof still binds


def test_a_challenge_of_another_session_or_too_old_is_refused(browser: Browser) -> None:
    other = Browser(browser.h)
    other.login("bob")
    browser.login()
    foreign = browser.register(browser.device.proof(other.offer["challenge"], with_key=True))
    assert foreign.status_code == 401
    browser.h.clock.advance(5 * 60 + 1)
    old = browser.register()
    assert old.status_code == 401 and old.json()["error"]["code"] == "challenge_expired"
    assert not browser.bound()


def test_a_registration_without_its_session_cookie_is_refused(browser: Browser) -> None:
    browser.login()
    browser.client.cookies.clear()
    response = browser.register()
    assert response.status_code == 401
    browser.client.cookies.set("sg_session", browser.login_answer["token"])
    assert not browser.bound()


REFRESH_REFUSALS = [
    pytest.param(lambda d, c: Device().proof(c), 401, id="another-key"),
    pytest.param(lambda d, c: d.proof(c, header={"typ": "dbsc+jws"}), 400, id="wrong-typ"),
    pytest.param(lambda d, c: _unsigned(d.proof(c, header={"alg": "none"})), 400, id="alg-none"),
    pytest.param(lambda d, c: d.proof(c, header={"alg": "RS256"}), 401, id="alg-of-another-key-type"),
    pytest.param(lambda d, c: d.proof("A" * 46), 401, id="forged-challenge"),
    pytest.param(lambda d, c: "x.y", 400, id="malformed"),
    pytest.param(lambda d, c: "e30.e30.", 400, id="empty-header"),
]


@pytest.mark.parametrize(("forge", "status"), REFRESH_REFUSALS)
def test_a_bad_refresh_is_refused_and_issues_no_cookie(
    browser: Browser, forge: Callable[[Device, str], str], status: int
) -> None:
    _registered(browser)
    browser.h.clock.advance(LIFETIME)
    response = browser.refresh(forge(browser.device, browser.challenge()))
    assert response.status_code == status, response.text
    assert "set-cookie" not in response.headers
    assert browser.whoami() == {"session": None, "ended_reason": None}
    assert browser.refresh().status_code == 200  # the device itself still refreshes


def test_a_refresh_for_another_or_an_unknown_session_is_refused(browser: Browser) -> None:
    other = Browser(browser.h)
    _registered(other)
    _registered(browser)
    # the other session's challenge, answered with this session's key and id
    foreign = browser.refresh(browser.device.proof(other.challenge()))
    assert foreign.status_code == 401
    unknown = browser.client.post(REFRESH, headers={"Sec-Secure-Session-Id": "abcd" + "A" * 22})
    assert unknown.status_code == 401
    malformed = browser.client.post(REFRESH, headers={"Sec-Secure-Session-Id": "../etc"})
    assert malformed.status_code == 401
    browser.client.cookies.delete("sg_session_refresh", path=REFRESH)
    without = browser.client.post(REFRESH, headers={"Sec-Secure-Session-Id": browser.session_id})
    assert without.status_code == 401


def test_an_old_refresh_challenge_is_refused(browser: Browser) -> None:
    _registered(browser)
    challenge = browser.challenge()
    browser.h.clock.advance(5 * 60 + 1)
    response = browser.refresh(browser.device.proof(challenge))
    assert response.status_code == 401 and response.json()["error"]["code"] == "challenge_expired"


def test_a_session_that_was_never_bound_cannot_refresh(browser: Browser) -> None:
    browser.login()
    token = browser.login_answer["token"]
    browser.client.cookies.set("sg_session_refresh", token, path=REFRESH)
    response = browser.refresh()
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_refused"


# -- when binding is not offered ----------------------------------------------------------


def test_binding_is_offered_only_to_web_logins_over_https(bound_harness: Harness) -> None:
    plain = httpx.Client(transport=bound_harness.client._transport, base_url="http://testserver")
    response = plain.post("/login", json={"user": "ada"})
    assert response.status_code == 200 and "secure-session-registration" not in response.headers
    mobile = bound_harness.new_client().post("/login", json={"user": "ada", "platform": "mobile"})
    assert "secure-session-registration" not in mobile.headers
    token = mobile.json()["token"]
    again = bound_harness.new_client().post("/login", json={"user": "bob", "platform": "web"},
                                            headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200 and "secure-session-registration" not in again.headers


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_binding_behind_a_proxy_follows_x_forwarded_proto_if_trusted(
    make_harness: Callable[..., Harness], trusted: bool
) -> None:
    harness = make_harness(**BOUND, trusted_proxies="10.0.0.0/8" if trusted else "192.168.0.0/16")

    def via_proxy(scheme: str) -> httpx.Client:
        base, peer = f"{scheme}://testserver", ("10.1.2.3", 4567)
        if harness.shell == "asgi":
            return TestClient(harness.app, base_url=base, client=peer)
        transport = httpx.WSGITransport(app=harness.app, remote_addr=peer[0])
        return httpx.Client(transport=transport, base_url=base)

    def offered(scheme: str, forwarded: str) -> bool:
        headers = {"X-Forwarded-Proto": forwarded}
        response = via_proxy(scheme).post("/login", json={"user": "ada"}, headers=headers)
        assert response.status_code == 200, response.text
        return "secure-session-registration" in response.headers

    assert offered("http", "http, https") is trusted
    assert offered("https", "http") is not trusted


def test_device_bound_off_offers_nothing_and_serves_no_endpoint(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    response = harness.client.post("/login", json={"user": "ada"})
    assert "secure-session-registration" not in response.headers
    assert harness.client.post(START).status_code == 404
    assert harness.client.post(REFRESH).status_code == 404


def test_the_guard_needs_the_admin_path_for_binding() -> None:
    from sessionguard import Config, ConfigurationError

    with pytest.raises(ConfigurationError, match="SESSIONGUARD_ADMIN_PATH"):
        SessionGuard(Config(secret_key="s" * 40, device_bound="on", admin_path="off"))


# -- the protocol's values (sessionguard.dbsc) --------------------------------------------

SID_A, SID_B = "abcd" + "A" * 22, "abcd" + "B" * 22


def test_challenges_are_bound_to_their_session_dated_and_signed() -> None:
    challenges = Challenges(["k" * 32])
    text = challenges.issue(SID_A, 1_000_000)
    read = challenges.read(SID_A, text, 1_000_000 + CHALLENGE_MS)
    assert read.issued == 1_000_000 and read.id != text and text.startswith(read.id[:20])
    assert challenges.issue(SID_A, 1_000_000) != text  # a fresh nonce each time
    for session, at, code in [(SID_B, 1_000_000, "challenge_refused"),
                              (SID_A, 1_000_001 + CHALLENGE_MS, "challenge_expired"),
                              (SID_A, 999_999 - CHALLENGE_MS, "challenge_expired")]:
        with pytest.raises(ProofError) as caught:
            challenges.read(session, text, at)
        assert (caught.value.status, caught.value.code) == (401, code)
    tampered = text[:10] + ("B" if text[10] != "B" else "C") + text[11:]
    for forged in (tampered, text + "A", "", "x" * 500, text[:-1]):
        with pytest.raises(ProofError):
            challenges.read(SID_A, forged, 1_000_000)
    rotated = Challenges(["n" * 32, "k" * 32])
    assert rotated.read(SID_A, text, 1_000_000).issued == 1_000_000
    with pytest.raises(ProofError):
        Challenges(["n" * 32]).read(SID_A, text, 1_000_000)


def test_header_values_quote_and_escape() -> None:
    expected = '(ES256 RS256);path="/a\\"b\\\\c/dbsc/start";challenge="ch"'
    assert registration_header('/a"b\\c', "ch") == expected
    assert challenge_header("ch", SID_A) == f'"ch";id="{SID_A}"'


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        pytest.param({"origin": "https://Example.com:8443", "host": "x"}, "https://example.com:8443",
                     id="origin"),
        pytest.param({"origin": "null", "host": "example.com"}, "https://example.com", id="null-origin"),
        pytest.param({"host": "[::1]:8443"}, "https://[::1]:8443", id="ipv6-host"),
        pytest.param({"origin": "http://example.com", "host": "example.com"}, "https://example.com",
                     id="plain-origin-ignored"),
        pytest.param({"host": "exa mple.com"}, None, id="bad-host"),
        pytest.param({"host": "a.com/x"}, None, id="host-with-path"),
        pytest.param({"host": "example.com:443"}, "https://example.com", id="default-port"),
        pytest.param({"host": "a.com:99999"}, None, id="bad-port"),
        pytest.param({}, None, id="nothing"),
    ],
)
def test_the_origin_of_a_request(headers: dict[str, str], origin: str | None) -> None:
    assert request_origin(headers) == origin


def test_a_host_prefixed_cookie_gets_a_secure_prefixed_refresh_cookie() -> None:
    cookies = BoundCookies(name="__Host-sid", path="/", domain=None, secure=True, samesite="strict",
                           lifetime=60, admin_path="/admin")
    assert cookies.attributes == "Secure; HttpOnly; Path=/; SameSite=Strict"
    assert cookies.refresh_name == "__Secure-sid_refresh"
    refresh = cookies.refresh("tok", None)
    assert refresh.startswith("__Secure-sid_refresh=tok;") and "Path=/admin/dbsc/refresh" in refresh
    assert "Max-Age" not in refresh and "Domain" not in refresh
    assert "Max-Age=60" in cookies.bound("tok")
    domain = BoundCookies(name="sid", path="/app", domain="example.com", secure=True, samesite="lax",
                          lifetime=60, admin_path="/admin")
    assert domain.attributes == "Domain=example.com; Secure; HttpOnly; Path=/app; SameSite=Lax"


def test_rotating_a_bound_session_unbinds_it_and_offers_binding_again(browser: Browser) -> None:
    _registered(browser)
    old_token = browser.client.cookies["sg_session"]
    rotated = browser.client.post("/rotate")
    assert rotated.status_code == 200, rotated.text
    new_id = rotated.json()["session"]["id"]
    assert new_id != browser.session_id and rotated.json()["session"]["device_bound"] is False
    offer = params(rotated.headers["secure-session-registration"])
    assert browser.whoami()["session"]["id"] == new_id  # the new (unbound) cookie works
    stale = browser.h.new_client()
    stale.cookies.set("sg_session", old_token)
    assert browser.h.whoami(client=stale)["session"] is None
    assert browser.refresh().status_code == 401  # the old binding is gone with the old id
    browser.session_id, browser.offer = new_id, offer
    assert browser.register().status_code == 200
    assert browser.bound()


def test_a_refresh_is_not_a_use_and_the_middleware_leaves_it_alone(browser: Browser) -> None:
    _registered(browser)
    store = browser.h.guard.store

    def last_seen() -> int:
        return int(store.check(browser.session_id, passive=True).record.last_seen)

    before = last_seen()
    browser.h.clock.advance(5)
    assert browser.refresh().status_code == 200  # sent with the still-valid bound cookie (proactive)
    assert last_seen() == before
    browser.whoami()  # an ordinary request is a use
    assert last_seen() == before + 5000


def test_a_registration_for_a_session_the_store_does_not_know_is_refused(browser: Browser) -> None:
    browser.login()
    guard = browser.h.guard
    sid = guard.tokens.new_sid(browser.session_id[:4])  # signed, but no such session
    browser.client.cookies.clear()
    browser.client.cookies.set("sg_session", guard.tokens.sign(sid))
    challenge = guard.decider.challenges.issue(session_id(sid), guard.now_ms())
    response = browser.register(browser.device.proof(challenge, with_key=True))
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_unknown"
