"""The server side of the Redis store: one Redis Functions library, built from
``lua/``, and the contract of its functions, written here once.

:data:`FUNCTIONS` names every function's KEYS and ARGV in order, and
:data:`CONTEXT` the fields of the one argument that carries the policy and the
epoch. The Python side builds its calls from these (:meth:`Function.call`,
:func:`pack_context`), and :func:`library` writes them into the Lua source as
tables (``KEY.check.record``, ``ARG.check.id``, ``CONTEXT``), so neither side
numbers an argument by hand.

Why a library (``FUNCTION LOAD``, then ``FCALL``; Redis >= 7.0): its top-level
code (the shared files of :data:`SHARED`: the rules, constants, lookup tables)
runs once when it is loaded, and a call runs only its function. A script sent with
``EVALSHA`` ran all of that again on every call, which was most of what a check
cost Redis. The library's name carries a digest of its source, so processes of
two versions of sessionguard sharing one Redis (a rolling deploy) each call
their own functions; see ``docs/redis.md``.
"""

from __future__ import annotations

import hashlib
import string
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ...core import LIMITS_GRACE_MS
from ...tokens import TAG_LENGTH
from .calls import Arg, Rerun, Script
from .records import ALPHABET, EXTRA_CODE, EXTRA_END, PLATFORM_LETTERS, SHORT_LENGTH

#: The fields of the context argument, in order (``|``-separated; the key prefix
#: comes last because it may contain ``|``). Durations in seconds, ``''`` for
#: never or unlimited.
CONTEXT = (
    "epoch_at", "epoch_keep", "remember_me_period", "allow_user_timeouts",
    # every platform's policy, packed (pack_platforms): the configured kinds change no field
    "platforms",
    "on_limit", "evict", "session_ceiling",
    "max_sessions_total",  # MAX_SESSIONS_TOTAL, '' = unlimited (core.admission)
    "enforce",  # '0': ENFORCE=report, the timeouts and the platforms' limits are not applied (core.judge)
    "listed",  # '1': the functions keep the listing index '<prefix>:idx' (not on a Cluster: another slot)
    "prefix",
)

#: The library's shared files (``lua/<name>.lua``), in the order it runs them,
#: after the generated contract and before the functions: each may use what
#: those before it define. ``rules`` mirrors the rules of ``core`` (timeouts,
#: touches, tombstones, device binding) and binds the globals the others use;
#: ``context`` parses the context and reads the clock; ``records`` holds the keys,
#: ids and the record's format; ``store`` writes, ends and reads records and keeps
#: the indexes; ``limits`` mirrors ``core.limits`` (eviction order, lowered
#: limits). Their top level defines functions and literal tables only.
SHARED = ("rules", "context", "records", "store", "limits")

#: The digits of base 36, as a record writes its times (``int(text, 36)`` reads them).
BASE36 = string.digits + string.ascii_lowercase
#: The most records of one user a call reads: a page of the paged per-user
#: functions, and what a login reads itself (beyond it, the store reads them in
#: pages first with ``user_page`` and names the sessions to evict). A call then
#: stays well under a millisecond of Redis time (``benchmarks/redis_cost.py``).
PAGE = 25


