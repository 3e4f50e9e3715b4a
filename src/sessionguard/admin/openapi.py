"""``GET openapi.json``: the OpenAPI 3.1 description of the admin API.

Built from the route table's shapes by hand (the endpoints are few and the
document is the contract), once per mount prefix, and precise enough for
schemathesis to validate every answer: each schema lists its required fields
and forbids others.
"""

from __future__ import annotations

import json
from typing import Any

from ..audit import EVENT_TYPES
from ..config import PLATFORMS
from ..core import ENDED_REASONS
from .api import CONFIRM_PHRASE, DEFAULT_LIMIT, MAX_LIMIT
from .auth import PUBLIC
from .flow import Flow
from .http import BASE_HEADERS, JSON_TYPE, MAX_BODY, Response
from .routing import Call, Route, is_self_service
from .stats import HOURS, REASONS

Schema = dict[str, Any]
_MAX_DOCUMENTS = 8  # distinct mount prefixes cached


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Schema, required: tuple[str, ...] | None = None) -> Schema:
    """A closed object; every property required unless ``required`` says."""
    names = list(properties) if required is None else list(required)
    return {"type": "object", "properties": properties, "required": names, "additionalProperties": False}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


DURATION = {"type": "string", "pattern": "^(never|[0-9]+[smhd])$", "examples": ["30m", "12h", "never"]}
DURATION_IN = {
    "description": "seconds, a number with a unit s, m, h or d, or never (null: never)",
    "type": ["string", "integer", "null"], "examples": ["30m", 3600, "never"],
}
TIME = {"type": "string", "format": "date-time"}
ON_LIMIT = {"type": "string", "enum": ["evict_oldest", "reject"]}
_TEXT = {"type": ["string", "null"]}

def _platform(platforms: tuple[str, ...]) -> Schema:
    return {"type": "string", "enum": list(platforms)}


def _session(platforms: tuple[str, ...]) -> Schema:
    return {
        "id": {"type": "string", "description": "public handle; not a token"},
        "user_id": {"type": "string"}, "platform": _platform(platforms), "created_at": TIME,
        "last_seen_at": TIME, "expires_at": _nullable(TIME), "remember_me": {"type": "boolean"},
        "ip": {"type": "string"}, "city": _TEXT, "user_agent": {"type": "string"},
        "device": {"type": "string"}, "metadata": {"type": "object"},
        "device_bound": {"type": "boolean", "description": "bound to a browser's key (DBSC)"},
    }


#: A listed session: its status, and for an ended one why and when (SPEC 9.2).
LISTED = {
    "status": {"type": "string", "enum": ["active", "ended"]},
    "ended_at": {**TIME, "description": "when it ended (a timeout: its deadline); ended sessions only"},
    "ended_reason": {"type": "string", "enum": sorted(ENDED_REASONS - {"invalid"}),
                     "description": "ended sessions only"},
}
STATUS_Q = {"type": "string", "enum": ["active", "ended", "all"], "default": "active"}


