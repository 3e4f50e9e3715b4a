"""Uses of sessions this process has seen but not written back yet.

A store writes a session's last-seen once per touch interval
(:func:`~sessionguard.core.touch_due`); a request in between leaves its use
here, with the moment it must be written by (:func:`~sessionguard.core.flush_by`).
The store writes it then (the Redis store from its subscriber's tick, about
four times a second, where a use that makes a touch due is given the moment
it is seen, so it is written within a tick; the memory store with the next
check of that session once the moment has passed), or earlier: before a
listing reads last-seen, before a login
of the same user (whose least-recent session may be evicted), and when the
store closes. A listing shows this process's own uses at once
(:meth:`Unwritten.shown`); uses seen by *other* processes reach a listing or an
eviction only when they are written: last-seen there lags by one touch
interval at most. Times are on the store's clock (epoch milliseconds).

A busy process holds tens of thousands of uses, and request threads note
theirs under the same lock the writer takes, so nothing here walks them all:
the moments are a heap (the due ones come off its top) and the uses are
indexed by the slot tag every session id starts with (a login takes its
user's tag's).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

from ..core import Record, touched
from ..tokens import TAG_LENGTH

T = TypeVar("T")

#: Uses kept at most; beyond, the longest-held one is made due at once.
MAX_ENTRIES = 100_000


class Unwritten:
    """Session id -> (latest unwritten use, moment it must be written by)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._uses: dict[str, tuple[int, int]] = {}
        # (moment, session id), one per moment a use was given; one that no
        # longer matches its use (written since, or given an earlier moment)
        # is dropped when it reaches the top, or when the heap is rebuilt.
        self._moments: list[tuple[int, str]] = []
        self._by_tag: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._uses)

    def forked(self) -> None:
        """In a forked child: a new lock, and none of the parent's uses (the
        parent writes them back)."""
        self._lock = threading.Lock()
        self._uses, self._moments, self._by_tag = {}, [], {}

    def note(self, session_id: str, seen: int, by: int) -> None:
        """A valid use at ``seen`` not written back; due at ``by`` at the latest."""
        with self._lock:
            held = self._uses.get(session_id)
            if held is not None:
                seen = max(seen, held[0])
                if by >= held[1]:
                    self._uses[session_id] = (seen, held[1])
                    return
            else:
                if len(self._uses) >= self._max:
                    first = next(iter(self._uses))
                    self._uses[first] = (self._uses[first][0], 0)  # written early rather than lost
                    self._push(0, first)
                self._by_tag.setdefault(session_id[:TAG_LENGTH], set()).add(session_id)
            self._uses[session_id] = (seen, by)
            self._push(by, session_id)

    def shown(self, records: list[T]) -> list[T]:
        """``records`` with the uses held here: a listing shows this process's
        own requests up to the moment of the listing, without writing them
        (items of a listing that are not records, ended sessions, as they are)."""
        uses = self._uses
        if not uses:
            return records
        shown: list[Any] = []
        for record in records:
            held = uses.get(record.id) if isinstance(record, Record) else None  # no lock: one dict read
            shown.append(record if held is None else touched(record, held[0]))  # type: ignore[arg-type]
        return shown

    def seen(self, session_id: str) -> int | None:
        """The latest unwritten use of ``session_id`` (kept), else ``None``: a
        passive check's view includes this process's own uses."""
        held = self._uses.get(session_id)  # no lock: one dict read
        return None if held is None else held[0]

    def overdue(self, session_id: str, now: int) -> int | None:
        """The use of ``session_id`` whose moment has come (handed out), else ``None``."""
        held = self._uses.get(session_id)  # no lock: the common answer is "none"
        if held is None or held[1] > now:
            return None
        with self._lock:
            held = self._drop(session_id)
        return None if held is None else held[0]

    def pop(self, session_id: str) -> int | None:
        """The use of ``session_id``, handed out whatever its moment (a check that
        has Redis judge the session counts it there), else ``None``."""
        if session_id not in self._uses:  # no lock: the common answer is "none"
            return None
        with self._lock:
            held = self._drop(session_id)
        return None if held is None else held[0]

    def due(self, now: int) -> list[tuple[str, int]]:
        """Every use whose moment has come, handed out: ``(session id, seen)``."""
        moments = self._moments
        top = moments[:1]  # no lock (one atomic copy): a stale answer is the next tick's
        if not top or top[0][0] > now:
            return []
        ready = []
        with self._lock:
            while moments and moments[0][0] <= now:
                by, session_id = heapq.heappop(moments)
                held = self._uses.get(session_id)
                if held is not None and held[1] == by:
                    self._drop(session_id)
                    ready.append((session_id, held[0]))
        return ready

    def take(self, tag: str) -> list[tuple[str, int]]:
        """The uses of the sessions whose ids start with the slot ``tag``, handed
        out (a login's user's, before their least-recent session is chosen)."""
        if tag not in self._by_tag:
            return []
        with self._lock:
            taken = []
            for session_id in list(self._by_tag.get(tag, ())):
                held = self._drop(session_id)
                if held is not None:
                    taken.append((session_id, held[0]))
        return taken

    def all(self) -> list[tuple[str, int]]:
        """Every use, handed out (the store is closing)."""
        with self._lock:
            uses, self._uses, self._moments, self._by_tag = self._uses, {}, [], {}
        return [(i, seen) for i, (seen, _) in uses.items()]

    def owe(self, session_ids: Iterable[str] | None = None) -> None:
        """Make the uses of ``session_ids`` (``None``: every use) due now: the idle
        limit their moments were reckoned by has changed (a policy change, a user's
        own timeout), and a shorter one could let a session's stored last-seen
        look idle before its use here is written back."""
        with self._lock:
            uses = self._uses
            ids = list(uses) if session_ids is None else [i for i in session_ids if i in uses]
            for session_id in ids:
                uses[session_id] = (uses[session_id][0], 0)
                self._push(0, session_id)

    def written(self, session_id: str, last_seen: int) -> None:
        """Last-seen of ``session_id`` was written as ``last_seen``: a use it covers
        is no longer owed."""
        held = self._uses.get(session_id)
        if held is not None and held[0] <= last_seen:
            with self._lock:
                held = self._uses.get(session_id)
                if held is not None and held[0] <= last_seen:
                    self._drop(session_id)

    def _push(self, by: int, session_id: str) -> None:
        """Add the moment of a use already in ``_uses``."""
        moments = self._moments
        if len(moments) > 2 * len(self._uses) + 1024:  # mostly outdated: rebuild from the uses
            moments[:] = [(held[1], i) for i, held in self._uses.items()]  # (this one among them)
            heapq.heapify(moments)
        else:
            heapq.heappush(moments, (by, session_id))

    def _drop(self, session_id: str) -> tuple[int, int] | None:
        """Forget the use of ``session_id`` (its moments go stale); the use, if any."""
        held = self._uses.pop(session_id, None)
        if held is not None:
            tag = session_id[:TAG_LENGTH]
            ids = self._by_tag[tag]
            ids.discard(session_id)
            if not ids:
                del self._by_tag[tag]
        return held
