"""Device Bound Session Credentials (DBSC, SPEC 9.6), the server's side as
values: challenges, header values, the registration answer and the cookies
of a bound session. No I/O and no clock (times are passed in); the proofs
themselves are read and checked by :mod:`.jws`, the endpoints are
:mod:`.admin.dbsc`.

The protocol as Chromium speaks it:

1. A login response offers binding (:func:`registration_header`) with a
   challenge for the new session.
2. The browser makes a key pair, signs the challenge and ``POST``\\ s the
   proof (with the public key) to ``<ADMIN_PATH>/dbsc/start``; the server
   binds the key to the session and answers with the bound cookie, which
   carries its own issue time and is refused once older than
   ``DEVICE_BOUND_COOKIE_LIFETIME``.
3. When that cookie is missing or expired the browser holds its request and
   ``POST``\\ s ``<ADMIN_PATH>/dbsc/refresh``: first without a proof (``403``
   and a challenge), then with one signed by its key; the server answers
   with a fresh cookie.

Challenges are made without a store: a random nonce and the issue time,
under an HMAC that binds them to one session (so a challenge of one session
is worthless for another). The store remembers the challenges already
answered, so each is answered once (:func:`~.core.redeemable`).

The refresh needs the session's secret id to sign the new cookie, and the
public id the browser names the session by cannot give it. So binding also
sets a *refresh cookie*: the session's token without an issue time, sent by
the browser to the refresh path only. Anywhere else a bound session refuses
that token (:func:`~.core.refuses_token`), and the refresh endpoint wants a
proof from the key besides: a copy of it is as useless as a copy of the
bound cookie once that has expired.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from werkzeug.http import dump_cookie

from .core import CHALLENGE_MS
from .jws import ALGORITHMS, ProofError, b64url, b64url_decode
from .origins import origin_of

START_PATH = "/dbsc/start"
REFRESH_PATH = "/dbsc/refresh"
#: Response header offering registration (on a login response).
REGISTRATION = "secure-session-registration"
#: Request header carrying the browser's proof.
RESPONSE = "secure-session-response"
#: Request header naming the session to refresh.
SESSION_ID = "sec-secure-session-id"
#: Response header carrying a challenge (on a refresh's ``403``).
CHALLENGE = "secure-session-challenge"

_CHALLENGE_BYTES = 6 + 12 + 16  # issue time (ms), nonce, MAC
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"  # noqa: E501
_ORIGIN = re.compile(rf"https://{_HOST}", re.ASCII)


class Challenge(NamedTuple):
    """A challenge read back: ``id`` is what the store remembers once it is
    answered (issue time and nonce), ``issued`` its issue time (ms)."""

    id: str
    issued: int


class Challenges:
    """Makes and reads challenges, each bound to one session by an HMAC under
    a key derived from the guard's secret keys (the first signs, all read)."""

    __slots__ = ("_keys",)

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self._keys = tuple(
            hmac.new(key.encode(), b"sessionguard.dbsc.challenge", hashlib.sha256).digest()
            for key in secret_keys
        )

    def issue(self, session_id: str, now: int) -> str:
        """A fresh challenge for the session ``session_id`` at ``now`` (ms)."""
        head = now.to_bytes(6, "big") + secrets.token_bytes(12)
        return b64url(head + _mac(self._keys[0], session_id, head))

    def read(self, session_id: str, text: str, now: int) -> Challenge:
        """The challenge ``text`` if it was issued here for ``session_id`` and
        is at most :data:`~.core.CHALLENGE_MS` old at ``now``; whether it was
        answered before is the store's to say.

        :raises ProofError: ``401``.
        """
        try:
            raw = b64url_decode(text) if len(text) < 64 else b""
        except ProofError:
            raw = b""
        head = raw[:18]
        if len(raw) != _CHALLENGE_BYTES or not any(
            hmac.compare_digest(raw[18:], _mac(key, session_id, head)) for key in self._keys
        ):
            raise ProofError(401, "challenge_refused", "the challenge was not issued for this session")
        issued = int.from_bytes(head[:6], "big")
        if not -CHALLENGE_MS <= now - issued <= CHALLENGE_MS:
            raise ProofError(401, "challenge_expired", "the challenge is more than 5 minutes old")
        return Challenge(b64url(head), issued)


