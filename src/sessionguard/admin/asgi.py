"""The ASGI shell of the admin sub-app: raw scope and ``receive`` in, one
:class:`~.http.AdminRequest` to the shared flow, one
:class:`~.http.Response` out, the flow's store steps awaited by
:func:`~.flow.arun`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from .flow import arun
from .http import MAX_BODY, AdminRequest, ApiError, Response, clean_path, too_large
from .routing import Admin, Route

if TYPE_CHECKING:
    from ..guard import SessionGuard

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class AdminASGI:
    """The admin sub-app as an ASGI app.

    Behind :class:`~sessionguard.SessionGuardMiddleware` it reuses the
    session the middleware validated (``scope["sessionguard"]``); mounted on
    its own it validates the caller's token through the guard first.

    :param prefix: the path it is served under; ``None`` (explicit mounting)
        takes the scope's ``root_path``.
    :param routes: the route table (default: :data:`~.routes.ROUTES`).
    """

    def __init__(
        self, guard: SessionGuard, *, prefix: str | None = None, routes: Sequence[Route] | None = None
    ) -> None:
        from .routes import ROUTES

        self.guard = guard
        self.admin = Admin(guard, ROUTES if routes is None else routes)
        self.prefix = prefix
        self._guarded: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        ctx = scope.get("sessionguard")
        if ctx is None:
            await self._behind_guard(scope, receive, send)
            return
        path = clean_path(scope["path"])
        prefix = self.prefix if self.prefix is not None else clean_path(scope.get("root_path", ""))
        try:
            body = await _body(scope, receive)
        except _Disconnected:
            return
        except ApiError as error:
            await _send(send, error.response, head=False)
            return
        request = AdminRequest(
            method=scope["method"], path=path[len(prefix):] if path.startswith(prefix) else path,
            prefix=prefix, query=scope.get("query_string", b"").decode("utf-8", "replace"),
            headers=_headers(scope), body=body, session=ctx.session, source=ctx.source,
            ended_reason=ctx.ended_reason,
        )
        response = await arun(self.guard, self.admin.handle(request))
        if response.ends_caller:
            ctx.session = ctx.set_cookie = None  # no Session-Expires, no re-sent cookie
        await _send(send, response, head=request.method == "HEAD")

    async def _behind_guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Mounted without the middleware: let one validate the session."""
        if self._guarded is None:
            # this app is the admin: no second routing
            self._guarded = self.guard.asgi(self, route_admin=False)
        await self._guarded(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _body(scope: Scope, receive: Receive) -> bytes:
    """The request body, refusing (``413``) more than :data:`MAX_BODY` bytes."""
    for name, value in scope["headers"]:
        length = value.strip()
        if name == b"content-length" and length.isdigit() and (len(length) > 9 or int(length) > MAX_BODY):
            raise too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: Response, *, head: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.status != 204:
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Served as the top-level app: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
