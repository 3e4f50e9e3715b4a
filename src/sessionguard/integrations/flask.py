"""Flask integration: an extension that wraps ``app.wsgi_app``, plus
Flask-Login-style helpers.

.. code-block:: python

    from flask import Flask
    from sessionguard import SessionGuard
    from sessionguard.integrations.flask import (
        SessionGuardFlask, current_session, login_required, login_user, logout_user,
    )

    app = Flask(__name__)
    SessionGuardFlask(app, SessionGuard.from_env())   # or ext.init_app(app) in a factory

    @app.post("/login")
    def login():
        user_id = ...  # your own authentication
        login_user(user_id, remember_me=True, metadata={"roles": ["admin"]})
        return redirect("/")

    @app.get("/me")
    @login_required
    def me():
        return {"user_id": current_session().user_id}

Inside a request the context object is also ``flask.g.sessionguard``, and
templates see ``current_session`` (the :class:`~sessionguard.Session` or
``None``). :func:`login_required` answers ``401`` through :func:`flask.abort`,
so an ``@app.errorhandler(401)`` can turn it into a redirect to the login page.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from flask import Flask, Response, abort, g, has_request_context, request

from ..context import SessionContext
from ..errors import StoreUnavailable
from ..guard import SessionGuard
from ..session import Session

if TYPE_CHECKING:
    from ..decision import Refusal

__all__ = [
    "SessionGuardFlask",
    "current_session",
    "ended_reason",
    "login_required",
    "login_user",
    "logout_user",
    "session_context",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The key of the guard in ``app.extensions``.
EXTENSION = "sessionguard"


class SessionGuardFlask:
    """The Flask extension: ``SessionGuardFlask(app, guard)``, or
    ``ext = SessionGuardFlask()`` then ``ext.init_app(app, guard)`` in an app
    factory. Without a guard, :meth:`SessionGuard.from_env` builds one.
    """

    def __init__(self, app: Flask | None = None, guard: SessionGuard | None = None) -> None:
        self.guard = guard
        if app is not None:
            self.init_app(app, guard)

    def init_app(self, app: Flask, guard: SessionGuard | None = None) -> SessionGuard:
        """Wrap ``app.wsgi_app`` with ``guard`` (default: the extension's, else
        one from the environment) and register the helpers. Returns the guard.

        :raises RuntimeError: sessionguard is already installed on ``app``.
        """
        if EXTENSION in app.extensions:
            raise RuntimeError("sessionguard is already installed on this Flask app")
        guard = guard or self.guard or SessionGuard.from_env()
        app.wsgi_app = guard.wsgi(app.wsgi_app)  # type: ignore[method-assign]
        app.extensions[EXTENSION] = guard
        app.before_request(_expose)
        app.context_processor(_template_context)
        app.register_error_handler(StoreUnavailable, functools.partial(_unavailable, guard.unavailable))
        return guard


def _unavailable(refusal: Refusal, error: StoreUnavailable) -> Response:
    # A store call a view made failed: the store's 503, not Flask's 500. (The
    # shell makes Flask's 500 the 503 in any case, whatever the wiring; this
    # answers it at once, before Flask logs the exception as an error.)
    return Response(refusal.body, status=refusal.status, headers=list(refusal.headers))


def _expose() -> None:
    g.sessionguard = session_context()


def _template_context() -> dict[str, Any]:
    ctx = request.environ.get("sessionguard") if has_request_context() else None
    return {"current_session": ctx.session if isinstance(ctx, SessionContext) else None}


def session_context() -> SessionContext:
    """The request's :class:`~sessionguard.SessionContext`.

    :raises RuntimeError: outside a request, or the app is not wrapped.
    """
    ctx = request.environ.get("sessionguard")
    if not isinstance(ctx, SessionContext):
        raise RuntimeError(
            "sessionguard is not installed on this app: call SessionGuardFlask(app, guard)"
            " or set app.wsgi_app = guard.wsgi(app.wsgi_app)"
        )
    return ctx


def current_session() -> Session | None:
    """The current :class:`~sessionguard.Session`, or ``None``."""
    return session_context().session


def ended_reason() -> str | None:
    """Why the session this request presented has ended, or ``None``."""
    return session_context().ended_reason


def login_user(
    user_id: str,
    *,
    remember_me: bool = False,
    metadata: Mapping[str, Any] | None = None,
    platform: str | None = None,
) -> Session:
    """Create a session for ``user_id`` (see :meth:`SessionContext.login`);
    the response carries the cookie. ``Session.token`` is the bearer token.

    :raises SessionLimitReached: the policy refuses logins over the limit.
    """
    return session_context().login(user_id, remember_me=remember_me, metadata=metadata, platform=platform)


def logout_user() -> None:
    """End the current session (``signed_out``) and clear the cookie."""
    session_context().logout()


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Decorate a view (sync or async) to answer ``401`` without a valid session."""
    if inspect.iscoroutinefunction(view):
        coroutine = cast(Callable[P, Awaitable[Any]], view)

        @functools.wraps(view)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            if current_session() is None:
                abort(401)
            return await coroutine(*args, **kwargs)

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_session() is None:
            abort(401)
        return view(*args, **kwargs)

    return wrapper
