"""The ``sessionguard`` console script, run as a subprocess.

Sessions are created by logging in through a host app in this process; the
command line sees them through the private Redis (``redis_server`` fixture,
own ``key_prefix``). What makes sense without a shared store (``check`` on
``memory://``, argument and configuration errors, the demo server) runs on
the memory store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps import flask_app
from conftest import SECRET
from sessionguard import SessionGuard

SCRIPT = shutil.which("sessionguard", path=str(Path(sys.executable).parent))
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.5 Mobile/15E148 Safari/604.1"
)


def command(*args: str) -> list[str]:
    """The installed console script (next to this interpreter), else the module."""
    if SCRIPT is not None:
        return [SCRIPT, *args]
    return [sys.executable, "-m", "sessionguard.cli", *args]


def clean_environ(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any SESSIONGUARD_* variable, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGUARD_")}
    return {**base, **env}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command(*args), env=clean_environ(env), capture_output=True, text=True, timeout=60,
        encoding="utf-8",
    )
    assert "Traceback" not in result.stderr, result.stderr  # expected errors never show one
    return result


MEMORY = {"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_STORE_URL": "memory://"}


# -- configuration and arguments (no shared store needed) ----------------------------


def test_console_script_is_installed() -> None:
    assert SCRIPT is not None, "the sessionguard console script is missing from the virtualenv"
    result = run({}, "--version")
    assert result.returncode == 0 and result.stdout.startswith("sessionguard ")


def test_check_on_memory_prints_policy() -> None:
    env = {**MEMORY, "SESSIONGUARD_WEB_IDLE_TIMEOUT": "30m", "SESSIONGUARD_MOBILE_MAX_SESSIONS": "2",
           "SESSIONGUARD_DESKTOP_IDLE_TIMEOUT": "never"}
    result = run(env, "check")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["web", "30m", "30d", "30d", "unlimited"] in lines
    assert ["mobile", "1h", "30d", "30d", "2"] in lines
    assert ["desktop", "never", "30d", "30d", "unlimited"] in lines
    assert "memory://" in result.stdout and "this process only" in result.stdout
    assert "remember-me period  14d" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_check_json() -> None:
    result = run({**MEMORY, "SESSIONGUARD_ON_LIMIT": "reject"}, "check", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["policy"]["on_limit"] == "reject"
    assert data["policy"]["platforms"]["web"] == {
        "idle_timeout": "1h", "absolute_timeout": "30d", "session_timeout": "30d", "max_sessions": None
    }
    assert data["store"] == "memory://" and data["policy_source"] == "environment"


MAXMIND_TEST_DB = Path(__file__).resolve().parents[2] / "shared" / "data" / "GeoLite2-City-Test.mmdb"


def test_check_validates_the_geoip_database(tmp_path: Path) -> None:
    # a configuration error, as for any other variable (the guard opens the file at start-up)
    missing = run({**MEMORY, "SESSIONGUARD_GEOIP_DATABASE": str(tmp_path / "nope.mmdb")}, "check")
    assert missing.returncode == 2 and "invalid configuration:" in missing.stderr
    assert "SESSIONGUARD_GEOIP_DATABASE=" in missing.stderr and "cannot be read" in missing.stderr
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a database")
    junked = run({**MEMORY, "SESSIONGUARD_GEOIP_DATABASE": str(junk)}, "check")
    assert junked.returncode == 2 and "is not a MaxMind database" in junked.stderr
    if MAXMIND_TEST_DB.is_file():
        good = run({**MEMORY, "SESSIONGUARD_GEOIP_DATABASE": str(MAXMIND_TEST_DB)}, "check")
        assert good.returncode == 0 and "(GeoLite2-City)" in good.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, ["SESSIONGUARD_SECRET_KEY is required"], id="missing-secret"),
        pytest.param(
            {"SESSIONGUARD_SECRET_KEY": "tiny-secret-k3y", "SESSIONGUARD_IDLE_TIMEOUT": "15x"},
            ["SESSIONGUARD_SECRET_KEY='***' has a key shorter than 32 characters",
             "SESSIONGUARD_IDLE_TIMEOUT='15x' is not a duration"],
            id="every-bad-variable",
        ),
        pytest.param(
            {**MEMORY, "SESSIONGUARD_STORE_URL": "postgres://u:hunter2@db/x"},
            ["SESSIONGUARD_STORE_URL='postgres://u:***@db/x' is not a store URL"], id="bad-store-url",
        ),
    ],
)
@pytest.mark.parametrize("subcommand", [["check"], ["sessions"], ["signout", "--user", "ada"]])
def test_bad_configuration_exits_2(env: dict[str, str], expected: list[str], subcommand: list[str]) -> None:
    result = run(env, *subcommand)
    assert result.returncode == 2
    assert result.stderr.startswith("sessionguard: error: invalid configuration:")
    for message in expected:
        assert message in result.stderr
    assert "hunter2" not in result.stderr and "tiny-secret-k3y" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["signout", "--all"], '--confirm "SIGN OUT ALL"', id="all-without-phrase"),
        pytest.param(["signout", "--all", "--confirm", "sign out all"], "must be exactly", id="wrong-phrase"),
        pytest.param(["signout", "--session", "x", "--platform", "web"], "--platform only applies to --user",
                     id="platform-without-user"),
        pytest.param(["signout", "--user", "ada", "--confirm", "SIGN OUT ALL"],
                     "--confirm only applies to --all", id="confirm-without-all"),
        pytest.param(["signout"], "one of the arguments --session --user --all is required", id="no-target"),
        pytest.param(["signout", "--user", "a", "--all"], "not allowed with argument", id="two-targets"),
        pytest.param(["sessions", "--limit", "0"], "is not a positive number", id="bad-limit"),
        pytest.param(["sessions", "--platform", "tv"], "--platform must be one of web, mobile, desktop",
                     id="bad-platform"),
        pytest.param(["demo", "--port", "70000"], "is not a port", id="bad-port"),
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
    ],
)
def test_argument_errors_exit_2(args: list[str], message: str) -> None:
    result = run(MEMORY, *args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize("args", [["sessions"], ["signout", "--user", "ada"],
                                  ["signout", "--all", "--confirm", "SIGN OUT ALL"]])
def test_memory_store_is_refused_where_it_cannot_work(args: list[str]) -> None:
    result = run(MEMORY, *args)
    assert result.returncode == 2
    assert "memory:// keeps sessions inside the app's own process" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_demo_serves_the_example_app() -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    env = {"SESSIONGUARD_STORE_URL": "redis://example.invalid:6379"}  # the demo ignores it: memory only
    process = subprocess.Popen(
        command("demo", "--port", str(port)), env=clean_environ(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"demo did not start: {process.communicate(timeout=5)}") from None
                time.sleep(0.1)
        assert page.status_code == 200 and 'action="/login"' in page.text
        with httpx.Client(base_url=url) as browser:
            login = browser.post("/login", data={"name": "ada", "remember_me": "1"})
            assert login.status_code == 303
            assert "Secure" not in login.headers["set-cookie"]  # plain HTTP: COOKIE_SECURE=false
            assert "Hello, ada" in browser.get("/").text
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert f"sessionguard demo on http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err
    assert "anyone" not in err  # loopback: no warning


def test_demo_on_a_public_address_warns_before_serving() -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    process = subprocess.Popen(
        command("demo", "--host", "0.0.0.0", "--port", str(port)), env=clean_environ({}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"demo did not start: {process.communicate(timeout=5)}") from None
                time.sleep(0.1)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    warning = "WARNING: the demo listens on 0.0.0.0"
    assert warning in err and "anyone who can reach it can sign in as any user, administrator" in err
    assert err.index(warning) < err.index("Uvicorn running on")


# -- against Redis --------------------------------------------------------------------


@pytest.fixture
def redis_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Variables pointing the CLI at the private Redis under this test's prefix."""
    pytest.importorskip("sessionguard.stores.redis", reason="the Redis store has not landed yet")
    server = request.getfixturevalue("redis_server")
    prefix = request.getfixturevalue("key_prefix")
    return {"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_STORE_URL": server.url,
            "SESSIONGUARD_KEY_PREFIX": prefix}


