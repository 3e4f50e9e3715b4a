"""SPEC 9.1 in a real browser: an extra kind of session (``PLATFORMS``) on the
admin page (its sessions, the platform filter, its policy row with the session
timeout) and on ``/me`` (the user's own idle timeout for it). Chromium as in
``tests/test_browser.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from test_browser import UA, Live, browser, expect, make_live, session_row  # noqa: F401 (fixtures)

SETTINGS = {"platforms": "web,mobile,desktop,messenger", "allow_user_timeouts": True,
            "platform_settings": {"messenger": {"idle_timeout": "5m", "max_sessions": 2}}}


def _login_by_header(live: Live, user: str, platform: str) -> str:
    client = httpx.Client(base_url=live.url, headers={"user-agent": UA["mac"], "x-client-platform": platform})
    live.clients.append(client)
    response = client.post("/login", json={"user": user})
    assert response.status_code == 200, response.text
    return str(response.json()["session"]["id"])


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_admin_page_shows_and_sets_an_extra_platform(
    make_live: Callable[..., Live], store: str, request: pytest.FixtureRequest,  # noqa: F811
) -> None:
    where: dict[str, Any] = {}
    if store == "redis":
        where = {"store_url": request.getfixturevalue("redis_server").url,
                 "key_prefix": request.getfixturevalue("key_prefix")}
    live = make_live(**SETTINGS, **where)
    chat = _login_by_header(live, "grace", "messenger")
    web = live.login("grace")
    page = live.admin_page()
    expect(session_row(page, chat)).to_contain_text("Messenger")
    filter_box = page.locator("#f-platform")
    options = ["All platforms", "Web", "Mobile", "Desktop", "Messenger"]
    expect(filter_box.locator("option")).to_have_text(options)
    filter_box.select_option("messenger")
    page.locator("#session-filters").get_by_role("button", name="Apply").click()  # the API's ?platform=
    expect(session_row(page, web.session_id)).to_have_count(0)
    expect(session_row(page, chat)).to_have_count(1)

    expect(page.locator("#pol-messenger-idle_timeout")).to_have_value("5m")
    expect(page.locator("#pol-messenger-max_sessions")).to_have_value("2")
    session = page.locator("#pol-messenger-session_timeout")
    expect(session).to_have_value("30d")
    expect(page.get_by_label("Lifetime without remember-me").first).to_be_visible()
    session.fill("2x")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#pol-messenger-session_timeout-error")).to_contain_text("not a duration")
    session.fill("8h")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#status")).to_have_text("Policy saved. It applies at once to every session.")
    policy = live.api(page, "/policy")
    assert policy["platforms"]["messenger"]["session_timeout"] == "8h"
    assert policy["platforms"]["web"]["session_timeout"] == "30d"


def test_me_page_offers_an_idle_timeout_for_an_extra_platform(make_live: Callable[..., Live]) -> None:  # noqa: F811
    live = make_live(**SETTINGS)
    context = live.context()
    live.browser_login(context, "ada")
    page = live.open(context, "/me")
    messenger = page.get_by_label("Messenger", exact=True)
    expect(messenger).to_be_visible()
    messenger.select_option(label="4 hours")
    page.get_by_role("button", name="Save timeouts").click()
    expect(page.locator("#status")).to_have_text("Your idle timeouts were saved.")
    chosen = live.api(page, "/me/settings")["idle_timeout"]
    assert chosen == {"web": None, "mobile": None, "desktop": None, "messenger": "4h"}
