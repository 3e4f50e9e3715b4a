"""``GET api/stats``: what the admin page's charts draw (SPEC 9.7) — the
sessions active now on each platform, and the sessions that ended in the last
24 hours by reason, hour by hour.

- **Active sessions**: the store's count, as ``sessionguard_sessions_active``
  has it (:meth:`~sessionguard.stores.protocol.Store.active_counts`: exact for
  ``memory://``; with Redis the deployment's last count, redone in the
  background when it has aged; ``null`` until there is one).
- **Endings**: read from the audit log, newest first: every event of an ending
  (timeouts, evictions, revocations, sign-outs; a sign-out of everyone is one
  event) dated within the 24 clock hours ending with the current one. The read
  stops at the first event of another kind older than that window (a timeout
  is dated when the session ended but recorded when noticed, later: it cannot
  mark the end), or after :data:`MAX_EVENTS` events, when ``complete`` is
  ``false`` and the oldest hours may be short.
"""

from __future__ import annotations

import sessionguard.admin.flow as flow  # the module, not the package: see docs/internals.md

from ..audit import Event, iso
from .auth import READ
from .flow import Flow
from .http import json_response
from .routing import Call, Route

HOUR = 3_600_000
#: Hourly buckets of the endings chart, the last one the current hour.
HOURS = 24
#: Audit events read at most for one answer.
MAX_EVENTS = 50_000
#: Events asked for per audit page.
PAGE = 1000
#: How far apart the clocks of the app servers that date events may be (ms).
SKEW_MS = 5 * 60_000
#: The reasons endings are counted by, in the order the chart stacks them.
REASONS = ("idle_timeout", "absolute_timeout", "evicted", "revoked", "signed_out", "signout_all")
#: The event types of endings (``logout`` is ``signed_out``'s).
ENDING_TYPES = frozenset({"idle_timeout", "absolute_timeout", "evicted", "revoked", "logout", "signout_all"})
#: Events dated when the session ended rather than when they were recorded.
_LATE = frozenset({"idle_timeout", "absolute_timeout"})


class Endings:
    """The endings of the :data:`HOURS` clock hours up to ``now`` (ms), by reason."""

    def __init__(self, now: int) -> None:
        self.first = (now // HOUR - (HOURS - 1)) * HOUR
        self.counts = {reason: [0] * HOURS for reason in REASONS}

    def add(self, event: Event) -> bool:
        """Count ``event`` if it is an ending in the window; ``False`` once it
        shows that every older event is outside the window."""
        if event.type in ENDING_TYPES and event.reason in self.counts and event.at >= self.first:
            hour = min((event.at - self.first) // HOUR, HOURS - 1)  # a clock a little ahead: this hour
            self.counts[event.reason][hour] += 1
        return event.type in _LATE or event.at >= self.first - SKEW_MS

    def to_json(self, complete: bool) -> dict[str, object]:
        return {
            "hours": [iso(self.first + i * HOUR) for i in range(HOURS)],
            "reasons": self.counts,
            "complete": complete,
        }


def stats(call: Call) -> Flow:
    """``GET api/stats``: active sessions per platform, endings per reason and hour."""
    now = yield from flow.now()
    active = yield from flow.active_counts()
    endings, read, complete, cursor = Endings(now), 0, False, None
    while not complete and read < MAX_EVENTS:
        page = yield from flow.events(user_id=None, limit=PAGE, cursor=cursor)
        for event in page.items:
            read += 1
            if not endings.add(event):
                complete = True
                break
        cursor = page.next_cursor
        complete = complete or cursor is None
    return json_response({
        "now": iso(now),
        "active": None if active is None else {
            # every configured kind (PLATFORMS), none other: a count may predate a change of them
            "counted_at": iso(active.at),
            "platforms": {p: active.counts.get(p, 0) for p in call.admin.config.platforms},
        },
        "endings": endings.to_json(complete),
    })


ROUTES = (Route("GET", "/api/stats", stats, READ),)
