"""Timeouts: when a session ends by itself, and why (SPEC §4).

- **absolute timeout**: a session older than its :func:`lifetime` has ended,
  however active. The lifetime is the platform's absolute timeout for a
  remember-me session, else its session timeout (``SESSION_TIMEOUT``, never
  longer than the absolute timeout: :attr:`.PlatformPolicy.session_lifetime`);
- **idle timeout**: a session unused for longer than its :func:`idle_limit`
  has ended. The idle limit is the remember-me period for remember-me
  sessions, else the user's own timeout for the platform (when allowed), else
  the platform's;
- **which timeout**: a session past both deadlines says the one that came
  first (the absolute timeout on a tie), however late it is judged
  (:func:`timed_out`);
- **judging** a session (:func:`judge`): a sign-out of everyone
  (:class:`~.signout.Epoch`) first, then the timeouts;
- **report-only** (``ENFORCE=report``: ``Policy.enforce`` is false): :func:`judge`
  ends a session only by a sign-out of everyone; :func:`would_end` names the
  timeout that would have ended it, once (at its first use past that moment).
  No deadline is shown (:func:`deadline`);
- **sweeping**: a session that timed out is noticed by whichever process
  sweeps first (:func:`sweep_deadline` orders them), so its one audit event
  is written within a minute even if no request presents it again; a policy
  that :func:`shortens` a timeout places the sessions again.
"""

from __future__ import annotations

from ..policy import Policy
from .signout import Epoch
from .values import SECOND, Outcome, Record


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
    """The earliest moment (ms) the policy's timeouts end the session if untouched
    (applied or not: the package's other rules start from it)."""
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
