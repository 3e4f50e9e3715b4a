"""The route table of the admin sub-app (SPEC §5).

Extension point: a module serving more of the sub-app (the HTML pages of
``/`` and ``/me``) exports a ``ROUTES`` tuple of
:class:`~sessionguard.admin.routing.Route` and is added here; nothing else
changes. The first route matching both path and method wins.
"""

from __future__ import annotations

from . import api, me, openapi, pages  # pages: the HTML pages of / and /me (issue 5)
from .routing import Route

ROUTES: tuple[Route, ...] = (*api.ROUTES, *me.ROUTES, *openapi.ROUTES, *pages.ROUTES)
