"""The Redis store's audit log, the stream ``P:audit``: appends, trimmed to about
``AUDIT_MAXLEN`` entries and (``AUDIT_RETENTION``) to the entries younger than
the retention; and the self-service allowance of :func:`sessionguard.audit.admit`,
which ``lua/audit.lua`` applies in the same step as its appends. Reading the
log is :func:`.listing.event_page`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...audit import SELF_SERVICE_EVENTS, SELF_SERVICE_WINDOW_MS, SETTINGS_EVERY_MS, Event, iso
from .calls import Arg, Commands, Op, Rerun, Script
from .keys import Keys


class AuditLog:
    """Appends to the stream. Each method's ``offset`` is the Redis server's clock
    minus the local one (ms), as the store last saw it."""

    def __init__(self, keys: Keys, maxlen: int, retention: int | None) -> None:
        self.keys = keys
        self.maxlen = maxlen
        self.retention = retention

    def append(self, events: Sequence[Event], offset: int) -> Op[None]:
        """XADD each event, then trim. Not retried: a repeated XADD would log an event twice."""
        if events:
            head: tuple[Arg, ...] = ("XADD", self.keys.audit, "MAXLEN", "~", self.maxlen, "*")
            commands = [(*head, *_flat(e.to_fields())) for e in events]
            oldest = self._oldest_kept(offset)
            if oldest:
                commands.append(("XTRIM", self.keys.audit, "MINID", oldest))
            yield Commands(tuple(commands), Rerun.NEVER)

    def append_self_service(self, user_id: str, events: Sequence[Event], offset: int) -> Op[None]:
        """The events of one self-service action of ``user_id``, as far as the user's
        allowance goes (``audit.lua``). Not retried."""
        if not events:
            return
        now = max(event.at for event in events)
        args: list[Arg] = [now, iso(now) or "", self.maxlen, self._oldest_kept(offset), SELF_SERVICE_EVENTS,
                           SELF_SERVICE_WINDOW_MS, SETTINGS_EVERY_MS, _text(user_id), _text(events[0].actor)]
        for event in events:
            fields = _flat(event.to_fields())
            args += [event.type, len(fields), *fields]
        yield Script("audit", (self.keys.audit, self.keys.allowance(user_id)), tuple(args), Rerun.NEVER)

    def _oldest_kept(self, offset: int) -> str:
        """The stream id before which entries are past the retention ('' for none).
        Stream ids are the Redis server's times, so this is the local wall clock
        moved by ``offset``, never an injected test clock."""
        if self.retention is None:
            return ""
        return str(time.time_ns() // 1_000_000 + offset - self.retention * 1000)


def _text(value: str) -> bytes:
    # surrogatepass: a user id is any Python string, and must not fail the XADD
    return value.encode("utf-8", "surrogatepass")


def _flat(fields: dict[str, str]) -> list[bytes]:
    return [_text(item) for pair in fields.items() for item in pair]
