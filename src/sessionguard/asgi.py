"""The ASGI shell: pure ASGI middleware (no ``BaseHTTPMiddleware``).

Per-request state lives in locals of ``__call__``; the cookie is added on the
``http.response.start`` message, so streaming responses pass untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import alerts
from .admin import AdminASGI
from .anomaly import Anomaly
from .context import AsyncSessionContext
from .core import Outcome, Record
from .decision import Refusal, Verdict
from .errors import StoreUnavailable
from .incoming import Presented, client_ip, is_https
from .inflight import CURRENT
from .origins import origin_allowed
from .outgoing import ASGI, with_session
from .stores.protocol import Check

if TYPE_CHECKING:
    from .guard import SessionGuard
    from .session import Session

logger = logging.getLogger("sessionguard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLOSE_CODES = {401: 1008, 303: 1008, 503: 1013}


#: the request headers the middleware reads (lower-case, as ASGI servers give them)
_READ = frozenset((b"cookie", b"authorization", b"x-session-passive", b"user-agent"))


class SessionGuardMiddleware:
    """Enforce session policy on an ASGI app.

    ``Middleware(SessionGuardMiddleware, guard=guard)`` in Starlette, or
    ``guard.asgi(app)``. ``http`` and ``websocket`` scopes get
    ``scope["sessionguard"]``; ``lifespan`` passes through untouched.
    """

    def __init__(self, app: ASGIApp, guard: SessionGuard, *, route_admin: bool = True) -> None:
        self.app = app
        self.guard = guard
        #: the admin sub-app, served under ``ADMIN_PATH`` (``None``: off, or
        #: ``route_admin=False``: ``app`` is the admin sub-app itself)
        prefix = guard.config.admin_path if route_admin else None
        self.admin: ASGIApp | None = None if prefix is None else AdminASGI(guard, prefix=prefix)
        self._admin_prefix = prefix or ""
        self._allowed_origins = frozenset(guard.config.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        cookie = authorization = passive = None
        agent = b""
        for name, value in scope["headers"]:
            if name not in _READ:  # one set test for each of the headers we skip
                continue
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
            elif name == b"user-agent":
                if not agent:  # the first, as the login's _ASGIContext._header reads it
                    agent = value  # read here, not by a second pass (see anomaly.py)
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            else:
                passive = value.decode("latin-1")
        if authorization is None and (cookie is None or guard.cookie_name not in cookie):
            # No Authorization header and no cookie of our name: the common
            # anonymous request, no token, no store call, nothing to decide.
            # Built here rather than by ``_of`` (one Python call less);
            # tests/test_shells.py checks every slot is set.
            ctx = scope["sessionguard"] = _ASGIContext()
            ctx.session = ctx.ended_reason = ctx.set_cookie = ctx._source = ctx._offer = None
            ctx._guard, ctx._raw, ctx._respond = guard, scope, send
        else:
            decided = await self._decide(scope, send, cookie, authorization, passive, agent)
            if isinstance(decided, Refusal):
                await _refuse(kind, decided, send, scope)
                return
            ctx = scope["sessionguard"] = decided
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        app, admin = self.app, self.admin
        if admin is not None:
            path = scope["path"]
            if self._admin_prefix in path and guard.admin_serves(path):  # the cheap test first
                app = admin
        CURRENT.set(ctx)  # a store failure anywhere in the app is this request's (inflight.py)
        try:
            await app(scope, receive, ctx._send)
        except StoreUnavailable:
            # A store call inside the app could not reach the store.
            if not ctx._started:
                await _refuse(kind, guard.unavailable, send)
            elif not _answered(ctx):
                raise
            # else the framework answered 500 and re-raised (so that servers log
            # it); that 500 went out as the 503, and raising now would only make
            # the server close a connection that is fine

    async def _decide(self, scope: Scope, send: Send, cookie: str | None, authorization: str | None,
                      passive: str | None, agent: bytes) -> _ASGIContext | Refusal:
        """The context of a request that presents a token, or its refusal."""
        guard = self.guard
        presented = guard.presented(cookie, authorization, scope["path"])
        if presented.source == "cookie" and scope["type"] == "websocket" and not self._same_site(scope):
            alerts.cross_site(scope["path"])
            return _CROSS_SITE  # before the check: another site's page does not even count as a use
        check = None
        if presented.session_id is not None:
            try:
                check = await guard.astore_check(
                    presented.session_id, passive=guard.is_passive(scope["path"], passive),
                    unbound_token=presented.issued is None,
                )
            except StoreUnavailable:
                check = Check(Outcome.STORE_UNAVAILABLE)
        verdict = guard.verdict(presented, check)
        anomaly = None
        record = None if check is None else check.record
        if verdict.session is not None and record is not None:
            user_agent = agent.decode("latin-1")
            if user_agent != record.user_agent:  # the common request stops here (see anomaly.py)
                anomaly = guard.watch.judge(record, user_agent, lambda: _peer(scope))
                if anomaly is not None:
                    verdict, anomaly = await self._anomalous(presented, verdict, record, anomaly)
        if verdict.events:
            try:
                await guard.arecord(verdict.events)
            except StoreUnavailable:
                guard.store_failed()
                logger.warning("sessionguard: audit event not recorded (store unavailable)")
        if verdict.refusal is not None:
            return verdict.refusal
        if anomaly is not None:
            flagged = _ASGIFlaggedContext._of(guard, scope, send, verdict.session, None, presented.source,
                                              verdict.set_cookie)
            flagged.anomaly = anomaly
            return flagged
        context = _ASGIContext if presented.source is None else _ASGITokenContext
        return context._of(guard, scope, send, verdict.session, verdict.ended_reason,
                           presented.source, verdict.set_cookie)

    async def _anomalous(self, presented: Presented, verdict: Verdict, record: Record,
                         anomaly: Anomaly) -> tuple[Verdict, Anomaly | None]:
        """``ON_ANOMALY``: record the anomaly (``log``), and flag it for the app
        (``flag``: the anomaly returned), or end the session (``revoke``)."""
        guard = self.guard
        mode = guard.config.on_anomaly
        if mode != "revoke":
            return guard.decider.anomalous(verdict, record, anomaly), anomaly if mode == "flag" else None
        try:
            ended = await guard.async_store.end(record.id, "revoked")
        except StoreUnavailable:
            guard.store_failed(record.platform)
            return guard.verdict(presented, Check(Outcome.STORE_UNAVAILABLE)), None
        return guard.decider.revoked(presented, record, anomaly, ended), None

    def _same_site(self, scope: Scope) -> bool:
        """Whether a websocket handshake comes from the app's own pages (or an
        ``ALLOWED_ORIGINS`` one): a browser sends the cookie with a handshake
        that any other site opens (cross-site websocket hijacking)."""
        origin = host = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        return origin_allowed(origin, host, self._allowed_origins)


class _ASGIContext(AsyncSessionContext):
    """The context of one ASGI request; its ``_send`` is the one the app gets,
    adding the pending ``Set-Cookie`` (and ``Cache-Control: no-store``) and
    the session's ``Session-Expires`` to the response start."""

    __slots__ = ()

    def _send(self, message: Message) -> Awaitable[None]:
        # a plain call returning the inner send's awaitable: no coroutine of its own per message
        if message["type"] == "http.response.start":
            self._raw = None  # started: see _Context._raw
            cookie = self.set_cookie
            if cookie is not None:  # a login in a request that presented no token
                headers = with_session(message.get("headers", ()), ASGI, cookie.encode("latin-1"), None,
                                       _expires(self.session), _latin1(self._offer))
                message = {**message, "headers": headers}
        respond: Send = self._respond
        return respond(message)

    def _header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self._raw["headers"]:
            if key == wanted:
                text: str = value.decode("latin-1")
                return text
        return None

    def _ip(self) -> str:
        peer, forwarded = _peer(self._raw)
        return client_ip(peer, forwarded, self._guard.config.trusted_proxies)

    def _https(self) -> bool:
        client = self._raw.get("client")
        return is_https(self._raw.get("scheme"), client[0] if client else None,
                        self._header("x-forwarded-proto"), self._guard.config.trusted_proxies)

    def _store_failed(self) -> None:
        self._guard.store_failed(None if self.session is None else self.session.platform)
        self._unavailable()

    def _unavailable(self) -> None:
        if not isinstance(self._respond, _Unavailable):
            self._respond = _Unavailable(self._respond, self._guard.unavailable)


