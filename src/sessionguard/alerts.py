"""Security events for the ``sessionguard`` logger (ASVS 16.3.2, 16.3.3): admin
requests refused (``401`` / ``403``, a missing CSRF token included), and
presented session tokens refused before any store call (a bad signature, a
malformed token, two session cookies), and cross-site websocket handshakes.

Each is one ``WARNING`` line. A line never holds a token: a session appears
only by its public id (a hash of its sid); every string a client chose (a
path, a user id) is written as a JSON string, so control characters and line
breaks are escaped and a line stays one line.

A client can send such requests as fast as it likes, so each kind is written
at most once a second per process (:class:`Throttle`); the next line of that
kind says how many were left out meanwhile. The count is per process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("sessionguard")

#: At most one line of a kind this often (seconds), per process.
INTERVAL = 1.0


class Throttle:
    """At most one line per kind per :data:`INTERVAL`; counts the others."""

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, kind: str) -> int | None:
        """``None``: leave this line out; else write it, with the number of lines
        of ``kind`` left out since the last one written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._left_out[kind] = self._left_out.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._left_out.pop(kind, 0)


#: the process's throttle (the rate limit is per process)
THROTTLE = Throttle()


def quoted(text: str) -> str:
    """``text`` as a JSON string: a client's string, escaped for a log line."""
    return json.dumps(text, ensure_ascii=True)


def notice(kind: str, message: str, *args: object) -> None:
    """Write ``message % args`` as a warning, unless a line of ``kind`` was
    written less than :data:`INTERVAL` ago."""
    if not logger.isEnabledFor(logging.WARNING):
        return
    left_out = THROTTLE.admit(kind)
    if left_out is None:
        return
    if left_out:
        message += " (and %d more since the last such line)"
        args += (left_out,)
    logger.warning(message, *args)


def token_refused(kind: str, source: str, public_id: str | None = None) -> None:
    """A presented session token refused without a store call: ``kind`` is
    ``bad_signature`` (``public_id``: the session it claims), ``malformed`` or
    ``two_cookies``; ``source`` is ``cookie`` or ``bearer``."""
    if public_id is None:
        notice(kind, "sessionguard: presented session token refused: %s (%s)", kind, source)
    else:
        notice(kind, "sessionguard: presented session token refused: %s (%s), claims session %s",
               kind, source, public_id)


def cross_site(path: str) -> None:
    """A websocket handshake with the session cookie from another site's page."""
    notice("cross_site_websocket", "sessionguard: cross-site websocket handshake refused: %s",
           quoted(path))


def admin_refused(status: int, code: str, method: str, path: str, actor: str,
                  session_id: str | None) -> None:
    """An admin request refused by authentication (``401``) or authorisation
    (``403``: a missing permission, a missing CSRF token...)."""
    caller = "anonymous" if actor == "anonymous" else quoted(actor)
    if session_id is not None:
        caller += f", session {session_id}"
    notice(f"admin_{code}", "sessionguard: admin request refused: %d %s, %s %s, caller %s",
           status, code, method, quoted(path), caller)
