"""The WSGI shell: the same steps as :mod:`sessionguard.asgi`, with plain calls."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from .admin import AdminWSGI
from .anomaly import Anomaly
from .context import SessionContext
from .core import Outcome, Record
from .decision import Refusal, Verdict
from .errors import StoreUnavailable
from .incoming import Presented, client_ip, is_https
from .inflight import CURRENT
from .outgoing import WSGI, with_session
from .stores.protocol import Check

if TYPE_CHECKING:
    from .guard import SessionGuard
    from .session import Session

logger = logging.getLogger("sessionguard")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Guarded(Protocol):
    """What ``guard.wsgi`` returns: a WSGI app whose arguments can also be
    passed by name, as Flask's ``wsgi_app`` takes them, so that
    ``app.wsgi_app = guard.wsgi(app.wsgi_app)`` type-checks."""

    #: the app it guards
    __wrapped__: WSGIApp

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]: ...


class WSGIMiddleware:
    """Enforce session policy on a WSGI app: ``app.wsgi_app = guard.wsgi(app.wsgi_app)``.

    ``guard.wsgi`` returns the middleware's :attr:`serve`, the same steps as a
    plain function: CPython calls a class instance through its type's
    ``__call__`` slot (a method lookup and a fresh interpreter loop), a plain
    function inline, about 0.4 us less a request. Calling the instance works
    too, with that cost. ``serve`` holds what it needs from the start, so
    changing ``app`` or ``admin`` afterwards changes nothing. ``route_admin=False``
    leaves ``ADMIN_PATH`` to the app (the admin sub-app guarding itself)."""

    def __init__(self, app: WSGIApp, guard: SessionGuard, *, route_admin: bool = True) -> None:
        self.app = app
        self.guard = guard
        #: the admin sub-app, served under ``ADMIN_PATH`` (``None``: off)
        prefix = guard.config.admin_path if route_admin else None
        self.admin: WSGIApp | None = None if prefix is None else AdminWSGI(guard, prefix=prefix)
        #: the guarded app as a plain function; its ``__wrapped__`` is ``app``
        self.serve: Guarded = self._serving()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.serve(environ, start_response)

    def _serving(self) -> Guarded:
        guard, app, admin, decide = self.guard, self.app, self.admin, self._decide
        cookie_name, admin_prefix = guard.cookie_name, guard.config.admin_path or ""
        new_context, in_progress = _WSGIContext, CURRENT.set

        def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            cookie, authorization = environ.get("HTTP_COOKIE"), environ.get("HTTP_AUTHORIZATION")
            if authorization is None and (cookie is None or cookie_name not in cookie):
                # No Authorization header and no cookie of our name: the common
                # anonymous request, no token, no store call, nothing to decide.
                # Built here rather than by ``_of`` (one Python call less);
                # tests/test_shells.py checks every slot is set.
                ctx = environ["sessionguard"] = new_context()
                ctx.session = ctx.ended_reason = ctx.set_cookie = ctx._source = ctx._offer = None
                ctx._guard, ctx._raw, ctx._respond = guard, environ, start_response
            else:
                decided = decide(environ, cookie, authorization, start_response)
                if isinstance(decided, Refusal):
                    return _refuse(decided, start_response)
                ctx = environ["sessionguard"] = decided
            target = app
            if admin is not None:
                path = environ.get("PATH_INFO", "")
                if admin_prefix in path and guard.admin_serves(path):  # the cheap test first
                    target = admin
            in_progress(ctx)  # a store failure anywhere in the app is this request's (inflight.py)
            try:
                return target(environ, ctx._start_response)
            except StoreUnavailable:
                # A store call inside the app could not reach the store
                # (raised by the app, or by _Unavailable in place of its 500).
                if ctx._started and not _answered(ctx):
                    raise
                return _refuse(guard.unavailable, start_response)

        return functools.update_wrapper(serve, app, assigned=(), updated=())

    def _decide(self, environ: dict[str, Any], cookie: str | None, authorization: str | None,
                start_response: StartResponse) -> _WSGIContext | Refusal:
        """The context of a request that presents a token, or its refusal."""
        guard = self.guard
        presented = guard.presented(cookie, authorization, environ.get("PATH_INFO", ""))
        check = None
        if presented.session_id is not None:
            passive = guard.is_passive(environ.get("PATH_INFO", ""), environ.get("HTTP_X_SESSION_PASSIVE"))
            try:
                check = guard.store_check(presented.session_id, passive=passive,
                                          unbound_token=presented.issued is None)
            except StoreUnavailable:
                check = Check(Outcome.STORE_UNAVAILABLE)
        verdict = guard.verdict(presented, check)
        anomaly = None
        record = None if check is None else check.record
        if verdict.session is not None and record is not None:
            user_agent = environ.get("HTTP_USER_AGENT", "")
            if user_agent != record.user_agent:  # the common request stops here (see anomaly.py)
                anomaly = guard.watch.judge(record, user_agent, lambda: _peer(environ))
                if anomaly is not None:
                    verdict, anomaly = self._anomalous(presented, verdict, record, anomaly)
        if verdict.events:
            try:
                guard.record(verdict.events)
            except StoreUnavailable:
                guard.store_failed()
                logger.warning("sessionguard: audit event not recorded (store unavailable)")
        if verdict.refusal is not None:
            return verdict.refusal
        if anomaly is not None:
            flagged = _WSGIFlaggedContext._of(guard, environ, start_response, verdict.session, None,
                                              presented.source, verdict.set_cookie)
            flagged.anomaly = anomaly
            return flagged
        context = _WSGIContext if presented.source is None else _WSGITokenContext
        return context._of(guard, environ, start_response, verdict.session, verdict.ended_reason,
                           presented.source, verdict.set_cookie)


    def _anomalous(self, presented: Presented, verdict: Verdict, record: Record,
                   anomaly: Anomaly) -> tuple[Verdict, Anomaly | None]:
        """As :meth:`.asgi.SessionGuardMiddleware._anomalous`, with plain calls."""
        guard = self.guard
        mode = guard.config.on_anomaly
        if mode != "revoke":
            return guard.decider.anomalous(verdict, record, anomaly), anomaly if mode == "flag" else None
        try:
            ended = guard.store.end(record.id, "revoked")
        except StoreUnavailable:
            guard.store_failed(record.platform)
            return guard.verdict(presented, Check(Outcome.STORE_UNAVAILABLE)), None
        return guard.decider.revoked(presented, record, anomaly, ended), None


class _WSGIContext(SessionContext):
    """The context of one WSGI request; its ``_start_response`` is the one the
    app gets, adding the pending ``Set-Cookie`` (and ``Cache-Control: no-store``)
    and the session's ``Session-Expires``."""

    __slots__ = ()

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        cookie = self.set_cookie
        if cookie is not None:  # a login in a request that presented no token
            headers = with_session(headers, WSGI, cookie, None, _expires(self.session), self._offer)
        self._raw = None  # started: see _Context._raw
        respond = self._respond  # a slot read, then a call: no method lookup
        return respond(status, headers, exc_info)

    def _header(self, name: str) -> str | None:
        value: str | None = self._raw.get(f"HTTP_{name.upper().replace('-', '_')}")
        return value

    def _ip(self) -> str:
        return client_ip(*_peer(self._raw), self._guard.config.trusted_proxies)

    def _https(self) -> bool:
        environ = self._raw
        return is_https(environ.get("wsgi.url_scheme"), environ.get("REMOTE_ADDR"),
                        environ.get("HTTP_X_FORWARDED_PROTO"), self._guard.config.trusted_proxies)

    def _store_failed(self) -> None:
        self._guard.store_failed(None if self.session is None else self.session.platform)
        self._unavailable()

    def _unavailable(self) -> None:
        if not isinstance(self._respond, _Unavailable):
            self._respond = _Unavailable(self._respond)