@pytest.fixture
def app_guard(redis_env: dict[str, str]) -> Any:
    """The guard of the host app, on the same Redis and prefix as the CLI."""
    guard = SessionGuard.from_env(redis_env)
    yield guard
    guard.store.close()


class App:
    """Browsers logging in to a Flask host app behind ``app_guard``."""

    def __init__(self, guard: SessionGuard) -> None:
        self.guard = guard
        self.app = flask_app(guard)

    def login(self, user: str, *, ua: str = CHROME_MAC, ip: str = "198.51.100.7", **body: Any) -> Any:
        transport = httpx.WSGITransport(app=self.app, remote_addr=ip)
        with httpx.Client(transport=transport, base_url="https://testserver") as client:
            response = client.post("/login", json={"user": user, **body}, headers={"User-Agent": ua})
        assert response.status_code == 200, response.text
        time.sleep(0.003)  # distinct login times (ms, Redis clock): "newest first" is then exact
        return response.json()

    def ended_reason(self, token: str, *, ua: str = CHROME_MAC) -> str | None:
        transport = httpx.WSGITransport(app=self.app)
        with httpx.Client(transport=transport, base_url="https://testserver") as client:
            # the login's User-Agent: another would be an anomaly (ON_ANOMALY), with its own event
            headers = {"Authorization": f"Bearer {token}", "User-Agent": ua}
            body = client.get("/whoami", headers=headers).json()
        assert (body["session"] is None) == (body["ended_reason"] is not None)
        reason: str | None = body["ended_reason"]
        return reason

    def events(self) -> list[dict[str, Any]]:
        page = self.guard.store.events(user_id=None, limit=50, cursor=None)
        return [event.to_json() for event in page.items]


