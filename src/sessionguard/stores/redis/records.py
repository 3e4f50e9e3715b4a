"""The session record as Redis holds it (one compact string, see
``lua/records.lua``), its plain tail, and the packed members of the user and
listing indexes."""

from __future__ import annotations

import json
import re
from typing import Any

from ...audit import compact_json
from ...core import Record
from ..protocol import NewSession
from .keys import decode_user

#: The characters of a session id after its user's tag (tokens: 22 of base64url).
SHORT_LENGTH = 22
#: The letter of each built-in platform in a record and in the user index (the Lua side's
#: ``LETTER_OF`` is generated from this, see :mod:`.scripts`).
PLATFORM_LETTERS = {"web": "w", "mobile": "m", "desktop": "d"}
#: An extra platform (``PLATFORMS``) is written ``+<name>.``: no built-in letter starts it,
#: and the end mark (no name has a ``.``) keeps one name's members from sorting among
#: those of a longer name it begins (``+chat.`` is no prefix of ``+chatbot.``).
EXTRA_CODE, EXTRA_END = "+", "."


def platform_code(platform: str) -> str:
    """How a record and the user index write ``platform`` (``records.lua`` code_of)."""
    return PLATFORM_LETTERS.get(platform) or f"{EXTRA_CODE}{platform}{EXTRA_END}"


def _platform_of(code: bytes) -> str:
    """The platform a record's code names (:func:`platform_code`)."""
    platform = _PLATFORM_OF.get(code)
    if platform is None:
        if not (code[:1] == EXTRA_CODE.encode() and code[-1:] == EXTRA_END.encode() and len(code) > 2):
            raise ValueError(f"unreadable platform {code[:20]!r} in a session record")
        platform = code[1:-1].decode("ascii")
    return platform

# -- the listing index ---------------------------------------------------------------

#: Login times are inverted from this (2**48 - 1 ms: the year 10889) and written
#: in 6 bytes, big-endian, so that the newest login sorts first.
_INVERT = 2**48 - 1
#: The characters of a session id in ASCII order: packed 6 bits each in this
#: order, ids keep their order (ties of login time still sort by id).
ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_RANK = {c: i for i, c in enumerate(ALPHABET)}


def pack_id(text: str) -> bytes:
    """Id characters packed 6 bits each, big-endian, padded to whole bytes (as
    ``lua/records.lua`` packs them: 26 characters take 20 bytes, 22 take 17);
    packed ids sort as the ids do."""
    value = 0
    for char in text:
        value = value << 6 | _RANK[char]
    size = (6 * len(text) + 7) // 8
    return (value << (8 * size - 6 * len(text))).to_bytes(size, "big")


def unpack_id(packed: bytes, count: int) -> str:
    """The ``count`` characters :func:`pack_id` packed."""
    value = int.from_bytes(packed, "big") >> (8 * len(packed) - 6 * count)
    return "".join(ALPHABET[value >> 6 * (count - 1 - i) & 63] for i in range(count))


def user_member(platform: str, session_id: str) -> bytes:
    """A session's member of its user's index: the platform's code (a built-in's
    letter), then the id without its tag packed (17 bytes, always the last).
    The code groups a platform's sessions, so a login counts them with one
    ``ZLEXCOUNT``."""
    return platform_code(platform).encode() + pack_id(session_id[4:])


def idx_bound(created: int) -> bytes:
    """The listing-index position just before the members of sessions created at
    ``created``: later logins sort before it, this and earlier ones after it."""
    return (_INVERT - created).to_bytes(6, "big")


def idx_member(created: int, session_id: str) -> bytes:
    """The listing-index member of a session (26 bytes, not 41 as text): newest
    login first in lexical order, then by id. ``lua/records.lua`` writes the same."""
    return idx_bound(created) + pack_id(session_id)


def idx_position(member: bytes) -> tuple[int, str]:
    """The login time and session id of a listing-index member."""
    return _INVERT - int.from_bytes(member[:6], "big"), unpack_id(member[6:], 26)


# -- the session record ----------------------------------------------------------------

_PLATFORM_OF = {letter.encode(): platform for platform, letter in PLATFORM_LETTERS.items()}
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
    """A record as ``lua/records.lua`` writes it."""
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
    bound = idle.startswith(b"b")  # device-bound (DBSC)
    if bound:
        idle = idle[1:]
    # positional: this runs on every check, and keywords cost a Record twice as much
    return Record(session_id, decode_user(user), _PLATFORM_OF.get(platform) or _platform_of(platform),
                  int(created, 36), int(seen, 36),
                  remember, ip, city, user_agent, device, metadata, int(idle) if idle else None, bound)


def decode_tombstone(session_id: str, value: bytes) -> tuple[str, int, Record] | None:
    """A tombstone as ``store.lua`` ``finish_all`` writes it: the reason, when the
    session ended (ms) and its last record; ``None`` for one that holds only a
    reason (written by an earlier version)."""
    parts = value.split(b"|", 2)
    if len(parts) < 3:
        return None
    return parts[0].decode("ascii"), int(parts[1], 36), decode_record(session_id, parts[2])


def reason_of(tombstone: bytes) -> str:
    """The reason a tombstone carries."""
    return tombstone.partition(b"|")[0].decode("ascii")


def now_of(text: bytes) -> int:
    """A moment (ms) as the functions answer it (``context.lua`` clock): ``<ms>``,
    or ``<s>.<us>`` as the server's ``TIME`` gives it."""
    seconds, dot, micros = text.partition(b".")
    return int(seconds) * 1000 + int(micros) // 1000 if dot else int(seconds)


def decode_pairs(flat: list[Any]) -> list[Record]:
    """``[id1, record1, id2, record2, ...]`` as records."""
    return [decode_record(flat[i].decode("ascii"), flat[i + 1]) for i in range(0, len(flat), 2)]
