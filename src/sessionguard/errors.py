"""The exception tree of sessionguard.

Expected outcomes of a request (no token, expired, revoked, ...) are values,
see :class:`sessionguard.core.Outcome`; exceptions are for misconfiguration,
store failure and a refused login.
"""

from __future__ import annotations

from collections.abc import Sequence


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
    and the policy is ``ON_LIMIT=reject``."""

    def __init__(self, *, user_id: str, platform: str, limit: int) -> None:
        self.user_id = user_id
        self.platform = platform
        self.limit = limit
        super().__init__(f"session limit of {limit} reached on platform {platform!r}")
