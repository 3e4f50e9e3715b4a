"""Scale: 1,000,000 sessions in a private Redis.

Loading reuses ``listing.py``'s :class:`~listing.Loader`: the sessions are
created by the store's own ``create`` script, so they consist of exactly the
keys a real login writes (the record, the user's index, the global listing
index); only the transport differs (pipelined 1,000 at a time). Users hold
two sessions each (web and mobile) with a 120-byte user agent, an IPv4
address, a device label and ``{"name": ..., "roles": [...]}`` as metadata;
the limit is 5 sessions per user and platform. (``listing.py`` measures the
same listing through the admin API; this file measures the store's
``list_sessions`` underneath it.)

Then, against the 1,000,000 sessions:

- memory per session: ``MEMORY USAGE`` (``SAMPLES 0``) of one typical
  session's record, plus its share of its user's index and of the global
  listing index; and the growth of ``used_memory`` divided by the sessions;
- the admin listing through ``RedisStore.list_sessions`` (50 a page): the
  first page, and the page in the middle (cursor built from the index entry
  at rank n/2, the cursor the previous page would have returned);
- a login of a user who already holds the limit (evicting the oldest), and a
  login of a user below it, for comparison;
- sign-out of everyone (``end_all``), then the first listing page after it.

Times are the median of several runs, in milliseconds, wall clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import redis
from common import USER_AGENT, RedisServer, Table, fmt
from report import Target
from variants import guard

PAGE = 50
LIMIT = 5
TARGET_BYTES = 600


def _timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall milliseconds of ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def _memory(client: redis.Redis, *keys: str) -> int:
    return sum(int(client.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0) for key in keys)


def scale(count: int = 1_000_000) -> tuple[Table, list[Target]]:
    """Load ``count`` sessions into a fresh private Redis and measure."""
    from listing import Loader

    from sessionguard.platform import device_label
    from sessionguard.stores.protocol import NewSession
    from sessionguard.stores.redis.keys import Keys
    from sessionguard.stores.redis.records import idx_position
    from sessionguard.tokens import session_id

    table = Table(f"Scale: {count:,} sessions in one Redis", ["measure", "value", "note"], align="lrl")
    with RedisServer() as server:
        client = server.client()
        g = guard(server.url, max_sessions=LIMIT)
        keys = Keys(g.config.key_prefix)
        try:
            g.store.now()  # connect, start the state subscriber
            used_before = int(client.info("memory")["used_memory"])
            rate = Loader(g, client).load(count)
            used = int(client.info("memory")["used_memory"]) - used_before
            table.add("load rate", f"{fmt(rate, 0)} sessions/s", "create script, pipelined (listing.Loader)")

            # -- memory: a typical session (user 123's web session) --------------
            user = "user0000123"
            records = g.store.user_sessions(user)
            web = next(r for r in records if r.platform == "web")
            tag = g.store.slot_tag(user)
            record_bytes = _memory(client, keys.session(web.id))
            index_bytes = _memory(client, keys.user_index(tag, user))
            listing_bytes = _memory(client, keys.idx) / max(1, int(client.zcard(keys.idx)))
            per_session = record_bytes + index_bytes / len(records) + listing_bytes
            table.add("memory per session (MEMORY USAGE)", f"{fmt(per_session, 0)} B",
                      f"record {record_bytes} B + ½ of the user's index {index_bytes} B + "
                      f"listing-index share {fmt(listing_bytes, 0)} B; record value "
                      f"{client.strlen(keys.session(web.id))} B")  # fmt: skip
            table.add("used_memory growth per session", f"{fmt(used / count, 0)} B",
                      "all keys, including Redis's keyspace and expiry tables")

            # -- admin listing --------------------------------------------------------
            def page(cursor: str | None) -> Any:
                return g.store.list_sessions(user_id=None, platform=None, limit=PAGE, cursor=cursor)

            first_ms, first = _timed(lambda: page(None), 7)
            table.add("admin listing, first page", f"{fmt(first_ms, 2)} ms",
                      f"{len(first.items)} sessions, next cursor {'yes' if first.next_cursor else 'no'}")
            middle_member = client.zrange(keys.idx, count // 2, count // 2)[0]
            created, middle_id = idx_position(middle_member)
            middle_ms, middle = _timed(lambda: page(f"{created}.{middle_id}"), 7)
            table.add("admin listing, middle page", f"{fmt(middle_ms, 2)} ms",
                      f"{len(middle.items)} sessions after index rank {count // 2:,}")

            # -- logins ------------------------------------------------------------------
            def login(user: str) -> Any:
                new = NewSession(id=session_id(g.tokens.new_sid(g.store.slot_tag(user))), user_id=user,
                                 platform="web",
                                 ip="10.9.9.9", user_agent=USER_AGENT, device=device_label(USER_AGENT),
                                 metadata={"name": user, "roles": ["staff"]})
                return g.store.create(new)

            for _ in range(LIMIT):
                login("at-the-limit")
            at_limit_ms, created_at_limit = _timed(lambda: login("at-the-limit"), 11)
            fresh = iter(range(11))
            below_ms, _ = _timed(lambda: login(f"fresh{next(fresh)}"), 11)
            table.add(f"login of a user at the limit ({LIMIT} web sessions)", f"{fmt(at_limit_ms, 2)} ms",
                      f"evicts the oldest ({len(created_at_limit.evicted)} evicted per login); a login "
                      f"below the limit takes {fmt(below_ms, 2)} ms")

            # -- sign-out of everyone ---------------------------------------------------------
            end_ms, _ = _timed(g.store.end_all, 3)
            after_ms, after = _timed(lambda: page(None), 3)
            ended = g.store.check(web.id, passive=True).outcome.value
            table.add("sign-out of everyone (end_all)", f"{fmt(end_ms, 2)} ms",
                      f"constant time; a session checked afterwards: {ended}")
            table.add("admin listing, first page after sign-out of everyone", f"{fmt(after_ms, 2)} ms",
                      f"{len(after.items)} sessions, next cursor {'yes' if after.next_cursor else 'no'} "
                      "(the index still holds the ended sessions)")
        finally:
            g.store.close()
            client.close()
    target = Target(f"≤ {TARGET_BYTES} bytes per session in Redis (MEMORY USAGE, typical session)",
                    f"{fmt(per_session, 0)} B (used_memory growth {fmt(used / count, 0)} B/session)",
                    per_session <= TARGET_BYTES)
    return table, [target]
