"""Redis failing under load, with real servers, through each wiring the README
shows (:mod:`fault_load`): clients log in without a cookie, use and log out
sessions while the test kills Redis and restarts it, pauses it (``CLIENT
PAUSE``) or stops it (``SIGSTOP``), and every answer is recorded.

- killed and restarted (AOF on): only ``200`` / ``401`` / ``503``, logins and
  logouts included; no ``503`` for a request begun 1 s after Redis answers
  again; every session kept (and every logout) survives the restart;
- paused or stopped: every ``503`` comes within ``STORE_TIMEOUT`` + 0.1 s;
- an error reply that says the node cannot take the write (``NOREPLICAS``,
  ``READONLY``, ``MASTERDOWN``) is a ``503``, never a success or a ``500``.

Sentinel failovers: ``test_faults_sentinel.py``; a least-privilege ACL user:
``test_faults_acl.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import SECRET
from fault_load import ASGI_WIRINGS, BASE_URL, WIRINGS, Load, statuses_of, wired_app
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard, StoreUnavailable
from sessionguard.policy import Policy
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import AsyncRedisStore, RedisStore, open_redis_stores
from sessionguard.tokens import Tokens, session_id

pytestmark = pytest.mark.redis

TOKENS = Tokens([SECRET])
TIMEOUT = 0.5  # STORE_TIMEOUT
#: How long Redis is down, paused or stopped, and how long the load goes on after.
OUTAGE = 1.0
AFTER = 1.5


def _login(app: Any, asgi: bool, users: list[str]) -> list[str]:
    """Tokens of a login for each of ``users``, each from a new client (a
    client presenting a session would end it by logging in again)."""
    tokens = []
    for user in users:
        if asgi:
            with TestClient(app, base_url=BASE_URL) as client:
                tokens.append(client.post("/login", json={"user": user}).json()["token"])
        else:
            with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE_URL) as client:
                tokens.append(client.post("/login", json={"user": user}).json()["token"])
    return tokens


@pytest.mark.parametrize("wiring", WIRINGS)
def test_redis_killed_and_restarted_under_load(wiring: str,
                                               private_redis_factory: Callable[..., RedisServer]) -> None:
    server = private_redis_factory("--appendonly", "yes")
    guard = SessionGuard(Config(secret_key=SECRET, store_url=server.url, store_timeout=TIMEOUT))
    asgi = wiring in ASGI_WIRINGS
    app = wired_app(wiring, guard)
    held = _login(app, asgi, [f"held-{i}" for i in range(4)])
    load = Load(app, asgi, workers=3).start()
    try:
        time.sleep(0.3)
        server.kill()  # SIGKILL
        time.sleep(OUTAGE)
        server.start()  # the same port and directory: the append-only file is read back
        answering = time.monotonic()
        time.sleep(AFTER)
    finally:
        record = load.stop()
    kept, ended = record.kept(), record.ended()
    now = statuses_of(app, asgi, held + kept + ended)
    guard.store.close()
    late = [a for a in record.answers if a.status == 503 and a.began > answering + 1.0]
    back = min((a.ended for a in record.answers if a.status == 200 and a.began > answering), default=None)
    last = max((a.ended for a in record.answers if a.status == 503), default=answering)
    print(f"\n{wiring}: {len(record.answers)} answers, {len(record.of('login', 503))} logins and"
          f" {len(record.of('logout', 503))} logouts answered 503; {len(kept)} kept, {len(ended)} ended;"
          f" after Redis answered: first 200 at {(back or answering) - answering:+.3f} s,"
          f" last 503 at {last - answering:+.3f} s")
    assert record.of("login", 503), "no login met the outage"
    assert record.statuses() <= {200, 401, 503}
    assert late == [], "still 503 a second after Redis answered again"
    assert [t for t in held + kept if now[t] != 200] == [], "sessions lost by the restart"
    assert [t for t in ended if now[t] != 401] == [], "logouts undone by the restart"


@contextlib.contextmanager
def _hung(server: RedisServer, fault: str) -> Iterator[None]:
    """Redis hangs for :data:`OUTAGE`: ``CLIENT PAUSE ... ALL`` or ``SIGSTOP``."""
    if fault == "pause":
        server.pause(int(OUTAGE * 1000))
        yield
        return
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("fault", ["pause", "sigstop"])
@pytest.mark.parametrize("wiring", ["starlette", "flask-wsgi"])
def test_a_hung_redis_gets_every_request_its_503_in_time(
        wiring: str, fault: str, private_redis: RedisServer) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, store_url=private_redis.url, store_timeout=TIMEOUT))
    asgi = wiring in ASGI_WIRINGS
    load = Load(wired_app(wiring, guard), asgi, workers=8).start()
    try:
        time.sleep(0.3)
        with _hung(private_redis, fault):
            time.sleep(OUTAGE)
        time.sleep(0.5)
    finally:
        record = load.stop()
    guard.store.close()
    unavailable = [a for a in record.answers if a.status == 503]
    slowest = max((a.took for a in unavailable), default=0.0)
    print(f"\n{wiring} {fault}: {len(unavailable)} x 503, the slowest in {slowest:.3f} s")
    assert unavailable, "no request met the hang"
    assert record.statuses() <= {200, 401, 503}
    assert [(a.kind, round(a.took, 3)) for a in unavailable if a.took > TIMEOUT + 0.1] == []


# -- a node that cannot take the write ------------------------------------------------------


def _stores(url: str) -> tuple[RedisStore, AsyncRedisStore]:
    config = Config(secret_key=SECRET, store_url=url)
    return open_redis_stores(config, Policy.from_config(config))


def _new(store: RedisStore, user: str = "ada") -> NewSession:
    """A login of ``user`` (its id carries the store's slot tag of the user)."""
    return NewSession(id=session_id(TOKENS.new_sid(store.slot_tag(user))), user_id=user, platform="web")


@pytest.mark.parametrize("refusal", ["NOREPLICAS", "READONLY", "MASTERDOWN"])
def test_a_node_that_refuses_is_unavailable_never_a_success(
        refusal: str, private_redis_factory: Callable[..., RedisServer],
        caplog: pytest.LogCaptureFixture) -> None:
    primary = private_redis_factory("--repl-diskless-sync-delay", "0")  # a replica syncs at once
    before = _stores(primary.url)[0]
    record = before.create(_new(before)).record  # a session written while all was well
    before.close()
    if refusal == "NOREPLICAS":  # a primary that must not write without a replica
        node = primary
        primary.command("CONFIG", "SET", "min-replicas-to-write", "1")
    else:  # a replica (READONLY); one whose primary is gone and serves no stale data (MASTERDOWN)
        node = private_redis_factory("--replicaof", primary.host, str(primary.port),
                                     "--replica-serve-stale-data", "no")
        _wait_linked(node)
        if refusal == "MASTERDOWN":
            primary.stop()
    sync, async_ = _stores(node.url)
    try:
        for call in (lambda: sync.create(_new(before)), lambda: sync.end(record.id, "signed_out"),
                     lambda: asyncio.run(async_.create(_new(before)))):
            with pytest.raises(StoreUnavailable):
                call()
        if refusal == "MASTERDOWN":  # no read either
            with pytest.raises(StoreUnavailable):
                sync.check(record.id, passive=True)
    finally:
        sync.close()
    # the log says what Redis answered (redis-py keeps the text of READONLY and MASTERDOWN only)
    said = {"READONLY": "read only replica", "MASTERDOWN": "Link with MASTER is down"}.get(refusal, refusal)
    assert said in caplog.text


def _wait_linked(replica: RedisServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with replica.client(socket_timeout=1) as client:
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not link"
            time.sleep(0.02)
