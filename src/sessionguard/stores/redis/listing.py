"""The paged reads of the Redis store: the admin listing of every session and
the audit log, newest first. Each page costs O(page): at most :data:`ROUNDS`
round trips of :data:`BATCH` entries, however large the index or the stream; a
page cut short by that bound still carries a cursor to go on from.

The listing index holds ended sessions too, for as long as their tombstone
(a day), so that they are listed among the recently ended (``status``
``ended`` or ``all``). Its sweep (:func:`sweep_step`) removes an entry once
neither its record nor its tombstone is left, whatever the policy: each
process goes through the whole index, :data:`SWEEP_BATCH` entries a step
(four steps a second), resting :data:`SWEEP_REST` seconds between passes."""

from __future__ import annotations

import re
import time

from ...audit import Event
from ...core import Epoch, Outcome, Record, ended_at, judge, still_listed
from ...policy import Policy
from ...tokens import is_session_id
from ..cursors import cursor_after, cursor_of
from ..protocol import Ended, Page
from .calls import Commands, Op, Rerun, one
from .keys import Keys
from .records import decode_record, decode_tombstone, idx_bound, idx_member, idx_position

BATCH = 200
ROUNDS = 10
#: Listing-index entries the sweep looks at in one step, and the rest between passes (s).
SWEEP_BATCH = 100
SWEEP_REST = 10.0
_STREAM_ID = re.compile(r"[0-9]+-[0-9]+")


def start_of(cursor: str | None) -> bytes | None:
    """The listing-index position a listing cursor (``<login ms>.<id>``) goes on
    from: ``-`` (the top) for none, ``None`` for a malformed one."""
    if cursor is None:
        return b"-"
    negated, session_id = cursor_after(cursor)
    if not is_session_id(session_id) or not 0 <= -negated < 2**47:
        return None
    return b"(" + idx_member(-negated, session_id)


def session_page(keys: Keys, start: bytes, *, policy: Policy, epoch: Epoch, now: int, platform: str | None,
                 limit: int, status: str = "active") -> Op[Page]:
    """Sessions after the listing-index position ``start`` (``-`` or an
    exclusive ``(member``): the valid ones (``status="active"``), the recently
    ended (``"ended"``: :class:`~..protocol.Ended`, from the tombstone, or from
    a record that has ended and is not noticed yet) or both (``"all"``).

    After a sign-out of everyone, an active listing stops at the epoch: every
    older entry has ended, so it never wades through them. The session that
    sign-out kept is looked up on its own and comes last, where its login time
    puts it."""
    found: list[Record | Ended] = []
    active = status == "active"
    stop = b"+" if epoch.at <= 0 or not active else b"(" + idx_bound(epoch.at - 1)
    last, exhausted = start, False
    for _ in range(ROUNDS):
        members = yield from one("ZRANGEBYLEX", keys.idx, last, stop, "LIMIT", 0, BATCH, rerun=Rerun.ALWAYS)
        exhausted = len(members) < BATCH
        ids = [idx_position(m)[1] for m in members]
        reads: list[tuple[str, str]] = []
        for i in ids:
            reads.append(("GET", keys.session(i)))
            if not active:
                reads.append(("GET", keys.tombstone(i)))
        values = (yield Commands(tuple(reads), Rerun.ALWAYS)) if ids else []
        step = 1 if active else 2
        for n, (member, session_id) in enumerate(zip(members, ids, strict=True)):
            last = b"(" + member
            value, tombstone = values[n * step], None if active else values[n * step + 1]
            item = _listed(session_id, value, tombstone, policy, epoch, now, status)
            record = item.record if isinstance(item, Ended) else item
            if record is None or (platform is not None and record.platform != platform):
                continue
            found.append(item)  # type: ignore[arg-type]
            if len(found) > limit:
                break
        if len(found) > limit or exhausted:
            break
    if active and exhausted and len(found) <= limit and epoch.keep is not None:
        kept = yield from _kept(keys, start, policy=policy, epoch=epoch, now=now, platform=platform)
        found += kept
    page = found[:limit]
    if len(found) > limit:
        tail = page[-1]
        return Page(page, cursor_of(tail.record if isinstance(tail, Ended) else tail))
    if exhausted or last == start:
        return Page(page, None)
    created, session_id = idx_position(last[1:])
    return Page(page, f"{created}.{session_id}")


