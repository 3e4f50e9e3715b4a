"""A stateful model test (issue 16): the memory store, the Redis store and a
plain reference model of SPEC §4, driven side by side by Hypothesis.

Each step is a login (three users; the platform stated by ``login``'s
argument, the platform header, a client hint or the User-Agent; remember-me),
a request (active or passive, by cookie or bearer, from the client holding
the session or from anywhere with any token ever issued, or a forged one), a
logout, a revocation (one session or a user's, through the store or the admin
API), a sign-out of everyone (keeping one session or none), a policy change
(idle and absolute timeouts, limits, the remember-me period and ``on_limit``,
raised or lowered) or a move of the injected clock (to a session's deadline,
a millisecond either side, too). The two products are driven through their public faces:
the WSGI shell (``guard.wsgi``) around a small host app, the admin API under
``ADMIN_PATH`` with the admin token, and the store the guard exposes as
``guard.store``. After every step they must agree with the model on which
sessions are valid (the admin listing), and every presented token must get
the model's ``ended_reason``.

The reference model (:class:`Reference`) is written from SPEC §4 alone. Where
the SPEC leaves a choice open, it takes this rule (and why):

- *Moments*: every login and request happens in a millisecond of its own (the
  machine moves the clock 1 ms first), so no two logins tie on login time or
  on last use under ``EVICT=least_recent``, and no login shares the
  millisecond of a sign-out of everyone. The SPEC orders neither tie.
- *Deadlines are inclusive*: a session ends at the moment ``expires_at``
  names (last use + idle limit, login + absolute timeout), as SPEC §2 defines
  ``expires_at`` as "the earliest moment the session ends".
- *Which timeout*: sessions are judged at every step; when one step carries a
  session past both deadlines, the reason is the one whose deadline came first,
  ``absolute_timeout`` on a tie (SPEC 9.1: the absolute timeout is the one
  nothing can extend).
- *Unpresented timeouts*: a session ends at its deadline whether or not
  anyone presents it (SPEC 9.3). The stores notice such endings at the next
  request presenting the token, or by their sweep (every process sweeps
  within a minute by itself; on the injected clock here only when told): the
  machine sweeps (``guard.sweep()``) in the step where the model ends a
  session by timeout. What goes wrong without that is pinned by the
  ``xfail`` tests at the end.
- *Login at the limit*: a login ends the session its request presented (SPEC
  §2, the session-fixation defence) and does not count it against the limit;
  so a client logging in again at the limit replaces its own session (under
  ``reject`` too), and a login the limit refuses changes nothing: the
  presented session stays valid (SPEC §4, "the new login fails and nothing
  changes").
- *Lowering a limit* (``set_policy``) ends nothing by itself: a user's
  surplus ends, in ``EVICT`` order, at the next request presenting any of
  that user's sessions (SPEC 9.1; :meth:`Reference.reconcile`), or the next
  login of that user on that platform evicts down to the new limit (SPEC §4).
- *Retention*: a run covers at most :data:`SPAN_MS` of clock time, inside the
  24 h during which SPEC §4 promises an ended token its reason.

Not driven here: users' own timeouts, roles, rotation and the 0.2 additions
(SPEC 9); several processes on one Redis (the store contract tests do that).

The step count is ``SESSIONGUARD_MODEL_STEPS`` (default 10,000, CI's); raise
it locally for a longer search.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from werkzeug.test import Client

from conftest import SECRET
from sessionguard import Config, SessionGuard, SessionLimitReached
from sessionguard.core import LIMITS_GRACE_MS

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
#: Clock time one run covers at most (ended sessions keep their reason for 24 h).
SPAN_MS = 20 * HOUR
START_MS = 1_800_000_000_000

STEPS = int(os.environ.get("SESSIONGUARD_MODEL_STEPS", "10000"))
STEPS_PER_RUN = 50

USERS = ("ada", "bob", "cy")
PLATFORMS = ("web", "mobile", "desktop")
ADMIN_TOKEN = "model-admin-token-" + "t" * 32
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
COOKIE = "sg_session"
#: User agents the classifier puts on each platform (SPEC §4).
AGENTS = {
    "web": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Slack/4.41.105 Chrome/128.0.6613.120 Electron/32.1.2 Safari/537.36",
}

# Timeouts in seconds (None: never); limits (None: unlimited).
IDLE = (None, 60, 5 * 60, 20 * 60, 3600)
ABSOLUTE = (None, 10 * 60, 45 * 60, 2 * 3600, 6 * 3600)
REMEMBER = (None, 3 * 60, 30 * 60, 4 * 3600)
LIMITS = (None, 1, 1, 2, 3)  # (1 twice: limits bite more often)
ENDINGS = ("idle_timeout", "absolute_timeout", "evicted", "revoked", "signed_out", "signout_all")
UNITS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
#: How far the clock moves in one step (ms).
STEPS_MS = (1, 999, SECOND, 30 * SECOND, MINUTE - 1, MINUTE, 2 * MINUTE, 5 * MINUTE, 20 * MINUTE, HOUR,
            3 * HOUR)

counted = {"steps": 0, "runs": 0}
#: what presented tokens got, over a whole test (each product counts)
seen: Counter[str] = Counter()


def duration(seconds: int | None) -> str:
    """A duration as the policy JSON shows it: in the largest exact unit (SPEC §5)."""
    if seconds is None:
        return "never"
    unit = next(u for u in ("d", "h", "m", "s") if seconds % UNITS[u] == 0)
    return f"{seconds // UNITS[unit]}{unit}"


# -- the reference model ---------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """One platform's policy: idle and absolute timeout (s), limit."""

    idle: int | None
    absolute: int | None
    limit: int | None


