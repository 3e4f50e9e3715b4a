"""The request path's read of each session, kept per session id: its ``MGET``
(a :class:`~.calls.Read` of the record and its tombstone, whose RESP form the
stores' encoder keeps with it) and the record it last decoded. A record is
written back once per touch interval, so most checks read the same bytes as
the one before: they reuse the decoded :class:`~sessionguard.core.Record`
(itself read-only; its ``metadata`` is shared by the requests that see it, as
a ``LOCAL_CACHE`` hit's always was) instead of decoding it again.

Why: the id's validation, the keys, the read and the decoding cost 3 µs of
the ~8 µs of Python a Redis check spends (``benchmarks/`` WSGI rows, whose
target is 0.4× Flask-Session's added cost; issue 15)."""

from __future__ import annotations

from ...core import Record
from ...tokens import is_session_id
from .calls import Read
from .keys import Keys
from .records import decode_record

#: Sessions remembered at most (about a kilobyte each); beyond, all are forgotten at once.
MAX_READS = 10_000


class Known:
    """One session's read and its last decoded record."""

    __slots__ = ("read", "value", "record")

    def __init__(self, read: Read) -> None:
        self.read = read
        self.value: bytes | None = None
        self.record: Record | None = None


class Reads:
    """:class:`Known` by session id (bounded by :data:`MAX_READS`)."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._known: dict[str, Known] = {}

    def of(self, session_id: str) -> Known | None:
        """The read of ``session_id``, or ``None`` for a malformed id."""
        known = self._known.get(session_id)
        if known is not None:
            return known
        if not is_session_id(session_id):
            return None
        keys = self._keys
        known = Known(Read((keys.session(session_id), keys.tombstone(session_id))))
        if len(self._known) >= MAX_READS:
            self._known.clear()
        self._known[session_id] = known
        return known

    @staticmethod
    def record(known: Known, session_id: str, value: bytes) -> Record:
        """The record ``value`` holds: decoded once per distinct value."""
        if value == known.value and known.record is not None:
            return known.record
        record = decode_record(session_id, value)
        known.value, known.record = value, record
        return record
