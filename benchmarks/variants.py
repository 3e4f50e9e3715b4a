"""The apps under test: one tiny app per variant, each with ``GET /login``
(establishes a session for user ``ada``) and ``GET /whoami`` (reads it and
answers the user id, or ``anonymous``).

ASGI (Starlette): ``starlette`` (bare), ``starlette-signed`` (Starlette's
``SessionMiddleware``: signed cookie, no server state), ``starsessions-redis``,
``sessionguard-memory``, ``sessionguard-redis`` and ``sessionguard-cached``
(Redis with ``LOCAL_CACHE=1s``, in-process only).

WSGI (Flask): ``flask`` (bare), ``flask-signed`` (Flask's own signed-cookie
session), ``flask-session-redis`` (Flask-Session), ``sessionguard-memory``,
``sessionguard-redis`` and ``sessionguard-cached``.

Peers run with their documented defaults plus a one-hour sliding lifetime,
the same as sessionguard's default idle timeout. For the HTTP mode,
:func:`asgi_from_env` and :func:`wsgi_from_env` build one variant named by
``BENCH_VARIANT`` (and ``BENCH_REDIS_URL``) inside a uvicorn or gunicorn worker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

USER = "ada"
SECRET = "benchmark-secret-key-of-at-least-32-characters"
METADATA = {"name": "Ada Lovelace", "roles": ["staff"]}
LIFETIME = 3600
#: Key prefixes in the private Redis, one per library.
SG_PREFIX, STARSESSIONS_PREFIX, FLASK_SESSION_PREFIX = "sgbench", "ssbench:", "fsbench:"


@dataclass(frozen=True)
class Variant:
    """One app to measure. ``role`` is ``bare``, ``peer`` or ``sessionguard``."""

    name: str
    kind: str  # "asgi" or "wsgi"
    role: str
    redis: bool
    build: Callable[[str | None], Any]  # redis URL (or None) -> ASGI/WSGI app
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def sessionguard_on_redis(self) -> bool:
        """Whether this is a sessionguard variant on its Redis store (skipped when
        the sessionguard under test has none)."""
        return self.role == "sessionguard" and self.redis


# --------------------------------------------------------------------------
# ASGI (Starlette)
# --------------------------------------------------------------------------


def _starlette(login: Callable[..., Any], whoami: Callable[..., Any], middleware: Any = ()) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/login", login), Route("/whoami", whoami)], middleware=list(middleware))


def bare_starlette(_: str | None = None) -> Any:
    from starlette.responses import PlainTextResponse

    async def login(request: Any) -> Any:
        return PlainTextResponse("ok")

    async def whoami(request: Any) -> Any:
        # reads the scope as the session variants' routes do, so "added" is the middleware's cost
        return PlainTextResponse("anonymous" if request.scope.get("sessionguard") is None else "?")

    return _starlette(login, whoami)


def starlette_signed(_: str | None = None) -> Any:
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse

    async def login(request: Any) -> Any:
        request.session["user"] = USER
        return PlainTextResponse("ok")

    async def whoami(request: Any) -> Any:
        return PlainTextResponse(request.session.get("user") or "anonymous")

    return _starlette(login, whoami, [Middleware(SessionMiddleware, secret_key=SECRET, max_age=LIFETIME)])


def starsessions_redis(redis_url: str | None) -> Any:
    import redis.asyncio
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starsessions import SessionMiddleware, load_session, regenerate_session_id
    from starsessions.stores.redis import RedisStore

    assert redis_url is not None
    store = RedisStore(connection=redis.asyncio.Redis.from_url(redis_url), prefix=STARSESSIONS_PREFIX)

    async def login(request: Any) -> Any:
        await load_session(request)
        regenerate_session_id(request)
        request.session["user"] = USER
        return PlainTextResponse("ok")

    async def whoami(request: Any) -> Any:
        await load_session(request)
        return PlainTextResponse(request.session.get("user") or "anonymous")

    middleware = Middleware(SessionMiddleware, store=store, lifetime=LIFETIME, rolling=True)
    return _starlette(login, whoami, [middleware])


def guard(store_url: str, clock: Callable[[], float] | None = None, **settings: Any) -> Any:
    """A :class:`~sessionguard.SessionGuard` with the benchmark's settings."""
    from sessionguard import Config, SessionGuard

    logging.getLogger("sessionguard").setLevel(logging.ERROR)  # the memory:// start-up warning
    if "BENCH_STORE_SPIN" in os.environ:  # e.g. BENCH_STORE_SPIN=off: the lanes never poll
        settings.setdefault("store_spin", os.environ["BENCH_STORE_SPIN"])
    config = Config(secret_key=SECRET, store_url=store_url, key_prefix=SG_PREFIX, **settings)
    return SessionGuard(config, clock=clock)


def sessionguard_asgi(store_url: str, **settings: Any) -> Any:
    from starlette.responses import PlainTextResponse

    async def login(request: Any) -> Any:
        await request.scope["sessionguard"].login(USER, metadata=METADATA)
        return PlainTextResponse("ok")

    async def whoami(request: Any) -> Any:
        ctx = request.scope.get("sessionguard")  # None: the same app run unwrapped (see unwrapped)
        session = ctx.session if ctx is not None else None
        return PlainTextResponse(session.user_id if session is not None else "anonymous")

    return guard(store_url, **settings).asgi(_starlette(login, whoami))


# --------------------------------------------------------------------------
# WSGI (Flask)
# --------------------------------------------------------------------------


def _flask(name: str) -> Any:
    from flask import Flask

    app = Flask(name)
    app.config["SECRET_KEY"] = SECRET
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=LIFETIME)
    return app


