"""The in-memory store's sweep of endings: sessions that timed out and are
never presented again still get their one audit event (as the Redis store's
:mod:`~sessionguard.stores.redis.endings`), from a daemon thread once a second
on the wall clock; an injected clock sweeps when told (:meth:`Endings.sweep`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

from ...audit import Event
from ...audit import ended as audit_ended
from ...core import Outcome, ended_at, judge, sweep_deadline
from .state import MemoryState

#: How often (s) a memory store on the wall clock sweeps for sessions that timed out.
SWEEP_EVERY = 1.0


class Endings(MemoryState):
    """The sweep of a :class:`~.store.MemoryStore`, and its thread."""

    def sweep(self) -> int:
        with self._lock:
            now, policy = self._clock(), self.policy()
            if not policy.enforce:  # ENFORCE=report: nothing times out
                return 0
            self._write_due(now)
            events = []
            for record in list(self._records.values()):
                ends = sweep_deadline(record, policy)
                if ends is None or ends > now or self._live(record.id, now) is None:
                    continue
                outcome = judge(record, policy, now, self._epoch)
                if outcome is Outcome.VALID:
                    continue
                ended = self._end(record, outcome.value, now)
                if outcome is not Outcome.SIGNOUT_ALL:  # covered by the sign-out's one event
                    at = ended_at(record, policy, outcome.value, now, self._epoch)
                    events.append(audit_ended(ended, outcome.value, "system", at))
            self._audit.append(events)
        if events and self._on_swept is not None:
            self._on_swept(events)
        return len(events)

    def on_swept(self, callback: Callable[[Sequence[Event]], None]) -> None:
        self._on_swept = callback

    def _start_sweeping(self) -> None:
        """Sweep once a second in a daemon thread, from the first login on, while
        the store lives and is open (wall clock only)."""
        if not self._sweeps or self._sweeper is not None:
            return
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = threading.Event()
        threading.Thread(target=_sweeping, args=(weakref.ref(self), self._sweeper),
                         name="sessionguard-memory-sweep", daemon=True).start()


def _sweeping(ref: weakref.ref[Endings], stop: threading.Event) -> None:
    """The memory store's sweeping thread: :meth:`Endings.sweep` every
    :data:`SWEEP_EVERY` seconds until the store is closed or gone."""
    while not stop.wait(SWEEP_EVERY):
        store = ref()
        if store is None:
            return
        store.sweep()
        del store
