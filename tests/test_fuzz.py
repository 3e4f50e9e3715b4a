"""Fuzzing the request headers sessionguard reads (issue 16): ``Cookie``,
``Authorization``, ``User-Agent``, the client hints (``Sec-CH-UA*``),
``X-Forwarded-For`` (with ``TRUSTED_PROXIES`` set), the platform header and
``X-Session-Passive``, through both shells in-process: the ASGI middleware
called with a scope, ``receive`` and ``send``, the WSGI middleware with an
environ. Every generated request goes through both.

Whatever the headers, no answer is a ``5xx`` and nothing escapes the
middleware; beyond that, each request knows what it must come to:

- ``valid``: a live token (from a real login) in a well-formed cookie or
  ``Authorization: Bearer`` header, every other header mangled: that session;
- ``garbage``: a token that is not one (random text, a forged signature, a
  token signed with our key for a session this store never made): anonymous,
  ``ended_reason`` ``invalid``;
- ``mutated``: a live token changed a little: anonymous, or (SPEC §8: one sid,
  one identity) that same session, never another (only reads: a variant that
  is accepted may not end its session before the next request);
- ``random``: any bytes in ``Cookie`` and ``Authorization``: anonymous;
- ``login``: a login with mangled headers creates a session whose platform,
  user agent (at most 512 bytes), device label and address are sane.

The bulk, :data:`INPUTS` requests (``SESSIONGUARD_FUZZ_INPUTS``, default
100,000, CI's), comes from a seeded ``random`` (``SESSIONGUARD_FUZZ_SEED``);
a Hypothesis test draws the same kinds of request so that a failure shrinks.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SECRET
from sessionguard import Config, SessionGuard

INPUTS = int(os.environ.get("SESSIONGUARD_FUZZ_INPUTS", "100000"))
SEED = int(os.environ.get("SESSIONGUARD_FUZZ_SEED", "20260416"))

COOKIE = "sg_session"
PLATFORM_HEADER = "x-client-platform"
TRUSTED = ("10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1")
USERS = ("ada", "bob", "cy")
POOL = 12  # live sessions whose tokens the fuzz presents
PLATFORMS = ("web", "mobile", "desktop")
ADMIN_GETS = ("/_sessionguard/api/me/sessions", "/_sessionguard/api/csrf",
              "/_sessionguard/api/sessions", "/_sessionguard/api/me/settings", "/_sessionguard/me",
              "/_sessionguard/")
ADMIN_WRITES = (("POST", "/_sessionguard/api/me/signout-others"),
                ("DELETE", "/_sessionguard/api/me/sessions/x"), ("POST", "/_sessionguard/api/signout-all"),
                ("PUT", "/_sessionguard/api/policy"), ("POST", "/_sessionguard/api/users/ada/signout"))
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 "
    "Chrome/128.0.6613.120 Electron/32.1.2 Safari/537.36",
    "okhttp/4.12.0", "MyApp/3.1 CFNetwork/1494.0.7 Darwin/23.4.0", "Dart/3.4 (dart:io)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: maps any byte to a printable ASCII one
PRINTABLE = bytes(32 + b % 95 for b in range(256))
#: maps any byte to one that separates things in headers
_SEPARATING = b" \t;,=\"'\\\r\n\x00%.:[]/"
SEPARATORS = bytes(_SEPARATING[b % len(_SEPARATING)] for b in range(256))


# -- the requests ---------------------------------------------------------------------------------


@dataclass
class Request:
    """One generated request: raw header bytes, as a server hands them over."""

    kind: str
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    peer: str | None
    #: the session a ``valid`` or ``mutated`` request's token belongs to
    session_id: str | None = None


@dataclass
class Outcome:
    status: int
    seen: dict[str, Any] | None


def host_app_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    ctx = environ["sessionguard"]
    body = _seen(ctx)
    if environ["PATH_INFO"] == "/login":
        body["login"] = _session(ctx.login(USERS[len(environ.get("HTTP_USER_AGENT", "")) % 3]))
    elif environ["PATH_INFO"] == "/logout":
        ctx.logout()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


async def host_app_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    ctx = scope["sessionguard"]
    body = _seen(ctx)
    if scope["path"] == "/login":
        agent = next((v for k, v in scope["headers"] if k == b"user-agent"), b"")
        body["login"] = _session(await ctx.login(USERS[len(agent.decode("latin-1")) % 3]))
    elif scope["path"] == "/logout":
        await ctx.logout()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _seen(ctx: Any) -> dict[str, Any]:
    return {"session": None if ctx.session is None else ctx.session.id, "ended_reason": ctx.ended_reason}


def _session(session: Any) -> dict[str, Any]:
    return {"id": session.id, "platform": session.platform, "user_agent": session.user_agent,
            "device": session.device, "ip": session.ip}


class Shells:
    """One guard (memory store) behind both shells, with a pool of live sessions."""

    def __init__(self) -> None:
        self.guard = SessionGuard(Config(
            secret_key=SECRET, trusted_proxies=",".join(TRUSTED), max_sessions=3, passive_paths="/poll",
        ))
        self.asgi = self.guard.asgi(host_app_asgi)
        self.wsgi = self.guard.wsgi(host_app_wsgi)
        # tokens signed with our key for sessions this store never made (strict mode)
        stranger = SessionGuard(Config(secret_key=SECRET))
        self.foreign = [_login(stranger, f"pool-{i}")[0] for i in range(4)]
        stranger.close()
        self.pool = [_login(self.guard, f"pool-{i}") for i in range(POOL)]
        #: answers by request kind and status
        self.answers: Counter[str] = Counter()

    def close(self) -> None:
        self.guard.close()

    def run(self, request: Request) -> tuple[Outcome, Outcome]:
        """The request through the WSGI shell, then the ASGI shell."""
        return self._wsgi(request), self._asgi(request)

    def _wsgi(self, request: Request) -> Outcome:
        started: list[str] = []
        chunks = self.wsgi(_environ(request), lambda status, headers, exc_info=None: started.append(status))
        body = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        return _outcome(int(started[0].split()[0]), body)

    def _asgi(self, request: Request) -> Outcome:
        """Driven without an event loop, as tests/test_shells.py does: on the memory
        store nothing in the middleware or the admin sub-app waits on I/O."""
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        coroutine = self.asgi(_scope(request), receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            pass
        else:
            coroutine.close()
            raise AssertionError("the ASGI call waited on something")
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return _outcome(status, body)


def _login(guard: SessionGuard, user: str) -> tuple[str, str]:
    """A real login: its token and session id."""
    made: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        made.append(environ["sessionguard"].login(user))
        start_response("200 OK", [])
        return [b""]

    b"".join(guard.wsgi(app)(_environ(Request("login", "POST", "/login", [], "192.0.2.9")), lambda *a: None))
    return made[0].token, made[0].id


def _outcome(status: int, body: bytes) -> Outcome:
    seen = None
    if body.startswith(b'{"session"'):
        seen = json.loads(body)
    return Outcome(status, seen)


def _environ(request: Request) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method, "PATH_INFO": request.path, "QUERY_STRING": "",
        "SERVER_NAME": "app.test", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https", "wsgi.input": _EMPTY, "wsgi.errors": _EMPTY,
        "HTTP_HOST": "app.test",
    }
    if request.peer is not None:
        environ["REMOTE_ADDR"] = request.peer
    for name, value in request.headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        # a WSGI server joins repeated header lines (Cookie with "; ", the others with ",")
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    return environ


class _Empty:
    def read(self, *args: Any) -> bytes:
        return b""

    def readline(self, *args: Any) -> bytes:
        return b""

    def write(self, *args: Any) -> None:
        return None

    def flush(self) -> None:
        return None


_EMPTY = _Empty()


def _scope(request: Request) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
        "scheme": "https", "path": request.path, "raw_path": request.path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"app.test"), *request.headers],
        "client": None if request.peer is None else (request.peer, 50000), "server": ("app.test", 443),
    }


# -- building requests ----------------------------------------------------------------------------------

#: cookies beside ours, some named almost like it (none equal to it once stripped)
OTHER_COOKIES = (b"theme", b"_ga", b"csrftoken", b"sg_session_old", b"sg", b"x" * 40, b"SG_SESSION",
                 b"sg-session", b"__Host-sg_session", b"sg_session2")
SCHEMES = (b"Bearer", b"bearer", b"BEARER", b"BeArEr")
#: the ways :func:`mutate` changes a token
MUTATIONS = ("replace", "insert", "delete", "truncate", "pad", "case_or_alphabet", "quote")


def mutate(token: str, ops: list[tuple[int, int, str]]) -> bytes:
    """``token`` changed by each ``(mutation, position, character)`` of ``ops``."""
    data = bytearray(token.encode())
    for kind, position, char in ops:
        at, byte = min(position, len(data)), char.encode("latin-1", "replace")
        name = MUTATIONS[kind]
        if name == "replace" and data:
            data[min(at, len(data) - 1):min(at, len(data) - 1) + 1] = byte
        elif name == "insert":
            data[at:at] = byte
        elif name == "delete" and data:
            del data[min(at, len(data) - 1)]
        elif name == "truncate":
            data = data[:at]
        elif name == "pad":
            data += b"=" * (1 + position % 3)
        elif name == "case_or_alphabet":
            data = data.swapcase() if position % 3 == 0 else data.replace(b"-", b"+").replace(b"_", b"/")
        elif name == "quote":
            data = bytearray(b'"' + data + b'"')
    return bytes(data)


def carry(token: bytes, via: str, scheme: int, spaces: int, others: list[bytes], noise: bool,
          at: int = 0) -> list[tuple[bytes, bytes]]:
    """Headers presenting ``token``, well-formed: ``Authorization: Bearer`` (scheme
    in any case, extra spaces) with maybe a cookie without ours, or our cookie
    among ``others`` with maybe an ``Authorization`` of another scheme."""
    pad = b" " * spaces
    if via == "bearer":
        headers = [(b"authorization", pad + SCHEMES[scheme] + b" " + pad + token + pad)]
        if others:
            headers.append((b"cookie", b"; ".join(others)))
        return headers
    pairs = list(others)
    pairs.insert(min(at, len(pairs)), COOKIE.encode() + b"=" + token)
    headers = [(b"cookie", b"; ".join(pairs))]
    if noise:
        headers.append((b"authorization", b"Basic dXNlcjpwdw=="))
    return headers


# -- generating requests from a seeded random -----------------------------------------------------


class Generator:
    """Requests of every kind, from ``rng``; tokens from ``shells``."""

    def __init__(self, rng: random.Random, shells: Shells) -> None:
        self.rng = rng
        self.shells = shells

    def text(self, limit: int = 80) -> bytes:
        """Any bytes: printable, control, Latin-1, UTF-8 of any character, or long."""
        r = self.rng
        size = r.choice((0, 1, 2, r.randint(0, limit), r.randint(0, limit), r.randint(500, 9000)))
        style = r.randrange(5)
        if style == 0:
            return r.randbytes(size).translate(PRINTABLE)
        if style == 1:
            return r.randbytes(size)
        if style == 2:  # (a few hundred characters at most: long text comes from the others)
            low, high = r.choice(((0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, 0x10FFFF)))
            chars = map(chr, r.choices(range(low, high + 1), k=min(size, 900) // 3))
            return "".join(chars).encode("utf-8", "surrogatepass")
        if style == 3:
            return r.randbytes(size).translate(SEPARATORS)
        return r.choice((b"", b" ", b"=", b";", b"null", b"undefined", b"\xff\xfe", b"%00", b"\r\n"))

    def token_like(self) -> bytes:
        """Looks like a token (``<26 chars>.<43 chars>``), is not one."""
        r = self.rng
        choice = r.randrange(6)
        if choice == 0:
            return r.choice(self.shells.foreign).encode()
        if choice == 1:
            return f"{''.join(r.choices(B64, k=26))}.{''.join(r.choices(B64, k=43))}".encode()
        if choice == 2:
            token, _ = r.choice(self.shells.pool)
            return (token.rpartition(".")[0] + "." + "".join(r.choices(B64, k=43))).encode()
        if choice == 3:
            _, session_id = r.choice(self.shells.pool)
            return session_id.encode()  # a public id is not a token
        if choice == 4:
            parts = ("".join(r.choices(B64, k=r.randint(0, 60))) for _ in range(r.randint(1, 4)))
            return ".".join(parts).encode() or b"."
        text = self.text(120).replace(b";", b"")
        return text if _stripped(text) else b"x" + text

    def mutated(self, token: str) -> bytes:
        """A live token, changed a little."""
        r = self.rng
        ops = [(r.randrange(len(MUTATIONS)), r.randrange(len(token) + 1), r.choice(B64 + ".=+/% \""))
               for _ in range(r.randint(1, 3))]
        return mutate(token, ops)

    def carrier(self, token: bytes) -> list[tuple[bytes, bytes]]:
        """Headers presenting ``token`` the way a client may, well-formed: a
        cookie among others, or a bearer token (maybe beside a cookie without one)."""
        r = self.rng
        if r.random() < 0.5:
            return carry(token, "bearer", r.randrange(len(SCHEMES)), r.randrange(3),
                         [self.other_cookie() for _ in range(r.choice((0, 0, 1, 2)))], r.random() < 0.2)
        return carry(token, "cookie", 0, 0, [self.other_cookie() for _ in range(r.randint(0, 3))],
                     r.random() < 0.2, at=r.randint(0, 3))

    def other_cookie(self) -> bytes:
        r = self.rng
        value = bytes(r.choices(B64.encode() + b"%.:\"", k=r.randint(0, 60)))
        return r.choice(OTHER_COOKIES) + b"=" + value

    def other_cookies(self) -> bytes:
        return b"; ".join(self.other_cookie() for _ in range(self.rng.randint(1, 3)))

    def ip(self) -> str:
        r = self.rng
        choice = r.randrange(9)
        if choice == 0:
            return ".".join(map(str, r.randbytes(4)))
        if choice == 1:
            return str(ipaddress.IPv6Address(r.getrandbits(128)))
        if choice == 2:
            return f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)}"  # a trusted proxy
        if choice == 3:
            return f"2001:db8:ffff::{r.randrange(65536):x}"  # a trusted proxy
        if choice == 4:
            return r.choice(("127.0.0.1", "::ffff:10.1.2.3", "[::1]", "::ffff:127.0.0.1", "0.0.0.0", "::",
                             "10.0.0.1%eth0", "fe80::1%eth0"))
        if choice == 5:
            return f"{'.'.join(map(str, r.randbytes(4)))}:{r.randrange(65536)}"
        if choice == 6:
            return f"[{ipaddress.IPv6Address(r.getrandbits(128))}]:{r.randrange(65536)}"
        return self.text(40).decode("latin-1")

    def forwarded_for(self) -> bytes:
        r = self.rng
        hops = [self.ip() for _ in range(r.choice((0, 1, 1, 2, 3, r.randint(4, 40))))]
        separators = (",", ", ", " ,", ",,", " ")
        return "".join(h + r.choice(separators) for h in hops).rstrip(", ").encode("latin-1", "replace")

    def other_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers besides the token, each present or not, mangled or not."""
        r = self.rng
        headers: list[tuple[bytes, bytes]] = []
        if r.random() < 0.8:
            agent = r.choice(AGENTS).encode() if r.random() < 0.5 else self.text(600)
            if r.random() < 0.3:
                agent = agent + self.text(200)
            headers.append((b"user-agent", agent))
        if r.random() < 0.5:
            hint = r.choice((b"?1", b"?0", b" ?1 ", b"?", b"1", b"true"))
            headers.append((b"sec-ch-ua-mobile", hint if r.random() < 0.7 else self.text(30)))
        if r.random() < 0.4:
            brands = b'"Chromium";v="131", "Not_A Brand";v="24", "Google Chrome";v="131"'
            headers.append((b"sec-ch-ua", brands if r.random() < 0.5 else self.text(300)))
        if r.random() < 0.3:
            named = r.choice((b'"Android"', b'"macOS"', b'"Windows"'))
            headers.append((b"sec-ch-ua-platform", named if r.random() < 0.5 else self.text(30)))
        if r.random() < 0.5:
            stated = r.choice((b"web", b"mobile", b"desktop", b" Mobile ", b"DESKTOP", b"", b"web\x00"))
            headers.append((PLATFORM_HEADER.encode(), stated if r.random() < 0.7 else self.text(40)))
        for _ in range(r.choice((0, 0, 1, 1, 2, 3))):
            headers.append((b"x-forwarded-for", self.forwarded_for()))
        if r.random() < 0.2:
            headers.append((b"x-session-passive", r.choice((b"1", b"0", b" 1 ", b"true")) if r.random() < 0.7
                            else self.text(10)))
        r.shuffle(headers)
        return headers

    def peer(self) -> str | None:
        r = self.rng
        return None if r.random() < 0.05 else r.choice((self.ip(), "10.0.0.1", "127.0.0.1", "192.0.2.7"))

    def request(self) -> Request:
        r = self.rng
        kind = r.choices(("valid", "garbage", "mutated", "random", "login"), (30, 20, 20, 15, 15))[0]
        headers = self.other_headers()
        session_id = None
        if kind in ("valid", "mutated"):
            token, session_id = r.choice(self.shells.pool)
            headers += self.carrier(token.encode() if kind == "valid" else self.mutated(token))
        elif kind == "garbage":
            headers += self.carrier(self.token_like())
        elif kind == "random" or r.random() < 0.5:  # a login presents no token, or a garbage one
            if r.random() < 0.7:
                headers.append((b"cookie", self.text(200) if r.random() < 0.5 else self.other_cookies()
                                + b"; " + COOKIE.encode() + b"=" + self.text(80)))
            if r.random() < 0.5:
                value = self.text(120) if r.random() < 0.5 else b"Bearer " + self.text(80)
                headers.append((b"authorization", value))
        r.shuffle(headers)
        if kind == "login":
            method, path = "POST", "/login"
        elif kind in ("valid", "mutated") or r.random() < 0.6:
            method, path = "GET", r.choice(("/whoami", "/poll/status", "/whoami", *ADMIN_GETS))
        else:  # a request that presents no live token may try anything
            method, path = r.choice((("POST", "/logout"), *ADMIN_WRITES))
        return Request(kind, method, path, headers, self.peer(), session_id)


