"""The route table of the admin sub-app (SPEC §5).

Extension point: a module serving more of the sub-app (the HTML pages of
``/`` and ``/me``) exports a ``ROUTES`` tuple of
:class:`~sessionguard.admin.routing.Route` and is added here; nothing else
changes. The first route matching both path and method wins.
"""

from __future__ import annotations

from .api import ROUTES as API
from .dbsc import ROUTES as DBSC
from .me import ROUTES as ME
from .openapi import ROUTES as OPENAPI
from .pages import ROUTES as PAGES  # the HTML pages of / and /me
from .routing import Route
from .stats import ROUTES as STATS  # the admin page's charts

ROUTES: tuple[Route, ...] = (*API, *STATS, *ME, *OPENAPI, *PAGES, *DBSC)
