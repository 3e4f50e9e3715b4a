"""The in-memory store (``memory://``): one process only, for development and
tests, applying the rules of :mod:`sessionguard.core` directly.

How the package is laid out (one object, :class:`~.store.MemoryStore`, made
of one class per concern, each a :class:`~.state.MemoryState`):

- :mod:`.store` the store: the policy, the epoch, the request path (``check``);
- :mod:`.state` what it holds (records, indexes, tombstones, unwritten uses) and
  the steps every operation takes on them; the metadata copies; the wall clock;
- :mod:`.users` logins, sign-outs, rotation, a user's timeouts and roles;
- :mod:`.binding` device binding (DBSC); :mod:`.listing` listings and counts;
- :mod:`.endings` the sweep of sessions that timed out, and its thread;
- :mod:`.audit_log` the audit log; :mod:`.async_store` the awaitable face.
"""

from __future__ import annotations

from .async_store import AsyncMemoryStore as AsyncMemoryStore
from .endings import SWEEP_EVERY as SWEEP_EVERY
from .state import wall_clock_ms as wall_clock_ms
from .store import MemoryStore as MemoryStore

__all__ = ["SWEEP_EVERY", "AsyncMemoryStore", "MemoryStore", "wall_clock_ms"]