# -- what every answer must be ----------------------------------------------------------------------


def judge(request: Request, answer: Outcome, shell: str, shells: Shells) -> None:
    """The answer ``shell`` gave ``request`` (raises ``AssertionError``)."""
    assert answer.status < 500, (shell, answer.status)
    seen = answer.seen
    if seen is None:  # the admin sub-app answered
        assert request.path.startswith("/_sessionguard"), (shell, answer)
        return
    if request.kind == "valid":
        assert seen == {"session": request.session_id, "ended_reason": None}, (shell, seen)
    elif request.kind == "mutated":
        assert seen["session"] in (None, request.session_id), (shell, seen)
        assert seen["ended_reason"] in (None, "invalid"), (shell, seen)
    elif request.kind == "garbage":
        assert seen == {"session": None, "ended_reason": "invalid"}, (shell, seen)
    else:
        assert seen["session"] is None and seen["ended_reason"] in (None, "invalid"), (shell, seen)
    if request.kind == "login":
        made = seen["login"]
        assert made["platform"] in PLATFORMS, made
        assert len(made["user_agent"].encode("utf-8", "surrogatepass")) <= 512, made
        assert 0 < len(made["device"]) <= 100 and made["device"].isprintable(), made
        assert made["ip"] == (request.peer or "") or ipaddress.ip_address(made["ip"]), (made, request.peer)


