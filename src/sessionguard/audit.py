"""Audit events: every session ending, with its reason and who caused it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .core import Record

logger = logging.getLogger("sessionguard.audit")

#: Event ``type`` values (SPEC §5).
EVENT_TYPES = (
    "login", "logout", "idle_timeout", "absolute_timeout", "evicted", "rejected", "revoked",
    "signout_all", "policy_changed", "settings_changed", "roles_changed",
)


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC string."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One audit event. ``session_id`` is the public id (a hash of the sid)."""

    type: str
    at: int
    actor: str
    user_id: str | None = None
    session_id: str | None = None
    platform: str | None = None
    reason: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``/api/audit``."""
        data: dict[str, Any] = {
            "type": self.type, "at": iso(self.at), "user_id": self.user_id,
            "session_id": self.session_id, "platform": self.platform,
            "reason": self.reason, "actor": self.actor,
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
            detail=fields.get("detail"),
        )

    def _items(self) -> list[tuple[str, object]]:
        return [(k, getattr(self, k)) for k in self.__slots__]


def ended(record: Record, reason: str, actor: str, at: int) -> Event:
    """The event for ``record`` ending with ``reason``."""
    kind = "logout" if reason == "signed_out" else reason
    return Event(kind, at, actor, record.user_id, record.id, record.platform, reason)


def log(event: Event) -> None:
    """Write ``event`` to the ``sessionguard.audit`` logger as one JSON line
    (``json.dumps`` escapes line breaks, so a hostile value stays one field)."""
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", json.dumps(event.to_json(), ensure_ascii=True))


def compact_json(value: object) -> str:
    """``value`` as compact JSON (the form stored and measured)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
