"""The :class:`SessionGuard`: the public face that wires settings, token codec,
stores, the per-request decisions (:mod:`.decision`) and the audit log
together. The shells (:mod:`.asgi`, :mod:`.wsgi`) are built by
:meth:`SessionGuard.asgi` and :meth:`SessionGuard.wsgi`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import actions, audit
from .admin.flow import adrive, drive
from .config import Config
from .decision import Decider
from .geoip import CityDatabase
from .metrics import Metrics
from .policy import Policy
from .session import Session
from .stores import open_stores
from .stores.memory import wall_clock_ms
from .stores.protocol import AsyncStore, Store
from .tokens import Tokens

if TYPE_CHECKING:
    from .asgi import ASGIApp, SessionGuardMiddleware
    from .wsgi import Guarded, WSGIApp

logger = logging.getLogger("sessionguard")

EventHook = Callable[[audit.Event], None]


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
        # opened now: a missing or wrong file stops start-up, not every login
        self._geoip = None if config.geoip_database is None else CityDatabase.open(config.geoip_database)
        millis: Callable[[], int] | None = None
        if clock is not None:
            millis = lambda: round(clock() * 1000)  # noqa: E731 - one expression, named for mypy
        self._millis: Callable[[], int] = millis or wall_clock_ms
        if store is None or async_store is None:
            store, async_store = open_stores(config, self.default_policy, clock=millis)
        self.store: Store = store
        self.async_store: AsyncStore = async_store
        #: the Prometheus metrics (``METRICS=on``), else ``None``
        self.metrics: Metrics | None = None if not config.metrics else Metrics.start(store)
        # the endings the stores' sweeps record are published as the guard's own are
        hook = getattr(store, "on_swept", None)  # (a store of the app's own may lack it)
        if hook is not None:
            hook(self._swept)
        #: the request path's store checks: the stores' own, or timed by the metrics
        self.store_check = store.check if self.metrics is None else self.metrics.timed(store)
        self.astore_check = async_store.check if self.metrics is None else self.metrics.atimed(async_store)
        self.on_event = on_event
        self.platform_header = config.platform_header.lower()
        #: the kinds of session (``PLATFORMS``): web, mobile, desktop, then any extra ones
        self.platforms = config.platforms
        #: the session cookie's name (a request without it and without ``Authorization``
        #: carries no token: the shells let it through with no store call)
        self.cookie_name = config.cookie_name
        # now_ms without a call
        decider = Decider(config, self.tokens, self.default_policy, self._millis, self.metrics)
        #: the per-request decisions (:mod:`.decision`), bound once: the shells call
        #: them on every request with a token
        self.decider = decider
        self.presented = decider.presented
        self.is_passive = decider.is_passive
        self.verdict = decider.verdict
        self.cookie = decider.cookie
        self.is_admin_token = decider.is_admin_token
        self.admin_serves = decider.admin_serves
        self.clear_cookie = decider.clear_cookie
        self.unavailable = decider.unavailable
        #: the hijack signals' judge (``ON_ANOMALY``, :mod:`.anomaly`)
        self.watch = decider.watch

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> SessionGuard:
        """A guard configured by the ``SESSIONGUARD_*`` variables of
        ``environ`` (default: ``os.environ``). Never connects to the store.

        :raises ConfigurationError: listing every invalid variable.
        """
        return cls(Config.from_env(os.environ if environ is None else environ), **kwargs)

    def asgi(self, app: ASGIApp, *, route_admin: bool = True) -> SessionGuardMiddleware:
        """Wrap an ASGI app. ``route_admin=False``: do not serve the admin
        sub-app under ``ADMIN_PATH`` (``app`` is the admin sub-app itself)."""
        from .asgi import SessionGuardMiddleware

        return SessionGuardMiddleware(app, guard=self, route_admin=route_admin)

    def wsgi(self, app: WSGIApp, *, route_admin: bool = True) -> Guarded:
        """Wrap a WSGI app: a plain function (``WSGIMiddleware.serve``) whose
        ``__wrapped__`` is ``app`` (``route_admin`` as in :meth:`asgi`)."""
        from .wsgi import WSGIMiddleware

        return WSGIMiddleware(app, guard=self, route_admin=route_admin).serve

    def now_ms(self) -> int:
        """This process's clock (or the injected one), in epoch milliseconds: the
        time stamp of audit events. Timeouts are judged on the store's clock."""
        return self._millis()

    def close(self) -> None:
        """Release the sync store's connections and the GeoIP reader, and take the
        metrics out of the default registry."""
        if self.metrics is not None:
            self.metrics.unregister()
        self.store.close()
        if self._geoip is not None:
            self._geoip.close()
            self._geoip = None

    async def aclose(self) -> None:
        """Release the async store's connections (call from lifespan shutdown), and
        take the metrics out of the default registry."""
        if self.metrics is not None:
            self.metrics.unregister()
        await self.async_store.close()

    # -- the app-side API (SPEC §9.4): written once in .actions -----------------

    def sessions(
        self, user_id: str | None = None, platform: str | None = None, status: str = "active"
    ) -> list[Session]:
        """The sessions, newest login first: every user's, or those of
        ``user_id``; on every platform, or on ``platform``; the active ones
        (``status="active"``), those ended within the last day (``"ended"``:
        each with :attr:`Session.ended_reason` and :attr:`Session.ended_at`),
        or both (``"all"``).

        :raises ValueError: for a bad argument.
        :raises StoreUnavailable: when the store cannot be reached (as every
            method below).
        """
        return drive(self, actions.sessions(user_id, platform, status))

    async def asessions(
        self, user_id: str | None = None, platform: str | None = None, status: str = "active"
    ) -> list[Session]:
        """:meth:`sessions` for ASGI apps."""
        return await adrive(self, actions.sessions(user_id, platform, status))

    def sweep(self) -> int:
        """Record now the ending of every session that timed out and was not
        noticed yet (each process does so within a minute by itself): one audit
        event each (``idle_timeout`` / ``absolute_timeout``, actor ``system``,
        ``at`` its deadline), never twice whichever process or request notices
        it too. Returns how many endings it recorded (``sessionguard sweep``)."""
        return drive(self, actions.sweep())

    async def asweep(self) -> int:
        """:meth:`sweep` for ASGI apps."""
        return await adrive(self, actions.sweep())

    def end_session(self, session_id: str) -> bool:
        """End the session whose :attr:`Session.id` is ``session_id``
        (``revoked``, actor ``app``); ``False`` when it was not active."""
        return drive(self, actions.end_session(session_id, "revoked", actions.APP)) is not None

    async def aend_session(self, session_id: str) -> bool:
        """:meth:`end_session` for ASGI apps."""
        return await adrive(self, actions.end_session(session_id, "revoked", actions.APP)) is not None

    def end_user(self, user_id: str, platform: str | None = None, except_id: str | None = None) -> int:
        """End every session of ``user_id`` (on ``platform``) except the one
        whose id is ``except_id`` (``revoked``, actor ``app``); how many ended.
        E.g. after a password change, ``except_id=ctx.session.id``."""
        steps = actions.end_user(user_id, "revoked", actions.APP, platform=platform, keep=except_id)
        return len(drive(self, steps))

    async def aend_user(
        self, user_id: str, platform: str | None = None, except_id: str | None = None
    ) -> int:
        """:meth:`end_user` for ASGI apps."""
        steps = actions.end_user(user_id, "revoked", actions.APP, platform=platform, keep=except_id)
        return len(await adrive(self, steps))

    def end_all(self, except_id: str | None = None) -> None:
        """End every session (``signout_all``, actor ``app``) except the one
        whose id is ``except_id``, in constant time."""
        drive(self, actions.end_all(actions.APP, keep=except_id))

    async def aend_all(self, except_id: str | None = None) -> None:
        """:meth:`end_all` for ASGI apps."""
        await adrive(self, actions.end_all(actions.APP, keep=except_id))

    def set_roles(self, user_id: str, roles: Sequence[str]) -> int:
        """Replace ``metadata["roles"]`` of every active session of ``user_id``
        (a ``roles_changed`` event, actor ``app``); how many sessions changed.
        Their permissions follow at their next request; sessions created later
        get the roles the app gives at login.

        :raises ValueError: unless ``roles`` is a list of at most 32 names of
            1 to 64 characters.
        """
        return len(drive(self, actions.set_roles(user_id, roles, actions.APP)))

    async def aset_roles(self, user_id: str, roles: Sequence[str]) -> int:
        """:meth:`set_roles` for ASGI apps."""
        return len(await adrive(self, actions.set_roles(user_id, roles, actions.APP)))

    def city(self, ip: str) -> str | None:
        """The city of ``ip`` from the GeoIP2 City database, when one is configured."""
        return None if self._geoip is None or not ip else self._geoip.city(ip)

    @property
    def geoip(self) -> CityDatabase | None:
        """The open GeoIP City database (``GEOIP_DATABASE``), or ``None``."""
        return self._geoip

    def record(self, events: Sequence[audit.Event], *, self_service: str | None = None) -> None:
        """Append ``events`` to the audit log (sync store) and publish them (every one:
        the ``sessionguard.audit`` logger and ``on_event`` are not the shared log).
        ``self_service``: the events of one self-service action of this user, which
        enter the log as far as the user's allowance goes (:func:`audit.admit`)."""
        if events:
            if self.metrics is not None:
                self.metrics.events(events)
            if self_service is None:
                self.store.append_events(events)
            else:
                self.store.append_self_service(self_service, events)
            self._publish(events)

    async def arecord(self, events: Sequence[audit.Event], *, self_service: str | None = None) -> None:
        """:meth:`record` on the async store."""
        if events:
            if self.metrics is not None:
                self.metrics.events(events)
            if self_service is None:
                await self.async_store.append_events(events)
            else:
                await self.async_store.append_self_service(self_service, events)
            self._publish(events)

    def store_failed(self, platform: str | None = None) -> None:
        """Count a store call of a request or an action that failed (``METRICS``;
        ``platform``: of the session concerned, when known)."""
        if self.metrics is not None:
            self.metrics.store_error(platform)

    def _swept(self, events: Sequence[audit.Event]) -> None:
        """Publish the events a sweep has recorded (already in the log)."""
        if self.metrics is not None:
            self.metrics.events(events)
        self._publish(events)

    def _publish(self, events: Sequence[audit.Event]) -> None:
        for event in events:
            audit.log(event)
            if self.on_event is not None:
                self.on_event(event)
