"""The demo site of ``sessionguard demo``, and the Starlette example.

It lives in the package (not only under ``examples/``) so that the
``sessionguard demo`` command works from an installed wheel;
``examples/starlette_app.py`` serves it with uvicorn. Read it as an example:
login, logout, the current session, why the previous one ended, and a
websocket that ends when the session does.

The page builders (:func:`login_page`, :func:`home_page`) are plain functions
over :class:`~sessionguard.Session` values, shared with the Flask example.
Every value that came from a client is escaped with :func:`html.escape`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import audit
from .asgi import SessionGuardMiddleware
from .context import AsyncSessionContext
from .errors import SessionLimitReached, StoreUnavailable
from .guard import SessionGuard
from .reasons import REASONS as REASONS
from .reasons import reason_text
from .session import Session

#: Audit event types that end a session.
ENDINGS = frozenset({"logout", "idle_timeout", "absolute_timeout", "evicted", "revoked", "signout_all"})
MAX_FORM = 8192  # bytes of a login form

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.5rem}table{border-collapse:collapse}th,td{text-align:left;padding:.25rem .75rem .25rem 0}
th{font-weight:600}.notice{background:#fff4d6;border-left:4px solid #b07d00;padding:.5rem .75rem}
.error{background:#fde2e2;border-left:4px solid #b00020;padding:.5rem .75rem}
label{display:block;margin:.5rem 0}button{font:inherit;padding:.35rem 1rem}
input[type=text]{font:inherit;padding:.3rem;width:16rem}code{font-size:.9em}
"""

