"""In-process mode: every app is called directly, without a server or a socket
between the client and the app (Redis is still a real server on loopback).

ASGI apps get a hand-made ``scope`` (copied from a template per request, since
apps write into it) and pre-built ``receive``/``send`` coroutines; WSGI apps a
hand-made environ and a no-op ``start_response``. Each variant logs in once
through ``GET /login`` and keeps the cookie; then ``GET /whoami`` is timed

- ``auth``: with the session cookie;
- ``anon``: with no ``Cookie`` header at all;
- ``other``: with a ``Cookie`` header that holds only other cookies (analytics,
  preferences): a request without a session token, but one that has to be read;
- ``concurrent`` (ASGI only): 64 requests at a time on one event loop
  (``asyncio.gather``);
- ``watch-update`` and ``watch-changed`` (sessionguard variants only): the hijack
  signals' cost (SPEC 9.7, :mod:`hijack`), an authenticated request whose
  User-Agent is not the login's, paired one request at a time against ``auth``
  on the same app.

Variants of one kind alternate within every round (A B C A B C …, the order
rotated each round), so drifts of the machine hit all of them alike. A
round's figure for a variant is the median of 10 equal slices of its
requests (a burst of another process's work moves one slice, not the
figure); each reported figure is the median over rounds, and differences and
ratios are paired per round before taking the median. The "own" figures of
sessionguard (against its very own inner app) pair single requests instead,
one of each in turn (:func:`_asgi_own`). A separate, untimed pass counts what reaches
Redis: ``INFO commandstats`` deltas (commands run inside Lua scripts count
too) and client round trips (``send_packed_command`` calls of redis-py); and
the Redis server's own time per authenticated request (``usec`` of
``INFO commandstats``, summed over ``server_requests`` requests after the
timed rounds, divided by their number).
"""

from __future__ import annotations

import asyncio
import gc
import io
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from common import USER_AGENT, RoundTrips, command_usec, commandstats, server_cost, stats_delta
from hijack import WATCHED
from variants import USER, Variant, unwrapped

SCENARIOS = ("auth", "anon", "other")
#: Requests without a token, timed for sessionguard variants against the same app
#: unwrapped (:func:`variants.unwrapped`); the series hold the paired differences.
OWN = {"anon": "anon-own", "other": "other-own"}
OTHER_COOKIES = "_ga=GA1.1.1234567890.1700000000; theme=dark; consent=analytics%3Dno"
CONCURRENCY = 64
#: Each round's figure is the median of this many equal slices of its requests.
CHUNKS = 10


@dataclass(frozen=True)
class Settings:
    rounds: int = 7
    requests: int = 2000  # per variant, scenario and round
    batches: int = 20  # of CONCURRENCY requests, per variant and round
    count_requests: int = 200  # in the untimed counting pass
    server_requests: int = 3000  # authenticated requests whose Redis server time is summed
    warmup: int = 300


QUICK = Settings(rounds=3, requests=300, batches=5, count_requests=50, warmup=100, server_requests=1000)


@dataclass
class Series:
    """Per-round figures of one variant in one scenario (µs per request)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


@dataclass
class Counts:
    """What one request sent to Redis, on average (untimed pass)."""

    commands: float = 0.0
    round_trips: float = 0.0
    mix: dict[str, float] = field(default_factory=dict)
    #: Redis server µs per request: the script/function command's own, and every command's
    script_us: float = 0.0
    server_us: float = 0.0


@dataclass
class VariantResult:
    variant: Variant
    series: dict[str, Series] = field(
        default_factory=lambda: {s: Series() for s in (*SCENARIOS, "concurrent", *OWN.values(), *WATCHED)})
    counts: dict[str, Counts] = field(default_factory=dict)


@dataclass
class KindResult:
    kind: str
    results: dict[str, VariantResult]
    skipped: list[str] = field(default_factory=list)


def _cookie_pair(set_cookie: str) -> str:
    """``name=value`` of a ``Set-Cookie`` header value."""
    return set_cookie.split(";", 1)[0].strip()


def _stand_in_cookie() -> str:
    """What a bare app gets instead of a session cookie: the same size as sessionguard's."""
    return "sg_session=" + "x" * 70


