"""A store that fails while the app itself calls it (``login()`` / ``logout()``
and the request object's other calls, the guard's API or ``guard.store``,
inside a view, async or sync) answers ``503`` with ``Retry-After``, never the
framework's ``500``, in every wiring the README shows; and the connection
stays usable.

Real faults: a private Redis stopped before a login without a cookie (the
check has nothing to refuse, so ``login()`` itself meets the outage), and
stopped inside the view, after the check passed, just before ``logout()``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import SECRET
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard, SessionGuardMiddleware

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = "http://testserver"

Stop = Callable[[], None]


#: the app's own store calls a view makes (``/own/{name}``): the guard's API, the store itself
OWN_CALLS = ["end_user", "sessions", "store"]


async def own_call(guard: SessionGuard, name: str) -> None:
    if name == "end_user":
        await guard.aend_user("nobody")
    elif name == "sessions":
        await guard.asessions(user_id="ada")
    else:
        guard.store.user_sessions("ada")


def own_call_sync(guard: SessionGuard, name: str) -> None:
    if name == "end_user":
        guard.end_user("nobody")
    elif name == "sessions":
        guard.sessions(user_id="ada")
    else:
        guard.store.user_sessions("ada")


def starlette_routes(stop: Stop, guard: SessionGuard) -> list[Route]:
    async def login(request: Request) -> Response:
        session = await request.scope["sessionguard"].login("ada")
        return JSONResponse({"user": session.user_id})

    async def logout(request: Request) -> Response:
        if request.query_params.get("stop"):
            stop()
        await request.scope["sessionguard"].logout()
        return JSONResponse({"ok": True})

    async def act(request: Request) -> Response:  # end_others(), recheck(), rotate()
        if request.query_params.get("stop"):
            stop()
        await getattr(request.scope["sessionguard"], request.path_params["name"])()
        return JSONResponse({"ok": True})

    async def own(request: Request) -> Response:  # the guard's API, the store
        if request.query_params.get("stop"):
            stop()
        await own_call(guard, request.path_params["name"])
        return JSONResponse({"ok": True})

    def own_sync(request: Request) -> Response:  # the same in a sync view (a worker thread)
        if request.query_params.get("stop"):
            stop()
        own_call_sync(guard, request.path_params["name"])
        return JSONResponse({"ok": True})

    return [Route("/login", login, methods=["POST"]), Route("/logout", logout, methods=["POST"]),
            Route("/ctx/{name}", act, methods=["POST"]), Route("/own/{name}", own, methods=["POST"]),
            Route("/own-sync/{name}", own_sync, methods=["POST"])]


def fastapi_routes(app: FastAPI, stop: Stop, guard: SessionGuard) -> FastAPI:
    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        session = await request.scope["sessionguard"].login("ada")
        return {"user": session.user_id}

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        if request.query_params.get("stop"):
            stop()
        await request.scope["sessionguard"].logout()
        return {"ok": True}

    @app.post("/ctx/{name}")
    async def act(request: Request, name: str) -> dict[str, bool]:  # end_others(), recheck(), rotate()
        if request.query_params.get("stop"):
            stop()
        await getattr(request.scope["sessionguard"], name)()
        return {"ok": True}

    @app.post("/own/{name}")
    async def own(request: Request, name: str) -> dict[str, bool]:
        if request.query_params.get("stop"):
            stop()
        await own_call(guard, name)
        return {"ok": True}

    @app.post("/own-sync/{name}")
    def own_sync(request: Request, name: str) -> dict[str, bool]:  # a worker thread
        if request.query_params.get("stop"):
            stop()
        own_call_sync(guard, name)
        return {"ok": True}

    return app


def flask_routes(stop: Stop, guard: SessionGuard) -> Flask:
    app = Flask(__name__)  # not testing: Flask's own handler answers 500 for an exception

    @app.post("/login")
    def login() -> Any:
        return {"user": flask_request.environ["sessionguard"].login("ada").user_id}

    @app.post("/logout")
    def logout() -> Any:
        if flask_request.args.get("stop"):
            stop()
        flask_request.environ["sessionguard"].logout()
        return {"ok": True}

    @app.post("/ctx/<name>")
    def act(name: str) -> Any:  # end_others(), recheck(), rotate()
        if flask_request.args.get("stop"):
            stop()
        getattr(flask_request.environ["sessionguard"], name)()
        return {"ok": True}

    @app.post("/own/<name>")
    @app.post("/own-sync/<name>")
    def own(name: str) -> Any:  # the guard's API, the store
        if flask_request.args.get("stop"):
            stop()
        own_call_sync(guard, name)
        return {"ok": True}

    return app


def outer_starlette(guard: SessionGuard, stop: Stop) -> Any:
    return guard.asgi(Starlette(routes=starlette_routes(stop, guard)))


def outer_fastapi(guard: SessionGuard, stop: Stop) -> Any:
    return guard.asgi(fastapi_routes(FastAPI(), stop, guard))


def inner_starlette(guard: SessionGuard, stop: Stop) -> Any:
    middleware = [Middleware(SessionGuardMiddleware, guard=guard)]
    return Starlette(routes=starlette_routes(stop, guard), middleware=middleware)


def inner_fastapi(guard: SessionGuard, stop: Stop) -> Any:
    app = fastapi_routes(FastAPI(), stop, guard)
    app.add_middleware(SessionGuardMiddleware, guard=guard)
    return app


def flask_wsgi_app(guard: SessionGuard, stop: Stop) -> Any:
    app = flask_routes(stop, guard)
    app.wsgi_app = guard.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app


def flask_extension(guard: SessionGuard, stop: Stop) -> Any:
    from sessionguard.integrations.flask import SessionGuardFlask

    app = flask_routes(stop, guard)
    SessionGuardFlask(app, guard)
    return app


WIRINGS = [
    pytest.param(outer_starlette, "asgi", id="guard.asgi(Starlette)"),
    pytest.param(outer_fastapi, "asgi", id="guard.asgi(FastAPI)"),
    pytest.param(inner_starlette, "asgi", id="Middleware(SessionGuardMiddleware)"),
    pytest.param(inner_fastapi, "asgi", id="app.add_middleware"),
    pytest.param(flask_wsgi_app, "wsgi", id="guard.wsgi(flask.wsgi_app)"),
    pytest.param(flask_extension, "wsgi", id="SessionGuardFlask"),
]


def client(kind: str, app: Any) -> httpx.Client:
    if kind == "asgi":
        # raise_server_exceptions=False: the status a real server would send
        return TestClient(app, base_url=BASE, raise_server_exceptions=False)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "store_unavailable"


def guard_on(server: RedisServer, **settings: Any) -> SessionGuard:
    return SessionGuard(Config(secret_key=SECRET, store_url=server.url, cookie_secure=False,
                               store_timeout=0.3, **settings))


@pytest.mark.redis
@pytest.mark.parametrize("unavailable", ["503", "anonymous"])
@pytest.mark.parametrize(("wiring", "kind"), WIRINGS)
def test_login_and_logout_meeting_a_stopped_redis_answer_503(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str, unavailable: str, private_redis: RedisServer
) -> None:
    guard = guard_on(private_redis, store_unavailable=unavailable)
    app = wiring(guard, private_redis.stop)
    with client(kind, app) as browser:
        assert browser.post("/login").json() == {"user": "ada"}
        # the check passes, then Redis stops inside the view: logout() meets the outage
        assert_unavailable(browser.post("/logout?stop=1"))
        # a login without a cookie: no check to refuse it, login() itself meets the outage
        browser.cookies.clear()
        assert_unavailable(browser.post("/login"))
        private_redis.start()
        assert browser.post("/login").json() == {"user": "ada"}  # the same client works again
    guard.store.close()


@pytest.mark.redis
@pytest.mark.parametrize(("wiring", "kind"), WIRINGS)
def test_a_process_first_login_meeting_a_stopped_redis_answers_503(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str, private_redis: RedisServer
) -> None:
    # the process has never read the shared state: the login's slot tag needs it (issue 16 item 6)
    guard = guard_on(private_redis)
    private_redis.stop()
    with client(kind, wiring(guard, private_redis.stop)) as browser:
        assert_unavailable(browser.post("/login"))
        private_redis.start()
        assert browser.post("/login").json() == {"user": "ada"}
    guard.store.close()


# -- Django ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_project() -> Any:
    """The example's one-file project as Django's settings (once per process)."""
    import django
    from django.conf import settings

    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    project = importlib.import_module("django_app.app")
    if not settings.configured:
        settings.configure(**{name: getattr(project, name) for name in dir(project) if name.isupper()})
        django.setup()
    return project


@pytest.fixture
def stop_on_next_request(private_redis: RedisServer) -> Iterator[Callable[[], None]]:
    """Arm: the next Django request stops Redis once it has passed the check
    (``request_started`` fires inside Django, after sessionguard's check)."""
    from django.core.signals import request_started

    armed: list[bool] = []

    def stop(**_: Any) -> None:
        if armed:
            armed.clear()
            private_redis.stop()

    request_started.connect(stop)
    yield lambda: armed.append(True)
    request_started.disconnect(stop)


@pytest.mark.redis
def test_django_login_and_logout_meeting_a_stopped_redis_answer_503(
    django_project: Any, private_redis: RedisServer, stop_on_next_request: Callable[[], None]
) -> None:
    from django.core.wsgi import get_wsgi_application

    guard = guard_on(private_redis)
    with client("wsgi", guard.wsgi(get_wsgi_application())) as browser:
        assert browser.post("/login", data={"name": "ada"}).status_code == 303
        stop_on_next_request()
        assert_unavailable(browser.post("/logout"))
        browser.cookies.clear()
        assert_unavailable(browser.post("/login", data={"name": "ada"}))
        private_redis.start()
        assert browser.post("/login", data={"name": "ada"}).status_code == 303
    guard.store.close()


# -- a store call the app makes itself ---------------------------------------------------------


@pytest.mark.redis
def test_flask_extension_answers_503_for_the_apps_own_store_call(private_redis: RedisServer) -> None:
    from sessionguard.integrations.flask import SessionGuardFlask

    guard = guard_on(private_redis)
    app = Flask(__name__)
    SessionGuardFlask(app, guard)

    @app.get("/mine")
    def mine() -> Any:
        return {"sessions": len(guard.store.user_sessions("ada"))}

    with client("wsgi", app) as browser:
        assert browser.get("/mine").json() == {"sessions": 0}
        private_redis.stop()
        assert_unavailable(browser.get("/mine"))
    guard.store.close()


@pytest.mark.redis
def test_django_middleware_answers_503_for_the_apps_own_store_call(
    django_project: Any, private_redis: RedisServer
) -> None:
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.test import override_settings
    from django.urls import path

    guard = guard_on(private_redis)

    def mine(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"sessions": len(guard.store.user_sessions("ada"))})

    class urls:  # noqa: N801 - a URLconf (Django reads its urlpatterns)
        urlpatterns = [path("mine", mine)]

    with override_settings(ROOT_URLCONF=urls), client("wsgi", guard.wsgi(get_wsgi_application())) as browser:
        assert browser.get("/mine").json() == {"sessions": 0}
        private_redis.stop()
        assert_unavailable(browser.get("/mine"))
    guard.store.close()


