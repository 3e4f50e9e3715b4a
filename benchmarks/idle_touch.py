"""Idle-touch writes: how often an active session is written back.

Scenario of issue 6: a 30-minute idle timeout and one request per second for
10 minutes. Time is fake: the guard gets an injected clock
(``SessionGuard(config, clock=fake)``), which the Redis store passes to its
Lua scripts, so 600 requests run in well under a second of real time.

Several sessions run side by side (one request each per fake second). On
Redis the writes are counted from ``INFO commandstats`` (every command Redis
flags ``write``, including those run inside Lua scripts), from just after the
logins to just before the session idles out: so every use written back later
(sessionguard writes last-seen once per touch interval and keeps the uses in
between until their moment, see ``sessionguard/stores/unwritten.py``) is
counted too. On ``memory://`` they are counted as
calls of the store's internal ``_put`` (a private method: the count shows the
core's touch rule, not Redis traffic).

Then idle expiry is checked to the second: a passive request (which never
touches) one second before ``last request + 30 min`` must still be valid, and
one at exactly ``last request + 30 min`` must report ``idle_timeout``.
"""

from __future__ import annotations

import time
from typing import Any

from common import RedisServer, Table, commandstats, fmt, stats_delta, verdict, write_commands
from inprocess import wsgi_request
from report import Target
from variants import METADATA, USER, guard

IDLE_TIMEOUT = 1800
SECONDS = 600
SESSIONS = 5
TARGET_WRITES = 2


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _app(guard_: Any) -> Any:
    """A plain WSGI app answering the user id, or ``anonymous:<ended reason>``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ctx = environ["sessionguard"]
        if environ["PATH_INFO"] == "/login":
            ctx.login(USER, metadata=METADATA)
        session = ctx.session
        body = session.user_id if session is not None else f"anonymous:{ctx.ended_reason}"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]

    return guard_.wsgi(app)


def _scenario(store_url: str, counter: Any) -> dict[str, Any]:
    clock = FakeClock()
    g = guard(store_url, clock=clock, idle_timeout=IDLE_TIMEOUT)
    app = _app(g)
    puts = 0
    if counter is None:  # memory://: count the store's writes of a record
        original = g.store._put

        def counting_put(*args: Any, **kwargs: Any) -> Any:
            nonlocal puts
            puts += 1
            return original(*args, **kwargs)

        g.store._put = counting_put
    cookies = []
    for _ in range(SESSIONS):
        status, set_cookies, _ = wsgi_request(app, "/login", None)
        assert status == 200 and set_cookies, (status, set_cookies)
        cookies.append(set_cookies[0].split(";", 1)[0])
    for cookie in cookies:  # same second as the logins: no touch; loads the check script
        wsgi_request(app, "/whoami", cookie)
    time.sleep(0.3)  # let the store's pub/sub thread finish connecting outside the counted window
    before, puts = (commandstats(counter) if counter is not None else {}), 0
    for _ in range(SECONDS):
        clock.now += 1
        for cookie in cookies:
            status, _, body = wsgi_request(app, "/whoami", cookie)
            assert body == USER.encode(), body
    last = clock.now
    clock.now = last + IDLE_TIMEOUT - 1
    time.sleep(0.6)  # the subscriber's tick writes back what is owed by now (none: see below)
    _, _, still = wsgi_request(app, "/whoami", cookies[0], HTTP_X_SESSION_PASSIVE="1")
    # counted up to here: the requests, every deferred write-back, the check a second before expiry
    delta = stats_delta(before, commandstats(counter)) if counter is not None else {}
    touched = puts
    clock.now = last + IDLE_TIMEOUT
    _, _, ended = wsgi_request(app, "/whoami", cookies[0], HTTP_X_SESSION_PASSIVE="1")
    exact = still == USER.encode() and ended == b"anonymous:idle_timeout"
    g.store.close()
    if counter is None:
        return {"writes": touched / SESSIONS, "commands": None, "mix": "MemoryStore._put", "exact": exact,
                "detail": f"{still.decode()} / {ended.decode()}"}
    writes = write_commands(counter, list(delta))
    return {
        "writes": sum(c for n, c in delta.items() if n in writes) / SESSIONS,
        "commands": sum(delta.values()) / SESSIONS,
        "mix": " ".join(f"{n}×{c / SESSIONS:g}" for n, c in sorted(delta.items())),
        "exact": exact,
        "detail": f"{still.decode()} / {ended.decode()}",
    }


def idle_touch(server: RedisServer, *, redis_store: bool) -> tuple[Table, Target]:
    """Run the scenario on memory:// and (when available) Redis."""
    table = Table(
        f"Idle-touch writes: 1 request/s for {SECONDS // 60} min of fake time, "
        f"{IDLE_TIMEOUT // 60}-minute idle timeout",
        ["store", "sessions", "requests/session", "writes/session", "Redis cmds/session",
         "commands per session", "idle expiry exact (T+29:59 / T+30:00)"], align="lrrrrll",
    )  # fmt: skip
    runs = {"memory://": _scenario("memory://", None)}
    if redis_store:
        counter = server.client()
        try:
            runs["redis://"] = _scenario(server.url, counter)
        finally:
            counter.close()
    for store, r in runs.items():
        table.add(store, SESSIONS, SECONDS, fmt(r["writes"], 1),
                  "–" if r["commands"] is None else fmt(r["commands"], 1), r["mix"],
                  f"{verdict(r['exact'])} {r['detail']}")
    table.notes.append(f"target: ≤ {TARGET_WRITES} writes per session (Redis `write` commands, "
                       "counted inside Lua scripts too); logins are not counted.")
    chosen = runs.get("redis://")
    if chosen is None:
        target = Target(f"≤ {TARGET_WRITES} idle-touch writes per session (10 min at 1 req/s), idle expiry "
                        "exact", f"Redis not measured; memory:// store writes {fmt(runs['memory://']['writes'])}"
                        "/session", None)
    else:
        target = Target(f"≤ {TARGET_WRITES} idle-touch writes per session (10 min at 1 req/s), idle expiry "
                        "exact", f"{fmt(chosen['writes'])} writes/session; expiry exact: {chosen['exact']}",
                        chosen["writes"] <= TARGET_WRITES and chosen["exact"])
    return table, target
