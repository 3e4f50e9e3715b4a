"""Retention and tombstones: how long the store keeps a session, and what an
ended one leaves behind.

- **retention**: a record is kept for a day (:data:`TOMBSTONE_MS`) past its
  deadline (:func:`retention`; under ``ENFORCE=report`` too, the deadline its
  policy gives it, so one unused for that long is forgotten);
- **tombstones**: an ended session leaves a tombstone for a day, so a late
  request learns *why* it ended; the tombstone keeps what a listing of ended
  sessions shows (the record, the reason and :func:`ended_at`: a timeout at
  its deadline, not when it was noticed), which lists it while
  :func:`still_listed`.
"""

from __future__ import annotations

from ..policy import Policy
from .signout import Epoch
from .timeouts import _deadline
from .values import DAY, Record

#: How long a tombstone (and a record past its deadline) is kept: the time
#: during which a request presenting an ended token learns why it ended.
TOMBSTONE_MS = DAY


def retention(record: Record, policy: Policy, now: int) -> int | None:
    """How long (ms from ``now``) the store keeps ``record``; ``None``: no expiry."""
    ends = _deadline(record, policy)  # ENFORCE=report too: the store does not keep sessions forever
    return None if ends is None else max(ends - now, 0) + TOMBSTONE_MS


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