@pytest.mark.redis
def test_uvicorn_keeps_the_connection_after_the_503(private_redis: RedisServer) -> None:
    import http.client

    from live_server import LiveServer

    guard = guard_on(private_redis)
    with LiveServer(outer_starlette(guard, private_redis.stop), guard) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        private_redis.stop()
        connection.request("POST", "/login")
        response = connection.getresponse()
        assert (response.status, response.getheader("retry-after")) == (503, "1")
        response.read()
        sock = connection.sock
        private_redis.start()
        connection.request("POST", "/login")  # on the same connection: uvicorn kept it open
        assert connection.getresponse().status == 200 and connection.sock is sock
        connection.close()
    guard.store.close()


# -- a command the Redis user may not run (ACL) -------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize(("wiring", "kind"), WIRINGS)
def test_a_refused_command_is_a_503_with_one_log_line_naming_it(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str, private_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The categories an operator may well pick, which leave out TIME (the
    # scripts read the server's clock): every script is refused.
    private_redis.command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@read", "+@write",
                          "+@scripting", "+@pubsub", "+@connection")
    url = f"redis://app:app-password@127.0.0.1:{private_redis.port}/0"
    guard = SessionGuard(Config(secret_key=SECRET, store_url=url, cookie_secure=False))
    with client(kind, wiring(guard, private_redis.stop)) as browser:
        caplog.clear()
        assert_unavailable(browser.post("/login"))
        [line] = [r.getMessage() for r in caplog.records if r.name == "sessionguard"]
        # a process's first login reads the shared state first (its tag key), which a
        # fresh Redis makes with the server's TIME
        assert "refused" in line and "TIME in the state function" in line, line
        assert "app-password" not in line
    guard.store.close()


@pytest.mark.redis
@pytest.mark.parametrize(("wiring", "kind"), [WIRINGS[0], WIRINGS[4]])
def test_noreplicas_is_a_503_with_one_log_line(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str,
    private_redis_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture,
) -> None:
    # a primary told to accept writes only with a replica in sync, and none has
    server = private_redis_factory("--min-replicas-to-write", "1")
    guard = guard_on(server)
    with client(kind, wiring(guard, server.stop)) as browser:
        caplog.clear()
        assert_unavailable(browser.post("/login"))
        [line] = [r.getMessage() for r in caplog.records if r.name == "sessionguard"]
        assert "refused" in line and "NOREPLICAS" in line, line
    guard.store.close()


@pytest.mark.redis
def test_django_asgi_login_meeting_a_stopped_redis_answers_503(
    django_project: Any, private_redis: RedisServer
) -> None:
    import asyncio

    from django.core.asgi import get_asgi_application
    from django.http import HttpRequest, JsonResponse
    from django.test import override_settings
    from django.urls import path

    guard = guard_on(private_redis)

    async def login(request: HttpRequest) -> JsonResponse:
        session = await request.sessionguard.login("ada")  # type: ignore[attr-defined]
        return JsonResponse({"user": session.user_id})

    class urls:  # noqa: N801 - a URLconf (Django reads its urlpatterns)
        urlpatterns = [path("login", login)]

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard.asgi(get_asgi_application()))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as browser:
            return await browser.post("/login")

    with override_settings(ROOT_URLCONF=urls):
        assert asyncio.run(post()).json() == {"user": "ada"}
        private_redis.stop()
        assert_unavailable(asyncio.run(post()))
    guard.store.close()


