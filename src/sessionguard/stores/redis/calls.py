"""What an operation asks a Redis store to send: a :class:`Script` or a few
plain :class:`Commands`. Operations (:mod:`.operations`) are generators of
these; the stores (:mod:`.sync_store`, :mod:`.async_store`) send them."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from .scripts import DURABLE

T = TypeVar("T")

Arg = str | bytes | int


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
    retry: bool = True  # every script is idempotent (see clients.Budget)
    context: tuple[Arg, ...] = ()
    hot: bool = False

    @property
    def argv(self) -> tuple[Arg, ...]:
        return self.context + self.args

    @property
    def durable(self) -> bool:
        """Whether a replica must confirm it on Sentinel: the scripts of
        :data:`.scripts.DURABLE`, and a change of the state (not its reading)."""
        return self.name in DURABLE or (self.name == "state" and self.args[1] != "read")


@dataclass(frozen=True, slots=True)
class Commands:
    """Plain commands, pipelined (one round trip per node). ``retry=False`` for
    the ones that must not run twice."""

    commands: tuple[tuple[Arg, ...], ...]
    retry: bool = True


Request = Script | Commands
#: An operation (see :mod:`.operations`): yields requests, gets replies, returns its answer.
Op = Generator[Request, Any, T]


def one(*command: Arg) -> Op[Any]:
    """Send one plain command; its reply."""
    replies = yield Commands((command,))
    return replies[0]
