"""Uses of sessions this process has seen but not written back yet.

A store writes a session's last-seen once per touch interval
(:func:`~sessionguard.core.touch_due`); a request in between leaves its use
here, with the moment it must be written by (:func:`~sessionguard.core.flush_by`).
The store writes it then, or earlier: with the next check of that session
once the moment has passed, before a listing reads last-seen, before a login
of the same user (whose least-recent session may be evicted), and when the
store closes. Uses seen by *other* processes reach a listing or an eviction
only when they are written: last-seen there lags by one touch interval at most.
Times are on the store's clock (epoch milliseconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: Uses kept at most; beyond, the longest-held one is made due at once.
MAX_ENTRIES = 100_000


class Unwritten:
    """Session id -> (latest unwritten use, moment it must be written by)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._uses: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._uses)

    def note(self, session_id: str, seen: int, by: int) -> None:
        """A valid use at ``seen`` not written back; due at ``by`` at the latest."""
        with self._lock:
            held = self._uses.get(session_id)
            if held is not None:
                seen, by = max(seen, held[0]), min(by, held[1])
            elif len(self._uses) >= self._max:
                first = next(iter(self._uses))
                self._uses[first] = (self._uses[first][0], 0)  # written early rather than lost
            self._uses[session_id] = (seen, by)

    def overdue(self, session_id: str, now: int) -> int | None:
        """The use of ``session_id`` whose moment has come (handed out), else ``None``."""
        held = self._uses.get(session_id)  # no lock: the common answer is "none"
        if held is None or held[1] > now:
            return None
        with self._lock:
            held = self._uses.pop(session_id, None)
        return None if held is None else held[0]

    def due(self, now: int) -> list[tuple[str, int]]:
        """Every use whose moment has come, handed out: ``(session id, seen)``."""
        if not self._uses:
            return []
        with self._lock:
            ready = [(i, seen) for i, (seen, by) in self._uses.items() if by <= now]
            for session_id, _ in ready:
                del self._uses[session_id]
        return ready

    def take(self, wanted: Callable[[str], bool]) -> list[tuple[str, int]]:
        """The uses of the sessions ``wanted`` picks, handed out (a login's user's,
        before their least-recent session is chosen)."""
        if not self._uses:
            return []
        with self._lock:
            taken = [(i, seen) for i, (seen, _) in self._uses.items() if wanted(i)]
            for session_id, _ in taken:
                del self._uses[session_id]
        return taken

    def all(self) -> list[tuple[str, int]]:
        """Every use, handed out (the store is closing)."""
        with self._lock:
            uses, self._uses = self._uses, {}
        return [(i, seen) for i, (seen, _) in uses.items()]

    def written(self, session_id: str, last_seen: int) -> None:
        """Last-seen of ``session_id`` was written as ``last_seen``: a use it covers
        is no longer owed."""
        held = self._uses.get(session_id)
        if held is not None and held[0] <= last_seen:
            with self._lock:
                held = self._uses.get(session_id)
                if held is not None and held[0] <= last_seen:
                    del self._uses[session_id]