def _listed(session_id: str, value: bytes | None, tombstone: bytes | None, policy: Policy, epoch: Epoch,
            now: int, status: str) -> Record | Ended | None:
    """What a listing of ``status`` shows of one listing-index entry, if anything."""
    if value is not None:
        record = decode_record(session_id, value)
        outcome = judge(record, policy, now, epoch)
        if outcome is Outcome.VALID:
            return record if status != "ended" else None
        if status == "active":
            return None
        at = ended_at(record, policy, outcome.value, now, epoch)  # ended, not noticed yet
        return Ended(record, outcome.value, at) if still_listed(at, now) else None
    found = None if tombstone is None or status == "active" else decode_tombstone(session_id, tombstone)
    if found is None:
        return None
    reason, at, record = found
    return Ended(record, reason, at) if still_listed(at, now) else None


def _kept(keys: Keys, start: bytes, *, policy: Policy, epoch: Epoch, now: int,
          platform: str | None) -> Op[list[Record]]:
    """The session the last sign-out of everyone kept, if it is still valid, logged
    in before the epoch (a later one is in the scanned part) and after ``start``."""
    keep = epoch.keep
    if keep is None or not is_session_id(keep):
        return []
    value = yield from one("GET", keys.session(keep), rerun=Rerun.ALWAYS)
    if value is None:
        return []
    record = decode_record(keep, value)
    after = start == b"-" or idx_member(record.created, keep) > start[1:]
    if not after or record.created >= epoch.at or (platform is not None and record.platform != platform):
        return []
    return [record] if judge(record, policy, now, epoch) is Outcome.VALID else []


def event_page(keys: Keys, user_id: str | None, limit: int, cursor: str | None) -> Op[Page]:
    """Audit events, newest first; the cursor is the stream id of the last one
    shown (a malformed cursor starts from the newest, as the memory store does)."""
    start = "(" + cursor if cursor is not None and _STREAM_ID.fullmatch(cursor) else "+"
    picked: list[tuple[str, Event]] = []
    last, exhausted = start, False
    for _ in range(ROUNDS):
        entries = yield from one("XREVRANGE", keys.audit, last, "-", "COUNT", BATCH, rerun=Rerun.ALWAYS)
        exhausted = len(entries) < BATCH
        for entry_id, fields in entries:
            last = "(" + entry_id.decode("ascii")
            event = Event.from_fields({k.decode(): v.decode("utf-8", "surrogatepass")
                                       for k, v in fields.items()})
            if user_id is None or event.user_id == user_id:
                picked.append((last[1:], event))
                if len(picked) > limit:
                    break
        if len(picked) > limit or exhausted:
            break
    page = picked[:limit]
    if len(picked) > limit:
        return Page([e for _, e in page], page[-1][0])
    more = not exhausted and last != start
    return Page([e for _, e in page], last[1:] if more else None)


class Sweep:
    """Where one process's sweep of the listing index is: a pass goes through the
    whole index a step at a time, then rests :attr:`rest` seconds (before the
    first pass too)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.rest = SWEEP_REST
        self._after = b""
        self._rested_from = time.monotonic()

    def step(self, now: float) -> Op[int]:
        """A step of the pass (``now``: the monotonic clock), unless resting; how
        many entries it removed."""
        if not self._after and now - self._rested_from < self.rest:
            return 0
        removed, self._after = yield from sweep_step(self.keys, self._after)
        if not self._after:
            self._rested_from = now
        return removed


def sweep_step(keys: Keys, after: bytes) -> Op[tuple[int, bytes]]:
    """Remove the listing-index entries after ``after`` (``b""``: from the top)
    whose record and tombstone are gone, :data:`SWEEP_BATCH` of them; how many
    were removed, and where to go on (``b""``: the pass is over)."""
    members = yield from one("ZRANGEBYLEX", keys.idx, b"(" + after if after else b"-", b"+",
                             "LIMIT", 0, SWEEP_BATCH, rerun=Rerun.ALWAYS)
    if not members:
        return 0, b""
    # a record and its tombstone share a slot: one EXISTS each, on a Cluster too
    ids = [idx_position(m)[1] for m in members]
    exists = yield Commands(tuple(("EXISTS", keys.session(i), keys.tombstone(i)) for i in ids),
                            Rerun.ALWAYS)
    gone = [m for m, found in zip(members, exists, strict=True) if not found]
    if gone:
        yield Commands((("ZREM", keys.idx, *gone),), Rerun.ALWAYS)
    return len(gone), members[-1] if len(members) == SWEEP_BATCH else b""
