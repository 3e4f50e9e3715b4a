"""What the fault tests drive: the five wirings the README shows, each with the
same three routes, and a load of clients that log in, use and log out their
sessions while a test breaks Redis, recording every answer.

Routes: ``POST /login`` (``{"user": ...}``; the request carries no cookie, so
the app's own ``login()`` is what meets the store), ``GET /me`` (``401``
without a valid session) and ``POST /logout``. Clients use the bearer token
and never keep a cookie.

ASGI apps are driven on one event loop with concurrent tasks (as uvicorn
serves one worker: the async store's lane pipelines their checks); WSGI apps
from threads, each with its own client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessionguard import SessionGuard, SessionGuardMiddleware
from sessionguard.integrations import fastapi as sg_fastapi
from sessionguard.integrations import flask as sg_flask

BASE_URL = "https://testserver"
WIRINGS = ["starlette", "fastapi", "middleware", "flask-wsgi", "flask-ext"]
ASGI_WIRINGS = {"starlette", "fastapi", "middleware"}


def _starlette_routes() -> list[Route]:
    async def login(request: Request) -> Response:
        session = await request.scope["sessionguard"].login((await request.json())["user"])
        return JSONResponse({"token": session.token})

    async def me(request: Request) -> Response:
        session = request.scope["sessionguard"].session
        if session is None:
            return JSONResponse({"ended_reason": request.scope["sessionguard"].ended_reason}, 401)
        return JSONResponse({"user": session.user_id})

    async def logout(request: Request) -> Response:
        await request.scope["sessionguard"].logout()
        return JSONResponse({"ok": True})

    return [Route("/login", login, methods=["POST"]), Route("/me", me),
            Route("/logout", logout, methods=["POST"])]


def _fastapi() -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(request: FastAPIRequest) -> dict[str, str]:
        session = await sg_fastapi.login(request, (await request.json())["user"])
        return {"token": session.token}

    @app.get("/me")
    async def me(session: sg_fastapi.CurrentSession) -> dict[str, str]:
        return {"user": session.user_id}

    @app.post("/logout")
    async def logout(request: FastAPIRequest) -> dict[str, bool]:
        await sg_fastapi.logout(request)
        return {"ok": True}

    return app


def _flask(extension: bool) -> Flask:
    app = Flask(__name__)

    def ctx() -> Any:
        return flask_request.environ["sessionguard"]

    @app.post("/login")
    def login() -> Any:
        user = flask_request.get_json()["user"]
        session = sg_flask.login_user(user) if extension else ctx().login(user)
        return {"token": session.token}

    @app.get("/me")
    def me() -> Any:
        session = sg_flask.current_session() if extension else ctx().session
        if session is None:
            return {"ended_reason": ctx().ended_reason}, 401
        return {"user": session.user_id}

    @app.post("/logout")
    def logout() -> Any:
        sg_flask.logout_user() if extension else ctx().logout()
        return {"ok": True}

    return app


def wired_app(wiring: str, guard: SessionGuard) -> Any:
    """The app as the README wires it (``wiring`` in :data:`WIRINGS`)."""
    if wiring == "starlette":
        return guard.asgi(Starlette(routes=_starlette_routes()))
    if wiring == "fastapi":
        return guard.asgi(_fastapi())
    if wiring == "middleware":
        middleware = [Middleware(SessionGuardMiddleware, guard=guard)]
        return Starlette(routes=_starlette_routes(), middleware=middleware)
    app = _flask(extension=wiring == "flask-ext")
    if wiring == "flask-ext":
        sg_flask.SessionGuardFlask(app, guard)
    else:
        app.wsgi_app = guard.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app


# -- answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request: what, when (monotonic), and what came back."""

    kind: str  # "login", "me", "logout"
    began: float
    ended: float
    status: int
    token: str | None = None  # the session it concerned (a login's new one)

    @property
    def took(self) -> float:
        return self.ended - self.began


@dataclass
class Run:
    """Every answer of a run, in the order they ended (appended under a lock)."""

    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def statuses(self) -> set[int]:
        return {a.status for a in self.answers}

    def of(self, kind: str, status: int | None = None) -> list[Answer]:
        return [a for a in self.answers if a.kind == kind and (status is None or a.status == status)]

    def kept(self) -> list[str]:
        """Tokens whose login answered ``200`` and that were never sent to a
        logout: each must still be valid (nothing else ends a session here)."""
        out = {a.token for a in self.answers if a.kind == "logout"}
        return [a.token for a in self.of("login", 200) if a.token and a.token not in out]

    def ended(self) -> list[str]:
        """Tokens whose logout answered ``200``: each must stay ended."""
        return [a.token for a in self.of("logout", 200) if a.token]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- clients ------------------------------------------------------------------------------


