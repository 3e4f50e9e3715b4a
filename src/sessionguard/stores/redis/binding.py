"""The Redis store's device-binding steps (DBSC, SPEC 9.6): the library's
``bind`` and ``redeem``, one round trip each, planned without I/O as the rest of
:mod:`.operations` is (whose context, clock and caches they use: kept apart so
that the binding is one module to read)."""

from __future__ import annotations

from typing import Any

from ...core import ENDED_REASONS, Outcome
from ...tokens import is_session_id
from ..protocol import Binding
from .calls import Op
from .operations import Operations
from .records import decode_record
from .scripts import FUNCTIONS

_BIND, _REDEEM = FUNCTIONS["bind"], FUNCTIONS["redeem"]


def bind_device(ops: Operations, session_id: str, key: str, challenge: str, issued: int) -> Op[Binding]:
    """Bind a valid, unbound session to a device's ``key`` (``bind``)."""
    if not is_session_id(session_id):
        return Binding(Outcome.INVALID)
    reply = yield from ops.call(_BIND, (ops.keys.session(session_id),), use=_owed(ops, session_id),
                                key=key, challenge=challenge, issued=str(issued))
    if reply[0] == 1:
        ops.forget((session_id,))  # announced to the other processes by the function
    return _answer(ops, session_id, reply)


def redeem_challenge(ops: Operations, session_id: str, challenge: str, issued: int) -> Op[Binding]:
    """Answer a bound session's ``challenge`` once; its key (``redeem``)."""
    if not is_session_id(session_id):
        return Binding(Outcome.INVALID)
    reply = yield from ops.call(_REDEEM, (ops.keys.session(session_id),), use=_owed(ops, session_id),
                                challenge=challenge, issued=str(issued))
    return _answer(ops, session_id, reply)


def _owed(ops: Operations, session_id: str) -> str:
    owed = ops.unwritten.overdue(session_id, ops.estimated_now())
    return "" if owed is None else str(owed)


def _answer(ops: Operations, session_id: str, reply: list[Any]) -> Binding:
    status = reply[0]
    policy = ops.cache.policy()
    if status == 0:
        reason = reply[1].decode("ascii") if reply[1] else "invalid"
        return Binding(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
    if status == 2:
        ops.forget((session_id,))
        return Binding(Outcome(reply[1].decode("ascii")), decode_record(session_id, reply[2]), policy=policy)
    if status == 4:
        return Binding(Outcome.VALID, refused=reply[1].decode("ascii"), policy=policy)
    record = decode_record(session_id, reply[1])
    ops.unwritten.written(session_id, record.last_seen)
    key = reply[2].decode("utf-8") if len(reply) > 2 else None
    return Binding(Outcome.VALID, record, key, policy=policy)
