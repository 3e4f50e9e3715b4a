"""Where the Redis store keeps what: key names.

Key layout (``P`` is ``KEY_PREFIX``; ``{tag}`` the user's slot tag, which is
also the first four characters of every id of that user's sessions, so all of
a user's keys share one Redis Cluster hash slot; ``<short>`` is a session id
without those four characters):

- ``P:{tag}:s:<short>`` the session record (a string, see ``lua/records.lua``),
  expiring a day after the session's deadline;
- ``P:{tag}:e:<short>`` the tombstone of an ended session, for a day: its
  reason, when it ended and its last record (``<reason>|<ms, base 36>|<record>``);
- ``P:{tag}:x:<user>`` the user's sessions ended within the last day (zset
  scored by when each ended, members as the user's index's);
- ``P:{tag}:k:<short>`` a device-bound session's key and the challenges it
  answered (DBSC, a hash, see ``lua/bind.lua``), gone with the session;
- ``P:{tag}:u:<user>`` the user's sessions (zset of ``<short>`` packed by
  :func:`pack_id` into 17 bytes, all scores 0, so that a few sessions fit a
  small listpack), expiring with the longest-kept of them;
  ``P:{tag}:t:<user>`` the user's own idle timeouts (hash platform ->
  seconds), kept 400 days after the last login or change; ``<user>`` is
  :func:`encode_user` of the user id;
- ``P:state`` (hash: policy override, sign-out epoch, revision, tag key), ``P:idx``
  (every session, newest login first, for the admin listing: 26-byte members,
  see :func:`idx_member`; an ended session's entry stays as long as its
  tombstone), ``P:dl`` (every session that can time out, scored by its
  deadline or an earlier moment: the sweep's order, see :mod:`.endings`;
  ``P:dl:by`` the policy it was last placed by),
  ``P:audit`` (stream) and the pub/sub channel ``P:bus``: the only keys
  without a TTL;
- ``P:active`` the last count of active sessions per platform (a hash: a field
  per platform, ``at`` and ``took``), and ``P:active:lock`` who is counting anew
  (:mod:`.census`);
- ``P:{P:audit}:q:<user>`` how much the user's self-service actions added to the
  audit log lately (``lua/audit.lua``): in the stream's slot, not the user's, so
  that it changes in one step with the stream; expires when it limits nothing.

Every byte here is paid once per session: the layout keeps a typical session
(record, its share of the user's index, its listing entry) under 600 bytes of
Redis memory (``tests/test_redis_store.py::test_memory_per_session_is_small``).
"""

from __future__ import annotations

import base64
import re

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
        self.deadlines = f"{prefix}:dl"
        self.deadlines_policy = f"{prefix}:dl:by"
        self.audit = f"{prefix}:audit"
        self.bus = f"{prefix}:bus"
        self.active = f"{prefix}:active"
        self.active_lock = f"{prefix}:active:lock"
        self.prefix = prefix

    def base(self, tag: str) -> str:
        return f"{self.prefix}:{{{tag}}}:"

    def session(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}s:{session_id[4:]}"

    def tombstone(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}e:{session_id[4:]}"

    def device_key(self, session_id: str) -> str:
        return f"{self.base(session_id[:4])}k:{session_id[4:]}"

    def user_index(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}u:{encode_user(user_id)}"

    def recent(self, tag: str, user_id: str) -> str:
        """The user's recently ended sessions (``x:<user>``)."""
        return f"{self.base(tag)}x:{encode_user(user_id)}"

    def settings(self, tag: str, user_id: str) -> str:
        return f"{self.base(tag)}t:{encode_user(user_id)}"

    def allowance(self, user_id: str) -> str:
        # the hash tag is the audit stream's whole name: a key without braces hashes whole
        return f"{self.prefix}:{{{self.audit}}}:q:{encode_user(user_id)}"