def _mac(key: bytes, session_id: str, head: bytes) -> bytes:
    return hmac.new(key, session_id.encode("ascii", "replace") + b"\x00" + head, hashlib.sha256).digest()[:16]


def sf_string(text: str) -> str:
    """``text`` as a Structured Field string (RFC 8941): quoted, with ``"`` and
    ``\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def registration_header(admin_path: str, challenge: str) -> str:
    """``Secure-Session-Registration`` of a login response:
    ``(ES256 RS256);path="<ADMIN_PATH>/dbsc/start";challenge="<c>"``."""
    algorithms = " ".join(ALGORITHMS)
    return f"({algorithms});path={sf_string(admin_path + START_PATH)};challenge={sf_string(challenge)}"


def challenge_header(challenge: str, session_id: str) -> str:
    """``Secure-Session-Challenge`` of a refresh's ``403``: ``"<c>";id="<id>"``."""
    return f"{sf_string(challenge)};id={sf_string(session_id)}"


def request_origin(headers: Mapping[str, str]) -> str | None:
    """The HTTPS origin the browser is on, as it spells origins (:func:`~.origins.origin_of`):
    its ``Origin`` header, else ``https://`` and the ``Host`` header; ``None``
    when neither is one."""
    for candidate in (headers.get("origin", "").strip(), "https://" + headers.get("host", "").strip()):
        if _ORIGIN.fullmatch(candidate):
            return origin_of(candidate)
    return None


class BoundCookies:
    """The cookies of a bound session under one guard's settings, and the
    attributes the registration answer names.

    :param lifetime: ``DEVICE_BOUND_COOKIE_LIFETIME`` in seconds.
    """

    __slots__ = ("name", "lifetime", "attributes", "refresh_name", "refresh_path", "_options")

    def __init__(self, *, name: str, path: str, domain: str | None, secure: bool, samesite: str,
                 lifetime: int, admin_path: str) -> None:
        self.name = name
        self.lifetime = lifetime
        self._options: dict[str, Any] = {
            "path": path, "domain": domain, "secure": secure, "httponly": True,
            "samesite": samesite.capitalize(),
        }
        # the attributes exactly as the Set-Cookie spells them (the browser matches them)
        cleared = dump_cookie(name, "", **self._options)
        #: the cookie's attributes, for the registration answer's ``credentials``
        self.attributes = cleared.split("; ", 1)[1]
        # A __Host- cookie must have Path=/; the refresh cookie's path is the refresh
        # endpoint, so it takes the __Secure- prefix (same guarantees but the path).
        base = "__Secure-" + name[7:] if name.lower().startswith("__host-") else name
        self.refresh_name = f"{base}_refresh"
        self.refresh_path = admin_path + REFRESH_PATH

    def bound(self, token: str) -> str:
        """``Set-Cookie`` of the bound cookie, expiring with its lifetime."""
        return dump_cookie(self.name, token, max_age=self.lifetime, **self._options)

    def refresh(self, token: str, max_age: int | None) -> str:
        """``Set-Cookie`` of the refresh cookie (the session's token without an
        issue time), sent by the browser to the refresh path only; ``max_age``
        as the session's own cookie (``None``: ends with the browser)."""
        options = {**self._options, "path": self.refresh_path, "domain": None}
        return dump_cookie(self.refresh_name, token, max_age=max_age, **options)


def answer(session_id: str, *, refresh_url: str, origin: str, cookies: BoundCookies) -> dict[str, Any]:
    """The JSON a registration or refresh answers with (SPEC 9.6)."""
    return {
        "session_identifier": session_id,
        "refresh_url": refresh_url,
        "scope": {"origin": origin, "include_site": False},
        "credentials": [{"type": "cookie", "name": cookies.name, "attributes": cookies.attributes}],
    }
