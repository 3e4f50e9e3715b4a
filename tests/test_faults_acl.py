"""A least-privilege Redis ACL user: the line ``docs/deployment.md`` gives is
the one tested here, on a private Redis with the real clock (``TIME`` inside
the scripts).

- every command a Lua script calls is in the line;
- the core of the Redis suite runs through it, on both shells: logins (without
  a cookie), checks with a touch, logouts, the admin listing, a revocation, a
  sign-out of everyone, a policy and a timeout change, the audit log and the
  pub/sub subscription; Redis then has refused nothing but the optional
  ``CONFIG GET``.

A user without a command a script needs: ``test_store_failure.py`` (``503``
and one log line naming the command, in every wiring).
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from apps import flask_app, starlette_app
from conftest import BASE_URL, SECRET
from redis_servers import RedisServer
from sessionguard import Config, SessionGuard

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "src" / "sessionguard" / "stores" / "redis" / "lua"
PASSWORD = "acl-" + "p" * 24
ADMIN = {"Authorization": "Bearer admin-" + "t" * 40}
API = "/_sessionguard/api"


def documented_rules() -> list[str]:
    """The rules of the ``ACL SETUSER sessionguard ...`` line in the docs."""
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    match = re.search(r"^ACL SETUSER sessionguard (.*)$", text, re.M)
    assert match, "docs/deployment.md gives no ACL line"
    return shlex.split(match[1])


def _user(server: RedisServer, name: str, rules: list[str]) -> str:
    """Create ``name`` with ``rules`` (its password: :data:`PASSWORD`); its URL."""
    rules = [">" + PASSWORD if rule.startswith(">") else rule for rule in rules]
    server.command("ACL", "SETUSER", name, *rules)
    return f"redis://{name}:{PASSWORD}@{server.host}:{server.port}/0"


def _client(shell: str, guard: SessionGuard) -> httpx.Client:
    if shell == "asgi":
        return TestClient(starlette_app(guard), base_url=BASE_URL)
    return httpx.Client(transport=httpx.WSGITransport(app=flask_app(guard)), base_url=BASE_URL)


def _refused(server: RedisServer) -> set[str]:
    """What Redis refused since the log was reset, as ``command[|sub]``."""
    with server.client(decode_responses=True) as admin:
        return {str(entry["object"]) for entry in admin.acl_log()}


def test_the_line_names_every_command_the_store_sends() -> None:
    granted = {rule[1:].lower() for rule in documented_rules() if rule.startswith("+")}
    # redis.call('X', ...) and the library's local alias call('X', ...)
    in_scripts = {name for path in LUA.glob("*.lua")
                  for name in re.findall(r"\bp?call\(\s*'(\w+)'", path.read_text(encoding="utf-8"))}
    # plain commands: one("TIME"), ("XADD", key, ...), ("FCALL", name, ...) in the operations and the stores
    sent = {command for path in LUA.parent.glob("*.py")
            for pair in re.findall(r'\bone\("([A-Z]+)"|\("([A-Z]{3,})", ', path.read_text(encoding="utf-8"))
            for command in pair if command}
    called = {name.lower() for name in in_scripts | sent}
    assert {"time", "fcall", "mget", "xadd"} <= called <= granted, called - granted


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_the_core_runs_through_the_least_privilege_user(shell: str, private_redis: RedisServer) -> None:
    url = _user(private_redis, "sessionguard", documented_rules())
    # never: a user's index then never expires (PERSIST); 3 s idle: a touch is due after 1 s
    guard = SessionGuard(Config(secret_key=SECRET, store_url=url, admin_token=ADMIN["Authorization"][7:],
                                idle_timeout=3, absolute_timeout=None))
    with _client(shell, guard) as client:
        def login(user: str) -> dict[str, str]:
            client.cookies.clear()  # no cookie: the app's login() is the first store call
            response = client.post("/login", json={"user": user})
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['token']}"}

        def whoami(session: dict[str, str]) -> Any:
            client.cookies.clear()
            return client.get("/whoami", headers=session).json()

        ada = login("ada")
        time.sleep(1.1)
        assert whoami(ada)["session"]["user_id"] == "ada"  # touched
        listed = client.get(f"{API}/sessions", headers=ADMIN).json()["sessions"]
        assert [s["user_id"] for s in listed] == ["ada"]
        guard.store.set_user_timeouts("ada", {"web": 60})
        assert guard.store.user_timeouts("ada") == {"web": 60}
        assert client.post("/logout", headers=ada).status_code == 200
        assert whoami(ada)["ended_reason"] == "signed_out"
        bob = login("bob")
        assert client.post(f"{API}/users/bob/signout", headers=ADMIN).json() == {"ended": 1}
        assert whoami(bob)["ended_reason"] == "revoked"
        ada = login("ada")
        limit = {"platforms": {"web": {"max_sessions": 5}}}
        response = client.put(f"{API}/policy", json=limit, headers=ADMIN)
        assert response.status_code == 200, response.text
        response = client.post(f"{API}/signout-all", json={"confirm": "SIGN OUT ALL"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert whoami(ada)["ended_reason"] == "signout_all"
        events = client.get(f"{API}/audit", headers=ADMIN).json()["events"]
        assert {"login", "logout", "revoked"} <= {e["type"] for e in events}, events
        deadline = time.monotonic() + 5
        while not guard.store.subscribed:  # type: ignore[attr-defined]  # SUBSCRIBE and PING
            assert time.monotonic() < deadline, "the subscription did not come up"
            time.sleep(0.01)
    guard.store.close()
    assert _refused(private_redis) <= {"config|get"}