@dataclass(frozen=True)
class Function:
    """One function of the library.

    ``keys`` and ``args`` are the names of its KEYS and ARGV, in order; a name
    ending in ``...`` starts a run that fills the rest. Every key a function
    derives itself (a tombstone from its record key, a user's other records)
    shares the slot of its declared keys, as Redis Cluster requires; the
    listing index is another slot's, and only kept by the functions when the
    context's ``listed`` says so. ``rerun``: whether a call whose reply was lost
    or late is sent again (:class:`~.calls.Rerun`): a login only after a dropped
    connection, the paged per-user functions never (a page run twice would lose
    what it ended from its answer). ``trim``: trailing empty arguments are left out (each costs
    Redis about 0.15 us; the function reads a missing one as ``''``). ``hot``:
    the request path's check (its rare path), which the stores send on their lean lane."""

    name: str
    mirrors: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    rerun: Rerun = Rerun.ALWAYS
    trim: bool = False
    hot: bool = False
    Args: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fixed = [a for a in self.args if not a.endswith("...")]
        object.__setattr__(self, "Args", namedtuple(f"{self.name.title()}Args", fixed))  # noqa: PYI024

    @staticmethod
    def _positions(names: tuple[str, ...]) -> dict[str, int]:
        return {name.removesuffix("..."): i for i, name in enumerate(names, 1)}

    def call(self, keys: Sequence[str], *rest: Arg, **args: Arg) -> Script:
        """A call of this function: ``args`` by name (all of them: :attr:`Args`
        checks), then the run ``rest``."""
        values: tuple[Arg, ...] = self.Args(**args)
        if rest:
            values += rest
        elif self.trim:  # (on the request path: one slice, not one per empty argument)
            n = len(values)
            while n and values[n - 1] == "":
                n -= 1
            values = values[:n]
        return Script(self.name, keys if type(keys) is tuple else tuple(keys), values, self.rerun, self.hot)


def _function(name: str, mirrors: str, keys: str, args: str, **options: Any) -> Function:
    return Function(name, mirrors, tuple(keys.split()), tuple(args.split()), **options)


_PAGE = "context now tag after count"

FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    # a request's rare path (a record its process judged ended): one key, and but for a test
    # clock, a use to report or a device-bound session's cookie (a token with its issue
    # time), one argument; `lowered` (limits lowered then: core.reconcile_due) is rarer still
    _function("check", "MemoryStore.check: core.judge, core.refuses_token, core.touch_due, core.retention, "
              "core.reconcile_due, core.surplus",
              "record", "context use token now lowered", trim=True, hot=True),
    _function("touch", "MemoryStore._write: core.judge, core.retention", "records...", "context now uses..."),
    _function("create", "MemoryStore.create: core.admission, core.eviction_order, core.retention",
              "index settings record", "context now tag id platform remember user tail victims replacing",
              rerun=Rerun.ON_DROP),  # after a timeout Redis may still be running it
    _function("end", "MemoryStore.end: core.judge", "record", "context now reason owner"),
    _function("user_page", "MemoryStore._user_records: core.judge", "index", f"{_PAGE} prune",
              rerun=Rerun.NEVER),
    _function("end_user", "MemoryStore.end_user: core.judge", "index", f"{_PAGE} reason platform keep",
              rerun=Rerun.NEVER),
    _function("set_user_timeouts", "MemoryStore.set_user_timeouts: core.idle_limit, core.retention",
              "index settings", f"{_PAGE} first timeouts", rerun=Rerun.NEVER),
    _function("rotate", "MemoryStore.rotate: core.judge, core.touched, core.retention",
              "record new_record", "context now use"),
    _function("set_tails", "MemoryStore.set_roles: core.judge, core.retention", "records...",
              "context now tails...", rerun=Rerun.ON_DROP),
    # device binding (DBSC): registration and refresh; each marks its challenge answered, so a
    # second run would refuse it ('used', 'bound'): a lost reply is a 503, not a refusal
    _function("bind", "MemoryStore.bind: core.judge, core.redeemable, core.retention", "record",
              "context now use key challenge issued", rerun=Rerun.NEVER),
    _function("redeem", "MemoryStore.redeem: core.judge, core.redeemable, core.retention", "record",
              "context now use challenge issued", rerun=Rerun.NEVER),
    _function("state", "MemoryStore.end_all (core.epoch_after) and MemoryStore.set_policy",
              "state", "channel change now tag_key value created limits"),
    _function("audit", "MemoryStore.append_self_service: audit.admit", "stream allowance",
              "now since maxlen minid limit window every user actor events...",
              rerun=Rerun.NEVER),
)}


def pack_platforms(platforms: Mapping[str, Sequence[str]]) -> str:
    """The context's ``platforms`` field: for each platform its name, idle
    timeout, absolute timeout, session lifetime (of a session without
    remember-me) and limit, ``,``-separated, the platforms ``;``-separated
    (``context.lua`` parse_context reads it)."""
    return ";".join(",".join((name, *values)) for name, values in platforms.items())


