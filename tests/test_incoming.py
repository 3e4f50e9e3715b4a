"""Reading tokens and client addresses from request headers."""

from __future__ import annotations

import ipaddress

import pytest

from sessionguard.core import Outcome
from sessionguard.incoming import bearer, client_ip, cookie_values, is_https, present
from sessionguard.tokens import Tokens

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("header", "values"),
    [
        pytest.param("sg=a", ["a"], id="one"),
        pytest.param("x=1; sg=a; y=2", ["a"], id="among-others"),
        pytest.param("sg=a; sg=b", ["a", "b"], id="twice"),
        pytest.param("sgx=a; xsg=b", [], id="prefix-names-differ"),
        pytest.param("sg", [], id="no-equals"),
        pytest.param("sg=", [""], id="empty"),
    ],
)
def test_cookie_values(header: str, values: list[str]) -> None:
    assert cookie_values(header, "sg") == values


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param("Bearer abc", "abc", id="plain"),
        pytest.param("bearer   abc ", "abc", id="case-and-space"),
        pytest.param("Basic abc", None, id="other-scheme"),
        pytest.param("Bearer", None, id="empty"),
    ],
)
def test_bearer(header: str, token: str | None) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        pytest.param("203.0.113.9", "1.2.3.4", "203.0.113.9", id="untrusted-peer-header-ignored"),
        pytest.param("10.0.0.1", "1.2.3.4", "1.2.3.4", id="trusted-proxy"),
        pytest.param("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4", id="spoofed-left-entries-ignored"),
        pytest.param("10.0.0.1", "garbage", "10.0.0.1", id="malformed-header"),
        pytest.param("::1", "2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param("::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4", id="ipv4-mapped-peer"),
        pytest.param(None, "1.2.3.4", "", id="no-peer"),
    ],
)
def test_client_ip(peer: str | None, xff: str, expected: str) -> None:
    assert client_ip(peer, xff, PROXIES) == expected


def test_a_presented_token_is_never_in_its_repr() -> None:
    tokens = Tokens(["k" * 32])
    token = tokens.sign(tokens.new_sid("abcd"))
    presented = present(tokens, cookie_name="sg", cookie=f"sg={token}", authorization=None,
                        is_admin_token=lambda _: False)
    assert presented.outcome is Outcome.VALID and presented.token == token
    shown = repr(presented)
    assert token not in shown and token.rpartition(".")[0] not in shown
    assert presented.session_id is not None and presented.session_id in shown  # the public id is fine


@pytest.mark.parametrize(
    ("scheme", "peer", "proto", "expected"),
    [
        pytest.param("https", "10.0.0.5", None, True, id="own-https"),
        pytest.param("http", "10.0.0.5", None, False, id="own-http"),
        pytest.param("wss", "10.0.0.5", None, True, id="websocket-secure"),
        pytest.param("http", "10.0.0.5", "https", True, id="trusted-proxy-https"),
        pytest.param("https", "10.0.0.5", "http", False, id="trusted-proxy-http"),
        pytest.param("http", "10.0.0.5", "http, HTTPS", True, id="trusted-proxy-last-value"),
        pytest.param("http", "203.0.113.9", "https", False, id="untrusted-peer"),
        pytest.param("https", "203.0.113.9", "http", True, id="untrusted-peer-own-scheme"),
        pytest.param("http", None, "https", False, id="no-peer"),
        pytest.param("http", "testclient", "https", False, id="peer-not-an-address"),
    ],
)
def test_is_https(scheme: str, peer: str | None, proto: str | None, expected: bool) -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert is_https(scheme, peer, proto, trusted) is expected
    assert is_https(scheme, peer, proto, []) is (scheme in ("https", "wss"))