@dataclass
class Sess:
    """One session of the model, with its token and public id in each product."""

    key: int
    user: str
    platform: str
    remember: bool
    created: int
    last_used: int
    ended: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Policy:
    """The model's policy: per platform, the remember-me period, ``on_limit``;
    ``evict`` comes from the environment and never changes."""

    platforms: dict[str, Limits]
    remember: int | None
    on_limit: str
    evict: str

    def to_json(self) -> dict[str, Any]:
        return {
            "platforms": {
                p: {"idle_timeout": duration(v.idle), "absolute_timeout": duration(v.absolute),
                    "session_timeout": duration(v.absolute),  # no SESSION_TIMEOUT of its own here
                    "max_sessions": v.limit}
                for p, v in self.platforms.items()
            },
            "remember_me_period": duration(self.remember),
            "on_limit": self.on_limit,
            "max_sessions_total": None,
        }


class Reference:
    """SPEC §4 as a dict of sessions: timeouts, remember-me, per-platform limits
    with ``evict_oldest`` / ``reject`` in ``EVICT`` order, revocation, sign-out
    of everyone. Times are milliseconds; :meth:`settle` ends, at a moment,
    every session a timeout has ended by then."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sessions: list[Sess] = []
        #: limits lowered (SPEC 9.1): when (0: never), when each user's sessions were
        #: reconciled with them since, and the sessions the last presentation ended so
        self.lowered = 0
        self.marks: dict[str, int] = {}
        self.reconciled: list[Sess] = []

    def valid(self) -> list[Sess]:
        return [s for s in self.sessions if s.ended is None]

    def idle_limit(self, s: Sess) -> int | None:
        return self.policy.remember if s.remember else self.policy.platforms[s.platform].idle

    def timed_out(self, s: Sess, now: int) -> str | None:
        absolute = self.policy.platforms[s.platform].absolute
        ends = None if absolute is None else s.created + absolute * SECOND
        idle = self.idle_limit(s)
        idles = None if idle is None else s.last_used + idle * SECOND
        if idles is not None and now >= idles and (ends is None or idles < ends):
            return "idle_timeout"  # the deadline that came first
        if ends is not None and now >= ends:
            return "absolute_timeout"
        return None

    def deadline(self, s: Sess) -> int | None:
        ends = []
        absolute = self.policy.platforms[s.platform].absolute
        if absolute is not None:
            ends.append(s.created + absolute * SECOND)
        idle = self.idle_limit(s)
        if idle is not None:
            ends.append(s.last_used + idle * SECOND)
        return min(ends) if ends else None

    def settle(self, now: int) -> list[Sess]:
        """End every valid session a timeout has ended by ``now``."""
        ended = []
        for s in self.valid():
            reason = self.timed_out(s, now)
            if reason is not None:
                s.ended = reason
                ended.append(s)
        return ended

    def present(self, s: Sess | None, now: int, *, active: bool) -> str | None:
        """What a request presenting ``s`` learns: ``None`` (valid, or no token)
        or why it ended. An active request is a use."""
        self.reconciled = []
        if s is None:
            return None
        if s.ended is None:
            self.reconcile(s, now)
        if s.ended is None and active:
            s.last_used = now
        return s.ended

    def lower(self, now: int) -> None:
        """A limit was lowered at ``now``."""
        self.lowered = now
        seen["lowered"] += 1

    def reconcile(self, s: Sess, now: int) -> None:
        """A valid session presented after limits were lowered (created before,
        or within the grace after, and its user not reconciled since then and
        since it was created): its user keeps at most the limit on each
        platform, the surplus ends in ``EVICT`` order."""
        mark = self.marks.get(s.user)
        if not self.lowered or s.created >= self.lowered + LIMITS_GRACE_MS:
            return
        if mark is not None and mark > self.lowered and mark > s.created:
            return
        self.marks[s.user] = now
        for platform, limits in self.policy.platforms.items():
            alive = [x for x in self.valid() if x.user == s.user and x.platform == platform]
            if limits.limit is None or len(alive) <= limits.limit:
                continue
            least_recent = self.policy.evict == "least_recent"
            alive.sort(key=(lambda x: x.last_used) if least_recent else (lambda x: x.created))
            for x in alive[: len(alive) - limits.limit]:
                x.ended = "evicted"
                self.reconciled.append(x)
                seen["surplus"] += 1

    def login(self, key: int, user: str, platform: str, remember: bool, presented: Sess | None,
              now: int) -> tuple[Sess | None, list[Sess]]:
        """A login: the new session (``None``: refused) and the sessions it evicted."""
        alive = [s for s in self.valid() if s.user == user and s.platform == platform and s is not presented]
        limit = self.policy.platforms[platform].limit
        evicted: list[Sess] = []
        if limit is not None and len(alive) >= limit and self.policy.on_limit == "reject":
            return None, []  # nothing changes
        if presented is not None and presented.ended is None:
            presented.ended = "signed_out"
        if limit is not None and len(alive) >= limit:
            if self.policy.evict == "least_recent":
                alive.sort(key=lambda s: s.last_used)
            else:
                alive.sort(key=lambda s: s.created)
            evicted = alive[: len(alive) - limit + 1]
            for s in evicted:
                s.ended = "evicted"
        new = Sess(key, user, platform, remember, created=now, last_used=now)
        self.sessions.append(new)
        return new, evicted

    def end(self, s: Sess, reason: str) -> bool:
        if s.ended is not None:
            return False
        s.ended = reason
        return True

    def end_user(self, user: str, platform: str | None) -> list[Sess]:
        ended = [s for s in self.valid() if s.user == user and platform in (None, s.platform)]
        for s in ended:
            s.ended = "revoked"
        return ended

    def end_all(self, keep: Sess | None) -> None:
        for s in self.valid():
            if s is not keep:
                s.ended = "signout_all"


# -- the products -------------------------------------------------------------------------


class ModelClock:
    """The injected clock: integer milliseconds, read as seconds."""

    def __init__(self) -> None:
        self.ms = START_MS

    def __call__(self) -> float:
        return self.ms / 1000


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The app behind the guard: ``/login``, ``/logout`` and anything else
    answers what the request's session is."""
    ctx = environ["sessionguard"]
    seen = {"session": None if ctx.session is None else ctx.session.id, "ended_reason": ctx.ended_reason}
    path, status = environ["PATH_INFO"], "200 OK"
    if path == "/login":
        query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
        try:
            session = ctx.login(query["user"], remember_me=query.get("remember") == "1",
                                platform=query.get("platform"))
        except SessionLimitReached:
            status = "409 Conflict"
        else:
            seen.update(token=session.token, id=session.id, platform=session.platform,
                        user=session.user_id, remember_me=session.remember_me)
    elif path == "/logout":
        ctx.logout()
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@dataclass
class Answer:
    status: int
    body: Any
    cookies: list[str]


