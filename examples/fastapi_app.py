"""FastAPI example: a JSON API with the ``CurrentSession`` dependency.

Run with::

    SESSIONGUARD_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \\
    SESSIONGUARD_COOKIE_SECURE=false uvicorn --factory fastapi_app:create_app --app-dir examples

then ``POST /login`` with ``{"user": "ada"}`` and call ``GET /me`` with the
cookie, or with ``Authorization: Bearer <token>`` as a native client would.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sessionguard import SessionGuard, SessionGuardMiddleware, SessionLimitReached
from sessionguard.demo import reason_text
from sessionguard.integrations.fastapi import (
    CurrentSession,
    OptionalSession,
    SessionContextDep,
    login,
    logout,
)


class Credentials(BaseModel):
    """The login body; real apps check a password or an SSO assertion here."""

    user: str = Field(min_length=1, max_length=200)
    remember_me: bool = False
    admin: bool = False


def create_app(guard: SessionGuard | None = None) -> FastAPI:
    """The example app behind ``guard`` (default: one from ``SESSIONGUARD_*``)."""
    app = FastAPI(title="sessionguard FastAPI example")
    app.add_middleware(SessionGuardMiddleware, guard=guard or SessionGuard.from_env())

    @app.get("/")
    async def index(session: OptionalSession, ctx: SessionContextDep) -> dict[str, Any]:
        """Who is signed in, or why the presented session ended."""
        return {
            "session": None if session is None else session.to_json(),
            "ended_reason": ctx.ended_reason,
            "message": reason_text(ctx.ended_reason),
        }

    @app.post("/login", response_model=None)
    async def sign_in(request: Request, body: Credentials) -> dict[str, Any] | JSONResponse:
        """Start a session; the cookie is set and the bearer token returned."""
        metadata = {"name": body.user, "roles": ["admin"] if body.admin else []}
        try:
            session = await login(request, body.user, remember_me=body.remember_me, metadata=metadata)
        except SessionLimitReached as exc:
            return JSONResponse({"detail": f"session limit of {exc.limit} reached"}, status_code=409)
        return {"token": session.token, "session": session.to_json()}

    @app.post("/logout", status_code=204)
    async def sign_out(request: Request) -> Response:
        """End the current session and clear the cookie."""
        await logout(request)
        return Response(status_code=204)

    @app.get("/me")
    async def me(session: CurrentSession) -> dict[str, Any]:
        """The current session; ``401`` without one."""
        return session.to_json()

    return app
