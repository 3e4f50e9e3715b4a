"""Profile of sessionguard's own request path: authenticated, with no cookie,
and with only other cookies (no token, but a ``Cookie`` header to read).

sessionguard wraps a minimal inner app (raw ASGI / WSGI callables that read
the session and answer a few bytes), so nearly every sample is sessionguard's.
Two profilers:

- ``cProfile`` (deterministic): the table lists the functions with the most
  *own* time per request, with their calls per request — a function called
  several times per request, or an allocation repeated per request, shows up
  here. cProfile's own overhead inflates tiny functions, so read the numbers
  as relative.
- ``pyinstrument`` (sampling, 0.1 ms): its call tree is written to
  ``benchmarks/results/profile-<path>.txt`` for reading in full.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

from common import Table, fmt
from inprocess import _REQUEST, OTHER_COOKIES, asgi_scope, wsgi_environ
from variants import METADATA, USER, guard

REQUESTS = 20_000
QUICK_REQUESTS = 3_000
TOP = 12
_HARNESS = {"hotspots.py", "base_events.py", "events.py"}
_TEXT = [(b"content-type", b"text/plain")]


def inner_asgi() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ctx = scope["sessionguard"]
        if scope["path"] == "/login":
            await ctx.login(USER, metadata=METADATA)
        session = ctx.session
        body = session.user_id.encode() if session is not None else b"anonymous"
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": body})

    return app


def inner_wsgi() -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ctx = environ["sessionguard"]
        if environ["PATH_INFO"] == "/login":
            ctx.login(USER, metadata=METADATA)
        session = ctx.session
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [session.user_id.encode() if session is not None else b"anonymous"]

    return app


async def _receive() -> dict[str, Any]:
    return _REQUEST


async def _send(message: Any) -> None:
    return None


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The inner app's work without sessionguard: the baseline of the titles."""
    await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
    await send({"type": "http.response.body", "body": b"anonymous"})


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"anonymous"]


