"""The browser's proofs of device-bound sessions (DBSC, SPEC 9.6): JOSE
compact JWS (RFC 7515) signed with ES256 or RS256, keys as JWK (RFC 7517).

Pure: no I/O, no clock. Only what DBSC needs is accepted, so nothing else
can be smuggled through: ``typ`` must be ``dbsc+jwt``; ``alg`` must be
``ES256`` or ``RS256`` (``none``, ``HS256`` and every other value are
refused, as is a ``crit`` header); the payload must carry a string ``jti``
(the challenge). Keys: EC P-256, or RSA of 2048 to 4096 bits with a public
exponent of at least 3. Signatures are checked by ``cryptography`` (the
optional extra ``sessionguard-middleware[dbsc]``), imported when a key is
first read, so the module imports without it.

A :class:`ProofError` carries the HTTP status the endpoints answer with:
``400`` for a proof that is malformed, ``401`` for one that does not verify.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    PublicKey = EllipticCurvePublicKey | RSAPublicKey

#: The ``typ`` of every DBSC proof.
TYPE = "dbsc+jwt"
#: The algorithms accepted, in the order the server offers them (Chromium
#: takes the first it supports).
ALGORITHMS = ("ES256", "RS256")
#: Longest proof accepted, in characters (an RS256 proof with its key is about 1,100).
MAX_PROOF = 8192
_RSA_BITS = (2048, 4096)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class ProofError(ValueError):
    """A proof refused: ``status`` (400 malformed, 401 not verified), a stable
    ``code`` and a message for humans (never the proof itself)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def malformed(message: str) -> ProofError:
    """A ``400`` for a proof that cannot be read."""
    return ProofError(400, "malformed_proof", message)


class Proof(NamedTuple):
    """A proof read but not yet verified: its ``alg``, the challenge it
    answers (``jti``), the key in its header (registration only), and what
    was signed."""

    alg: str
    jti: str
    jwk: Mapping[str, Any] | None
    signing_input: bytes
    signature: bytes


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url, canonical spelling only (no padding, no stray bits).

    :raises ProofError: ``400``.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise malformed("a part is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:  # pragma: no cover - excluded by the pattern and length above
        raise malformed("a part is not unpadded base64url") from None
    if b64url(data) != text:
        raise malformed("a part is not canonical base64url")
    return data


def b64url(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(part).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise malformed(f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise malformed(f"the {what} is not a JSON object")
    return value


def read(text: str) -> Proof:
    """The proof in a ``Secure-Session-Response`` header, checked for form only.

    :raises ProofError: ``400`` naming what is wrong.
    """
    text = text.strip()
    if len(text) > MAX_PROOF:
        raise malformed(f"the proof is longer than {MAX_PROOF} characters")
    parts = text.split(".")
    if len(parts) != 3:
        raise malformed("the proof is not a compact JWS (three parts)")
    header = _json_object(parts[0], "JWS header")
    payload = _json_object(parts[1], "JWS payload")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise malformed(f"the algorithm must be {' or '.join(ALGORITHMS)}")
    if header.get("typ") != TYPE:
        raise malformed(f"the JWS typ must be {TYPE}")
    if "crit" in header:
        raise malformed("critical JWS extensions are not supported")
    jwk = header.get("jwk")
    if jwk is not None and not isinstance(jwk, dict):
        raise malformed("the jwk header is not a JSON object")
    jti = payload.get("jti")
    if not isinstance(jti, str) or not jti:
        raise malformed("the payload has no jti (the challenge)")
    signature = b64url_decode(parts[2])
    return Proof(str(alg), jti, jwk, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def key_text(jwk: Mapping[str, Any]) -> str:
    """The public members of ``jwk`` as compact, sorted JSON: the form a
    bound key is stored in (:func:`verify` reads it back). Checks the key.

    :raises ProofError: ``400`` for a key that is not an accepted public key.
    """
    kty = jwk.get("kty")
    members = ("kty", "crv", "x", "y") if kty == "EC" else ("kty", "n", "e")
    public = {name: jwk.get(name) for name in members}
    public_key(public)
    return json.dumps(public, sort_keys=True, separators=(",", ":"))


def public_key(jwk: Mapping[str, Any]) -> PublicKey:
    """The key a JWK describes: EC P-256, or RSA of 2048 to 4096 bits.

    :raises ProofError: ``400``.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    kty = jwk.get("kty")
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise malformed("an EC key must be on the curve P-256")
        x, y = (_member(jwk, name) for name in ("x", "y"))
        if len(x) != 32 or len(y) != 32:
            raise malformed("a P-256 key's x and y are 32 bytes each")
        try:
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
        except ValueError:
            raise malformed("the EC key is not a point on P-256") from None
    if kty == "RSA":
        n, e = (int.from_bytes(_member(jwk, name, minimal=True), "big") for name in ("n", "e"))
        low, high = _RSA_BITS
        if not low <= n.bit_length() <= high or e < 3 or e % 2 == 0:
            raise malformed(f"an RSA key must have {low} to {high} bits and an odd exponent")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError:  # pragma: no cover - the bounds above are cryptography's own checks
            raise malformed("the RSA key is not valid") from None
    raise malformed("the key type (kty) must be EC or RSA")


def _member(jwk: Mapping[str, Any], name: str, *, minimal: bool = False) -> bytes:
    """A key member's bytes; ``minimal``: an integer of RFC 7518 §6.3.1, without
    leading zero bytes (EC coordinates are fixed-length and may have them)."""
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise malformed(f"the key has no {name}")
    data = b64url_decode(value)
    if minimal and len(data) > 1 and data[0] == 0:
        raise malformed(f"the key's {name} has leading zero bytes")
    return data


def verify(proof: Proof, key: PublicKey) -> None:
    """Check the signature of ``proof`` with ``key``, which must be of the
    type its ``alg`` names (ES256: P-256 with a raw 64-byte ``r || s``;
    RS256: RSASSA-PKCS1-v1_5 with SHA-256).

    :raises ProofError: ``401`` when it does not verify.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    refused = ProofError(401, "bad_signature", "the proof is not signed by the device's key")
    try:
        if proof.alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(proof.signature) != 64:  # JOSE's r || s, not DER
                raise refused
            r = int.from_bytes(proof.signature[:32], "big")
            s = int.from_bytes(proof.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), proof.signing_input, ec.ECDSA(hashes.SHA256()))
        elif proof.alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(proof.signature, proof.signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise ProofError(401, "bad_signature", f"the proof's algorithm {proof.alg} does not fit the key")
    except InvalidSignature:
        raise refused from None


def stored_key(text: str) -> PublicKey:
    """A key stored by :func:`key_text`, read back.

    :raises ProofError: ``401`` when the stored text is not a key (nothing
        the browser can fix: the refresh is refused).
    """
    try:
        jwk = json.loads(text)
        if not isinstance(jwk, dict):
            raise ValueError("not an object")
        return public_key(jwk)
    except (ValueError, ProofError):
        raise ProofError(401, "bad_key", "the session's stored key cannot be read") from None
