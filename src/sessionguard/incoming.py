"""Reading the few request headers sessionguard needs, once per request.

Pure functions over strings: the ASGI and WSGI shells extract the raw values
their own way and hand them here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import NamedTuple

from . import alerts
from .core import Outcome
from .tokens import BOUND_TOKEN_LENGTH, Tokens, claimed_session

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Presented(NamedTuple):
    """The token a request presented: ``session_id`` when its signature holds,
    else ``outcome`` says there was none or it was invalid. A named tuple (one
    is built on every request with a token, see :class:`~.core.Record`)."""

    outcome: Outcome
    session_id: str | None = None
    source: str | None = None  # "cookie" or "bearer"
    #: the raw token, kept only to re-send a remember-me cookie; never logged
    token: str | None = None
    #: when the token is in the device-bound form: its issue time (epoch seconds)
    issued: int | None = None

    def __repr__(self) -> str:  # never the token
        return (f"Presented(outcome={self.outcome!r}, session_id={self.session_id!r}, "
                f"source={self.source!r}, issued={self.issued!r})")


NO_TOKEN = Presented(Outcome.NO_TOKEN)


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a ``Cookie`` header."""
    if name not in header:
        return []
    values = []
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            values.append(value.strip())
    return values


def bearer(authorization: str) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def present(
    tokens: Tokens,
    *,
    cookie_name: str,
    cookie: str | None,
    authorization: str | None,
    is_admin_token: Callable[[str], bool],
) -> Presented:
    """Find and verify the session token of a request.

    A bearer token wins over the cookie (it is the explicit choice of a native
    client, and cannot be forged cross-site). Two cookies of our name make the
    request anonymous (``invalid``): never "first one wins". The admin token
    is not a session token and is left to the admin sub-app.
    """
    if authorization:
        token = bearer(authorization)
        if token is not None and not is_admin_token(token):
            return _verified(tokens, token, "bearer")
    if cookie:
        values = cookie_values(cookie, cookie_name)
        if len(values) > 1:
            alerts.token_refused("two_cookies", "cookie")
            return Presented(Outcome.INVALID, source="cookie")
        if values:
            return _verified(tokens, values[0], "cookie")
    return NO_TOKEN


def _verified(tokens: Tokens, token: str, source: str) -> Presented:
    if len(token) == BOUND_TOKEN_LENGTH:  # a device-bound session's cookie (by length: no second try)
        bound = tokens.bound_session_of(token)
        if bound is None:
            return _refused(token, source)
        return Presented(Outcome.VALID, bound[0], source, token, bound[1])
    public_id = tokens.session_of(token)
    if public_id is None:
        return _refused(token, source)
    return Presented(Outcome.VALID, public_id, source, token)


def _refused(token: str, source: str) -> Presented:
    """A token that is not one of ours: logged (rate-limited, :mod:`.alerts`) as
    malformed, or as carrying a bad signature with the session it claims."""
    claimed = claimed_session(token)
    alerts.token_refused("malformed" if claimed is None else "bad_signature", source, claimed)
    return Presented(Outcome.INVALID, source=source)


def is_https(scheme: str | None, peer: str | None, forwarded_proto: str | None,
             trusted: Sequence[IPNetwork]) -> bool:
    """Whether the client reached the site over HTTPS: the request's own
    scheme, or, when the peer is a trusted proxy, the last
    ``X-Forwarded-Proto`` value (the one that proxy wrote)."""
    if forwarded_proto and trusted:
        address = _ip(peer)
        if address is not None and _trusted(address, trusted):
            return forwarded_proto.rpartition(",")[2].strip().lower() == "https"
    return scheme in ("https", "wss")


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The client address: the peer, or, when the peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    address = _ip(peer)
    if address is None:
        return peer or ""
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _ip(hop.strip())
        if hop_address is None:
            break
        address = hop_address
        if not _trusted(hop_address, trusted):
            break
    return str(address)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
