"""A one-file Django project: settings, views and URLs.

sessionguard wraps the WSGI application in ``wsgi.py``; the
``SessionGuardMiddleware`` below exposes the session to views as
``request.sessionguard``. Run from the ``examples`` directory::

    SESSIONGUARD_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \\
    SESSIONGUARD_COOKIE_SECURE=false python django_app/manage.py runserver

(``runserver`` serves ``WSGI_APPLICATION``, the wrapped application.)
"""

from __future__ import annotations

import os
import secrets

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from sessionguard import SessionLimitReached
from sessionguard.demo import LoginForm, home_page, login_page

# -- settings -------------------------------------------------------------------

DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
ROOT_URLCONF = __name__
WSGI_APPLICATION = "django_app.wsgi.application"
INSTALLED_APPS: list[str] = []
# No Django sessions or CSRF middleware: sessionguard owns the session, and its
# SameSite=Lax cookie is not sent with cross-site form posts.
MIDDLEWARE = ["sessionguard.integrations.django.SessionGuardMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True

# -- views ----------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The current session (``request.sessionguard.session``), or the sign-in
    form with why the previous session ended."""
    ctx = request.sessionguard
    if ctx.session is None:
        return HttpResponse(login_page(ctx.ended_reason))
    response = HttpResponse(home_page(ctx.session, admin_path=None))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def login(request: HttpRequest) -> HttpResponse:
    """Sign in with any name (this example has no passwords)."""
    try:
        form = LoginForm.parse(request.POST)
    except ValueError as exc:
        return HttpResponse(login_page(error=str(exc)), status=400)
    try:
        request.sessionguard.login(form.name, remember_me=form.remember_me, metadata=form.metadata)
    except SessionLimitReached as exc:
        return HttpResponse(login_page(error=f"You already have {exc.limit} sessions."), status=409)
    return HttpResponseRedirect("/", status=303)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """End the current session."""
    request.sessionguard.logout()
    return HttpResponseRedirect("/", status=303)


urlpatterns = [path("", home), path("login", login), path("logout", logout)]
