"""The Redis store's operations on one user's sessions: logins (admission,
eviction, ``SESSION_CEILING``), the user's listing, sign-out of a user and the
user's own timeouts.

Every call is bounded, however many sessions the user holds: the per-user
functions read the user's index a page at a time (:data:`.scripts.PAGE`
members, each call well under a millisecond of Redis time at the ceiling), and a login reads
no record while the index counts say the user is under every limit (see
``lua/create.lua``). Like :mod:`.operations`, these are I/O-free generators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...core import (
    ENDED_REASONS,
    TOMBSTONE_MS,
    Outcome,
    Record,
    admission,
    counted,
    ended_at,
    judge,
    still_listed,
    sweep_deadline,
)
from ...errors import SessionLimitReached, StoreUnavailable
from ...tokens import is_session_id
from ..cursors import newest_first, page_of, record_of
from ..protocol import Check, Created, Ended, NewSession, Page, with_roles
from .calls import Arg, Commands, Op, Rerun, one
from .keys import encode_user
from .records import (
    decode_pairs,
    decode_record,
    decode_tombstone,
    idx_bound,
    idx_member,
    now_of,
    pack_id,
    record_tail,
    unpack_id,
)
from .scripts import FUNCTIONS, PAGE, Function
from .state import logger

if TYPE_CHECKING:
    from .operations import Operations

#: A login whose admission needs the user's sessions read in pages (``create.lua``)
#: tries this often before it answers that it could not be confirmed.
CREATE_ATTEMPTS = 3
_CREATE, _SET_TAILS, _ROTATE = FUNCTIONS["create"], FUNCTIONS["set_tails"], FUNCTIONS["rotate"]
#: The most recently ended sessions of one user a listing reads (the newest endings).
RECENT_READ = 1000


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class UserOperations:
    """Plans the operations on one user's sessions, with the context, clock and
    caches of ``ops``."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.keys = ops.keys

    # -- logins and sign-outs --------------------------------------------------

    def create(self, new: NewSession, ending: str | None) -> Op[Created]:
        """A login (``create``), ending the presented session ``ending`` if it is
        admitted (``core.counted``: a refused login changes nothing). ``create``
        itself ends it when it is in the user's slot (the user's own session,
        which then takes no place under the limits); another user's is ended
        after. When the admission needs more of the user's records than one call
        reads, they are read in pages first (:meth:`user_records`, which prunes
        them), and the login names the sessions ``core.admission`` evicts."""
        if not is_session_id(new.id):
            raise ValueError("not a session id (tokens.session_id of a Tokens.new_sid)")
        tag = yield from self.ops.slot_tag(new.user_id)
        if new.id[:4] != tag:  # made with another tag key: filed there, it would escape its user's index
            raise StoreUnavailable("the session id does not carry its user's slot tag; try again")
        tail = record_tail(new)  # first: metadata that is not JSON changes nothing
        # the presented session, if in the user's slot (else not the user's: ended after)
        replacing = ending if ending is not None and is_session_id(ending) and ending[:4] == tag else ""
        yield from self.ops.write_due(tag=tag)  # the user's last-seen decides a least-recent eviction
        keys = (self.keys.user_index(tag, new.user_id), self.keys.settings(tag, new.user_id),
                self.keys.session(new.id))
        victims, plan, alive = "", None, []
        for _ in range(CREATE_ATTEMPTS):
            reply = yield from self.ops.call(
                _CREATE, keys, tag=tag, id=new.id, platform=new.platform, user=encode_user(new.user_id),
                remember="1" if new.remember_me else "0", tail=tail, victims=victims, replacing=replacing)
            if reply[0] != 4:
                break
            alive = counted((yield from self.user_records(new.user_id, prune=True)), ending)
            policy = self.ops.cache.policy()
            plan = admission(alive, policy, new.platform)
            if plan.refused:
                raise SessionLimitReached.of(policy, new.user_id, new.platform, total=plan.total)
            victims = ",".join(plan.evict) or "-"  # '-': planned, nothing to evict (create.lua)
        else:
            raise StoreUnavailable("the login could not be admitted (the user's sessions kept changing)")
        status = reply[0]
        if status == 0:
            raise SessionLimitReached(user_id=new.user_id, platform=new.platform, limit=int(reply[1]),
                                      total=len(reply) > 2)  # {0, limit, 'total'}: create.lua
        if status == 3:  # an earlier attempt created it, and it has ended since
            raise StoreUnavailable("the login could not be confirmed; try again")
        record = decode_record(new.id, reply[1])
        replaced = decode_record(replacing, reply[4]) if status == 1 and reply[4] else None
        if ending is not None and replaced is None and (status == 1 or not replacing):
            # another user's (or no longer valid); after a retry (2), the earlier attempt
            # ended the one in the user's slot
            replaced = yield from self.ops.end(ending, "signed_out", None)
        if status == 2:
            return Created(record, (), replaced)
        evicted = tuple(decode_pairs(reply[5:]))
        self.ops.forget([r.id for r in evicted] + ([replacing] if replacing else []))
        if self.ops.cluster:
            yield from self._list_in_cluster(record, now_of(reply[2]))
        would, reported = reply[3][0], tuple(decode_pairs(reply[3][1:]))  # ENFORCE=report
        if plan is not None:  # planned here from pages: the report is this plan's
            by_id = {r.id: r for r in alive}
            reported = tuple(by_id[i] for i in plan.reported)
            would = b"rejected" if plan.would_refuse else b""
        return Created(record, evicted, replaced, reported, would == b"rejected")

    def _list_in_cluster(self, record: Record, now: int) -> Op[None]:
        """Add a login to the global listing index and the deadline index (another
        slot than the function's), pruning entries older than any session can live
        (as ``store.lua`` prune_idx does)."""
        commands: list[tuple[Arg, ...]] = [("ZADD", self.keys.idx, 0, idx_member(record.created, record.id))]
        policy = self.ops.cache.policy()
        ends = sweep_deadline(record, policy)
        if ends is not None:
            commands.append(("ZADD", self.keys.deadlines, ends, pack_id(record.id)))
        absolutes = [p.absolute_timeout for p in policy.platforms.values()]
        # (under ENFORCE=report a session outlives its absolute timeout while it is used)
        if policy.enforce and all(a is not None for a in absolutes):
            cutoff = now - max(a for a in absolutes if a is not None) * 1000 - TOMBSTONE_MS
            # members sorting after this bound logged in before the cutoff
            commands.append(("ZREMRANGEBYLEX", self.keys.idx, b"[" + idx_bound(cutoff - 1), "+"))
        try:
            yield Commands(tuple(commands), Rerun.ALWAYS)
        except StoreUnavailable:
            logger.warning("sessionguard: session %s created but not listed for admins", record.id)

    def end_user(self, user_id: str, reason: str, platform: str | None, keep: str | None) -> Op[list[Record]]:
        """End a user's sessions (``end_user``, a page of the user's index a call),
        this process's uses of them written first (an ended one is told from a
        used one by its last-seen)."""
        tag = yield from self.ops.slot_tag(user_id)
        yield from self.ops.write_due(tag=tag)
        ended: list[Record] = []
        pages = self._pages(FUNCTIONS["end_user"], tag, (self.keys.user_index(tag, user_id),),
                            reason=reason, platform=platform or "", keep=keep or "")
        for items in (yield from pages):
            page = decode_pairs(items)
            self.ops.forget([r.id for r in page])
            ended += page
        return ended

    def _pages(self, function: Function, tag: str, keys: tuple[str, ...], **args: Arg) -> Op[list[list[Any]]]:
        """Call a paged per-user function page after page (each reply: the cursor,
        then its items) until the cursor comes back empty; every page's items.
        A function with a ``first`` argument gets ``'1'`` on the first page only."""
        pages: list[list[Any]] = []
        after: Arg = ""
        while True:
            if "first" in function.Args._fields:
                args["first"] = "0" if pages else "1"
            reply = yield from self.ops.call(function, keys, tag=tag, after=after, count=str(PAGE), **args)
            pages.append(reply[1:])
            after = reply[0]
            if not after:
                return pages

    def rotate(self, session_id: str, new_id: str) -> Op[Check]:
        """Move a valid session to ``new_id`` (``rotate``), with this process's
        unwritten use of it; on a Cluster the listing index follows separately."""
        if not is_session_id(session_id) or not is_session_id(new_id) or new_id[:4] != session_id[:4]:
            raise ValueError("the new id must be a session id of the same user's slot (Tokens.new_sid)")
        state = yield from self.ops.state()
        seen = self.ops.unwritten.seen(session_id)
        reply = yield _ROTATE.call((self.keys.session(session_id), self.keys.session(new_id)),
                                   context=self.ops.context(state), now=self.ops.now_arg(),
                                   use="" if seen is None else str(seen))
        self.ops.forget((session_id,))
        if reply[0] == 0:
            reason = reply[1].decode("ascii") if reply[1] else "invalid"
            return Check(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
        if reply[0] == 2:
            return Check(Outcome(reply[1].decode("ascii")), ended=decode_record(session_id, reply[2]))
        record = decode_record(new_id, reply[1])
        self.ops.unwritten.written(session_id, record.last_seen)
        if self.ops.cluster:
            yield from self._relist_in_cluster(session_id, record)
        return Check(Outcome.VALID, record, policy=state.policy or self.ops.cache.default)

    def _relist_in_cluster(self, old_id: str, record: Record) -> Op[None]:
        """The listing and deadline indexes of a Cluster (another slot) follow a rotation."""
        commands: tuple[tuple[Arg, ...], ...] = (
            ("ZREM", self.keys.idx, idx_member(record.created, old_id)),
            ("ZADD", self.keys.idx, 0, idx_member(record.created, record.id)),
            ("ZREM", self.keys.deadlines, pack_id(old_id)),
        )
        ends = sweep_deadline(record, self.ops.cache.policy())
        if ends is not None:
            commands += (("ZADD", self.keys.deadlines, ends, pack_id(record.id)),)
        try:
            yield Commands(commands, Rerun.ALWAYS)
        except StoreUnavailable:
            logger.warning("sessionguard: session %s rotated but not relisted for admins", record.id)

    # -- listings ----------------------------------------------------------------

    def user_records(self, user_id: str, prune: bool) -> Op[list[Record]]:
        """A user's valid sessions, in index order (``user_page``, a page a call);
        ``prune``: missing ones leave the index, ended ones become tombstones."""
        tag = yield from self.ops.slot_tag(user_id)
        pages = self._pages(FUNCTIONS["user_page"], tag, (self.keys.user_index(tag, user_id),),
                            prune="1" if prune else "0")
        return [record for items in (yield from pages) for record in decode_pairs(items)]

    def list_page(self, user_id: str, platform: str | None, limit: int, cursor: str | None,
                  status: str = "active") -> Op[Page]:
        """The user's sessions of ``status``, newest login first, ``limit`` at a
        time (all read, a page of the index a call, then cut here: the index is
        in id order)."""
        found: list[Record | Ended] = []
        if status != "ended":
            found += yield from self.user_sessions(user_id, prune=False)
        if status != "active":
            found += yield from self.recently_ended(user_id)
        return page_of([r for r in found if platform in (None, record_of(r).platform)], limit, cursor)

    def recently_ended(self, user_id: str) -> Op[list[Ended]]:
        """The user's sessions that ended within the last day (the newest
        :data:`RECENT_READ` endings): from the tombstones the user's ``x:<user>``
        names, and the sessions of the user's index that have ended and are not
        noticed yet (a sign-out of everyone). Plain reads of one slot."""
        tag = yield from self.ops.slot_tag(user_id)
        state = yield from self.ops.state()
        policy = state.policy or self.ops.cache.default
        now = yield from self.ops.now()
        members, recent = yield Commands((
            ("ZRANGE", self.keys.user_index(tag, user_id), 0, -1),
            ("ZREVRANGEBYSCORE", self.keys.recent(tag, user_id), "+inf", now - TOMBSTONE_MS,
             "LIMIT", 0, RECENT_READ),
        ), Rerun.ALWAYS)
        held = [tag + unpack_id(m[-17:], 22) for m in members]  # (17 bytes of packed short id, last)
        ended = [tag + unpack_id(m[-17:], 22) for m in recent]
        reads: list[tuple[Arg, ...]] = []
        if held:
            reads.append(("MGET", *(self.keys.session(i) for i in held)))
        if ended:
            reads.append(("MGET", *(self.keys.tombstone(i) for i in ended)))
        replies = (yield Commands(tuple(reads), Rerun.ALWAYS)) if reads else []
        values = replies[0] if held else []
        tombstones = replies[-1] if ended else []
        found: list[Ended] = []
        for session_id, value in zip(held, values, strict=True):
            if value is None:
                continue
            record = decode_record(session_id, value)
            outcome = judge(record, policy, now, state.epoch)
            if outcome is not Outcome.VALID:
                at = ended_at(record, policy, outcome.value, now, state.epoch)
                if still_listed(at, now):
                    found.append(Ended(record, outcome.value, at))
        for session_id, tombstone in zip(ended, tombstones, strict=True):
            gone = None if tombstone is None else decode_tombstone(session_id, tombstone)
            if gone is not None and still_listed(gone[1], now):
                found.append(Ended(gone[2], gone[0], gone[1]))
        return found

    def user_sessions(self, user_id: str, prune: bool = True) -> Op[list[Record]]:
        """A user's valid sessions, newest login first."""
        yield from self.ops.write_due()
        records = yield from self.user_records(user_id, prune)
        return sorted(self.ops.unwritten.shown(records), key=newest_first)

    # -- per-user settings -------------------------------------------------------

    def user_timeouts(self, user_id: str) -> Op[dict[str, int | None]]:
        """The user's own idle timeouts by platform."""
        tag = yield from self.ops.slot_tag(user_id)
        reply = yield from one("HGETALL", self.keys.settings(tag, user_id), rerun=Rerun.ALWAYS)
        return {k.decode("ascii"): int(v) if v else None for k, v in reply.items()}

    def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> Op[None]:
        """Replace the user's own timeouts, applied to their sessions (``set_user_timeouts``),
        this process's uses of them written first: the function judges them by the
        new timeouts, which the moments of those uses were not reckoned by."""
        tag = yield from self.ops.slot_tag(user_id)
        yield from self.ops.write_due(tag=tag)
        given = ",".join(f"{p}={_opt(value)}" for p, value in timeouts.items())  # (unnamed: 'x', not set)
        keys = (self.keys.user_index(tag, user_id), self.keys.settings(tag, user_id))
        for updated in (yield from self._pages(FUNCTIONS["set_user_timeouts"], tag, keys, timeouts=given)):
            ids = [i.decode("ascii") for i in updated]
            self.ops.forget(ids)
            self.ops.unwritten.owe(ids)  # (other processes: when the function's announcement comes)
            yield from self.ops.endings.place_ids(ids)  # a shorter timeout moves deadlines earlier

    def set_roles(self, user_id: str, roles: Sequence[str]) -> Op[list[Record]]:
        """Replace ``metadata["roles"]`` of the user's valid sessions: read them
        (``user_page``), then give each still valid its new tail (``set_tails``,
        a page of sessions a call)."""
        records = yield from self.user_sessions(user_id)
        changed = [r._replace(metadata=with_roles(r.metadata, roles)) for r in records]
        updated: set[str] = set()
        for first in range(0, len(changed), PAGE):
            page = changed[first:first + PAGE]
            pairs: list[Arg] = []
            for r in page:
                new = NewSession(r.id, r.user_id, r.platform, r.remember_me, r.ip, r.city, r.user_agent,
                                 r.device, r.metadata)
                pairs += [r.id, record_tail(new)]
            keys = tuple(self.keys.session(r.id) for r in page)
            reply = yield from self.ops.call(_SET_TAILS, keys, *pairs)
            updated |= {i.decode("ascii") for i in reply}
        self.ops.forget(list(updated))
        return [r for r in changed if r.id in updated]

