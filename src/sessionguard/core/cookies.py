"""The session cookie's lifetime (``Max-Age``).

- a session without remember-me has a browser-session cookie; a remember-me
  one lasts until the session would end if used only at the very end of the
  remember-me period, at most :data:`MAX_COOKIE_AGE` (:func:`cookie_max_age`);
  under ``ENFORCE=report`` it follows no timeout;
- an active user keeps a remember-me cookie: it is re-sent with a fresh
  ``Max-Age`` once per day of activity (:func:`cookie_refresh_due`).
"""

from __future__ import annotations

from ..policy import Policy
from .values import DAY, SECOND, Record

#: A persistent cookie never outlives 400 days (browsers cap it there anyway).
MAX_COOKIE_AGE = 400 * 86_400


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
