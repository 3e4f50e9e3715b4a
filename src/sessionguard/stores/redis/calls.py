"""What an operation asks a Redis store to send: a :class:`Script`, a few
plain :class:`Commands`, or the request path's :class:`Read`. Operations
(:mod:`.operations`) are generators of these; the stores (:mod:`.sync_store`,
:mod:`.async_store`) send them."""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis

T = TypeVar("T")

Arg = str | bytes | int

#: The library functions whose change the caller is told about (a login, a
#: sign-out, a revocation, a new token, new roles, a timeout change; and
#: ``state`` when it signs everyone out or sets the policy): on Sentinel they wait
#: for a replica (:mod:`.failover`). A check's touch, a listing's pruning and a
#: write-back of uses do not: losing one ends a session early at most.
DURABLE = frozenset({"create", "end", "end_user", "rotate", "set_tails", "set_user_timeouts"})


class Rerun(enum.Enum):
    """Whether a call whose reply was lost or late may be sent again, within
    the call's ``STORE_TIMEOUT`` (:class:`~.clients.Budget`). Every call says
    which: a library function in its contract (:data:`.scripts.FUNCTIONS`), plain
    commands where they are built (:mod:`.operations`, :mod:`.users`, :mod:`.listing`)."""

    #: Idempotent and cheap (one session, one key, a bounded batch): again after a
    #: dropped connection or a reply that came too late.
    ALWAYS = "always"
    #: Idempotent, but its work grows with the data (a user's sessions): again
    #: only after a dropped connection, never after a timeout (Redis may still be
    #: running it: a slow call run again would only add to the load).
    ON_DROP = "on_drop"
    #: Not idempotent (the audit log's XADD would log an event twice), or a page of a
    #: paged per-user call (run twice, an ``end_user`` page would lose the sessions it
    #: ended from its answer): never again.
    NEVER = "never"

    def allows(self, error: BaseException) -> bool:
        """Whether the call may be sent again after ``error``."""
        if self is Rerun.ALWAYS:
            return True
        return self is Rerun.ON_DROP and not isinstance(error, redis.TimeoutError | TimeoutError)


class Script(NamedTuple):
    """Call the library function ``name`` (``FCALL``; the library is loaded
    again when Redis does not know it) with ``keys`` and ``args``, built by
    :meth:`.scripts.Function.call` from the function's contract. ``hot``: the
    request path's check, which the stores send on their lean lane
    (:mod:`.lane`) when they can. A named tuple (one is built on every check,
    see :class:`~sessionguard.core.Record`)."""

    name: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    rerun: Rerun
    hot: bool = False

    @property
    def durable(self) -> bool:
        """Whether a replica must confirm it on Sentinel (:data:`DURABLE`, and
        the state function when it changes the state, not when it reads it)."""
        return self.name in DURABLE or (self.name == "state" and self.args[1] != "read")


class Read(NamedTuple):
    """The request path's read: ``MGET`` of ``keys`` (a record and its tombstone,
    one slot), which the stores send on their lean lane (:mod:`.lane`) when they
    can. A read: always safe to send again within the call's deadline."""

    keys: tuple[str, ...]
    rerun: Rerun = Rerun.ALWAYS
    hot: bool = True


@dataclass(frozen=True, slots=True)
class Commands:
    """Plain commands, pipelined (one round trip per node)."""

    commands: tuple[tuple[Arg, ...], ...]
    rerun: Rerun


Request = Script | Read | Commands
#: An operation (see :mod:`.operations`): yields requests, gets replies, returns its answer.
Op = Generator[Request, Any, T]


def one(*command: Arg, rerun: Rerun) -> Op[Any]:
    """Send one plain command; its reply."""
    replies = yield Commands((command,), rerun)
    return replies[0]
