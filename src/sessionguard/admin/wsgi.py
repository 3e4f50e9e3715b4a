"""The WSGI shell of the admin sub-app: the same steps as :mod:`.asgi`, with
the flow's store steps run by :func:`~.flow.run` on the sync store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from .flow import run
from .http import MAX_BODY, AdminRequest, ApiError, Response, clean_path, too_large
from .routing import Admin, Route

if TYPE_CHECKING:
    from ..guard import SessionGuard

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class AdminWSGI:
    """The admin sub-app as a WSGI app.

    Behind the guard's WSGI middleware it reuses the session the middleware
    validated (``environ["sessionguard"]``); mounted on its own it validates
    the caller's token through the guard first.

    :param prefix: the path it is served under; ``None`` (explicit mounting)
        takes ``SCRIPT_NAME`` with ``PATH_INFO`` below it.
    :param routes: the route table (default: :data:`~.routes.ROUTES`).
    """

    def __init__(
        self, guard: SessionGuard, *, prefix: str | None = None, routes: Sequence[Route] | None = None
    ) -> None:
        from .routes import ROUTES

        self.guard = guard
        self.admin = Admin(guard, ROUTES if routes is None else routes)
        self.prefix = prefix
        self._guarded: WSGIApp | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ctx = environ.get("sessionguard")
        if ctx is None:
            return self._behind_guard(environ, start_response)
        path = wsgi_text(environ.get("PATH_INFO", ""))
        if self.prefix is None:
            prefix = wsgi_text(environ.get("SCRIPT_NAME", ""))
        else:
            prefix = self.prefix
            path = path[len(prefix):] if path.startswith(prefix) else path
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            body = _body(environ)
        except ApiError as error:
            return _send(start_response, error.response, head=False)
        request = AdminRequest(
            method=method, path=path, prefix=prefix,
            query=wsgi_text(environ.get("QUERY_STRING", "")), headers=_headers(environ),
            body=body, session=ctx.session, source=ctx.source, ended_reason=ctx.ended_reason,
        )
        response = run(self.guard, self.admin.handle(request))
        if response.ends_caller:
            ctx.session = ctx.set_cookie = None  # no Session-Expires, no re-sent cookie
        return _send(start_response, response, head=method == "HEAD")

    def _behind_guard(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Mounted without the middleware: let one validate the session."""
        if self._guarded is None:
            # this app is the admin: no second routing
            self._guarded = self.guard.wsgi(self, route_admin=False)
        return self._guarded(environ, start_response)


def wsgi_text(value: str) -> str:
    """A PEP 3333 string (bytes as latin-1) as the text it encodes in UTF-8.

    Servers that already hand over decoded text (some test transports) are
    recognised by the text not being latin-1 bytes of valid UTF-8, and kept.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return clean_path(value)


def _headers(environ: Environ) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _body(environ: Environ) -> bytes:
    """The request body, refusing (``413``) more than :data:`MAX_BODY` bytes."""
    try:
        stream = get_input_stream(environ, max_content_length=MAX_BODY)
        body = stream.read(MAX_BODY + 1)
    except RequestEntityTooLarge:
        raise too_large() from None
    except BadRequest:  # werkzeug's ClientDisconnected, a short body
        raise ApiError(400, "incomplete_body", "The request body ended early.") from None
    if len(body) > MAX_BODY:
        raise too_large()
    return bytes(body)


def _send(start_response: StartResponse, response: Response, *, head: bool) -> list[bytes]:
    status = HTTPStatus(response.status)
    headers = list(response.headers)
    if response.status != 204:
        headers.append(("content-length", str(len(response.body))))
    start_response(f"{status.value} {status.phrase}", headers)
    return [b"" if head else response.body]
