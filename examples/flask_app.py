"""Flask example: the pages of the Starlette demo, with the Flask extension.

Run with::

    SESSIONGUARD_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \\
    SESSIONGUARD_COOKIE_SECURE=false flask --app examples/flask_app.py run

(``COOKIE_SECURE=false`` only because ``flask run`` serves plain HTTP.)
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request

from sessionguard import SessionGuard, SessionLimitReached
from sessionguard.demo import LoginForm, home_page, login_page, previous_ending
from sessionguard.integrations.flask import (
    SessionGuardFlask,
    current_session,
    ended_reason,
    login_required,
    login_user,
    logout_user,
)


def create_app(guard: SessionGuard | None = None) -> Flask:
    """The example app behind ``guard`` (default: one from ``SESSIONGUARD_*``)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    guard = SessionGuardFlask().init_app(app, guard)

    @app.get("/")
    def home() -> Any:
        session = current_session()
        if session is None:
            return login_page(ended_reason())
        events = guard.store.events(user_id=session.user_id, limit=20, cursor=None)
        html = home_page(
            session, previous=previous_ending(events.items, session.id), admin_path=guard.config.admin_path,
            self_service=guard.config.self_service,
        )
        return html, {"Cache-Control": "no-store"}

    @app.post("/login")
    def login() -> Any:
        try:
            form = LoginForm.parse(request.form)
        except ValueError as exc:
            return login_page(error=str(exc)), 400
        try:
            login_user(form.name, remember_me=form.remember_me, metadata=form.metadata)
        except SessionLimitReached as exc:
            return login_page(error=f"You already have {exc.limit} sessions on {exc.platform}."), 409
        return redirect("/", code=303)

    @app.post("/logout")
    def logout() -> Any:
        logout_user()
        return redirect("/", code=303)

    @app.get("/api/me")
    @login_required
    def api_me() -> Any:
        session = current_session()
        assert session is not None  # login_required saw to it
        return session.to_json()

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)