PLATFORM_POLICY = {
    "idle_timeout": DURATION, "absolute_timeout": DURATION,
    "session_timeout": {**DURATION, "description": "the lifetime of a session without remember-me"
                                                   " (at most absolute_timeout)"},
    "max_sessions": {"type": ["integer", "null"], "minimum": 1, "description": "null: unlimited"},
}
PLATFORM_POLICY_IN = {
    "idle_timeout": DURATION_IN, "absolute_timeout": DURATION_IN, "session_timeout": DURATION_IN,
    "max_sessions": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100_000},
                               {"type": "null"}, {"const": "unlimited"}]},
}
def schemas(platforms: tuple[str, ...] = PLATFORMS) -> dict[str, Schema]:
    """The document's schemas for the kinds of session ``platforms`` (``PLATFORMS``)."""
    session, platform = _session(platforms), _platform(platforms)
    return {
        "Session": _obj({**session, **LISTED}, (*session, "status")),
        "OwnSession": _obj({**session, **LISTED, "current": {"type": "boolean"}},
                           (*session, "status", "current")),
        "OwnSessions": _obj({"sessions": {"type": "array", "items": _ref("OwnSession")}}),
        "SessionPage": _obj({"sessions": {"type": "array", "items": _ref("Session")},
                             "next_cursor": _TEXT}),
        "Event": _obj({
            "type": {"type": "string", "enum": list(EVENT_TYPES)}, "at": TIME, "user_id": _TEXT,
            "session_id": _TEXT, "platform": _nullable(platform), "reason": _TEXT,
            "actor": {"type": "string", "description": "user:<id>, admin-token, cli or system"},
            "detail": {"type": "string"},
            "ip": _TEXT, "device": _TEXT, "city": _TEXT,
        }, ("type", "at", "user_id", "session_id", "platform", "reason", "actor", "ip", "device", "city")),
        "EventPage": _obj({"events": {"type": "array", "items": _ref("Event")}, "next_cursor": _TEXT}),
        "Stats": _obj({
            "now": TIME,
            "active": _nullable(_obj({
                "counted_at": TIME,
                "platforms": _obj({p: {"type": "integer", "minimum": 0} for p in platforms}),
            })),
            "endings": _obj({
                "hours": {"type": "array", "items": TIME, "minItems": HOURS, "maxItems": HOURS,
                          "description": "start of each clock hour, oldest first; the last is the current"},
                "reasons": _obj({r: {"type": "array", "items": {"type": "integer", "minimum": 0},
                                     "minItems": HOURS, "maxItems": HOURS} for r in REASONS}),
                "complete": {"type": "boolean",
                             "description": "false: the read of the audit log stopped at its bound"},
            }),
        }),
        "PlatformPolicy": _obj(PLATFORM_POLICY),
        "Policy": _obj({
            "platforms": _obj({p: _ref("PlatformPolicy") for p in platforms}),
            "remember_me_period": DURATION, "on_limit": ON_LIMIT,
            "max_sessions_total": {"type": ["integer", "null"], "minimum": 1,
                                   "description": "sessions per user across all platforms; null: unlimited"},
        }),
        "PolicyUpdate": _obj({
            "platforms": _obj({p: _obj(PLATFORM_POLICY_IN, ()) for p in platforms}, ()),
            "remember_me_period": DURATION_IN, "on_limit": ON_LIMIT,
            "max_sessions_total": PLATFORM_POLICY_IN["max_sessions"],
        }, ()),
        "Settings": _obj({
            "allowed": {"type": "boolean"},
            "idle_timeout": _obj({p: _nullable(DURATION) for p in platforms}),
            "choices": {"type": "array", "items": DURATION,
                        "description": "the values a user may pick (USER_IDLE_TIMEOUT_CHOICES)"},
        }),
        "SettingsUpdate": _obj({
            "allowed": {"type": "boolean", "description": "read-only; ignored"},
            "idle_timeout": _obj({p: {
                "type": ["string", "integer", "null"],
                "description": "one of the choices (any spelling of the same duration), or null for the "
                               "administrator's value",
            } for p in platforms}, ()),
        }, ()),
        "Ended": _obj({"ended": {"type": "integer", "minimum": 0}}),
        "EndedAll": _obj({"ended": {"const": "all"}}),
        "Updated": _obj({"updated": {"type": "integer", "minimum": 0}}),
        "Roles": _obj({"roles": {"type": "array", "maxItems": 32,
                                 "items": {"type": "string", "minLength": 1, "maxLength": 64}}}),
        "UserSignout": _obj({"platform": platform}, ()),
        "SignoutAll": _obj({"confirm": {"type": "string", "const": CONFIRM_PHRASE},
                            "keep_mine": {"type": "boolean", "default": False}}, ("confirm",)),
        "CsrfToken": _obj({"csrf_token": {"type": "string"}}),
        "DeviceBinding": _obj({
            "session_identifier": {"type": "string"}, "refresh_url": {"type": "string"},
            "scope": _obj({"origin": {"type": "string"}, "include_site": {"const": False}}),
            "credentials": {"type": "array", "items": _obj({
                "type": {"const": "cookie"}, "name": {"type": "string"}, "attributes": {"type": "string"}})},
        }),
        "Error": _obj({"error": _obj({
            "code": {"type": "string"}, "message": {"type": "string"},
            "field": {"type": "string", "description": "the offending field (422)"},
            "reason": {"type": "string", "enum": sorted(ENDED_REASONS),
                       "description": "401: why the session the request presented has ended"},
        }, ("code", "message"))}),
    }


