"""The shells' own duties around the app, driven with raw ASGI / WSGI calls:
the context is also the app's ``send`` / ``start_response``, and lets go of the
request once the response has started."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from sessionguard import SessionGuard, StoreUnavailable


def wsgi_environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "192.0.2.1",
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}


def asgi_scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "client": ("192.0.2.1", 5000),
            "headers": [(b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")]}


def run_wsgi(guard: SessionGuard, app: Any, environ: dict[str, Any]) -> list[tuple[str, Any]]:
    started: list[tuple[str, Any]] = []
    body = guard.wsgi(app)(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    b"".join(body)
    return started


def run_asgi(guard: SessionGuard, app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Drive one request to its end without an event loop (nothing here waits)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    coroutine = guard.asgi(app)(scope, receive, send)
    with pytest.raises(StopIteration):
        coroutine.send(None)
    return sent


@pytest.fixture
def guard(make_guard: Any) -> SessionGuard:
    guard: SessionGuard = make_guard()
    return guard


def test_wsgi_login_after_the_response_started_is_refused_and_creates_nothing(guard: SessionGuard) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            environ["sessionguard"].login("ada")
        except RuntimeError as error:
            raised.append(error)
        return [b"ok"]

    [(_, headers)] = run_wsgi(guard, app, wsgi_environ())
    assert "response started" in str(raised[0])
    assert not any(name == "Set-Cookie" for name, _ in headers)
    assert guard.store.user_sessions("ada") == []


def test_asgi_login_after_the_response_started_is_refused_and_creates_nothing(guard: SessionGuard) -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await scope["sessionguard"].login("ada")
        except RuntimeError as error:
            raised.append(error)
        await send({"type": "http.response.body", "body": b"ok"})

    start, _ = run_asgi(guard, app, asgi_scope())
    assert "response started" in str(raised[0])
    assert all(name != b"set-cookie" for name, _ in start["headers"])
    assert guard.store.user_sessions("ada") == []


def test_wsgi_login_before_the_response_starts_sets_the_cookie(guard: SessionGuard) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["sessionguard"].login("ada")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60")])
        return [b"ok"]

    [(_, headers)] = run_wsgi(guard, app, wsgi_environ())
    names = [name for name, _ in headers]
    assert names.count("Set-Cookie") == 1
    assert ("Cache-Control", "no-store") in headers and ("Cache-Control", "max-age=60") not in headers
    [session] = guard.store.user_sessions("ada")
    assert (session.ip, session.platform) == ("192.0.2.1", "web")


def test_wsgi_store_failure_after_the_response_started_propagates(guard: SessionGuard) -> None:
    # a second start_response without exc_info would be a WSGI error: the
    # 503 answer is only possible before the app started its response
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        raise StoreUnavailable("store down")

    with pytest.raises(StoreUnavailable):
        run_wsgi(guard, app, wsgi_environ())


def test_wsgi_store_failure_before_the_response_is_a_503(guard: SessionGuard) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise StoreUnavailable("store down")

    [(status, _)] = run_wsgi(guard, app, wsgi_environ())
    assert status.startswith("503")


def test_a_finished_request_is_not_kept_alive_by_its_context(guard: SessionGuard) -> None:
    # The context refers to the request until the response starts; were it to
    # keep that reference, every request would be a cycle (request -> context
    # -> request) left for the garbage collector instead of freed at once.
    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    environ, scope = wsgi_environ(), asgi_scope()
    run_wsgi(guard, wsgi_app, environ)
    run_asgi(guard, asgi_app, scope)
    assert environ["sessionguard"].session is None and scope["sessionguard"].session is None
    # only this frame's name and getrefcount's argument refer to each
    assert (sys.getrefcount(environ), sys.getrefcount(scope)) == (2, 2)


def test_the_anonymous_context_has_every_slot_of_one_built_by_of(guard: SessionGuard) -> None:
    # The no-token path of each shell builds its context inline (not by
    # ``_of``): a slot added to the context and left out there would be unset.
    from sessionguard.asgi import _ASGIContext
    from sessionguard.context import _Context
    from sessionguard.wsgi import _WSGIContext

    seen: list[dict[str, Any]] = []

    def slots(ctx: Any) -> dict[str, Any]:
        return {name: getattr(ctx, name) for name in _Context.__slots__}

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(slots(environ["sessionguard"]))
        start_response("200 OK", [])
        return [b"ok"]

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(slots(scope["sessionguard"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    environ, scope = wsgi_environ(), asgi_scope()
    run_wsgi(guard, wsgi_app, environ)
    run_asgi(guard, asgi_app, scope)
    wsgi_values, asgi_values = seen
    assert wsgi_values == slots(_WSGIContext._of(guard, environ, wsgi_values["_respond"]))
    assert asgi_values == slots(_ASGIContext._of(guard, scope, asgi_values["_respond"]))
    assert wsgi_values["_raw"] is environ and asgi_values["_raw"] is scope and asgi_values["_guard"] is guard


def test_guard_wsgi_is_a_function_wrapping_the_app_and_the_class_serves_the_same(guard: SessionGuard) -> None:
    import inspect

    from sessionguard import WSGIMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"signed in" if environ["sessionguard"].session else b"anonymous"]

    guarded = guard.wsgi(app)
    assert inspect.isfunction(guarded) and inspect.unwrap(guarded) is app
    started: list[str] = []
    environ = wsgi_environ()
    body = WSGIMiddleware(app, guard)(environ, lambda status, headers, exc_info=None: started.append(status))
    assert b"".join(body) == b"anonymous"
    assert started == ["200 OK"] and environ["sessionguard"].session is None


def test_asgi_reads_the_session_cookie_from_any_of_several_cookie_headers(guard: SessionGuard) -> None:
    # HTTP/2 and HTTP/3 clients may send each cookie in a header of its own
    # (RFC 9113 §8.2.3); the shell joins them as one Cookie header.
    tokens: list[str] = []

    async def login(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tokens.append((await scope["sessionguard"].login("ada")).token or "")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    seen: list[Any] = []

    async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["sessionguard"].session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    def run(app: Any, scope: dict[str, Any]) -> None:  # on a loop: the Redis store awaits
        asyncio.run(guard.asgi(app)(scope, receive, send))

    run(login, asgi_scope())
    scope = asgi_scope()
    scope["headers"] += [(b"cookie", b"theme=dark"), (b"cookie", f"sg_session={tokens[0]}".encode()),
                         (b"cookie", b"consent=no")]
    run(whoami, scope)
    assert seen[0] is not None and seen[0].user_id == "ada"
    run(whoami, {**asgi_scope(), "headers": [(b"cookie", b"theme=dark"), (b"cookie", b"x=1")]})
    assert seen[1] is None


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_forwarded_for_is_read_from_every_header_line(shell: str, make_guard: Any) -> None:
    # The client sends its own X-Forwarded-For line; the trusted proxy appends
    # another with the address it saw. Reading only the first line would let
    # the client choose its recorded address (and city).
    guard: SessionGuard = make_guard(trusted_proxies="10.0.0.0/8")
    lines = [b"198.51.100.66", b"203.0.113.7, 10.0.0.2"]  # spoofed; then client, inner proxy
    if shell == "wsgi":
        def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            environ["sessionguard"].login("ada")
            start_response("200 OK", [])
            return [b""]

        # WSGI servers join repeated header lines with ", " (CGI), in order
        environ = {**wsgi_environ(), "REMOTE_ADDR": "10.0.0.1",
                   "HTTP_X_FORWARDED_FOR": b", ".join(lines).decode()}
        run_wsgi(guard, wsgi_app, environ)
    else:
        async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await scope["sessionguard"].login("ada")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = {**asgi_scope(), "client": ("10.0.0.1", 5000)}
        scope["headers"] = [*scope["headers"], *((b"x-forwarded-for", line) for line in lines)]
        asyncio.run(guard.asgi(asgi_app)(scope, receive, send))
    [session] = guard.store.user_sessions("ada")
    assert session.ip == "203.0.113.7"


# -- caches: Vary and Cache-Control on responses that depend on the session (SPEC 9.5) --------


def signed_in(guard: SessionGuard) -> str:
    """A fresh session's token (logged in through the WSGI shell)."""
    tokens: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        tokens.append(environ["sessionguard"].login("ada").token)
        start_response("200 OK", [])
        return [b""]

    run_wsgi(guard, app, wsgi_environ())
    return tokens[0]


