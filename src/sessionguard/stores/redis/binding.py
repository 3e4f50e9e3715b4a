"""The Redis store's device-binding steps (DBSC, SPEC 9.6): ``bind.lua`` and
``redeem.lua``, one round trip each, planned without I/O as the rest of
:mod:`.operations` is (whose script and cache helpers they use: kept apart so
that the binding is one module to read)."""

from __future__ import annotations

from ...core import ENDED_REASONS, Outcome
from ...tokens import is_session_id
from ..protocol import Binding
from .calls import Op
from .operations import Operations
from .records import decode_record


def bind_device(ops: Operations, session_id: str, key: str, challenge: str, issued: int) -> Op[Binding]:
    """Bind a valid, unbound session to a device's ``key`` (``bind.lua``)."""
    return (yield from _step(ops, "bind", session_id, key, challenge, str(issued)))


def redeem_challenge(ops: Operations, session_id: str, challenge: str, issued: int) -> Op[Binding]:
    """Answer a bound session's ``challenge`` once; its key (``redeem.lua``)."""
    return (yield from _step(ops, "redeem", session_id, challenge, str(issued)))


def _step(ops: Operations, name: str, session_id: str, *args: str) -> Op[Binding]:
    if not is_session_id(session_id):
        return Binding(Outcome.INVALID)
    keys = (ops.keys.session(session_id), ops.keys.tombstone(session_id))
    owed = ops.unwritten.overdue(session_id, ops.estimated_now())
    state = yield from ops.state()
    policy = state.policy or ops.cache.default
    reply = yield from ops._session_script(name, session_id[:4], keys, session_id,
                                          "" if owed is None else str(owed), *args, state=state)
    status = reply[0]
    if status == 0:
        reason = reply[1].decode("ascii") if reply[1] else "invalid"
        return Binding(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
    if status == 2:
        ops._forget((session_id,))
        return Binding(Outcome(reply[1].decode("ascii")), decode_record(session_id, reply[2]), policy=policy)
    if status == 4:
        return Binding(Outcome.VALID, refused=reply[1].decode("ascii"), policy=policy)
    if name == "bind":
        ops._forget((session_id,))  # announced to the other processes by the script
    key = reply[2].decode("utf-8") if len(reply) > 2 else None
    return Binding(Outcome.VALID, decode_record(session_id, reply[1]), key, policy=policy)