class Product:
    """One guard (memory or Redis store) behind the WSGI shell."""

    def __init__(self, name: str, config: Config, clock: ModelClock) -> None:
        self.name = name
        self.events: list[Any] = []
        self.guard = SessionGuard(config, clock=clock, on_event=self.events.append)
        self.client = Client(self.guard.wsgi(host_app), use_cookies=False)

    def call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             body: Any = None) -> Answer:
        self.events.clear()
        response = self.client.open(path, method=method, headers=headers or {}, json=body,
                                    base_url="https://app.test")
        assert response.status_code < 500, (self.name, response.status_code, response.get_data())
        text = response.get_data(as_text=True)
        parsed = json.loads(text) if text and response.mimetype == "application/json" else None
        return Answer(response.status_code, parsed, response.headers.getlist("Set-Cookie"))


def jar_after(cookies: list[str], before: str | None) -> str | None:
    """The session cookie a browser holds after a response's ``Set-Cookie``."""
    held = before
    for cookie in cookies:
        name, _, rest = cookie.partition("=")
        if name != COOKIE:
            continue
        value = rest.split(";", 1)[0]
        held = None if value == "" or "Max-Age=0" in cookie else value
    return held


@dataclass
class ClientState:
    """A browser (cookie) or a native client (bearer) and what it holds: the
    model session, and the token each product gave it."""

    bearer: bool
    held: Sess | None = None
    jar: dict[str, str | None] = field(default_factory=dict)


