"""The DBSC proofs (:mod:`sessionguard.jws`): compact JWS read strictly,
ES256 (raw ``r || s``) and RS256 verified with ``cryptography``, JWKs
checked; every refusal a :class:`ProofError` with status 400 or 401, never
another exception."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbsc_device import Device, b64
from sessionguard import jws
from sessionguard.jws import ProofError

ES, RS = Device("ES256"), Device("RS256")


@pytest.mark.parametrize("device", [ES, RS], ids=["ES256", "RS256"])
def test_a_genuine_proof_verifies_with_its_key(device: Device) -> None:
    proof = jws.read(device.proof("challenge-1", with_key=True))
    assert (proof.alg, proof.jti) == (device.alg, "challenge-1")
    assert proof.jwk == device.jwk()
    stored = jws.key_text(device.jwk())
    jws.verify(proof, jws.stored_key(stored))  # no exception
    assert json.loads(stored) == device.jwk()


def test_the_stored_key_holds_only_public_members() -> None:
    jwk = {**ES.jwk(), "d": "private-part", "kid": "x", "use": "sig"}
    assert json.loads(jws.key_text(jwk)) == ES.jwk()


@pytest.mark.parametrize(
    ("text", "status"),
    [
        pytest.param("", 400, id="empty"),
        pytest.param("a.b", 400, id="two-parts"),
        pytest.param("a.b.c.d", 400, id="four-parts"),
        pytest.param("é" * 12, 400, id="not-ascii"),
        pytest.param(f"{b64(b'[]')}.{b64(b'{}')}.", 400, id="header-not-object"),
        pytest.param(f"{b64(b'{')}.{b64(b'{}')}.", 400, id="header-not-json"),
        pytest.param(f"{b64(b'{}')}.{b64(b'{}')}.", 400, id="no-alg"),
        pytest.param("e30=.e30.", 400, id="padded"),
        pytest.param("e31.e30.", 400, id="non-canonical-base64"),
        pytest.param("e3+.e30.", 400, id="standard-base64"),
    ],
)
def test_malformed_proofs_are_400(text: str, status: int) -> None:
    with pytest.raises(ProofError) as caught:
        jws.read(text)
    assert caught.value.status == status


def _header(**fields: object) -> str:
    return b64(json.dumps({"alg": "ES256", "typ": "dbsc+jwt", **fields}).encode())


@pytest.mark.parametrize(
    ("header", "payload", "message"),
    [
        pytest.param({"alg": "none"}, {"jti": "c"}, "algorithm", id="alg-none"),
        pytest.param({"alg": "HS256"}, {"jti": "c"}, "algorithm", id="alg-hs256"),
        pytest.param({"alg": "ES384"}, {"jti": "c"}, "algorithm", id="alg-es384"),
        pytest.param({"alg": "es256"}, {"jti": "c"}, "algorithm", id="alg-lower-case"),
        pytest.param({"typ": "JWT"}, {"jti": "c"}, "typ", id="typ-jwt"),
        pytest.param({"typ": None}, {"jti": "c"}, "typ", id="typ-missing"),
        pytest.param({"crit": ["exp"]}, {"jti": "c"}, "critical", id="crit"),
        pytest.param({"jwk": "key"}, {"jti": "c"}, "jwk", id="jwk-not-object"),
        pytest.param({}, {}, "jti", id="no-jti"),
        pytest.param({}, {"jti": ""}, "jti", id="empty-jti"),
        pytest.param({}, {"jti": ["c"]}, "jti", id="jti-list"),
    ],
)
def test_refused_headers_and_payloads_are_400(header: dict[str, object], payload: dict[str, object],
                                              message: str) -> None:
    text = f"{_header(**header)}.{b64(json.dumps(payload).encode())}.{b64(b'sig')}"
    with pytest.raises(ProofError) as caught:
        jws.read(text)
    assert caught.value.status == 400 and message in caught.value.message


def test_a_proof_of_another_key_or_altered_is_401() -> None:
    proof = jws.read(ES.proof("c", with_key=True))
    with pytest.raises(ProofError) as caught:
        jws.verify(proof, jws.public_key(Device("ES256").jwk()))
    assert caught.value.status == 401
    altered = proof._replace(signing_input=proof.signing_input + b"x")
    with pytest.raises(ProofError):
        jws.verify(altered, jws.public_key(ES.jwk()))
    der = proof._replace(signature=b"\x30" + proof.signature)  # not 64 bytes: not JOSE's r || s
    with pytest.raises(ProofError):
        jws.verify(der, jws.public_key(ES.jwk()))


def test_the_algorithm_must_fit_the_key() -> None:
    es_as_rs = jws.read(ES.proof("c", header={"alg": "RS256"}))
    with pytest.raises(ProofError) as caught:
        jws.verify(es_as_rs, jws.public_key(ES.jwk()))
    assert caught.value.status == 401
    rs_as_es = jws.read(RS.proof("c", header={"alg": "ES256"}))
    with pytest.raises(ProofError):
        jws.verify(rs_as_es, jws.public_key(RS.jwk()))


def _raw(member: str) -> bytes:
    return base64.urlsafe_b64decode(member + "=" * (-len(member) % 4))


def _off_curve() -> dict[str, str]:
    jwk = ES.jwk()
    y = base64.urlsafe_b64decode(jwk["y"] + "=")
    return {**jwk, "y": b64(bytes([y[0] ^ 1]) + y[1:])}


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "oct", "k": "AAAA"}, id="symmetric"),
        pytest.param({**ES.jwk(), "crv": "P-384"}, id="other-curve"),
        pytest.param({**ES.jwk(), "x": b64(_raw(ES.jwk()["x"])[:-1])}, id="short-x"),
        pytest.param(_off_curve(), id="off-curve"),
        pytest.param({**ES.jwk(), "y": None}, id="no-y"),
        pytest.param({"kty": "RSA", "n": b64(b"\x01" * 128), "e": "AQAB"}, id="rsa-1024"),
        pytest.param({**RS.jwk(), "e": "Ag"}, id="rsa-even-exponent"),
        pytest.param({**RS.jwk(), "n": b64(b"\x00" + _raw(RS.jwk()["n"]))}, id="rsa-leading-zero"),
    ],
)
def test_unacceptable_keys_are_400(jwk: dict[str, object]) -> None:
    with pytest.raises(ProofError) as caught:
        jws.key_text(jwk)
    assert caught.value.status == 400 and "base64url" not in caught.value.message


def test_an_unreadable_stored_key_is_401() -> None:
    for text in ("", "[]", "{", '{"kty": "EC"}'):
        with pytest.raises(ProofError) as caught:
            jws.stored_key(text)
        assert caught.value.status == 401


@given(st.text(max_size=300))
def test_reading_never_fails_otherwise(text: str) -> None:
    try:
        jws.read(text)
    except ProofError as refused:
        assert refused.status == 400
