"""Routing of the admin sub-app and the one flow every request takes: match
the route (``404`` / ``405``), authenticate (``401``), authorize and check
CSRF (``403``), then run the route's handler. The table itself is
:data:`sessionguard.admin.routes.ROUTES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import alerts
from .auth import Caller, Signing, authenticate, authorize
from .flow import Flow
from .http import AdminRequest, ApiError

if TYPE_CHECKING:
    from ..guard import SessionGuard

_PARAM = re.compile(r"\{(\w+)(:path)?\}")


def is_self_service(pattern: str) -> bool:
    """Whether a path below the admin prefix is self-service (``/me``,
    ``/api/me/...``), which ``SELF_SERVICE=off`` removes."""
    return pattern == "/me" or pattern.startswith("/api/me/")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the request, its caller, the path parameters and
    the pure helpers of the sub-app. No I/O handle: handlers yield their
    store calls (see :mod:`sessionguard.admin.flow`)."""

    request: AdminRequest
    caller: Caller
    params: Mapping[str, str]
    admin: Admin


Handler = Callable[[Call], Flow]


@dataclass(frozen=True, slots=True)
class Route:
    """``method`` on ``pattern`` runs ``handler`` for callers meeting
    ``requirement`` (a permission, several joined by ``+``, ``"session"``
    or ``"public"``).

    ``pattern`` is a path below the admin prefix; ``{name}`` matches one
    path segment, ``{name:path}`` the rest of the path (user ids may hold
    ``/``).
    """

    method: str
    pattern: str
    handler: Handler
    requirement: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts, last = [], 0
        for match in _PARAM.finditer(self.pattern):
            parts.append(re.escape(self.pattern[last:match.start()]))
            parts.append(f"(?P<{match[1]}>{'.+' if match[2] else '[^/]+'})")
            last = match.end()
        parts.append(re.escape(self.pattern[last:]))
        object.__setattr__(self, "regex", re.compile("".join(parts), re.DOTALL))


class Admin:
    """The pure state of one guard's admin sub-app: settings, signing keys,
    routes. Shared by both shells; holds no connection.

    :param routes: the route table (:data:`sessionguard.admin.routes.ROUTES`).
    """

    def __init__(self, guard: SessionGuard, routes: Sequence[Route]) -> None:
        self.config = guard.config
        self.is_admin_token = guard.is_admin_token
        #: the ``Set-Cookie`` value that clears the session cookie
        self.clear_cookie = guard.clear_cookie
        self.signing = Signing(guard.config.secret_key)
        #: the guard's per-request decisions: tokens, clock, DBSC challenges and cookies
        self.decider = guard.decider
        serves_me = guard.config.self_service
        #: the guard's Prometheus metrics (``None``: ``METRICS=off``, no ``/metrics``)
        self.metrics = guard.metrics
        self.routes = tuple(r for r in routes if (serves_me or not is_self_service(r.pattern))
                            and (self.metrics is not None or r.pattern != "/metrics"))
        #: per-prefix cache of rendered documents (``/openapi.json``)
        self.documents: dict[str, bytes] = {}

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` on ``path`` and its parameters.

        :raises ApiError: ``404`` for an unknown path, ``405`` (with
            ``Allow``) for a known path and another method.
        """
        wanted = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route in self.routes:
            found = route.regex.fullmatch(path)
            if found is None:
                continue
            if route.method == wanted:
                return route, found.groupdict()
            allowed.append(route.method)
        if not allowed:
            raise ApiError(404, "not_found", "There is no such admin endpoint.")
        if "GET" in allowed:
            allowed.append("HEAD")
        allow = ", ".join(sorted(set(allowed)))
        raise ApiError(405, "method_not_allowed", f"Use {allow} here.", headers=(("allow", allow),))

    def handle(self, request: AdminRequest) -> Flow:
        """The flow answering ``request``."""
        route, params = self.match(request.method, request.path)
        caller = authenticate(request, self.config, self.is_admin_token)
        try:
            authorize(caller, route.requirement, request, self.signing)
        except ApiError as error:  # ASVS 16.3.2: failed authentication and authorisation logged
            alerts.admin_refused(error.status, error.code, request.method, request.prefix + request.path,
                                 caller.actor, None if caller.session is None else caller.session.id)
            raise
        return (yield from route.handler(Call(request, caller, params, self)))

