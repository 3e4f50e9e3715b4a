"""What the in-memory store lists and counts: a user's sessions, the admin
listing of the active and the recently ended (newest login first, a page at a
time, :mod:`..cursors`) and the active sessions of each platform."""

from __future__ import annotations

from ...core import Outcome, Record, ended_at, judge, still_listed
from ..cursors import newest_first, page_of
from ..protocol import ActiveCounts, Ended, Page
from .state import MemoryState, own


class Listings(MemoryState):
    """The listings and counts of a :class:`~.store.MemoryStore`."""

    def user_sessions(self, user_id: str) -> list[Record]:
        with self._lock:
            now = self._clock()
            self._write_due(now)
            records = self._unwritten.shown([own(r) for r in self._user_records(user_id, now)])
        return sorted(records, key=newest_first)

    def list_sessions(
        self, *, user_id: str | None, platform: str | None, limit: int, cursor: str | None,
        status: str = "active",
    ) -> Page:
        with self._lock:
            now, policy = self._clock(), self.policy()
            self._write_due(now)
            candidates = (
                [self._records[i] for i in self._by_user.get(user_id, ()) if i in self._records]
                if user_id is not None and status == "active" else list(self._records.values())
            )
            found: list[Record | Ended] = []
            for r in candidates:
                if user_id not in (None, r.user_id) or platform not in (None, r.platform):
                    continue
                outcome = judge(r, policy, now, self._epoch)
                if outcome is Outcome.VALID:
                    if status != "ended":
                        found.append(own(r))
                elif status != "active":  # ended, not noticed yet
                    at = ended_at(r, policy, outcome.value, now, self._epoch)
                    if still_listed(at, now):
                        found.append(Ended(own(r), outcome.value, at))
            if status != "active":
                for reason, until, r, at in list(self._tombstones.values()):
                    if (now < until and still_listed(at, now) and (user_id is None or r.user_id == user_id)
                            and (platform is None or r.platform == platform)):
                        found.append(Ended(own(r), reason, at))
        return page_of(found, limit, cursor, self._unwritten.shown)

    def active_counts(self) -> ActiveCounts:
        with self._lock:
            now, policy = self._clock(), self.policy()
            counts = dict.fromkeys(policy.platforms, 0)
            for record in self._records.values():
                if judge(record, policy, now, self._epoch) is Outcome.VALID:
                    counts[record.platform] = counts.get(record.platform, 0) + 1
        return ActiveCounts(counts, now)
