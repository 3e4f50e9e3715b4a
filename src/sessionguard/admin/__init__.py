"""The admin sub-app (SPEC §5): a JSON API for sessions, policy and the
audit log, and self-service for every signed-in user.

The middleware serves it under ``ADMIN_PATH``; it can also be mounted
explicitly::

    app.mount("/admin", sessionguard.admin.asgi_app(guard))          # Starlette
    DispatcherMiddleware(app, {"/admin": sessionguard.admin.wsgi_app(guard)})  # WSGI

Layout: :mod:`.routes` is the route table; :mod:`.api` and :mod:`.me` hold
the endpoints, written once as generators of store steps (:mod:`.flow`);
:mod:`.auth` decides who may call what; :mod:`.asgi` and :mod:`.wsgi` are the
two shells; :mod:`.openapi` describes it all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .asgi import AdminASGI as AdminASGI
from .http import AdminRequest as AdminRequest
from .http import Response as Response
from .routing import Route as Route
from .wsgi import AdminWSGI as AdminWSGI

if TYPE_CHECKING:
    from ..guard import SessionGuard


def asgi_app(guard: SessionGuard) -> AdminASGI:
    """The admin sub-app as an ASGI app, for explicit mounting. Behind the
    guard's middleware it reuses the validated session; on its own it
    validates the caller itself."""
    return AdminASGI(guard)


def wsgi_app(guard: SessionGuard) -> AdminWSGI:
    """The admin sub-app as a WSGI app, for explicit mounting (see
    :func:`asgi_app`)."""
    return AdminWSGI(guard)
