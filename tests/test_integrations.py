"""The framework integrations, each through its example app and its
framework's own test client: Starlette (with the websocket), FastAPI,
Flask and Django."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import SECRET, FakeClock
from sessionguard import Config, SessionContext, SessionGuard, audit
from sessionguard.integrations.fastapi import CurrentSession

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))  # the examples import as top-level modules

import fastapi_app  # noqa: E402
import flask_app  # noqa: E402
import starlette_app  # noqa: E402


@pytest.fixture
def guard(clock: FakeClock) -> Iterator[SessionGuard]:
    """A memory-store guard; the test clients speak plain HTTP."""
    guard = SessionGuard(Config(secret_key=SECRET, cookie_secure=False), clock=clock)
    yield guard
    guard.store.close()


def revoke(guard: SessionGuard, session_id: str) -> None:
    """End a session as an admin would, audit event included."""
    record = guard.store.end(session_id, "revoked")
    assert record is not None
    guard.record([audit.ended(record, "revoked", "admin-token", guard.store.now())])


# -- Starlette (the demo app) ----------------------------------------------------


@pytest.fixture
def starlette_client(guard: SessionGuard) -> Iterator[TestClient]:
    with TestClient(starlette_app.create_app(guard)) as client:
        yield client


def only_session_id(guard: SessionGuard) -> str:
    page = guard.store.list_sessions(user_id=None, platform=None, limit=10, cursor=None)
    assert len(page.items) == 1
    session_id: str = page.items[0].id
    return session_id


def test_starlette_login_page_and_logout(starlette_client: TestClient, guard: SessionGuard) -> None:
    page = starlette_client.get("/")
    assert page.status_code == 200 and '<form method="post" action="/login">' in page.text
    response = starlette_client.post(
        "/login", data={"name": "Ada <b>", "admin": "1", "remember_me": "1"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "Max-Age=" in response.headers["set-cookie"]  # remember me
    home = starlette_client.get("/")
    assert "Hello, Ada &lt;b&gt;" in home.text and "<b>" not in home.text
    assert "admin" in home.text and "/_sessionguard/" in home.text
    session = guard.store.list_sessions(user_id="Ada <b>", platform=None, limit=1, cursor=None).items[0]
    assert session.metadata == {"name": "Ada <b>", "roles": ["admin"]} and session.remember_me
    assert starlette_client.post("/logout", follow_redirects=False).status_code == 303
    assert "Sign in" in starlette_client.get("/").text


def test_demo_loads_the_expiry_warning(starlette_client: TestClient) -> None:
    starlette_client.post("/login", data={"name": "ada"})
    home = starlette_client.get("/").text
    tag = '<script src="/_sessionguard/static/expiry.js" data-sign-in="/" defer></script>'
    assert tag in home
    script = starlette_client.get("/_sessionguard/static/expiry.js")
    assert script.status_code == 200 and "Stay signed in" in script.text


def test_starlette_shows_why_the_session_ended(starlette_client: TestClient, guard: SessionGuard) -> None:
    starlette_client.post("/login", data={"name": "ada"})
    revoke(guard, only_session_id(guard))
    page = starlette_client.get("/")
    assert "You were signed out by an administrator." in page.text
    # Signed in again, the page still says why the previous session ended (from the audit log).
    starlette_client.post("/login", data={"name": "ada"})
    home = starlette_client.get("/").text
    assert "Your previous session ended at" in home and "by an administrator" in home


def test_starlette_evicted_in_words(clock: FakeClock) -> None:
    limited = SessionGuard(Config(secret_key=SECRET, cookie_secure=False, max_sessions=1), clock=clock)
    app = starlette_app.create_app(limited)
    with TestClient(app) as first, TestClient(app) as second:
        first.post("/login", data={"name": "ada"})
        second.post("/login", data={"name": "ada"})
        text = first.get("/").text
    assert "You were signed out because you signed in on another device." in text


def test_starlette_login_form_errors(starlette_client: TestClient) -> None:
    response = starlette_client.post("/login", data={"name": "   "})
    assert response.status_code == 400 and "Type a name" in response.text
    big = starlette_client.post("/login", data={"name": "x" * 10_000})
    assert big.status_code == 400


def test_websocket_refused_without_session(starlette_client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused:
        with starlette_client.websocket_connect("/ws"):
            pass  # pragma: no cover - the handshake is refused
    assert refused.value.code == 1008


def test_websocket_closes_at_next_message_after_revocation(
    starlette_client: TestClient, guard: SessionGuard
) -> None:
    starlette_client.post("/login", data={"name": "ada"})
    session_id = only_session_id(guard)
    with starlette_client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"type": "hello", "user_id": "ada", "session_id": session_id}
        ws.send_text("ping")
        assert ws.receive_json() == {"type": "echo", "text": "ping"}
        revoke(guard, session_id)
        ws.send_text("ping")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (1008, "revoked")


def test_websocket_with_bearer_token_and_idle_timeout(guard: SessionGuard, clock: FakeClock) -> None:
    with TestClient(starlette_app.create_app(guard)) as client:
        token = login_token(guard)
        with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.receive_json()["type"] == "hello"
            clock.advance(3601)  # the default idle timeout is one hour
            ws.send_text("ping")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
    assert (closed.value.code, closed.value.reason) == (1008, "idle_timeout")
    events = guard.store.events(user_id="ada", limit=5, cursor=None).items
    # the ending is audited (and, the login having come from another client library, an anomaly)
    assert [e.type for e in events if e.type != "anomaly"][:2] == ["idle_timeout", "login"]


def login_token(guard: SessionGuard) -> str:
    """The token of a login through the Flask example, sharing ``guard``'s store."""
    client = flask_app.create_app(guard).test_client()
    response = client.post("/login", data={"name": "ada"})
    assert response.status_code == 303
    cookie = client.get_cookie("sg_session")
    assert cookie is not None
    return cookie.value


