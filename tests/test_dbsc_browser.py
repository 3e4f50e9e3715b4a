"""Device-bound sessions in a real browser: Debian's Chromium, headless,
through Playwright, against a Starlette app behind the guard served by
uvicorn over HTTPS on loopback (``DEVICE_BOUND=on``, the shortest cookie
lifetime, 30 s).

How this Chromium does DBSC (``../shared/DBSC.md``): it needs the features
``DeviceBoundSessions`` and ``EnableBoundSessionCredentialsSoftwareKeysForManualTesting``
(Linux has no hardware key store), merged into the one ``--enable-features``
switch Playwright passes too (the last such switch wins); and an HTTPS
origin whose certificate it accepts as valid. The certificate is made here,
for the name ``sessionguard.test`` (mapped to 127.0.0.1), and accepted with
``--ignore-certificate-errors-spki-list`` (with ``--ignore-certificate-errors``
Chromium silently skips DBSC). DevTools' ``Network.deviceBoundSessionEventOccurred``
events say what the browser did.

The story: sign in in the browser; the admin listing shows the session
device-bound; a copy of its cookie works from another client (httpx) until
the cookie lifetime has passed, then it does not, while the browser's own
requests (fetches and navigations) keep working: it refreshed with its key.
Revoking the session ends it for the browser too. About 40 s, most of it
waiting for the cookie to expire.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from conftest import SECRET
from live_server import LiveServer
from sessionguard import Config, SessionGuard

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
HOST = "sessionguard.test"
ADMIN = "/_sessionguard"
ADMIN_TOKEN = "admin-" + "t" * 40
LIFETIME = 30
#: Playwright's own ``--enable-features`` (its chromiumSwitches), kept in the merged switch.
PLAYWRIGHT_FEATURES = ["CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies"]
DBSC_FEATURES = ["DeviceBoundSessions", "EnableBoundSessionCredentialsSoftwareKeysForManualTesting"]


# -- the certificate and the server --------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for :data:`HOST`: the cert and key files, and
    the base64 SHA-256 of its SubjectPublicKeyInfo (what Chromium's SPKI list takes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert_file, key_file, base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def _app(guard: SessionGuard) -> Any:
    """A page, a JSON login, and ``/whoami``."""

    async def home(request: Request) -> Response:
        return HTMLResponse("<!doctype html><title>home</title><p>home</p>")

    async def login(request: Request) -> Response:
        session = await request.scope["sessionguard"].login((await request.json())["user"])
        return JSONResponse({"id": session.id})

    async def whoami(request: Request) -> Response:
        ctx = request.scope["sessionguard"]
        session = None if ctx.session is None else ctx.session.to_json()
        return JSONResponse({"session": session, "ended_reason": ctx.ended_reason})

    routes = [Route("/", home), Route("/login", login, methods=["POST"]), Route("/whoami", whoami)]
    return guard.asgi(Starlette(routes=routes))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, SessionGuard, str]]:
    cert_file, key_file, spki = _certificate(tmp_path_factory.mktemp("tls"))
    guard = SessionGuard(Config(secret_key=SECRET, device_bound="on", device_bound_cookie_lifetime=LIFETIME,
                                admin_token=ADMIN_TOKEN))
    with LiveServer(_app(guard), guard, tls=(cert_file, key_file)) as server:
        yield server, guard, spki
    guard.close()


def _client(server: LiveServer, cookie: str | None = None) -> httpx.Client:
    """Another client of the site, straight to 127.0.0.1 (the certificate is the test's own)."""
    headers = {"Host": f"{HOST}:{server.port}"}
    if cookie is not None:
        headers["Cookie"] = f"sg_session={cookie}"
    return httpx.Client(base_url=f"https://127.0.0.1:{server.port}", headers=headers, verify=False)


def _wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _kinds(events: list[dict[str, Any]], session_id: str) -> list[tuple[str, str]]:
    """DevTools' DBSC events of ``session_id`` as ``(kind, result)``."""
    kinds = []
    for event in events:
        assert event["sessionId"] == session_id, event
        for kind in ("creation", "challenge", "refresh", "termination"):
            details = event.get(f"{kind}EventDetails")
            if details is not None:
                result = {"creation": details.get("fetchResult"), "termination": details.get("deletionReason")
                          }.get(kind, details.get(f"{kind}Result"))
                kinds.append((kind, str(result)))
    return kinds


# -- the test ------------------------------------------------------------------------------


def test_a_bound_session_survives_in_the_browser_and_dies_in_a_copy(
    site: tuple[LiveServer, SessionGuard, str],
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (never `playwright install`)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    server, guard, spki = site
    origin = f"https://{HOST}:{server.port}"
    args = [
        "--no-sandbox", "--disable-gpu", "--disable-quic",
        f"--enable-features={','.join(PLAYWRIGHT_FEATURES + DBSC_FEATURES)}",
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={spki}",
    ]
    admin = _client(server)
    admin.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def listed(session_id: str) -> dict[str, Any] | None:
        response = admin.get(f"{ADMIN}/api/sessions")
        assert response.status_code == 200, response.text
        return next((s for s in response.json()["sessions"] if s["id"] == session_id), None)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page()
            events: list[dict[str, Any]] = []
            devtools = page.context.new_cdp_session(page)
            devtools.on("Network.deviceBoundSessionEventOccurred", lambda event: events.append(event))
            devtools.send("Network.enable")
            devtools.send("Network.enableDeviceBoundSessions", {"enable": True})

            def fetch_whoami() -> dict[str, Any]:
                answer: dict[str, Any] = page.evaluate("fetch('/whoami').then(r => r.json())")
                return answer

            page.goto(f"{origin}/")
            session_id = page.evaluate(
                "fetch('/login', {method: 'POST', body: JSON.stringify({user: 'ada'})})"
                ".then(r => r.json()).then(b => b.id)")
            # the browser registers its key in the background (40-240 ms)
            shown = _wait_for(lambda: (s := listed(session_id)) and s["device_bound"] and s, 10, "binding")
            assert shown["user_id"] == "ada"
            bound_at = time.monotonic()
            cookie = next(c for c in page.context.cookies() if c["name"] == "sg_session")
            assert cookie["secure"] and cookie["httpOnly"]
            with _client(server, cookie["value"]) as thief:
                assert thief.get("/whoami").json()["session"]["id"] == session_id

                time.sleep(max(0.0, bound_at + LIFETIME + 1 - time.monotonic()))
                assert thief.get("/whoami").json() == {"session": None, "ended_reason": None}
                assert fetch_whoami()["session"]["id"] == session_id  # held, refreshed, sent
                page.goto(f"{origin}/whoami")
                assert page.locator("body").inner_text().count(session_id) == 1
                assert thief.get("/whoami").json() == {"session": None, "ended_reason": None}
            assert _kinds(events, session_id)[:3] == [
                ("creation", "Success"), ("challenge", "Success"), ("refresh", "Refreshed")], events
            assert not events[2]["refreshEventDetails"]["wasFullyProactiveRefresh"]  # a held request's

            revoked = admin.delete(f"{ADMIN}/api/sessions/{session_id}")
            assert revoked.status_code == 204
            seen = len(events)
            assert fetch_whoami()["session"] is None
            assert fetch_whoami()["session"] is None
            # the refresh that follows is refused (401), and the browser ends its session
            for _ in range(100):
                if ("termination", "RefreshFatalError") in _kinds(events[seen:], session_id):
                    break
                page.wait_for_timeout(50)  # (events arrive while Playwright waits)
            after = _kinds(events[seen:], session_id)
            assert ("refresh", "FatalError") in after, events[seen:]
            assert ("termination", "RefreshFatalError") in after, events[seen:]
            assert any(e.get("refreshEventDetails", {}).get("failedRequest", {}).get("responseError") == 401
                       for e in events[seen:])
        finally:
            browser.close()
            admin.close()
