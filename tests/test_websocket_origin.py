"""Cross-site websocket hijacking (SPEC 9.5): a handshake that carries the
session cookie from a page of another origin is refused with 403 before the
app accepts it, unless that origin is the request's own host or listed in
``ALLOWED_ORIGINS``; bearer-token handshakes are not affected. Through
Starlette's test client, a raw ASGI server without the denial-response
extension, and a real uvicorn with the ``websockets`` client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from starlette.testclient import TestClient, WebSocketDenialResponse

from apps import starlette_app
from conftest import BASE_URL
from live_server import LiveServer
from sessionguard import Config, ConfigurationError, SessionGuard

EVIL = "https://evil.example"


def signed_in_client(guard: SessionGuard) -> tuple[TestClient, str]:
    client = TestClient(starlette_app(guard), base_url=BASE_URL)
    token = client.post("/login", json={"user": "ada"}).json()["token"]
    return client, token


def who(client: TestClient, **headers: str) -> Any:
    with client.websocket_connect("/ws", headers=headers) as ws:
        return ws.receive_json()["session"]


@pytest.mark.parametrize("origin", [EVIL, "https://testserver.evil.example", "null", "https://testserver:8443"])
def test_a_cookie_handshake_from_another_origin_is_refused_before_accept(
    make_guard: Callable[..., SessionGuard], origin: str
) -> None:
    guard = make_guard(cookie_secure=False)  # the test client's websockets are ws://
    client, _ = signed_in_client(guard)
    with pytest.raises(WebSocketDenialResponse) as refused:
        who(client, origin=origin)
    assert refused.value.status_code == 403
    assert refused.value.json()["error"]["code"] == "origin_refused"


def test_a_refused_cross_site_handshake_is_logged(
    make_guard: Callable[..., SessionGuard], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionguard import alerts

    monkeypatch.setattr(alerts, "THROTTLE", alerts.Throttle())  # this process's allowance, fresh
    client, _ = signed_in_client(make_guard(cookie_secure=False))
    caplog.set_level(logging.WARNING, logger="sessionguard")
    with pytest.raises(WebSocketDenialResponse):
        who(client, origin=EVIL)
    lines = [r.getMessage() for r in caplog.records if r.module == "alerts"]
    assert lines == ['sessionguard: cross-site websocket handshake refused: "/ws"']


def test_own_host_allowed_origins_bearer_and_no_origin_pass(make_guard: Callable[..., SessionGuard]) -> None:
    guard = make_guard(allowed_origins="https://app.example.com, http://localhost:3000", cookie_secure=False)
    client, token = signed_in_client(guard)
    for origin in ("https://testserver", "http://testserver", "https://TestServer:443",
                   "https://app.example.com", "http://localhost:3000"):
        assert who(client, origin=origin)["user_id"] == "ada", origin
    assert who(client)["user_id"] == "ada"  # no Origin: not a page of another site
    with pytest.raises(WebSocketDenialResponse):
        who(client, origin="http://localhost:3001")
    # a bearer token is sent by code that holds it, not by a browser on its own
    native = TestClient(starlette_app(guard), base_url=BASE_URL)
    assert who(native, origin=EVIL, authorization=f"Bearer {token}")["user_id"] == "ada"
    # and a handshake from another site without our cookie is an anonymous one
    assert who(native, origin=EVIL) is None


def test_without_the_denial_extension_the_handshake_is_closed_before_accept(
    make_guard: Callable[..., SessionGuard]
) -> None:
    guard = make_guard()
    _, token = signed_in_client(guard)
    called: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(True)  # pragma: no cover - refused before the app

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "scheme": "wss", "client": ("192.0.2.1", 5000),
             "headers": [(b"host", b"testserver"), (b"origin", EVIL.encode()),
                         (b"cookie", f"sg_session={token}".encode())]}
    asyncio.run(guard.asgi(app)(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}] and not called


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "*", "null",
                                   "https://user@app.example.com", "https://app.example.com:99999"])
def test_allowed_origins_is_checked_at_start_up(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config(secret_key="k" * 32, allowed_origins=f"https://ok.example, {value}")
    [line] = raised.value.errors
    assert line.startswith("SESSIONGUARD_ALLOWED_ORIGINS=") and "is not an origin" in line


def test_real_uvicorn_and_websockets_client() -> None:
    guard = SessionGuard(Config(secret_key="k" * 32, cookie_secure=False))
    with LiveServer(starlette_app(guard), guard) as server:
        token = httpx.post(server.url + "/login", json={"user": "ada"}).json()["token"]
        url, cookie = f"ws://127.0.0.1:{server.port}/ws", f"sg_session={token}"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            websockets.sync.client.connect(url, additional_headers={"Cookie": cookie, "Origin": EVIL})
        assert refused.value.response.status_code == 403
        own = {"Cookie": cookie, "Origin": server.url}
        with websockets.sync.client.connect(url, additional_headers=own) as ws:
            assert json.loads(ws.recv())["session"]["user_id"] == "ada"
    guard.store.close()