class _ASGITokenContext(_ASGIContext):
    """The context of a request that presented a session token: its response
    depends on who asked, and says so to caches (:mod:`.outgoing`). A class of
    its own so that requests without a token pay nothing for it."""

    __slots__ = ()

    def _send(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self._raw = None  # started: see _Context._raw
            cookie = self.set_cookie
            headers = with_session(message.get("headers", ()), ASGI,
                                   None if cookie is None else cookie.encode("latin-1"), self._source,
                                   _expires(self.session), _latin1(self._offer))
            message = {**message, "headers": headers}
        respond: Send = self._respond
        return respond(message)


class _ASGIFlaggedContext(_ASGITokenContext):
    """The context of a request whose session's client changed, under
    ``ON_ANOMALY=flag``: it carries :attr:`anomaly` (every other context
    answers the class's ``None``, at no cost to requests that are not flagged)."""

    __slots__ = ("anomaly",)


def _peer(scope: Scope) -> tuple[str | None, str | None]:
    """The peer address and the ``X-Forwarded-For`` of a request."""
    client = scope.get("client")
    # every X-Forwarded-For line, joined in order as WSGI servers join them:
    # a proxy may add its own line after the one the client sent
    lines = [value for key, value in scope["headers"] if key == b"x-forwarded-for"]
    return client[0] if client else None, b", ".join(lines).decode("latin-1") if lines else None


def _latin1(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


def _expires(session: Session | None) -> bytes | None:
    """The ``Session-Expires`` value of ``session``, if it has one."""
    text = None if session is None else session.expires_header()
    return None if text is None else text.encode("ascii")


class _Unavailable:
    """The server's ``send`` once a store call inside the app failed: the
    framework's error handler (Starlette's ``ServerErrorMiddleware``, Django's)
    catches the :class:`StoreUnavailable` before the shell can and answers
    ``500``; that answer goes out as the store's ``503`` instead. Installed only
    by the failure, so other requests pay nothing for it."""

    __slots__ = ("send", "refusal", "answered")

    def __init__(self, send: Send, refusal: Refusal) -> None:
        self.send = send
        self.refusal = refusal
        #: whether the 503 went out in place of a 500
        self.answered = False

    async def __call__(self, message: Message) -> None:
        if self.answered:
            return  # the rest of the 500 being replaced
        if message["type"] == "http.response.start" and message.get("status") == 500:
            self.answered = True
            await _refuse("http", self.refusal, self.send)
            return
        await self.send(message)


def _answered(ctx: _ASGIContext) -> bool:
    respond = ctx._respond
    return isinstance(respond, _Unavailable) and respond.answered


#: a websocket handshake from another site's page, with the session cookie
_CROSS_SITE = Refusal(403, (("content-type", "application/json"), ("cache-control", "no-store")),
                      b'{"error": {"code": "origin_refused", "message": "This origin may not open'
                      b' a session websocket."}}')


async def _refuse(kind: str, refusal: Refusal, send: Send, scope: Scope | None = None) -> None:
    prefix = "http"
    if kind == "websocket":
        extensions = (scope or {}).get("extensions") or {}
        if refusal.status != 403 or "websocket.http.response" not in extensions:
            # a close before accept: the server answers the handshake 403
            await send({"type": "websocket.close", "code": _CLOSE_CODES.get(refusal.status, 1008)})
            return
        prefix = "websocket.http"  # the server lets us answer the handshake (ASGI's denial response)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": f"{prefix}.response.start", "status": refusal.status, "headers": headers})
    await send({"type": f"{prefix}.response.body", "body": refusal.body})
