"""What the in-memory store holds, and the steps every one of its operations
takes on it: the records (with their retention and the indexes by user),
the tombstones of the ended, the device keys, the uses not written yet; a
record read unless its retention has run out (``_live``), written with its
retention (``_put``), ended with its tombstone (``_end``), a user's valid
records (``_user_records``), uses written back (``_write``, as ``touch.lua``).

Each group of operations of :class:`~.store.MemoryStore` is a subclass of
:class:`MemoryState` (:mod:`.users`, :mod:`.binding`, :mod:`.listing`,
:mod:`.endings`, and the request path in :mod:`.store`), so all of them work
on one object, as before, through ``self``. Also here: the copies that keep a
caller's metadata apart from the store's (:func:`own`, :func:`json_copy`) and
the wall clock.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...audit import Event
from ...core import TOMBSTONE_MS, Epoch, Outcome, Record, ended_at, judge, retention, touched
from ...policy import Policy
from ...tokens import SlotTags
from ..write_behind import Unwritten
from .audit_log import AuditLog


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds (the default clock of the memory
    store and of audit time stamps)."""
    return time.time_ns() // 1_000_000


class MemoryState:
    """The state of one :class:`~.store.MemoryStore` (whose parameters these
    are), guarded by its lock, and the steps its operations share."""

    def __init__(
        self, policy: Policy, *, clock: Callable[[], int] | None = None, audit_maxlen: int = 100_000,
        audit_retention: int | None = 90 * 86400,
    ) -> None:
        self._default = policy
        self._policy: Policy | None = None
        self._clock = clock or wall_clock_ms
        self._lock = threading.RLock()
        self._records: dict[str, Record] = {}
        self._expiry: dict[str, int | None] = {}
        #: ended sessions: id -> (reason, kept until, last record, ended at)
        self._tombstones: dict[str, tuple[str, int, Record, int]] = {}
        self._by_user: dict[str, set[str]] = {}
        #: device-bound sessions: id -> (public key, used challenges: id -> issue time)
        self._keys: dict[str, tuple[str, dict[str, int]]] = {}
        self._unwritten = Unwritten()
        self._user_idle: dict[str, dict[str, int | None]] = {}
        self._epoch = Epoch()
        #: when limits were last lowered (0: never), and when each user's sessions
        #: were reconciled with them since (core.reconcile_due)
        self._lowered = 0
        self._marks: dict[str, int] = {}
        self._audit = AuditLog(audit_maxlen, audit_retention, self._clock)
        self._ops = 0
        # this store's own tag key: a process-local store is its own deployment
        self._tags = SlotTags(secrets.token_bytes(32))
        #: the sweeping thread (on the wall clock only: an injected clock sweeps when told)
        self._sweeper: threading.Event | None = None
        self._sweeps = clock is None
        self._on_swept: Callable[[Sequence[Event]], None] | None = None

    def policy(self) -> Policy:
        return self._policy or self._default

    def _live(self, session_id: str, now: int) -> Record | None:
        """The stored record, unless its retention has run out."""
        record = self._records.get(session_id)
        expiry = self._expiry.get(session_id)
        if record is not None and expiry is not None and now >= expiry:
            self._forget(record)
            return None
        return record

    def _write_due(self, now: int) -> None:
        """Write back the uses whose moment has come (before last-seen is read)."""
        self._write(self._unwritten.due(now), now)

    def _write(self, uses: list[tuple[str, int]], now: int) -> None:
        """Move last-seen forward to these uses, of sessions still valid (as the
        Redis store's ``touch.lua``: nothing ended comes back)."""
        policy = self.policy()
        for session_id, seen in uses:
            record = self._live(session_id, now)
            if record is None or not record.last_seen < seen <= now:
                continue
            fresh = touched(record, seen)
            if judge(fresh, policy, now, self._epoch) is Outcome.VALID:
                self._put(fresh, policy, now)

    def _put(self, record: Record, policy: Policy, now: int) -> None:
        keep = retention(record, policy, now)
        self._records[record.id] = record
        self._expiry[record.id] = None if keep is None else now + keep

    def _end(self, record: Record, reason: str, now: int) -> Record:
        self._forget(record)
        at = ended_at(record, self.policy(), reason, now, self._epoch)
        self._tombstones[record.id] = (reason, now + TOMBSTONE_MS, record, at)
        return own(record)

    def _forget(self, record: Record) -> None:
        self._records.pop(record.id, None)
        self._expiry.pop(record.id, None)
        self._keys.pop(record.id, None)
        ids = self._by_user.get(record.user_id)
        if ids is not None:
            ids.discard(record.id)
            if not ids:
                del self._by_user[record.user_id]

    def _sweep(self, now: int) -> None:
        """Drop tombstones and records past their retention, now and then."""
        self._ops += 1
        if self._ops % 1024:
            return
        for session_id, (_, until, _, _) in list(self._tombstones.items()):
            if now >= until:
                del self._tombstones[session_id]
        for session_id in list(self._records):
            self._live(session_id, now)

    def _tombstone(self, session_id: str, now: int) -> str | None:
        entry = self._tombstones.get(session_id)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._tombstones[session_id]
            return None
        return entry[0]

    def _user_records(self, user_id: str, now: int) -> list[Record]:
        """The user's valid records; ended ones are pruned here, the step every
        count goes through: one a sign-out of everyone ended is tombstoned, one
        that timed out leaves the user's index and is left for the sweep, which
        records its ending (``store.lua`` ``records_of``)."""
        policy, alive = self.policy(), []
        for session_id in list(self._by_user.get(user_id, ())):
            record = self._live(session_id, now)
            if record is None:
                continue
            outcome = judge(record, policy, now, self._epoch)
            if outcome is Outcome.VALID:
                alive.append(record)
            elif outcome is Outcome.SIGNOUT_ALL:
                self._end(record, outcome.value, now)
            else:
                self._by_user[user_id].discard(session_id)
        if not self._by_user.get(user_id, True):
            del self._by_user[user_id]
        return alive


_METADATA = Record._fields.index("metadata")
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # built once: json.dumps(**options) builds one a call


def json_copy(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` as the Redis store gives it back: decoded from its JSON, so
    of JSON's types (a tuple comes back a list) and shared with nothing."""
    copy: dict[str, Any] = json.loads(_ENCODE(metadata))
    return copy


def _copy(value: Any) -> Any:
    """A copy of JSON-typed ``value`` that shares no dict or list with it."""
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value  # str, int, float, bool, None: immutable


def own(record: Record) -> Record:
    """``record`` with metadata of its own, for a caller: what it changes there
    stays out of the store, as with Redis, where every read decodes a copy.
    (The stored metadata is JSON-typed, :func:`json_copy`.)"""
    if not record.metadata:
        return record
    fields = list(record)  # (``_replace`` maps over every field by name: 1.5 us; this 0.3 us)
    fields[_METADATA] = _copy(record.metadata)
    return Record._make(fields)