def fuzz(shells: Shells, request: Request) -> None:
    """``request`` through both shells; any exception or wrong answer fails with the request."""
    for shell, call in (("wsgi", shells._wsgi), ("asgi", shells._asgi)):
        try:
            answer = call(request)
            judge(request, answer, shell, shells)
        except Exception as error:  # noqa: BLE001 - reported with the request that caused it
            detail = "".join(traceback.format_exception(error))
            raise AssertionError(f"{shell} failed on {request!r}:\n{detail}") from None
        shells.answers[f"{request.kind}:{answer.status}"] += 1


@pytest.fixture
def shells() -> Iterator[Shells]:
    made = Shells()
    yield made
    made.close()


def test_fuzzed_headers_never_give_a_5xx_and_a_garbage_token_is_anonymous(shells: Shells) -> None:
    generator = Generator(random.Random(SEED), shells)
    for _ in range(INPUTS):
        fuzz(shells, generator.request())
    # every pooled session is still alive: nothing the fuzz sent ended a session it did not own
    for token, session_id in shells.pool:
        request = Request("valid", "GET", "/whoami", [(b"authorization", b"Bearer " + token.encode())], None,
                          session_id)
        fuzz(shells, request)
    kinds = Counter(k.split(":")[0] for k in shells.answers.elements())
    print(f"fuzz: {INPUTS} inputs x 2 shells, seed {SEED}: {dict(sorted(shells.answers.items()))}")
    assert set(kinds) == {"valid", "garbage", "mutated", "random", "login"}


