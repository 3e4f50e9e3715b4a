"""Session tokens: ``sid`` plus an HMAC-SHA-256 signature, nothing else.

A sid is ``<slot tag><22 random url-safe characters>``: 128 random bits from
:mod:`secrets`, prefixed by the 4-hex-digit slot tag of its user. The tag lets
the Redis store put every key of one user in one Cluster hash slot, and the
store find a user's sessions from the user id.

The tag is an HMAC of the user id under the deployment's *tag key*
(:class:`SlotTags`), a random secret the store creates at its first use and
keeps for good (the Redis store in its shared state, the memory store in the
process): a token or a public id shows 16 bits of a keyed hash, which nobody
without that key can match against a list of candidate users. It is not a
signing key: keyed with ``SECRET_KEY``, retiring a key would move users to
other tags while the sessions they signed in with live on, out of reach of
their user's index (not counted by the limit, not listed, not ended by a
sign-out of the user).

The public session ``id`` shown in listings is ``<tag><hash of the sid>``: it
addresses the same record but cannot be turned back into a token, and it is
what logs and audit events carry.

A device-bound session (DBSC, :mod:`.dbsc`) is presented with a second form,
``<sid>.<issued>.<signature>``: ``issued`` is the moment (epoch seconds, ten
digits) its cookie was issued, signed with the sid, so the guard refuses a
cookie past its lifetime without asking the store. The two forms sign
different texts (a sid has no dot), so neither can be turned into the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from itsdangerous import Signer

SALT = "sessionguard.session"
#: Every sid, and so every public id, starts with its user's slot tag of this many hex digits.
TAG_LENGTH = 4
#: Longest token text accepted before any decoding is attempted.
MAX_TOKEN_LENGTH = 256
_TAG = re.compile(r"[0-9a-f]{4}")
_SID = re.compile(r"[0-9a-f]{4}[A-Za-z0-9_-]{22}")
_ID = _SID
#: The only accepted token form: sid, dot, unpadded base64 of a SHA-256 MAC.
_TOKEN = re.compile(r"[0-9a-f]{4}[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
#: Every token of the bound form has this length (the other form is 11 characters shorter).
BOUND_TOKEN_LENGTH = 26 + 1 + 10 + 1 + 43
#: The bound form: sid, dot, issue time (ten digits, no leading zero), dot, signature.
_BOUND_TOKEN = re.compile(
    r"[0-9a-f]{4}[A-Za-z0-9_-]{22}\.[1-9][0-9]{9}\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Tokens:
    """Creates, signs and verifies session tokens.

    :param secret_keys: signing keys, newest first. The first key signs; every
        key verifies, so keys can be rotated by putting a new one in front.
        The slot tag depends on none of them (the store's :class:`SlotTags`).
    """

    __slots__ = ("_signer", "_macs", "_known", "_known_bound")

    #: Verified tokens remembered (token -> public id), so a hot session's token
    #: is checked once per process rather than on every request. Only tokens
    #: whose MAC verified enter, so garbage cannot fill it; it is emptied when full.
    KNOWN_MAX = 8192

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        # itsdangerous signs with the *last* key of its list and verifies with all.
        self._signer = Signer(
            list(reversed(secret_keys)),
            salt=SALT,
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        # Verification runs on every request: key each HMAC once (itsdangerous
        # would re-derive the key per call) and copy the keyed state per token.
        self._macs = tuple(
            hmac.new(self._signer.derive_key(key), digestmod=hashlib.sha256)
            for key in secret_keys
        )
        self._known: dict[str, str] = {}
        self._known_bound: dict[str, tuple[str, int]] = {}

    @staticmethod
    def new_sid(tag: str) -> str:
        """A fresh sid for a session of the user whose slot tag is ``tag``
        (the store's ``slot_tag(user_id)``)."""
        if not _TAG.fullmatch(tag):
            raise ValueError("a slot tag is 4 lower-case hex digits")
        return tag + secrets.token_urlsafe(16)

    def sign(self, sid: str) -> str:
        """The token (cookie value or bearer token) for ``sid``."""
        return self._signer.sign(sid).decode("ascii")

    def session_of(self, token: str) -> str | None:
        """The public id of the session ``token`` carries, or ``None`` if the
        token is malformed or not signed by one of the keys."""
        known = self._known.get(token)
        if known is not None:
            return known
        sid = self.verify(token)
        if sid is None:
            return None
        if len(self._known) >= self.KNOWN_MAX:
            self._known.clear()
        known = self._known[token] = session_id(sid)
        return known

    def verify(self, token: str) -> str | None:
        """The sid inside ``token``, or ``None`` if the token is malformed or
        not signed by one of the keys. Never raises on any input."""
        # Only the canonical form: padded or non-canonical base64 variants of
        # a signature are refused rather than mapped to the same session.
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            return None
        return self._signed(token)

    def sign_bound(self, sid: str, issued: int) -> str:
        """The token of a device-bound session's cookie issued at ``issued``
        (epoch seconds)."""
        return self._signer.sign(f"{sid}.{issued:010d}").decode("ascii")

    def bound_session_of(self, token: str) -> tuple[str, int] | None:
        """The public id and issue time (epoch seconds) a bound-form token
        carries, or ``None`` if it is not one signed by one of the keys."""
        known = self._known_bound.get(token)
        if known is not None:
            return known
        read = self.verify_bound(token)
        if read is None:
            return None
        if len(self._known_bound) >= self.KNOWN_MAX:
            self._known_bound.clear()
        known = self._known_bound[token] = (session_id(read[0]), read[1])
        return known

    def verify_bound(self, token: str) -> tuple[str, int] | None:
        """The sid and issue time inside a bound-form token, or ``None`` (as
        :meth:`verify`: canonical spelling only, never raises)."""
        if len(token) > MAX_TOKEN_LENGTH or not _BOUND_TOKEN.fullmatch(token):
            return None
        signed = self._signed(token)
        if signed is None:
            return None
        sid, _, issued = signed.partition(".")
        return sid, int(issued)

    def _signed(self, token: str) -> str | None:
        """The text before the last dot of a token of canonical form, if the
        signature after it is one of the keys' (constant-time comparisons)."""
        text, _, signature = token.rpartition(".")
        expected = base64.urlsafe_b64decode(signature + "=")  # canonical, per the patterns
        data = text.encode("ascii")
        for keyed in self._macs:
            mac = keyed.copy()
            mac.update(data)
            if hmac.compare_digest(mac.digest(), expected):
                return text
        return None


class SlotTags:
    """The slot tags of one deployment: ``tags(user_id)`` is the first
    :data:`TAG_LENGTH` hex digits of HMAC-SHA-256(tag key, label + user id).

    :param key: the deployment's tag key (at least 16 bytes), which must never
        change while sessions live: a user's sessions are filed under their tag.
    """

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a tag key has at least 16 bytes")
        # keyed once; each tag copies the keyed state (as Tokens does for its MACs)
        self._mac = hmac.new(key, b"sessionguard.slot\x00", hashlib.sha256)

    def __call__(self, user_id: str) -> str:
        mac = self._mac.copy()
        mac.update(user_id.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:TAG_LENGTH]


def claimed_session(token: str) -> str | None:
    """The public id of the session a token of either canonical form claims,
    its signature unchecked (for logs); ``None`` for a malformed token."""
    if len(token) > MAX_TOKEN_LENGTH or not (_TOKEN.fullmatch(token) or _BOUND_TOKEN.fullmatch(token)):
        return None
    return session_id(token.partition(".")[0])  # the sid: up to the first dot in either form


def session_id(sid: str) -> str:
    """The public id of the session whose secret sid is ``sid``."""
    return sid[:TAG_LENGTH] + _b64(hashlib.sha256(sid.encode("ascii")).digest()[:16])


def is_session_id(value: str) -> bool:
    """Whether ``value`` has the shape of a public session id."""
    return _ID.fullmatch(value) is not None
