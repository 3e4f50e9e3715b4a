"""Sentinel failovers under load, with real servers: one primary, one replica
and three sentinels on loopback (:mod:`redis_sentinels`).

A planned ``SENTINEL FAILOVER`` and a killed primary, each while clients log
in, use and log out sessions through an ASGI and a WSGI app of one guard
("process A"), and while another guard ("process B", its own connections and
watch) revokes a session whose use A keeps probing:

- no ``500``: every answer is ``200``, ``401`` or ``503``;
- 0 false-success logouts: a logout that answered ``200`` stays ended;
- 0 lost logins: a login that answered ``200`` is still valid;
- the revocation is honoured by A within 1 s of the switch, and for good.

Verified after the switch through a third guard that connects afresh.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import SECRET
from fault_load import BASE_URL, Answer, Load, statuses_of, wired_app
from redis_sentinels import SentinelGroup
from sessionguard import Config, SessionGuard, StoreUnavailable
from sessionguard.policy import Policy
from sessionguard.stores.redis import failover, open_redis_stores
from sessionguard.stores.redis.calls import DURABLE

pytestmark = pytest.mark.redis

#: The longest a step may take here (a failover takes about 1 s, a demotion about 10 s).
DEADLINE = 30.0


class Probe:
    """Uses ``token`` (passive) through ``app`` every few milliseconds, in a
    thread, recording ``(monotonic time, status)``."""

    def __init__(self, app: Any, token: str) -> None:
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        headers = {"Authorization": f"Bearer {token}", "X-Session-Passive": "1"}
        self._client = httpx.Client(transport=httpx.WSGITransport(app=app, raise_app_exceptions=False),
                                    base_url=BASE_URL, headers=headers)
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            status = self._client.get("/me").status_code
            self.seen.append((time.monotonic(), status))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(10)
        self._client.close()
        return self.seen


def honoured_at(seen: list[tuple[float, int]]) -> float | None:
    """When the probe saw ``401`` for good (only ``401`` or ``503`` after)."""
    moment = None
    for when, status in seen:
        if status == 200:
            moment = None
        elif status == 401 and moment is None:
            moment = when
    return moment


class Revoker:
    """Process B revokes ``user``'s sessions from a thread, again after each
    ``503`` (its first call may meet the old primary, or none) until one is
    confirmed or :meth:`stop`; ``answers`` are its ``200`` and ``503``."""

    def __init__(self, guard: SessionGuard, user: str) -> None:
        self.started = time.monotonic()
        self.answers: list[int] = []
        self._guard, self._user = guard, user
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        deadline = self.started + DEADLINE
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self._guard.store.end_user(self._user, "revoked")
            except StoreUnavailable:
                self.answers.append(503)
                self._stop.wait(0.02)
            else:
                self.answers.append(200)
                return

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(DEADLINE)
        return self.answers


def _window(answers: list[Answer], kinds: set[str], origin: float) -> str:
    """When the ``503`` answers to ``kinds`` began and ended, from ``origin``."""
    spans = [(a.began - origin, a.ended - origin) for a in answers if a.kind in kinds and a.status == 503]
    return "none" if not spans else f"{min(b for b, _ in spans):+.2f}..{max(e for _, e in spans):+.2f} s"


def _guard(url: str, prefix: str) -> SessionGuard:
    return SessionGuard(Config(secret_key=SECRET, store_url=url, key_prefix=prefix))


@pytest.mark.parametrize("fault", ["planned", "killed", "planned-unheard"])
def test_a_failover_under_load_loses_nothing_and_undoes_nothing(
        fault: str, sentinel_group: Callable[..., SentinelGroup], monkeypatch: pytest.MonkeyPatch) -> None:
    if fault == "planned-unheard":  # the processes miss +switch-master: they only ask the sentinels
        monkeypatch.setattr(failover, "SWITCH", "+nothing-here")
    group = sentinel_group()
    prefix = f"sgt-{secrets.token_hex(4)}"
    a, b = _guard(group.url, prefix), _guard(group.url, prefix)
    asgi_app, wsgi_app = wired_app("starlette", a), wired_app("flask-wsgi", a)
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi_app), base_url=BASE_URL) as client:
        token = client.post("/login", json={"user": "victim"}).json()["token"]
    loads = [Load(asgi_app, True, workers=4, user="asgi").start(),
             Load(wsgi_app, False, workers=2, user="wsgi").start()]
    probe = Probe(wsgi_app, token)
    revoker: Revoker | None = None
    try:
        time.sleep(0.3)
        old = group.primary()
        with group.events("+switch-master", "+failover-state-wait-promotion") as events:
            if fault.startswith("planned"):
                group.failover()
                # the replica is told to lead: from here two nodes may take writes
                events.wait("+failover-state-wait-promotion", DEADLINE)
            else:
                old.kill()
            revoker = Revoker(b, "victim")
            switched, _ = events.wait("+switch-master", DEADLINE)
        time.sleep(1.5)  # the load goes on after the switch
    finally:
        records = [load.stop() for load in loads]
        seen = probe.stop()
        revoked = [] if revoker is None else revoker.stop()
    c = _guard(group.url, prefix)  # a process that starts after the switch
    answers = [answer for record in records for answer in record.answers]
    kept = [token for record in records for token in record.kept()]
    ended = [token for record in records for token in record.ended()]
    now = statuses_of(wired_app("flask-wsgi", c), False, kept + ended)
    for guard in (a, b, c):
        guard.store.close()
    honoured = honoured_at(seen)
    assert revoker is not None and honoured is not None, (revoked, seen[-5:])
    lag = honoured - max(switched, revoker.started)
    print(f"\n{fault}: {len(answers)} answers, {len(kept)} sessions kept, {len(ended)} logouts;"
          f" revocation honoured by A {lag:+.3f} s after the switch; B: {revoked.count(503)} x 503"
          f" then {revoked[-1:]}; 503s relative to the switch: checks {_window(answers, {'me'}, switched)},"
          f" logins and logouts {_window(answers, {'login', 'logout'}, switched)}")
    assert {answer.status for answer in answers} <= {200, 401, 503}
    assert [t for t in ended if now[t] != 401] == [], "logouts answered 200 and undone"
    assert [t for t in kept if now[t] != 200] == [], "logins answered 200 and lost"
    assert lag <= 1.0


def test_a_write_no_replica_confirms_answers_503_and_checks_go_on(
        sentinel_group: Callable[..., SentinelGroup], caplog: pytest.LogCaptureFixture) -> None:
    group = sentinel_group()
    prefix = f"sgt-{secrets.token_hex(4)}"
    guard = _guard(group.url, prefix)
    replica = next(node for node in group.nodes if node is not group.primary())
    with httpx.Client(transport=httpx.WSGITransport(app=wired_app("flask-wsgi", guard)),
                      base_url=BASE_URL) as client:
        def send(method: str, path: str, token: str | None = None, **options: Any) -> httpx.Response:
            client.cookies.clear()
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            return client.request(method, path, headers=headers, **options)

        ada, cy = (send("POST", "/login", json={"user": u}).json()["token"] for u in ("ada", "cy"))
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGSTOP)  # still connected, but it acknowledges nothing
        try:
            during = [send("POST", "/login", json={"user": "bob"}), send("POST", "/logout", ada),
                      send("GET", "/me", cy)]
            # a process starting now reads the shared state (a read, which waits for nothing)
            fresh = _guard(group.url, prefix)
            with httpx.Client(transport=httpx.WSGITransport(app=wired_app("flask-wsgi", fresh)),
                              base_url=BASE_URL) as other:
                during.append(other.get("/me", headers={"Authorization": f"Bearer {cy}"}))
            fresh.store.close()
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        after = [send("GET", "/me", ada), send("POST", "/logout", cy)]
    guard.store.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "sessionguard"]
    # a login and a logout no replica confirmed: 503; checks meanwhile: answered
    assert [r.status_code for r in during] == [503, 503, 200, 200]
    assert during[0].headers["retry-after"]
    # the unconfirmed logout took effect on the primary all the same; writes are confirmed again
    assert [r.status_code for r in after] == [401, 200]
    # logged once (not once per write, though checks succeeded in between), and its end
    assert [line.split(":")[1] for line in lines if "replica" in line] == [
        " no Redis replica confirmed a write within 100 ms", " a Redis replica confirms writes again"]


def test_which_writes_wait_for_a_replica() -> None:
    config = Config(secret_key=SECRET, store_url="redis+sentinel://127.0.0.1:1/main")
    ops = open_redis_stores(config, Policy.from_config(config))[0]._ops
    state = {change: ops._state_call(change).durable for change in ("read", "epoch", "policy")}
    assert state == {"read": False, "epoch": True, "policy": True}
    # what a request's check writes (a touch, an ending) never waits: losing it ends a session early at most
    assert {"create", "end", "end_user"} <= DURABLE and not DURABLE & {"check", "touch"}
