"""The request path of the Redis store (:class:`Checks`, a base of
:class:`~.operations.Operations`): one request's check, one ``MGET`` judged
here (:meth:`~Checks.check`); a ``LOCAL_CACHE`` hit, no round trip at all
(:meth:`~Checks.cached`); the rare path through the library's ``check``
function, once per ending and when limits were lowered (:meth:`~Checks.confirm`);
and the write-back of the uses the checks kept unwritten (:meth:`~Checks.write_due`,
``touch.lua``). Like the rest of :mod:`.operations`, these are I/O-free generators.
"""

from __future__ import annotations

from typing import Any

from ...core import (
    ENDED_REASONS,
    Outcome,
    Record,
    cookie_refresh_due,
    deadline,
    flush_bounds,
    flush_by,
    judge,
    reconcile_due,
    refuses_token,
    touch_due,
    touched,
    would_end,
)
from ...policy import Policy
from ..protocol import Check
from .calls import Op
from .local_cache import Hit, Ticket
from .records import decode_pairs, decode_record, now_of
from .scripts import FUNCTIONS
from .state import TICK_SECONDS, State
from .state_calls import StateCalls

_CHECK, _TOUCH = FUNCTIONS["check"], FUNCTIONS["touch"]
#: The tick writes back the uses due before its next turn, and the one after, should that
#: one be late: so a use is written before its moment (``core.flush_by``), not after.
WRITE_AHEAD_MS = int(2 * TICK_SECONDS * 1000)


