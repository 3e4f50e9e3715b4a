"""The admin endpoints (SPEC §5): listing and ending sessions, sign-out of
everyone, the run-time policy and the audit log.

Each handler is a generator of store steps (see :mod:`.flow`): it validates
its input, yields what the store must do, and returns the answer.
"""

from __future__ import annotations

import sessionguard.admin.flow as flow  # the module, not the package: see docs/internals.md

from .. import actions, audit
from ..errors import StoreUnavailable
from ..policy import PolicyError
from ..session import listed
from ..tokens import is_session_id
from .auth import READ, REVOKE, UPDATE
from .flow import Flow
from .http import (
    BASE_HEADERS,
    ApiError,
    Response,
    invalid,
    json_body,
    json_response,
    known_fields,
    limit_param,
    no_content,
    object_body,
    platform_value,
    query_params,
    status_value,
    user_id_value,
)
from .routing import Call, Route

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: The phrase ``POST api/signout-all`` must carry, typed by a human.
CONFIRM_PHRASE = "SIGN OUT ALL"
NO_SESSION = "No active session has this id."


def list_sessions(call: Call) -> Flow:
    """``GET api/sessions``: sessions of ``status`` (``active``, the default;
    ``ended``: those ended within the last day; ``all``), newest login first."""
    params = query_params(call.request)
    user_id = user_id_value(params.get("user_id"), "user_id")
    platform = platform_value(params.get("platform"), "platform", call.admin.config.platforms)
    status = status_value(params.get("status"))
    limit = limit_param(params, DEFAULT_LIMIT, MAX_LIMIT)
    signing = call.admin.signing
    cursor = signing.store_cursor("sessions", params.get("cursor"))
    page = yield from flow.list_sessions(user_id=user_id, platform=platform, limit=limit, cursor=cursor,
                                         status=status)
    policy = yield from flow.policy()
    return json_response({
        "sessions": [listed(r, policy).to_json() for r in page.items],
        "next_cursor": signing.cursor("sessions", page.next_cursor),
    })


def end_session(call: Call) -> Flow:
    """``DELETE api/sessions/{id}``: end one session (``revoked``)."""
    session_id = call.params["id"]
    if not is_session_id(session_id):
        raise ApiError(404, "not_found", NO_SESSION)
    record = yield from actions.end_session(session_id, "revoked", call.caller.actor)
    if record is None:
        raise ApiError(404, "not_found", NO_SESSION)
    return no_content()


def signout_user(call: Call) -> Flow:
    """``POST api/users/{user_id}/signout``: end a user's sessions
    (``revoked``), on one platform when the body names one."""
    user_id = call.params["user_id"]
    user_id_value(user_id, "user_id")
    body = object_body(call.request, required=False)
    known_fields(body, ("platform",))
    platform = platform_value(body.get("platform"), "platform", call.admin.config.platforms)
    records = yield from actions.end_user(user_id, "revoked", call.caller.actor, platform=platform)
    return json_response({"ended": len(records)})


def set_user_roles(call: Call) -> Flow:
    """``PUT api/users/{user_id}/roles``: replace ``metadata["roles"]`` of every
    active session of the user (``roles_changed``)."""
    user_id = call.params["user_id"]
    user_id_value(user_id, "user_id")
    body = object_body(call.request, required=True)
    known_fields(body, ("roles",))
    try:
        roles = actions.roles_value(body.get("roles"))
    except ValueError as error:
        raise invalid("roles", str(error).removeprefix("roles ")) from None
    records = yield from actions.set_roles(user_id, roles, call.caller.actor)
    return json_response({"updated": len(records)})


def signout_all(call: Call) -> Flow:
    """``POST api/signout-all``: end every session (``signout_all``), except
    the caller's own with ``keep_mine``."""
    body = object_body(call.request, required=False)
    known_fields(body, ("confirm", "keep_mine"))
    if body.get("confirm") != CONFIRM_PHRASE:
        raise invalid("confirm", f"type the phrase {CONFIRM_PHRASE!r} to sign out everyone")
    keep_mine = body.get("keep_mine", False)
    if not isinstance(keep_mine, bool):
        raise invalid("keep_mine", "must be true or false")
    mine = call.caller.session
    keep = mine.id if keep_mine and mine is not None else None
    yield from actions.end_all(call.caller.actor, keep=keep)
    return json_response({"ended": "all"}, ends_caller=mine is not None and keep is None)


def get_policy(call: Call) -> Flow:
    """``GET api/policy``: the policy in force."""
    policy = yield from flow.policy()
    return json_response(policy.to_json())


def put_policy(call: Call) -> Flow:
    """``PUT api/policy``: change the policy (partial documents allowed)."""
    data = json_body(call.request)
    if not isinstance(data, dict):
        raise invalid("body", "must be a JSON object")
    current = yield from flow.policy()
    try:
        updated = current.updated(data)
    except PolicyError as error:
        field = error.field if len(error.field) <= 64 else error.field[:61] + "..."
        message = str(error).removeprefix(f"{error.field}: ")
        raise invalid(field, message) from None
    yield from flow.set_policy(updated)
    now = yield from flow.now()
    shown = updated.to_json()
    detail = audit.compact_json(shown)
    yield from flow.record([audit.Event("policy_changed", now, call.caller.actor, detail=detail)])
    return json_response(shown)


def list_events(call: Call) -> Flow:
    """``GET api/audit``: audit events, newest first."""
    params = query_params(call.request)
    user_id = user_id_value(params.get("user_id"), "user_id")
    limit = limit_param(params, DEFAULT_LIMIT, MAX_LIMIT)
    signing = call.admin.signing
    cursor = signing.store_cursor("audit", params.get("cursor"))
    page = yield from flow.events(user_id=user_id, limit=limit, cursor=cursor)
    return json_response({
        "events": [event.to_json() for event in page.items],
        "next_cursor": signing.cursor("audit", page.next_cursor),
    })


def metrics_text(call: Call) -> Flow:
    """``GET metrics``: the Prometheus metrics (``METRICS=on``), in the text format."""
    metrics = call.admin.metrics
    assert metrics is not None  # the route is served only with metrics on (Admin)
    try:
        active = yield from flow.active_counts()
    except StoreUnavailable:
        active = None  # the counters still answer: a store outage is what they show
    content_type, body = metrics.render(active)
    return Response(200, (("content-type", content_type), *BASE_HEADERS), body)


ROUTES = (
    Route("GET", "/api/sessions", list_sessions, READ),
    Route("DELETE", "/api/sessions/{id}", end_session, REVOKE),
    Route("POST", "/api/users/{user_id:path}/signout", signout_user, REVOKE),
    Route("PUT", "/api/users/{user_id:path}/roles", set_user_roles, f"{REVOKE}+{UPDATE}"),
    Route("POST", "/api/signout-all", signout_all, REVOKE),
    Route("GET", "/api/policy", get_policy, READ),
    Route("PUT", "/api/policy", put_policy, UPDATE),
    Route("GET", "/api/audit", list_events, READ),
    Route("GET", "/metrics", metrics_text, READ),
)
