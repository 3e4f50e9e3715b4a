"""``LOCAL_CACHE``: valid check results kept in the process, so that a hot
session is validated without a round trip to Redis.

Rules (the Redis store applies them in :meth:`.operations.Operations.check`):

- only a ``valid`` answer from Redis enters, keyed by session id, stamped with
  the moment (monotonic clock) its request was *sent*;
- an entry is used for at most ``LOCAL_CACHE`` seconds after that stamp, the
  hard bound on staleness, whatever else fails; the first request after it goes
  to Redis (and touches last-seen there);
- a hit is judged again locally: an entry carries its session's deadline
  (:func:`~sessionguard.core.deadline` under the policy and epoch it was judged
  by, which a new state empties the cache of), so a timeout that falls inside
  the window ends the session anyway (Redis then confirms it);
- every end, sign-out of a user, eviction and user-timeout change is announced
  on the store's pub/sub channel, and every process drops those ids at once; a
  new state (sign-out of everyone, policy) drops everything;
- the cache is used only while the subscription is confirmed alive (see
  :mod:`.state`): when it is not, the cache is emptied, and a request in
  flight across a drop or an emptying does not put its (possibly stale) answer in.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..protocol import Check

#: Entries kept at most; the oldest goes first (it is the nearest to expiry).
MAX_ENTRIES = 100_000
#: Ids dropped while fetches may be in flight, remembered at most; beyond, every
#: fetch in flight is refused instead.
MAX_DROPPED = 10_000


class Ticket:
    """What a fetch from Redis carries: when it started, and the cache's
    generation then (a drop or an emptying since refuses its answer)."""

    __slots__ = ("started", "generation")

    def __init__(self, started: float, generation: int) -> None:
        self.started = started
        self.generation = generation


class Hit(NamedTuple):
    """A cached valid answer, and what a hit needs to judge and count it
    without recomputing it per request (the hit path is the one that matters
    here: ``benchmarks/`` ``LOCAL_CACHE`` rows): ``until``, the session's
    deadline (ms, ``None``: none) by the answer's policy and epoch, and the
    bounds a use is written back by (:func:`~sessionguard.core.flush_bounds`);
    ``bound``: the session refuses a token without its issue time
    (:func:`~sessionguard.core.refuses_token`)."""

    check: Check
    until: int | None
    interval: int
    latest: int | None
    bound: bool = False


class LocalCache:
    """Valid records by session id, each usable for ``seconds`` after its fetch
    began, while ``trusted()`` says the invalidation channel is alive.

    Shared by a process's sync and async Redis store (threads and event loops):
    writes take a lock, a hit reads the dict without one.
    """

    def __init__(self, seconds: float, trusted: Callable[[float], bool], *,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.seconds = seconds
        self._trusted = trusted
        self._max = max_entries
        # ordered by fetch: the first entry is the oldest (popped in O(1) when full)
        self._entries: OrderedDict[str, tuple[float, Hit]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        #: generation at which each id was last dropped
        self._dropped: dict[str, int] = {}
        #: answers of fetches that began before this generation are refused
        self._floor = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> Hit | None:
        """The cached answer, if fresh enough and the channel is alive
        (``trusted`` at this moment of the monotonic clock)."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        now = time.monotonic()
        if not self._trusted(now):
            self.clear()
            return None
        if now - entry[0] >= self.seconds:
            with self._lock:
                if self._entries.get(session_id) is entry:
                    del self._entries[session_id]
            return None
        return entry[1]

    def ticket(self) -> Ticket | None:
        """Taken before a fetch; ``None`` when its answer may not enter (the
        channel is not confirmed alive: the cache is emptied then)."""
        now = time.monotonic()
        if not self._trusted(now):
            if self._entries:
                self.clear()
            return None
        return Ticket(now, self._generation)

    def put(self, ticket: Ticket, hit: Hit) -> None:
        """Keep the valid answer ``hit`` a fetch with ``ticket`` returned, unless
        its session was dropped (or the cache emptied) since the fetch began."""
        if hit.check.record is None:
            return
        session_id = hit.check.record.id
        with self._lock:
            gen = ticket.generation
            if gen < self._floor or self._dropped.get(session_id, -1) > gen:
                return
            self._entries.pop(session_id, None)  # re-inserted last: the newest
            if len(self._entries) >= self._max:
                self._entries.popitem(last=False)
            self._entries[session_id] = (ticket.started, hit)

    def drop(self, session_ids: Iterable[str]) -> None:
        """Forget these sessions (ended or changed somewhere)."""
        with self._lock:
            self._generation += 1
            for session_id in session_ids:
                self._entries.pop(session_id, None)
                self._dropped[session_id] = self._generation
            if len(self._dropped) > MAX_DROPPED:
                self._dropped.clear()
                self._generation += 1
                self._floor = self._generation

    def forked(self) -> None:
        """In a forked child: a new lock, nothing cached (see ``StateCache.forked``)."""
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget everything (a new state, or a subscription not confirmed alive)."""
        with self._lock:
            self._generation += 1
            self._floor = self._generation
            self._entries.clear()
            self._dropped.clear()
