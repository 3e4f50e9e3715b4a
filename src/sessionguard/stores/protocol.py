"""The store contract: what every session store (memory, Redis; sync and
async) answers. Each method is one atomic step; the rules themselves live
in :mod:`sessionguard.core`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..audit import Event
from ..core import Outcome, Record
from ..policy import Policy


@dataclass(frozen=True, slots=True)
class NewSession:
    """What a login asks the store to create; the store adds the times, the
    generation and the user's own idle timeout."""

    id: str
    user_id: str
    platform: str
    remember_me: bool = False
    ip: str = ""
    city: str | None = None
    user_agent: str = ""
    device: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Check(NamedTuple):
    """The answer to one request's token.

    ``record`` is the valid session (after its touch). When the session ended
    *during* this check (a timeout noticed now), ``ended`` is its last record so
    that exactly one audit event is written. A named tuple, as
    :class:`~sessionguard.core.Record` is: one is built on every request.
    """

    outcome: Outcome
    record: Record | None = None
    ended: Record | None = None
    refresh_cookie: bool = False
    #: the policy the session was judged by (for its ``expires_at``)
    policy: Policy | None = None
    #: ``ENFORCE=report``: the timeout that would have ended the valid session, and
    #: when (:func:`~sessionguard.core.would_end`)
    would_end: tuple[Outcome, int] | None = None
    #: the user's other sessions this check ended: the surplus of a lowered limit
    #: (:func:`~sessionguard.core.surplus`), each for one audit event
    evicted: tuple[Record, ...] = ()


class Binding(NamedTuple):
    """The answer to a device-binding step (:meth:`Store.bind`, :meth:`Store.redeem`).

    ``outcome`` is the session's: ``VALID``, the reason it ended, or
    ``INVALID`` (unknown). For a valid session ``refused`` says why the step
    was not taken (``"bound"``: bound already; ``"unbound"``: never bound;
    ``"used"``: the challenge was answered before), else it was taken and
    ``record`` is the session (bound). When the session ended *during* the
    step (a timeout noticed now), ``record`` is its last record, for the one
    audit event. ``key`` is the bound key (JWK text), on a redeem.
    """

    outcome: Outcome
    record: Record | None = None
    key: str | None = None
    refused: str | None = None
    #: the policy the session was judged by
    policy: Policy | None = None


@dataclass(frozen=True, slots=True)
class Created:
    """A login's result: the new record and the sessions it evicted."""

    record: Record
    evicted: tuple[Record, ...] = ()
    #: the session the request presented, ended (``signed_out``) by this login
    replaced: Record | None = None
    #: ``ENFORCE=report``: the sessions the platform's limit would have evicted ...
    reported: tuple[Record, ...] = ()
    #: ... or that it would have refused this login
    would_refuse: bool = False


class Ended(NamedTuple):
    """A recently ended session in a listing (``status`` ``ended`` or ``all``):
    its last record, why it ended and when (epoch ms: a timeout's deadline,
    :func:`~sessionguard.core.ended_at`)."""

    record: Record
    reason: str
    at: int