# -- the request object's other store calls ------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("call", ["end_others", "recheck", "rotate"])
@pytest.mark.parametrize(("wiring", "kind"), WIRINGS)
def test_the_contexts_other_store_calls_meeting_a_stopped_redis_answer_503(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str, call: str, private_redis: RedisServer
) -> None:
    guard = guard_on(private_redis)
    with client(kind, wiring(guard, private_redis.stop)) as browser:
        assert browser.post("/login").json() == {"user": "ada"}
        assert browser.post(f"/ctx/{call}").json() == {"ok": True}
        assert_unavailable(browser.post(f"/ctx/{call}?stop=1"))  # stopped inside the view
        private_redis.start()
    guard.store.close()


# -- the app's own store calls, through the guard's API or the store ------------------------


@pytest.mark.redis
@pytest.mark.parametrize("call", OWN_CALLS)
@pytest.mark.parametrize(("wiring", "kind"), WIRINGS)
def test_the_apps_own_store_calls_meeting_a_stopped_redis_answer_503(
    wiring: Callable[[SessionGuard, Stop], Any], kind: str, call: str, private_redis: RedisServer
) -> None:
    # guard.aend_user(), guard.asessions(), guard.store inside a view: the framework's error
    # handler answers 500 for the exception; the shell sends the store's 503 in its place
    guard = guard_on(private_redis)
    with client(kind, wiring(guard, private_redis.stop)) as browser:
        assert browser.post("/login").json() == {"user": "ada"}
        assert browser.post(f"/own/{call}").json() == {"ok": True}
        assert_unavailable(browser.post(f"/own/{call}?stop=1"))  # stopped inside the view
        browser.cookies.clear()  # and without a session (no check before the view)
        assert_unavailable(browser.post(f"/own/{call}"))
        private_redis.start()
        # a sync view, which Starlette and FastAPI run in a worker thread
        assert browser.post(f"/own-sync/{call}").json() == {"ok": True}
        assert_unavailable(browser.post(f"/own-sync/{call}?stop=1"))
    guard.store.close()