# -- FastAPI -----------------------------------------------------------------------


@pytest.fixture
def fastapi_client(guard: SessionGuard) -> Iterator[TestClient]:
    with TestClient(fastapi_app.create_app(guard)) as client:
        yield client


def test_fastapi_dependency_answers_401_without_session(fastapi_client: TestClient) -> None:
    response = fastapi_client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]["code"] == "session_required"
    assert fastapi_client.get("/").json() == {"session": None, "ended_reason": None, "message": None}


def test_fastapi_login_me_logout(fastapi_client: TestClient, guard: SessionGuard) -> None:
    body = fastapi_client.post("/login", json={"user": "ada", "admin": True}).json()
    assert body["session"]["user_id"] == "ada" and body["session"]["metadata"]["roles"] == ["admin"]
    me = fastapi_client.get("/me")
    assert me.status_code == 200 and me.json()["id"] == body["session"]["id"]
    assert fastapi_client.get("/").json()["session"]["user_id"] == "ada"
    # A native client presents the token as a bearer token.
    with TestClient(fastapi_app.create_app(guard)) as native:
        bearer = {"Authorization": f"Bearer {body['token']}"}
        assert native.get("/me", headers=bearer).json()["user_id"] == "ada"
    out = fastapi_client.post("/logout")
    assert out.status_code == 204 and "Max-Age=0" in out.headers["set-cookie"]
    assert fastapi_client.get("/me").status_code == 401


def test_fastapi_401_says_why_the_session_ended(fastapi_client: TestClient, guard: SessionGuard) -> None:
    session_id = fastapi_client.post("/login", json={"user": "ada"}).json()["session"]["id"]
    revoke(guard, session_id)
    response = fastapi_client.get("/me")
    assert response.status_code == 401
    assert response.json()["detail"] == {
        "code": "session_ended", "message": "Sign in to continue.", "ended_reason": "revoked"
    }
    assert "Max-Age=0" in response.headers["set-cookie"]  # the dead cookie is cleared


def test_fastapi_without_middleware_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(session: CurrentSession) -> str:
        return session.user_id  # pragma: no cover

    with TestClient(app) as client, pytest.raises(RuntimeError, match="SessionGuardMiddleware"):
        client.get("/me")


# -- Flask ---------------------------------------------------------------------------


def test_flask_login_required_and_pages(guard: SessionGuard) -> None:
    app = flask_app.create_app(guard)
    client = app.test_client()
    assert client.get("/api/me").status_code == 401
    page = client.get("/")
    assert page.status_code == 200 and b'action="/login"' in page.data
    response = client.post("/login", data={"name": "Grace <i>"})
    assert response.status_code == 303
    me = client.get("/api/me")
    assert me.status_code == 200 and me.get_json()["user_id"] == "Grace <i>"
    home = client.get("/").get_data(as_text=True)
    assert "Hello, Grace &lt;i&gt;" in home and "<i>" not in home
    assert client.post("/logout").status_code == 303
    assert client.get("/api/me").status_code == 401


