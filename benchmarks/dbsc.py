"""Device-bound sessions (DBSC): what binding costs.

One WSGI guard (``DEVICE_BOUND=on``, a 1-hour cookie lifetime so that no
cookie expires during the run) on the run's private Redis, and one on
``memory://``, each wrapping a plain WSGI app that answers the user id,
called in-process with a hand-made environ (as ``inprocess.py`` does). Two
sessions of one user: one bound by a software device
(``tests/dbsc_device.py``, its own P-256 key, through the real
``dbsc/start`` endpoint), one not.

- **An ordinary request** (``GET /whoami``) with the bound session's cookie
  and with the unbound one's. In every round, slices of each alternate
  (A B A B …), so drifts of the machine hit both alike; a round's figure is
  the median of its slices, the reported one the median of the rounds, and
  the difference is paired per round. An untimed pass counts the Redis round
  trips and commands of one request of each.
- **One refresh**, as Chromium makes it: ``POST dbsc/refresh`` without a proof
  (answered ``403`` with a challenge), then with a proof signed by the
  device (``200``, a fresh cookie). Round trips, commands and µs of each step
  (the server's side: the device signs outside the timing).
- **The signature check alone**: ``jws.verify`` with the key already read, and
  reading the stored key (``jws.stored_key``), for ES256 and RS256.

Run on its own: ``.venv/bin/python benchmarks/dbsc.py [--quick]`` (starts
its own Redis), or as a section of ``benchmarks/run.py --only dbsc``.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from common import RedisServer, RoundTrips, Table, commandstats, fmt, stats_delta
from inprocess import wsgi_environ

# the software device of the protocol tests, so the benchmark signs as they do
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dbsc_device import Device, params  # noqa: E402
from sessionguard import Config, SessionGuard, jws  # noqa: E402

SECRET = "benchmark-secret-key-of-at-least-32-characters"
PREFIX = "sgdbsc"
SLICES = 10


def _app(guard: SessionGuard) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ctx = environ["sessionguard"]
        if environ["PATH_INFO"] == "/login":
            ctx.login("ada")
        body = b"anonymous" if ctx.session is None else ctx.session.user_id.encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return guard.wsgi(app)


class Browser:
    """Calls a WSGI app in-process as a browser would: keeps the cookies it is
    given and sends each to the paths it belongs to."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.jar: dict[str, tuple[str, str]] = {}  # name -> (value, path)

    def environ(self, path: str, method: str = "GET", **headers: str) -> dict[str, Any]:
        sent = "; ".join(f"{k}={v}" for k, (v, at) in self.jar.items() if path.startswith(at)) or None
        environ = wsgi_environ(path, sent, **headers)
        environ.update({"REQUEST_METHOD": method, "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO()})
        return environ

    def call(self, environ: dict[str, Any]) -> tuple[int, dict[str, list[str]], bytes]:
        out: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            out["status"], out["headers"] = int(status.split()[0]), headers

        chunks = self.app(environ, start_response)
        body = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        found: dict[str, list[str]] = {}
        for name, value in out["headers"]:
            found.setdefault(name.lower(), []).append(value)
        for cookie in found.get("set-cookie", []):
            pair, *attributes = (part.strip() for part in cookie.split(";"))
            name, _, value = pair.partition("=")
            path = next((a[5:] for a in attributes if a.startswith("Path=")), "/")
            self.jar[name] = (value, path)
        return out["status"], found, body

    def request(self, path: str, method: str = "GET",
                **headers: str) -> tuple[int, dict[str, list[str]], bytes]:
        return self.call(self.environ(path, method, **headers))


def _bind(browser: Browser, device: Device) -> str:
    """Log in and let ``device`` bind the session; its id."""
    _, headers, _ = browser.request("/login")
    offer = params(headers["secure-session-registration"][0])
    proof = device.proof(offer["challenge"], with_key=True)
    status, _, body = browser.request(offer["path"], "POST", HTTP_SECURE_SESSION_RESPONSE=proof)
    assert status == 200, body
    return str(json.loads(body)["session_identifier"])


REFRESH = "/_sessionguard/dbsc/refresh"


def _refresh_steps(browser: Browser, device: Device, session_id: str,
                   expired: bool) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
    """A refresh as Chromium makes it, in three calls: ``ask`` (``POST`` without
    a proof, answered ``403`` with a challenge), ``sign`` (the device's part,
    never timed) and ``prove`` (``POST`` with the proof, answered ``200``).
    ``expired``: the bound cookie has expired, so the browser does not send it
    (the usual refresh); else it is still valid and sent along (a proactive
    refresh, under 120 s left)."""
    challenges: list[str] = []
    proofs: list[dict[str, Any]] = []

    def ask() -> None:
        if expired:
            browser.jar.pop("sg_session", None)
        status, headers, _ = browser.request(REFRESH, "POST", HTTP_SEC_SECURE_SESSION_ID=session_id)
        assert status == 403
        challenges.append(params(headers["secure-session-challenge"][0])["challenge"])

    def sign() -> None:
        ask()
        proofs.append(browser.environ(REFRESH, "POST", HTTP_SEC_SECURE_SESSION_ID=session_id,
                                      HTTP_SECURE_SESSION_RESPONSE=device.proof(challenges.pop())))

    def prove() -> None:
        status, _, body = browser.call(proofs.pop())
        assert status == 200, body

    return ask, sign, prove


def _slice(call: Callable[[], Any], size: int) -> float:
    """µs per call over ``size`` calls in a row."""
    began = time.perf_counter_ns()
    for _ in range(size):
        call()
    return (time.perf_counter_ns() - began) / size / 1000


def _each(step: Callable[[], Any], before: Callable[[], Any], n: int) -> float:
    """Median µs of ``step`` alone over ``n`` runs, ``before`` untimed before each."""
    times = []
    for _ in range(n):
        before()
        began = time.perf_counter_ns()
        step()
        times.append((time.perf_counter_ns() - began) / 1000)
    return statistics.median(times)


def _counted(call: Callable[[], Any], counter: redis.Redis | None, n: int = 20) -> tuple[float, float]:
    """Redis round trips and commands per call of ``call`` (untimed)."""
    if counter is None:
        return 0.0, 0.0
    before = commandstats(counter)
    with RoundTrips().installed() as trips:
        for _ in range(n):
            call()
    delta = stats_delta(before, commandstats(counter))
    return trips.count / n, sum(delta.values()) / n


def measure(store_url: str, counter: redis.Redis | None, *, rounds: int, requests: int,
            refreshes: int) -> dict[str, Any]:
    """Every figure of one store: see the module's docstring."""
    config = Config(secret_key=SECRET, store_url=store_url, key_prefix=PREFIX, device_bound="on",
                    device_bound_cookie_lifetime="1h")
    guard = SessionGuard(config)
    try:
        app, device = _app(guard), Device("ES256")
        bound, plain = Browser(app), Browser(app)
        session_id = _bind(bound, device)
        plain.request("/login", HTTP_X_CLIENT_PLATFORM="mobile")  # the same user, never offered binding
        for browser in (bound, plain):
            assert browser.request("/whoami")[2] == b"ada"
        templates = {name: b.environ("/whoami") for name, b in (("bound", bound), ("unbound", plain))}
        calls = {name: _caller(app, template) for name, template in templates.items()}
        size = max(1, requests // SLICES)
        for call in calls.values():
            _slice(call, size)  # warm-up
        series: dict[str, list[float]] = {"bound": [], "unbound": [], "difference": []}
        for _ in range(rounds):
            slices: dict[str, list[float]] = {"bound": [], "unbound": []}
            for _ in range(SLICES):  # A B A B ...
                for name, values in slices.items():
                    values.append(_slice(calls[name], size))
            medians = {name: statistics.median(values) for name, values in slices.items()}
            series["bound"].append(medians["bound"])
            series["unbound"].append(medians["unbound"])
            series["difference"].append(medians["bound"] - medians["unbound"])
        result: dict[str, Any] = {name: statistics.median(values) for name, values in series.items()}
        result["counts"] = {name: _counted(call, counter) for name, call in calls.items()}
        for expired in (True, False):
            ask, sign, prove = _refresh_steps(bound, device, session_id, expired)
            result[expired] = (_each(ask, lambda: None, refreshes), _each(prove, sign, refreshes),
                               _counted(ask, counter, 10), _proof_counts(sign, prove, counter))
        return result
    finally:
        guard.close()


def _caller(app: Any, template: dict[str, Any]) -> Callable[[], None]:
    def call() -> None:
        for _ in app(template.copy(), _ignore):
            pass

    return call


def _ignore(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def _proof_counts(sign: Callable[[], None], prove: Callable[[], None],
                  counter: redis.Redis | None, n: int = 10) -> tuple[float, float]:
    """Round trips and commands of the proof step alone (each after its challenge)."""
    if counter is None:
        return 0.0, 0.0
    trips = commands = 0.0
    for _ in range(n):
        sign()
        counted = _counted(prove, counter, 1)
        trips, commands = trips + counted[0], commands + counted[1]
    return trips / n, commands / n


def signature_checks(n: int) -> dict[str, tuple[float, float]]:
    """µs of ``jws.verify`` (key read) and of ``jws.stored_key``, per algorithm."""
    out = {}
    for alg in ("ES256", "RS256"):
        device = Device(alg)
        proof = jws.read(device.proof("challenge"))
        text = jws.key_text(device.jwk())
        key = jws.stored_key(text)
        verify = statistics.median(_slice(lambda: jws.verify(proof, key), n // SLICES)  # noqa: B023
                                   for _ in range(SLICES))
        read = statistics.median(_slice(lambda: jws.stored_key(text), n // SLICES)  # noqa: B023
                                 for _ in range(SLICES))
        out[alg] = (verify, read)
    return out


def dbsc_tables(redis_url: str | None, *, quick: bool = False) -> list[Table]:
    """The section's tables (Redis when ``redis_url`` is given, and memory)."""
    rounds, requests, refreshes = (3, 1000, 50) if quick else (7, 4000, 200)
    stores: list[tuple[str, str, redis.Redis | None]] = [("memory", "memory://", None)]
    counter = None
    if redis_url is not None:
        counter = redis.Redis.from_url(redis_url)
        stores.insert(0, ("Redis", redis_url, counter))
    requests_table = Table(
        "DBSC: an ordinary request on a bound session vs an unbound one (WSGI, in-process)",
        ["store", "bound µs", "unbound µs", "bound − unbound µs (paired)", "round trips (bound / unbound)",
         "Redis commands (bound / unbound)"])
    refresh_table = Table(
        "DBSC: one refresh (WSGI, in-process, server side)",
        ["store", "step", "µs", "round trips", "Redis commands"])
    try:
        for name, url, count in stores:
            print(f"dbsc ({name}) …", file=sys.stderr, flush=True)
            found = measure(url, count, rounds=rounds, requests=requests, refreshes=refreshes)
            (b_trips, b_cmds), (u_trips, u_cmds) = found["counts"]["bound"], found["counts"]["unbound"]
            requests_table.add(name, fmt(found["bound"]), fmt(found["unbound"]),
                               fmt(found["difference"], sign=True),
                               f"{fmt(b_trips, 0)} / {fmt(u_trips, 0)}" if count else "–",
                               f"{fmt(b_cmds, 0)} / {fmt(u_cmds, 0)}" if count else "–")
            for expired, when in ((True, "cookie expired"), (False, "cookie still valid (proactive)")):
                challenge_us, prove_us, (c_trips, c_cmds), (p_trips, p_cmds) = found[expired]
                refresh_table.add(name, f"challenge (403), {when}", fmt(challenge_us),
                                  fmt(c_trips, 0) if count else "–", fmt(c_cmds, 0) if count else "–")
                refresh_table.add(name, f"proof (200), {when}", fmt(prove_us),
                                  fmt(p_trips, 0) if count else "–", fmt(p_cmds, 0) if count else "–")
    finally:
        if counter is not None:
            counter.close()
    checks = signature_checks(2000 if quick else 10000)
    for alg, (verify, read) in checks.items():
        refresh_table.notes.append(f"{alg}: checking a proof's signature {fmt(verify)} µs, reading the "
                                   f"stored key {fmt(read)} µs (both inside the proof step's time).")
    requests_table.notes.append(
        "Each figure is the median of the rounds' medians; the difference is paired per round. A bound "
        "session's cookie carries its issue time, checked before any store call: the same one round trip.")
    refresh_table.notes.append(
        "The challenge step makes no store call (challenges are signed, not stored); the proof step redeems "
        "the challenge and reads the key in one function call (`redeem`), then checks the signature. "
        "Chromium refreshes when the bound cookie has expired, or ahead (under 120 s left) with the still "
        "valid cookie, which the middleware does not check on the DBSC paths: the same one round trip.")
    return [requests_table, refresh_table]


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    with RedisServer() as server:
        tables = dbsc_tables(server.url, quick=quick)
    print("\n".join(table.markdown() for table in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
