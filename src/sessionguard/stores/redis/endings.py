"""The sweep of endings: sessions that timed out and are never presented again
still get their one audit event, within a minute of their end (SPEC 9.3).

The deadline index ``P:dl`` (a zset, members :func:`~.records.pack_id` of the
session id) scores every session that can time out by its deadline
(:func:`~sessionguard.core.sweep_deadline`) or an earlier moment: a login
places it (``create.lua``; on a Cluster, where the index is another slot's,
the login's pipelined call), a rotation moves it, an ending through the
store removes it (on a Cluster, the sweep does when it comes). A use is not
written there: a use only moves a deadline later, so the score stays a lower
bound and the request path's write-back (``touch.lua``) pays nothing for it.

Each process's tick (:meth:`Endings.step`, about four times a second, on the
server's clock only: an injected test clock sweeps when told) reads the
entries whose score has come, :data:`DUE_BATCH` at a time. It judges each
record as a request would (:func:`~sessionguard.core.judge`); one still valid
(used since) is placed again at its deadline; one that has ended goes through
the library's ``check`` function, passive, as a request's rare path does
(:meth:`.operations.Operations.confirm`): it tombstones the session and
answers the ending exactly once, so one process (or one request) among all
that notice it at once writes the audit event, dated at the deadline.

Policy changes move deadlines. A longer timeout leaves every score a lower
bound. A shorter one (:func:`~sessionguard.core.shortens`, against the policy
the index was last placed by, kept in ``P:dl:by``), or an index found missing
while sessions are listed, starts a pass over the listing index that places
every session again at its deadline under the policy now in force
(:data:`PASS_BATCH` a step), then records that policy in ``P:dl:by``. Every
process that sees the change makes such a pass (or finishes it first); a
user's own timeouts place that user's sessions again at once
(:meth:`Endings.place_ids`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...audit import Event, compact_json
from ...audit import ended as ended_event
from ...core import Outcome, Record, ended_at, judge, shortens, sweep_deadline, touched
from ...policy import Policy, PolicyError
from .calls import Arg, Commands, Op, Rerun, one
from .records import decode_record, idx_position, pack_id, unpack_id

if TYPE_CHECKING:
    from .operations import Operations

#: Deadline-index entries one step looks at, and listing-index entries one step of
#: a placing pass places.
DUE_BATCH = 100
PASS_BATCH = 500
#: The audit actor of a timeout noticed by a sweep (as by a request).
SYSTEM = "system"


class Endings:
    """One process's sweep of the deadline index, and its placing passes."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.keys = ops.keys
        #: the policy the index was last placed by, here
        self._placed_by: Policy | None = None
        #: where a placing pass of the listing index is (``None``: none going on)
        self._pass: bytes | None = None

    def step(self) -> Op[int]:
        """One step: of a placing pass when one is due, then of the due entries;
        how many endings it recorded."""
        policy = yield from self.ops.policy()
        yield from self._start_pass(policy)
        if self._pass is not None:
            yield from self._pass_step(policy)
        recorded, _ = yield from self.due(policy)
        return recorded

    def sweep(self) -> Op[int]:
        """Everything at once (``sessionguard sweep``): a placing pass to its end
        when one is due, then every due entry; how many endings it recorded."""
        policy = yield from self.ops.policy()
        yield from self._start_pass(policy)
        while self._pass is not None:
            yield from self._pass_step(policy)
        recorded = 0
        for _ in range(10_000):  # (a bound: each round takes due entries out or places them later)
            found, seen = yield from self.due(policy)
            recorded += found
            if seen < DUE_BATCH:
                break
        return recorded

    def _start_pass(self, policy: Policy) -> Op[None]:
        """Start a placing pass when the policy the index was placed by (``P:dl:by``)
        is missing or gives some session a later deadline than ``policy``, or the
        index is missing while sessions are listed. Looked at when this process's
        policy changes (and at its first step)."""
        if policy is self._placed_by:
            return
        self._placed_by = policy
        stored, kept, listed = yield Commands((
            ("GET", self.keys.deadlines_policy), ("EXISTS", self.keys.deadlines), ("EXISTS", self.keys.idx),
        ), Rerun.ALWAYS)
        if stored == _placed(policy).encode("utf-8"):
            return
        try:
            by = self.ops.cache.default.updated(json.loads(stored)) if stored is not None else None
        except (ValueError, PolicyError):
            by = None
        if listed and (by is None or not kept or shortens(by, policy)):
            self._pass = b""
        else:  # a lengthening: every score stays a lower bound
            yield Commands((("SET", self.keys.deadlines_policy, _placed(policy)),), Rerun.ALWAYS)

    def _pass_step(self, policy: Policy) -> Op[None]:
        """Place :data:`PASS_BATCH` sessions of the listing index at their deadline."""
        after = self._pass or b""
        members = yield from one("ZRANGEBYLEX", self.keys.idx, b"(" + after if after else b"-", b"+",
                                 "LIMIT", 0, PASS_BATCH, rerun=Rerun.ALWAYS)
        ids = [idx_position(m)[1] for m in members]
        yield from self.place_ids(ids, policy)
        self._pass = members[-1] if len(members) == PASS_BATCH else None
        if self._pass is None:  # done: the index is placed by this policy
            yield Commands((("SET", self.keys.deadlines_policy, _placed(policy)),), Rerun.ALWAYS)

    def place_ids(self, ids: Sequence[str], policy: Policy | None = None) -> Op[None]:
        """Place the sessions ``ids`` at their deadline now (a user's own timeouts
        changed, or a placing pass): read their records and score them."""
        if not ids:
            return
        if policy is None:
            policy = yield from self.ops.policy()
        values = yield Commands(tuple(("GET", self.keys.session(i)) for i in ids), Rerun.ALWAYS)
        records = [decode_record(i, v) for i, v in zip(ids, values, strict=True) if v is not None]
        yield from self._place(records, policy, ())

    def _place(self, records: Sequence[Record], policy: Policy, gone: Sequence[bytes]) -> Op[None]:
        scored: list[Arg] = []
        dropped: list[Arg] = list(gone)
        for record in records:
            ends = sweep_deadline(record, policy)
            if ends is None:
                dropped.append(pack_id(record.id))
            else:
                scored += [ends, pack_id(record.id)]
        commands: list[tuple[Arg, ...]] = []
        if scored:
            commands.append(("ZADD", self.keys.deadlines, *scored))
        if dropped:
            commands.append(("ZREM", self.keys.deadlines, *dropped))
        if commands:
            yield Commands(tuple(commands), Rerun.ALWAYS)

    def due(self, policy: Policy) -> Op[tuple[int, int]]:
        """The due entries (score at or before now), :data:`DUE_BATCH` of them:
        each still valid placed again, each ended confirmed and recorded once.
        How many endings were recorded, and how many entries were looked at."""
        if not policy.enforce:  # ENFORCE=report: nothing times out (requests report would_end)
            return 0, 0
        ops = self.ops
        now = ops.clock() if ops.clock is not None else ops.estimated_now()
        members = yield from one("ZRANGEBYSCORE", self.keys.deadlines, "-inf", now, "LIMIT", 0, DUE_BATCH,
                                 rerun=Rerun.ALWAYS)
        if not members:
            return 0, 0
        ids = [unpack_id(m, 26) for m in members]
        values = yield Commands(tuple(("GET", self.keys.session(i)) for i in ids), Rerun.ALWAYS)
        epoch = ops.cache.state.epoch
        valid: list[Record] = []
        gone: list[bytes] = []
        events: list[Event] = []
        for member, session_id, value in zip(members, ids, values, strict=True):
            if value is None:  # ended through the store (or expired): nothing left to record
                gone.append(member)
                continue
            stored = decode_record(session_id, value)
            mine = ops.unwritten.seen(session_id)
            view = stored if mine is None else touched(stored, mine)
            if judge(view, policy, now, epoch) is Outcome.VALID:
                valid.append(view)
                continue
            check = yield from ops.confirm(session_id, True, False, None)
            if check.outcome is Outcome.VALID and check.record is not None:
                valid.append(check.record)
                continue
            gone.append(member)
            if check.ended is not None and check.outcome is not Outcome.SIGNOUT_ALL:
                # the sign-out of everyone's one event covers the sessions it ended
                reason = check.outcome.value
                at = ended_at(check.ended, policy, reason, now, epoch)
                events.append(ended_event(check.ended, reason, SYSTEM, at))
        yield from self._place(valid, policy, gone)
        if events:
            yield from ops.append_events(events)
            if ops.on_swept is not None:
                ops.on_swept(events)
        return len(events), len(members)


def _placed(policy: Policy) -> str:
    """What ``P:dl:by`` holds: the stored fields of ``policy`` (its JSON)."""
    return compact_json(policy.to_json())