# Connects to /ws, sends a message every 5 s and reports when the server closes it.
_LIVE_SCRIPT = """
(function () {
  var out = document.getElementById("live");
  var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  var timer;
  ws.onopen = function () {
    out.textContent = "open";
    timer = setInterval(function () { ws.send("ping"); }, 5000);
  };
  ws.onclose = function (event) {
    clearInterval(timer);
    out.textContent = event.code === 1008
      ? "closed because the session ended (" + event.reason + "): reload the page to see why"
      : "closed (code " + event.code + ")";
  };
})();
"""


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def page(title: str, body: str) -> str:
    """A complete HTML document; ``title`` is escaped, ``body`` is HTML."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def login_page(ended_reason: str | None = None, error: str | None = None) -> str:
    """The sign-in form, with why the previous session ended (if it just did)."""
    parts = ["<h1>Sign in</h1>"]
    if (words := reason_text(ended_reason)) is not None:
        parts.append(f'<p class="notice" role="status">{escape(words)}</p>')
    if error is not None:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    parts.append(
        '<p>Any name signs in: this demo has no passwords.</p>'
        '<form method="post" action="/login">'
        '<label>Name <input type="text" name="name" required maxlength="200" autocomplete="username">'
        "</label>"
        '<label><input type="checkbox" name="admin" value="1"> Administrator'
        " (may use the admin pages)</label>"
        '<label><input type="checkbox" name="remember_me" value="1"> Remember me</label>'
        "<button>Sign in</button></form>"
    )
    return page("Sign in", "".join(parts))


def previous_ending(events: Iterable[audit.Event], current_id: str) -> audit.Event | None:
    """The newest event that ended another session of the user, if any."""
    for event in events:
        if event.type in ENDINGS and event.session_id != current_id:
            return event
    return None


def home_page(
    session: Session,
    *,
    previous: audit.Event | None = None,
    admin_path: str | None = None,
    websocket: bool = False,
    self_service: bool = True,
) -> str:
    """The signed-in page: the current session, why the previous one ended,
    sign-out, links to the self-service (unless ``self_service`` is off) and
    admin pages, the expiry warning of ``expiry.js`` (served by the admin
    sub-app), and (``websocket``) a live connection that closes when the
    session ends."""
    name = session.metadata.get("name")
    shown = name if isinstance(name, str) and name else session.user_id
    rows: Sequence[tuple[str, str]] = [
        ("User id", session.user_id),
        ("Roles", ", ".join(session.roles) or "none"),
        ("Session id", session.id),
        ("Platform", session.platform),
        ("Device", session.device),
        ("IP address", session.ip),
        ("City", session.city or "unknown"),
        ("Signed in", _when(session.created_at)),
        ("Last seen", _when(session.last_seen_at)),
        ("Expires if unused", _when(session.expires_at)),
        ("Remember me", "yes" if session.remember_me else "no"),
    ]
    parts = [
        f"<h1>Hello, {escape(shown)}</h1>",
        "<table>",
        *(f'<tr><th scope="row">{escape(k)}</th><td>{escape(v)}</td></tr>' for k, v in rows),
        "</table>",
    ]
    if previous is not None and previous.reason is not None:
        when = _when(datetime.fromtimestamp(previous.at / 1000, tz=timezone.utc))
        parts.append(
            f"<p>Your previous session ended at {escape(when)}: "
            f"{escape(reason_text(previous.reason) or '')}</p>"
        )
    if websocket:
        parts.append(f'<p>Live connection: <output id="live">connecting…</output></p><script>{_LIVE_SCRIPT}'
                     "</script>")
    links = []
    if admin_path is not None:
        # Two minutes before the idle expiry: a notice with "Stay signed in"; afterwards, why
        # the session ended and a link to sign in again (docs/admin.md, "Expiry warning").
        parts.append(f'<script src="{escape(admin_path)}/static/expiry.js" data-sign-in="/" defer></script>')
        if self_service:
            links.append(f'<a href="{escape(admin_path)}/me">Your sessions</a>')
        if "admin" in session.roles:
            links.append(f'<a href="{escape(admin_path)}/">Admin</a>')
    if links:
        parts.append(f"<p>{' · '.join(links)}</p>")
    parts.append('<form method="post" action="/logout"><button>Sign out</button></form>')
    return page("Your session", "".join(parts))


@dataclass(frozen=True, slots=True)
class LoginForm:
    """The fields of the sign-in form."""

    name: str
    admin: bool = False
    remember_me: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> LoginForm:
        """Read the form; raises :class:`ValueError` with a message for the user."""
        name = " ".join(fields.get("name", "").split())
        if not name or len(name) > 200:
            raise ValueError("Type a name of 1 to 200 characters.")
        admin = fields.get("admin") == "1"
        roles = ["admin"] if admin else []
        return cls(name, admin, fields.get("remember_me") == "1", {"name": name, "roles": roles})


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, read up to :data:`MAX_FORM`
    bytes (parsed here so the demo needs no ``python-multipart``)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ValueError("The form is too large.")
    pairs = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10)
    return {key: values[0] for key, values in pairs.items()}


def create_app(guard: SessionGuard, *, live: bool = True) -> SessionGuardMiddleware:
    """The demo site, wrapped by ``guard``. ``live=False`` leaves the websocket
    widget off the page (for servers without websocket support)."""

    def context(request: Request | WebSocket) -> AsyncSessionContext:
        ctx: AsyncSessionContext = request.scope["sessionguard"]
        return ctx

    async def home(request: Request) -> Response:
        ctx = context(request)
        if ctx.session is None:
            return HTMLResponse(login_page(ctx.ended_reason))
        events = await guard.async_store.events(user_id=ctx.session.user_id, limit=20, cursor=None)
        previous = previous_ending(events.items, ctx.session.id)
        html = home_page(ctx.session, previous=previous, admin_path=guard.config.admin_path, websocket=live,
                         self_service=guard.config.self_service)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    async def login(request: Request) -> Response:
        try:
            form = LoginForm.parse(await _form(request))
        except ValueError as exc:
            return HTMLResponse(login_page(error=str(exc)), status_code=400)
        try:
            await context(request).login(form.name, remember_me=form.remember_me, metadata=form.metadata)
        except SessionLimitReached as exc:
            error = f"You already have {exc.limit} sessions on {exc.platform}; sign out of one first."
            return HTMLResponse(login_page(error=error), status_code=409)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        await context(request).logout()
        return RedirectResponse("/", status_code=303)

    async def live_socket(websocket: WebSocket) -> None:
        """Refuse (1008) without a valid session; afterwards check the session
        at every message and close (1008, the reason) once it has ended."""
        ctx = context(websocket)
        session = ctx.session
        if session is None:
            await websocket.close(code=1008, reason=ctx.ended_reason or "no session")
            return
        await websocket.accept()
        await websocket.send_json({"type": "hello", "user_id": session.user_id, "session_id": session.id})
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                # Passive: a chatty socket must not keep an idle session alive.
                session = await ctx.recheck(passive=True)
            except StoreUnavailable:
                await websocket.close(code=1013, reason="store unavailable")
                return
            if session is None:
                await websocket.close(code=1008, reason=ctx.ended_reason or "ended")
                return
            text = message.get("text") or ""
            await websocket.send_json({"type": "echo", "text": text[:1000]})

    app = Starlette(routes=[
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        WebSocketRoute("/ws", live_socket),
    ])
    return guard.asgi(app)