#: The listing statuses: valid sessions, those ended within the last day, or both.
STATUSES = ("active", "ended", "all")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing and the cursor of the next (``None``: last page)."""

    items: Sequence[Any]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ActiveCounts:
    """How many sessions are active (valid) on each platform, in the whole
    deployment, as counted at ``at`` (the store's clock, epoch ms)."""

    counts: Mapping[str, int]
    at: int


def with_roles(metadata: Mapping[str, Any], roles: Sequence[str]) -> dict[str, Any]:
    """``metadata`` with ``roles`` as its ``"roles"`` (what ``set_roles`` stores)."""
    return {**metadata, "roles": list(roles)}


class Store(Protocol):
    """A synchronous session store (used by the WSGI shell and the CLI)."""

    def now(self) -> int:
        """The store's clock, in epoch milliseconds."""

    def policy(self) -> Policy:
        """The policy in force: the stored override, else the defaults."""

    def set_policy(self, policy: Policy) -> None:
        """Store ``policy`` for every app server sharing this store."""

    def slot_tag(self, user_id: str) -> str:
        """The slot tag every session id of ``user_id`` starts with: keyed by the
        store's tag key (:class:`~sessionguard.tokens.SlotTags`), so it cannot
        be computed from the user id alone, and the same in every process
        sharing the store, whatever ``SECRET_KEY`` says."""

    def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
        """Validate the session and touch it unless ``passive``. ``unbound_token``:
        the request presented a token without an issue time, which a device-bound
        session refuses (``STALE``, no touch: :func:`~sessionguard.core.refuses_token`)."""

    def cached_check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check | None:
        """The answer :meth:`check` would give from the process's ``LOCAL_CACHE``,
        without I/O (counting as a use unless ``passive``); ``None``: not cached
        (always, for a store without one), ask :meth:`check`."""

    def create(self, new: NewSession, *, ending: str | None = None) -> Created:
        """Create a session, evicting or refusing per policy. ``ending`` is the
        id of the session the request presented, ended (``signed_out``) first.
        Raises :class:`~sessionguard.SessionLimitReached`."""

    def end(self, session_id: str, reason: str, *, user_id: str | None = None) -> Record | None:
        """End one session; with ``user_id``, only if it is that user's."""

    def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]:
        """End every session of ``user_id`` (on ``platform``), except ``keep``."""

    def end_all(self, *, keep: str | None = None) -> None:
        """End every session except ``keep``, in constant time."""

    def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding:
        """Bind a valid session that is not bound yet to a device's public
        ``key`` (JWK text), answering ``challenge`` (issued at ``issued`` ms),
        which is then used. Not a use of the session."""

    def redeem(self, session_id: str, challenge: str, issued: int) -> Binding:
        """Answer ``challenge`` of a valid bound session once (a refresh): its
        ``key``, to check the proof with. Not a use of the session."""

    def user_sessions(self, user_id: str) -> list[Record]:
        """The valid sessions of ``user_id``, newest login first."""

    def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page:
        """Sessions, newest login first, ``limit`` at a time: the valid ones
        (``status="active"``, items :class:`~sessionguard.core.Record`), those
        ended within the last day (``"ended"``, items :class:`Ended`), or both
        (``"all"``)."""

    def sweep(self) -> int:
        """Record the endings of sessions that timed out and were not presented
        since (one audit event each, dated at the deadline, exactly once
        whichever process notices first); how many it recorded."""

    def on_swept(self, callback: Callable[[Sequence[Event]], None]) -> None:
        """Have ``callback`` called with the events every sweep of this process
        records (on demand or in the background), once they are in the log: the
        guard publishes them (``sessionguard.audit`` logger, ``on_event``, metrics)."""

    def user_timeouts(self, user_id: str) -> dict[str, int | None]:
        """The user's own idle timeouts by platform (seconds)."""

    def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None:
        """Replace the user's own idle timeouts and apply them to their sessions."""

    def rotate(self, session_id: str, new_id: str) -> Check:
        """Give a valid session the id ``new_id`` (of the same user's slot), every
        other field kept but its device binding (the key was the old id's); the
        old id becomes unknown. ``Check(VALID, record)``
        with the moved record, else the outcome saying why the session ended
        (``ended`` set when a timeout was noticed now)."""

    def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]:
        """Replace ``metadata["roles"]`` of every valid session of ``user_id``
        (:func:`with_roles`); the records updated."""

    def active_counts(self) -> ActiveCounts | None:
        """The active sessions per platform: exact and current for the memory
        store; for Redis, the deployment's last count, which the first caller
        after it has aged starts anew in the background (``None`` until there is
        one). Costs at most one round trip; never a scan on the caller's time."""

    def append_events(self, events: Sequence[Event]) -> None:
        """Add ``events`` to the audit log."""

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        """Add the events of one self-service action of ``user_id`` to the audit
        log, as far as the user's allowance goes (:func:`~sessionguard.audit.admit`),
        atomically with the counts kept in the store for every process."""

    def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page:
        """Audit events, newest first."""

    def close(self) -> None:
        """Release connections."""


class AsyncStore(Protocol):
    """The asyncio twin of :class:`Store` (used by the ASGI shell)."""

    async def now(self) -> int: ...
    async def policy(self) -> Policy: ...
    async def set_policy(self, policy: Policy) -> None: ...
    async def slot_tag(self, user_id: str) -> str: ...
    async def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check: ...
    def cached_check(  # no I/O: not async
        self, session_id: str, *, passive: bool, unbound_token: bool = False
    ) -> Check | None: ...
    async def create(self, new: NewSession, *, ending: str | None = None) -> Created: ...
    async def end(
        self, session_id: str, reason: str, *, user_id: str | None = None
    ) -> Record | None: ...
    async def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]: ...
    async def end_all(self, *, keep: str | None = None) -> None: ...
    async def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding: ...
    async def redeem(self, session_id: str, challenge: str, issued: int) -> Binding: ...
    async def user_sessions(self, user_id: str) -> list[Record]: ...
    async def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page: ...
    async def sweep(self) -> int: ...
    async def user_timeouts(self, user_id: str) -> dict[str, int | None]: ...
    async def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None: ...
    async def rotate(self, session_id: str, new_id: str) -> Check: ...
    async def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]: ...
    async def active_counts(self) -> ActiveCounts | None: ...
    async def append_events(self, events: Sequence[Event]) -> None: ...
    async def append_self_service(self, user_id: str, events: Sequence[Event]) -> None: ...
    async def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page: ...
    async def close(self) -> None: ...
