"""Device binding (DBSC): which tokens a bound session accepts, and which
proofs.

- a session bound to a browser's key accepts only tokens that carry their
  issue time (:func:`refuses_token`), so no copy of its login token outlives
  the short-lived bound cookie;
- the challenges its proofs answer are accepted once, for
  :data:`CHALLENGE_MS` after they were issued (:func:`redeemable`); only those
  young enough to be presented again are remembered (:func:`still_used`).
"""

from __future__ import annotations

from collections.abc import Mapping

from .values import SECOND, Record

#: A DBSC challenge is answered within this long of its issue, or never.
CHALLENGE_MS = 5 * 60 * SECOND


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
