"""How many sessions are active on each platform in the whole deployment
(:meth:`~sessionguard.stores.protocol.Store.active_counts`, the gauge
``sessionguard_sessions_active``).

Whether a session is active is only known by judging its record (a timeout
ends it without any write), so the count reads every record. It is never done
on a request, nor on a scrape's time:

- the last count is kept in Redis for every process, ``P:active`` (a hash: one
  field per platform, ``at``, the store's clock when the count ended, and
  ``took``, its duration in ms); :func:`read_counts` is one round trip;
- when that count is older than :data:`REFRESH_MS` (or :data:`SLOWDOWN` times
  its own duration, so that a large deployment is not counted back to back),
  the reader that takes ``P:active:lock`` (``SET NX``, :data:`LOCK_MS`) counts
  anew in a background thread of its process (:func:`count_active`): the listing
  index page by page, as the admin listing walks it (ended sessions skipped,
  entries of vanished records dropped);
- so the figure is exact as of ``at`` for sessions that neither began nor ended
  while the count walked, and a scrape sees a count at most
  ``REFRESH_MS`` + one count's duration old (when scraped at least that often).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...config import PLATFORMS
from ..protocol import ActiveCounts
from .calls import Commands, Op, Rerun, one

if TYPE_CHECKING:
    from .operations import Operations

#: A count older than this (ms) is started anew by the next reader.
REFRESH_MS = 30_000
#: ... or older than this many times its own duration, if that is longer.
SLOWDOWN = 10
#: How long one process may hold the count to itself (ms): a process that died
#: counting does not stop the others for longer.
LOCK_MS = 120_000
#: Sessions asked for per listing call while counting.
PAGE = 500


def read_counts(ops: Operations) -> Op[tuple[ActiveCounts | None, bool]]:
    """The last count (``None``: none yet), and whether this process is to count
    anew (it took the lock)."""
    keys = ops.keys
    reply = yield from one("HGETALL", keys.active, rerun=Rerun.ALWAYS)
    counts, took = _decoded(reply)
    now = ops.estimated_now()  # no TIME round trip: the age need not be exact
    if counts is not None and now - counts.at < max(REFRESH_MS, SLOWDOWN * took):
        return counts, False
    # NX: sent again after a lost reply, the lock this call took would look taken
    won = yield from one("SET", keys.active_lock, "1", "NX", "PX", LOCK_MS, rerun=Rerun.NEVER)
    return counts, bool(won)


def count_active(ops: Operations) -> Op[ActiveCounts]:
    """Count the active sessions, store the count for every process and let the
    lock go."""
    started = time.monotonic()
    counts = dict.fromkeys(ops.cache.policy().platforms, 0)
    cursor: str | None = None
    while True:
        page = yield from ops.list_sessions(None, None, PAGE, cursor)
        for record in page.items:
            counts[record.platform] = counts.get(record.platform, 0) + 1
        cursor = page.next_cursor
        if cursor is None:
            break
    now = yield from ops.now()
    took = round((time.monotonic() - started) * 1000)
    fields = [str(part) for platform, n in counts.items() for part in (platform, n)]
    keys = ops.keys
    yield Commands((("HSET", keys.active, *fields, "at", str(now), "took", str(took)),
                    ("DEL", keys.active_lock)), Rerun.ALWAYS)
    return ActiveCounts(counts, now)


def _decoded(reply: Mapping[bytes, bytes]) -> tuple[ActiveCounts | None, int]:
    """The stored count and its duration (ms), or ``(None, 0)``."""
    try:
        at, took = int(reply[b"at"]), int(reply.get(b"took", b"0"))
        counts = dict.fromkeys(PLATFORMS, 0)  # and the extra kinds counted (PLATFORMS)
        counts |= {k.decode("ascii"): int(v) for k, v in reply.items() if k not in (b"at", b"took")}
    except (KeyError, ValueError):  # (UnicodeDecodeError is a ValueError)
        return None, 0
    return ActiveCounts(counts, at), took
