"""The asyncio face of the in-memory store: the same calls, awaitable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...audit import Event
from ...core import Record
from ...policy import Policy
from ..protocol import ActiveCounts, Binding, Check, Created, NewSession, Page
from .store import MemoryStore


class AsyncMemoryStore:
    """The asyncio face of a :class:`MemoryStore` (no I/O, so no awaits inside)."""

    def __init__(self, store: MemoryStore) -> None:
        self.sync = store

    async def now(self) -> int:
        return self.sync.now()

    async def policy(self) -> Policy:
        return self.sync.policy()

    async def set_policy(self, policy: Policy) -> None:
        self.sync.set_policy(policy)

    async def slot_tag(self, user_id: str) -> str:
        return self.sync.slot_tag(user_id)

    async def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
        return self.sync.check(session_id, passive=passive, unbound_token=unbound_token)

    def cached_check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> None:
        return None

    async def create(self, new: NewSession, *, ending: str | None = None) -> Created:
        return self.sync.create(new, ending=ending)

    async def end(self, session_id: str, reason: str, *, user_id: str | None = None) -> Record | None:
        return self.sync.end(session_id, reason, user_id=user_id)

    async def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]:
        return self.sync.end_user(user_id, reason, platform=platform, keep=keep)

    async def end_all(self, *, keep: str | None = None) -> None:
        self.sync.end_all(keep=keep)

    async def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding:
        return self.sync.bind(session_id, key, challenge, issued)

    async def redeem(self, session_id: str, challenge: str, issued: int) -> Binding:
        return self.sync.redeem(session_id, challenge, issued)

    async def user_sessions(self, user_id: str) -> list[Record]:
        return self.sync.user_sessions(user_id)

    async def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page:
        return self.sync.list_sessions(user_id=user_id, platform=platform, limit=limit, cursor=cursor,
                                       status=status)

    async def sweep(self) -> int:
        return self.sync.sweep()

    async def user_timeouts(self, user_id: str) -> dict[str, int | None]:
        return self.sync.user_timeouts(user_id)

    async def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None:
        self.sync.set_user_timeouts(user_id, timeouts)

    async def rotate(self, session_id: str, new_id: str) -> Check:
        return self.sync.rotate(session_id, new_id)

    async def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]:
        return self.sync.set_roles(user_id, roles)

    async def active_counts(self) -> ActiveCounts:
        return self.sync.active_counts()

    async def append_events(self, events: Sequence[Event]) -> None:
        self.sync.append_events(events)

    async def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        self.sync.append_self_service(user_id, events)

    async def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page:
        return self.sync.events(user_id=user_id, limit=limit, cursor=cursor)

    async def close(self) -> None:
        self.sync.close()