# --------------------------------------------------------------------------
# ASGI
# --------------------------------------------------------------------------


def asgi_scope(path: str, cookie: str | None, user_agent: str = USER_AGENT) -> dict[str, Any]:
    headers = [(b"host", b"bench.local"), (b"user-agent", user_agent.encode()),
               (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate")]  # fmt: skip
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
    }


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> dict[str, Any]:
    return _REQUEST


async def _send(message: Any) -> None:
    return None


async def asgi_request(app: Any, path: str, cookie: str | None) -> tuple[int, list[str], bytes]:
    """One checked request: status, ``Set-Cookie`` values and body."""
    out: dict[str, Any] = {"body": b"", "cookies": []}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            headers = message.get("headers", ())
            out["cookies"] = [v.decode("latin-1") for k, v in headers if k == b"set-cookie"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(asgi_scope(path, cookie), _receive, send)
    return out["status"], out["cookies"], out["body"]


async def _asgi_timed(app: Any, template: dict[str, Any], n: int, chunks: int = 1) -> tuple[float, float]:
    """Wall and CPU µs per request of ``n`` requests: the median over ``chunks``
    equal slices, so a burst of another process's work moves one slice only."""
    receive, send, copy = _receive, _send, template.copy
    size = max(1, n // chunks)
    walls, cpus = [], []
    for _ in range(chunks):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(size):
            await app(copy(), receive, send)
        walls.append((time.perf_counter_ns() - wall) / size / 1000)
        cpus.append((time.process_time_ns() - cpu) / size / 1000)
    return statistics.median(walls), statistics.median(cpus)


async def _asgi_own(wrapped: Any, inner: Any, template: dict[str, Any], n: int) -> tuple[float, float]:
    """sessionguard's own cost (wall, CPU µs) on requests ``template`` describes:
    ``n`` pairs of one ``wrapped`` and one ``inner`` request, each timed alone,
    taking turns to go first; the median of the pair differences. Paired one
    request at a time, both halves of a pair see the same machine: a burst of
    another process's work moves a few pairs, not the figure."""
    return await _asgi_paired(wrapped, template, inner, template, n)


async def _asgi_paired(app_a: Any, template_a: dict[str, Any], app_b: Any, template_b: dict[str, Any],
                       n: int) -> tuple[float, float]:
    """Wall and CPU µs of one request of ``app_a`` on ``template_a`` over one of
    ``app_b`` on ``template_b``: ``n`` pairs, each request timed alone, taking
    turns to go first; the median of the pair differences."""
    receive, send = _receive, _send
    clock, cpu = time.perf_counter_ns, time.process_time_ns

    async def one(app: Any, template: dict[str, Any]) -> tuple[int, int]:
        scope = template.copy()
        wall, used = clock(), cpu()
        await app(scope, receive, send)
        return clock() - wall, cpu() - used

    pairs = []
    for i in range(n):
        if i & 1:
            a, b = await one(app_a, template_a), await one(app_b, template_b)
        else:
            b, a = await one(app_b, template_b), await one(app_a, template_a)
        pairs.append((a[0] - b[0], a[1] - b[1]))
    return _pair_medians(pairs)


def _pair_medians(pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """Median wall and CPU difference in µs of ``(wall ns, CPU ns)`` pairs."""
    return statistics.median(p[0] for p in pairs) / 1000, statistics.median(p[1] for p in pairs) / 1000


async def _asgi_concurrent(app: Any, template: dict[str, Any], batches: int) -> tuple[float, float]:
    """µs per request of ``batches`` × 64 concurrent requests: the median over batches."""
    receive, send, copy = _receive, _send, template.copy
    walls, cpus = [], []
    for _ in range(batches):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        await asyncio.gather(*[app(copy(), receive, send) for _ in range(CONCURRENCY)])
        walls.append((time.perf_counter_ns() - wall) / CONCURRENCY / 1000)
        cpus.append((time.process_time_ns() - cpu) / CONCURRENCY / 1000)
    return statistics.median(walls), statistics.median(cpus)


async def _asgi_prepare(variant: Variant, app: Any) -> dict[str, dict[str, Any]]:
    """Log in once; check the app answers as it should; the scope templates."""
    if variant.role == "bare":
        cookie = _stand_in_cookie()
    else:
        status, cookies, _ = await asgi_request(app, "/login", None)
        if status != 200 or not cookies:
            raise RuntimeError(f"{variant.name}: GET /login answered {status} without a cookie")
        cookie = _cookie_pair(cookies[0])
    expect = b"anonymous" if variant.role == "bare" else USER.encode()
    for path_cookie, wanted in ((cookie, expect), (None, b"anonymous"), (OTHER_COOKIES, b"anonymous")):
        status, _, body = await asgi_request(app, "/whoami", path_cookie)
        if status != 200 or body != wanted:
            raise RuntimeError(f"{variant.name}: /whoami answered {status} {body!r}, expected {wanted!r}")
    return {
        "auth": asgi_scope("/whoami", cookie),
        "anon": asgi_scope("/whoami", None),
        "other": asgi_scope("/whoami", OTHER_COOKIES),
        **{watched: asgi_scope("/whoami", cookie, agent) for watched, agent in WATCHED.items()},
    }


async def run_asgi(
    variants: Sequence[Variant], redis_url: str | None, counter: redis.Redis | None, settings: Settings
) -> KindResult:
    """Measure the ASGI variants on one event loop."""
    apps = {v.name: v.build(redis_url) for v in variants}
    templates = {v.name: await _asgi_prepare(v, apps[v.name]) for v in variants}
    results = {v.name: VariantResult(v) for v in variants}
    for v in variants:  # warm-up: imports, connection pools, script caches
        for scenario in SCENARIOS:
            await _asgi_timed(apps[v.name], templates[v.name][scenario], settings.warmup)
        await _asgi_concurrent(apps[v.name], templates[v.name]["auth"], 2)
    for r in range(settings.rounds):
        for v in _rotated(variants, r):
            for scenario in SCENARIOS:
                gc.collect()
                wall, cpu = await _asgi_timed(
                    apps[v.name], templates[v.name][scenario], settings.requests, CHUNKS)
                results[v.name].series[scenario].wall.append(wall)
                results[v.name].series[scenario].cpu.append(cpu)
            gc.collect()
            wall, cpu = await _asgi_concurrent(apps[v.name], templates[v.name]["auth"], settings.batches)
            results[v.name].series["concurrent"].wall.append(wall)
            results[v.name].series["concurrent"].cpu.append(cpu)
            if v.role == "sessionguard":
                wrapped, inner = unwrapped("asgi", apps[v.name])
                for scenario, own in OWN.items():
                    gc.collect()
                    wall, cpu = await _asgi_own(wrapped, inner, templates[v.name][scenario],
                                                settings.requests)
                    results[v.name].series[own].wall.append(wall)
                    results[v.name].series[own].cpu.append(cpu)
                app, auth = apps[v.name], templates[v.name]["auth"]
                for watched in WATCHED:
                    gc.collect()
                    wall, cpu = await _asgi_paired(app, templates[v.name][watched], app, auth,
                                                   settings.requests)
                    results[v.name].series[watched].wall.append(wall)
                    results[v.name].series[watched].cpu.append(cpu)
        _progress(f"asgi round {r + 1}/{settings.rounds}")
    if counter is not None:
        trips = RoundTrips()
        with trips.installed():
            for v in variants:
                for scenario in SCENARIOS:
                    n = settings.count_requests
                    before, trips_before = commandstats(counter), trips.count
                    await _asgi_timed(apps[v.name], templates[v.name][scenario], n)
                    trips_after, after = trips.count, commandstats(counter)
                    results[v.name].counts[scenario] = _counts(before, after, trips_after - trips_before, n)
        for v in variants:
            n, usec = settings.server_requests, command_usec(counter)
            await _asgi_timed(apps[v.name], templates[v.name]["auth"], n)
            _server(results[v.name], usec, command_usec(counter), n)
    return KindResult("asgi", results)


# --------------------------------------------------------------------------
# WSGI
# --------------------------------------------------------------------------


def wsgi_environ(path: str, cookie: str | None, **headers: str) -> dict[str, Any]:
    """A GET environ with the keys gunicorn's sync worker gives such a request
    (26 with no cookie); ``headers`` are extra ``HTTP_*`` keys
    (``HTTP_X_SESSION_PASSIVE="1"``)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "RAW_URI": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_SOFTWARE": "gunicorn", "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000", "HTTP_HOST": "bench.local", "HTTP_USER_AGENT": USER_AGENT,
        "HTTP_ACCEPT": "*/*", "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.file_wrapper": None, "wsgi.input_terminated": True,
        "wsgi.early_hints": None, "gunicorn.socket": None,
    }  # fmt: skip
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    environ.update(headers)
    return environ


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_request(app: Any, path: str, cookie: str | None, **headers: str) -> tuple[int, list[str], bytes]:
    """One checked request: status, ``Set-Cookie`` values and body."""
    out: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        out["status"] = int(status.split()[0])
        out["cookies"] = [v for k, v in headers if k.lower() == "set-cookie"]

    body_iter = app(wsgi_environ(path, cookie, **headers), start_response)
    try:
        body = b"".join(body_iter)
    finally:
        close = getattr(body_iter, "close", None)
        if close is not None:
            close()
    return out["status"], out["cookies"], body


def _wsgi_timed(app: Any, template: dict[str, Any], n: int, chunks: int = 1) -> tuple[float, float]:
    """As :func:`_asgi_timed`, for a WSGI app (the body is consumed and closed)."""
    start_response, copy = _start_response, template.copy
    size = max(1, n // chunks)
    walls, cpus = [], []
    for _ in range(chunks):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(size):
            body = app(copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        walls.append((time.perf_counter_ns() - wall) / size / 1000)
        cpus.append((time.process_time_ns() - cpu) / size / 1000)
    return statistics.median(walls), statistics.median(cpus)


def _wsgi_own(wrapped: Any, inner: Any, template: dict[str, Any], n: int) -> tuple[float, float]:
    """As :func:`_asgi_own`, for a WSGI app."""
    return _wsgi_paired(wrapped, template, inner, template, n)


def _wsgi_paired(app_a: Any, template_a: dict[str, Any], app_b: Any, template_b: dict[str, Any],
                 n: int) -> tuple[float, float]:
    """As :func:`_asgi_paired`, for WSGI apps."""
    start_response = _start_response
    clock, cpu = time.perf_counter_ns, time.process_time_ns

    def one(app: Any, template: dict[str, Any]) -> tuple[int, int]:
        environ = template.copy()
        wall, used = clock(), cpu()
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return clock() - wall, cpu() - used

    pairs = []
    for i in range(n):
        if i & 1:
            a, b = one(app_a, template_a), one(app_b, template_b)
        else:
            b, a = one(app_b, template_b), one(app_a, template_a)
        pairs.append((a[0] - b[0], a[1] - b[1]))
    return _pair_medians(pairs)


def _wsgi_prepare(variant: Variant, app: Any) -> dict[str, dict[str, Any]]:
    if variant.role == "bare":
        cookie = _stand_in_cookie()
    else:
        status, cookies, _ = wsgi_request(app, "/login", None)
        if status != 200 or not cookies:
            raise RuntimeError(f"{variant.name}: GET /login answered {status} without a cookie")
        cookie = _cookie_pair(cookies[0])
    expect = b"anonymous" if variant.role == "bare" else USER.encode()
    for path_cookie, wanted in ((cookie, expect), (None, b"anonymous"), (OTHER_COOKIES, b"anonymous")):
        status, _, body = wsgi_request(app, "/whoami", path_cookie)
        if status != 200 or body != wanted:
            raise RuntimeError(f"{variant.name}: /whoami answered {status} {body!r}, expected {wanted!r}")
    return {
        "auth": wsgi_environ("/whoami", cookie),
        "anon": wsgi_environ("/whoami", None),
        "other": wsgi_environ("/whoami", OTHER_COOKIES),
        **{watched: wsgi_environ("/whoami", cookie, HTTP_USER_AGENT=agent)
           for watched, agent in WATCHED.items()},
    }


def run_wsgi(
    variants: Sequence[Variant], redis_url: str | None, counter: redis.Redis | None, settings: Settings
) -> KindResult:
    """Measure the WSGI variants."""
    apps = {v.name: v.build(redis_url) for v in variants}
    templates = {v.name: _wsgi_prepare(v, apps[v.name]) for v in variants}
    results = {v.name: VariantResult(v) for v in variants}
    for v in variants:
        for scenario in SCENARIOS:
            _wsgi_timed(apps[v.name], templates[v.name][scenario], settings.warmup)
    for r in range(settings.rounds):
        for v in _rotated(variants, r):
            for scenario in SCENARIOS:
                gc.collect()
                wall, cpu = _wsgi_timed(apps[v.name], templates[v.name][scenario], settings.requests, CHUNKS)
                results[v.name].series[scenario].wall.append(wall)
                results[v.name].series[scenario].cpu.append(cpu)
            if v.role == "sessionguard":
                wrapped, inner = unwrapped("wsgi", apps[v.name])
                for scenario, own in OWN.items():
                    gc.collect()
                    template = templates[v.name][scenario]
                    wall, cpu = _wsgi_own(wrapped, inner, template, settings.requests)
                    results[v.name].series[own].wall.append(wall)
                    results[v.name].series[own].cpu.append(cpu)
                app, auth = apps[v.name], templates[v.name]["auth"]
                for watched in WATCHED:
                    gc.collect()
                    wall, cpu = _wsgi_paired(app, templates[v.name][watched], app, auth, settings.requests)
                    results[v.name].series[watched].wall.append(wall)
                    results[v.name].series[watched].cpu.append(cpu)
        _progress(f"wsgi round {r + 1}/{settings.rounds}")
    if counter is not None:
        trips = RoundTrips()
        with trips.installed():
            for v in variants:
                for scenario in SCENARIOS:
                    n = settings.count_requests
                    before, trips_before = commandstats(counter), trips.count
                    _wsgi_timed(apps[v.name], templates[v.name][scenario], n)
                    trips_after, after = trips.count, commandstats(counter)
                    results[v.name].counts[scenario] = _counts(before, after, trips_after - trips_before, n)
        for v in variants:
            n, usec = settings.server_requests, command_usec(counter)
            _wsgi_timed(apps[v.name], templates[v.name]["auth"], n)
            _server(results[v.name], usec, command_usec(counter), n)
    return KindResult("wsgi", results)


# --------------------------------------------------------------------------


def _counts(before: dict[str, int], after: dict[str, int], trips: int, n: int) -> Counts:
    delta = stats_delta(before, after)
    return Counts(
        commands=sum(delta.values()) / n,
        round_trips=trips / n,
        mix={name: calls / n for name, calls in sorted(delta.items())},
    )


def _server(result: VariantResult, before: dict[str, int], after: dict[str, int], n: int) -> None:
    counts = result.counts.setdefault("auth", Counts())
    counts.script_us, counts.server_us = server_cost(before, after, n)


def _rotated(variants: Sequence[Variant], r: int) -> list[Variant]:
    k = r % len(variants)
    return [*variants[k:], *variants[:k]]


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)
