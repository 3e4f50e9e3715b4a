"""sessionguard benchmarks against the libraries users would otherwise pick.

Run (from the repository root)::

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/run.py            # in-process + idle touch + profile
    .venv/bin/python benchmarks/run.py --quick    # the same, fewer rounds (≈1 min)
    .venv/bin/python benchmarks/run.py --http     # + uvicorn / gunicorn under wrk
    .venv/bin/python benchmarks/run.py --scale    # + 1,000,000 sessions in Redis
    .venv/bin/python benchmarks/run.py --all      # everything

Every run starts its own private ``redis-server`` on a free loopback port
(``--save "" --appendonly no``) and stops it at the end; nothing else is
contacted. The report is printed as markdown and saved to
``benchmarks/results/latest.md`` (git-ignored); the profile's full output
goes next to it.

Sections (each module's docstring says exactly what it measures):

- **in-process** (``inprocess.py``, tables explained in ``report.py``): µs per
  authenticated request, added µs over the bare app of the same kind, paired
  ratios against each peer, CPU µs, Redis commands and round trips per request;
  requests without a token; 64 concurrent ASGI requests on one event loop.
- **hijack signals** (``hijack.py``, in the in-process run): what the
  ``ON_ANOMALY`` check adds to an authenticated request.
- **instructions** (``instructions.py``): instructions per request without
  a token, counted by callgrind (needs ``valgrind``): exact where the timings
  of a shared machine are not.
- **idle touch** (``idle_touch.py``): write commands per session at one request
  per second for 10 minutes of fake time, with a 30-minute idle timeout.
- **profile** (``hotspots.py``): where sessionguard's own time goes.
- **HTTP** (``http_load.py``, ``--http``): uvicorn and gunicorn under ``wrk``.
- **scale** (``scale.py``, ``--scale``): memory per session, admin listing
  pages, sign-out of everyone and a login at the limit with 1,000,000 sessions.
- **dbsc** (``dbsc.py``, ``--all`` or ``--only dbsc``): a request on a
  device-bound session against one on an unbound session, and one refresh.
- **cost** (``redis_cost.py``, ``--all`` or ``--only cost``): the Redis server
  time of each store operation at 1, 100 and 1,000 sessions per user.

The sessionguard variants run on both ``memory://`` and a Redis store; while
``sessionguard.stores.redis`` is not importable, the Redis variants are skipped
and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from common import HERE, RedisServer, fmt, machine_line, sessionguard_redis_available
from hijack import hijack_table
from inprocess import QUICK, Settings, run_asgi, run_wsgi
from report import (
    KIND_TITLE,
    Target,
    anonymous_table,
    authenticated_table,
    concurrent_table,
    targets,
    targets_table,
)
from variants import VARIANTS, Variant

RESULTS = HERE / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument("--http", action="store_true", help="also run uvicorn/gunicorn under wrk")
    parser.add_argument("--scale", action="store_true", help="also run the 1,000,000-session scale test")
    parser.add_argument("--all", action="store_true", help="every section")
    parser.add_argument("--only", choices=["inprocess", "instructions", "idle", "profile", "http", "scale",
                                           "dbsc", "cost"],
                        action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions for --scale")
    parser.add_argument("--rounds", type=int, help="in-process rounds (default 7, quick 3)")
    parser.add_argument("--requests", type=int, help="in-process requests per variant and round")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args(argv)

    sections = set(args.only or ["inprocess", "instructions", "idle", "profile"])
    if not args.only and (args.http or args.all):
        sections.add("http")
    if not args.only and (args.scale or args.all):
        sections.add("scale")
    if not args.only and args.all:
        sections.add("dbsc")
        sections.add("cost")
    settings = QUICK if args.quick else Settings()
    if args.rounds or args.requests:
        settings = dataclasses.replace(settings, rounds=args.rounds or settings.rounds,
                                       requests=args.requests or settings.requests)
    load_before = os.getloadavg()[0]
    missing = sessionguard_redis_available()

    started = time.monotonic()
    parts: list[str] = []
    found: list[Target] = []
    notes: list[str] = []
    if missing:
        notes.append(f"sessionguard Redis variants skipped: {missing}.")

    with RedisServer() as server:
        sg_redis = missing is None
        runs: dict[str, Callable[[], Section]] = {
            "inprocess": lambda: _inprocess(server, settings, sg_redis),
            "instructions": lambda: _instructions(args.quick),
            "idle": lambda: _idle(server, sg_redis),
            "profile": lambda: _profile(server, sg_redis, args.quick),
            "http": lambda: _http(server, sg_redis, args.quick),
            "scale": lambda: _scale(args.sessions, sg_redis),
            "dbsc": lambda: _dbsc(server, sg_redis, args.quick),
            "cost": lambda: _cost(args.quick, sg_redis),
        }
        for name, run in runs.items():
            if name not in sections:
                continue
            try:
                section_parts, section_targets = run()
            except Exception as exc:  # one broken section must not lose the others' results
                traceback.print_exc()
                notes.append(f"section `{name}` failed: {type(exc).__name__}: {exc}")
                continue
            parts += section_parts
            found += section_targets

    given = sys.argv[1:] if argv is None else argv
    load_after = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if max(load_before, load_after) > cores / 2:
        notes.append(f"the machine was busy (1-minute load average {load_before:.1f} at the start, "
                     f"{load_after:.1f} at the end, {cores} cores): other processes shared the CPUs, so "
                     "wall times are noisier than CPU times; prefer the CPU columns and the paired ratios.")
    header = [
        f"## sessionguard benchmarks ({'quick' if args.quick else 'full'} run, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s)",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Command: `{' '.join(['.venv/bin/python benchmarks/run.py', *given])}`",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    body = "\n".join(header) + "\n" + (targets_table(found).markdown() + "\n" if found else "")
    body += "\n".join(parts)
    print(body)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(body)
    print(f"(saved to {args.output})", file=sys.stderr)
    return 0


Section = tuple[list[str], list[Target]]


def _inprocess(server: RedisServer, settings: Settings, sg_redis: bool) -> Section:
    def chosen(kind: str) -> list[Variant]:
        return [v for v in VARIANTS if v.kind == kind and (sg_redis or not v.sessionguard_on_redis)]

    counter = server.client()
    try:
        print("in-process asgi …", file=sys.stderr, flush=True)
        asgi = asyncio.run(run_asgi(chosen("asgi"), server.url, counter, settings))
        print("in-process wsgi …", file=sys.stderr, flush=True)
        wsgi = run_wsgi(chosen("wsgi"), server.url, counter, settings)
    finally:
        counter.close()
    tables = [authenticated_table(asgi), anonymous_table(asgi), concurrent_table(asgi),
              authenticated_table(wsgi), anonymous_table(wsgi),
              hijack_table({"asgi": asgi, "wsgi": wsgi})]  # fmt: skip
    return [t.markdown() for t in tables], targets(asgi) + targets(wsgi)


def _instructions(quick: bool) -> Section:
    from instructions import instruction_counts

    print("instructions (callgrind) …", file=sys.stderr, flush=True)
    table, estimates = instruction_counts(quick)
    found = [Target(f"{KIND_TITLE[kind]}, memory: request without a token within 2 µs of the bare app, "
                    "by instruction count",
                    "not counted" if us is None else f"≈ {fmt(us, 2, sign=True)} µs (instructions table)",
                    None if us is None else us <= 2.0)
             for kind, us in estimates]
    return [table.markdown()], found


def _idle(server: RedisServer, sg_redis: bool) -> Section:
    from idle_touch import idle_touch

    print("idle touch …", file=sys.stderr, flush=True)
    table, target = idle_touch(server, redis_store=sg_redis)
    return [table.markdown()], [target]


def _profile(server: RedisServer, sg_redis: bool, quick: bool) -> Section:
    from hotspots import profile, redis_breakdown

    print("profile …", file=sys.stderr, flush=True)
    parts = [profile(server.url if sg_redis else None, RESULTS, quick=quick)]
    if sg_redis:
        parts.append(redis_breakdown(server.url, quick=quick).markdown())
    return parts, []


def _http(server: RedisServer, sg_redis: bool, quick: bool) -> Section:
    from http_load import http_mode

    print("http …", file=sys.stderr, flush=True)
    return [http_mode(server, redis_store=sg_redis, quick=quick).markdown()], []


def _dbsc(server: RedisServer, sg_redis: bool, quick: bool) -> Section:
    from dbsc import dbsc_tables

    print("dbsc …", file=sys.stderr, flush=True)
    return [table.markdown() for table in dbsc_tables(server.url if sg_redis else None, quick=quick)], []


def _scale(sessions: int, sg_redis: bool) -> Section:
    if not sg_redis:
        raise RuntimeError("the scale test needs the sessionguard Redis store")
    from scale import scale

    print("scale …", file=sys.stderr, flush=True)
    table, found = scale(sessions)  # on a fresh private server of its own
    return [table.markdown()], found


def _cost(quick: bool, sg_redis: bool) -> Section:
    if not sg_redis:
        raise RuntimeError("the cost section needs the sessionguard Redis store")
    from redis_cost import redis_cost

    print("redis cost …", file=sys.stderr, flush=True)
    return [redis_cost(quick).markdown()], []  # on a fresh private server of its own


if __name__ == "__main__":
    sys.exit(main())
