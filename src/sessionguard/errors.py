"""The exception tree of sessionguard.

Expected outcomes of a request (no token, expired, revoked, ...) are values,
see :class:`sessionguard.core.Outcome`; exceptions are for misconfiguration,
store failure and a refused login.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .policy import Policy


class SessionGuardError(Exception):
    """Base class of every sessionguard exception."""


class ConfigurationError(SessionGuardError, ValueError):
    """One or more settings are invalid; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("invalid sessionguard configuration:\n  " + "\n  ".join(self.errors))


class StoreUnavailable(SessionGuardError):
    """The session store could not be reached or did not answer in time.

    The message never carries the store's own error text, host or password.
    """


class SessionLimitReached(SessionGuardError):
    """A login was refused because the user is at the platform's session limit
    (or, ``total``, at ``MAX_SESSIONS_TOTAL``) and the policy is ``ON_LIMIT=reject``."""

    def __init__(self, *, user_id: str, platform: str, limit: int, total: bool = False) -> None:
        self.user_id = user_id
        self.platform = platform
        self.limit = limit
        self.total = total
        where = "across all platforms" if total else f"on platform {platform!r}"
        super().__init__(f"session limit of {limit} reached {where}")

    @classmethod
    def of(cls, policy: Policy, user_id: str, platform: str, *, total: bool) -> SessionLimitReached:
        """The refusal of a login on ``platform`` by ``policy``'s limit (``total``: the total one)."""
        limit = policy.max_sessions_total if total else policy.platform(platform).max_sessions
        return cls(user_id=user_id, platform=platform, limit=limit or 0, total=total)