@pytest.fixture
def app(app_guard: SessionGuard) -> App:
    return App(app_guard)


@pytest.mark.redis
def test_check_on_redis(redis_env: dict[str, str], app: App) -> None:
    result = run({**redis_env, "SESSIONGUARD_WEB_MAX_SESSIONS": "3"}, "check")
    assert result.returncode == 0, result.stderr
    assert redis_env["SESSIONGUARD_STORE_URL"] in result.stdout and "(reachable)" in result.stdout
    assert ["web", "1h", "30d", "30d", "3"] in [line.split() for line in result.stdout.splitlines()]
    assert "from the environment" in result.stdout
    # A policy stored through the admin API is what every server (and the CLI) applies.
    stored = app.guard.store.policy().updated({"platforms": {"mobile": {"idle_timeout": "15m"}}})
    app.guard.store.set_policy(stored)
    result = run(redis_env, "check")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["mobile", "15m", "30d", "30d", "unlimited"] in rows
    assert "stored through the admin API" in result.stdout


@pytest.mark.redis
@pytest.mark.parametrize("args", [["check"], ["sessions"], ["signout", "--user", "ada"]])
def test_unreachable_store_exits_1(redis_env: dict[str, str], args: list[str]) -> None:
    env = {**redis_env, "SESSIONGUARD_STORE_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    result = run(env, *args)
    assert result.returncode == 1
    assert "the session store is unavailable (redis://:***@127.0.0.1:" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_check_hides_secret_store_url_options() -> None:
    url = f"rediss://ada%40corp:hunter1@127.0.0.1:{free_port()}/0?ssl_password=hunter2&ssl_cert_reqs=none"
    result = run({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_STORE_URL": url}, "check")
    assert result.returncode == 1
    assert "(rediss://***:***@127.0.0.1:" in result.stderr and "ssl_password=***&" in result.stderr
    assert "hunter" not in result.stdout + result.stderr and "ada" not in result.stdout + result.stderr


@pytest.mark.redis
def test_sessions_table(redis_env: dict[str, str], app: App) -> None:
    ada_web = app.login("ada", metadata={"name": "Ada"})
    ada_phone = app.login("ada", ua=SAFARI_IPHONE, ip="2001:db8::7")
    grace = app.login("grace", ip="203.0.113.9")
    result = run(redis_env, "sessions")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "user", "platform", "device", "ip", "city", "login", "(UTC)", "last",
                                "seen", "(UTC)", "expires", "(UTC)", "status"]
    assert lines[5:] == ["", "3 sessions"]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {ada_web["session"]["id"], ada_phone["session"]["id"], grace["session"]["id"]}
    assert rows[ada_web["session"]["id"]].split()[1:7] == ["ada", "web", "Chrome", "131", "on", "macOS"]
    phone_row = rows[ada_phone["session"]["id"]]
    assert "mobile" in phone_row and "Safari 17 on iOS" in phone_row and "2001:db8::7" in phone_row
    assert "203.0.113.9" in rows[grace["session"]["id"]]
    assert lines[2].split()[0] == grace["session"]["id"]  # newest login first
    for login in (ada_web, ada_phone, grace):
        assert login["token"] not in result.stdout  # never tokens


@pytest.mark.redis
def test_sessions_filters_limit_and_json(redis_env: dict[str, str], app: App) -> None:
    ada_web = app.login("ada")
    ada_phone = app.login("ada", ua=SAFARI_IPHONE)
    grace = app.login("grace")
    by_user = run(redis_env, "sessions", "--user", "ada", "--json")
    data = json.loads(by_user.stdout)
    assert [s["id"] for s in data["sessions"]] == [ada_phone["session"]["id"], ada_web["session"]["id"]]
    assert all("token" not in s for s in data["sessions"]) and ada_web["token"] not in by_user.stdout
    assert data["sessions"][0]["device"] == "Safari 17 on iOS"
    mobile = json.loads(run(redis_env, "sessions", "--platform", "mobile", "--json").stdout)
    assert [s["id"] for s in mobile["sessions"]] == [ada_phone["session"]["id"]]
    limited = run(redis_env, "sessions", "--limit", "1")
    assert grace["session"]["id"] in limited.stdout and ada_web["session"]["id"] not in limited.stdout
    assert "1 session shown; more exist" in limited.stdout
    nobody = run(redis_env, "sessions", "--user", "nobody")
    assert nobody.returncode == 0 and nobody.stdout.strip() == "no active sessions"


@pytest.mark.redis
def test_sessions_escapes_control_characters(redis_env: dict[str, str], app: App) -> None:
    app.login("eve\x1b[2J\nroot", ua="Evil\x1b]0;pwned\x07")
    result = run(redis_env, "sessions")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "eve\\x1b[2J\\nroot" in result.stdout


@pytest.mark.redis
def test_signout_session(redis_env: dict[str, str], app: App) -> None:
    ada = app.login("ada")
    other = app.login("ada")
    result = run(redis_env, "signout", "--session", ada["session"]["id"])
    assert result.returncode == 0, result.stderr
    assert f"signed out session {ada['session']['id']} of user ada (web)" in result.stdout
    assert app.ended_reason(ada["token"]) == "revoked"
    assert app.ended_reason(other["token"]) is None
    event = app.events()[0]
    assert (event["type"], event["actor"], event["reason"]) == ("revoked", "cli", "revoked")
    assert (event["user_id"], event["session_id"]) == ("ada", ada["session"]["id"])
    again = run(redis_env, "signout", "--session", ada["session"]["id"])
    assert again.returncode == 1 and "no such session" in again.stderr


@pytest.mark.redis
@pytest.mark.parametrize("session_id", ["0000AAAAAAAAAAAAAAAAAAAAAA", "not-an-id", "{sg}x", "x" * 5000])
def test_signout_unknown_session_exits_1(redis_env: dict[str, str], app: App, session_id: str) -> None:
    ada = app.login("ada")
    result = run(redis_env, "signout", "--session", session_id)
    assert result.returncode == 1
    assert result.stderr.startswith("sessionguard: error: no such session: ")
    assert app.ended_reason(ada["token"]) is None


@pytest.mark.redis
def test_signout_user_and_platform(redis_env: dict[str, str], app: App) -> None:
    web = app.login("ada")
    phone = app.login("ada", ua=SAFARI_IPHONE)
    grace = app.login("grace")
    result = run(redis_env, "signout", "--user", "ada", "--platform", "web")
    assert result.returncode == 0 and "signed out 1 session of user ada on web" in result.stdout
    assert app.ended_reason(web["token"]) == "revoked"
    assert app.ended_reason(phone["token"]) is None
    result = run(redis_env, "signout", "--user", "ada")
    assert "signed out 1 session of user ada" in result.stdout
    assert app.ended_reason(phone["token"]) == "revoked"
    assert app.ended_reason(grace["token"]) is None
    cli_events = [e for e in app.events() if e["actor"] == "cli"]
    assert {(e["type"], e["session_id"]) for e in cli_events} == {
        ("revoked", web["session"]["id"]), ("revoked", phone["session"]["id"])
    }
    none_left = run(redis_env, "signout", "--user", "ada")
    assert none_left.returncode == 0 and "signed out 0 sessions" in none_left.stdout


@pytest.mark.redis
def test_signout_all_needs_the_phrase(redis_env: dict[str, str], app: App) -> None:
    ada, grace = app.login("ada"), app.login("grace")
    for wrong in ([], ["--confirm", "SIGN OUT"], ["--confirm", "sign out all"]):
        refused = run(redis_env, "signout", "--all", *wrong)
        assert refused.returncode == 2 and "SIGN OUT ALL" in refused.stderr
    assert app.ended_reason(ada["token"]) is None and app.ended_reason(grace["token"]) is None
    result = run(redis_env, "signout", "--all", "--confirm", "SIGN OUT ALL")
    assert result.returncode == 0, result.stderr
    assert app.ended_reason(ada["token"]) == "signout_all"
    assert app.ended_reason(grace["token"]) == "signout_all"
    assert run(redis_env, "sessions").stdout.strip() == "no active sessions"
    by_cli = [e for e in app.events() if e["actor"] == "cli"]
    assert [(e["type"], e["reason"]) for e in by_cli] == [("signout_all", "signout_all")]
    assert app.login("ada")["session"]["user_id"] == "ada"  # new logins work at once
