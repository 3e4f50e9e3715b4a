"""The WSGI shell: the same steps as :mod:`sessionguard.asgi`, with plain calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from .admin import AdminWSGI
from .context import SessionContext
from .core import Outcome
from .errors import StoreUnavailable
from .guard import Refusal, SessionGuard, logger
from .incoming import client_ip
from .stores.base import Check

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIMiddleware:
    """Enforce session policy on a WSGI app: ``app.wsgi_app = guard.wsgi(app.wsgi_app)``."""

    def __init__(self, app: WSGIApp, guard: SessionGuard) -> None:
        self.app = app
        self.guard = guard
        #: the admin sub-app, served under ``ADMIN_PATH`` (``None``: off)
        prefix = guard.config.admin_path
        self.admin: WSGIApp | None = None if prefix is None else AdminWSGI(guard, prefix=prefix)
        self._admin_prefix = prefix or ""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        guard = self.guard
        cookie, authorization = environ.get("HTTP_COOKIE"), environ.get("HTTP_AUTHORIZATION")
        if authorization is None and (cookie is None or guard.cookie_name not in cookie):
            # No Authorization header and no cookie of our name: the common
            # anonymous request, no token, no store call, nothing to decide.
            ctx = environ["sessionguard"] = _WSGIContext._of(guard, environ, start_response)
        else:
            decided = self._decide(environ, cookie, authorization, start_response)
            if isinstance(decided, Refusal):
                return _refuse(decided, start_response)
            ctx = environ["sessionguard"] = decided
        app, admin = self.app, self.admin
        if admin is not None:
            path = environ.get("PATH_INFO", "")
            if self._admin_prefix in path and guard.admin_serves(path):  # the cheap test first
                app = admin
        try:
            return app(environ, ctx._start_response)
        except StoreUnavailable:
            # A login or logout inside the app could not reach the store.
            if ctx._started:
                raise
            return _refuse(guard.unavailable, start_response)

    def _decide(self, environ: dict[str, Any], cookie: str | None, authorization: str | None,
                start_response: StartResponse) -> _WSGIContext | Refusal:
        """The context of a request that presents a token, or its refusal."""
        guard = self.guard
        presented = guard.presented(cookie, authorization)
        check = None
        if presented.session_id is not None:
            passive = guard.is_passive(environ.get("PATH_INFO", ""), environ.get("HTTP_X_SESSION_PASSIVE"))
            try:
                check = guard.store.check(presented.session_id, passive=passive)
            except StoreUnavailable:
                check = Check(Outcome.STORE_UNAVAILABLE)
        verdict = guard.verdict(presented, check)
        if verdict.events:
            try:
                guard.record(verdict.events)
            except StoreUnavailable:
                logger.warning("sessionguard: audit event not recorded (store unavailable)")
        if verdict.refusal is not None:
            return verdict.refusal
        return _WSGIContext._of(guard, environ, start_response, verdict.session,
                                verdict.ended_reason, presented.source, verdict.set_cookie)


class _WSGIContext(SessionContext):
    """The context of one WSGI request; its ``_start_response`` is the one the
    app gets, adding the pending ``Set-Cookie`` (and ``Cache-Control: no-store``)."""

    __slots__ = ()

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        cookie = self.set_cookie
        if cookie is not None:
            headers = [h for h in headers if h[0].lower() != "cache-control"]
            headers.append(("Set-Cookie", cookie))
            headers.append(("Cache-Control", "no-store"))
        self._raw = None  # started: see _Context._raw
        return self._respond(status, headers, exc_info)

    def _header(self, name: str) -> str | None:
        value: str | None = self._raw.get(f"HTTP_{name.upper().replace('-', '_')}")
        return value

    def _ip(self) -> str:
        environ = self._raw
        return client_ip(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"),
                         self._guard.config.trusted_proxies)


def _refuse(refusal: Refusal, start_response: StartResponse) -> list[bytes]:
    status = HTTPStatus(refusal.status)
    headers = [*refusal.headers, ("Content-Length", str(len(refusal.body)))]
    start_response(f"{status.value} {status.phrase}", headers)
    return [refusal.body]
