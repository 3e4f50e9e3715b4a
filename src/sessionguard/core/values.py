"""The values the rules decide about: a session's :class:`Record`, the
:class:`Outcome` of judging it, and the units of time (milliseconds).

No rule lives here: each module of the package holds its own (see
:mod:`sessionguard.core`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

SECOND = 1000
DAY = 86_400 * SECOND
#: A user's own idle timeout of "never" (0 seconds is no duration anyone can
#: set, so it cannot be mistaken for one; ``None`` is "the admin's value").
NEVER_IDLE = 0
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
