"""The in-memory store's device-binding steps (DBSC, SPEC 9.6): a session bound
to a device's key (``bind``), and each of that device's challenges answered
once (``redeem``). As the Redis store's :mod:`~sessionguard.stores.redis.binding`.
"""

from __future__ import annotations

from ...core import Outcome, Record, judge, redeemable, still_used, touched
from ..protocol import Binding
from .state import MemoryState, own


class DeviceBinding(MemoryState):
    """The binding steps of a :class:`~.store.MemoryStore`."""

    def bind(self, session_id: str, key: str, challenge: str, issued: int) -> Binding:
        with self._lock:
            now = self._clock()
            found = self._valid(session_id, now)
            if isinstance(found, Binding):
                return found
            if found.device_bound:
                return Binding(Outcome.VALID, refused="bound")
            if not redeemable({}, challenge, issued, now):
                return Binding(Outcome.VALID, refused="used")
            bound, policy = found._replace(device_bound=True), self.policy()
            self._put(bound, policy, now)
            self._keys[session_id] = (key, {challenge: issued})
            return Binding(Outcome.VALID, own(bound), policy=policy)

    def redeem(self, session_id: str, challenge: str, issued: int) -> Binding:
        with self._lock:
            now = self._clock()
            found = self._valid(session_id, now)
            if isinstance(found, Binding):
                return found
            held = self._keys.get(session_id)
            if not found.device_bound or held is None:
                return Binding(Outcome.VALID, refused="unbound")
            key, used = held
            if not redeemable(used, challenge, issued, now):
                return Binding(Outcome.VALID, refused="used")
            self._keys[session_id] = (key, {**still_used(used, now), challenge: issued})
            return Binding(Outcome.VALID, own(found), key, policy=self.policy())

    def _valid(self, session_id: str, now: int) -> Record | Binding:
        """The valid record a binding step acts on (with a use owed now written,
        as :meth:`.store.MemoryStore.check` does), or the :class:`Binding` saying why there is none."""
        record = self._live(session_id, now)
        if record is None:
            return Binding(Outcome(self._tombstone(session_id, now) or "invalid"))
        policy = self.policy()
        seen = self._unwritten.overdue(session_id, now)
        owed = seen is not None and record.last_seen < seen <= now
        if owed and seen is not None:
            record = touched(record, seen)
        outcome = judge(record, policy, now, self._epoch)
        if outcome is not Outcome.VALID:
            return Binding(outcome, self._end(record, outcome.value, now), policy=policy)
        if owed:
            self._put(record, policy, now)
        return record
