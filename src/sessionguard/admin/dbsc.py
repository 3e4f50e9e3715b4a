"""The device-bound session endpoints (DBSC, SPEC 9.6): ``POST dbsc/start``
binds a session to the browser's key, ``POST dbsc/refresh`` renews a bound
session's short-lived cookie against a proof signed by that key.

Both are public routes (the browser sends neither an admin token nor a
CSRF token, and needs none: a proof cannot be made cross-site). The
middleware does not check the session of a request to them
(:meth:`~sessionguard.decision.Decider.presented`): each reads the cookie it
needs and asks the store once, itself. Their checks come in this order: the
form of the request (``400``), then who it is for and whether the proof
holds (``401``); only then the store, in one step. A refusal binds nothing
and issues no cookie. The protocol's values (challenges, headers, cookies,
the answer) are :mod:`sessionguard.dbsc`; the proofs are :mod:`sessionguard.jws`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import sessionguard.admin.flow as flow  # the module, not the package: see docs/internals.md

from .. import audit, dbsc, jws
from ..core import Outcome, Record, cookie_max_age, deadline
from ..decision import Decider
from ..incoming import cookie_values
from ..stores.protocol import Binding
from ..tokens import is_session_id, session_id
from .auth import PUBLIC
from .flow import Flow, Step
from .http import AdminRequest, ApiError, Response, json_response
from .routing import Call, Route

T = TypeVar("T")


def start(call: Call) -> Flow:
    """``POST dbsc/start``: bind the session of the request's cookie to the key
    in the proof's header, answering its login's challenge."""
    request, decider = call.request, _decider(call)
    proof = _proof(request)
    if proof.jwk is None:
        raise ApiError(400, "malformed_proof", "the registration proof carries no key (jwk)")
    key, origin = _checked(lambda: jws.key_text(proof.jwk or {})), _origin(request)
    # the login cookie, read here (the middleware leaves this path to us): bind() judges the session
    sid = _sid(request.headers, decider.config.cookie_name, decider)
    if sid is None:
        raise _unknown()
    bound_id, now = session_id(sid), decider.now_ms()
    _checked(lambda: jws.verify(proof, jws.public_key(proof.jwk or {})))
    challenge = _checked(lambda: decider.challenges.read(bound_id, proof.jti, now))
    bound = yield from flow.bind(bound_id, key, challenge.id, challenge.issued)
    record = yield from _taken(bound, now)
    event = audit.about(record, "device_bound", f"user:{record.user_id}", now, detail=proof.alg)
    yield from flow.record([event])
    return _answer(decider, bound, sid, origin, now)


def refresh(call: Call) -> Flow:
    """``POST dbsc/refresh``: without a proof, ``403`` and a challenge; with one
    signed by the session's bound key, a fresh cookie."""
    request, decider = call.request, _decider(call)
    named = request.headers.get(dbsc.SESSION_ID, "").strip()
    proof = None if dbsc.RESPONSE not in request.headers else _proof(request)
    origin = _origin(request)
    sid = _sid(request.headers, decider.bound_cookies.refresh_name, decider)
    if not is_session_id(named) or sid is None or session_id(sid) != named:
        raise _unknown()
    now = decider.now_ms()
    if proof is None:
        header = dbsc.challenge_header(decider.challenges.issue(named, now), named)
        raise ApiError(403, "proof_required", "Sign the challenge with the session's key.",
                       headers=((dbsc.CHALLENGE, header),))
    challenge = _checked(lambda: decider.challenges.read(named, proof.jti, now))
    redeemed = yield from flow.redeem(named, challenge.id, challenge.issued)
    yield from _taken(redeemed, now)
    _checked(lambda: jws.verify(proof, jws.stored_key(redeemed.key or "")))
    return _answer(decider, redeemed, sid, origin, now)


def _checked(step: Callable[[], T]) -> T:
    """``step()``, a refused proof answered as its JSON error."""
    try:
        return step()
    except jws.ProofError as refused:
        raise ApiError(refused.status, refused.code, refused.message) from None


def _decider(call: Call) -> Decider:
    decider = call.admin.decider
    if not decider.config.device_bound:
        raise ApiError(404, "not_found", "Device-bound sessions are off (SESSIONGUARD_DEVICE_BOUND).")
    return decider


def _proof(request: AdminRequest) -> jws.Proof:
    text = request.headers.get(dbsc.RESPONSE)
    if text is None:
        raise ApiError(400, "proof_required", "Send the proof in the Secure-Session-Response header.")
    return _checked(lambda: jws.read(text))


def _sid(headers: Mapping[str, str], name: str, decider: Decider) -> str | None:
    """The sid of the one cookie ``name`` holding a session token without an
    issue time, else ``None``."""
    # repeated Cookie headers reach the sub-app joined with ", "; tokens hold no comma
    values = cookie_values(headers.get("cookie", "").replace(",", ";"), name)
    return decider.tokens.verify(values[0]) if len(values) == 1 else None


def _origin(request: AdminRequest) -> str:
    origin = dbsc.request_origin(request.headers)
    if origin is None:
        raise ApiError(400, "origin_unknown", "The request names no HTTPS origin (Origin or Host).")
    return origin


def _unknown() -> ApiError:
    return ApiError(401, "session_unknown", "There is no such session here, or its token is missing.")


def _taken(step: Binding, now: int) -> Step[Record]:
    """The session a binding step acted on; ``401`` when it was refused (and
    the audit event of a timeout the step noticed, as a request's check writes it)."""
    record = step.record
    if step.outcome is Outcome.VALID and step.refused is None and record is not None:
        return record
    if step.outcome is Outcome.INVALID:
        raise _unknown()
    if step.outcome.ended and record is not None and step.policy is not None:
        ends = deadline(record, step.policy)
        at = now if ends is None else min(now, ends)
        yield from flow.record([audit.ended(record, step.outcome.value, "system", at)])
    why = {
        "bound": "This session is bound to a key already.",
        "unbound": "This session is not bound to a key.",
        "used": "This challenge was answered before.",
    }.get(step.refused or "", "The session has ended.")
    raise ApiError(401, "session_refused" if step.refused else "session_ended", why)


def _answer(decider: Decider, step: Binding, sid: str, origin: str, now: int) -> Response:
    """``200``: the registration JSON, the fresh bound cookie and the refresh cookie."""
    record, cookies = step.record, decider.bound_cookies
    assert record is not None and step.policy is not None  # a taken step has both
    tokens = decider.tokens
    body = dbsc.answer(record.id, refresh_url=cookies.refresh_path, origin=origin, cookies=cookies)
    max_age = cookie_max_age(record, step.policy, now)
    return json_response(body, headers=(
        ("set-cookie", cookies.bound(tokens.sign_bound(sid, now // 1000))),
        ("set-cookie", cookies.refresh(tokens.sign(sid), max_age)),
    ))


ROUTES = (
    Route("POST", dbsc.START_PATH, start, PUBLIC),
    Route("POST", dbsc.REFRESH_PATH, refresh, PUBLIC),
)
