"""Starlette example: sign in with any name, see the session and why the
previous one ended, sign out, and watch a websocket close when the session
ends.

The app itself is :mod:`sessionguard.demo` (it ships inside the package so
that ``sessionguard demo`` works from an installed wheel); read it there.
Run this file, or ``uvicorn --factory starlette_app:create_app``, with::

    SESSIONGUARD_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \\
    SESSIONGUARD_COOKIE_SECURE=false python examples/starlette_app.py

(``COOKIE_SECURE=false`` only because this serves plain HTTP on localhost.)
"""

from __future__ import annotations

from sessionguard import SessionGuard, SessionGuardMiddleware
from sessionguard.demo import create_app as create_demo_app


def create_app(guard: SessionGuard | None = None) -> SessionGuardMiddleware:
    """The demo site behind ``guard`` (default: one from ``SESSIONGUARD_*``)."""
    return create_demo_app(guard or SessionGuard.from_env())


if __name__ == "__main__":
    import uvicorn

    # proxy_headers=False: let SESSIONGUARD_TRUSTED_PROXIES decide whose
    # X-Forwarded-For is believed, not uvicorn.
    uvicorn.run(create_app(), host="127.0.0.1", port=8000, proxy_headers=False)
