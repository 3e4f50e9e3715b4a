"""Django integration: ``request.sessionguard`` in views.

sessionguard wraps the whole Django application (it must see every request
before Django does, and set the cookie on the way out), in ``wsgi.py``:

.. code-block:: python

    from django.core.wsgi import get_wsgi_application
    from sessionguard import SessionGuard

    application = SessionGuard.from_env().wsgi(get_wsgi_application())

(or ``guard.asgi(get_asgi_application())`` in ``asgi.py``). Then add
``"sessionguard.integrations.django.SessionGuardMiddleware"`` to
``MIDDLEWARE``; views use ``request.sessionguard.session``,
``request.sessionguard.ended_reason``, ``request.sessionguard.login(user_id)``
and ``request.sessionguard.logout()`` (coroutines under ASGI).

Django's test ``Client`` calls the Django handler directly, not the WSGI
callable, so tests that need a session drive ``application`` through a WSGI
client (``werkzeug.test.Client``) instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from ..context import AsyncSessionContext, SessionContext
from ..errors import StoreUnavailable

__all__ = ["SessionGuardMiddleware", "session_context"]

_MISSING = (
    "sessionguard is not wrapping this Django application: in wsgi.py use"
    " application = guard.wsgi(get_wsgi_application()) (or guard.asgi(get_asgi_application())"
    " in asgi.py)"
)


def session_context(request: Any) -> SessionContext | AsyncSessionContext:
    """The request object sessionguard placed in the WSGI environ
    (``request.META``) or the ASGI scope (``request.scope``).

    :raises ImproperlyConfigured: the application is not wrapped by sessionguard.
    """
    ctx = request.META.get("sessionguard")
    if ctx is None:
        scope = getattr(request, "scope", None)
        ctx = scope.get("sessionguard") if isinstance(scope, dict) else None
    if not isinstance(ctx, SessionContext | AsyncSessionContext):
        raise ImproperlyConfigured(_MISSING)
    return ctx


class SessionGuardMiddleware:
    """Django middleware setting ``request.sessionguard`` (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self._acall(request)
        request.sessionguard = session_context(request)
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        request.sessionguard = session_context(request)
        response: Awaitable[Any] = self.get_response(request)
        return await response

    def process_exception(self, request: Any, exception: Exception) -> HttpResponse | None:
        """A store call a view made failed: the store's ``503`` rather than
        Django's ``500``. (The shell makes Django's ``500`` the ``503`` in any
        case; this answers it at once, before Django logs the exception.)"""
        ctx = getattr(request, "sessionguard", None)
        if not isinstance(exception, StoreUnavailable) or ctx is None:
            return None
        refusal = ctx._guard.unavailable
        return HttpResponse(refusal.body, status=refusal.status, headers=dict(refusal.headers))
