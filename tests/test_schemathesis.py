"""Schemathesis against the admin sub-app's own ``/openapi.json``, on a live
ASGI app with the admin token: no 500 anywhere, and every answer (status
code and body) is one the document describes. Bounded and deterministic."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from starlette.applications import Starlette

from conftest import SECRET
from sessionguard import Config, SessionGuard
from sessionguard.stores.protocol import NewSession
from sessionguard.tokens import session_id

ADMIN_TOKEN = "admin-" + "t" * 40
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def admin_app() -> Any:
    """A guarded host app with a few sessions (memory store, user timeouts allowed, an
    extra kind of session: PLATFORMS)."""
    guard = SessionGuard(Config(secret_key=SECRET, admin_token=ADMIN_TOKEN, allow_user_timeouts=True,
                                platforms="web,mobile,desktop,messenger"))
    for user, platform in [("ada", "web"), ("ada", "mobile"), ("grace", "desktop"), ("grace", "messenger")]:
        sid = guard.tokens.new_sid(guard.store.slot_tag(user))
        guard.store.create(NewSession(id=session_id(sid), user_id=user, platform=platform,
                                      metadata={"roles": ["admin"]}))
    return guard.asgi(Starlette())  # a host app with no routes: the admin sub-app answers


# Loaded at collection (schemathesis' lazy fixture loader does not run on pytest 9).
schema = schemathesis.openapi.from_asgi("/_sessionguard/openapi.json", admin_app())


@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_admin_api_conforms_to_its_openapi(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=CHECKS)
