"""HTTP mode: each variant behind a real server on loopback, loaded by ``wrk``.

ASGI variants run under uvicorn (1 worker), WSGI variants under gunicorn
(1 sync worker: it closes the connection after every response, so every
request also pays a TCP connect — the same for every variant). Each variant
logs in once with ``GET /login``; ``wrk`` (2 threads, 32 connections, a Lua
script that sets the session cookie) then requests ``GET /whoami`` for a fixed
time after a short warm-up. Variants of one kind alternate over the rounds.

Reported: requests per second and p50/p99 latency, with their ratios to the
bare app of the same kind (req/s ratio < 1 and latency ratio > 1 mean slower).
Every server and every ``wrk`` run is bounded in time and listens on
127.0.0.1 only; the servers are stopped by their own process handles.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common import HERE, LOOPBACK, USER_AGENT, RedisServer, Table, fmt, free_port, median
from variants import USER, VARIANTS, Variant

THREADS, CONNECTIONS = 2, 32
DURATION, QUICK_DURATION, WARMUP = 5, 2, 1
ROUNDS, QUICK_ROUNDS = 2, 1
START_TIMEOUT = 20.0


@dataclass
class Server:
    variant: Variant
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    cookie: str = ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Load:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)  # ms
    p99: list[float] = field(default_factory=list)
    errors: int = 0


def _command(variant: Variant, port: int) -> list[str]:
    if variant.kind == "asgi":
        return [sys.executable, "-m", "uvicorn", "--factory", "variants:asgi_from_env",
                "--app-dir", str(HERE), "--host", LOOPBACK, "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
            "--bind", f"{LOOPBACK}:{port}", "--pythonpath", str(HERE), "--log-level", "warning",
            "variants:wsgi_from_env()"]  # fmt: skip


def _get(port: int, path: str, cookie: str | None) -> tuple[int, list[str], bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        headers = {"User-Agent": USER_AGENT} | ({"Cookie": cookie} if cookie else {})
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers.get_all("Set-Cookie") or [], response.read()
    finally:
        conn.close()


def _start(variant: Variant, redis_url: str, logdir: Path) -> Server:
    port = free_port()
    env = os.environ | {"BENCH_VARIANT": variant.name, "BENCH_REDIS_URL": redis_url}
    log = open(logdir / f"{variant.kind}-{variant.name}.log", "wb")  # noqa: SIM115 (closed by Server.stop)
    proc = subprocess.Popen(_command(variant, port), env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    server = Server(variant, port, proc, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError):
            _get(port, "/whoami", None)
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = (logdir / f"{variant.kind}-{variant.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{variant.name} did not start on port {port}:\n{tail}")
        time.sleep(0.1)
    if variant.role == "bare":
        server.cookie = "sg_session=" + "x" * 70
    else:
        status, cookies, _ = _get(port, "/login", None)
        if status != 200 or not cookies:
            raise RuntimeError(f"{variant.name}: GET /login answered {status} without a cookie")
        server.cookie = cookies[0].split(";", 1)[0]
    status, _, body = _get(port, "/whoami", server.cookie)
    expected = b"anonymous" if variant.role == "bare" else USER.encode()
    if status != 200 or body != expected:
        raise RuntimeError(f"{variant.name} over HTTP: /whoami answered {status} {body!r}")
    return server


def _wrk(server: Server, seconds: int, script_dir: Path) -> tuple[float, float, float, int]:
    script = script_dir / f"{server.variant.kind}-{server.variant.name}.lua"
    script.write_text(
        'wrk.method = "GET"\nwrk.path = "/whoami"\n'
        f'wrk.headers["Cookie"] = [[{server.cookie}]]\nwrk.headers["User-Agent"] = [[{USER_AGENT}]]\n'
    )
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "2s",
         "-s", str(script), f"http://{LOOPBACK}:{server.port}/whoami"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {m[0]: _ms(m[1], m[2]) for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, latency["50"], latency["99"], errors + (int(non2xx.group(1)) if non2xx else 0)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def http_mode(redis: RedisServer, *, redis_store: bool, quick: bool = False) -> Table:
    """Run every variant under its server and ``wrk``; the table of results."""
    if shutil.which("wrk") is None:
        table = Table("HTTP mode", ["note"])
        table.add("wrk is not installed (apt-get install -y wrk); HTTP mode skipped")
        return table
    seconds, rounds = (QUICK_DURATION, QUICK_ROUNDS) if quick else (DURATION, ROUNDS)
    # LOCAL_CACHE is measured in-process only
    chosen = [v for v in VARIANTS if v.name != "sessionguard-cached"
              and (redis_store or not v.sessionguard_on_redis)]
    loads = {(v.kind, v.name): Load() for v in chosen}
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-http-"))
    try:
        for kind in ("asgi", "wsgi"):
            servers: list[Server] = []
            try:
                for v in (v for v in chosen if v.kind == kind):
                    servers.append(_start(v, redis.url, workdir))
                for s in servers:
                    _wrk(s, WARMUP, workdir)
                for r in range(rounds):
                    for s in servers[r % len(servers):] + servers[: r % len(servers)]:
                        rps, p50, p99, errors = _wrk(s, seconds, workdir)
                        load = loads[(kind, s.variant.name)]
                        load.rps.append(rps)
                        load.p50.append(p50)
                        load.p99.append(p99)
                        load.errors += errors
                    print(f"  … http {kind} round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            finally:
                for s in servers:
                    s.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _table(chosen, loads, seconds, rounds)


def _table(chosen: list[Variant], loads: dict[tuple[str, str], Load], seconds: int, rounds: int) -> Table:
    accel = ", ".join(f"{m} {'yes' if importlib.util.find_spec(m) else 'no'}"
                      for m in ("uvloop", "httptools"))
    table = Table(
        f"HTTP on loopback: wrk -t{THREADS} -c{CONNECTIONS}, {seconds} s × {rounds} round(s) per variant",
        ["server", "variant", "req/s", "req/s ÷ bare", "p50 ms", "p50 ÷ bare", "p99 ms", "p99 ÷ bare",
         "errors"], align="llrrrrrrr",
    )  # fmt: skip
    for kind, server_name in (("asgi", "uvicorn, 1 worker"), ("wsgi", "gunicorn, 1 sync worker")):
        bare = next(loads[(kind, v.name)] for v in chosen if v.kind == kind and v.role == "bare")
        for v in (v for v in chosen if v.kind == kind):
            load = loads[(kind, v.name)]
            table.add(
                server_name, v.title, fmt(median(load.rps), 0), fmt(median(load.rps) / median(bare.rps), 2),
                fmt(median(load.p50), 2), fmt(median(load.p50) / median(bare.p50), 2),
                fmt(median(load.p99), 2), fmt(median(load.p99) / median(bare.p99), 2), load.errors,
            )
    table.notes.append(f"uvicorn accelerators: {accel} (without them uvicorn uses h11 and asyncio's loop). "
                       "wrk, the servers and Redis share the machine's cores.")
    table.notes.append("gunicorn's sync worker closes every connection, so each WSGI request includes a TCP "
                       "connect; with 32 connections queued on one worker, latency is mostly queueing.")
    return table
