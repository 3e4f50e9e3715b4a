"""``login()``'s arguments, on every store: a bad one is a clear error that
creates nothing; metadata comes back as JSON gives it, and a session's
metadata is its reader's own (changing it changes nothing stored)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sessionguard import Session, SessionGuard
from sessionguard.context import MAX_METADATA, MAX_USER_ID
from test_shells import run_wsgi, wsgi_environ


def wsgi_login(guard: SessionGuard, *args: Any, **kwargs: Any) -> Session:
    """``environ["sessionguard"].login(*args, **kwargs)`` inside a WSGI request."""
    made: list[Session] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        made.append(environ["sessionguard"].login(*args, **kwargs))
        start_response("200 OK", [])
        return [b"ok"]

    run_wsgi(guard, app, wsgi_environ())
    return made[0]


@pytest.fixture
def guard(make_guard: Callable[..., SessionGuard]) -> SessionGuard:
    return make_guard()


@pytest.mark.parametrize(("args", "kwargs", "error", "names"), [
    pytest.param(("",), {}, ValueError, "user_id", id="empty-user"),
    pytest.param(("a" * (MAX_USER_ID + 1),), {}, ValueError, "user_id", id="long-user"),
    pytest.param((42,), {}, ValueError, "user_id", id="int-user"),
    pytest.param(("ada",), {"platform": "tv"}, ValueError, "platform", id="unknown-platform"),
    # JSON counts bytes: 2,100 two-byte letters are 4,200 bytes though 2,100 characters
    pytest.param(("ada",), {"metadata": {"n": "é" * 2100}}, ValueError, "metadata", id="big-metadata"),
    pytest.param(("ada",), {"metadata": {"when": object()}}, TypeError, "not JSON serializable",
                 id="non-json-metadata"),
])
def test_a_bad_argument_is_a_clear_error_and_creates_nothing(
    guard: SessionGuard, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        wsgi_login(guard, *args, **kwargs)
    assert guard.store.user_sessions("ada") == [] and guard.store.user_sessions(str(args[0])) == []


def test_metadata_up_to_the_limit_is_accepted(guard: SessionGuard) -> None:
    filler = "x" * (MAX_METADATA - len('{"n":""}'))
    session = wsgi_login(guard, "ada", metadata={"n": filler})
    assert session.metadata == {"n": filler}


def test_metadata_comes_back_as_json_gives_it_and_is_the_readers_own(guard: SessionGuard) -> None:
    session = wsgi_login(guard, "ada", metadata={"roles": ("admin", "ops"), "prefs": {"theme": "dark"}})
    assert session.metadata == {"roles": ["admin", "ops"], "prefs": {"theme": "dark"}}  # a tuple: a list
    metadata: Any
    for metadata in (session.metadata, *(r.metadata for r in guard.store.user_sessions("ada"))):
        metadata["roles"].append("root")
        metadata["prefs"]["theme"] = "light"
    check = guard.store.check(session.id, passive=True)
    assert check.record is not None
    assert check.record.metadata == {"roles": ["admin", "ops"], "prefs": {"theme": "dark"}}
    [listed] = guard.store.user_sessions("ada")
    assert listed.metadata == {"roles": ["admin", "ops"], "prefs": {"theme": "dark"}}
