"""The Redis store's operations, written once and free of I/O.

Each operation is a generator: it yields what it needs sent to Redis (a
:class:`Script` or a few plain :class:`Commands`), receives the reply, and
returns the store's answer. :class:`~.redis.RedisStore` drives them with plain
calls and :class:`~.async_store.AsyncRedisStore` with ``await`` (the h11 /
httpx-auth shape: one protocol core, two thin shells). A failed request is
thrown back into the generator as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from ...audit import Event
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
from ...errors import StoreUnavailable
from ...policy import Policy
from ...tokens import is_session_id
from ..protocol import Check, Page
from ..write_behind import Unwritten
from .audit_log import AuditLog
from .calls import Arg, Op, Rerun, Script, one
from .endings import Endings
from .keys import Keys, encode_user
from .listing import Sweep, event_page, session_page, start_of
from .local_cache import Hit, LocalCache, Ticket
from .reads import Reads
from .records import decode_pairs, decode_record, now_of
from .scripts import FUNCTIONS, Function, pack_context, pack_platforms
from .server_clock import ServerClock
from .state import TICK_SECONDS, State, StateCache, limits_text, policy_to_json
from .users import UserOperations

_CHECK, _TOUCH, _END, _STATE = FUNCTIONS["check"], FUNCTIONS["touch"], FUNCTIONS["end"], FUNCTIONS["state"]
#: The tick writes back the uses due before its next turn, and the one after, should that
#: one be late: so a use is written before its moment (``core.flush_by``), not after.
WRITE_AHEAD_MS = int(2 * TICK_SECONDS * 1000)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class Operations:
    """Plans every store operation. ``cluster``: the global listing index lives in
    another slot, so scripts cannot maintain it and a login adds it separately.
    ``local``: the process's cache of valid checks (``LOCAL_CACHE``), if on."""

    def __init__(self, keys: Keys, cache: StateCache, *, clock: Callable[[], int] | None, cluster: bool,
                 audit_maxlen: int, audit_retention: int | None = None,
                 local: LocalCache | None = None) -> None:
        self.keys = keys
        self.cache = cache
        self.clock = clock
        self.cluster = cluster
        self.audit = AuditLog(keys, audit_maxlen, audit_retention)
        self.local = local
        cache.local = local
        self._contexts: tuple[State, str] | None = None
        #: the listing index's sweep, a step a tick (:class:`.listing.Sweep`)
        self.sweep = Sweep(keys)
        #: uses seen here, not written back yet (core.touch_due, core.flush_by)
        self.unwritten = cache.unwritten = Unwritten()
        #: the request path's read of each session, and the record it last decoded
        self.reads = Reads(keys)
        #: the server's clock as this process estimates it (:mod:`.server_clock`)
        self.server_clock = ServerClock(clock)
        #: the operations on one user's sessions (logins, listings, sign-outs, timeouts)
        self.users = UserOperations(self)
        #: the sweep of sessions that timed out, a step a tick (:class:`.endings.Endings`)
        self.endings = Endings(self)
        #: told the events each sweep recorded (the guard publishes them: ``Store.on_swept``)
        self.on_swept: Callable[[Sequence[Event]], None] | None = None
        #: lowered limits: when (``State.lowered``) and, per user, when the user's sessions
        #: were last seen reconciled with them (``core.reconcile_due``)
        self._marks: tuple[int, dict[str, int]] = (0, {})

    # -- state and time --------------------------------------------------------

    def state(self) -> Op[State]:
        """The cached state, re-read first when the cache says so."""
        if self.cache.claim_poll():
            yield from self.reread_state()
        return self.cache.state

    def reread_state(self) -> Op[None]:
        """Read the state into the cache (``state.lua``: a lost one is made anew,
        signing everyone out, rather than read as "never signed out")."""
        reply = yield self._state_call("read")
        self.cache.apply(self.cache.read(reply))
        if not self.cache.limits_recorded or not self.cache.state.limits:
            # once a process (and whenever the state has none, as after its loss): the limits
            # it applies (its environment's, or the stored policy's) recorded, so that lowering
            # them by a restart applies to existing sessions
            limits = limits_text(self.cache.policy())
            if self.cache.state.limits != limits:
                reply = yield self._state_call("limits", limits=limits)
                self.cache.apply(self.cache.read(reply))
            self.cache.limits_recorded = True

    def _state_call(self, change: str, value: str = "", created: str = "", limits: str = "") -> Script:
        # a tag key for a state that has none: random, only ever stored once (state.lua)
        return _STATE.call((self.keys.state,), channel=self.keys.bus, change=change, now=self.now_arg(),
                           tag_key=secrets.token_hex(32), value=value, created=created, limits=limits)

    def slot_tag(self, user_id: str) -> Op[str]:
        """The slot tag of ``user_id`` under the deployment's tag key, which comes
        with the state (read once per process, and then kept by the subscriber)."""
        state = yield from self.state()
        if state.tags is None:  # never read yet in a way that gave a key
            yield from self.reread_state()
            state = self.cache.state
        if state.tags is None:
            raise StoreUnavailable("the store gave no readable tag key")
        return state.tags(user_id)

    def now(self) -> Op[int]:
        """The injected clock, else the Redis server's ``TIME`` (ms)."""
        if self.clock is not None:
            return self.clock()
        seconds, micros = yield from one("TIME", rerun=Rerun.ALWAYS)
        return int(seconds) * 1000 + int(micros) // 1000

    def estimated_now(self) -> int:
        """The store's clock as this process estimates it, without a round trip."""
        return self.server_clock.now()

    def policy(self) -> Op[Policy]:
        """The configured policy with the stored override's fields applied."""
        yield from self.state()
        return self.cache.policy()

    def set_policy(self, policy: Policy) -> Op[None]:
        """Store the JSON fields of ``policy`` for every process (``state.lua``) and
        apply them here at once (environment-only settings are not stored)."""
        # the limits as every process applies them (the stored fields over its configuration)
        limits = limits_text(self.cache.default.updated(policy.to_json()))
        reply = yield self._state_call("policy", policy_to_json(policy), limits=limits)
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def end_all(self, keep: str | None) -> Op[None]:
        """Move the epoch (``state.lua``): every session ends but ``keep``, if it
        still exists (its login time tells the function whether the last sign-out
        of everyone ended it, ``core.epoch_after``)."""
        created = ""
        if keep is not None and is_session_id(keep):
            value = yield from one("GET", self.keys.session(keep), rerun=Rerun.ALWAYS)
            created = "" if value is None else str(decode_record(keep, value).created)
        kept = keep if keep is not None and created else ""  # gone: ended (or never was)
        reply = yield self._state_call("epoch", kept, created)
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def _forget_all(self) -> None:
        if self.local is not None:
            self.local.clear()

    def context(self, state: State) -> str:
        """The context argument of every session function under ``state``
        (:data:`.scripts.CONTEXT`): the same string object for as long as the
        state is the same one."""
        cached = self._contexts
        if cached is not None and cached[0] is state:
            return cached[1]
        policy = state.policy or self.cache.default
        fields = {
            "epoch_at": str(state.epoch.at), "epoch_keep": state.epoch.keep or "",
            "remember_me_period": _opt(policy.remember_me_period),
            "allow_user_timeouts": "1" if policy.allow_user_timeouts else "0",
            "on_limit": policy.on_limit, "evict": policy.evict,
            "session_ceiling": str(policy.session_ceiling),
            "max_sessions_total": _opt(policy.max_sessions_total),
            "enforce": "1" if policy.enforce else "0",
            "listed": "0" if self.cluster else "1", "prefix": self.keys.prefix,
        }
        fields["platforms"] = pack_platforms({
            name: (_opt(p.idle_timeout), _opt(p.absolute_timeout), _opt(p.session_lifetime),
                   _opt(p.max_sessions))
            for name, p in policy.platforms.items()
        })
        self._contexts = (state, pack_context(fields))
        return self._contexts[1]

    def call(self, function: Function, keys: tuple[str, ...], *rest: Arg, **args: Arg) -> Op[Any]:
        """Call a session function with the context it needs: the clock, and the
        epoch and policy of the cached state (re-read first when due)."""
        state = yield from self.state()
        return (yield function.call(keys, *rest, context=self.context(state), now=self.now_arg(), **args))

    def forget(self, ids: Sequence[str]) -> None:
        """Drop sessions from this process's cache at once (the functions announce
        them to the other processes)."""
        if self.local is not None and ids:
            self.local.drop(ids)

    def now_arg(self) -> str:
        """The ``now`` argument of a function: the injected clock, or ``''`` (Redis's ``TIME``)."""
        return "" if self.clock is None else str(self.clock())

    # -- the request path ------------------------------------------------------

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


_STALE = Check(Outcome.STALE)
