"""What an operation asks a Redis store to send: a :class:`Script` or a few
plain :class:`Commands`. Operations (:mod:`.operations`) are generators of
these; the stores (:mod:`.sync_store`, :mod:`.async_store`) send them."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

Arg = str | bytes | int


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
    retry: bool = True  # idempotent and cheap: sent again after a lost reply (see clients.Budget)
    hot: bool = False


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
