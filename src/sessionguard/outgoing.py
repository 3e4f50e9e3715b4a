"""What the shells add to a response's headers, written once for both:
ASGI headers are ``bytes`` pairs, WSGI headers ``str`` pairs (a
:class:`Spelling` each).

- A response that sets or clears the session cookie carries it, with
  ``Cache-Control: no-store`` in place of the app's own ``Cache-Control``;
  a login's offer of device binding (``Secure-Session-Registration``, DBSC)
  goes with its cookie.
- A response to a request that presented a session token (SPEC §9.5) depends
  on who asked: it gets ``Vary: Cookie`` (``Vary: Authorization`` for a bearer
  token) unless the app's ``Vary`` already names it (or is ``*``), and
  ``Cache-Control: private`` when the app set no ``Cache-Control``, so that no
  shared cache hands one user's page to another.

- A response to a request with a valid session (presented, or created by a
  login in the request) carries ``Session-Expires``: the session's
  ``expires_at`` (none when it never expires), computed without a store call.

A request without a token gets none of this, and the shells do not call here
for it unless it logs in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import AnyStr, Generic


class Spelling(Generic[AnyStr]):
    """The header names and values of one shell's type."""

    __slots__ = ("cache_control", "vary", "set_cookie", "no_store", "private", "comma", "star", "vary_by",
                 "cache_control_name", "vary_name", "session_expires", "registration")
    cache_control: AnyStr
    vary: AnyStr
    set_cookie: AnyStr
    no_store: AnyStr
    private: AnyStr
    comma: AnyStr
    star: AnyStr
    #: the ``Vary`` value for each way of presenting a token
    vary_by: dict[str, AnyStr]
    #: lower-case names, to compare with
    cache_control_name: AnyStr
    vary_name: AnyStr
    session_expires: AnyStr
    registration: AnyStr

    def __init__(self, cache_control: AnyStr, vary: AnyStr, set_cookie: AnyStr, no_store: AnyStr,
                 private: AnyStr, comma: AnyStr, star: AnyStr, cookie: AnyStr, authorization: AnyStr,
                 session_expires: AnyStr, registration: AnyStr) -> None:
        self.cache_control, self.vary, self.set_cookie = cache_control, vary, set_cookie
        self.no_store, self.private, self.comma, self.star = no_store, private, comma, star
        self.vary_by = {"cookie": cookie, "bearer": authorization}
        self.cache_control_name, self.vary_name = cache_control.lower(), vary.lower()
        self.session_expires = session_expires
        self.registration = registration


ASGI = Spelling(b"cache-control", b"vary", b"set-cookie", b"no-store", b"private", b",", b"*",
                b"Cookie", b"Authorization", b"session-expires", b"secure-session-registration")
WSGI = Spelling("Cache-Control", "Vary", "Set-Cookie", "no-store", "private", ",", "*",
                "Cookie", "Authorization", "Session-Expires", "Secure-Session-Registration")


def with_session(
    headers: Iterable[tuple[AnyStr, AnyStr]],
    spelling: Spelling[AnyStr],
    cookie: AnyStr | None,
    source: str | None,
    expires: AnyStr | None = None,
    offer: AnyStr | None = None,
) -> list[tuple[AnyStr, AnyStr]]:
    """``headers`` (the app's, not changed) plus what the session adds: the
    ``Set-Cookie`` value ``cookie`` if any (with the login's ``offer`` of device
    binding, if any), the cache headers of a request whose token came from
    ``source`` (``"cookie"``, ``"bearer"`` or ``None``), and ``Session-Expires``
    when ``expires`` is given."""
    cache_control, vary = spelling.cache_control_name, spelling.vary_name
    out: list[tuple[AnyStr, AnyStr]] = []
    cached = False  # the app set a Cache-Control
    varied: list[AnyStr] = []  # the app's Vary values
    for header in headers:  # one pass: this runs on every response to a token
        name = header[0].lower()
        if name == cache_control:
            if cookie is not None:
                continue  # replaced by no-store
            cached = True
        elif name == vary:
            varied.append(header[1])
        out.append(header)
    if cookie is not None:
        out.append((spelling.set_cookie, cookie))
        out.append((spelling.cache_control, spelling.no_store))
        if offer is not None:
            out.append((spelling.registration, offer))
    elif source is not None and not cached:
        out.append((spelling.cache_control, spelling.private))
    if source is not None:
        wanted = spelling.vary_by[source]
        if not varied or not _names(varied, spelling, wanted.lower()):
            out.append((spelling.vary, wanted))
    if expires is not None:
        out.append((spelling.session_expires, expires))
    return out


def _names(values: list[AnyStr], spelling: Spelling[AnyStr], wanted: AnyStr) -> bool:
    """Whether ``Vary`` ``values`` name ``wanted`` (lower-case) or ``*``."""
    for value in values:
        for item in value.lower().split(spelling.comma):
            if item.strip() in (wanted, spelling.star):
                return True
    return False