ERRORS = {
    "400": "Malformed request (not JSON, too many query parameters).",
    "401": "No or bad credentials.",
    "403": "Missing permission, missing or wrong X-CSRF-Token, or no session of one's own.",
    "404": "Unknown session (or path).",
    "413": f"Request body over {MAX_BODY} bytes.",
    "422": "A field is invalid; error.field names it.",
    "503": "The session store is unavailable.",
}


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(summary: str, ok: str | None, errors: str, *, params: tuple[Schema, ...] = (),
               body: str | None = None, body_required: bool = False, code: str = "200") -> Schema:
    responses: Schema = {code: {"description": "OK", **({} if ok is None else _json(_ref(ok)))}}
    for status in errors.split():
        responses[status] = {"$ref": f"#/components/responses/E{status}"}
    operation: Schema = {"summary": summary, "parameters": list(params), "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": body_required, **_json(_ref(body))}
    return operation


def _param(name: str, where: str, schema: Schema, required: bool = False, text: str = "") -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


CSRF = _param("X-CSRF-Token", "header", {"type": "string"}, text="required with cookie auth (GET api/csrf)")
USER_Q = _param("user_id", "query", {"type": "string", "minLength": 1, "maxLength": 256})
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                  "default": DEFAULT_LIMIT})
STATUS = _param("status", "query", STATUS_Q, text="active (default), ended (in the last 24 hours) or all")
CURSOR = _param("cursor", "query", {"type": "string"}, text="next_cursor of the previous page")
SID = _param("id", "path", {"type": "string", "minLength": 1}, required=True)
READS, WRITES = "400 401 403 422 503", "400 401 403 413 422 503"
INFO = (
    "Every response to a request with a valid session carries `Session-Expires` (ISO 8601 UTC: the "
    "session's expires_at; absent when it never expires). A request with `X-Session-Passive: 1` is "
    "checked without counting as activity. With SELF_SERVICE=off, /me and /api/me/* answer 404 and "
    "are not described here; with METRICS=off, so does /metrics."
)


def build(prefix: str, cookie_name: str, *, self_service: bool = True,
          metrics: bool = False, platforms: tuple[str, ...] = PLATFORMS) -> dict[str, Any]:
    """The document for the sub-app mounted at ``prefix`` (without ``/me`` and
    ``/api/me/...`` when ``self_service`` is off, with ``/metrics`` when ``metrics``)."""
    user = _param("user_id", "path", {"type": "string", "minLength": 1, "maxLength": 256}, required=True)
    ops: dict[str, Schema] = {
        "/api/sessions": {"get": _operation(
            "Sessions, newest login first: active (the default), ended in the last 24 hours (status=ended: "
            "each with ended_at and ended_reason), or all", "SessionPage", READS,
            params=(USER_Q, _param("platform", "query", _platform(platforms)), STATUS, LIMIT, CURSOR))},
        "/api/sessions/{id}": {"delete": _operation(
            "Sign out one session (revoked)", None, "401 403 404 503", params=(SID, CSRF), code="204")},
        "/api/users/{user_id}/signout": {"post": _operation(
            "Sign out a user, optionally on one platform (revoked)", "Ended", "400 401 403 404 413 422 503",
            params=(user, CSRF), body="UserSignout")},
        "/api/users/{user_id}/roles": {"put": _operation(
            "Replace the roles (metadata.roles) of a user's active sessions; permissions follow at "
            "their next request (needs sessions:revoke and settings:update)", "Updated",
            "400 401 403 404 413 422 503", params=(user, CSRF), body="Roles", body_required=True)},
        "/api/signout-all": {"post": _operation(
            "Sign out everyone (signout_all), optionally keeping the caller's session", "EndedAll",
            WRITES, params=(CSRF,), body="SignoutAll", body_required=True)},
        "/api/policy": {
            "get": _operation("The session policy in force", "Policy", "401 403 503"),
            "put": _operation("Change the policy (partial documents allowed)", "Policy", WRITES,
                              params=(CSRF,), body="PolicyUpdate", body_required=True)},
        "/api/audit": {"get": _operation(
            "Audit events, newest first", "EventPage", READS, params=(USER_Q, LIMIT, CURSOR))},
        "/api/stats": {"get": _operation(
            "What the admin page's charts draw: active sessions per platform (the store's count, "
            "null until there is one), and endings per reason in each of the last 24 clock hours "
            "(from the audit log)", "Stats", "401 403 503")},
        "/api/me/sessions": {"get": _operation(
            "The caller's own sessions, newest login first: active (the default), ended in the last 24 "
            "hours (status=ended: why and when), or all", "OwnSessions", "401 403 422 503",
            params=(STATUS,))},
        "/api/me/sessions/{id}": {"delete": _operation(
            "Sign out one of the caller's sessions (signed_out)", None, "401 403 404 503",
            params=(SID, CSRF), code="204")},
        "/api/me/signout-others": {"post": _operation(
            "Sign out the caller's other sessions (signed_out)", "Ended", "401 403 503", params=(CSRF,))},
        "/api/me/signout-all": {"post": _operation(
            "Sign out every session of the caller, this one included (signed_out; the cookie is "
            "cleared)", "Ended", "401 403 503", params=(CSRF,))},
        "/api/me/settings": {
            "get": _operation("The caller's own idle timeouts", "Settings", "401 403 503"),
            "put": _operation("Set the caller's own idle timeouts (403 unless allowed)", "Settings",
                              WRITES, params=(CSRF,), body="SettingsUpdate", body_required=True)},
        "/api/csrf": {"get": _operation("The CSRF token of the caller's session", "CsrfToken",
                                        "401 403 503")},
        "/metrics": {"get": {
            "summary": "Prometheus metrics in the text exposition format (METRICS=on)",
            "description": "Permission: sessions:read (or ADMIN_TOKEN).", "parameters": [],
            "responses": {"200": {"description": "The metrics", "content": {
                "text/plain": {"schema": {"type": "string"}}}},
                **{status: {"$ref": f"#/components/responses/E{status}"} for status in ("401", "403")}}}},
        "/dbsc/start": {"post": _dbsc(
            "DBSC registration: bind the cookie's session to the key of the proof", (PROOF,),
            "400 401 404 503")},
        "/dbsc/refresh": {"post": _dbsc(
            "DBSC refresh: a fresh bound cookie for a proof signed by the bound key (403: a challenge)",
            (BOUND_ID, PROOF), "400 401 403 404 503")},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
            "200": {"description": "OK", **_json({"type": "object"})}}}},
        "/": {"get": _page("HTML admin page: sessions, policy, audit log, sign out everyone",
                           "sessions:read")},
        "/me": {"get": _page("HTML self-service page: the caller's own sessions and settings",
                             "any session")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "sessionguard admin API", "version": "1", "description": INFO},
        "paths": {
            prefix + path: item for path, item in ops.items()
            if (self_service or not is_self_service(path)) and (metrics or path != "/metrics")
        },
        "components": {
            "schemas": schemas(platforms),
            "responses": {
                f"E{status}": {"description": text, **_json(_ref("Error"))} for status, text in ERRORS.items()
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "ADMIN_TOKEN, or a session token"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": cookie_name},
            },
        },
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    }


