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
- **idle touch** (``idle_touch.py``): write commands per session at one request
  per second for 10 minutes of fake time, with a 30-minute idle timeout.
- **profile** (``hotspots.py``): where sessionguard's own time goes.
- **HTTP** (``http_load.py``, ``--http``): uvicorn and gunicorn under ``wrk``.
- **scale** (``scale.py``, ``--scale``): memory per session, admin listing
  pages, sign-out of everyone and a login at the limit with 1,000,000 sessions.

The sessionguard variants run on both ``memory://`` and a Redis store; while
``sessionguard.stores.redis`` is not importable, the Redis variants are skipped
and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from pathlib import Path

from common import HERE, RedisServer, machine_line, sessionguard_redis_available
from inprocess import QUICK, Settings, run_asgi, run_wsgi
from report import Target, anonymous_table, authenticated_table, concurrent_table, targets, targets_table
from variants import VARIANTS, Variant

RESULTS = HERE / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument("--http", action="store_true", help="also run uvicorn/gunicorn under wrk")
    parser.add_argument("--scale", action="store_true", help="also run the 1,000,000-session scale test")
    parser.add_argument("--all", action="store_true", help="every section")
    parser.add_argument("--only", choices=["inprocess", "idle", "profile", "http", "scale"], action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions for --scale")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args(argv)

    sections = set(args.only or ["inprocess", "idle", "profile"])
    if not args.only and (args.http or args.all):
        sections.add("http")
    if not args.only and (args.scale or args.all):
        sections.add("scale")
    settings = QUICK if args.quick else Settings()
    missing = sessionguard_redis_available()

    started = time.monotonic()
    parts: list[str] = []
    found: list[Target] = []
    notes: list[str] = []
    if missing:
        notes.append(f"sessionguard Redis variants skipped: {missing}.")

    with RedisServer() as server:
        if "inprocess" in sections:
            parts += _inprocess(server, settings, missing is None, found)
        if "idle" in sections:
            from idle_touch import idle_touch

            table, target = idle_touch(server, redis_store=missing is None)
            parts.append(table.markdown())
            found.append(target)
        if "profile" in sections:
            from hotspots import profile

            parts.append(profile(server.url if missing is None else None, RESULTS, quick=args.quick))
        if "http" in sections:
            from http_load import http_mode

            parts.append(http_mode(server, redis_store=missing is None, quick=args.quick).markdown())
    if "scale" in sections:
        if missing:
            notes.append("scale test skipped: it needs the sessionguard Redis store.")
        else:
            from scale import scale

            table, scale_targets = scale(args.sessions)
            parts.append(table.markdown())
            found += scale_targets

    header = [
        f"## sessionguard benchmarks ({'quick' if args.quick else 'full'} run, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s)",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Command: `.venv/bin/python benchmarks/run.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
        .rstrip() + "",
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


def _inprocess(server: RedisServer, settings: Settings, sg_redis: bool, found: list[Target]) -> list[str]:
    def chosen(kind: str) -> list[Variant]:
        return [v for v in VARIANTS if v.kind == kind and (sg_redis or v.name != "sessionguard-redis")]

    counter = server.client()
    try:
        print("in-process asgi …", file=sys.stderr, flush=True)
        asgi = asyncio.run(run_asgi(chosen("asgi"), server.url, counter, settings))
        print("in-process wsgi …", file=sys.stderr, flush=True)
        wsgi = run_wsgi(chosen("wsgi"), server.url, counter, settings)
    finally:
        counter.close()
    found += targets(asgi) + targets(wsgi)
    tables = [authenticated_table(asgi), anonymous_table(asgi), concurrent_table(asgi),
              authenticated_table(wsgi), anonymous_table(wsgi)]  # fmt: skip
    return [t.markdown() for t in tables]


if __name__ == "__main__":
    sys.exit(main())
