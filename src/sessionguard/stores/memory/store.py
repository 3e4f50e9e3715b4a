"""The in-memory store (``memory://``): one process only, for development
and tests. It applies the rules of :mod:`sessionguard.core` directly; the
Redis scripts mirror them.

:class:`MemoryStore` is one object made of the operations of each module of
this package, all subclasses of :class:`~.state.MemoryState` (what the store
holds and the steps they share): :mod:`.users` logins, sign-outs and a user's
settings, :mod:`.binding` device binding, :mod:`.listing` listings and counts,
:mod:`.endings` the sweep of sessions that timed out, :mod:`.audit_log` the
audit log. Here: the policy, the epoch, and the request path (``check``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...audit import Event
from ...core import (
    Outcome,
    Record,
    cookie_refresh_due,
    epoch_after,
    flush_by,
    judge,
    limits_lowered,
    reconcile_due,
    refuses_token,
    surplus,
    touch_due,
    touched,
    would_end,
)
from ...policy import Policy
from ...tokens import TAG_LENGTH
from ..protocol import Check, Page
from .binding import DeviceBinding
from .endings import Endings
from .listing import Listings
from .state import own
from .users import UserOperations


class MemoryStore(UserOperations, DeviceBinding, Listings, Endings):
    """A thread-safe, process-local :class:`~sessionguard.stores.protocol.Store`.

    :param policy: the default policy (from the environment).
    :param clock: epoch milliseconds; tests inject a fake one.
    :param audit_maxlen: events kept in the audit log at most.
    :param audit_retention: seconds an event is kept at least (unless ``audit_maxlen``
        is reached first), and at most; ``None``: until ``audit_maxlen`` pushes it out.
    """

    # -- policy, time and the epoch ----------------------------------------

    def now(self) -> int:
        return self._clock()

    def set_policy(self, policy: Policy) -> None:
        # As the Redis store: only the JSON fields are stored, re-applied to the
        # configured policy, so EVICT and ALLOW_USER_TIMEOUTS stay the environment's.
        stored = self._default.updated(policy.to_json(), stored=True)
        with self._lock:
            if stored != self.policy():
                self._unwritten.owe()
            if limits_lowered(self.policy().limits(), stored.limits()):
                self._lowered, self._marks = self._clock(), {}
            self._policy = stored

    def slot_tag(self, user_id: str) -> str:
        return self._tags(user_id)

    def end_all(self, *, keep: str | None = None) -> None:
        with self._lock:
            now = self._clock()
            kept = None if keep is None else self._live(keep, now)
            self._epoch = epoch_after(now, kept, self._epoch)

    # -- the request path --------------------------------------------------

    def check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
        with self._lock:
            evicted = self._reconcile(session_id, self._clock()) if self._lowered else ()
            check = self._check(session_id, passive, unbound_token)
            if not evicted:
                return check
            mine = next((r for r in evicted if r.id == session_id), None)
            others = tuple(r for r in evicted if r.id != session_id)
            if mine is not None:
                return Check(Outcome.EVICTED, ended=mine, evicted=others)
            return check._replace(evicted=others)

    def _reconcile(self, session_id: str, now: int) -> tuple[Record, ...]:
        """Lowered limits: the surplus of the user of ``session_id`` ended (``evicted``),
        once per user and lowering (``core.reconcile_due``), when the session is valid,
        before it is judged (as the Redis store's ``check`` function)."""
        record = self._records.get(session_id)
        if record is None:
            return ()
        if not reconcile_due(record.created, self._lowered, self._marks.get(record.user_id)):
            return ()
        self._write_due(now)
        for tag in {i[:TAG_LENGTH] for i in self._by_user.get(record.user_id, ())}:
            self._write(self._unwritten.take(tag), now)  # their last-seen decides a least-recent eviction
        record = self._live(session_id, now)
        policy = self.policy()
        if record is None or judge(record, policy, now, self._epoch) is not Outcome.VALID:
            return ()  # ended: the check says why
        self._marks[record.user_id] = now
        alive = self._user_records(record.user_id, now)
        return tuple(self._end(r, "evicted", now) for r in surplus(alive, policy))

    def _check(self, session_id: str, passive: bool, unbound_token: bool) -> Check:
        with self._lock:
            now = self._clock()
            record = self._live(session_id, now)
            if record is None:
                return Check(Outcome(self._tombstone(session_id, now) or "invalid"))
            policy = self.policy()
            seen = self._unwritten.overdue(session_id, now)
            owed = seen is not None and record.last_seen < seen <= now  # a write owed now
            if owed and seen is not None:
                record = touched(record, seen)
            outcome = judge(record, policy, now, self._epoch)
            if outcome is not Outcome.VALID:
                return Check(outcome, ended=self._end(record, outcome.value, now))
            refused = refuses_token(record, unbound_token)
            # ENFORCE=report: the timeout that would have ended it, judged before this use
            would = None if policy.enforce else would_end(record, policy, now)
            if passive or refused:
                if owed:
                    self._put(record, policy, now)
                if refused:  # not a use of the session
                    return Check(Outcome.STALE)
                # this process's own unwritten use is part of the view (its expires_at)
                pending = self._unwritten.seen(session_id)
                view = touched(record, pending) if pending is not None else record
                return Check(outcome, own(view), policy=policy, would_end=would)
            fresh = touched(record, now)
            if not owed and not touch_due(record, policy, now, passive=False):
                self._unwritten.note(session_id, now, flush_by(record, policy, now))
                # this request's view: used now
                return Check(outcome, own(fresh), policy=policy, would_end=would)
            self._put(fresh, policy, now)  # a write owed or due writes the latest use
            self._unwritten.written(session_id, now)
            refresh = cookie_refresh_due(record, now)
            return Check(outcome, own(fresh), None, refresh, policy, would)

    def cached_check(self, session_id: str, *, passive: bool, unbound_token: bool = False) -> None:
        return None  # the store itself is in the process: nothing to cache

    # -- audit ---------------------------------------------------------------

    def append_events(self, events: Sequence[Event]) -> None:
        self._audit.append(events)

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        self._audit.append_self_service(user_id, events)

    def events(self, *, user_id: str | None, limit: int, cursor: str | None) -> Page:
        return self._audit.page(user_id, limit, cursor)

    def close(self) -> None:
        """Write back the uses still owed; stop sweeping."""
        if self._sweeper is not None:
            self._sweeper.set()
        with self._lock:
            self._write(self._unwritten.all(), self._clock())
