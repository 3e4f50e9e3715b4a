"""Redis server time of each store operation, at 1, 100 and 1,000 sessions per user.

Run on its own (``.venv/bin/python benchmarks/redis_cost.py``) or as the
``cost`` section of ``run.py``. A private ``redis-server`` logs every command
to its slow log (``slowlog-log-slower-than 0``): for each operation the table
gives the commands the store sent, their summed server time and the longest
single one, which is what other clients wait behind (Redis runs one command
at a time). A function's own commands are inside its time (the slow log lists
them as from client ``?:0``; they are not added again). The per-check figure
comes from ``INFO commandstats`` (the ``MGET``'s own usec, and the sum over
every command, the write-backs included) over a few
thousand checks after warm-up.

What is measured, for a user who already holds *n* sessions on the web
platform (no limit but ``SESSION_CEILING``, 1,000 by default, so at *n* =
1,000 a login evicts the oldest):

- **check**: one authenticated request's check (independent of *n*);
- **login**: one more login (``RedisStore.create``);
- **user's sessions**: ``user_sessions`` (the self-service listing);
- **user's listing page**: ``list_sessions(user_id=..., limit=50)`` (the admin's);
- **set user timeouts**: ``set_user_timeouts`` (rewrites every session);
- **sign out the user**: ``end_user`` (ends all *n*).

Times are the median of ``RUNS`` runs of each operation, in µs of server time.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from typing import Any

from common import USER_AGENT, RedisServer, Table, command_usec, fmt, server_cost
from variants import guard

SIZES = (1, 100, 1000)
RUNS = 3
CHECKS = 3000


def _slowlog(client: Any) -> list[tuple[str, int]]:
    """The commands clients sent since the last reset, oldest first: (name, µs).
    The commands a function runs are logged too, as from client ``?:0``: they
    are inside their function's time, so they are left out here."""
    entries = client.slowlog_get(100_000)
    return [(entry["command"].split(b" ", 1)[0].decode().upper(), int(entry["duration"]))
            for entry in reversed(entries) if not entry["client_address"].startswith(b"?")]


def _measured(client: Any, operation: Callable[[], Any]) -> tuple[int, int, int]:
    """Commands, summed µs and longest µs of one run of ``operation``."""
    client.slowlog_reset()
    operation()
    logged = [(name, us) for name, us in _slowlog(client) if name not in ("SLOWLOG", "PING")]
    return len(logged), sum(us for _, us in logged), max((us for _, us in logged), default=0)


def _operations(store: Any, login: Callable[[str], Any], user: str) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("login", lambda: login(user)),
        ("user's sessions", lambda: store.user_sessions(user)),
        ("user's listing page (50)", lambda: store.list_sessions(user_id=user, platform=None, limit=50,
                                                                 cursor=None)),
        ("set user timeouts", lambda: store.set_user_timeouts(user, {"web": 7200})),
    ]


def redis_cost(quick: bool = False) -> Table:
    """Measure on a private server of its own."""
    from sessionguard.stores.protocol import NewSession
    from sessionguard.tokens import session_id

    table = Table("Redis server time per store operation (µs of server time, median of runs)",
                  ["operation", "sessions per user", "commands", "server µs", "longest command µs"],
                  align="lrrrr")
    runs = 1 if quick else RUNS
    with RedisServer() as server:
        client = server.client()
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 100_000)
        g = guard(server.url)
        store = g.store
        try:
            def login(user: str) -> Any:
                sid = g.tokens.new_sid(store.slot_tag(user))
                new = NewSession(id=session_id(sid), user_id=user, platform="web", ip="10.9.9.9",
                                 user_agent=USER_AGENT, device="Edge 131 on Linux",
                                 metadata={"name": user, "roles": ["staff"]})
                return store.create(new)

            record = login("ada").record
            # as the middleware checks an ordinary cookie: a token without an issue time
            for _ in range(500):
                store.check(record.id, passive=False, unbound_token=True)
            before = command_usec(client)
            for _ in range(CHECKS):
                store.check(record.id, passive=False, unbound_token=True)
            script_us, all_us = server_cost(before, command_usec(client), CHECKS)
            table.add("check (INFO commandstats)", "any", "1", f"{fmt(script_us, 2)} / {fmt(all_us, 2)}", "–")
            table.notes.append(f"check: the request's own command's usec (the MGET) / every command's (the "
                               f"write-backs included), over {CHECKS:,} checks after 500 of warm-up.")
            for size in SIZES:
                user = f"user{size}"
                for _ in range(size):
                    login(user)
                print(f"  … {size} sessions for {user}", file=sys.stderr, flush=True)
                for name, operation in _operations(store, login, user):
                    results = [_measured(client, operation) for _ in range(runs)]
                    table.add(name, f"{size:,}", str(results[-1][0]),
                              fmt(statistics.median(r[1] for r in results), 0),
                              fmt(statistics.median(r[2] for r in results), 0))
                count, total, longest = _measured(client, lambda: store.end_user(user, "revoked"))  # noqa: B023
                table.add("sign out the user", f"{size:,}", str(count), fmt(total, 0), fmt(longest, 0))
        finally:
            store.close()
            client.close()
    table.notes.append("login at 1,000 sessions: the user is at SESSION_CEILING, so the login evicts the "
                       "oldest session (after reading the user's sessions in pages).")
    return table


if __name__ == "__main__":
    print(redis_cost(quick="--quick" in sys.argv).markdown())
