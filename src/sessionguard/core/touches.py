"""Touches: when a use of a session is written back.

- **touch**: an active (not passive) request uses the session. The store writes
  last-seen back only once per *touch interval* (:func:`touch_interval`: a
  third of the idle limit, between a second and ten minutes;
  :func:`touch_due`); a use in between is kept by the process that saw it and
  written back by :func:`flush_by` at the latest, which is before the stored
  last-seen could make the session look idle. So idle expiry stays exact to
  the second while a steadily used session costs one write per interval, not
  one per request. :func:`touched` is the record as used.
"""

from __future__ import annotations

from ..policy import Policy
from .timeouts import idle_limit
from .values import SECOND, Record

#: Last-seen is written back at least this far apart ...
TOUCH_MIN_MS = SECOND
#: ... and at most this far apart (a third of the idle limit in between).
TOUCH_MAX_MS = 10 * 60 * SECOND
#: An unwritten use is written back this long (at most a touch interval) before
#: the stored last-seen would let the session idle out.
FLUSH_LEAD_MS = 30 * SECOND


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
