"""What an app does with sessions without an HTTP admin call (SPEC §9.4): list
them, end one, end a user's, end everyone's, change a user's roles.

Each action is written once as steps (:mod:`sessionguard.admin.flow`), run by
the guard's plain methods on the sync store and by its ``a``-prefixed
coroutines on the async store (:class:`~sessionguard.guard.SessionGuard`).
Endings are recorded in the audit log with the actor ``app``.
"""

from __future__ import annotations

from typing import Any

import sessionguard.admin.flow as flow  # the module, not the package: see docs/internals.md

from . import audit
from .admin.flow import Step
from .context import MAX_USER_ID
from .core import Record
from .session import Session, listed

#: The audit ``actor`` of what an app does through the guard.
APP = "app"
#: The listing statuses ``sessions`` takes.
STATUSES = ("active", "ended", "all")
#: Sessions read per store call when listing everyone's.
PAGE = 500


def _user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
        raise ValueError(f"user_id must be a non-empty string of at most {MAX_USER_ID} characters")
    return user_id


def _platform(platform: object) -> Step[str | None]:
    """``platform`` checked against the kinds of session of the policy in force."""
    if platform is None:
        return None
    policy = yield from flow.policy()
    if platform not in policy.platforms:
        raise ValueError(f"platform must be one of {', '.join(policy.platforms)}, or None")
    return str(platform)


def sessions(user_id: str | None, platform: str | None, status: str) -> Step[list[Session]]:
    """The sessions of ``status`` (of ``user_id``, on ``platform``), newest login
    first: ``"active"``, ``"ended"`` (ended within the last day; each says
    :attr:`~Session.ended_reason` and :attr:`~Session.ended_at`) or ``"all"``.

    :raises ValueError: for a bad argument.
    """
    if status not in STATUSES:
        raise ValueError("status must be 'active', 'ended' or 'all'")
    platform = yield from _platform(platform)
    items: list[Any] = []
    if user_id is not None and status == "active":
        mine = yield from flow.user_sessions(_user_id(user_id))
        items = [r for r in mine if platform is None or r.platform == platform]
    else:
        who = None if user_id is None else _user_id(user_id)
        cursor = None
        while True:
            page = yield from flow.list_sessions(user_id=who, platform=platform, limit=PAGE, cursor=cursor,
                                                 status=status)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    policy = yield from flow.policy()
    return [listed(item, policy) for item in items]


def sweep() -> Step[int]:
    """Record the ending of every session that timed out and was not noticed yet
    (one audit event each, dated at its deadline); how many were recorded."""
    recorded = yield from flow.sweep()
    return recorded


def end_session(session_id: str, reason: str, actor: str) -> Step[Record | None]:
    """End one session; its record, or ``None`` when it was not active."""
    if not isinstance(session_id, str):
        raise ValueError("session_id must be a string (Session.id)")
    record = yield from flow.end(session_id, reason)
    if record is not None:
        now = yield from flow.now()
        yield from flow.record([audit.ended(record, reason, actor, now)])
    return record


def end_user(
    user_id: str, reason: str, actor: str, *, platform: str | None = None, keep: str | None = None
) -> Step[list[Record]]:
    """End the sessions of ``user_id`` (on ``platform``) but ``keep``; the ended records."""
    user_id, platform = _user_id(user_id), (yield from _platform(platform))
    records = yield from flow.end_user(user_id, reason, platform=platform, keep=keep)
    if records:
        now = yield from flow.now()
        yield from flow.record([audit.ended(r, reason, actor, now) for r in records])
    return records


def end_all(actor: str, *, keep: str | None = None) -> Step[None]:
    """End every session but ``keep`` (``signout_all``), in constant time."""
    yield from flow.end_all(keep=keep)
    now = yield from flow.now()
    detail = None if keep is None else f"kept {keep}"
    yield from flow.record([audit.Event("signout_all", now, actor, reason="signout_all", detail=detail)])


#: Most roles ``set_roles`` gives, and the longest role name.
MAX_ROLES, MAX_ROLE = 32, 64


def roles_value(roles: object) -> list[str]:
    """``roles`` checked: a list of 1 to :data:`MAX_ROLE` character strings, at most
    :data:`MAX_ROLES` of them, repeats dropped.

    :raises ValueError: naming the rule.
    """
    if isinstance(roles, str) or not isinstance(roles, (list, tuple)):
        raise ValueError("roles must be a list of role names")
    if len(roles) > MAX_ROLES or not all(isinstance(r, str) and 0 < len(r) <= MAX_ROLE for r in roles):
        raise ValueError(f"roles must be at most {MAX_ROLES} names of 1 to {MAX_ROLE} characters")
    return list(dict.fromkeys(roles))


def set_roles(user_id: str, roles: object, actor: str) -> Step[list[Record]]:
    """Replace ``metadata["roles"]`` of every active session of ``user_id``
    (one ``roles_changed`` event); the sessions updated. Permissions follow at
    each session's next request."""
    names = roles_value(roles)
    records = yield from flow.set_roles(_user_id(user_id), names)
    now = yield from flow.now()
    detail = audit.compact_json({"roles": names, "sessions": len(records)})
    yield from flow.record([audit.Event("roles_changed", now, actor, user_id, detail=detail)])
    return records
