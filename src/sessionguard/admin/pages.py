"""The HTML pages of the admin sub-app (SPEC §5): ``/`` for admins, ``/me``
for every signed-in user, and the package files they load from ``/static/``.

The pages are shells: Jinja2 renders the layout (autoescaped, so a hostile
user id or name stays text) and the plain JavaScript in ``static/`` fetches
every row from the JSON API. A page therefore needs no store call; it only
checks who is asking. Its routes are ``PUBLIC`` in the route table because
they answer the unauthorised themselves, in HTML: ``401`` for an anonymous
visitor (``303`` under ``ON_INVALID=redirect:…``) and ``403`` without the
permission, where the API would answer JSON.

Every answer here carries a strict ``Content-Security-Policy`` with no
``'unsafe-inline'``: the templates hold no inline script or style, and data
reaches the scripts through ``data-*`` attributes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import jinja2

from ..reasons import LISTED, LISTED_FOR_USER
from ..session import Session
from .api import CONFIRM_PHRASE
from .auth import ANONYMOUS, PUBLIC, READ, REVOKE, UPDATE, Caller
from .flow import Flow
from .http import ApiError, Response
from .routing import Call, Route

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Sent with every page and static file.
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
HTML_TYPE = ("content-type", "text/html; charset=utf-8")
#: A static URL carrying the file's current hash (``?v=``) may be kept for a
#: year: a new release changes the hash and so the URL.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Any other static URL is revalidated (``ETag``) on every use.
REVALIDATE = "no-cache"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

PLATFORM_TITLES = {"web": "Web", "mobile": "Mobile", "desktop": "Desktop"}
#: Each ended session's reason in words, for the scripts (``data-ended-words``).
ENDED_WORDS = json.dumps({"admin": LISTED, "me": LISTED_FOR_USER}, separators=(",", ":"))
#: The admin page's status filter: value and title.
STATUS_CHOICES = (("active", "Active"), ("ended", "Recently ended"), ("all", "All"))


def platform_title(name: str) -> str:
    """How the pages name a platform: an extra kind (``PLATFORMS``) by its name,
    capitalised, ``_`` as spaces (``common.js`` platformName does the same)."""
    return PLATFORM_TITLES.get(name) or name.replace("_", " ").capitalize()

#: Columns of the session table: sort key and title.
COLUMNS = (
    ("name", "User"), ("roles", "Roles"), ("platform", "Platform"), ("device", "Device"),
    ("ip", "IP address"), ("city", "City"), ("created_at", "Login"), ("last_seen_at", "Last seen"),
    ("expires_at", "Expires"), ("status", "Status"),
)
POLICY_FIELDS = (
    ("idle_timeout", "Idle timeout"), ("absolute_timeout", "Maximum lifetime"),
    ("session_timeout", "Lifetime without remember-me"), ("max_sessions", "Maximum sessions"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    """A static package file, read once."""

    body: bytes
    content_type: str
    etag: str

    @property
    def version(self) -> str:
        """The hash carried by the page's URL of this file."""
        return self.etag.strip('"')


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a page is rendered for (every field ends up in escaped markup)."""

    name: str
    user_id: str
    session_id: str
    permissions: tuple[str, ...]

    @property
    def can_read(self) -> bool:
        """May list every session."""
        return READ in self.permissions

    @property
    def can_revoke(self) -> bool:
        """May end sessions of others."""
        return REVOKE in self.permissions

    @property
    def can_update(self) -> bool:
        """May change the policy."""
        return UPDATE in self.permissions


@functools.cache
def assets() -> Mapping[str, Asset]:
    """Every file of ``sessionguard/admin/static``, read on first use."""
    found: dict[str, Asset] = {}
    for entry in resources.files("sessionguard.admin").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or entry.name.startswith("."):
            continue
        content_type = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        body = entry.read_bytes()
        found[entry.name] = Asset(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    return found


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the page templates (autoescape on for all)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sessionguard.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


def render(name: str, call: Call, viewer: Viewer | None, **context: Any) -> bytes:
    """Render template ``name`` for ``viewer`` with the context every page uses."""
    prefix = call.request.prefix
    files = assets()

    def asset(file: str) -> str:
        return f"{prefix}/static/{file}?v={files[file].version}"

    template = environment().get_template(name)
    html = template.render(
        admin_path=prefix, api=f"{prefix}/api", asset=asset, viewer=viewer,
        self_service=call.admin.config.self_service, ended_words=ENDED_WORDS,
        platforms=[{"name": p, "title": platform_title(p)} for p in call.admin.config.platforms], **context,
    )
    return html.encode("utf-8")


def html_response(status: int, body: bytes, *extra: tuple[str, str]) -> Response:
    """An HTML answer with the security headers; never cached."""
    return Response(status, (HTML_TYPE, ("cache-control", "no-store"), *SECURITY_HEADERS, *extra), body)


def viewer_of(caller: Caller) -> Viewer | None:
    """The :class:`Viewer` for ``caller``; ``None`` for an anonymous one."""
    if caller is ANONYMOUS:
        return None
    permissions = tuple(sorted(caller.permissions))
    session: Session | None = caller.session
    if session is None:  # the admin token
        return Viewer("admin token", "", "", permissions)
    name = session.metadata.get("name")
    shown = name if isinstance(name, str) and name.strip() else session.user_id
    return Viewer(shown, session.user_id, session.id, permissions)


def refusal(call: Call, viewer: Viewer | None, needs: str) -> Response | None:
    """The HTML answer for a caller who may not see a page needing ``needs``
    (a permission, or ``"session"``); ``None`` when they may."""
    if viewer is None:
        redirect = call.admin.config.on_invalid_redirect
        if redirect is not None:
            return Response(303, (("location", redirect), ("cache-control", "no-store"), *SECURITY_HEADERS))
        body = render("error.html", call, None, page="error", title="Sign in required",
                      message="Sign in to the application first, then open this page again.")
        return html_response(401, body, ("www-authenticate", 'Bearer realm="sessionguard"'))
    if needs == "session":
        allowed = bool(viewer.session_id)
        message = "This page lists the sessions of the signed-in user; the admin token has none."
    else:
        allowed = needs in viewer.permissions
        message = f"Your account may not see this page: it needs the {needs} permission."
    if allowed:
        return None
    body = render("error.html", call, viewer, page="error", title="Not allowed", message=message)
    return html_response(403, body)


def admin_page(call: Call) -> Flow:
    """``GET /``: the admin page (``sessions:read``)."""
    viewer = viewer_of(call.caller)
    yield from ()  # the page needs no store call: its script loads the data
    denied = refusal(call, viewer, READ)
    if denied is not None:
        return denied
    body = render("admin.html", call, viewer, page="admin", columns=COLUMNS, statuses=STATUS_CHOICES,
                  policy_fields=POLICY_FIELDS, phrase=CONFIRM_PHRASE,
                  report_only=call.admin.config.enforce == "report")
    return html_response(200, body)


def me_page(call: Call) -> Flow:
    """``GET /me``: the caller's own sessions (any session)."""
    viewer = viewer_of(call.caller)
    yield from ()
    denied = refusal(call, viewer, "session")
    if denied is not None:
        return denied
    return html_response(200, render("me.html", call, viewer, page="me"))


def static_file(call: Call) -> Flow:
    """``GET /static/{name}``: a package file, cacheable, with its ``ETag``."""
    yield from ()
    asset = assets().get(call.params["name"])
    if asset is None:
        raise ApiError(404, "not_found", "There is no such file.")
    version = dict(parse_qsl(call.request.query)).get("v")
    cache = IMMUTABLE if version == asset.version else REVALIDATE
    headers = (("etag", asset.etag), ("cache-control", cache), *SECURITY_HEADERS)
    if _matches(call.request.headers.get("if-none-match"), asset.etag):
        return Response(304, headers)
    return Response(200, (("content-type", asset.content_type), *headers), asset.body)


def to_slash(call: Call) -> Flow:
    """``GET`` of the bare prefix: ``308`` to the admin page (``prefix/``),
    so relative links and the page's own URL agree."""
    yield from ()
    return Response(308, (("location", f"{call.request.prefix}/"), ("cache-control", "no-store"),
                          *SECURITY_HEADERS))


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


ROUTES = (
    Route("GET", "", to_slash, PUBLIC),
    Route("GET", "/", admin_page, PUBLIC),
    Route("GET", "/me", me_page, PUBLIC),
    Route("GET", "/static/{name}", static_file, PUBLIC),
)
