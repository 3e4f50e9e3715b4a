"""What a request's token comes to, decided without I/O: the token verified
(:meth:`Decider.presented`), whether the request is passive, the store's
answer turned into a :class:`Verdict` (session, ended reason, cookie, audit
events, or a :class:`Refusal`), and the cookies themselves.

Both shells (:mod:`.asgi`, :mod:`.wsgi`) call these through the guard, which
binds them once (:class:`~.guard.SessionGuard`); the rules of timeouts and
limits themselves are in :mod:`.core`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from werkzeug.http import dump_cookie

from . import audit, report
from .anomaly import SYSTEM, Anomaly, Watch
from .anomaly import event as anomaly_event
from .config import Config
from .core import Outcome, Record, cookie_max_age, deadline
from .dbsc import REFRESH_PATH, START_PATH, BoundCookies, Challenges, registration_header
from .incoming import NO_TOKEN, Presented, present
from .metrics import Metrics
from .policy import Policy
from .report import Reports
from .session import Session
from .stores.protocol import Check
from .tokens import Tokens

#: Verdicts kept for :meth:`Decider._valid` at most (then forgotten all at once).
SHOWN_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer the middleware gives instead of calling the app."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Verdict(NamedTuple):
    """What one request's token came to: the session (if valid), why it ended
    (if it did), the cookie to send, the audit events to record, or a refusal.
    A named tuple (one is built on every request with a token, see
    :class:`~.core.Record`)."""

    session: Session | None = None
    ended_reason: str | None = None
    set_cookie: str | None = None
    events: tuple[audit.Event, ...] = ()
    refusal: Refusal | None = None


class Decider:
    """The per-request decisions of one guard's settings (no I/O, no clock
    read but ``now_ms`` for the date of a timeout's audit event)."""

    def __init__(self, config: Config, tokens: Tokens, default_policy: Policy,
                 now_ms: Callable[[], int], metrics: Metrics | None = None) -> None:
        self.config = config
        self.tokens = tokens
        self.default_policy = default_policy
        self.now_ms = now_ms
        self.metrics = metrics
        self._admin_slash = f"{config.admin_path}/"
        self._lifetime = config.device_bound_cookie_lifetime
        admin = config.admin_path
        self._dbsc_paths = (admin + START_PATH, admin + REFRESH_PATH) if config.device_bound and admin else ()
        #: the ``Set-Cookie`` value that clears the session cookie
        self.clear_cookie = self.cookie("", 0)
        #: the answer when the store cannot be reached
        self.unavailable = _json_error(
            503, "store_unavailable", "The session store is unavailable; try again shortly.",
            ("retry-after", "1"),
        )
        self._refusals = _refusals(config, self.clear_cookie, self.unavailable)
        #: the timeouts reported under ``ENFORCE=report``, per session
        self.reports = Reports()
        #: the last verdict of each session's valid check (see :meth:`_valid`)
        self._shown: dict[str, tuple[Check, Verdict]] = {}
        #: judges requests against their session's login client (``ON_ANOMALY``)
        self.watch = Watch(config.trusted_proxies)
        #: DBSC challenges (made and read without a store)
        self.challenges = Challenges(config.secret_key)
        #: the cookies of device-bound sessions
        self.bound_cookies = BoundCookies(
            name=config.cookie_name, path=config.cookie_path, domain=config.cookie_domain,
            secure=config.cookie_secure, samesite=config.cookie_samesite,
            lifetime=config.device_bound_cookie_lifetime, admin_path=config.admin_path or "",
        )

    def admin_serves(self, path: str) -> bool:
        """Whether the middleware routes ``path`` to the admin sub-app."""
        prefix = self.config.admin_path
        return prefix is not None and (path == prefix or path.startswith(self._admin_slash))

    def presented(self, cookie: str | None, authorization: str | None, path: str = "") -> Presented:
        """The token of a request to ``path``, verified (no I/O). A device-bound
        session's token past its cookie lifetime is :attr:`~.core.Outcome.STALE`
        here, without a store call. The DBSC endpoints read their own cookies
        and ask the store themselves, once: for them the middleware sees no
        token (a browser's refresh is not a use, and costs one round trip)."""
        if path in self._dbsc_paths:
            return NO_TOKEN
        presented = present(
            self.tokens,
            cookie_name=self.config.cookie_name,
            cookie=cookie,
            authorization=authorization if self.config.accept_bearer else None,
            is_admin_token=self.is_admin_token,
        )
        issued = presented.issued
        if issued is not None:  # inline: every request of a bound session passes here
            lifetime = self._lifetime
            if not -lifetime < self.now_ms() // 1000 - issued < lifetime:
                return Presented(Outcome.STALE, source=presented.source)
        return presented

    def fresh(self, issued: int) -> bool:
        """Whether a bound cookie issued at ``issued`` (epoch seconds) is within
        ``DEVICE_BOUND_COOKIE_LIFETIME`` of now (either way: a server whose clock
        runs ahead stamps cookies that live longer by that much, never more);
        :meth:`presented` applies this."""
        lifetime = self._lifetime
        return -lifetime < self.now_ms() // 1000 - issued < lifetime

    def registration(self, record: Record, source: str | None, https: Callable[[], bool]) -> str | None:
        """``Secure-Session-Registration`` for the response to the login that
        created ``record``, or ``None``: binding is offered (``DEVICE_BOUND=on``)
        to web sessions created over HTTPS, never to a client that presented a
        bearer token (``source``)."""
        admin_path = self.config.admin_path
        if not self.config.device_bound or admin_path is None or record.platform != "web":
            return None
        if source == "bearer" or not https():
            return None
        return registration_header(admin_path, self.challenges.issue(record.id, self.now_ms()))

    def is_passive(self, path: str, header: str | None) -> bool:
        """Whether a request is checked without counting as activity."""
        if header is not None and header.strip() == "1":
            return True
        return path.startswith(self.config.passive_paths)  # a tuple of prefixes, () for none

    def verdict(self, presented: Presented, check: Check | None) -> Verdict:
        """Turn the store's answer into what the shell does (no I/O)."""
        outcome = presented.outcome if check is None else check.outcome
        if outcome is Outcome.VALID and check is not None and check.record is not None:
            record, policy = check.record, check.policy or self.default_policy
            if not check.refresh_cookie and check.would_end is None and not check.evicted:
                return self._valid(check, record, policy)
            session = Session.from_record(record, policy)
            reported = () if check.would_end is None else self._reported(record, *check.would_end)
            if check.evicted:  # the surplus of a lowered limit, ended by this check
                reported += self._evictions(check.evicted)
            if check.refresh_cookie and presented.source == "cookie":
                return Verdict(session, set_cookie=self._refreshed_cookie(presented, record, policy),
                               events=reported)
            return Verdict(session, events=reported) if reported else Verdict(session)
        if outcome is Outcome.STORE_UNAVAILABLE:
            return Verdict(refusal=self._refusals.get("unavailable"))
        if outcome is Outcome.NO_TOKEN or outcome is Outcome.STALE:
            # STALE: the session lives on for the device holding its key, this token is refused
            return _NO_VERDICT
        events: tuple[audit.Event, ...] = ()
        if check is not None and check.ended is not None and outcome is not Outcome.SIGNOUT_ALL:
            # One event per session that timed out, dated when it ended. Sessions
            # ended by a sign-out of everyone are covered by that one event.
            ended = check.ended
            at = self.now_ms()
            ends = deadline(ended, check.policy or self.default_policy)
            events = (audit.ended(ended, outcome.value, "system", at if ends is None else min(at, ends)),)
        elif check is not None and check.ended is not None and self.metrics is not None:
            # a session of a sign-out of everyone, whose one event covers them all: the
            # metric counts each ending as it is noticed
            self.metrics.noticed_ending(check.ended.platform, outcome.value)
        if check is not None and check.evicted:
            events += self._evictions(check.evicted)
        clear = self.clear_cookie if presented.source == "cookie" else None
        refusal = self._refusals.get("invalid")
        return Verdict(ended_reason=outcome.value, set_cookie=clear, events=events, refusal=refusal)

    def _evictions(self, records: tuple[Record, ...]) -> tuple[audit.Event, ...]:
        """The events of sessions a check ended beyond a lowered limit (actor ``system``)."""
        at = self.now_ms()
        return tuple(audit.ended(r, "evicted", SYSTEM, at) for r in records)

    def _valid(self, check: Check, record: Record, policy: Policy) -> Verdict:
        """The verdict of a valid ``check`` with nothing to send or report: the
        same one again for the same ``check`` (a ``LOCAL_CACHE`` hit returns its
        cached answer itself), so a hit builds no :class:`Session` and formats
        no ``Session-Expires``: about a tenth of a hit's cost
        (``benchmarks/`` ``LOCAL_CACHE`` rows)."""
        shown = self._shown.get(record.id)
        if shown is not None and shown[0] is check:
            return shown[1]
        verdict = Verdict(Session.from_record(record, policy))
        shown_all = self._shown
        if len(shown_all) >= SHOWN_MAX:
            shown_all.clear()
        shown_all[record.id] = (check, verdict)
        return verdict

    def anomalous(self, verdict: Verdict, record: Record, anomaly: Anomaly) -> Verdict:
        """``verdict`` with the audit event of ``anomaly`` on the session
        ``record``, the first time this process sees that change (``ON_ANOMALY``
        ``log`` and ``flag``: the session goes on)."""
        if not self.watch.first(anomaly):
            return verdict
        return verdict._replace(events=(*verdict.events, anomaly_event(anomaly, record, self.now_ms())))

    def revoked(self, presented: Presented, record: Record, anomaly: Anomaly,
                ended: Record | None) -> Verdict:
        """The verdict once ``ON_ANOMALY=revoke`` has ended the session of ``anomaly``
        (``ended``: its record, ``None`` when something else ended it first): as a
        request presenting a revoked session, with the anomaly's event and the
        ending's (actor ``system``)."""
        at = self.now_ms()
        events = [anomaly_event(anomaly, record, at)]
        if ended is not None:
            events.append(audit.ended(ended, "revoked", SYSTEM, at))
        clear = self.clear_cookie if presented.source == "cookie" else None
        return Verdict(ended_reason="revoked", set_cookie=clear, events=tuple(events),
                       refusal=self._refusals.get("invalid"))

    def _reported(self, record: Record, outcome: Outcome, moment: int) -> tuple[audit.Event, ...]:
        """``ENFORCE=report``: the ``would_end`` event of a timeout, the first time this
        process meets this moment of this session."""
        if not self.reports.first(record.id, moment):
            return ()
        return (report.would_end(record, outcome.value, min(moment, self.now_ms())),)

    def _refreshed_cookie(self, presented: Presented, record: Record, policy: Policy) -> str | None:
        if presented.token is None or presented.issued is not None:
            return None  # a bound cookie is renewed by its device only (dbsc.py)
        return self.cookie(presented.token, cookie_max_age(record, policy, record.last_seen))

    def cookie(self, token: str, max_age: int | None) -> str:
        """The ``Set-Cookie`` value carrying ``token`` (``""`` with ``max_age=0``
        clears the cookie)."""
        c = self.config
        return dump_cookie(
            c.cookie_name, token, max_age=max_age, expires=0 if max_age == 0 else None,
            path=c.cookie_path, domain=c.cookie_domain, secure=c.cookie_secure, httponly=True,
            samesite=c.cookie_samesite.capitalize(),
        )

    def is_admin_token(self, token: str) -> bool:
        """Constant-time comparison with ``ADMIN_TOKEN``."""
        expected = self.config.admin_token
        return expected is not None and hmac.compare_digest(token.encode(), expected.encode())


_NO_VERDICT = Verdict()


def _json_error(status: int, code: str, message: str, *extra: tuple[str, str]) -> Refusal:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = (("content-type", "application/json"), ("cache-control", "no-store"), *extra)
    return Refusal(status, headers, body)


def _refusals(config: Config, clear_cookie: str, unavailable: Refusal) -> dict[str, Refusal]:
    """The fixed answers of ``ON_INVALID`` and ``STORE_UNAVAILABLE``."""
    refusals: dict[str, Refusal] = {}
    if config.store_unavailable == "503":
        refusals["unavailable"] = unavailable
    redirect = config.on_invalid_redirect
    if redirect is not None:
        refusals["invalid"] = Refusal(
            303, (("location", redirect), ("cache-control", "no-store"), ("set-cookie", clear_cookie)),
            b"",
        )
    elif config.on_invalid == "401":
        refusals["invalid"] = _json_error(
            401, "session_invalid", "The session is no longer valid; sign in again.",
            ("set-cookie", clear_cookie),
        )
    return refusals