class Cycle:
    """One client's cycle: log in (no cookie), use the session twice, then log
    out, or keep it (every ``keep``-th cycle): what to send next, given the
    last answer. A failed step starts the cycle again."""

    def __init__(self, user: str, keep: int) -> None:
        self.user, self.keep = user, keep
        self.token: str | None = None
        self.uses = self.cycles = 0

    def request(self) -> tuple[str, str, str, dict[str, Any]]:
        """``(kind, method, path, options)`` of the next request."""
        if self.token is None:
            return "login", "POST", "/login", {"json": {"user": self.user}}
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.uses < 2:
            return "me", "GET", "/me", {"headers": headers}
        return "logout", "POST", "/logout", {"headers": headers}

    def answered(self, kind: str, response: httpx.Response) -> str | None:
        """Take ``response`` to ``kind``; the token the request concerned."""
        concerned = self.token
        if kind == "login" and response.status_code == 200:
            self.token = concerned = str(response.json()["token"])
            self.uses = 0
        elif kind == "me" and response.status_code == 200:
            self.uses += 1
            if self.uses == 2:
                self.cycles += 1
                if self.cycles % self.keep == 0:
                    self.token = None  # kept: never logged out
        else:
            self.token = None
        return concerned


class Load:
    """``workers`` clients of ``app`` running :class:`Cycle` s, in threads (WSGI)
    or as tasks of one event loop (ASGI), until :meth:`stop`; every answer is
    in :attr:`record`."""

    def __init__(self, app: Any, asgi: bool, *, workers: int = 4, user: str = "load", keep: int = 3) -> None:
        self.record = Run()
        self._app, self._asgi, self._workers, self._user, self._keep = app, asgi, workers, user, keep
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        if self._asgi:
            self._threads = [threading.Thread(target=asyncio.run, args=(self._tasks(),))]
        else:
            self._threads = [threading.Thread(target=self._thread, args=(i,)) for i in range(self._workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> Run:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a load client did not stop"
        return self.record

    def _thread(self, index: int) -> None:
        cycle = Cycle(f"{self._user}-{index}", self._keep)
        transport = httpx.WSGITransport(app=self._app, raise_app_exceptions=False)
        with httpx.Client(transport=transport, base_url=BASE_URL) as client:
            while not self._stop.is_set():
                kind, method, path, options = cycle.request()
                began = time.monotonic()
                response = client.request(method, path, **options)
                client.cookies.clear()
                self._note(kind, began, response, cycle)

    async def _tasks(self) -> None:
        transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            await asyncio.gather(*(self._task(client, i) for i in range(self._workers)))

    async def _task(self, client: httpx.AsyncClient, index: int) -> None:
        cycle = Cycle(f"{self._user}-{index}", self._keep)
        while not self._stop.is_set():
            kind, method, path, options = cycle.request()
            began = time.monotonic()
            response = await client.request(method, path, **options)
            client.cookies.clear()
            self._note(kind, began, response, cycle)
            await asyncio.sleep(0)  # the other clients' turn, even when every answer is at hand

    def _note(self, kind: str, began: float, response: httpx.Response, cycle: Cycle) -> None:
        token = cycle.answered(kind, response)
        self.record.add(Answer(kind, began, time.monotonic(), response.status_code, token))


def statuses_of(app: Any, asgi: bool, tokens: list[str]) -> dict[str, int]:
    """``GET /me`` (passive) with each token through ``app``: its status."""
    headers = {"X-Session-Passive": "1"}
    if asgi:
        async def run() -> dict[str, int]:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                return {t: (await client.get("/me", headers={**headers, **_bearer(t)})).status_code
                        for t in tokens}
        return asyncio.run(run())
    transport = httpx.WSGITransport(app=app, raise_app_exceptions=False)
    with httpx.Client(transport=transport, base_url=BASE_URL) as client:
        return {t: client.get("/me", headers={**headers, **_bearer(t)}).status_code for t in tokens}
