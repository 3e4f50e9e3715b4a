"""``LOCAL_CACHE``: valid check results kept in the process, so that a hot
session is validated without a round trip to Redis.

Rules (the Redis store applies them in :meth:`.operations.Operations.check`):

- only a ``valid`` answer from Redis enters, keyed by session id, stamped with
  the moment (monotonic clock) its request was *sent*;
- an entry is used for at most ``LOCAL_CACHE`` seconds after that stamp, the
  hard bound on staleness, whatever else fails; the first request after it goes
  to Redis (and touches last-seen there);
- a hit is judged again locally (:func:`~sessionguard.core.judge`, with the
  current cached policy and epoch and the local clock), so a timeout that falls
  inside the window ends the session anyway (Redis then confirms it);
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


class LocalCache:
    """Valid records by session id, each usable for ``seconds`` after its fetch
    began, while ``trusted()`` says the invalidation channel is alive.

    Shared by a process's sync and async Redis store (threads and event loops):
    writes take a lock, a hit reads the dict without one.
    """

    def __init__(self, seconds: float, trusted: Callable[[], bool], *,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.seconds = seconds
        self._trusted = trusted
        self._max = max_entries
        # ordered by fetch: the first entry is the oldest (popped in O(1) when full)
        self._entries: OrderedDict[str, tuple[float, Check]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        #: generation at which each id was last dropped
        self._dropped: dict[str, int] = {}
        #: answers of fetches that began before this generation are refused
        self._floor = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> Check | None:
        """The cached answer, if fresh enough and the channel is alive."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if not self._trusted():
            self.clear()
            return None
        if time.monotonic() - entry[0] >= self.seconds:
            with self._lock:
                if self._entries.get(session_id) is entry:
                    del self._entries[session_id]
            return None
        return entry[1]

    def ticket(self) -> Ticket | None:
        """Taken before a fetch; ``None`` when its answer may not enter (the
        channel is not confirmed alive: the cache is emptied then)."""
        if not self._trusted():
            if self._entries:
                self.clear()
            return None
        return Ticket(time.monotonic(), self._generation)

    def put(self, ticket: Ticket, check: Check) -> None:
        """Keep the valid answer ``check`` a fetch with ``ticket`` returned, unless
        its session was dropped (or the cache emptied) since the fetch began."""
        if check.record is None:
            return
        session_id = check.record.id
        with self._lock:
            gen = ticket.generation
            if gen < self._floor or self._dropped.get(session_id, -1) > gen:
                return
            self._entries.pop(session_id, None)  # re-inserted last: the newest
            if len(self._entries) >= self._max:
                self._entries.popitem(last=False)
            self._entries[session_id] = (ticket.started, check)

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
