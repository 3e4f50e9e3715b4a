"""The self-service endpoints (SPEC §5, ``api/me/...``) and ``api/csrf``:
any signed-in user sees and ends their own sessions and, when allowed, sets
their own idle timeouts. Sign-outs here are the user's own: ``signed_out``.
Their audit events go through the user's allowance (``flow.record_self_service``),
so that no user can push other users' events out of the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sessionguard.admin.flow as flow  # the module, not the package: see docs/internals.md

from .. import audit
from ..config import format_duration, parse_duration
from ..core import NEVER_IDLE
from ..policy import Policy
from ..session import Session, listed
from ..tokens import is_session_id
from .auth import ANY_SESSION, Caller
from .flow import Flow
from .http import (
    ApiError,
    Response,
    invalid,
    json_response,
    known_fields,
    no_content,
    object_body,
    query_params,
    status_value,
)
from .routing import Call, Route

#: Sessions read per store call when listing a user's ended ones.
PAGE = 500


def _own(caller: Caller) -> Session:
    # Routes needing ANY_SESSION only run for callers with a session.
    session = caller.session
    if session is None:  # pragma: no cover - guarded by authorize()
        raise ApiError(403, "session_required", "This endpoint needs a session.")
    return session


def my_sessions(call: Call) -> Flow:
    """``GET api/me/sessions``: the caller's sessions of ``status`` (``active``,
    the default; ``ended``: those ended within the last day, so that a user sees
    why their other devices were signed out; ``all``), newest login first, the
    current one marked."""
    mine = _own(call.caller)
    status = status_value(query_params(call.request).get("status"))
    if status == "active":
        items: list[Any] = list((yield from flow.user_sessions(mine.user_id)))
    else:
        items, cursor = [], None
        while True:
            page = yield from flow.list_sessions(user_id=mine.user_id, platform=None, limit=PAGE,
                                                 cursor=cursor, status=status)
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
    policy = yield from flow.policy()
    sessions = []
    for item in items:
        shown = listed(item, policy).to_json()
        shown["current"] = shown["id"] == mine.id and shown["status"] == "active"
        sessions.append(shown)
    return json_response({"sessions": sessions})


def end_my_session(call: Call) -> Flow:
    """``DELETE api/me/sessions/{id}``: end one of the caller's sessions."""
    mine = _own(call.caller)
    session_id = call.params["id"]
    record = None
    if is_session_id(session_id):
        record = yield from flow.end(session_id, "signed_out", user_id=mine.user_id)
    if record is None:
        raise ApiError(404, "not_found", "You have no active session with this id.")
    now = yield from flow.now()
    ended = audit.ended(record, "signed_out", call.caller.actor, now)
    yield from flow.record_self_service(mine.user_id, [ended])
    if record.id == mine.id:
        return _ended_mine(call, no_content())
    return no_content()


def _ended_mine(call: Call, answer: Response) -> Response:
    """``answer`` to a request that ended the caller's own session: it clears the
    cookie (of a cookie-authenticated caller) and ends the request's session."""
    clear = (("set-cookie", call.admin.clear_cookie),) if call.caller.source == "cookie" else ()
    return replace(answer, headers=(*answer.headers, *clear), ends_caller=True)


def signout_others(call: Call) -> Flow:
    """``POST api/me/signout-others``: end every other session of the caller."""
    mine = _own(call.caller)
    records = yield from flow.end_user(mine.user_id, "signed_out", keep=mine.id)
    if records:
        now = yield from flow.now()
        ended = [audit.ended(r, "signed_out", call.caller.actor, now) for r in records]
        yield from flow.record_self_service(mine.user_id, ended)
    return json_response({"ended": len(records)})


def signout_all_mine(call: Call) -> Flow:
    """``POST api/me/signout-all``: end every session of the caller, the
    current one included (``signed_out``); the cookie is cleared."""
    mine = _own(call.caller)
    records = yield from flow.end_user(mine.user_id, "signed_out")
    if records:
        now = yield from flow.now()
        ended = [audit.ended(r, "signed_out", call.caller.actor, now) for r in records]
        yield from flow.record_self_service(mine.user_id, ended)
    return _ended_mine(call, json_response({"ended": len(records)}))