def pack_context(values: Mapping[str, str]) -> str:
    """The context argument: every field of :data:`CONTEXT` (a missing or extra
    one is an error), ``|``-separated."""
    if set(values) != set(CONTEXT):
        raise ValueError(f"context fields differ: {sorted(set(values) ^ set(CONTEXT))}")
    return "|".join(values[name] for name in CONTEXT)


# -- the library source -------------------------------------------------------------------


def _lua_table(entries: Mapping[Any, Any]) -> str:
    def value(v: Any) -> str:
        return _lua_table(v) if isinstance(v, Mapping) else repr(v)

    # repr writes Lua literals too (quoted strings, numbers)
    return "{" + ", ".join(f"[{k!r}] = {value(v)}" for k, v in entries.items()) + "}"


def contract_lua() -> str:
    """The Lua side of the contract: the positions of every function's KEYS and
    ARGV, the context's fields, the platforms' letters, the id alphabet and
    lengths and the read limit (as literals: the library's top level runs
    without globals)."""
    keys = {f.name: Function._positions(f.keys) for f in FUNCTIONS.values()}
    args = {f.name: Function._positions(f.args) for f in FUNCTIONS.values()}
    context = "{" + ", ".join(repr(name) for name in CONTEXT) + "}"
    return "\n".join([
        "-- The contract, generated from sessionguard/stores/redis/scripts.py (do not edit here):",
        "-- KEY.<function>.<name> and ARG.<function>.<name> are positions in KEYS and ARGV.",
        f"local KEY = {_lua_table(keys)}",
        f"local ARG = {_lua_table(args)}",
        f"local CONTEXT = {context}",
        f"local LETTER_OF = {_lua_table(PLATFORM_LETTERS)}",
        f"local EXTRA_CODE, EXTRA_END = {EXTRA_CODE!r}, {EXTRA_END!r}",
        f"local PLATFORM_OF_BYTE = {_lua_table({ord(v): k for k, v in PLATFORM_LETTERS.items()})}",
        "local RANK = {" + ", ".join(f"[{ord(c)}] = {i}" for i, c in enumerate(ALPHABET)) + "}",
        "local CHAR = {" + ", ".join(f"[{i}] = {c!r}" for i, c in enumerate(ALPHABET)) + "}",
        "local DIGIT = {" + ", ".join(f"[{i}] = {c!r}" for i, c in enumerate(BASE36)) + "}",
        f"local READ_LIMIT = {PAGE}",
        f"local LIMITS_GRACE_MS = {LIMITS_GRACE_MS}",
        f"local TAG_LENGTH, SHORT_LENGTH = {TAG_LENGTH}, {SHORT_LENGTH}",
        "",
    ])


@dataclass(frozen=True)
class Library:
    """The library's source (for ``FUNCTION LOAD REPLACE``), its name, and the
    name Redis knows each function by."""

    name: str
    source: str
    names: dict[str, str]


def library() -> Library:
    """Build the library: the contract, the :data:`SHARED` files in order, then
    each function's file as the body of its callback ``function(KEYS, ARGV)``,
    registered under a name that carries the digest of the whole."""
    folder = resources.files("sessionguard.stores.redis") / "lua"
    parts = [contract_lua(), *((folder / f"{name}.lua").read_text(encoding="utf-8") for name in SHARED)]
    for name in FUNCTIONS:
        body = (folder / f"{name}.lua").read_text(encoding="utf-8")
        parts.append(f"local function {name}_function(KEYS, ARGV)\n{body}\nend\n")
    body = "\n".join(parts)
    digest = hashlib.sha1(body.encode("utf-8")).hexdigest()[:12]  # noqa: S324 (a name, not a secret)
    names = {name: f"sg_{digest}_{name}" for name in FUNCTIONS}
    registered = "".join(f"redis.register_function('{names[name]}', {name}_function)\n" for name in FUNCTIONS)
    source = f"#!lua name=sessionguard_{digest}\n{body}\n{registered}"
    return Library(f"sessionguard_{digest}", source, names)