PROOF = _param("Secure-Session-Response", "header", {"type": "string"},
               text="the browser's proof: a JWS (typ dbsc+jwt, ES256 or RS256) whose jti is the challenge")
BOUND_ID = _param("Sec-Secure-Session-Id", "header", {"type": "string"}, required=True,
                  text="the session_identifier of the registration")


def _dbsc(summary: str, params: tuple[Schema, ...], errors: str) -> Schema:
    """A DBSC endpoint: called by the browser itself, with no admin credentials;
    ``403`` carries the challenge to sign in ``Secure-Session-Challenge``."""
    operation = _operation(summary, "DeviceBinding", errors, params=params)
    operation["security"] = []
    if "403" in operation["responses"]:
        operation["responses"]["403"] = {
            "description": "Sign the challenge in the Secure-Session-Challenge header",
            **_json(_ref("Error"))}
    return operation


def _page(summary: str, permission: str) -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "summary": summary, "description": f"Permission: {permission}.",
        "responses": {
            "200": {"description": "The page", "content": html},
            "303": {"description": "Redirect for anonymous visitors under ON_INVALID=redirect:/path"},
            "401": {"description": "No valid session", "content": html},
            "403": {"description": "Missing permission", "content": html},
        },
    }


def document(call: Call) -> Flow:
    """``GET openapi.json`` (no authentication)."""
    cache, prefix = call.admin.documents, call.request.prefix
    body = cache.get(prefix)
    if body is None:
        config = call.admin.config
        document = build(prefix, config.cookie_name, self_service=config.self_service,
                         metrics=config.metrics, platforms=config.platforms)
        body = json.dumps(document, ensure_ascii=True).encode()
        if len(cache) < _MAX_DOCUMENTS:
            cache[prefix] = body
    yield from ()  # a flow without store steps
    return Response(200, (JSON_TYPE, *BASE_HEADERS), body)


ROUTES = (Route("GET", "/openapi.json", document, PUBLIC),)
