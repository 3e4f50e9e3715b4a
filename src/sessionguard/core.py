"""The decision core: everything that decides lives here; no I/O, no clock.

Rules (SPEC §4), each written once:

- **absolute timeout**: a session older than its lifetime has ended, however
  active (``absolute_timeout``). The lifetime is the platform's absolute timeout
  for a remember-me session, else its session timeout (``SESSION_TIMEOUT``,
  never longer than the absolute timeout: :attr:`.PlatformPolicy.session_lifetime`);
- **idle timeout**: a session unused for longer than its idle limit has ended.
  The idle limit is the remember-me period for remember-me sessions, else the
  user's own timeout for the platform (when allowed), else the platform's;
- **which timeout**: a session past both deadlines says the one that came
  first (the absolute timeout on a tie), however late it is judged;
- **sign-out of everyone** records an epoch (a moment, on the store's clock):
  a session created before it has ended unless it is the one the sign-out
  kept. A moment rather than a counter, so that a login on a server whose
  cached epoch is a little stale is not ended by it;
- **touch**: an active (not passive) request uses the session. The store writes
  last-seen back only once per *touch interval* (a third of the idle limit,
  between a second and ten minutes); a use in between is kept by the process
  that saw it and written back by :func:`flush_by` at the latest, which is
  before the stored last-seen could make the session look idle. So idle
  expiry stays exact to the second while a steadily used session costs one
  write per interval, not one per request;
- **admission**: a login over the platform's limit either evicts the sessions
  first in the ``EVICT`` order or is refused; nothing else changes. Then the
  same for ``MAX_SESSIONS_TOTAL``, among all the user's sessions. Whatever
  the limits say, a user never holds more than ``SESSION_CEILING`` sessions: a
  login beyond it evicts, in the same order, among all the user's sessions.
  The user's sessions are judged (and the ended ones pruned) only when the
  sessions held reach a limit (:func:`admission_needs_count`);
- **lowered limits** apply to existing sessions: when a limit is lowered
  (:func:`limits_lowered`), the store records the moment; a session created
  before it (or within :data:`LIMITS_GRACE_MS` after) reconciles its user's
  sessions at its next request, once per user (:func:`reconcile_due`): the
  :func:`surplus` over the limits ends (``evicted``, ``EVICT`` order);
- **retention**: a record is kept for a day past its deadline, and an ended
  session leaves a tombstone for a day, so a late request learns *why* it
  ended; the tombstone keeps what a listing of ended sessions shows (the
  record, the reason and :func:`ended_at`), which lists it while
  :func:`still_listed`;
- **sweeping**: a session that timed out is noticed by whichever process
  sweeps first (:func:`sweep_deadline` orders them), so its one audit event
  is written within a minute even if no request presents it again;
- **replacing**: a login ends the session its request presented
  (session-fixation defence), but only once it is admitted: that session is
  not counted against the limits (:func:`counted`), so a client signing in
  again takes its own place, and a refused login changes nothing (SPEC §4);
- **report-only** (``ENFORCE=report``: ``Policy.enforce`` is false): timeouts
  and limits are judged as usual but not applied. :func:`judge` ends a session
  only by a sign-out of everyone; :func:`would_end` names the timeout that would
  have ended it, once (at its first use past that moment); :func:`admission`
  reports the evictions or the refusal it would have made, and makes only
  those of ``SESSION_CEILING`` (a bound of the store, not a policy on trial).
  No deadline is shown (:func:`deadline`), and the cookie's ``Max-Age``
  follows none; the store still keeps a record for a day past the deadline
  its policy gives it (:func:`retention`), so one unused for that long is
  forgotten;
- **device binding** (DBSC): a session bound to a browser's key accepts only
  tokens that carry their issue time (:func:`refuses_token`); the
  challenges its proofs answer are accepted once, for
  :data:`CHALLENGE_MS` after they were issued (:func:`redeemable`).

The memory store calls these functions; each Redis Lua script mirrors one of
them and names it in its header. The contract tests run the same scenarios on
both, so the two cannot drift.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from .policy import TOTAL, Policy

SECOND = 1000
DAY = 86_400 * SECOND
#: How long a tombstone (and a record past its deadline) is kept: the time
#: during which a request presenting an ended token learns why it ended.
TOMBSTONE_MS = DAY
#: Last-seen is written back at least this far apart ...
TOUCH_MIN_MS = SECOND
#: ... and at most this far apart (a third of the idle limit in between).
TOUCH_MAX_MS = 10 * 60 * SECOND
#: An unwritten use is written back this long (at most a touch interval) before
#: the stored last-seen would let the session idle out.
FLUSH_LEAD_MS = 30 * SECOND
#: A persistent cookie never outlives 400 days (browsers cap it there anyway).
MAX_COOKIE_AGE = 400 * 86_400
#: A user's own idle timeout of "never" (0 seconds is no duration anyone can
#: set, so it cannot be mistaken for one; ``None`` is "the admin's value").
NEVER_IDLE = 0
#: Sessions created this soon after limits were lowered are reconciled too: a
#: process may have admitted them under the old limits before the change reached
#: it (the shared state's staleness bound, ``state.RESYNC_SECONDS``, is 10 s).
LIMITS_GRACE_MS = 15 * SECOND
#: A DBSC challenge is answered within this long of its issue, or never.
CHALLENGE_MS = 5 * 60 * SECOND
#: The metadata of a record built without any (shared, so read-only).
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class Outcome(enum.Enum):
    """What the store said about the token a request presented."""

    NO_TOKEN = "no_token"
    VALID = "valid"
    IDLE_TIMEOUT = "idle_timeout"
    ABSOLUTE_TIMEOUT = "absolute_timeout"
    EVICTED = "evicted"
    REVOKED = "revoked"
    SIGNED_OUT = "signed_out"
    SIGNOUT_ALL = "signout_all"
    INVALID = "invalid"
    STORE_UNAVAILABLE = "store_unavailable"
    #: a device-bound session's token past its cookie lifetime, or in the form
    #: without an issue time: the request is anonymous (no ``ended_reason``);
    #: the session lives on for the device that holds its key
    STALE = "stale"

    @property
    def ended(self) -> bool:
        """Whether this outcome reports an ended (or forged) session."""
        return self.value in ENDED_REASONS


#: The values ``ended_reason`` can take.
ENDED_REASONS = frozenset(
    {"idle_timeout", "absolute_timeout", "evicted", "revoked", "signed_out", "signout_all",
     "invalid"}
)


class Record(NamedTuple):
    """The server-side state of one session. Times are epoch milliseconds.

    A named tuple rather than a frozen dataclass (the other values' form): one
    or two are built on every authenticated request, and a frozen dataclass
    sets each of its twelve fields through ``object.__setattr__`` (1.3 µs a
    record; a tuple: 0.3 µs)."""

    id: str
    user_id: str
    platform: str
    created: int
    last_seen: int
    remember_me: bool = False
    ip: str = ""
    city: str | None = None
    user_agent: str = ""
    device: str = ""
    metadata: Mapping[str, Any] = _NO_METADATA
    #: the user's own idle timeout (seconds) for this platform, if any
    #: (:data:`NEVER_IDLE`: never)
    user_idle: int | None = None
    #: bound to a browser's key (DBSC): its cookie is short-lived, renewed with a proof
    device_bound: bool = False


@dataclass(frozen=True, slots=True)
class Epoch:
    """The last sign-out of everyone: sessions created before ``at`` (ms) have
    ended, except ``keep``."""

    at: int = 0
    keep: str | None = None


def epoch_after(now: int, keep: Record | None, last: Epoch) -> Epoch:
    """The epoch a sign-out of everyone at ``now`` sets: every session created
    up to and including ``now`` ends, except ``keep``, unless the ``last``
    sign-out ended that one already (an ended session never comes back: the
    new epoch replaces the old one, which alone remembered that ending)."""
    if keep is not None and keep.created < last.at and keep.id != last.keep:
        keep = None
    return Epoch(now + 1, None if keep is None else keep.id)


def idle_limit(record: Record, policy: Policy) -> int | None:
    """The idle limit of ``record`` in seconds (``None``: never idles out)."""
    if record.remember_me:
        return policy.remember_me_period
    if policy.allow_user_timeouts and record.user_idle is not None:
        return record.user_idle or None  # NEVER_IDLE: the user chose never
    return policy.platform(record.platform).idle_timeout


def deadline(record: Record, policy: Policy) -> int | None:
    """The earliest moment (ms) the session ends if untouched, or ``None`` (never;
    and while the policy's timeouts are only reported, ``ENFORCE=report``)."""
    return _deadline(record, policy) if policy.enforce else None


def lifetime(record: Record, policy: Policy) -> int | None:
    """The longest ``record`` lives from login (s; ``None``: no limit): the
    platform's absolute timeout, for a session without remember-me its
    session timeout (at most the absolute timeout)."""
    platform = policy.platform(record.platform)
    return platform.absolute_timeout if record.remember_me else platform.session_lifetime


def _deadline(record: Record, policy: Policy) -> int | None:
    """The earliest moment (ms) the policy's timeouts end the session if untouched."""
    idle = idle_limit(record, policy)
    absolute = lifetime(record, policy)
    ends = []
    if idle is not None:
        ends.append(record.last_seen + idle * SECOND)
    if absolute is not None:
        ends.append(record.created + absolute * SECOND)
    return min(ends) if ends else None


def judge(record: Record, policy: Policy, now: int, epoch: Epoch) -> Outcome:
    """Whether ``record`` is still valid at ``now``, or why it has ended."""
    if record.created < epoch.at and record.id != epoch.keep:
        return Outcome.SIGNOUT_ALL
    if not policy.enforce:
        return Outcome.VALID  # ENFORCE=report: timeouts are reported (would_end), not applied
    return timed_out(record, policy, now)


def timed_out(record: Record, policy: Policy, now: int) -> Outcome:
    """The timeout that ends ``record`` at ``now`` by the policy's timeouts, applied
    or not (``VALID``: none): of two passed, the one whose deadline came first."""
    absolute = lifetime(record, policy)
    idle = idle_limit(record, policy)
    # the deadline that came first says why (the absolute one on a tie)
    if idle is not None and now >= (idle_end := record.last_seen + idle * SECOND) and (
        absolute is None or idle_end < record.created + absolute * SECOND
    ):
        return Outcome.IDLE_TIMEOUT
    if absolute is not None and now >= record.created + absolute * SECOND:
        return Outcome.ABSOLUTE_TIMEOUT
    return Outcome.VALID


def would_end(record: Record, policy: Policy, now: int) -> tuple[Outcome, int] | None:
    """``ENFORCE=report``: the timeout that would have ended the valid ``record`` at
    ``now`` and the moment it would have (its deadline); ``None`` when the
    timeouts apply (then :func:`judge` ends it) or none has passed. The moment
    tells one report from the next: it stays the same until the session is used."""
    if policy.enforce:
        return None
    outcome = timed_out(record, policy, now)
    if outcome is Outcome.VALID:
        return None
    moment = _deadline(record, policy)
    return outcome, now if moment is None else moment


def touch_interval(record: Record, policy: Policy) -> int:
    """How far apart (ms) last-seen is written back for ``record``."""
    return _interval(idle_limit(record, policy))


def _interval(idle: int | None) -> int:
    """The touch interval of an idle limit of ``idle`` seconds."""
    if idle is None:
        return TOUCH_MAX_MS
    return min(TOUCH_MAX_MS, max(TOUCH_MIN_MS, idle * SECOND // 3))


def touch_due(record: Record, policy: Policy, now: int, *, passive: bool) -> bool:
    """Whether a valid request at ``now`` writes last-seen back (else its use is
    kept unwritten, see :func:`flush_by`)."""
    return not passive and now - record.last_seen >= touch_interval(record, policy)


def flush_by(record: Record, policy: Policy, seen: int) -> int:
    """The moment (ms) by which a use at ``seen`` that was not written back must
    be: within a touch interval of the use, and before the stored last-seen of
    ``record`` could make the session idle out."""
    interval, latest = flush_bounds(record, policy)
    by = seen + interval
    return by if latest is None or by < latest else latest


def flush_bounds(record: Record, policy: Policy) -> tuple[int, int | None]:
    """The two bounds of :func:`flush_by` for ``record``: a use at ``seen`` is
    written by ``min(seen + interval, latest)`` (``latest`` ``None``: no idle
    limit). Apart so that a ``LOCAL_CACHE`` hit reuses them."""
    idle = idle_limit(record, policy)
    interval = _interval(idle)
    if idle is None:
        return interval, None
    return interval, record.last_seen + idle * SECOND - min(interval, FLUSH_LEAD_MS)


def touched(record: Record, now: int) -> Record:
    """``record`` as used at ``now``."""
    if now <= record.last_seen:
        return record
    # every field by hand: this runs on every request, and _replace (keywords,
    # then a map over the fields) costs half as much again
    r = record
    return Record(r.id, r.user_id, r.platform, r.created, now, r.remember_me, r.ip, r.city,
                  r.user_agent, r.device, r.metadata, r.user_idle, r.device_bound)


def refuses_token(record: Record, unbound_token: bool) -> bool:
    """Whether a valid ``record`` refuses the token presented: a device-bound
    session refuses one without an issue time (its login token, or a copy of
    it), which could otherwise outlive the short-lived bound cookie. Such a
    presentation is not a use of the session."""
    return unbound_token and record.device_bound


def redeemable(used: Mapping[str, int], challenge: str, issued: int, now: int) -> bool:
    """Whether a challenge issued at ``issued`` may be answered at ``now``:
    at most :data:`CHALLENGE_MS` old, and not among the session's ``used``
    challenges (id -> issue time)."""
    return issued <= now + CHALLENGE_MS and now - issued <= CHALLENGE_MS and challenge not in used


def still_used(used: Mapping[str, int], now: int) -> dict[str, int]:
    """The used challenges worth remembering at ``now``: those young enough to
    be presented again (older ones are refused by age anyway)."""
    return {c: issued for c, issued in used.items() if now - issued <= CHALLENGE_MS}


def ended_at(record: Record, policy: Policy, reason: str, now: int, epoch: Epoch) -> int:
    """When ``record`` ended for ``reason``, noticed at ``now``: a timeout at its
    deadline (the moment it passed, not the moment it was noticed), a sign-out
    of everyone at that sign-out, anything else at ``now``."""
    if reason == "absolute_timeout" or reason == "idle_timeout":
        ends = _deadline(record, policy)
        return now if ends is None else min(ends, now)
    if reason == "signout_all" and epoch.at > 0:
        return min(epoch.at - 1, now)
    return now


def still_listed(at: int, now: int) -> bool:
    """Whether a session that ended at ``at`` is still listed at ``now`` (among
    the recently ended: for a day after it ended)."""
    return now < at + TOMBSTONE_MS


def sweep_deadline(record: Record, policy: Policy) -> int | None:
    """Where ``record`` stands in the stores' deadline order (ms; ``None``: it
    never times out): its deadline under ``policy``, applied or not. The
    Redis index keeps it as a lower bound (a use only moves it later), so a
    sweep looks at every session whose deadline has come, and at some that
    were used since (they are placed again)."""
    return _deadline(record, policy)


def shortens(old: Policy, new: Policy) -> bool:
    """Whether ``new`` may end some session earlier than ``old`` would: a
    timeout (or the remember-me period) made shorter, or set where there was
    none, or the user's own timeouts newly allowed."""
    def shorter(a: int | None, b: int | None) -> bool:
        return b is not None and (a is None or b < a)

    if shorter(old.remember_me_period, new.remember_me_period):
        return True
    if new.allow_user_timeouts and not old.allow_user_timeouts:
        return True
    if new.enforce and not old.enforce:
        return True
    for name in {*old.platforms, *new.platforms}:
        a, b = old.platform(name), new.platform(name)
        if (shorter(a.idle_timeout, b.idle_timeout) or shorter(a.absolute_timeout, b.absolute_timeout)
                or shorter(a.session_lifetime, b.session_lifetime)):
            return True
    return False


def counted(held: Sequence[Record], replacing: str | None) -> list[Record]:
    """The sessions of ``held`` a login counts against the limits: all but the
    one its request presented (``replacing``), which the login ends if, and
    only if, it is admitted."""
    return [r for r in held if r.id != replacing]


def retention(record: Record, policy: Policy, now: int) -> int | None:
    """How long (ms from ``now``) the store keeps ``record``; ``None``: no expiry."""
    ends = _deadline(record, policy)  # ENFORCE=report too: the store does not keep sessions forever
    return None if ends is None else max(ends - now, 0) + TOMBSTONE_MS


def cookie_max_age(record: Record, policy: Policy, now: int) -> int | None:
    """``Max-Age`` (seconds) of the session cookie: ``None`` (a browser-session
    cookie) unless remember-me, else the time left until the session would
    end if used only at the very end of the remember-me period."""
    if not record.remember_me:
        return None
    if not policy.enforce:  # ENFORCE=report: the browser must not apply the timeouts either
        return MAX_COOKIE_AGE
    ends: list[int] = [now + MAX_COOKIE_AGE * SECOND]
    if policy.remember_me_period is not None:
        ends.append(now + policy.remember_me_period * SECOND)
    absolute = policy.platform(record.platform).absolute_timeout
    if absolute is not None:
        ends.append(record.created + absolute * SECOND)
    return max(0, (min(ends) - now) // SECOND)


def cookie_refresh_due(before: Record, now: int) -> bool:
    """Whether a remember-me cookie is re-sent (with a fresh ``Max-Age``) on
    this touch: once per day of activity, so an active user keeps it."""
    if not before.remember_me:
        return False
    return (now - before.created) // DAY != (before.last_seen - before.created) // DAY


@dataclass(frozen=True, slots=True)
class Admission:
    """The plan for a login: sessions to evict, or a refusal (``total``: by
    ``MAX_SESSIONS_TOTAL``, else by the platform's limit). Under
    ``ENFORCE=report``, what the limits would have done instead:
    ``reported`` sessions to evict, or ``would_refuse`` the login."""

    evict: tuple[str, ...] = ()
    refused: bool = False
    reported: tuple[str, ...] = ()
    would_refuse: bool = False
    total: bool = False


def admission_needs_count(held: Sequence[Record], policy: Policy, platform: str) -> bool:
    """Whether a login on ``platform`` must judge the user's sessions: only when
    the sessions the store holds for the user (``held``: ended ones it has not
    noticed yet included) reach the platform's limit, ``MAX_SESSIONS_TOTAL`` or
    ``SESSION_CEILING``. Below all of them, a login judges, prunes and reads no
    other session, so its cost does not grow with the user's sessions (the Redis
    store's counts are those of the user's index)."""
    limit = policy.platform(platform).max_sessions
    if limit is not None and sum(r.platform == platform for r in held) >= limit:
        return True
    total = policy.max_sessions_total
    if total is not None and len(held) >= total:
        return True
    return len(held) >= policy.session_ceiling


def admission(alive: Sequence[Record], policy: Policy, platform: str) -> Admission:
    """Plan a new login on ``platform`` of a user who holds the valid sessions
    ``alive`` (on every platform, already pruned of ended ones): first the
    platform's limit (refuse, or evict on that platform), then
    ``MAX_SESSIONS_TOTAL`` (refuse, or evict among all the sessions the first
    leaves); under ``ENFORCE=report`` both only reported. Then the ceiling
    (always evict, among all the user's remaining sessions)."""
    evict: list[Record] = []
    reported: list[Record] = []
    would_refuse = False
    rest = list(alive)
    for scope, limit in ((platform, policy.platform(platform).max_sessions),
                         (TOTAL, policy.max_sessions_total)):
        counted = [r for r in rest if scope == TOTAL or r.platform == scope]
        if limit is None or len(counted) < limit:
            continue
        if policy.on_limit == "reject":
            if policy.enforce:
                return Admission(refused=True, total=scope == TOTAL)
            would_refuse = True
            continue
        first = eviction_order(counted, policy)[: len(counted) - limit + 1]
        (evict if policy.enforce else reported).extend(first)
        gone = {r.id for r in first}  # as if applied: the total counts what the platform's leaves
        rest = [r for r in rest if r.id not in gone]
    gone = {r.id for r in evict}
    rest = [r for r in alive if r.id not in gone]
    over = len(rest) + 1 - policy.session_ceiling
    if over > 0:
        evict += eviction_order(rest, policy)[:over]
    ids = tuple(r.id for r in evict)
    # what the limits would have evicted (ENFORCE=report), of the sessions the ceiling leaves
    kept = tuple(r.id for r in reported if r.id not in ids)
    return Admission(ids, False, kept, would_refuse)


def surplus(alive: Sequence[Record], policy: Policy) -> list[Record]:
    """The sessions to end of a user who holds the valid sessions ``alive`` when
    limits were lowered: on each platform those beyond its limit, then among all
    the rest those beyond ``MAX_SESSIONS_TOTAL``, first in ``EVICT`` order
    (``evicted``). None under ``ENFORCE=report``: the limits are not applied."""
    if not policy.enforce:
        return []
    ended: list[Record] = []
    for name in sorted({r.platform for r in alive}):
        limit = policy.platform(name).max_sessions
        same = [r for r in alive if r.platform == name]
        if limit is not None and len(same) > limit:
            ended += eviction_order(same, policy)[: len(same) - limit]
    gone = {r.id for r in ended}
    rest = [r for r in alive if r.id not in gone]
    total = policy.max_sessions_total
    if total is not None and len(rest) > total:
        ended += eviction_order(rest, policy)[: len(rest) - total]
    return ended


def limits_lowered(old: Mapping[str, int | None], new: Mapping[str, int | None]) -> bool:
    """Whether the limits ``new`` (:meth:`Policy.limits`) lower any of ``old``:
    a limit set where there was none, or smaller than it was."""
    for name, limit in new.items():
        before = old.get(name)
        if limit is not None and (before is None or limit < before):
            return True
    return False


def reconcile_due(created: int, lowered: int, mark: int | None) -> bool:
    """Whether a session created at ``created`` reconciles its user's sessions
    with limits lowered at ``lowered`` (0: never): when it was created before
    (or within :data:`LIMITS_GRACE_MS` after), unless the user's sessions were
    reconciled (``mark``: when, ``None``: never) since the lowering and since it
    was created (strictly after both: what happened within the same millisecond
    may have come after)."""
    if not lowered or created >= lowered + LIMITS_GRACE_MS:
        return False
    return mark is None or mark <= lowered or mark <= created


def eviction_order(records: Sequence[Record], policy: Policy) -> list[Record]:
    """``records``, the first to evict first (``EVICT``): the oldest login, or the
    least recently used; ties by login time, then id."""
    if policy.evict == "least_recent":
        return sorted(records, key=lambda r: (r.last_seen, r.created, r.id))
    return sorted(records, key=lambda r: (r.created, r.id))
