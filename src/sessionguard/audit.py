"""Audit events: every session ending, with its reason and who caused it; and
how much one user's self-service actions may add to the shared log (SPEC 9.3,
:func:`admit`), so that no user can push other users' events out of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .core import Record

logger = logging.getLogger("sessionguard.audit")

#: Event ``type`` values (SPEC §5).
EVENT_TYPES = (
    "login", "logout", "idle_timeout", "absolute_timeout", "evicted", "rejected", "revoked",
    "signout_all", "policy_changed", "settings_changed", "roles_changed", "rate_limited",
    "device_bound", "anomaly", "would_end",
)

#: Events one user's self-service actions (``/api/me/...`` writes) add to the log per window.
SELF_SERVICE_EVENTS = 60
#: The window of :data:`SELF_SERVICE_EVENTS`, from the first event it counts (ms).
SELF_SERVICE_WINDOW_MS = 3_600_000
#: One user's ``settings_changed`` events are recorded at most this often (ms).
SETTINGS_EVERY_MS = 60_000


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC string."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One audit event. ``session_id`` is the public id (a hash of the sid);
    an event about one session also carries where that session was signed in
    from (``ip``, ``device``, ``city``: SPEC 9.3)."""

    type: str
    at: int
    actor: str
    user_id: str | None = None
    session_id: str | None = None
    platform: str | None = None
    reason: str | None = None
    detail: str | None = None
    ip: str | None = None
    device: str | None = None
    city: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``/api/audit``."""
        data: dict[str, Any] = {
            "type": self.type, "at": iso(self.at), "user_id": self.user_id,
            "session_id": self.session_id, "platform": self.platform,
            "reason": self.reason, "actor": self.actor,
            "ip": self.ip, "device": self.device, "city": self.city,
        }
        if self.detail is not None:
            data["detail"] = self.detail
        return data

    def to_fields(self) -> dict[str, str]:
        """Flat string fields, for a Redis stream entry."""
        return {k: str(v) for k, v in self._items() if v is not None}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Event:
        """The inverse of :meth:`to_fields`."""
        return cls(
            type=fields["type"], at=int(fields["at"]), actor=fields["actor"],
            user_id=fields.get("user_id"), session_id=fields.get("session_id"),
            platform=fields.get("platform"), reason=fields.get("reason"),
            detail=fields.get("detail"), ip=fields.get("ip"), device=fields.get("device"),
            city=fields.get("city"),
        )

    def _items(self) -> list[tuple[str, object]]:
        return [(k, getattr(self, k)) for k in self.__slots__]


def ended(record: Record, reason: str, actor: str, at: int) -> Event:
    """The event for ``record`` ending with ``reason``."""
    kind = "logout" if reason == "signed_out" else reason
    return about(record, kind, actor, at, reason)


def about(record: Record, kind: str, actor: str, at: int, reason: str | None = None,
          detail: str | None = None) -> Event:
    """An event of type ``kind`` about the session ``record``, with where it was
    signed in from."""
    return Event(kind, at, actor, record.user_id, record.id, record.platform, reason, detail,
                 record.ip or None, record.device or None, record.city)


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one user's self-service actions have added to the log in the window
    that began at ``start``: ``recorded`` events, ``dropped`` ones not recorded,
    ``report`` the id (in the log) of the window's ``rate_limited`` event;
    ``settings_at`` is when the user's last ``settings_changed`` was recorded."""

    start: int = 0
    recorded: int = 0
    dropped: int = 0
    settings_at: int | None = None
    report: str | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """What :func:`admit` lets into the log: ``kept`` events and, when events were
    not recorded, the window's ``rate_limited`` event, which replaces the one the
    allowance names (so a window has one, saying how many so far)."""

    allowance: Allowance
    kept: tuple[Event, ...]
    report: Event | None


def admit(allowance: Allowance | None, events: Sequence[Event], now: int) -> Admitted:
    """Which of one user's self-service ``events`` (all of one action, at ``now``)
    enter the log. A ``settings_changed`` within :data:`SETTINGS_EVERY_MS` of the
    last recorded one is coalesced (the settings are applied and can be read; the
    log keeps one event a minute); any other event beyond
    :data:`SELF_SERVICE_EVENTS` in the window is counted instead of recorded, and
    the window's ``rate_limited`` event says how many. ``lua/audit.lua`` mirrors this."""
    held = allowance or Allowance()
    if allowance is None or now >= held.start + SELF_SERVICE_WINDOW_MS:
        held = Allowance(start=now, settings_at=held.settings_at)
    recorded, dropped, settings_at = held.recorded, held.dropped, held.settings_at
    kept = []
    for event in events:
        coalesced = settings_at is not None and now - settings_at < SETTINGS_EVERY_MS
        if event.type == "settings_changed" and coalesced:
            continue
        if recorded < SELF_SERVICE_EVENTS:
            kept.append(event)
            recorded += 1
            if event.type == "settings_changed":
                settings_at = now
        else:
            dropped += 1
    report = None
    if dropped > held.dropped:
        first = events[0]
        told = {"not_recorded": dropped, "limit": SELF_SERVICE_EVENTS, "since": iso(held.start)}
        report = Event("rate_limited", now, first.actor, first.user_id, detail=compact_json(told))
    return Admitted(Allowance(held.start, recorded, dropped, settings_at, held.report), tuple(kept), report)


def log(event: Event) -> None:
    """Write ``event`` to the ``sessionguard.audit`` logger as one JSON line
    (``json.dumps`` escapes line breaks, so a hostile value stays one field)."""
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", json.dumps(event.to_json(), ensure_ascii=True))


def compact_json(value: object) -> str:
    """``value`` as compact JSON (the form stored and measured)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
