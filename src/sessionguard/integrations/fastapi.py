"""FastAPI integration: the current session as a dependency.

.. code-block:: python

    from fastapi import FastAPI, Request
    from sessionguard import SessionGuard, SessionGuardMiddleware
    from sessionguard.integrations.fastapi import CurrentSession, login, logout

    guard = SessionGuard.from_env()
    app = FastAPI()
    app.add_middleware(SessionGuardMiddleware, guard=guard)

    @app.get("/me")
    async def me(session: CurrentSession) -> dict[str, str]:
        return {"user_id": session.user_id}

    @app.post("/login")
    async def sign_in(request: Request) -> dict[str, str]:
        user_id = ...  # your own authentication
        session = await login(request, user_id, metadata={"roles": ["admin"]})
        return {"token": session.token}  # the cookie is set as well

:func:`current_session` answers ``401`` (with ``WWW-Authenticate: Bearer``
and, in ``detail.ended_reason``, why a presented session ended) when the
request has no valid session; on a websocket route it closes the
connection with code ``1008`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ..context import AsyncSessionContext
from ..session import Session

__all__ = [
    "CurrentSession",
    "OptionalSession",
    "SessionContextDep",
    "current_session",
    "login",
    "logout",
    "optional_session",
    "session_context",
]


def session_context(connection: HTTPConnection) -> AsyncSessionContext:
    """The request's :class:`~sessionguard.AsyncSessionContext` (also usable
    as a dependency).

    :raises RuntimeError: the app is not wrapped by the sessionguard middleware.
    """
    ctx = connection.scope.get("sessionguard")
    if not isinstance(ctx, AsyncSessionContext):
        raise RuntimeError(
            "sessionguard is not installed on this app: add"
            " app.add_middleware(SessionGuardMiddleware, guard=guard) or serve guard.asgi(app)"
        )
    return ctx


async def optional_session(connection: HTTPConnection) -> Session | None:
    """Dependency: the current :class:`~sessionguard.Session`, or ``None``."""
    return session_context(connection).session


async def current_session(connection: HTTPConnection) -> Session:
    """Dependency: the current :class:`~sessionguard.Session`.

    :raises HTTPException: ``401`` without a valid session (``WebSocketException``
        with code ``1008`` on a websocket).
    """
    ctx = session_context(connection)
    if ctx.session is not None:
        return ctx.session
    if connection.scope["type"] == "websocket":
        reason = ctx.ended_reason or "no session"
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason=reason)
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail={
            "code": "session_ended" if ctx.ended_reason else "session_required",
            "message": "Sign in to continue.",
            "ended_reason": ctx.ended_reason,
        },
        headers={"WWW-Authenticate": "Bearer"},
    )


#: ``session: CurrentSession`` in a path operation: the session, or ``401``.
CurrentSession = Annotated[Session, Depends(current_session)]
#: ``session: OptionalSession``: the session or ``None``.
OptionalSession = Annotated[Session | None, Depends(optional_session)]
#: ``ctx: SessionContextDep``: the request object itself (``.ended_reason``, ``.login``, ...).
SessionContextDep = Annotated[AsyncSessionContext, Depends(session_context)]


async def login(
    connection: HTTPConnection,
    user_id: str,
    *,
    remember_me: bool = False,
    metadata: Mapping[str, Any] | None = None,
    platform: str | None = None,
) -> Session:
    """Create a session for ``user_id`` (see :meth:`AsyncSessionContext.login`);
    the response carries the cookie. ``Session.token`` is the bearer token.

    :raises SessionLimitReached: the policy refuses logins over the limit.
    """
    return await session_context(connection).login(
        user_id, remember_me=remember_me, metadata=metadata, platform=platform
    )


async def logout(connection: HTTPConnection) -> None:
    """End the current session (``signed_out``) and clear the cookie."""
    await session_context(connection).logout()
