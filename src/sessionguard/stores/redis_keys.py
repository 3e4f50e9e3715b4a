"""Where the Redis store keeps what: key names, the session record's encoding
and the Lua scripts.

Key layout (``P`` is ``KEY_PREFIX``; ``{tag}`` the user's slot tag, which is
also the first four characters of every id of that user's sessions, so all of
a user's keys share one Redis Cluster hash slot; ``<short>`` is a session id
without those four characters):

- ``P:{tag}:s:<short>`` the session record (a string, see ``lua/rules.lua``),
  expiring a day after the session's deadline;
- ``P:{tag}:e:<short>`` the tombstone of an ended session: its reason, for a day;
- ``P:{tag}:u:<user>`` the user's sessions (zset of ``<short>`` packed by
  :func:`pack_id` into 17 bytes, all scores 0, so that a few sessions fit a
  small listpack), expiring with the longest-kept of them;
  ``P:{tag}:t:<user>`` the user's own idle timeouts (hash platform ->
  seconds), kept 400 days after the last login or change; ``<user>`` is
  :func:`encode_user` of the user id;
- ``P:state`` (hash: policy override, sign-out epoch, revision), ``P:idx``
  (every session, newest login first, for the admin listing: 26-byte members,
  see :func:`idx_member`), ``P:audit`` (stream) and the pub/sub channel
  ``P:bus``: the only keys without a TTL.

Every byte here is paid once per session: the layout keeps a typical session
(record, its share of the user's index, its listing entry) under 600 bytes of
Redis memory (``tests/test_redis_store.py::test_memory_per_session_is_small``).
"""

from __future__ import annotations

import base64
import json
import re
from importlib import resources
from typing import Any

from ..audit import compact_json
from ..core import Record
from .base import NewSession

SESSION_SCRIPTS = ("check", "create", "end", "end_user", "list_user", "set_user_timeouts", "touch")


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    sources["state"] = (folder / "state.lua").read_text(encoding="utf-8")
    return sources


#: User ids kept as they are in key names and records (e-mail addresses, UUIDs,
#: numbers): no ``|``, ``{``, ``}``, ``:``, ``~``, space or control character.
_PLAIN_USER = re.compile(r"[A-Za-z0-9._@+-]+")


def encode_user(user_id: str) -> str:
    """A user id as it appears in key names and records: the id itself when
    plain, else ``~`` and the base64url of its UTF-8 (so no character of the
    id can move the hash tag or split a record). Never ambiguous: a plain id
    has no ``~``."""
    if _PLAIN_USER.fullmatch(user_id):
        return user_id
    raw = user_id.encode("utf-8", "surrogatepass")
    return "~" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_user(encoded: bytes) -> str:
    if not encoded.startswith(b"~"):
        return encoded.decode("ascii")
    raw = base64.urlsafe_b64decode(encoded[1:] + b"=" * (-len(encoded[1:]) % 4))
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
        return f"{self.base(session_id[:4])}s:{session_id[4:]}"

    def tombstone(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}e:{session_id[4:]}"

    def user_index(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}u:{encode_user(user_id)}"

    def settings(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}t:{encode_user(user_id)}"


# -- the listing index ---------------------------------------------------------------

#: Login times are inverted from this (2**48 - 1 ms: the year 10889) and written
#: in 6 bytes, big-endian, so that the newest login sorts first.
_INVERT = 2**48 - 1
#: The characters of a session id in ASCII order: packed 6 bits each in this
#: order, ids keep their order (ties of login time still sort by id).
_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_RANK = {c: i for i, c in enumerate(_ALPHABET)}


def pack_id(text: str) -> bytes:
    """Id characters packed 6 bits each, big-endian, padded to whole bytes (as
    ``lua/rules.lua`` packs them: 26 characters take 20 bytes, 22 take 17);
    packed ids sort as the ids do."""
    value = 0
    for char in text:
        value = value << 6 | _RANK[char]
    size = (6 * len(text) + 7) // 8
    return (value << (8 * size - 6 * len(text))).to_bytes(size, "big")


def unpack_id(packed: bytes, count: int) -> str:
    """The ``count`` characters :func:`pack_id` packed."""
    value = int.from_bytes(packed, "big") >> (8 * len(packed) - 6 * count)
    return "".join(_ALPHABET[value >> 6 * (count - 1 - i) & 63] for i in range(count))


def idx_bound(created: int) -> bytes:
    """The listing-index position just before the members of sessions created at
    ``created``: later logins sort before it, this and earlier ones after it."""
    return (_INVERT - created).to_bytes(6, "big")


def idx_member(created: int, session_id: str) -> bytes:
    """The listing-index member of a session (26 bytes, not 41 as text): newest
    login first in lexical order, then by id. ``lua/rules.lua`` writes the same."""
    return idx_bound(created) + pack_id(session_id)


def idx_position(member: bytes) -> tuple[int, str]:
    """The login time and session id of a listing-index member."""
    return _INVERT - int.from_bytes(member[:6], "big"), unpack_id(member[6:], 26)


# -- the session record ----------------------------------------------------------------

_PLATFORM_OF = {b"w": "web", b"m": "mobile", b"d": "desktop"}
#: Separates the fields of a plain tail (see :func:`record_tail`).
_SEP = "\x1f"
_CONTROL = re.compile(r"[\x00-\x1f]")
#: ``json.loads`` without its two wrapper calls and whitespace scans (half the
#: cost of decoding a record's metadata); the caller checks the end.
_raw_json = json.JSONDecoder().raw_decode


def record_tail(new: NewSession) -> bytes:
    """The part of a record the scripts never read: ip, city, user agent, device
    and metadata. Plain fields are joined by ``\\x1f`` with the metadata's JSON
    last (16 bytes less than a JSON array of a typical session); a field with a
    control character, an empty city or an ip starting with ``[`` makes it a
    JSON array instead (which always starts with ``[``)."""
    fields = (new.ip, new.city or "", new.user_agent, new.device)
    plain = new.city != "" and not new.ip.startswith("[") and not any(_CONTROL.search(f) for f in fields)
    metadata = dict(new.metadata)
    if plain:
        text = _SEP.join((*fields, compact_json(metadata)))
    else:
        text = compact_json([new.ip, new.city, new.user_agent, new.device, metadata])
    return text.encode("utf-8", "surrogatepass")


def decode_record(session_id: str, value: bytes) -> Record:
    """A record as ``lua/rules.lua`` writes it."""
    created, seen, flags, platform, user, tail = value.split(b"|", 5)
    text = tail.decode("utf-8", "surrogatepass")
    if text.startswith("["):
        ip, city, user_agent, device, metadata = json.loads(text)
    else:
        ip, city, user_agent, device, meta = text.split(_SEP, 4)
        city, (metadata, end) = city or None, _raw_json(meta)
        if end != len(meta):
            raise ValueError(f"trailing data after the metadata of record {session_id}")
    remember = flags.startswith(b"r")
    idle = flags[1:] if remember else flags
    # positional: this runs on every check, and keywords cost a Record twice as much
    return Record(session_id, decode_user(user), _PLATFORM_OF[platform], int(created, 36), int(seen, 36),
                  remember, ip, city, user_agent, device, metadata, int(idle) if idle else None)


def decode_pairs(flat: list[Any]) -> list[Record]:
    """``[id1, record1, id2, record2, ...]`` as records."""
    return [decode_record(flat[i].decode("ascii"), flat[i + 1]) for i in range(0, len(flat), 2)]