@pytest.mark.redis
def test_a_raw_asgi_apps_own_store_call_meeting_a_stopped_redis_answers_503(
    private_redis: RedisServer,
) -> None:
    guard = guard_on(private_redis)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await guard.aend_user("ada")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with client("asgi", guard.asgi(app)) as browser:
        assert browser.get("/").text == "ok"
        private_redis.stop()
        assert_unavailable(browser.get("/"))
    guard.store.close()


@pytest.mark.redis
@pytest.mark.parametrize("middleware", [True, False], ids=["with-middleware", "without-middleware"])
def test_django_apps_own_store_calls_meeting_a_stopped_redis_answer_503(
    django_project: Any, private_redis: RedisServer, middleware: bool
) -> None:
    import asyncio

    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.test import override_settings
    from django.urls import path

    guard = guard_on(private_redis)

    def ended(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"ended": guard.end_user("nobody")})

    async def aended(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"ended": await guard.aend_user("nobody")})

    class urls:  # noqa: N801 - a URLconf (Django reads its urlpatterns)
        urlpatterns = [path("ended", ended), path("aended", aended)]

    async def get(url: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=guard.asgi(get_asgi_application()))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as browser:
            return await browser.get(url)

    stack = [m for m in settings.MIDDLEWARE if middleware or not m.startswith("sessionguard")]
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=stack):
        with client("wsgi", guard.wsgi(get_wsgi_application())) as browser:
            assert browser.get("/ended").json() == {"ended": 0}
            private_redis.stop()
            assert_unavailable(browser.get("/ended"))
        private_redis.start()
        for url in ("/ended", "/aended"):  # a sync view (a worker thread) and an async one
            assert asyncio.run(get(url)).json() == {"ended": 0}
            private_redis.stop()
            assert_unavailable(asyncio.run(get(url)))
            private_redis.start()
    guard.store.close()
