"""The admin sub-app's request and response values, and the few parsing
helpers every handler shares.

Both shells (ASGI and WSGI) turn their raw request into one
:class:`AdminRequest` and send back one :class:`Response`; nothing in between
knows which server it runs on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ..config import PLATFORMS
from ..context import MAX_USER_ID
from ..session import Session
from ..stores.protocol import STATUSES

#: Largest request body read, in bytes; a longer one is answered with ``413``.
MAX_BODY = 64 * 1024
#: Most query parameters parsed from one query string.
MAX_QUERY_FIELDS = 64
#: Every admin answer carries these (never cached: answers hold session data).
BASE_HEADERS = (("cache-control", "no-store"), ("x-content-type-options", "nosniff"))
JSON_TYPE = ("content-type", "application/json")


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """One request to the admin sub-app, as the shells parsed it.

    :param method: upper-case HTTP method.
    :param path: the path below the admin prefix, e.g. ``/api/sessions``.
    :param prefix: where the sub-app is mounted, as the client sees it (used
        by ``/openapi.json`` and the pages to build links).
    :param query: the raw query string (already text).
    :param headers: request headers by lower-case name (repeated ones joined
        with ``", "``).
    :param body: the body, at most :data:`MAX_BODY` bytes.
    :param session: the caller's valid session, if any.
    :param source: how that session's token came: ``"cookie"`` or ``"bearer"``.
    :param ended_reason: why the session the request presented has ended, if it has.
    """

    method: str
    path: str
    prefix: str = ""
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    session: Session | None = None
    source: str | None = None
    ended_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, headers (lower-case names) and body.

    ``ends_caller``: the answer ends the caller's own session, so the shells
    drop the session from the request's context: no ``Session-Expires`` nor
    re-sent cookie follows (a cookie to clear is in ``headers``)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    ends_caller: bool = False


class ApiError(Exception):
    """An expected failure of a request, answered as a JSON error.

    :param status: the HTTP status (400, 401, 403, 404, 405, 409, 413, 422).
    :param code: a stable machine-readable code such as ``"not_found"``.
    :param message: for humans; never carries a secret.
    :param field: the offending field (query parameter or dotted body path).
    :param reason: with ``401``, why the session the request presented has
        ended (an ``ended_reason``), when it has.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
        self.headers = headers

    @property
    def response(self) -> Response:
        """The JSON error answer."""
        error: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.reason is not None:
            error["reason"] = self.reason
        return json_response({"error": error}, self.status, self.headers)


def too_large() -> ApiError:
    """The ``413`` for a body over :data:`MAX_BODY` bytes."""
    return ApiError(413, "body_too_large", f"The request body is over {MAX_BODY} bytes.")


def clean_path(path: str) -> str:
    """``path`` with any lone surrogate replaced, so it can always be encoded."""
    return path.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def invalid(field: str, problem: str) -> ApiError:
    """A ``422`` naming ``field`` in the message and in ``error.field``."""
    return ApiError(422, "invalid_field", f"{field}: {problem}", field=field)


def json_response(
    data: object, status: int = 200, headers: tuple[tuple[str, str], ...] = (), *,
    ends_caller: bool = False,
) -> Response:
    """``data`` as a JSON answer. ASCII-only output: a stray surrogate in a
    stored string can never make encoding fail."""
    body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(status, (JSON_TYPE, *BASE_HEADERS, *headers), body, ends_caller)


def no_content(headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A ``204`` answer."""
    return Response(204, (*BASE_HEADERS, *headers))


def json_body(request: AdminRequest) -> object:
    """The request's JSON body (``None`` when empty).

    :raises ApiError: ``400`` when it is not valid UTF-8 JSON.
    """
    if not request.body.strip():
        return None
    try:
        return json.loads(request.body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers JSONDecodeError and over-long integers.
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def query_params(request: AdminRequest) -> dict[str, str]:
    """The query parameters; a blank value counts as absent.

    :raises ApiError: ``400`` for too many parameters, ``422`` for a repeated one.
    """
    try:
        pairs = parse_qsl(
            request.query, keep_blank_values=True, errors="replace", max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        raise ApiError(400, "invalid_query", "The query string has too many parameters.") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise invalid(name, "give this parameter once")
        if value:
            params[name] = value
    return params


def object_body(request: AdminRequest, *, required: bool) -> Mapping[str, Any]:
    """The JSON body, which must be an object (``{}`` when empty and optional)."""
    data = json_body(request)
    if data is None and not required:
        return {}
    if not isinstance(data, dict):
        raise invalid("body", "must be a JSON object")
    return data


def limit_param(params: Mapping[str, str], default: int, maximum: int) -> int:
    """The ``limit`` query parameter: a whole number from 1 to ``maximum``."""
    raw = params.get("limit")
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 6 and 1 <= int(text) <= maximum):
        raise invalid("limit", f"must be a whole number from 1 to {maximum}")
    return int(text)


def user_id_value(value: object, field: str) -> str | None:
    """A user id given in the query, the path or a body (``None``: not given)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_USER_ID:
        raise invalid(field, f"must be a user id of 1 to {MAX_USER_ID} characters")
    return value


def platform_value(value: object, field: str, platforms: tuple[str, ...] = PLATFORMS) -> str | None:
    """A platform name, one of ``platforms`` (``PLATFORMS``) (``None``: not given)."""
    if value is None:
        return None
    if value not in platforms:
        raise invalid(field, f"must be one of {', '.join(platforms)}")
    return str(value)


def status_value(value: object, field: str = "status") -> str:
    """A listing status: ``active`` (not given), ``ended`` or ``all``."""
    if value is None:
        return "active"
    if value not in STATUSES:
        raise invalid(field, "must be active, ended or all")
    return str(value)


def known_fields(body: Mapping[str, Any], allowed: tuple[str, ...], where: str = "") -> None:
    """Refuse (``422``) the first field of ``body`` not in ``allowed``."""
    for name in body:
        if name not in allowed:
            shown = name if len(name) <= 64 else name[:61] + "..."  # echoed back: keep it short
            raise invalid(f"{where}{shown}", f"unknown field (use {', '.join(allowed)})")
