"""Web origins (``scheme://host[:port]``): the form ``ALLOWED_ORIGINS`` takes
(:func:`origin_of`), and whether a websocket handshake from a page of some
origin may use the session cookie (:func:`origin_allowed`, SPEC §9.5)."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(text: str) -> str | None:
    """``text`` as an origin compares: ``scheme://host[:port]`` lower-cased,
    without the scheme's default port; ``None`` when it is not one (a path,
    query, user info, ``null``, a bad port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not parts.scheme or not host or parts.path not in ("", "/") or parts.query or parts.fragment \
            or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a websocket handshake from ``origin`` (its ``Origin`` header)
    may use the session cookie: the request's own ``host`` (its ``Host``
    header; scheme and default port aside, since a proxy may end TLS), or one
    of ``allowed`` (normalised by :func:`origin_of`). A handshake
    without ``Origin`` comes from no browser page, so not from another site."""
    if origin is None:
        return True
    normal = origin_of(origin)
    if normal is None:
        return False
    if normal in allowed:
        return True
    if not host:
        return False
    own = host.strip().lower()
    for default in (":80", ":443"):
        own = own.removesuffix(default)
    return normal.partition("://")[2] == own