def _no_start(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def _wsgi_cookie(app: Any) -> str:
    captured: list[str] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured.extend(v for k, v in headers if k.lower() == "set-cookie")

    list(app(wsgi_environ("/login", None), start))
    return captured[0].split(";", 1)[0]


async def _asgi_cookie(app: Any) -> str:
    captured: list[str] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            captured.extend(v.decode() for k, v in message["headers"] if k == b"set-cookie")

    await app(asgi_scope("/login", None), _receive, send)
    return captured[0].split(";", 1)[0]


def _wsgi_loop(app: Any, environ: dict[str, Any], n: int) -> None:
    copy = environ.copy
    for _ in range(n):
        app(copy(), _no_start)


async def _asgi_loop(app: Any, scope: dict[str, Any], n: int) -> None:
    copy = scope.copy
    for _ in range(n):
        await app(copy(), _receive, _send)


def _run(kind: str, app: Any, template: dict[str, Any], n: int, loop: asyncio.AbstractEventLoop) -> None:
    if kind == "wsgi":
        _wsgi_loop(app, template, n)
    else:
        loop.run_until_complete(_asgi_loop(app, template, n))


def _plain_timing(kind: str, app: Any, template: dict[str, Any], n: int,
                  loop: asyncio.AbstractEventLoop) -> float:
    """µs per request without a profiler: the best of 5 runs."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        _run(kind, app, template, n, loop)
        best = min(best, (time.perf_counter_ns() - start) / n / 1000)
    return best


def _cprofile(kind: str, app: Any, template: dict[str, Any], n: int,
              loop: asyncio.AbstractEventLoop) -> Table:
    profiler = cProfile.Profile()
    profiler.enable()
    _run(kind, app, template, n, loop)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in entries:
        if Path(filename).name in _HARNESS or "_lsprof" in func:
            continue  # this module's loops and the event loop's plumbing
        rows.append((tottime, ncalls, cumtime, _where(filename, line, func)))
    rows.sort(reverse=True)
    table = Table("", ["function (own time, cProfile)", "calls/req", "own µs/req", "cumulative µs/req"])
    for tottime, ncalls, cumtime, where in rows[:TOP]:
        table.add(f"`{where}`", fmt(ncalls / n, 2), fmt(tottime / n * 1e6, 2), fmt(cumtime / n * 1e6, 2))
    return table


def _where(filename: str, line: int, func: str) -> str:
    if filename == "~":
        return func  # a builtin, e.g. <method 'decode' of 'bytes' objects>
    path = Path(filename)
    parts = path.parts
    if "sessionguard" in parts:
        short = "/".join(parts[parts.index("sessionguard"):])
    elif "site-packages" in parts:
        short = "/".join(parts[parts.index("site-packages") + 1:])
    else:
        short = path.name
    return f"{short}:{line} {func}"


def _pyinstrument(kind: str, app: Any, template: dict[str, Any], n: int, loop: asyncio.AbstractEventLoop,
                  out: Path) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        out.write_text("pyinstrument is not installed (pip install -r benchmarks/requirements.txt)\n")
        return
    profiler = Profiler(interval=0.0001, async_mode="disabled")
    profiler.start()
    _run(kind, app, template, n, loop)
    profiler.stop()
    out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))


def profile(redis_url: str | None, results: Path, *, quick: bool = False) -> str:
    """Profile each shell × store × path; markdown of the hot spots."""
    n = QUICK_REQUESTS if quick else REQUESTS
    results.mkdir(parents=True, exist_ok=True)
    stores = {"memory": "memory://"} | ({"redis": redis_url} if redis_url else {})
    loop = asyncio.new_event_loop()
    parts = ["### Profile: sessionguard around a minimal inner app", "",
             "“+µs” is sessionguard's cost over the same inner app without it (best of 5 runs, no "
             "profiler). The tables are cProfile, whose overhead inflates small functions: read them as "
             "relative. Full pyinstrument call trees: `benchmarks/results/profile-*.txt`.", ""]  # fmt: skip
    try:
        for kind in ("asgi", "wsgi"):
            bare = bare_asgi if kind == "asgi" else bare_wsgi
            make = asgi_scope if kind == "asgi" else wsgi_environ
            baseline = _plain_timing(kind, bare, make("/whoami", None), n, loop)
            for store, url in stores.items():
                g = guard(url)
                app = g.asgi(inner_asgi()) if kind == "asgi" else g.wsgi(inner_wsgi())
                cookie = loop.run_until_complete(_asgi_cookie(app)) if kind == "asgi" else _wsgi_cookie(app)
                paths = (("auth", make("/whoami", cookie)), ("anon", make("/whoami", None)),
                         ("other", make("/whoami", OTHER_COOKIES)))
                for path, template in paths:
                    _run(kind, app, template, min(n, 2000), loop)  # warm-up
                    plain = _plain_timing(kind, app, template, n, loop)
                    table = _cprofile(kind, app, template, n, loop)
                    tree = results / f"profile-{kind}-{store}-{path}.txt"
                    _pyinstrument(kind, app, template, n, loop, tree)
                    what = {"auth": "authenticated", "anon": "no cookie", "other": "only other cookies"}[path]
                    table.title = (f"{kind.upper()}, {store}, {what}: {fmt(plain, 2)} µs/req, "
                                   f"+{fmt(plain - baseline, 2)} µs over the inner app alone")
                    parts.append(table.markdown())
                if kind == "asgi":
                    loop.run_until_complete(g.async_store.close())
                g.store.close()
    finally:
        loop.close()
    return "\n".join(parts)


# --------------------------------------------------------------------------
# Where an authenticated request's Redis time goes
# --------------------------------------------------------------------------


def _per_call(fn: Any, n: int) -> tuple[float, float]:
    """Wall and CPU µs per call of ``fn()``: the median of 5 runs of ``n`` calls."""
    walls, cpus = [], []
    for _ in range(5):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(n):
            fn()
        walls.append((time.perf_counter_ns() - wall) / n / 1000)
        cpus.append((time.process_time_ns() - cpu) / n / 1000)
    return sorted(walls)[2], sorted(cpus)[2]


async def _per_call_async(fn: Any, n: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(5):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(n):
            await fn()
        walls.append((time.perf_counter_ns() - wall) / n / 1000)
        cpus.append((time.process_time_ns() - cpu) / n / 1000)
    return sorted(walls)[2], sorted(cpus)[2]


def _read(store: Any, session_id: str) -> Any:
    """The check's ``MGET`` (a :class:`~sessionguard.stores.redis.calls.Read`),
    planned without I/O (the state is cached once the store has been used)."""
    from sessionguard.stores.redis.calls import Read

    op = store._ops.check(session_id, False, True)
    request = op.send(None)
    op.close()
    assert isinstance(request, Read), f"the check began with {request!r}: use the store first"
    return request


def _judged(store: Any, session_id: str, reply: list[Any]) -> Any:
    """A whole check without I/O: planned, then given ``reply`` (the ``MGET``'s)."""
    op = store._ops.check(session_id, False, True)
    op.send(None)
    try:
        op.send(reply)
    except StopIteration as done:
        return done.value
    raise AssertionError("the check asked for more than its read")


def redis_breakdown(redis_url: str, *, quick: bool = False) -> Table:
    """An authenticated check taken apart: raw redis-py calls against the store's."""
    import redis
    import redis.asyncio

    from sessionguard.stores.redis.records import decode_record
    from sessionguard.tokens import session_id as public_id

    n = 300 if quick else 2000
    g = guard(redis_url)
    app = g.wsgi(inner_wsgi())
    token = _wsgi_cookie(app).split("=", 1)[1]
    sid = public_id(g.tokens.verify(token))
    g.store.check(sid, passive=True, unbound_token=True)  # the state and the server clock, read once
    client = redis.Redis.from_url(redis_url)
    keys = _read(g.store, sid).keys
    conn = client.connection_pool.get_connection()
    encoded = g.store._encoder.mget(keys)
    reply = client.mget(keys)
    value = reply[0]
    rows: list[tuple[str, tuple[float, float]]] = [
        ("redis-py `PING`", _per_call(client.ping, n)),
        ("redis-py `MGET` of the session record and its tombstone", _per_call(lambda: client.mget(keys), n)),
        ("redis-py packs that `MGET`, no I/O", _per_call(lambda: conn.pack_command("MGET", *keys), n)),
        ("sessionguard plans the check: its `MGET` from `Operations.check`, no I/O",
         _per_call(lambda: _read(g.store, sid), n)),
        ("sessionguard judges the reply (`Operations.check` given the `MGET`'s reply), no I/O",
         _per_call(lambda: _judged(g.store, sid, reply), n)),
        ("sessionguard decodes a record (`decode_record`, its JSON tail too; a check reuses the last "
         "decoded record while the stored bytes are unchanged: `stores/redis/reads.py`)",
         _per_call(lambda: decode_record(sid, value), n)),
        ("sessionguard encodes the `MGET` (`stores.redis.lane.Encoder`, kept per session), no I/O",
         _per_call(lambda: g.store._encoder.mget(keys), n)),
        ("the store's lane: the encoded `MGET` on its own connection (`SyncLane.call`)",
         _per_call(lambda: g.store._lane.call(encoded), n)),
        ("`RedisStore.check()` (what the WSGI shell calls)",
         _per_call(lambda: g.store.check(sid, passive=False, unbound_token=True), n)),
    ]  # fmt: skip
    client.connection_pool.release(conn)
    before = client.info("commandstats").get("cmdstat_mget", {})
    for _ in range(n):
        client.mget(keys)
    after = client.info("commandstats").get("cmdstat_mget", {})

    async def async_rows() -> list[tuple[str, tuple[float, float]]]:
        aclient = redis.asyncio.Redis.from_url(redis_url)
        lane = await g.async_store._clients.lane()
        try:
            return [
                ("redis.asyncio `MGET` of the record and its tombstone",
                 await _per_call_async(lambda: aclient.mget(keys), n)),
                ("the store's lane: the encoded `MGET` on its pipelined connection (`AsyncLane.call`)",
                 await _per_call_async(lambda: lane.call(encoded), n)),
                ("`AsyncRedisStore.check()` (what the ASGI shell awaits)",
                 await _per_call_async(lambda: g.async_store.check(sid, passive=False, unbound_token=True),
                                       n)),
            ]  # fmt: skip
        finally:
            await aclient.aclose()
            await g.async_store.close()

    rows += asyncio.run(async_rows())
    g.store.close()
    client.close()
    table = Table("Redis round trip of one authenticated check, taken apart",
                  ["call", "wall µs/call", "CPU µs/call (this process)"])
    for label, (wall, cpu) in rows:
        table.add(label, fmt(wall, 1), fmt(cpu, 1))
    if before and after and after["calls"] > before["calls"]:
        server = (after["usec"] - before["usec"]) / (after["calls"] - before["calls"])
        table.notes.append(f"server side: the `MGET` runs in {fmt(server, 2)} µs inside Redis "
                           f"(`INFO commandstats` usec, over {n} calls).")
    table.notes.append("CPU counts every thread of this process (the store's pub/sub thread included).")
    return table