def answer(shell: str, guard: SessionGuard, request: dict[str, str],
           response: list[tuple[str, str]], login: bool = False) -> list[tuple[str, str]]:
    """The headers of one response (names lower-cased) through ``shell``: the
    app answers ``response``'s headers (after a login, with ``login``)."""
    if shell == "wsgi":
        def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if login:
                environ["sessionguard"].login("bob")
            start_response("200 OK", list(response))
            return [b""]

        environ = {**wsgi_environ(), **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.items()}}
        [(_, headers)] = run_wsgi(guard, wsgi_app, environ)
        return [(name.lower(), value) for name, value in headers]

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if login:
            await scope["sessionguard"].login("bob")
        encoded = [(k.lower().encode(), v.encode()) for k, v in response]  # ASGI: lower-case names
        await send({"type": "http.response.start", "status": 200, "headers": encoded})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = asgi_scope()
    scope["headers"] = [*scope["headers"], *((k.lower().encode(), v.encode()) for k, v in request.items())]
    asyncio.run(guard.asgi(asgi_app)(scope, receive, send))
    return [(name.decode(), value.decode()) for name, value in sent[0]["headers"]]


def cache_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name in ("vary", "cache-control")]


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_responses_to_a_token_say_so_to_caches(shell: str, guard: SessionGuard) -> None:
    token = signed_in(guard)
    cookie, bearer = {"Cookie": f"sg_session={token}"}, {"Authorization": f"Bearer {token}"}
    assert cache_headers(answer(shell, guard, cookie, [])) == [
        ("cache-control", "private"), ("vary", "Cookie")]
    assert cache_headers(answer(shell, guard, bearer, [])) == [
        ("cache-control", "private"), ("vary", "Authorization")]
    # the app's own Cache-Control stays; its Vary gets a line of ours unless it names ours (or *)
    own = [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")]
    assert cache_headers(answer(shell, guard, cookie, own)) == [
        ("cache-control", "max-age=60"), ("vary", "Accept-Encoding"), ("vary", "Cookie")]
    for vary in ("accept-encoding, cookie", "*"):
        assert cache_headers(answer(shell, guard, cookie, [("Vary", vary)])) == [
            ("vary", vary), ("cache-control", "private")]
    # an ended or forged token: the cookie is cleared (no-store), and the answer still varies
    forged = {"Cookie": f"sg_session={token[:-2]}xx"}
    assert cache_headers(answer(shell, guard, forged, [("Cache-Control", "max-age=60")])) == [
        ("cache-control", "no-store"), ("vary", "Cookie")]


@pytest.mark.parametrize("shell", ["asgi", "wsgi"])
def test_responses_without_a_token_are_left_to_the_app(shell: str, guard: SessionGuard) -> None:
    assert cache_headers(answer(shell, guard, {}, [])) == []
    assert cache_headers(answer(shell, guard, {"Cookie": "theme=dark", "Authorization": "Basic eDp5"},
                                [("Vary", "Accept")])) == [("vary", "Accept")]
    # a login without a token sets the cookie: no-store, as before
    assert cache_headers(answer(shell, guard, {}, [("Cache-Control", "max-age=60")], login=True)) == [
        ("cache-control", "no-store")]
