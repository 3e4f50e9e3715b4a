"""The :class:`SessionGuard`: settings, token codec, stores and the shared
steps both shells (ASGI and WSGI) take on every request."""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from werkzeug.http import dump_cookie

from . import audit
from .config import Config
from .core import Outcome, Record, cookie_max_age, deadline
from .incoming import Presented, present
from .policy import Policy
from .session import Session
from .stores import open_stores
from .stores.base import AsyncStore, Check, Store
from .stores.memory import wall_clock_ms
from .tokens import Tokens

if TYPE_CHECKING:
    from .asgi import ASGIApp, SessionGuardMiddleware
    from .wsgi import Guarded, WSGIApp

logger = logging.getLogger("sessionguard")

EventHook = Callable[[audit.Event], None]


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


class SessionGuard:
    """Session policy for an ASGI or WSGI app.

    :param config: the settings (see :meth:`from_env`).
    :param store: a sync store to use instead of the one ``config.store_url`` names.
    :param async_store: its asyncio twin (both or neither).
    :param clock: seconds since the epoch, for tests; by default the store's
        own clock (the Redis server's ``TIME``).
    :param on_event: called with every audit event.
    """

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        async_store: AsyncStore | None = None,
        clock: Callable[[], float] | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.config = config
        self.tokens = Tokens(config.secret_key)
        self.default_policy = Policy.from_config(config)
        millis: Callable[[], int] | None = None
        if clock is not None:
            millis = lambda: round(clock() * 1000)  # noqa: E731 - one expression, named for mypy
        self._millis: Callable[[], int] = millis or wall_clock_ms
        if store is None or async_store is None:
            store, async_store = open_stores(
                config, self.default_policy, slot_tag=self.tokens.slot_tag, clock=millis
            )
        self.store: Store = store
        self.async_store: AsyncStore = async_store
        self.on_event = on_event
        self.platform_header = config.platform_header.lower()
        #: the session cookie's name (a request without it and without ``Authorization``
        #: carries no token: the shells let it through with no store call)
        self.cookie_name = config.cookie_name
        self._admin_slash = f"{config.admin_path}/"
        self._geoip: Any = None
        self.clear_cookie = self.cookie("", 0)
        #: the answer when the store cannot be reached
        self.unavailable = _json_error(
            503, "store_unavailable", "The session store is unavailable; try again shortly.",
            ("retry-after", "1"),
        )
        self._refusals = _refusals(config, self.clear_cookie, self.unavailable)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> SessionGuard:
        """A guard configured by the ``SESSIONGUARD_*`` variables of
        ``environ`` (default: ``os.environ``). Never connects to the store.

        :raises ConfigurationError: listing every invalid variable.
        """
        return cls(Config.from_env(os.environ if environ is None else environ), **kwargs)

    def asgi(self, app: ASGIApp) -> SessionGuardMiddleware:
        """Wrap an ASGI app."""
        from .asgi import SessionGuardMiddleware

        return SessionGuardMiddleware(app, guard=self)

    def wsgi(self, app: WSGIApp) -> Guarded:
        """Wrap a WSGI app: a plain function (``WSGIMiddleware.serve``) whose
        ``__wrapped__`` is ``app``."""
        from .wsgi import WSGIMiddleware

        return WSGIMiddleware(app, guard=self).serve

    # -- steps shared by the shells ----------------------------------------

    def admin_serves(self, path: str) -> bool:
        """Whether the middleware routes ``path`` to the admin sub-app."""
        prefix = self.config.admin_path
        return prefix is not None and (path == prefix or path.startswith(self._admin_slash))

    def presented(self, cookie: str | None, authorization: str | None) -> Presented:
        """The token of a request, verified (no I/O)."""
        return present(
            self.tokens,
            cookie_name=self.config.cookie_name,
            cookie=cookie,
            authorization=authorization if self.config.accept_bearer else None,
            is_admin_token=self.is_admin_token,
        )

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
            session = Session.from_record(record, policy)
            if check.refresh_cookie and presented.source == "cookie":
                return Verdict(session, set_cookie=self._refreshed_cookie(presented, record, policy))
            return Verdict(session)
        if outcome is Outcome.STORE_UNAVAILABLE:
            return Verdict(refusal=self._refusals.get("unavailable"))
        if outcome is Outcome.NO_TOKEN:
            return _NO_VERDICT
        events: tuple[audit.Event, ...] = ()
        if check is not None and check.ended is not None and outcome is not Outcome.SIGNOUT_ALL:
            # One event per session that timed out, dated when it ended. Sessions
            # ended by a sign-out of everyone are covered by that one event.
            ended = check.ended
            at = self.now_ms()
            ends = deadline(ended, check.policy or self.default_policy)
            events = (audit.ended(ended, outcome.value, "system", at if ends is None else min(at, ends)),)
        clear = self.clear_cookie if presented.source == "cookie" else None
        refusal = self._refusals.get("invalid")
        return Verdict(ended_reason=outcome.value, set_cookie=clear, events=events, refusal=refusal)

    def _refreshed_cookie(self, presented: Presented, record: Record, policy: Policy) -> str | None:
        if presented.token is None:
            return None
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

    def now_ms(self) -> int:
        """This process's clock (or the injected one), in epoch milliseconds: the
        time stamp of audit events. Timeouts are judged on the store's clock."""
        return self._millis()

    def close(self) -> None:
        """Release the sync store's connections and the GeoIP reader."""
        self.store.close()
        if self._geoip is not None:
            self._geoip.close()
            self._geoip = None

    async def aclose(self) -> None:
        """Release the async store's connections (call from lifespan shutdown)."""
        await self.async_store.close()

    def is_admin_token(self, token: str) -> bool:
        """Constant-time comparison with ``ADMIN_TOKEN``."""
        expected = self.config.admin_token
        return expected is not None and hmac.compare_digest(token.encode(), expected.encode())

    def city(self, ip: str) -> str | None:
        """The city of ``ip`` from the GeoIP2 database, when one is configured."""
        path = self.config.geoip_database
        if path is None or not ip:
            return None
        import geoip2.database
        import geoip2.errors

        if self._geoip is None:
            self._geoip = geoip2.database.Reader(path)
        try:
            name: str | None = self._geoip.city(ip).city.name
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None
        return name

    def record(self, events: Sequence[audit.Event]) -> None:
        """Append ``events`` to the audit log (sync store) and publish them."""
        if events:
            self.store.append_events(events)
            self._publish(events)

    async def arecord(self, events: Sequence[audit.Event]) -> None:
        """Append ``events`` to the audit log (async store) and publish them."""
        if events:
            await self.async_store.append_events(events)
            self._publish(events)

    def _publish(self, events: Sequence[audit.Event]) -> None:
        for event in events:
            audit.log(event)
            if self.on_event is not None:
                self.on_event(event)


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
