"""Where the Redis store keeps what: key names, the session record's encoding
and the Lua scripts.

Key layout (``P`` is ``KEY_PREFIX``; ``{tag}`` the user's slot tag, which is
also the first four characters of every id of that user's sessions, so all of
a user's keys share one Redis Cluster hash slot):

- ``P:{tag}:s:<id>`` the session record (a string, see ``lua/rules.lua``),
  expiring a day after the session's deadline;
- ``P:{tag}:e:<id>`` the tombstone of an ended session: its reason, for a day;
- ``P:{tag}:u:<user>`` the user's sessions (zset id -> login ms), expiring with
  the longest-kept of them; ``P:{tag}:t:<user>`` the user's own idle timeouts
  (hash platform -> seconds), kept 400 days after the last login or change;
  ``<user>`` is the base64url of the user id's UTF-8;
- ``P:state`` (hash: policy override, sign-out epoch, revision), ``P:idx``
  (every session, newest login first, for the admin listing), ``P:audit``
  (stream) and the pub/sub channel ``P:bus``: the only keys without a TTL.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any

from ..audit import compact_json
from ..core import Record
from .base import NewSession

SESSION_SCRIPTS = ("check", "create", "end", "end_user", "list_user", "set_user_timeouts")


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    sources["state"] = (folder / "state.lua").read_text(encoding="utf-8")
    return sources


def encode_user(user_id: str) -> str:
    """A user id as it appears in key names: base64url of its UTF-8, so no ``{``,
    ``}`` or ``:`` of the id can move the hash tag or split the name."""
    raw = user_id.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_user(encoded: bytes) -> str:
    raw = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    return raw.decode("utf-8", "surrogatepass")


class Keys:
    """Key names. Every key starts with the prefix; per-session and per-user keys
    carry the hash tag after it (the first four characters of the id, which are
    the user's :func:`~sessionguard.tokens.Tokens.slot_tag`)."""

    def __init__(self, prefix: str) -> None:
        self.state = f"{prefix}:state"
        self.idx = f"{prefix}:idx"
        self.audit = f"{prefix}:audit"
        self.bus = f"{prefix}:bus"
        self.prefix = prefix

    def base(self, tag: str) -> str:
        return f"{self.prefix}:{{{tag}}}:"

    def session(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}s:{session_id}"

    def tombstone(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}e:{session_id}"

    def user_index(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}u:{encode_user(user_id)}"

    def settings(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}t:{encode_user(user_id)}"


def idx_member(created: int, session_id: str) -> str:
    """The listing-index member of a session: newest login first in lexical order."""
    return f"{99_999_999_999_999 - created:014d}:{session_id}"


def idx_bound(created: int) -> str:
    """The listing-index position just before the members of sessions created at
    ``created``: later logins sort before it, this and earlier ones after it."""
    return f"{99_999_999_999_999 - created:014d}"


def idx_position(member: bytes) -> tuple[int, str]:
    inverted, _, session_id = member.decode("ascii").partition(":")
    return 99_999_999_999_999 - int(inverted), session_id


def record_tail(new: NewSession) -> bytes:
    """The part of a record the scripts never read (see ``rules.lua``)."""
    tail = [new.ip, new.city, new.user_agent, new.device, dict(new.metadata)]
    return compact_json(tail).encode("utf-8", "surrogatepass")


def decode_record(session_id: str, value: bytes) -> Record:
    created, seen, remember, idle, platform, user, tail = value.split(b"|", 6)
    ip, city, user_agent, device, metadata = json.loads(tail.decode("utf-8", "surrogatepass"))
    return Record(
        id=session_id, user_id=decode_user(user), platform=platform.decode("ascii"),
        created=int(created), last_seen=int(seen), remember_me=remember == b"1", ip=ip, city=city,
        user_agent=user_agent, device=device, metadata=metadata, user_idle=int(idle) if idle else None,
    )


def decode_pairs(flat: list[Any]) -> list[Record]:
    """``[id1, record1, id2, record2, ...]`` as records."""
    return [decode_record(flat[i].decode("ascii"), flat[i + 1]) for i in range(0, len(flat), 2)]
