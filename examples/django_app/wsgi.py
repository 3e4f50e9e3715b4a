"""The WSGI application: Django, wrapped by sessionguard (which must see every
request before Django does and set the cookie on the way out)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from sessionguard import SessionGuard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.app")

guard = SessionGuard.from_env()
application = guard.wsgi(get_wsgi_application())