def bare_flask(_: str | None = None) -> Any:
    from flask import request

    def whoami() -> str:
        # reads the environ through Flask's request proxy, as sessionguard's route does
        return "anonymous" if request.environ.get("sessionguard") is None else "?"

    app = _flask("bare")
    app.add_url_rule("/login", "login", lambda: "ok")
    app.add_url_rule("/whoami", "whoami", whoami)
    return app


def _flask_session_routes(app: Any) -> Any:
    from flask import session

    def login() -> str:
        session.clear()
        session.permanent = True
        session["user"] = USER
        return "ok"

    def whoami() -> str:
        return str(session.get("user") or "anonymous")

    app.add_url_rule("/login", "login", login)
    app.add_url_rule("/whoami", "whoami", whoami)
    return app


def flask_signed(_: str | None = None) -> Any:
    return _flask_session_routes(_flask("signed"))


def flask_session_redis(redis_url: str | None) -> Any:
    import redis
    from flask_session import Session

    assert redis_url is not None
    app = _flask("flask_session")
    app.config.update(
        SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(redis_url),
        SESSION_KEY_PREFIX=FLASK_SESSION_PREFIX,
    )
    Session(app)
    return _flask_session_routes(app)


def sessionguard_wsgi(store_url: str, **settings: Any) -> Any:
    from flask import request

    app = _flask("sessionguard")

    def login() -> str:
        request.environ["sessionguard"].login(USER, metadata=METADATA)
        return "ok"

    def whoami() -> str:
        ctx = request.environ.get("sessionguard")  # None: the same app run unwrapped (see unwrapped)
        session = ctx.session if ctx is not None else None
        return session.user_id if session is not None else "anonymous"

    app.add_url_rule("/login", "login", login)
    app.add_url_rule("/whoami", "whoami", whoami)
    app.wsgi_app = guard(store_url, **settings).wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app


def unwrapped(kind: str, app: Any) -> tuple[Any, Any]:
    """A sessionguard variant's app as (wrapped, the very same inner app without
    sessionguard): timed back to back, their difference is sessionguard's own cost
    with nothing else different (not even another app instance)."""
    if kind == "asgi":
        return app, app.app  # SessionGuardMiddleware.app
    return app.wsgi_app, app.wsgi_app.__wrapped__  # guard.wsgi around Flask's own wsgi_app


# --------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------


def _sg_memory(kind: str) -> Callable[[str | None], Any]:
    shell = sessionguard_asgi if kind == "asgi" else sessionguard_wsgi
    return lambda _url: shell("memory://")


def _sg_redis(kind: str, **settings: Any) -> Callable[[str | None], Any]:
    shell = sessionguard_asgi if kind == "asgi" else sessionguard_wsgi

    def build(url: str | None) -> Any:
        assert url is not None
        return shell(url, **settings)

    return build


VARIANTS: tuple[Variant, ...] = (
    Variant("starlette", "asgi", "bare", False, bare_starlette, "Starlette (bare)"),
    Variant("starlette-signed", "asgi", "peer", False, starlette_signed, "Starlette SessionMiddleware"),
    Variant("starsessions-redis", "asgi", "peer", True, starsessions_redis, "starsessions + Redis"),
    Variant("sessionguard-memory", "asgi", "sessionguard", False, _sg_memory("asgi"),
            "sessionguard memory://"),
    Variant("sessionguard-redis", "asgi", "sessionguard", True, _sg_redis("asgi"), "sessionguard redis://"),
    Variant("sessionguard-cached", "asgi", "sessionguard", True, _sg_redis("asgi", local_cache="1s"),
            "sessionguard redis:// LOCAL_CACHE=1s"),
    Variant("flask", "wsgi", "bare", False, bare_flask, "Flask (bare)"),
    Variant("flask-signed", "wsgi", "peer", False, flask_signed, "Flask signed cookie"),
    Variant("flask-session-redis", "wsgi", "peer", True, flask_session_redis, "Flask-Session + Redis"),
    Variant("sessionguard-memory", "wsgi", "sessionguard", False, _sg_memory("wsgi"),
            "sessionguard memory://"),
    Variant("sessionguard-redis", "wsgi", "sessionguard", True, _sg_redis("wsgi"), "sessionguard redis://"),
    Variant("sessionguard-cached", "wsgi", "sessionguard", True, _sg_redis("wsgi", local_cache="1s"),
            "sessionguard redis:// LOCAL_CACHE=1s"),
)  # fmt: skip

#: The peer whose added cost sessionguard's is compared with, per kind (the issue's targets).
TARGET_PEER = {"asgi": "starsessions-redis", "wsgi": "flask-session-redis"}
#: The stateless signed cookie that ``LOCAL_CACHE`` is compared with, per kind.
SIGNED_PEER = {"asgi": "starlette-signed", "wsgi": "flask-signed"}


def variant(kind: str, name: str) -> Variant:
    for v in VARIANTS:
        if v.kind == kind and v.name == name:
            return v
    raise KeyError(f"no {kind} variant named {name!r}")


def asgi_from_env() -> Any:
    """The ASGI app ``BENCH_VARIANT`` names (``uvicorn --factory variants:asgi_from_env``)."""
    return variant("asgi", os.environ["BENCH_VARIANT"]).build(os.environ.get("BENCH_REDIS_URL"))


def wsgi_from_env() -> Any:
    """The WSGI app ``BENCH_VARIANT`` names (``gunicorn 'variants:wsgi_from_env()'``)."""
    return variant("wsgi", os.environ["BENCH_VARIANT"]).build(os.environ.get("BENCH_REDIS_URL"))