# -- the same, drawn by Hypothesis (failures shrink) ----------------------------------------------

byte_values = st.one_of(
    st.binary(max_size=700),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from((b"", b" ", b"?1", b"?0", b"web", b"mobile", b"desktop", b"1", b"Bearer", b"=", b";")),
    st.sampled_from(AGENTS).map(str.encode),
)
addresses = st.one_of(st.ip_addresses().map(str), st.sampled_from(("10.1.2.3", "127.0.0.1", "[::1]", "")),
                      st.text(max_size=30))
other_headers = st.lists(st.tuples(
    st.sampled_from((b"user-agent", b"sec-ch-ua-mobile", b"sec-ch-ua", b"sec-ch-ua-platform",
                     PLATFORM_HEADER.encode(), b"x-session-passive")),
    byte_values,
), max_size=6)
forwarded = st.lists(
    st.lists(addresses, max_size=6).map(lambda hops: ", ".join(hops).encode("utf-8", "surrogatepass")),
    max_size=3,
).map(lambda lines: [(b"x-forwarded-for", line) for line in lines])
mutations = st.lists(st.tuples(st.integers(0, len(MUTATIONS) - 1), st.integers(0, 80),
                               st.characters(codec="latin-1")), min_size=1, max_size=3)


@st.composite
def drawn_requests(draw: st.DrawFn) -> tuple[Request, int]:
    """A request and the index of the pooled session it presents (if it does)."""
    kind = draw(st.sampled_from(("valid", "garbage", "mutated", "random", "login")))
    index = draw(st.integers(0, POOL - 1))
    headers = draw(other_headers) + draw(forwarded)
    if kind in ("valid", "mutated", "garbage"):
        token = b"TOKEN"  # resolved against the pool in the test
        if kind == "mutated":
            token = b"MUTATED"
        elif kind == "garbage":
            token = draw(st.one_of(
                st.binary(min_size=1, max_size=120).filter(lambda b: b";" not in b and _stripped(b)),
                st.from_regex(r"\A[A-Za-z0-9_\-]{26}\.[A-Za-z0-9_\-]{43}\Z").map(str.encode),
            ))
        others = draw(st.lists(st.sampled_from(OTHER_COOKIES).map(lambda n: n + b"=v"), max_size=3))
        headers += carry(token, draw(st.sampled_from(("cookie", "bearer"))), draw(st.integers(0, 3)),
                         draw(st.integers(0, 2)), others, draw(st.booleans()), draw(st.integers(0, 3)))
    elif draw(st.booleans()):
        headers += [(b"cookie", draw(byte_values)), (b"authorization", draw(byte_values))]
    method, path = ("POST", "/login") if kind == "login" else draw(st.sampled_from(
        (("GET", "/whoami"), ("GET", "/poll/status"), *(("GET", p) for p in ADMIN_GETS))))
    peer = draw(st.one_of(st.none(), addresses))
    return Request(kind, method, path, draw(st.permutations(headers)), peer), index


def _stripped(token: bytes) -> bool:
    """Whether ``token`` is still there once the shells strip the header text."""
    return bool(token.decode("latin-1").strip())


@pytest.fixture(scope="module")
def module_shells() -> Iterator[Shells]:
    made = Shells()
    yield made
    made.close()


@settings(max_examples=int(os.environ.get("SESSIONGUARD_FUZZ_EXAMPLES", "500")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(drawn=drawn_requests(), ops=mutations)
def test_drawn_headers_never_give_a_5xx_and_a_garbage_token_is_anonymous(
    module_shells: Shells, drawn: tuple[Request, int], ops: list[tuple[int, int, str]]
) -> None:
    request, index = drawn
    token, session_id = module_shells.pool[index]
    presented = {b"TOKEN": token.encode(), b"MUTATED": mutate(token, ops)}
    if request.kind in ("valid", "mutated"):
        request.session_id = session_id
        request.headers = [(name, value.replace(b"TOKEN", presented[b"TOKEN"]).replace(
            b"MUTATED", presented[b"MUTATED"])) if name in (b"cookie", b"authorization") else (name, value)
            for name, value in request.headers]
    fuzz(module_shells, request)
