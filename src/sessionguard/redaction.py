"""Secrets out of what is shown: :func:`redact_url` for ``STORE_URL`` in
errors, logs and ``sessionguard check`` (SPEC §9.5)."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus


def redact_url(url: str) -> str:
    """``url`` with its secrets as ``***``: the password of the userinfo (and
    a user name written with percent-escapes), the value of every query option
    whose name (percent-decoded, any case) holds ``pass``, ``secret``,
    ``token``, ``key``, ``auth`` or ``cred`` (``password``, ``ssl_password``,
    ``sentinel_password``, ...), and any fragment.

    Errs on the side of hiding: everything before the last ``@`` counts as
    userinfo, so a password with an unescaped ``/`` or ``@`` is hidden too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme: "user:password@host" must not leak either
        scheme, rest = "", url
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        user = user if _PLAIN_USER.fullmatch(user) else "***"
        rest = (f"{user}:***" if colon else "***") + rest[at:]
    rest, hashmark, _ = rest.partition("#")
    head, question, query = rest.partition("?")
    if question:
        rest = head + "?" + "&".join(_redact_option(option) for option in query.split("&"))
    return f"{scheme}{sep}{rest}{hashmark and '#***'}"


_PLAIN_USER = re.compile(r"[A-Za-z0-9._~-]*")
_SECRET_OPTION = re.compile(r"pass|secret|token|key|auth|cred", re.IGNORECASE)


def _redact_option(option: str) -> str:
    name, equals, _ = option.partition("=")
    return f"{name}=***" if equals and _SECRET_OPTION.search(unquote_plus(name)) else option
