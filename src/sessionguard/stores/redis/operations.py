"""The Redis store's operations, written once and free of I/O.

Each operation is a generator: it yields what it needs sent to Redis (a
:class:`Script` or a few plain :class:`Commands`), receives the reply, and
returns the store's answer. :class:`~.redis.RedisStore` drives them with plain
calls and :class:`~.async_store.AsyncRedisStore` with ``await`` (the h11 /
httpx-auth shape: one protocol core, two thin shells). A failed request is
thrown back into the generator as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...audit import Event
from ...config import PLATFORMS
from ...core import ENDED_REASONS, TOMBSTONE_MS, Outcome, Record, cookie_refresh_due, flush_by, judge, touched
from ...errors import SessionLimitReached, StoreUnavailable
from ...policy import Policy
from ...tokens import is_session_id
from ..cursors import cursor_after, cursor_of, newest_first
from ..protocol import Check, Created, NewSession, Page, with_roles
from ..write_behind import Unwritten
from .audit_log import AuditLog
from .calls import Arg, Commands, Op, Script, one
from .keys import Keys, encode_user
from .listing import event_page, session_page, start_of
from .local_cache import LocalCache
from .records import decode_pairs, decode_record, idx_bound, idx_member, record_tail
from .state import State, StateCache, logger, policy_to_json


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class Operations:
    """Plans every store operation. ``cluster``: the global listing index lives in
    another slot, so scripts cannot maintain it and a login adds it separately.
    ``local``: the process's cache of valid checks (``LOCAL_CACHE``), if on."""

    def __init__(self, keys: Keys, cache: StateCache, *, clock: Callable[[], int] | None, cluster: bool,
                 audit_maxlen: int, audit_retention: int | None = None,
                 local: LocalCache | None = None) -> None:
        self.keys = keys
        self.cache = cache
        self.clock = clock
        self.cluster = cluster
        self.audit = AuditLog(keys, audit_maxlen, audit_retention)
        self.local = local
        cache.local = local
        self._contexts: tuple[State, tuple[Arg, ...]] | None = None
        #: uses seen here, not written back yet (core.touch_due, core.flush_by)
        self.unwritten = cache.unwritten = Unwritten()
        #: the store's clock minus the local wall clock (ms), from the last check
        self._offset = 0

    # -- state and time --------------------------------------------------------

    def state(self) -> Op[State]:
        """The cached state, re-read first when the cache says so."""
        if self.cache.claim_poll():
            yield from self.reread_state()
        return self.cache.state

    def reread_state(self) -> Op[None]:
        """Read the state into the cache (``state.lua``: a lost one is made anew,
        signing everyone out, rather than read as "never signed out")."""
        reply = yield self._state_script("read")
        self.cache.apply(self.cache.read(reply))

    def _state_script(self, change: str, *args: str) -> Script:
        now = "" if self.clock is None else str(self.clock())
        # a tag key for a state that has none: random, only ever stored once (state.lua)
        fresh = secrets.token_hex(32)
        return Script("state", (self.keys.state,), (self.keys.bus, change, now, fresh, *args))

    def slot_tag(self, user_id: str) -> Op[str]:
        """The slot tag of ``user_id`` under the deployment's tag key, which comes
        with the state (read once per process, and then kept by the subscriber)."""
        state = yield from self.state()
        if state.tags is None:  # never read yet in a way that gave a key
            yield from self.reread_state()
            state = self.cache.state
        if state.tags is None:
            raise StoreUnavailable("the store gave no readable tag key")
        return state.tags(user_id)

    def now(self) -> Op[int]:
        """The injected clock, else the Redis server's ``TIME`` (ms)."""
        if self.clock is not None:
            return self.clock()
        seconds, micros = yield from one("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    def estimated_now(self) -> int:
        """The store's clock as this process estimates it, without a round trip."""
        if self.clock is not None:
            return self.clock()
        return time.time_ns() // 1_000_000 + self._offset

    def policy(self) -> Op[Policy]:
        """The configured policy with the stored override's fields applied."""
        yield from self.state()
        return self.cache.policy()

    def set_policy(self, policy: Policy) -> Op[None]:
        """Store the JSON fields of ``policy`` for every process (``state.lua``) and
        apply them here at once (environment-only settings are not stored)."""
        reply = yield self._state_script("policy", policy_to_json(policy))
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def end_all(self, keep: str | None) -> Op[None]:
        """Move the epoch (``state.lua``): every session ends but ``keep``, if it
        still exists (its login time tells the script whether the last sign-out of
        everyone ended it, ``core.epoch_after``)."""
        created = ""
        if keep is not None and is_session_id(keep):
            value = yield from one("GET", self.keys.session(keep))
            created = "" if value is None else str(decode_record(keep, value).created)
        kept = keep if keep is not None and created else ""  # gone: ended (or never was)
        reply = yield self._state_script("epoch", kept, created)
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def _forget_all(self) -> None:
        if self.local is not None:
            self.local.clear()

    def _forget(self, ids: Sequence[str]) -> None:
        """Drop sessions from this process's cache at once (the scripts announce
        them to the other processes)."""
        if self.local is not None and ids:
            self.local.drop(ids)

    def _context(self, state: State) -> tuple[Arg, ...]:
        """ARGV[1..17] of every session script under ``state`` (``rules.lua``): the
        same tuple object for as long as the state is the same one."""
        cached = self._contexts
        if cached is not None and cached[0] is state:
            return cached[1]
        policy = state.policy or self.cache.default
        context: list[Arg] = [
            str(state.epoch.at), state.epoch.keep or "",
            _opt(policy.remember_me_period), "1" if policy.allow_user_timeouts else "0",
        ]
        for platform_name in PLATFORMS:
            platform = policy.platform(platform_name)
            context += [_opt(platform.idle_timeout), _opt(platform.absolute_timeout),
                        _opt(platform.max_sessions)]
        context += [policy.on_limit, policy.evict, self.keys.prefix, "0" if self.cluster else "1"]
        self._contexts = (state, tuple(context))
        return self._contexts[1]

    def _session_script(self, name: str, tag: str, keys: tuple[str, ...], *args: Arg,
                        state: State | None = None, hot: bool = False) -> Op[Any]:
        """Run a session script (``rules.lua`` + ``name``) with the context it needs:
        the clock, and the epoch and policy of ``state`` (by default the cached one)."""
        if state is None:
            state = yield from self.state()
        return (yield self._script(name, tag, keys, args, state, hot))

    def _script(self, name: str, tag: str, keys: tuple[str, ...], args: tuple[Arg, ...], state: State,
                hot: bool) -> Script:
        now = "" if self.clock is None else str(self.clock())
        idx = () if self.cluster else (self.keys.idx,)
        return Script(name, keys + idx, (now, tag, *args), True, self._context(state), hot)

    # -- the request path ------------------------------------------------------

    def cached(self, session_id: str, passive: bool) -> Check | None:
        """A ``LOCAL_CACHE`` hit (see :mod:`.local_cache`), still valid at this
        moment by the cached policy and epoch on the local (or injected) clock.
        An active hit is a use, kept unwritten (:mod:`..write_behind`) as between
        touches. ``None``: ask Redis (:meth:`check`)."""
        local = self.local
        check = None if local is None else local.get(session_id)
        if local is None or check is None or check.record is None:
            return None
        policy, epoch = self.cache.policy(), self.cache.state.epoch
        now = self.clock() if self.clock is not None else time.time_ns() // 1_000_000
        if check.policy is policy and judge(check.record, policy, now, epoch) is Outcome.VALID:
            if not passive:
                seen = self.estimated_now()
                self.unwritten.note(session_id, seen, flush_by(check.record, policy, seen))
            return check
        local.drop((session_id,))  # Redis confirms, and reports an ending once
        return None

    def check(self, session_id: str, passive: bool) -> Op[Check]:
        """One request's token: one ``check.lua`` call (plus a state re-read when due).
        A use that is not written back is kept in :attr:`unwritten`, and handed to
        the session's next check once it is owed. With ``LOCAL_CACHE``, a valid
        answer is kept for :meth:`cached`."""
        if not is_session_id(session_id):
            return Check(Outcome.INVALID)
        local = self.local
        ticket = None if local is None else local.ticket()
        keys = (self.keys.session(session_id), self.keys.tombstone(session_id))
        owed = self.unwritten.overdue(session_id, self.estimated_now())
        # state() and _session_script() inline: two generators fewer on every check
        if self.cache.claim_poll():
            yield from self.reread_state()
        state = self.cache.state
        policy = state.policy or self.cache.default
        reply = yield self._script("check", session_id[:4], keys,
                                   (session_id, "1" if passive else "0", "" if owed is None else str(owed)),
                                   state, True)
        status = reply[0]
        if status == 0:
            reason = reply[1].decode("ascii") if reply[1] else "invalid"
            return Check(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
        if status == 2:
            return Check(Outcome(reply[1].decode("ascii")), ended=decode_record(session_id, reply[2]))
        stored, now = decode_record(session_id, reply[1]), int(reply[2])
        if self.clock is None:
            self._offset = now - time.time_ns() // 1_000_000
        written = int(reply[3]) if reply[3] else None  # the last-seen this check wrote
        if written is not None:
            self.unwritten.written(session_id, written)
        refresh = False
        if passive:  # as stored, or as an owed use wrote it, or as this process used it
            seen = max(written or 0, self.unwritten.seen(session_id) or 0)
        elif written == now:  # touched
            seen, refresh = now, cookie_refresh_due(stored, now)
        else:
            seen = now
            self.unwritten.note(session_id, now, flush_by(stored, policy, now))
        # this request's view: used now (passive: as stored, or as an owed use wrote it)
        record = touched(stored, seen) if seen > stored.last_seen else stored
        check = Check(Outcome.VALID, record, None, refresh, policy)  # positional: built on every check
        if local is not None and ticket is not None:  # hits never re-send the cookie
            local.put(ticket, check._replace(refresh_cookie=False) if check.refresh_cookie else check)
        return check

    def write_due(self, everything: bool = False, tag: str | None = None) -> Op[int]:
        """Write back the uses that are owed (``touch.lua``, one call per slot):
        the ones whose moment has come, all of them (``everything``: the store is
        closing), or all those of one user's slot ``tag`` (a login). Returns how
        many records were written."""
        if everything:
            uses = self.unwritten.all()
        elif tag is not None:
            uses = self.unwritten.take(tag)
        else:
            uses = self.unwritten.due(self.estimated_now())
        by_tag: dict[str, list[tuple[str, int]]] = {}
        for session_id, seen in uses:
            by_tag.setdefault(session_id[:4], []).append((session_id, seen))
        written = 0
        for tag, group in by_tag.items():
            keys = tuple(self.keys.session(session_id) for session_id, _ in group)
            pairs = [str(part) for use in group for part in use]
            written += yield from self._session_script("touch", tag, keys, *pairs)
        return written

    # -- logins and sign-outs --------------------------------------------------

    def create(self, new: NewSession, ending: str | None) -> Op[Created]:
        """A login (``create.lua``), after ending the presented session ``ending``."""
        if not is_session_id(new.id):
            raise ValueError("not a session id (tokens.session_id of a Tokens.new_sid)")
        tag = yield from self.slot_tag(new.user_id)
        if new.id[:4] != tag:  # made with another tag key: filed there, it would escape its user's index
            raise StoreUnavailable("the session id does not carry its user's slot tag; try again")
        tail = record_tail(new)  # first: metadata that is not JSON changes nothing
        replaced = None if ending is None else (yield from self.end(ending, "signed_out", None))
        yield from self.write_due(tag=tag)  # the user's last-seen decides a least-recent eviction
        keys = (self.keys.user_index(tag, new.user_id), self.keys.settings(tag, new.user_id),
                self.keys.session(new.id))
        reply = yield from self._session_script(
            "create", tag, keys, new.id, new.platform, "1" if new.remember_me else "0",
            encode_user(new.user_id), tail)
        status = reply[0]
        if status == 0:
            raise SessionLimitReached(user_id=new.user_id, platform=new.platform, limit=int(reply[1]))
        if status == 3:  # an earlier attempt created it, and it has ended since
            raise StoreUnavailable("the login could not be confirmed; try again")
        record = decode_record(new.id, reply[1])
        if status == 2:
            return Created(record, (), replaced)
        evicted = tuple(decode_pairs(reply[3:]))
        self._forget([r.id for r in evicted])
        if self.cluster:
            yield from self._list_in_cluster(record, int(reply[2]))
        return Created(record, evicted, replaced)

    def _list_in_cluster(self, record: Record, now: int) -> Op[None]:
        """Add a login to the global listing index (another slot than the script's),
        pruning entries older than any session can live (as ``rules.lua`` does)."""
        commands: list[tuple[Arg, ...]] = [("ZADD", self.keys.idx, 0, idx_member(record.created, record.id))]
        absolutes = [self.cache.policy().platform(p).absolute_timeout for p in PLATFORMS]
        if all(a is not None for a in absolutes):
            cutoff = now - max(a for a in absolutes if a is not None) * 1000 - TOMBSTONE_MS
            # members sorting after this bound logged in before the cutoff
            commands.append(("ZREMRANGEBYLEX", self.keys.idx, b"[" + idx_bound(cutoff - 1), "+"))
        try:
            yield Commands(tuple(commands))
        except StoreUnavailable:
            logger.warning("sessionguard: session %s created but not listed for admins", record.id)

    def end(self, session_id: str, reason: str, user_id: str | None) -> Op[Record | None]:
        """End one session (``end.lua``); with ``user_id``, only that user's."""
        if not is_session_id(session_id):
            return None
        owner = ""
        if user_id is not None:
            if (yield from self.slot_tag(user_id)) != session_id[:4]:
                return None
            owner = encode_user(user_id)
        keys = (self.keys.session(session_id), self.keys.tombstone(session_id))
        reply = yield from self._session_script("end", session_id[:4], keys, session_id, reason, owner)
        self._forget((session_id,))
        return None if reply is None else decode_record(session_id, reply)

    def end_user(self, user_id: str, reason: str, platform: str | None, keep: str | None) -> Op[list[Record]]:
        """End a user's sessions (``end_user.lua``)."""
        tag = yield from self.slot_tag(user_id)
        reply = yield from self._session_script(
            "end_user", tag, (self.keys.user_index(tag, user_id),), reason, platform or "", keep or "")
        ended = decode_pairs(reply)
        self._forget([r.id for r in ended])
        return ended

    # -- listings ----------------------------------------------------------------

    def user_sessions(self, user_id: str, prune: bool = True) -> Op[list[Record]]:
        """A user's valid sessions, newest login first (``list_user.lua``)."""
        tag = yield from self.slot_tag(user_id)
        yield from self.write_due()
        reply = yield from self._session_script(
            "list_user", tag, (self.keys.user_index(tag, user_id),), "1" if prune else "0")
        return sorted(self.unwritten.shown(decode_pairs(reply[1:])), key=newest_first)

    def list_sessions(self, user_id: str | None, platform: str | None, limit: int,
                      cursor: str | None) -> Op[Page]:
        """Valid sessions, newest login first, ``limit`` at a time (a user's from
        their index, everyone's from the listing index)."""
        if user_id is not None:
            records = yield from self.user_sessions(user_id, prune=False)
            valid = [r for r in records if platform is None or r.platform == platform]
            if cursor is not None:
                after = cursor_after(cursor)
                valid = [r for r in valid if newest_first(r) > after]
            more = len(valid) > limit
            page = valid[:limit]
            return Page(page, cursor_of(page[-1]) if more and page else None)
        start = start_of(cursor)
        if start is None:  # as the memory store: a malformed cursor lists nothing
            return Page([], None)
        yield from self.write_due()
        state = yield from self.state()
        now = yield from self.now()
        found = yield from session_page(
            self.keys, start, policy=state.policy or self.cache.default, epoch=state.epoch, now=now,
            platform=platform, limit=limit)
        return Page(self.unwritten.shown(list(found.items)), found.next_cursor)

    # -- per-user settings -------------------------------------------------------

    def user_timeouts(self, user_id: str) -> Op[dict[str, int | None]]:
        """The user's own idle timeouts by platform."""
        tag = yield from self.slot_tag(user_id)
        reply = yield from one("HGETALL", self.keys.settings(tag, user_id))
        return {k.decode("ascii"): int(v) if v else None for k, v in reply.items()}

    def set_user_timeouts(self, user_id: str, timeouts: Mapping[str, int | None]) -> Op[None]:
        """Replace the user's own timeouts, applied to their sessions (``set_user_timeouts.lua``)."""
        tag = yield from self.slot_tag(user_id)
        given = ["x" if p not in timeouts else _opt(timeouts[p]) for p in PLATFORMS]
        keys = (self.keys.user_index(tag, user_id), self.keys.settings(tag, user_id))
        updated = yield from self._session_script("set_user_timeouts", tag, keys, *given)
        ids = [i.decode("ascii") for i in updated]
        self._forget(ids)
        self.unwritten.owe(ids)  # (other processes: when the script's announcement comes)

    def rotate(self, session_id: str, new_id: str) -> Op[Check]:
        """Move a valid session to ``new_id`` (``rotate.lua``), with this process's
        unwritten use of it; on a Cluster the listing index follows separately."""
        tag = session_id[:4]
        if not is_session_id(session_id) or not is_session_id(new_id) or new_id[:4] != tag:
            raise ValueError("the new id must be a session id of the same user's slot (Tokens.new_sid)")
        state = yield from self.state()
        seen = self.unwritten.seen(session_id)
        keys = (self.keys.session(session_id), self.keys.session(new_id))
        reply = yield from self._session_script(
            "rotate", tag, keys, session_id, new_id, "" if seen is None else str(seen), state=state)
        self._forget((session_id,))
        if reply[0] == 0:
            reason = reply[1].decode("ascii") if reply[1] else "invalid"
            return Check(Outcome(reason) if reason in ENDED_REASONS else Outcome.INVALID)
        if reply[0] == 2:
            return Check(Outcome(reply[1].decode("ascii")), ended=decode_record(session_id, reply[2]))
        record = decode_record(new_id, reply[1])
        self.unwritten.written(session_id, record.last_seen)
        if self.cluster:
            yield from self._relist_in_cluster(session_id, record)
        return Check(Outcome.VALID, record, policy=state.policy or self.cache.default)

    def _relist_in_cluster(self, old_id: str, record: Record) -> Op[None]:
        """The listing index of a Cluster (another slot) follows a rotation."""
        commands: tuple[tuple[Arg, ...], ...] = (
            ("ZREM", self.keys.idx, idx_member(record.created, old_id)),
            ("ZADD", self.keys.idx, 0, idx_member(record.created, record.id)),
        )
        try:
            yield Commands(commands)
        except StoreUnavailable:
            logger.warning("sessionguard: session %s rotated but not relisted for admins", record.id)

    def set_roles(self, user_id: str, roles: Sequence[str]) -> Op[list[Record]]:
        """Replace ``metadata["roles"]`` of the user's valid sessions: read them
        (``list_user.lua``), then give each still valid its new tail (``set_tails.lua``)."""
        records = yield from self.user_sessions(user_id)
        if not records:
            return []
        changed = [r._replace(metadata=with_roles(r.metadata, roles)) for r in records]
        pairs: list[Arg] = []
        for r in changed:
            pairs += [r.id, record_tail(NewSession(r.id, r.user_id, r.platform, r.remember_me, r.ip, r.city,
                                                   r.user_agent, r.device, r.metadata))]
        keys = tuple(self.keys.session(r.id) for r in changed)
        tag = yield from self.slot_tag(user_id)
        reply = yield from self._session_script("set_tails", tag, keys, *pairs)
        updated = {i.decode("ascii") for i in reply}
        self._forget(list(updated))
        return [r for r in changed if r.id in updated]

    # -- audit ---------------------------------------------------------------------

    def append_events(self, events: Sequence[Event]) -> Op[None]:
        """Append to the audit log (:class:`~.audit_log.AuditLog`)."""
        return (yield from self.audit.append(events, self._offset))

    def append_self_service(self, user_id: str, events: Sequence[Event]) -> Op[None]:
        """Append one self-service action's events, as far as the user's allowance goes."""
        return (yield from self.audit.append_self_service(user_id, events, self._offset))

    def events(self, user_id: str | None, limit: int, cursor: str | None) -> Op[Page]:
        """Audit events, newest first."""
        return (yield from event_page(self.keys, user_id, limit, cursor))
