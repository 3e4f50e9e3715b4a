"""The ASGI shell: pure ASGI middleware (no ``BaseHTTPMiddleware``).

Per-request state lives in locals of ``__call__``; the cookie is added on the
``http.response.start`` message, so streaming responses pass untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .admin import AdminASGI
from .context import AsyncSessionContext
from .core import Outcome
from .decision import Refusal
from .errors import StoreUnavailable
from .incoming import client_ip, is_https
from .stores.protocol import Check

if TYPE_CHECKING:
    from .guard import SessionGuard

logger = logging.getLogger("sessionguard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLOSE_CODES = {401: 1008, 303: 1008, 503: 1013}


#: the request headers the middleware reads (lower-case, as ASGI servers give them)
_READ = frozenset((b"cookie", b"authorization", b"x-session-passive"))


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        cookie = authorization = passive = None
        for name, value in scope["headers"]:
            if name not in _READ:  # one set test for each of the headers we skip
                continue
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
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
            decided = await self._decide(scope, send, cookie, authorization, passive)
            if isinstance(decided, Refusal):
                await _refuse(kind, decided, send)
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
        try:
            await app(scope, receive, ctx._send)
        except StoreUnavailable:
            # A login or logout inside the app could not reach the store.
            if ctx._started:
                raise
            await _refuse(kind, guard.unavailable, send)

    async def _decide(self, scope: Scope, send: Send, cookie: str | None, authorization: str | None,
                      passive: str | None) -> _ASGIContext | Refusal:
        """The context of a request that presents a token, or its refusal."""
        guard = self.guard
        presented = guard.presented(cookie, authorization)
        check = None
        if presented.session_id is not None:
            try:
                check = await guard.async_store.check(
                    presented.session_id, passive=guard.is_passive(scope["path"], passive),
                    unbound_token=presented.issued is None,
                )
            except StoreUnavailable:
                check = Check(Outcome.STORE_UNAVAILABLE)
        verdict = guard.verdict(presented, check)
        if verdict.events:
            try:
                await guard.arecord(verdict.events)
            except StoreUnavailable:
                logger.warning("sessionguard: audit event not recorded (store unavailable)")
        if verdict.refusal is not None:
            return verdict.refusal
        return _ASGIContext._of(guard, scope, send, verdict.session, verdict.ended_reason,
                                presented.source, verdict.set_cookie)


class _ASGIContext(AsyncSessionContext):
    """The context of one ASGI request; its ``_send`` is the one the app gets,
    adding the pending ``Set-Cookie`` (and ``Cache-Control: no-store``) to the
    response start."""

    __slots__ = ()

    def _send(self, message: Message) -> Awaitable[None]:
        # a plain call returning the inner send's awaitable: no coroutine of its own per message
        if message["type"] == "http.response.start":
            self._raw = None  # started: see _Context._raw
            cookie = self.set_cookie
            if cookie is not None:
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"cache-control"]
                headers.append((b"set-cookie", cookie.encode("latin-1")))
                headers.append((b"cache-control", b"no-store"))
                if self._offer is not None:  # a login offering DBSC
                    headers.append((b"secure-session-registration", self._offer.encode("latin-1")))
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
        client = self._raw.get("client")
        peer = client[0] if client else None
        return client_ip(peer, self._header("x-forwarded-for"), self._guard.config.trusted_proxies)

    def _https(self) -> bool:
        client = self._raw.get("client")
        return is_https(self._raw.get("scheme"), client[0] if client else None,
                        self._header("x-forwarded-proto"), self._guard.config.trusted_proxies)


async def _refuse(kind: str, refusal: Refusal, send: Send) -> None:
    if kind == "websocket":
        await send({"type": "websocket.close", "code": _CLOSE_CODES.get(refusal.status, 1008)})
        return
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})
