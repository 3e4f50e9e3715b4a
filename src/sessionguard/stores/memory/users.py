"""The in-memory store's operations on one user's sessions: logins (admission
and eviction by :func:`~sessionguard.core.admission`), sign-outs of one
session or of a user's, a new token for a session (rotation), the user's own
timeouts and roles. As the Redis store's :mod:`~sessionguard.stores.redis.users`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ...core import Admission, Outcome, Record, admission, admission_needs_count, counted, judge, touched
from ...errors import SessionLimitReached
from ...tokens import TAG_LENGTH
from ..protocol import Check, Created, NewSession, with_roles
from .state import MemoryState, json_copy, own


class UserOperations(MemoryState):
    """Logins, sign-outs, rotations and per-user settings of a :class:`~.store.MemoryStore`."""

    if TYPE_CHECKING:
        def _start_sweeping(self) -> None: ...  # the store's: :class:`.endings.Endings`

    def create(self, new: NewSession, *, ending: str | None = None) -> Created:
        metadata = json_copy(new.metadata)  # first: metadata that is not JSON changes nothing
        self._start_sweeping()
        with self._lock:
            now = self._clock()
            self._write_due(now)
            # the user's last-seen decides an eviction: their uses (their tags') are written first
            for tag in {i[:TAG_LENGTH] for i in self._by_user.get(new.user_id, ())}:
                self._write(self._unwritten.take(tag), now)
            self._sweep(now)
            policy = self.policy()
            # the presented session (``ending``) does not count: it ends only if the login is admitted
            held = counted([r for i in list(self._by_user.get(new.user_id, ())) if (r := self._live(i, now))],
                           ending)
            plan = Admission()
            if admission_needs_count(held, policy, new.platform):
                plan = admission(counted(self._user_records(new.user_id, now), ending), policy, new.platform)
            if plan.refused:  # nothing has changed
                raise SessionLimitReached.of(policy, new.user_id, new.platform, total=plan.total)
            replaced = None if ending is None else self.end(ending, "signed_out")
            evicted = tuple(self._end(self._records[i], "evicted", now) for i in plan.evict)
            reported = tuple(own(self._records[i]) for i in plan.reported)  # ENFORCE=report
            own_idle = self._user_idle.get(new.user_id, {}).get(new.platform)
            record = Record(
                id=new.id, user_id=new.user_id, platform=new.platform, created=now, last_seen=now,
                remember_me=new.remember_me, ip=new.ip, city=new.city, user_agent=new.user_agent,
                device=new.device, metadata=metadata, user_idle=own_idle,
            )
            self._put(record, policy, now)
            self._by_user.setdefault(new.user_id, set()).add(record.id)
            return Created(own(record), evicted, replaced, reported, plan.would_refuse)

    def end(self, session_id: str, reason: str, *, user_id: str | None = None) -> Record | None:
        with self._lock:
            now = self._clock()
            record = self._live(session_id, now)
            if record is None or (user_id is not None and record.user_id != user_id):
                return None
            if judge(record, self.policy(), now, self._epoch) is not Outcome.VALID:
                return None
            return self._end(record, reason, now)

    def end_user(
        self, user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
    ) -> list[Record]:
        with self._lock:
            now = self._clock()
            return [
                self._end(r, reason, now)
                for r in self._user_records(user_id, now)
                if r.id != keep and (platform is None or r.platform == platform)
            ]

    def rotate(self, session_id: str, new_id: str) -> Check:
        with self._lock:
            now = self._clock()
            moved = self._records.get(new_id)
            if moved is not None:  # as the Redis script: a repeated call changes nothing
                return Check(Outcome.VALID, own(moved), policy=self.policy())
            record = self._live(session_id, now)
            if record is None:
                return Check(Outcome(self._tombstone(session_id, now) or "invalid"))
            seen = self._unwritten.seen(session_id)
            if seen is not None and record.last_seen < seen <= now:
                record = touched(record, seen)
            policy = self.policy()
            outcome = judge(record, policy, now, self._epoch)
            if outcome is not Outcome.VALID:
                return Check(outcome, ended=self._end(record, outcome.value, now))
            self._forget(record)  # no tombstone: the old token is unknown from now on
            self._unwritten.written(session_id, record.last_seen)
            moved = record._replace(id=new_id, device_bound=False)  # DBSC: the key was the old id's
            self._put(moved, policy, now)
            self._by_user.setdefault(moved.user_id, set()).add(new_id)
            return Check(Outcome.VALID, own(moved), policy=policy)

    # -- per-user settings ---------------------------------------------------

    def user_timeouts(self, user_id: str) -> dict[str, int | None]:
        with self._lock:
            return dict(self._user_idle.get(user_id, {}))

    def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> None:
        with self._lock:
            self._unwritten.owe(self._by_user.get(user_id, ()))
            self._user_idle[user_id] = dict(timeouts)
            now, policy = self._clock(), self.policy()
            for record in self._user_records(user_id, now):
                idle = timeouts.get(record.platform)
                self._put(record._replace(user_idle=idle), policy, now)

    def set_roles(self, user_id: str, roles: Sequence[str]) -> list[Record]:
        with self._lock:
            now, policy, updated = self._clock(), self.policy(), []
            for record in self._user_records(user_id, now):
                changed = record._replace(metadata=json_copy(with_roles(record.metadata, roles)))
                self._put(changed, policy, now)
                updated.append(own(changed))
            return updated