class Checks(StateCalls):
    """The request path of the operations of one store."""

    def cached(self, session_id: str, passive: bool, unbound_token: bool = False) -> Check | None:
        """A ``LOCAL_CACHE`` hit (see :mod:`.local_cache`), still valid at this
        moment: before its deadline by the policy and epoch it was judged by
        (which a new state empties the cache of), on the estimated store clock.
        An active hit is a use, kept unwritten (:mod:`..write_behind`) as between
        touches; a hit refusing the token presented (:func:`~...core.refuses_token`)
        is not. ``None``: ask Redis (:meth:`check`)."""
        local = self.local
        hit = None if local is None else local.get(session_id)
        if local is None or hit is None:
            return None
        check = hit.check
        now = self.server_clock.now()
        if check.policy is self.cache.policy() and (hit.until is None or now < hit.until):
            if hit.bound and unbound_token:  # core.refuses_token
                return _STALE
            if not passive:  # core.flush_by, from the bounds the entry carries
                by, latest = now + hit.interval, hit.latest
                self.unwritten.note(session_id, now, by if latest is None or by < latest else latest)
            return check
        local.drop((session_id,))  # Redis confirms, and reports an ending once
        return None

    def _keep(self, ticket: Ticket, check: Check, policy: Policy) -> None:
        """Put the valid ``check`` (judged by ``policy``) in the ``LOCAL_CACHE``:
        hits never re-send the cookie, nor report (``ENFORCE=report``)."""
        record = check.record
        if self.local is None or record is None:
            return
        if check.refresh_cookie or check.would_end is not None:
            check = check._replace(refresh_cookie=False, would_end=None)
        interval, latest = flush_bounds(record, policy)
        bound = refuses_token(record, True)
        self.local.put(ticket, Hit(check, deadline(record, policy), interval, latest, bound))

    def check(self, session_id: str, passive: bool, unbound_token: bool = False) -> Op[Check]:
        """One request's token: one read, ``MGET`` of the record and its
        tombstone (plus a state re-read, or a clock measurement, when due), judged
        here by :func:`~sessionguard.core.judge` with the cached policy and epoch
        at :meth:`estimated_now`. An active use is kept in :attr:`unwritten`
        (every touch is written back by the tick, ``touch.lua``). A record judged
        ended goes to :meth:`confirm`, a second round trip once per ending. A
        device-bound session refusing an ``unbound_token`` answers ``stale`` and
        notes no use. With ``LOCAL_CACHE``, a valid answer is kept for :meth:`cached`."""
        known = self.reads.of(session_id)
        if known is None:
            return Check(Outcome.INVALID)
        local = self.local
        ticket = None if local is None else local.ticket()
        if self.cache.claim_poll():
            yield from self.reread_state()
        if self.server_clock.stale():  # the first check, or the subscriber is not ticking
            yield from self.server_clock.measure()
        state = self.cache.state
        policy = state.policy or self.cache.default
        value, tombstone = yield known.read
        if value is None:  # strict mode: nothing is written for an unknown id
            reason = tombstone.partition(b"|")[0].decode("ascii") if tombstone else "invalid"
            return Check(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
        stored, now = self.reads.record(known, session_id, value), self.estimated_now()
        if state.lowered and self.reconcile_due(stored, state.lowered):  # rare: limits lowered
            return (yield from self.confirm(session_id, passive, unbound_token, ticket, stored.user_id))
        # this process's view: the stored record, used as this process last used it
        mine = self.unwritten.seen(session_id)
        view = stored if mine is None else touched(stored, mine)
        if judge(view, policy, now, state.epoch) is not Outcome.VALID:
            return (yield from self.confirm(session_id, passive, unbound_token, ticket))
        if refuses_token(view, unbound_token):  # not a use (DBSC)
            return _STALE
        refresh = False
        record = view
        if not passive:
            record, refresh = touched(view, now), cookie_refresh_due(view, now)
            # a use that makes a touch due is written at the next tick (the old "touch")
            by = now if touch_due(stored, policy, now, passive=False) else flush_by(stored, policy, now)
            self.unwritten.note(session_id, now, by)
        check = Check(Outcome.VALID, record, None, refresh, policy)  # positional: built on every check
        if not policy.enforce:  # ENFORCE=report: the timeout judge() did not apply, before this use
            check = check._replace(would_end=would_end(view, policy, now))
        if ticket is not None:
            self._keep(ticket, check, policy)
        return check

    def reconcile_due(self, record: Record, lowered: int) -> bool:
        """Whether ``record`` goes to :meth:`confirm` to reconcile its user's sessions
        with the limits lowered at ``lowered`` (``core.reconcile_due``, with the
        users this process has seen reconciled since)."""
        at, marks = self._marks
        if at != lowered:
            self._marks = (lowered, {})
            at, marks = self._marks
        return reconcile_due(record.created, lowered, marks.get(record.user_id))

    def confirm(self, session_id: str, passive: bool, unbound_token: bool,
                ticket: Ticket | None, reconciling: str | None = None) -> Op[Check]:
        """The rare path: a record this process judged ended. The ``check``
        function judges it again atomically on the server's clock (counting this
        process's unwritten use of it), tombstones it and answers the ending
        exactly once (one audit event however many processes find it at once);
        or answers valid when a write of another process made it so meanwhile.
        ``reconciling``: the user of a session :meth:`reconcile_due` sends here; the
        function first ends the surplus of the user's sessions (``core.surplus``)."""
        if reconciling is not None:  # the user's last-seen decides a least-recent eviction
            yield from self.write_due(tag=session_id[:4])
        owed = self.unwritten.pop(session_id)
        use = ("p" if passive else "") + ("" if owed is None else str(owed))
        state = yield from self.state()
        lowered = "" if reconciling is None or not state.lowered else str(state.lowered)
        # the token's form is sent only when it carries an issue time (a device-bound
        # session's cookie): the ordinary check stays one key and one argument
        reply = yield _CHECK.call((self.keys.session(session_id),), context=self.context(state),
                                  use=use, token="" if unbound_token else "i", now=self.now_arg(),
                                  lowered=lowered)
        if type(reply) is not list:
            return self._confirmed(session_id, passive, reply, state, ticket)
        # reconciled (check.lua): the answer, when the user was reconciled, the others it ended
        evicted = tuple(decode_pairs(reply[2:]))
        self.forget([r.id for r in evicted])
        at, marks = self._marks
        if reconciling is not None and at == state.lowered:
            marks[reconciling] = int(reply[1])
        check = self._confirmed(session_id, passive, reply[0], state, ticket)
        return check._replace(evicted=evicted) if evicted else check

    def _confirmed(self, session_id: str, passive: bool, reply: Any, state: State,
                   ticket: Ticket | None) -> Check:
        """The ``check`` function's answer (one string) as a :class:`Check`."""
        policy = state.policy or self.cache.default
        kind, answer = reply[:1], reply[1:]  # check.lua: one string
        if kind == b"u":
            reason = answer.decode("ascii") or "invalid"
            return Check(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
        if kind == b"s":  # a device-bound session refusing the token presented: not a use
            if answer:  # but an owed use was written
                self.unwritten.written(session_id, now_of(answer))
            return _STALE
        if kind == b"e":
            reason, _, value = answer.partition(b"|")
            return Check(Outcome(reason.decode("ascii")), ended=decode_record(session_id, value))
        now_text, written_text, value = answer.split(b"|", 2)
        stored, now = decode_record(session_id, value), now_of(now_text)
        written = now_of(written_text) if written_text else None  # the last-seen this check wrote
        if written is not None:
            self.unwritten.written(session_id, written)
        refresh = False
        if passive:  # as stored, or as the owed use wrote it
            seen = max(written or 0, stored.last_seen)
        elif written == now:  # touched
            seen, refresh = now, cookie_refresh_due(stored, now)
        else:
            seen = now
            self.unwritten.note(session_id, now, flush_by(stored, policy, now))
        record = touched(stored, seen) if seen > stored.last_seen else stored
        check = Check(Outcome.VALID, record, None, refresh, policy)
        if ticket is not None:
            self._keep(ticket, check, policy)
        return check

    def write_due(self, everything: bool = False, tag: str | None = None) -> Op[int]:
        """Write back the uses that are owed (``touch.lua``, one call per slot):
        the ones whose moment comes before the next tick or the one after
        (:data:`WRITE_AHEAD_MS`), all of them (``everything``: the store is
        closing), or all those of one user's slot ``tag`` (a login). Returns how
        many records were written."""
        if everything:
            uses = self.unwritten.all()
        elif tag is not None:
            uses = self.unwritten.take(tag)
        else:
            uses = self.unwritten.due(self.estimated_now() + WRITE_AHEAD_MS)
        by_tag: dict[str, list[tuple[str, int]]] = {}
        for session_id, seen in uses:
            by_tag.setdefault(session_id[:4], []).append((session_id, seen))
        written = 0
        for group in by_tag.values():
            keys = tuple(self.keys.session(session_id) for session_id, _ in group)
            pairs = [str(part) for use in group for part in use]
            state = yield from self.state()
            written += yield _TOUCH.call(keys, *pairs, context=self.context(state),
                                         now=self.now_arg())
        return written


_STALE = Check(Outcome.STALE)
