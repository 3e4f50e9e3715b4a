"""The Redis store's operations, written once and free of I/O.

Each operation is a generator: it yields what it needs sent to Redis (a
:class:`Script` or a few plain :class:`Commands`), receives the reply, and
returns the store's answer. :class:`~.redis.RedisStore` drives them with plain
calls and :class:`~.async_store.AsyncRedisStore` with ``await`` (the h11 /
httpx-auth shape: one protocol core, two thin shells). A failed request is
thrown back into the generator as :class:`StoreUnavailable`.

:class:`Operations` is the one object both stores drive. What it is made of:
:mod:`.state_calls` (its base: the state, the clock, the context of every
function call), :mod:`.checks` (the request path: ``check``, ``cached``,
``confirm``, the write-back of uses), :mod:`.users` (one user's sessions:
logins, listings, sign-outs, timeouts), :mod:`.endings` (the sweep of sessions
that timed out), :mod:`.binding` (DBSC), :mod:`.audit_log`; here, the ending of
one session, the admin listing and the audit calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...audit import Event
from ...core import Record
from ...tokens import is_session_id
from ..protocol import Page
from .audit_log import AuditLog
from .calls import Op
from .checks import Checks
from .endings import Endings
from .keys import Keys, encode_user
from .listing import Sweep, event_page, session_page, start_of
from .local_cache import LocalCache
from .records import decode_record
from .scripts import FUNCTIONS
from .state import StateCache
from .users import UserOperations

_END = FUNCTIONS["end"]


class Operations(Checks):
    """Plans every store operation. ``cluster``: the global listing index lives in
    another slot, so scripts cannot maintain it and a login adds it separately.
    ``local``: the process's cache of valid checks (``LOCAL_CACHE``), if on."""

    def __init__(self, keys: Keys, cache: StateCache, *, clock: Callable[[], int] | None, cluster: bool,
                 audit_maxlen: int, audit_retention: int | None = None,
                 local: LocalCache | None = None) -> None:
        super().__init__(keys, cache, clock=clock, cluster=cluster, local=local)
        self.audit = AuditLog(keys, audit_maxlen, audit_retention)
        #: the listing index's sweep, a step a tick (:class:`.listing.Sweep`)
        self.sweep = Sweep(keys)
        #: the operations on one user's sessions (logins, listings, sign-outs, timeouts)
        self.users = UserOperations(self)
        #: the sweep of sessions that timed out, a step a tick (:class:`.endings.Endings`)
        self.endings = Endings(self)
        #: told the events each sweep recorded (the guard publishes them: ``Store.on_swept``)
        self.on_swept: Callable[[Sequence[Event]], None] | None = None

    # -- logins and sign-outs --------------------------------------------------

    def end(self, session_id: str, reason: str, user_id: str | None) -> Op[Record | None]:
        """End one session (``end``); with ``user_id``, only that user's."""
        if not is_session_id(session_id):
            return None
        owner = ""
        if user_id is not None:
            if (yield from self.slot_tag(user_id)) != session_id[:4]:
                return None
            owner = encode_user(user_id)
        reply = yield from self.call(_END, (self.keys.session(session_id),), reason=reason, owner=owner)
        self.forget((session_id,))
        return None if reply is None else decode_record(session_id, reply)

    # -- listings ----------------------------------------------------------------

    def list_sessions(self, user_id: str | None, platform: str | None, limit: int,
                      cursor: str | None, status: str = "active") -> Op[Page]:
        """Sessions of ``status``, newest login first, ``limit`` at a time (a
        user's from their indexes, everyone's from the listing index)."""
        if user_id is not None:
            return (yield from self.users.list_page(user_id, platform, limit, cursor, status))
        start = start_of(cursor)
        if start is None:  # as the memory store: a malformed cursor lists nothing
            return Page([], None)
        yield from self.write_due()
        state = yield from self.state()
        now = yield from self.now()
        found = yield from session_page(
            self.keys, start, policy=state.policy or self.cache.default, epoch=state.epoch, now=now,
            platform=platform, limit=limit, status=status)
        return Page(self.unwritten.shown(list(found.items)), found.next_cursor)

    # -- audit ---------------------------------------------------------------------

    def append_events(self, events: Sequence[Event]) -> Op[None]:
        """Append to the audit log (:class:`~.audit_log.AuditLog`)."""
        return (yield from self.audit.append(events, self.server_clock.offset))

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> Op[None]:
        """Append one self-service action's events, as far as the user's allowance goes."""
        return (yield from self.audit.append_self_service(user_id, events, self.server_clock.offset))

    def events(self, user_id: str | None, limit: int, cursor: str | None) -> Op[Page]:
        """Audit events, newest first."""
        return (yield from event_page(self.keys, user_id, limit, cursor))