class _WSGITokenContext(_WSGIContext):
    """The context of a request that presented a session token: its response
    depends on who asked, and says so to caches (:mod:`.outgoing`). A class of
    its own so that requests without a token pay nothing for it."""

    __slots__ = ()

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        headers = with_session(headers, WSGI, self.set_cookie, self._source, _expires(self.session),
                               self._offer)
        self._raw = None  # started: see _Context._raw
        respond = self._respond
        return respond(status, headers, exc_info)


class _WSGIFlaggedContext(_WSGITokenContext):
    """The context of a request whose session's client changed, under
    ``ON_ANOMALY=flag``: it carries :attr:`anomaly` (every other context
    answers the class's ``None``, at no cost to requests that are not flagged)."""

    __slots__ = ("anomaly",)


def _peer(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """The peer address and the ``X-Forwarded-For`` of a request."""
    return environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR")


def _expires(session: Session | None) -> str | None:
    """The ``Session-Expires`` value of ``session``, if it has one."""
    return None if session is None else session.expires_header()


class _Unavailable:
    """The server's ``start_response`` once a store call inside the app failed:
    the framework's error handler (Flask's ``handle_exception``, Django's)
    catches the :class:`StoreUnavailable` before the shell can and answers
    ``500``; starting that answer raises instead, before anything reaches the
    server, and the shell answers the ``503``. Installed only by the failure,
    so other requests pay nothing for it."""

    __slots__ = ("start_response", "answered")

    def __init__(self, start_response: StartResponse) -> None:
        self.start_response = start_response
        #: whether a 500 was refused (the shell answers the 503)
        self.answered = False

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status[:3] == "500":
            self.answered = True
            raise StoreUnavailable("a store call inside the app failed, and the app answered 500")
        return self.start_response(status, headers, exc_info)


def _answered(ctx: _WSGIContext) -> bool:
    respond = ctx._respond
    return isinstance(respond, _Unavailable) and respond.answered


def _refuse(refusal: Refusal, start_response: StartResponse) -> list[bytes]:
    status = HTTPStatus(refusal.status)
    headers = [*refusal.headers, ("Content-Length", str(len(refusal.body)))]
    start_response(f"{status.value} {status.phrase}", headers)
    return [refusal.body]
