"""Session limits: admitting a login, evicting, and lowered limits (SPEC §4).

- **admission**: a login over the platform's limit either evicts the sessions
  first in the ``EVICT`` order (:func:`eviction_order`) or is refused; nothing
  else changes. Then the same for ``MAX_SESSIONS_TOTAL``, among all the user's
  sessions. Whatever the limits say, a user never holds more than
  ``SESSION_CEILING`` sessions: a login beyond it evicts, in the same order,
  among all the user's sessions (:func:`admission`). The user's sessions are
  judged (and the ended ones pruned) only when the sessions held reach a limit
  (:func:`admission_needs_count`);
- **replacing**: a login ends the session its request presented
  (session-fixation defence), but only once it is admitted: that session is
  not counted against the limits (:func:`counted`), so a client signing in
  again takes its own place, and a refused login changes nothing;
- **report-only** (``ENFORCE=report``): :func:`admission` reports the
  evictions or the refusal it would have made, and makes only those of
  ``SESSION_CEILING`` (a bound of the store, not a policy on trial);
- **lowered limits** apply to existing sessions: when a limit is lowered
  (:func:`limits_lowered`), the store records the moment; a session created
  before it (or within :data:`LIMITS_GRACE_MS` after) reconciles its user's
  sessions at its next request, once per user (:func:`reconcile_due`): the
  :func:`surplus` over the limits ends (``evicted``, ``EVICT`` order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..policy import TOTAL, Policy
from .values import SECOND, Record

#: Sessions created this soon after limits were lowered are reconciled too: a
#: process may have admitted them under the old limits before the change reached
#: it (the shared state's staleness bound, ``state.RESYNC_SECONDS``, is 10 s).
LIMITS_GRACE_MS = 15 * SECOND


def counted(held: Sequence[Record], replacing: str | None) -> list[Record]:
    """The sessions of ``held`` a login counts against the limits: all but the
    one its request presented (``replacing``), which the login ends if, and
    only if, it is admitted."""
    return [r for r in held if r.id != replacing]


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