# -- the machine ------------------------------------------------------------------------------


class SessionMachine(RuleBasedStateMachine):
    """Memory store, Redis store and :class:`Reference`, step by step."""

    redis_url = ""
    key_prefix = ""
    runs = itertools.count()
    closer: ThreadPoolExecutor
    closing: list[Future[None]] = []

    def __init__(self) -> None:
        super().__init__()
        self.clock = ModelClock()
        self.products: list[Product] = []
        self.model = Reference(Policy({}, None, "evict_oldest", "oldest_login"))
        self.clients = [ClientState(bearer=i >= 4) for i in range(6)]
        self.keys = itertools.count()
        self.to_list: set[str] = set()
        self.stepped = False

    # -- set-up ---------------------------------------------------------------------------

    @initialize(
        evict=st.sampled_from(("oldest_login", "least_recent")),
        on_limit=st.sampled_from(("evict_oldest", "reject")),
        limits=st.tuples(*[st.tuples(st.sampled_from(IDLE), st.sampled_from(ABSOLUTE),
                                     st.sampled_from(LIMITS)) for _ in PLATFORMS]),
        remember=st.sampled_from(REMEMBER),
    )
    def start(self, evict: str, on_limit: str, limits: tuple[tuple[Any, ...], ...],
              remember: int | None) -> None:
        platforms = {p: Limits(*v) for p, v in zip(PLATFORMS, limits, strict=True)}
        self.model.policy = Policy(platforms, remember, on_limit, evict)
        settings_: dict[str, Any] = {
            "secret_key": SECRET, "admin_token": ADMIN_TOKEN, "evict": evict, "on_limit": on_limit,
            "remember_me_period": duration(remember), "passive_paths": "/poll",
        }
        for p, v in platforms.items():
            settings_[f"{p}_idle_timeout"] = duration(v.idle)
            settings_[f"{p}_absolute_timeout"] = duration(v.absolute)
            settings_[f"{p}_max_sessions"] = "unlimited" if v.limit is None else v.limit
        prefix = f"{self.key_prefix}:{next(self.runs)}:"
        for name, store in (("memory", {"store_url": "memory://"}),
                            ("redis", {"store_url": self.redis_url, "key_prefix": prefix})):
            self.products.append(Product(name, Config(**settings_, **store), self.clock))
        counted["runs"] += 1

    def teardown(self) -> None:
        # Closing a Redis guard joins its subscriber thread (up to a quarter of a
        # second): done aside, and waited for once at the end of the test.
        for product in self.products:
            self.closing.append(self.closer.submit(product.guard.close))

    # -- helpers ---------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.ms

    def _moment(self) -> None:
        """A login or request: a millisecond of its own."""
        self.clock.ms += 1
        self._settle()

    def _settle(self) -> None:
        """Timeouts the model sees at this moment; their users are listed at
        the end of the step (see the module docstring)."""
        self.to_list.update(s.user for s in self.model.settle(self.now))

    def _list_ended_users(self) -> None:
        if self.to_list:
            for product in self.products:
                product.guard.sweep()
        self.to_list.clear()

    def _token_headers(self, product: Product, client: ClientState) -> dict[str, str]:
        token = client.jar.get(product.name)
        if token is None:
            return {}
        if client.bearer:
            return {"Authorization": f"Bearer {token}"}
        return {"Cookie": f"{COOKIE}={token}"}

    def _expect_seen(self, product: Product, answer: Answer, s: Sess | None, reason: str | None) -> None:
        seen[reason or ("valid" if s is not None else "anonymous")] += 1
        assert answer.body["ended_reason"] == reason, (product.name, answer.body, s)
        expected = None if s is None or reason is not None else s.ids[product.name]
        assert answer.body["session"] == expected, (product.name, answer.body, s)

    def _after_response(self, product: Product, client: ClientState, answer: Answer,
                        expected: str | None) -> None:
        """A browser keeps what ``Set-Cookie`` says; it must be what the model says."""
        if client.bearer:
            return
        client.jar[product.name] = jar_after(answer.cookies, client.jar.get(product.name))
        assert client.jar[product.name] == expected, (product.name, answer.cookies)

    def _session(self, pick: int) -> Sess:
        return self.model.sessions[pick % len(self.model.sessions)]

    # -- rules -------------------------------------------------------------------------------

    @rule(
        who=st.integers(0, 5), user=st.sampled_from(USERS), platform=st.sampled_from(PLATFORMS),
        how=st.sampled_from(("argument", "header", "agent", "hint")), remember=st.booleans(),
    )
    def login(self, who: int, user: str, platform: str, how: str, remember: bool) -> None:
        self._login(who, user, platform, how, remember)

    @precondition(lambda self: self.model.valid())
    @rule(pick=st.integers(0, 1000), who=st.integers(0, 5), remember=st.booleans())
    def login_beside_a_live_session(self, pick: int, who: int, remember: bool) -> None:
        """Another login of a live session's user on its platform: where limits bite."""
        valid = self.model.valid()
        s = valid[pick % len(valid)]
        self._login(who, s.user, s.platform, "argument", remember)

    def _login(self, who: int, user: str, platform: str, how: str, remember: bool) -> None:
        self._moment()
        client = self.clients[who]
        presented = client.held
        reason = self.model.present(presented, self.now, active=True)
        reconciled = self.model.reconciled  # the presented session's check ended these (lowered limits)
        key = next(self.keys)
        new, evicted = self.model.login(key, user, platform, remember, presented, self.now)
        evicted = reconciled + evicted
        query = f"/login?user={user}&remember={int(remember)}"
        other = PLATFORMS[(PLATFORMS.index(platform) + 1) % 3]
        headers = {"User-Agent": AGENTS[other]}
        if how == "argument":  # the argument wins over the header and the agent
            query += f"&platform={platform}"
            headers["X-Client-Platform"] = other
        elif how == "header":  # the header wins over the client hint and the agent
            headers["X-Client-Platform"] = platform
            headers["Sec-CH-UA-Mobile"] = "?1"
        elif how == "hint" and platform == "mobile":
            headers["Sec-CH-UA-Mobile"] = "?1"
        else:  # the agent decides; ?0 proves nothing
            headers = {"User-Agent": AGENTS[platform], "Sec-CH-UA-Mobile": "?0"}
        for product in self.products:
            answer = product.call("POST", query, headers={**headers, **self._token_headers(product, client)})
            self._expect_seen(product, answer, presented, reason)
            if new is None:
                seen["refused"] += 1
                seen["limit"] += 1
                assert answer.status == 409, (product.name, answer.status, answer.body)
                # nothing changed (module docstring): the presented session, if valid,
                # stays so, its cookie with it (cleared only when it was already invalid)
                types = [e.type for e in product.events]
                assert types.count("rejected") == 1 and "logout" not in types, (product.name, types)
                kept = None if reason is not None else client.jar.get(product.name)
                self._after_response(product, client, answer, kept)
                continue
            assert answer.status == 200, (product.name, answer.status, answer.body)
            body = answer.body
            assert (body["user"], body["platform"], body["remember_me"]) == (user, platform, remember)
            new.tokens[product.name], new.ids[product.name] = body["token"], body["id"]
            cookie = next(c for c in answer.cookies if c.startswith(f"{COOKIE}={body['token']};"))
            assert ("Max-Age" in cookie) == remember, cookie
            self._after_response(product, client, answer, body["token"])
            if client.bearer:
                client.jar[product.name] = body["token"]
            if evicted:
                seen["limit"] += 1
            if reconciled:
                seen["reconciled"] += 1
            ended = {e.session_id for e in product.events if e.type == "evicted"}
            assert ended == {s.ids[product.name] for s in evicted}, (product.name, ended, evicted)
            logged_out = [e.session_id for e in product.events if e.type == "logout"]
            replaced = presented is not None and reason is None
            assert logged_out == ([presented.ids[product.name]] if replaced and presented else [])
        if new is not None:
            client.held = new
        elif not client.bearer and reason is not None:
            client.held = None

    @rule(who=st.integers(0, 5), passive=st.sampled_from((None, "header", "path")))
    def request(self, who: int, passive: str | None) -> None:
        self._moment()
        client = self.clients[who]
        s = client.held
        reason = self.model.present(s, self.now, active=passive is None)
        path = "/poll/status" if passive == "path" else "/whoami"
        for product in self.products:
            headers = self._token_headers(product, client)
            if passive == "header":
                headers["X-Session-Passive"] = "1"
            answer = product.call("GET", path, headers=headers)
            self._expect_seen(product, answer, s, reason)
            self._after_response(product, client, answer,
                                 None if reason is not None else client.jar.get(product.name))
        if reason is not None and not client.bearer:
            client.held = None

    @precondition(lambda self: self.model.sessions)
    @rule(pick=st.integers(0, 1000), passive=st.booleans(), live=st.booleans())
    def present_any_token(self, pick: int, passive: bool, live: bool) -> None:
        """Any token ever issued (or, ``live``, of a valid session), from a new
        client, by bearer."""
        self._moment()
        valid = self.model.valid()
        s = valid[pick % len(valid)] if live and valid else self._session(pick)
        reason = self.model.present(s, self.now, active=not passive)
        for product in self.products:
            headers = {"Authorization": f"Bearer {s.tokens[product.name]}"}
            if passive:
                headers["X-Session-Passive"] = "1"
            self._expect_seen(product, product.call("GET", "/whoami", headers=headers), s, reason)

    @precondition(lambda self: self.model.sessions)
    @rule(pick=st.integers(0, 1000), forgery=st.sampled_from(("other_store", "tampered", "public_id")))
    def present_a_forged_token(self, pick: int, forgery: str) -> None:
        """A correctly signed token the store does not know (the other product's:
        both sign with one key), a token with a changed signature, or a session's
        public id: each is ``invalid``, and changes nothing (strict mode)."""
        self._moment()
        s = self._session(pick)
        for product, other in zip(self.products, self.products[::-1], strict=True):
            own = s.tokens[product.name]
            token = {
                "other_store": s.tokens[other.name],
                "tampered": own[:-2] + ("AA" if own[-2:] != "AA" else "BB"),
                "public_id": s.ids[product.name],
            }[forgery]
            answer = product.call("GET", "/whoami", headers={"Authorization": f"Bearer {token}"})
            self._expect_seen(product, answer, None, "invalid")

    @rule(who=st.integers(0, 5))
    def logout(self, who: int) -> None:
        self._moment()
        client = self.clients[who]
        s = client.held
        reason = self.model.present(s, self.now, active=True)
        if s is not None and reason is None:
            self.model.end(s, "signed_out")
        for product in self.products:
            answer = product.call("POST", "/logout", headers=self._token_headers(product, client))
            self._expect_seen(product, answer, s, reason)
            # logout clears the cookie even when there was none to end
            self._after_response(product, client, answer, None)
            logged_out = [e.session_id for e in product.events if e.type == "logout"]
            assert logged_out == ([s.ids[product.name]] if s is not None and reason is None else [])
        if not client.bearer:
            client.held = None

    @precondition(lambda self: self.model.sessions)
    @rule(pick=st.integers(0, 1000), api=st.booleans())
    def revoke(self, pick: int, api: bool) -> None:
        s = self._session(pick)
        ended = self.model.end(s, "revoked")
        for product in self.products:
            if api:
                answer = product.call("DELETE", f"/_sessionguard/api/sessions/{s.ids[product.name]}",
                                      headers=ADMIN)
                assert answer.status == (204 if ended else 404), (product.name, answer)
            else:
                record = product.guard.store.end(s.ids[product.name], "revoked")
                assert (record is not None) == ended, (product.name, record, s)

    @rule(user=st.sampled_from(USERS), platform=st.sampled_from((None, *PLATFORMS)), api=st.booleans())
    def revoke_user(self, user: str, platform: str | None, api: bool) -> None:
        ended = self.model.end_user(user, platform)
        expected = {s.key for s in ended}
        for product in self.products:
            ids = {s.ids[product.name]: s.key for s in self.model.sessions if product.name in s.ids}
            if api:
                body = {} if platform is None else {"platform": platform}
                answer = product.call("POST", f"/_sessionguard/api/users/{quote(user)}/signout",
                                      headers=ADMIN, body=body)
                assert (answer.status, answer.body) == (200, {"ended": len(expected)}), product.name
                got = {ids[e.session_id] for e in product.events if e.type == "revoked"}
            else:
                records = product.guard.store.end_user(user, "revoked", platform=platform)
                got = {ids[r.id] for r in records}
            assert got == expected, (product.name, got, expected)

    @rule(keep=st.one_of(st.none(), st.integers(0, 1000)), api=st.booleans())
    def sign_out_everyone(self, keep: int | None, api: bool) -> None:
        kept = None if keep is None or api or not self.model.sessions else self._session(keep)
        self.model.end_all(kept)
        for product in self.products:
            if api:
                answer = product.call("POST", "/_sessionguard/api/signout-all", headers=ADMIN,
                                      body={"confirm": "SIGN OUT ALL"})
                assert answer.status == 200, (product.name, answer)
            else:
                product.guard.store.end_all(keep=None if kept is None else kept.ids[product.name])

    @rule(
        platform=st.sampled_from((None, *PLATFORMS)),
        change=st.one_of(
            st.tuples(st.just("idle_timeout"), st.sampled_from(IDLE)),
            st.tuples(st.just("absolute_timeout"), st.sampled_from(ABSOLUTE)),
            st.tuples(st.just("max_sessions"), st.sampled_from(LIMITS)),
            st.tuples(st.just("remember_me_period"), st.sampled_from(REMEMBER)),
            st.tuples(st.just("on_limit"), st.sampled_from(("evict_oldest", "reject"))),
        ),
        api=st.booleans(),
    )
    def set_policy(self, platform: str | None, change: tuple[str, Any], api: bool) -> None:
        """A policy change; ``platform`` ``None``: the platform of the newest live session."""
        name, value = change
        if platform is None:
            valid = self.model.valid()
            platform = valid[-1].platform if valid else "web"
        policy = self.model.policy
        if name == "on_limit":
            document: dict[str, Any] = {"on_limit": value}
            policy.on_limit = value
        elif name == "remember_me_period":
            document = {"remember_me_period": duration(value)}
            policy.remember = value
        else:
            shown = value if name == "max_sessions" else duration(value)
            document = {"platforms": {platform: {name: shown}}}
            field_name = {"idle_timeout": "idle", "absolute_timeout": "absolute", "max_sessions": "limit"}
            before = policy.platforms[platform].limit
            if name == "max_sessions" and value is not None and (before is None or value < before):
                self.model.lower(self.now)  # the surplus ends at the next request of the user's
            policy.platforms[platform] = replace(policy.platforms[platform], **{field_name[name]: value})
        self._settle()  # policy changes apply at once (SPEC §4)
        for product in self.products:
            if api:
                answer = product.call("PUT", "/_sessionguard/api/policy", headers=ADMIN, body=document)
                assert answer.status == 200, (product.name, answer)
                assert answer.body == policy.to_json(), (product.name, answer.body)
            else:
                store = product.guard.store
                store.set_policy(store.policy().updated(document))
                assert store.policy().to_json() == policy.to_json(), product.name

    @precondition(lambda self: self.model.valid())
    @rule(pick=st.integers(0, 1000), api=st.booleans())
    def lower_a_limit_below_a_user(self, pick: int, api: bool) -> None:
        """A platform's limit set below what a live session's user holds there (SPEC 9.1:
        the surplus ends at the next request of one of the user's sessions)."""
        valid = self.model.valid()
        s = valid[pick % len(valid)]
        held = sum(x.user == s.user and x.platform == s.platform for x in valid)
        self.set_policy(s.platform, ("max_sessions", max(1, held - 1)), api)

    @rule(step=st.sampled_from(STEPS_MS))
    def wait(self, step: int) -> None:
        self.clock.ms = min(self.now + step, START_MS + SPAN_MS)
        self._settle()

    @precondition(lambda self: self.model.valid())
    @rule(pick=st.integers(0, 1000), offset=st.sampled_from((-1, 0, 1)))
    def wait_for_a_deadline(self, pick: int, offset: int) -> None:
        """To a session's deadline, a millisecond either side or exactly."""
        valid = self.model.valid()
        ends = self.model.deadline(valid[pick % len(valid)])
        if ends is not None and self.now < ends + offset <= START_MS + SPAN_MS:
            self.clock.ms = ends + offset
        self._settle()

    @rule()
    def look_at_every_token(self) -> None:
        """Every token ever issued, passively: each gets the model's answer."""
        for s in self.model.sessions:
            for product in self.products:
                answer = product.call("GET", "/whoami", headers={
                    "Authorization": f"Bearer {s.tokens[product.name]}", "X-Session-Passive": "1"})
                self._expect_seen(product, answer, s, self.model.present(s, self.now, active=False))

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def listings_agree(self) -> None:
        """The admin listing of each product is the model's valid sessions."""
        if not self.products:
            return
        self._list_ended_users()
        if self.stepped:
            counted["steps"] += 1
        self.stepped = True  # (the first check follows the set-up, not a step)
        expected = {s.key: s for s in self.model.valid()}
        for product in self.products:
            page = product.guard.store.list_sessions(user_id=None, platform=None, limit=500, cursor=None)
            keys = {s.ids[product.name]: s.key for s in self.model.sessions if product.name in s.ids}
            listed = {keys[r.id]: r for r in page.items}
            assert set(listed) == set(expected), (product.name, sorted(listed), sorted(expected), self.now)
            for key, record in listed.items():
                s = expected[key]
                assert (record.user_id, record.platform, record.remember_me, record.created) == (
                    s.user, s.platform, s.remember, s.created), (product.name, record, s)


