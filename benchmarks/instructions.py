"""Instructions per request without a session token, counted by callgrind.

On a shared machine the difference of two timings of ~150 µs requests moves by
more than the few µs it is meant to show. Instruction counts do not move:
valgrind's callgrind counts the same total for the same binary, inputs and hash
seed (``PYTHONHASHSEED=0``) whatever else the machine runs.

Each count is of a child process (this file, ``--child``) that makes 300
warm-up requests and then ``N`` more, run once with ``N = 200`` and once with
``N = 1200`` (700 with ``--quick``): the difference ÷ (N − 200) is the count
per request, start-up and warm-up cancelled out. The apps are the sessionguard ``memory://`` variants
and their very own inner apps (``variants.unwrapped``), ``GET /whoami`` with no
cookie, driven as in ``inprocess.py``.

The µs column converts the added instructions at the inner app's own rate on
this machine (its µs per request, timed here without valgrind, fastest of 15
slices, ÷ its instructions per request). It is an estimate: it assumes sessionguard's
instructions cost what the framework's cost on average.

Run on its own: ``.venv/bin/python benchmarks/instructions.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import Table, fmt
from inprocess import _asgi_timed, _wsgi_timed, asgi_scope, wsgi_environ
from report import KIND_TITLE

WARMUP, FEW, MANY = 300, 200, 1200
QUICK_MANY = 700  # --quick: the counts are as exact, over fewer requests
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _apps(kind: str) -> tuple[Any, Any]:
    """(sessionguard-wrapped, the same inner app unwrapped)."""
    import variants

    build = variants.sessionguard_asgi if kind == "asgi" else variants.sessionguard_wsgi
    return variants.unwrapped(kind, build("memory://"))


def _child(kind: str, which: str, n: int) -> None:
    wrapped, inner = _apps(kind)
    app = wrapped if which == "wrapped" else inner
    if kind == "asgi":
        asyncio.run(_asgi_timed(app, asgi_scope("/whoami", None), WARMUP + n))
    else:
        _wsgi_timed(app, wsgi_environ("/whoami", None), WARMUP + n)


def _count(kind: str, which: str, n: int) -> int:
    """Instructions of one child run under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--child", kind, which, str(n)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
                          check=True, timeout=900)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total: {done.stderr[-500:]!r}")
    return int(found.group(1))


def _inner_us(kind: str) -> float:
    """The inner app's µs per request on this machine, undisturbed: the fastest
    of 15 slices of 1,000 requests. (A median let one busy spell of a shared
    machine's neighbours through: 226 µs for a Flask app the same run timed at
    121-140 µs elsewhere.)"""
    _, inner = _apps(kind)
    if kind == "asgi":
        template = asgi_scope("/whoami", None)
        asyncio.run(_asgi_timed(inner, template, 2_000))  # warm-up
        return min(asyncio.run(_asgi_timed(inner, template, 1_000))[0] for _ in range(15))
    template = wsgi_environ("/whoami", None)
    _wsgi_timed(inner, template, 1_000)  # warm-up
    return min(_wsgi_timed(inner, template, 1_000)[0] for _ in range(15))


def instruction_counts(quick: bool = False) -> tuple[Table, list[tuple[str, float | None]]]:
    """The table, and per kind the estimated added µs (``None``: not counted)."""
    many = QUICK_MANY if quick else MANY
    table = Table("Instructions per request without a token (callgrind, no cookie)",
                  ["app", "inner app instr/req", "sessionguard instr/req", "added instr/req",
                   "inner app µs/req", "added ≈ µs"])  # fmt: skip
    if shutil.which("valgrind") is None:
        table.notes.append("not counted: valgrind is not on PATH (`apt-get install valgrind`).")
        return table, [(kind, None) for kind in KIND_TITLE]
    runs = [(kind, which, n) for kind in KIND_TITLE for which in ("inner", "wrapped") for n in (FEW, many)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        totals = dict(zip(runs, pool.map(lambda run: _count(*run), runs), strict=True))
    estimates: list[tuple[str, float | None]] = []
    for kind, title in KIND_TITLE.items():
        per = {which: (totals[kind, which, many] - totals[kind, which, FEW]) / (many - FEW)
               for which in ("inner", "wrapped")}
        us = _inner_us(kind)
        extra = per["wrapped"] - per["inner"]
        estimate = extra * us / per["inner"]
        estimates.append((kind, estimate))
        table.add(title, fmt(per["inner"], 0), fmt(per["wrapped"], 0), fmt(extra, 0, sign=True),
                  fmt(us, 1), fmt(estimate, 2, sign=True))
    table.notes.append("Counts repeat exactly run to run; the µs column is the added instructions at "
                       "the inner app's own µs per instruction, an estimate (see instructions.py).")
    return table, estimates


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, which, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        _child(kind, which, n)
        return
    table, _ = instruction_counts(quick="--quick" in sys.argv)
    print(table.markdown())


if __name__ == "__main__":
    main()