def test_flask_helpers_and_reason(guard: SessionGuard) -> None:
    from flask import g, render_template_string

    from sessionguard.integrations.flask import current_session, session_context

    app = flask_app.create_app(guard)

    @app.get("/probe")
    def probe() -> Any:
        assert g.sessionguard is session_context()
        rendered = render_template_string("{{ current_session.user_id if current_session else '-' }}")
        session = current_session()
        return {"template": rendered, "user": None if session is None else session.user_id}

    client = app.test_client()
    assert client.get("/probe").get_json() == {"template": "-", "user": None}
    client.post("/login", data={"name": "ada"})
    assert client.get("/probe").get_json() == {"template": "ada", "user": "ada"}
    revoke(guard, only_session_id(guard))
    assert "You were signed out by an administrator." in client.get("/").get_data(as_text=True)


def test_flask_extension_installs_once_and_async_views(guard: SessionGuard) -> None:
    from flask import Flask

    from sessionguard.integrations.flask import SessionGuardFlask, login_required

    app = Flask(__name__)
    ext = SessionGuardFlask(app, guard)
    with pytest.raises(RuntimeError, match="already installed"):
        ext.init_app(app, guard)

    @app.get("/async")
    @login_required
    async def view() -> str:
        return "ok"  # pragma: no cover - needs a session

    assert app.test_client().get("/async").status_code == 401


def test_flask_without_extension_is_a_clear_error() -> None:
    from flask import Flask

    from sessionguard.integrations.flask import current_session

    app = Flask(__name__)

    @app.get("/")
    def view() -> str:
        current_session()
        return "unreachable"  # pragma: no cover

    app.testing = True  # let the exception reach the test
    with pytest.raises(RuntimeError, match="SessionGuardFlask"):
        app.test_client().get("/")


# -- Django ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_wsgi() -> Iterator[Any]:
    """The example's ``wsgi.application`` (the real wrapping), with Django's
    settings configured from the example's one-file project."""
    import django
    from django.conf import settings

    project = importlib.import_module("django_app.app")
    if not settings.configured:
        settings.configure(**{name: getattr(project, name) for name in dir(project) if name.isupper()})
        django.setup()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SESSIONGUARD_SECRET_KEY", SECRET)
        env.setenv("SESSIONGUARD_COOKIE_SECURE", "false")
        env.setenv("SESSIONGUARD_STORE_URL", "memory://")
        sys.modules.pop("django_app.wsgi", None)
        wsgi = importlib.import_module("django_app.wsgi")
    yield wsgi
    wsgi.guard.store.close()


def test_django_wsgi_login_view_logout(django_wsgi: Any) -> None:
    from werkzeug.test import Client

    client = Client(django_wsgi.application)
    anonymous = client.get("/")
    assert anonymous.status_code == 200 and 'action="/login"' in anonymous.text
    response = client.post("/login", data={"name": "Linus <s>"})
    assert response.status_code == 303 and "sg_session=" in response.headers["set-cookie"]
    home = client.get("/")
    assert "Hello, Linus &lt;s&gt;" in home.text and home.headers["cache-control"] == "no-store"
    session_id = django_wsgi.guard.store.list_sessions(
        user_id="Linus <s>", platform=None, limit=1, cursor=None
    ).items[0].id
    assert session_id in home.text
    assert client.post("/logout").status_code == 303
    assert 'action="/login"' in client.get("/").text
    revoked_client = Client(django_wsgi.application)
    revoked_client.post("/login", data={"name": "ken"})
    revoke(django_wsgi.guard, django_wsgi.guard.store.list_sessions(
        user_id="ken", platform=None, limit=1, cursor=None).items[0].id)
    assert "You were signed out by an administrator." in revoked_client.get("/").text


def test_django_request_sessionguard_with_test_client(django_wsgi: Any) -> None:
    """Django's own test client calls Django's handler, not the WSGI callable:
    the context sessionguard made for a real request, handed to it in the
    environ, is what views see as ``request.sessionguard``; without one the
    middleware says how to wire sessionguard."""
    from django.core.exceptions import ImproperlyConfigured
    from django.test import Client as DjangoClient
    from werkzeug.test import Client

    guard = django_wsgi.guard
    browser = Client(django_wsgi.application)
    browser.post("/login", data={"name": "ada"})
    cookie = browser.get_cookie("sg_session")
    assert cookie is not None
    seen: list[SessionContext] = []

    def capture(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["sessionguard"])
        start_response("204 No Content", [])
        return []

    Client(guard.wsgi(capture), use_cookies=False).get("/", headers={"Cookie": f"sg_session={cookie.value}"})
    assert seen[0].session is not None
    page = DjangoClient().get("/", sessionguard=seen[0])
    assert page.status_code == 200 and "Hello, ada" in page.content.decode()
    with pytest.raises(ImproperlyConfigured, match="guard.wsgi"):
        DjangoClient().get("/")
