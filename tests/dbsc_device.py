"""A software DBSC device: what Chromium does with its key, in Python, for
the protocol tests (``tests/test_dbsc.py``) and the benchmark.

It holds its own P-256 or RSA-2048 key pair and signs JWS proofs the way
``../shared/DBSC.md`` records Chromium signing them (ES256 as raw
``r || s``); keyword arguments forge the ways a proof can be wrong.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_PARAMS = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def params(header: str) -> dict[str, str]:
    """The quoted parameters of a ``Secure-Session-*`` header (``path``,
    ``challenge``, ``id``; a bare first string as ``challenge``)."""
    found = {name: value.replace('\\"', '"').replace("\\\\", "\\") for name, value in _PARAMS.findall(header)}
    first = re.match(r'"((?:[^"\\]|\\.)*)"', header)
    if first and "challenge" not in found:
        found["challenge"] = first.group(1)
    return found


class Device:
    """A browser's key pair: ``alg`` ES256 (P-256) or RS256 (RSA-2048)."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, str]:
        """The public key as Chromium sends it."""
        numbers = self.key.public_key().public_numbers()
        if isinstance(numbers, ec.EllipticCurvePublicNumbers):
            return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
                    "y": b64(numbers.y.to_bytes(32, "big"))}
        return {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def proof(self, challenge: str, *, with_key: bool = False, header: dict[str, Any] | None = None,
              payload: dict[str, Any] | None = None, signer: Device | None = None,
              key_of: Device | None = None) -> str:
        """A proof answering ``challenge``: ``with_key`` puts the public key in
        the header (registration); ``header`` / ``payload`` replace fields;
        ``signer`` signs instead of this device; ``key_of`` names another
        device's key in the header."""
        head: dict[str, Any] = {"alg": self.alg, "typ": "dbsc+jwt"}
        if with_key:
            head["jwk"] = (key_of or self).jwk()
        head.update(header or {})
        body = {"jti": challenge, **(payload or {})}
        signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
        signature = (signer or self).sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64(signature)}"
