"""What an operation asks a Redis store to send: a :class:`Script` or a few
plain :class:`Commands`. Operations (:mod:`.operations`) are generators of
these; the stores (:mod:`.sync_store`, :mod:`.async_store`) send them."""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis

T = TypeVar("T")

Arg = str | bytes | int


class Rerun(enum.Enum):
    """Whether a call whose reply was lost or late may be sent again, within
    the call's ``STORE_TIMEOUT`` (:class:`~.clients.Budget`). Every call says
    which, where it is built (:mod:`.operations`, :mod:`.listing`)."""

    #: Idempotent and cheap (one session, one key, a bounded batch): again after a
    #: dropped connection or a reply that came too late.
    ALWAYS = "always"
    #: Idempotent, but its work grows with the data (a user's sessions): again
    #: only after a dropped connection, never after a timeout (Redis may still be
    #: running it: a slow script run again would only add to the load).
    ON_DROP = "on_drop"
    #: Not idempotent (the audit log's XADD would log an event twice): never again.
    NEVER = "never"

    def allows(self, error: BaseException) -> bool:
        """Whether the call may be sent again after ``error``."""
        if self is Rerun.ALWAYS:
            return True
        return self is Rerun.ON_DROP and not isinstance(error, redis.TimeoutError | TimeoutError)


class Script(NamedTuple):
    """Run the Lua script ``name`` (EVALSHA; loaded again on NOSCRIPT) with
    ``ARGV = context + args``. ``context`` is the part shared by every call
    while the state is the same (the same tuple object: :mod:`.lane`
    encodes it once). ``hot``: the request path's check, which the stores send
    on their lean lane (:mod:`.lane`) when they can. A named tuple (one is
    built on every check, see :class:`~sessionguard.core.Record`)."""

    name: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    rerun: Rerun
    context: tuple[Arg, ...] = ()
    hot: bool = False

    @property
    def argv(self) -> tuple[Arg, ...]:
        return self.context + self.args


@dataclass(frozen=True, slots=True)
class Commands:
    """Plain commands, pipelined (one round trip per node)."""

    commands: tuple[tuple[Arg, ...], ...]
    rerun: Rerun


Request = Script | Commands
#: An operation (see :mod:`.operations`): yields requests, gets replies, returns its answer.
Op = Generator[Request, Any, T]


def one(*command: Arg, rerun: Rerun) -> Op[Any]:
    """Send one plain command; its reply."""
    replies = yield Commands((command,), rerun)
    return replies[0]