@pytest.fixture
def machine(redis_server: Any, key_prefix: str) -> Iterator[type[SessionMachine]]:
    SessionMachine.redis_url = redis_server.url
    SessionMachine.key_prefix = key_prefix
    with ThreadPoolExecutor(8) as SessionMachine.closer:
        yield SessionMachine
    for closed in SessionMachine.closing:
        closed.result()  # a guard that failed to close fails the test
    SessionMachine.closing.clear()


def test_memory_redis_and_the_model_agree(machine: type[SessionMachine]) -> None:
    """At least ``SESSIONGUARD_MODEL_STEPS`` steps in total, in runs of up to 50."""
    counted.update(steps=0, runs=0)
    seen.clear()
    while counted["steps"] < STEPS:  # runs average about 40 steps: ask for what is still missing
        runs = -(-(STEPS - counted["steps"]) // 40)
        options = settings(max_examples=runs, stateful_step_count=STEPS_PER_RUN, deadline=None,
                           suppress_health_check=list(HealthCheck))
        run_state_machine_as_test(machine, settings=options)
    print(f"model: {counted['steps']} steps in {counted['runs']} runs; answers: {dict(seen)}")
    if STEPS >= 10_000:  # a search this long meets these (else the machine is broken); evicted
        # tokens are presented rarely: a limit that bit (evicting or refusing) counts instead
        met = {name for name, count in seen.items() if count}
        assert met >= {"valid", "anonymous", "invalid", "limit", *ENDINGS} - {"evicted"}, seen


# -- endings nobody presented: what the machine avoids by listing (see the module docstring) ------

LAZY = ("without a sweep (each process's, within a minute; on the injected clock only when told) the "
        "stores notice a timeout only when the session is next presented, and judge it then by the "
        "policy and epoch of that moment")


def _guarded(make_guard: Any, **settings: Any) -> tuple[SessionGuard, Client, Any]:
    guard = make_guard(**settings)
    client = Client(guard.wsgi(host_app), use_cookies=False)
    response = client.post("/login?user=ada")
    assert response.status_code == 200
    return guard, client, response.get_json()


def _seen(client: Client, token: str) -> Any:
    return client.get("/whoami", headers={"Authorization": f"Bearer {token}"}).get_json()


@pytest.mark.xfail(strict=True, reason=f"a longer idle timeout brings back a session that idled out: {LAZY}")
def test_a_longer_idle_timeout_does_not_bring_back_a_session_that_idled_out(
    make_guard: Any, clock: Any
) -> None:
    guard, client, ada = _guarded(make_guard, idle_timeout="5m")
    clock.advance(6 * 60)
    guard.store.set_policy(guard.store.policy().updated({"platforms": {"web": {"idle_timeout": "1h"}}}))
    assert _seen(client, ada["token"]) == {"session": None, "ended_reason": "idle_timeout"}


def test_a_session_that_idled_out_says_so_after_its_absolute_timeout_too(make_guard: Any, clock: Any) -> None:
    _, client, ada = _guarded(make_guard, idle_timeout="5m", absolute_timeout="1h")
    clock.advance(2 * 3600)
    assert _seen(client, ada["token"]) == {"session": None, "ended_reason": "idle_timeout"}


@pytest.mark.xfail(strict=True, reason=f"an idled-out session reports a later sign-out of everyone: {LAZY}")
def test_a_session_that_idled_out_before_a_sign_out_of_everyone_says_so(make_guard: Any, clock: Any) -> None:
    guard, client, ada = _guarded(make_guard, idle_timeout="5m")
    clock.advance(10 * 60)
    guard.store.end_all()
    assert _seen(client, ada["token"]) == {"session": None, "ended_reason": "idle_timeout"}
