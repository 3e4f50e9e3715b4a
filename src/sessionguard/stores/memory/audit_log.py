"""The memory store's audit log: a ring of events, newest last, that keeps
events at least ``AUDIT_RETENTION`` unless ``AUDIT_MAXLEN`` is reached first,
and applies the self-service allowance of :func:`sessionguard.audit.admit`
(as the Redis store's ``lua/audit.lua`` does)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from ...audit import SELF_SERVICE_WINDOW_MS, SETTINGS_EVERY_MS, Allowance, Event, admit
from ..protocol import Page

#: Allowances kept before the ones whose window has passed are dropped.
_ALLOWANCES_SWEPT_AT = 4096


class AuditLog:
    """Thread-safe. ``clock`` is the store's (epoch ms); ``retention`` in seconds
    (``None``: only ``maxlen`` bounds the log)."""

    def __init__(self, maxlen: int, retention: int | None, clock: Callable[[], int]) -> None:
        # (sequence number, when added on the store's clock, event): the age that counts is
        # the time in the log, as with Redis, whose stream ids are the server's times
        self._events: deque[tuple[int, int, Event]] = deque(maxlen=maxlen)
        self._retention_ms = None if retention is None else retention * 1000
        self._clock = clock
        self._seq = 0
        self._allowances: dict[str, Allowance] = {}
        self._lock = threading.Lock()

    def append(self, events: Sequence[Event]) -> None:
        """Add ``events``."""
        with self._lock:
            for event in events:
                self._add(event)
            self._trim()

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> None:
        """Add what ``admit`` lets in of one self-service action's ``events``."""
        if not events:
            return
        now = max(event.at for event in events)
        with self._lock:
            admitted = admit(self._allowances.get(user_id), events, now)
            for event in admitted.kept:
                self._add(event)
            allowance = admitted.allowance
            if admitted.report is not None:
                if allowance.report is not None:  # the window's report so far: replaced
                    seq = int(allowance.report)
                    self._events = deque((e for e in self._events if e[0] != seq), self._events.maxlen)
                allowance = Allowance(allowance.start, allowance.recorded, allowance.dropped,
                                      allowance.settings_at, str(self._add(admitted.report)))
            self._allowances[user_id] = allowance
            if len(self._allowances) > _ALLOWANCES_SWEPT_AT:
                self._sweep(now)
            self._trim()

    def page(self, user_id: str | None, limit: int, cursor: str | None) -> Page:
        """Events, newest first, ``limit`` at a time."""
        with self._lock:
            self._trim()
            entries = list(self._events)
        before = int(cursor) if cursor and cursor.isdigit() else None
        picked: list[tuple[int, Event]] = []
        for seq, _, event in reversed(entries):
            if before is not None and seq >= before:
                continue
            if user_id is not None and event.user_id != user_id:
                continue
            picked.append((seq, event))
            if len(picked) > limit:
                break
        more = len(picked) > limit
        page = picked[:limit]
        return Page([e for _, e in page], str(page[-1][0]) if more and page else None)

    def _add(self, event: Event) -> int:
        self._seq += 1
        self._events.append((self._seq, self._clock(), event))
        return self._seq

    def _trim(self) -> None:
        """Drop the events added longer ago than the retention."""
        if self._retention_ms is None:
            return
        oldest = self._clock() - self._retention_ms
        events = self._events
        while events and events[0][1] < oldest:
            events.popleft()

    def _sweep(self, now: int) -> None:
        """Forget the allowances that no longer limit anything."""
        for user_id, allowance in list(self._allowances.items()):
            settings_at = allowance.settings_at or 0
            if now >= allowance.start + SELF_SERVICE_WINDOW_MS and now >= settings_at + SETTINGS_EVERY_MS:
                del self._allowances[user_id]
