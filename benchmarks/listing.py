"""The admin listing at scale: 1,000,000 sessions in a private Redis, measured
through the admin sub-app itself (request parsing, authentication, the
handler's store steps, JSON), on both shells.

Run by hand (not by pytest)::

    .venv/bin/python benchmarks/listing.py                    # 1,000,000 sessions
    .venv/bin/python benchmarks/listing.py --sessions 50000   # a quick look

It starts its own ``redis-server`` (free port, ``--save "" --appendonly no``),
loads the sessions through the store's own ``create`` script, pipelined
1,000 at a time (:class:`Loader`: exactly the keys a real login writes; the
arguments come from the store's I/O-free ``Operations.create``), then times,
as the median of several calls with the admin token:

- ``GET api/sessions`` first page (50), through WSGI and ASGI;
- a middle page: the cursor of the index entry at rank n/2, signed as the
  previous page would have handed it out;
- the first page filtered by platform, and by one user;
- ``POST api/signout-all`` (constant time), and the first page after it
  (the index still holds the ended sessions, which the listing skips).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from common import USER_AGENT, RedisServer
from werkzeug.test import EnvironBuilder

from sessionguard import Config, SessionGuard
from sessionguard.admin.routing import Admin
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis.keys import Keys
from sessionguard.stores.redis.records import idx_position
from sessionguard.stores.redis.scripts import library
from sessionguard.tokens import session_id

TOKEN = "bench-admin-token-" + "x" * 32
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
API = "/_sessionguard/api"
RUNS = 15
BATCH = 1000
WARMUP = 3


class Loader:
    """Creates sessions through the store's ``create`` function, pipelined: users
    of two sessions (web and mobile), a 120-byte user agent and metadata."""

    def __init__(self, guard: SessionGuard, client: Any) -> None:
        self.guard, self.client = guard, client
        self.ops = guard.store._ops  # type: ignore[attr-defined]  # the store's I/O-free operations
        self.library = library()
        client.function_load(self.library.source, replace=True)

    def _fcall(self, request: Any) -> Any:
        name = self.library.names[request.name]
        return self.client.execute_command("FCALL", name, len(request.keys), *request.keys, *request.args)

    def _script(self, new: NewSession) -> Any:
        """Drive the create operation up to its function call (answering a state re-read)."""
        op = self.ops.users.create(new, None)
        request = op.send(None)
        while getattr(request, "name", None) != "create":
            if hasattr(request, "name"):  # the state function
                reply = self._fcall(request)
            else:
                reply = [self.client.execute_command(*c) for c in request.commands]
            request = op.send(reply)
        op.close()
        return request

    def load(self, count: int) -> float:
        """Create ``count`` sessions; sessions per second."""
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            pipe = self.client.pipeline(transaction=False)
            for i in range(first, min(count, first + BATCH)):
                user = f"user{i // 2:07d}"
                new = NewSession(
                    id=session_id(self.guard.tokens.new_sid(self.guard.store.slot_tag(user))), user_id=user,
                    platform=("web", "mobile")[i % 2], ip=f"10.0.{i >> 8 & 255}.{i & 255}",
                    user_agent=USER_AGENT, device="Edge 131 on Linux",
                    metadata={"name": f"User {i // 2}", "roles": ["staff"]},
                )
                request = self._script(new)
                name = self.library.names[request.name]
                pipe.execute_command("FCALL", name, len(request.keys), *request.keys, *request.args)
            if any(reply[0] != 1 for reply in pipe.execute()):
                raise RuntimeError("the create function refused a session while loading")
            if first % 100_000 == 0 and first:
                print(f"  … {first:,} sessions loaded", file=sys.stderr, flush=True)
        return count / (time.perf_counter() - started)


def _wsgi_call(app: Any, method: str, url: str, body: bytes = b"") -> tuple[int, bytes]:
    environ = EnvironBuilder(method=method, path=url, headers=HEADERS, data=body,
                             content_type="application/json").get_environ()
    status: list[str] = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)


def _asgi_call(app: Any, method: str, url: str, body: bytes = b"") -> tuple[int, bytes]:
    path, _, query = url.partition("?")
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "root_path": "", "headers": [(b"authorization", HEADERS["Authorization"].encode())],
             "client": ("127.0.0.1", 1), "server": ("bench", 80), "scheme": "http",
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.get_event_loop().run_until_complete(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _median_ms(
    fn: Callable[[], tuple[int, bytes]], runs: int = RUNS, warmup: int = WARMUP
) -> tuple[float, float, bytes]:
    """Median and fastest wall milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times, body = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        status, body = fn()
        times.append((time.perf_counter() - start) * 1000)
        if status >= 400:
            raise RuntimeError(f"the admin API answered {status}: {body[:200]!r}")
    return statistics.median(times), min(times), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    count = parser.parse_args().sessions
    asyncio.set_event_loop(asyncio.new_event_loop())
    with RedisServer() as server:
        client = server.client()
        guard = SessionGuard(Config(secret_key="k" * 40, store_url=server.url, admin_token=TOKEN,
                                    max_sessions=5, store_timeout=5))
        wsgi = guard.wsgi(lambda environ, start: [])
        asgi = guard.asgi(lambda scope, receive, send: None)  # type: ignore[arg-type,return-value]
        try:
            guard.store.now()  # connect, start the state subscriber
            print(f"loading {count:,} sessions …", file=sys.stderr, flush=True)
            rate = Loader(guard, client).load(count)
            rows: list[tuple[str, float, float, str]] = []

            def measure(label: str, method: str, url: str, note: Callable[[bytes], str]) -> None:
                for shell, call, app in (("WSGI", _wsgi_call, wsgi), ("ASGI", _asgi_call, asgi)):
                    ms, fastest, body = _median_ms(lambda: call(app, method, url))  # noqa: B023
                    rows.append((f"{label} ({shell})", ms, fastest, note(body)))

            listed = _listed
            measure("first page, 50", "GET", f"{API}/sessions?limit=50", listed)
            keys = Keys(guard.config.key_prefix)
            created, middle_id = idx_position(client.zrange(keys.idx, count // 2, count // 2)[0])
            cursor = Admin(guard, ()).signing.cursor("sessions", f"{created}.{middle_id}")
            measure(f"middle page (after rank {count // 2:,})", "GET",
                    f"{API}/sessions?limit=50&cursor={cursor}", listed)
            measure("first page, platform=mobile", "GET", f"{API}/sessions?platform=mobile", listed)
            measure("first page, user_id=user0000123", "GET", f"{API}/sessions?user_id=user0000123", listed)
            measure("audit log, first page", "GET", f"{API}/audit", lambda b: "")

            body = b'{"confirm": "SIGN OUT ALL"}'
            for shell, call, app in (("WSGI", _wsgi_call, wsgi), ("ASGI", _asgi_call, asgi)):
                ms, fastest, _ = _median_ms(lambda: call(app, "POST", f"{API}/signout-all", body))  # noqa: B023
                rows.append((f"sign out everyone ({shell})", ms, fastest, "constant time: one epoch write"))
            measure("first page after sign-out of everyone", "GET", f"{API}/sessions?limit=50", listed)
        finally:
            guard.store.close()
            client.close()

    print(f"\n### Admin listing with {count:,} sessions in one Redis\n")
    print(f"Loaded at {rate:,.0f} sessions/s (create script, pipelined). Median and fastest of {RUNS} "
          f"calls (after {WARMUP} untimed) through the admin sub-app with the admin token, in-process "
          "(no HTTP server).\n")
    print("| operation | median | fastest | note |\n|---|---:|---:|---|")
    for label, ms, fastest, note in rows:
        print(f"| {label} | {ms:.2f} ms | {fastest:.2f} ms | {note} |")


def _listed(body: bytes) -> str:
    import json

    page = json.loads(body)
    return f"{len(page['sessions'])} sessions, next cursor {'yes' if page['next_cursor'] else 'no'}"


if __name__ == "__main__":
    main()