def _shown(seconds: int | None) -> str | None:
    """A user's own idle timeout as the API gives it (``None``: the admin's value)."""
    if seconds is None:
        return None
    return "never" if seconds == NEVER_IDLE else format_duration(seconds)


def _settings(call: Call, allowed: bool, timeouts: Mapping[str, int | None]) -> dict[str, Any]:
    idle = {p: _shown(timeouts.get(p)) for p in call.admin.config.platforms}
    choices = [format_duration(c) for c in call.admin.config.user_idle_timeout_choices]
    return {"allowed": allowed, "idle_timeout": idle, "choices": choices}


def _allowed(call: Call, policy: Policy) -> bool:
    # Both the setting and the policy in force: user timeouts are only
    # applied when the stored policy says so (see core.idle_limit).
    return call.admin.config.allow_user_timeouts and policy.allow_user_timeouts


def get_settings(call: Call) -> Flow:
    """``GET api/me/settings``: the caller's own idle timeouts."""
    mine = _own(call.caller)
    policy = yield from flow.policy()
    timeouts = yield from flow.user_timeouts(mine.user_id)
    return json_response(_settings(call, _allowed(call, policy), timeouts))


def put_settings(call: Call) -> Flow:
    """``PUT api/me/settings``: change the caller's own idle timeouts
    (``null`` restores the admin's value); ``403`` unless allowed."""
    mine = _own(call.caller)
    policy = yield from flow.policy()
    if not _allowed(call, policy):
        raise ApiError(403, "user_timeouts_disabled", "Users may not set their own idle timeouts here.")
    body = object_body(call.request, required=True)
    known_fields(body, ("idle_timeout", "allowed"))
    if not isinstance(body.get("allowed", True), bool):
        raise invalid("allowed", "is read-only; leave it out or send a boolean")
    changes = body.get("idle_timeout", {})
    platforms = call.admin.config.platforms
    if not isinstance(changes, dict):
        raise invalid("idle_timeout", f"must be an object keyed by {', '.join(platforms)}")
    known_fields(changes, platforms, "idle_timeout.")
    choices = call.admin.config.user_idle_timeout_choices
    parsed = {p: _timeout(f"idle_timeout.{p}", value, choices) for p, value in changes.items()}
    timeouts = yield from flow.user_timeouts(mine.user_id)
    updated = {p: timeouts.get(p) for p in platforms} | parsed
    yield from flow.set_user_timeouts(mine.user_id, updated)
    shown = _settings(call, True, updated)
    now = yield from flow.now()
    event = audit.Event("settings_changed", now, call.caller.actor, mine.user_id,
                        detail=audit.compact_json(shown["idle_timeout"]))
    yield from flow.record_self_service(mine.user_id, [event])
    return json_response(shown)


def _timeout(field: str, value: object, choices: tuple[int | None, ...]) -> int | None:
    """A user's choice as stored: seconds, :data:`NEVER_IDLE`, or ``None`` (the
    admin's value); only ``USER_IDLE_TIMEOUT_CHOICES`` are accepted."""
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    offered = ", ".join(format_duration(c) for c in choices)
    problem = f"must be one of {offered}, or null for the administrator's value"
    if not isinstance(value, str) or len(value) > 32:
        raise invalid(field, problem)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise invalid(field, problem) from None
    if seconds not in choices:
        raise invalid(field, problem)
    return NEVER_IDLE if seconds is None else seconds


def csrf(call: Call) -> Flow:
    """``GET api/csrf``: the CSRF token of the caller's session."""
    token = call.admin.signing.csrf_token(_own(call.caller).id)
    yield from ()  # a flow without store steps
    return json_response({"csrf_token": token})


ROUTES = (
    Route("GET", "/api/me/sessions", my_sessions, ANY_SESSION),
    Route("DELETE", "/api/me/sessions/{id}", end_my_session, ANY_SESSION),
    Route("POST", "/api/me/signout-others", signout_others, ANY_SESSION),
    Route("POST", "/api/me/signout-all", signout_all_mine, ANY_SESSION),
    Route("GET", "/api/me/settings", get_settings, ANY_SESSION),
    Route("PUT", "/api/me/settings", put_settings, ANY_SESSION),
    Route("GET", "/api/csrf", csrf, ANY_SESSION),
)
