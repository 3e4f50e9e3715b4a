"""The public :class:`Session` value given to apps and shown by the admin API."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .audit import iso
from .core import Record, deadline
from .policy import Policy


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# The last second formatted by _iso: the Session-Expires of a steadily used
# session moves with the clock, so most responses reuse it (one tuple, replaced
# whole: threads race harmlessly).
_last_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))


def _iso(ms: int) -> str:
    """``ms`` as :func:`~.audit.iso` writes it (``2027-01-15T08:02:03.456Z``),
    at a fraction of its cost: it runs on every response with a session."""
    global _last_second
    second, millis = divmod(ms, 1000)
    cached, text = _last_second
    if cached != second:
        t = time.gmtime(second)
        text = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
        _last_second = (second, text)
    return text + _MILLIS[millis]


class Session:
    """One session as the app and the admin API see it (read-only).

    ``token`` is the signed token, set only on the value ``login()`` returns
    (for clients that use bearer tokens); it is never part of :meth:`to_json`
    nor of the ``repr``. Times are timezone-aware UTC datetimes, computed on
    first use: most requests only look at ``user_id``. A session of a listing
    is a :class:`ListedSession` (its ``status``; why and when an ended one
    ended); any other is active.
    """

    __slots__ = ("_record", "_policy", "token", "_expires_header")

    def __init__(self, record: Record, policy: Policy, token: str | None = None) -> None:
        self._record = record
        self._policy = policy
        self.token = token
        self._expires_header: str | None = ""  # "": not computed yet (see expires_header)

    @classmethod
    def from_record(cls, record: Record, policy: Policy, token: str | None = None) -> Session:
        """The session described by ``record`` under ``policy``."""
        return cls(record, policy, token)

    def __repr__(self) -> str:
        r = self._record
        return f"<Session id={r.id!r} user_id={r.user_id!r} platform={r.platform!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Session) and other._record == self._record

    def __hash__(self) -> int:
        return hash(self._record.id)

    @property
    def id(self) -> str:
        """Public handle of the session (a hash of the sid, not a token)."""
        return self._record.id

    @property
    def user_id(self) -> str:
        return self._record.user_id

    @property
    def platform(self) -> str:
        """``"web"``, ``"mobile"`` or ``"desktop"``."""
        return self._record.platform

    @property
    def created_at(self) -> datetime:
        return _dt(self._record.created)

    @property
    def last_seen_at(self) -> datetime:
        return _dt(self._record.last_seen)

    @property
    def status(self) -> str:
        """``"active"``, or ``"ended"`` for a listed session that has ended."""
        return "active"

    @property
    def ended_reason(self) -> str | None:
        """Why a listed ended session ended (an ``ended_reason`` value); ``None`` while active."""
        return None

    @property
    def ended_at(self) -> datetime | None:
        """When a listed ended session ended (a timeout: its deadline); ``None`` while active."""
        return None

    @property
    def expires_at(self) -> datetime | None:
        """The earliest moment the session ends if untouched (``None``: never)."""
        ends = deadline(self._record, self._policy)
        return None if ends is None else _dt(ends)

    def expires_header(self) -> str | None:
        """:attr:`expires_at` as the ``Session-Expires`` response header carries
        it: ISO 8601 UTC as in :meth:`to_json` (``None``: never expires).
        Computed once: a ``LOCAL_CACHE`` hit shows the same value again
        (:meth:`~.decision.Decider.verdict`)."""
        text = self._expires_header
        if text == "":
            ends = deadline(self._record, self._policy)
            text = self._expires_header = None if ends is None else _iso(ends)
        return text

    @property
    def remember_me(self) -> bool:
        return self._record.remember_me

    @property
    def ip(self) -> str:
        return self._record.ip

    @property
    def city(self) -> str | None:
        return self._record.city

    @property
    def user_agent(self) -> str:
        return self._record.user_agent

    @property
    def device(self) -> str:
        """Human-readable label such as ``"Chrome 131 on macOS"``."""
        return self._record.device

    @property
    def device_bound(self) -> bool:
        """Bound to a browser's key (DBSC): its cookie is short-lived and renewed
        only with a proof signed by that key."""
        return self._record.device_bound

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self._record.metadata

    @property
    def roles(self) -> tuple[str, ...]:
        """``metadata["roles"]`` as a tuple of strings (empty when absent)."""
        roles = self._record.metadata.get("roles")
        if isinstance(roles, (list, tuple)):
            return tuple(r for r in roles if isinstance(r, str))
        return ()

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of SPEC §2 (never the token)."""
        r = self._record
        return {
            "id": r.id, "user_id": r.user_id, "platform": r.platform,
            "created_at": iso(r.created), "last_seen_at": iso(r.last_seen),
            "expires_at": iso(deadline(r, self._policy)), "remember_me": r.remember_me,
            "ip": r.ip, "city": r.city, "user_agent": r.user_agent, "device": r.device,
            "metadata": dict(r.metadata), "device_bound": r.device_bound,
        }


class ListedSession(Session):
    """A session as a listing shows it (SPEC 9.2): its JSON says ``status``, and
    an ended one (``ended``: its reason and when, epoch ms) also ``ended_at`` and
    ``ended_reason``, with ``expires_at`` the moment it ended. (A subclass, so
    that the session of every request pays nothing for these.)"""

    __slots__ = ("_ended",)

    def __init__(self, record: Record, policy: Policy, ended: tuple[str, int] | None = None) -> None:
        super().__init__(record, policy)
        self._ended = ended

    @property
    def status(self) -> str:
        return "active" if self._ended is None else "ended"

    @property
    def ended_reason(self) -> str | None:
        return None if self._ended is None else self._ended[0]

    @property
    def ended_at(self) -> datetime | None:
        return None if self._ended is None else _dt(self._ended[1])

    @property
    def expires_at(self) -> datetime | None:
        return super().expires_at if self._ended is None else _dt(self._ended[1])

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        ended = self._ended
        data["status"] = "active" if ended is None else "ended"
        if ended is not None:
            data["expires_at"] = data["ended_at"] = iso(ended[1])
            data["ended_reason"] = ended[0]
        return data


def listed(item: Record | tuple[Record, str, int], policy: Policy) -> ListedSession:
    """A listing's item (a valid record, or a store's ``Ended``) as a :class:`ListedSession`."""
    if isinstance(item, Record):
        return ListedSession(item, policy)
    record, reason, at = item
    return ListedSession(record, policy, (reason, at))
