"""Shared fixtures: a fake clock, guards on every store, and clients on both
shells. Behaviour tests take ``harness`` and run four times: ASGI and WSGI,
on the memory store and on Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from apps import flask_app, starlette_app
from sessionguard import Config, SessionGuard
from sessionguard.stores.redis import server_clock

pytest_plugins = ["redis_servers", "redis_sentinels"]

SECRET = "s" * 40
OLD_SECRET = "o" * 40
BASE_URL = "https://testserver"


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _clock_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # the Redis store's tick measures the server's clock (a TIME) once a second, which
    # would show up in the tests' round-trip counts: once per store here (tests of the
    # measurement itself set it back)
    monkeypatch.setattr(server_clock, "SYNC_SECONDS", 3600.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


STORES = ["memory", "redis"]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_settings(store_kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """``Config`` keyword arguments selecting the parametrised store."""
    if store_kind == "memory":
        return {"store_url": "memory://"}
    server = request.getfixturevalue("redis_server")
    prefix = request.getfixturevalue("key_prefix")
    return {"store_url": server.url, "key_prefix": prefix}


@pytest.fixture
def make_guard(
    store_settings: dict[str, Any], clock: FakeClock
) -> Iterator[Callable[..., SessionGuard]]:
    """Build guards on the parametrised store; all share the fake clock."""
    guards: list[SessionGuard] = []

    def make(share_store: SessionGuard | None = None, **settings: Any) -> SessionGuard:
        """A guard; with ``share_store``, on that guard's store objects (the
        memory store lives in one process object, so guards must share it)."""
        settings = {"secret_key": SECRET, **store_settings, **settings}
        stores: dict[str, Any] = {}
        if share_store is not None:
            stores = {"store": share_store.store, "async_store": share_store.async_store}
        guard = SessionGuard(Config(**settings), clock=clock, **stores)
        guards.append(guard)
        return guard

    yield make
    for guard in guards:
        guard.store.close()  # closing twice (shared stores) is harmless


class Harness:
    """A host app (ASGI or WSGI) behind a guard, with an HTTP client."""

    def __init__(self, shell: str, guard: SessionGuard, clock: FakeClock) -> None:
        self.shell = shell
        self.guard = guard
        self.clock = clock
        self._stack = contextlib.ExitStack()
        self.app = starlette_app(guard) if shell == "asgi" else flask_app(guard)
        self.client = self.new_client()

    def new_client(self) -> httpx.Client:
        """Another client (another browser) on the same app."""
        if self.shell == "asgi":
            client: httpx.Client = TestClient(self.app, base_url=BASE_URL)
        else:
            transport = httpx.WSGITransport(app=self.app)
            client = httpx.Client(transport=transport, base_url=BASE_URL)
        return self._stack.enter_context(client)

    def login(self, user: str = "ada", client: httpx.Client | None = None, **body: Any) -> Any:
        response = (client or self.client).post("/login", json={"user": user, **body})
        assert response.status_code == 200, response.text
        return response.json()

    def whoami(self, client: httpx.Client | None = None, **kwargs: Any) -> Any:
        response = (client or self.client).get("/whoami", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(params=["asgi", "wsgi"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_harness(
    shell: str, make_guard: Callable[..., SessionGuard], clock: FakeClock
) -> Iterator[Callable[..., Harness]]:
    harnesses: list[Harness] = []

    def make(**settings: Any) -> Harness:
        harness = Harness(shell, make_guard(**settings), clock)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
