"""Framework integrations: small helpers over the request object the
middleware places in the ASGI scope / WSGI environ (``sessionguard``).

Each module imports its framework, so import only the one you use:

- :mod:`sessionguard.integrations.fastapi` — ``CurrentSession`` /
  ``OptionalSession`` dependencies, ``login`` / ``logout`` helpers;
- :mod:`sessionguard.integrations.flask` — the ``SessionGuardFlask``
  extension, ``current_session()``, ``login_user()``, ``logout_user()``,
  ``login_required``;
- :mod:`sessionguard.integrations.django` — ``SessionGuardMiddleware``
  exposing ``request.sessionguard``.

Starlette needs no helper: ``request.scope["sessionguard"]``.
"""

from __future__ import annotations
