"""The public :class:`Session` value given to apps and shown by the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .audit import iso
from .core import Record, deadline
from .policy import Policy


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class Session:
    """One session as the app and the admin API see it.

    ``token`` is the signed token, set only on the value :meth:`login` returns
    (for clients that use bearer tokens); it is never part of :meth:`to_json`.
    """

    id: str
    user_id: str
    platform: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime | None
    remember_me: bool
    ip: str
    city: str | None
    user_agent: str
    device: str
    metadata: Mapping[str, Any]
    token: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Record, policy: Policy, token: str | None = None) -> Session:
        """The session described by ``record`` under ``policy``."""
        ends = deadline(record, policy)
        return cls(
            id=record.id, user_id=record.user_id, platform=record.platform,
            created_at=_dt(record.created), last_seen_at=_dt(record.last_seen),
            expires_at=None if ends is None else _dt(ends), remember_me=record.remember_me,
            ip=record.ip, city=record.city, user_agent=record.user_agent, device=record.device,
            metadata=record.metadata, token=token,
        )

    @property
    def roles(self) -> tuple[str, ...]:
        """``metadata["roles"]`` as a tuple of strings (empty when absent)."""
        roles = self.metadata.get("roles")
        if isinstance(roles, (list, tuple)):
            return tuple(r for r in roles if isinstance(r, str))
        return ()

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of SPEC §2 (never the token)."""
        return {
            "id": self.id, "user_id": self.user_id, "platform": self.platform,
            "created_at": iso(_ms(self.created_at)), "last_seen_at": iso(_ms(self.last_seen_at)),
            "expires_at": None if self.expires_at is None else iso(_ms(self.expires_at)),
            "remember_me": self.remember_me, "ip": self.ip, "city": self.city,
            "user_agent": self.user_agent, "device": self.device, "metadata": dict(self.metadata),
        }


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
