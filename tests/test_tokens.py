"""Token creation, signing, verification and rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionguard.tokens import BOUND_TOKEN_LENGTH, SlotTags, Tokens, is_session_id, session_id

KEY, OLD = "k" * 32, "o" * 32


TAGS = SlotTags(b"t" * 32)


def test_round_trip_and_shape() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid(TAGS("ada"))
    assert sid[:4] == TAGS("ada") and len(sid) == 26
    token = tokens.sign(sid)
    assert tokens.verify(token) == sid
    assert is_session_id(session_id(sid)) and session_id(sid) != sid
    assert session_id(sid)[:4] == sid[:4]


def test_signature_is_hmac_sha256_of_the_sid() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid(TAGS("ada"))
    signature = tokens.sign(sid).rpartition(".")[2]
    derived = hmac.new(KEY.encode(), b"sessionguard.session", hashlib.sha256).digest()
    expected = hmac.new(derived, sid.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=") == expected


def test_sids_are_unique_and_random() -> None:
    tokens = Tokens([KEY])
    sids = {tokens.new_sid(TAGS("ada")) for _ in range(5000)}
    assert len(sids) == 5000


def test_rotation_first_key_signs_all_verify() -> None:
    old, rotated = Tokens([OLD]), Tokens([KEY, OLD])
    legacy = old.sign(old.new_sid(TAGS("ada")))
    assert rotated.verify(legacy) is not None
    fresh = rotated.sign(rotated.new_sid(TAGS("ada")))
    assert old.verify(fresh) is None and Tokens([KEY]).verify(fresh) is not None


def test_slot_tags_are_keyed_by_the_tag_key_alone() -> None:
    users = [f"user{n}" for n in range(2000)]
    ours, theirs = [TAGS(u) for u in users], [SlotTags(b"u" * 32)(u) for u in users]
    # another deployment (another tag key) files users elsewhere: the tags are a keyed hash
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) < 10  # ~0.03 expected by chance
    # nor can the unkeyed hash of the user id an attacker computes name anyone
    unkeyed = [hashlib.sha256(b"sessionguard.slot\x00" + u.encode()).hexdigest()[:4] for u in users]
    assert sum(a == b for a, b in zip(ours, unkeyed, strict=True)) < 10
    assert len(set(ours)) > 1900  # spread over the 65,536 tags (a birthday bound would give ~1,970)
    # the signing keys play no part: rotating them moves no user
    assert Tokens([KEY, OLD]).new_sid(TAGS("ada"))[:4] == Tokens([OLD]).new_sid(TAGS("ada"))[:4]


@pytest.mark.parametrize("tag", ["", "abc", "ABCD", "abcde", "wxyz"])
def test_a_sid_needs_a_slot_tag(tag: str) -> None:
    with pytest.raises(ValueError, match="slot tag"):
        Tokens.new_sid(tag)


def test_a_tag_key_is_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SlotTags(b"k" * 15)


def test_padded_and_non_canonical_signatures_are_refused() -> None:
    tokens = Tokens([KEY])
    token = tokens.sign(tokens.new_sid(TAGS("ada")))
    assert tokens.verify(token + "=") is None
    assert tokens.verify(token + "==") is None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(token[-1])
    for low_bits in (1, 2, 3):  # the same signature bytes, spelled differently
        variant = token[:-1] + alphabet[index ^ low_bits]
        assert base64.urlsafe_b64decode(variant.rpartition(".")[2] + "=") == base64.urlsafe_b64decode(
            token.rpartition(".")[2] + "="
        )
        assert tokens.verify(variant) is None


@given(st.text(max_size=300))
def test_verify_never_raises(text: str) -> None:
    assert Tokens([KEY]).verify(text) is None


def test_session_of_remembers_only_verified_tokens() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid(TAGS("ada"))
    token = tokens.sign(sid)
    assert tokens.session_of(token) == session_id(sid)
    assert tokens.session_of(token) == session_id(sid)  # from the cache
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BA")
    assert tokens.session_of(forged) is None
    assert forged not in tokens._known and len(tokens._known) == 1
    assert Tokens([OLD]).session_of(token) is None  # another key set has its own memory


def test_session_of_stays_bounded() -> None:
    tokens = Tokens([KEY])
    for _ in range(Tokens.KNOWN_MAX + 10):
        assert tokens.session_of(tokens.sign(tokens.new_sid(TAGS("ada"))))
    assert len(tokens._known) <= Tokens.KNOWN_MAX


# -- the device-bound form (DBSC) ------------------------------------------------------

ISSUED = 1_800_000_000


def test_bound_form_carries_its_issue_time_under_the_signature() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid("0a1b")
    token = tokens.sign_bound(sid, ISSUED)
    assert token.startswith(f"{sid}.{ISSUED}.")
    assert tokens.verify_bound(token) == (sid, ISSUED)
    assert tokens.bound_session_of(token) == (session_id(sid), ISSUED)
    assert tokens.bound_session_of(token) == (session_id(sid), ISSUED)  # from the cache
    signature = token.rpartition(".")[2]
    derived = hmac.new(KEY.encode(), b"sessionguard.session", hashlib.sha256).digest()
    expected = hmac.new(derived, f"{sid}.{ISSUED}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=") == expected


def test_the_two_forms_cannot_be_turned_into_each_other() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid("0a1b")
    plain, bound = tokens.sign(sid), tokens.sign_bound(sid, ISSUED)
    assert tokens.verify_bound(plain) is None and tokens.bound_session_of(plain) is None
    assert tokens.verify(bound) is None and tokens.session_of(bound) is None
    signature = plain.rpartition(".")[2]
    assert tokens.verify_bound(f"{sid}.{ISSUED}.{signature}") is None  # the plain MAC, a new time
    later = f"{sid}.{ISSUED + 3600}.{bound.rpartition('.')[2]}"  # the bound MAC, a later time
    assert tokens.verify_bound(later) is None and tokens.bound_session_of(later) is None


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda t: t.replace(f".{ISSUED}.", f".0{ISSUED}."), id="leading-zero"),
        pytest.param(lambda t: t.replace(f".{ISSUED}.", f".+{ISSUED}."), id="plus-sign"),
        pytest.param(lambda t: t.replace(f".{ISSUED}.", f".{ISSUED}0."), id="eleven-digits"),
        pytest.param(lambda t: t + "=", id="padded"),
        pytest.param(lambda t: t.replace(".", "..", 1), id="double-dot"),
    ],
)
def test_only_the_canonical_bound_spelling_is_accepted(spelling: Any) -> None:
    tokens = Tokens([KEY])
    token = tokens.sign_bound(tokens.new_sid("0a1b"), ISSUED)
    assert tokens.verify_bound(spelling(token)) is None


def test_bound_tokens_follow_key_rotation() -> None:
    old, rotated = Tokens([OLD]), Tokens([KEY, OLD])
    legacy = old.sign_bound(old.new_sid("0a1b"), ISSUED)
    assert rotated.verify_bound(legacy) is not None
    assert Tokens([KEY]).verify_bound(legacy) is None


@given(st.text(max_size=300))
def test_verify_bound_never_raises(text: str) -> None:
    assert Tokens([KEY]).verify_bound(text) is None


def test_the_bound_form_has_one_length_the_other_never_has() -> None:
    tokens = Tokens([KEY])
    sid = tokens.new_sid("0a1b")
    assert len(tokens.sign_bound(sid, ISSUED)) == BOUND_TOKEN_LENGTH != len(tokens.sign(sid))
