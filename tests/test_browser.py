"""The admin and self-service pages in a real browser.

Playwright drives Debian's Chromium (``/usr/bin/chromium``, never a browser
downloaded by ``playwright install``) against a live server: the Starlette
host app of ``tests/apps.py`` behind the guard, served by uvicorn in a
background thread on a free loopback port. Other users are plain HTTP
clients (``httpx``) of the same server, so "that user's next request" is a
real request.

Cookies: the server speaks plain HTTP on 127.0.0.1, so these guards run with
``COOKIE_SECURE=false`` (what SPEC §3 allows for plain-HTTP development).
Chromium would accept ``Secure`` cookies on ``http://localhost``, but the
``httpx`` clients playing the other users would not send them, and
``localhost`` may resolve to ``::1`` while the server listens on IPv4; the
``Secure`` attribute itself is covered by the behaviour suite.

Screenshots of both pages (desktop and phone) go to ``tests/artifacts/``
(git-ignored) on every run. With ``SESSIONGUARD_DOCS_SCREENSHOTS=1`` the
desktop ones are also written to ``docs/admin.png`` and ``docs/me.png`` for the
README (opt-in, so an ordinary test run leaves the working tree clean).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from apps import starlette_app
from conftest import SECRET, FakeClock
from sessionguard import Config, SessionGuard

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
DOCS = HERE.parent / "docs"
#: MaxMind's public test database, next to the repository when present.
GEOIP_TEST_DB = HERE.parent.parent / "shared" / "data" / "GeoLite2-City-Test.mmdb"
ADMIN = "/_sessionguard"
ADMIN_TOKEN = "admin-" + "t" * 40
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

UA = {
    "mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36",
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "android": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.0.0 Mobile Safari/537.36",
    "linux": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "slack": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Slack/4.41.105 Chrome/130.0.6723.191 Electron/33.2.1 Safari/537.36 Sonic Slack_SSB/4.41.105",
}
HOSTILE = '<script>window.__pwned = 1; alert(1)</script>"><img src=x onerror="window.__pwned = 2; alert(2)">'


# -- the browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright; a clear failure (never a skip)
    when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, so the browser tests cannot run. Install Debian's Chromium: "
            "`apt-get install chromium` (./scripts/test and .ci/run do this when run as root). "
            "Do not use `playwright install`: the tests launch the system browser.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# -- the live server ----------------------------------------------------------------


class Server:
    """uvicorn serving ``app`` in a background thread on a free loopback port.

    The thread runs its own event loop; the guard's async store is closed in
    that loop once the server has stopped (its connections belong there).
    """

    def __init__(self, app: Any, guard: SessionGuard, *, date_header: bool = True) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11",
                                date_header=date_header)
        self._server = uvicorn.Server(config)
        self._guard = guard
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        started = threading.Event()
        while not self._server.started and self._thread.is_alive():
            started.wait(0.02)
        assert self._server.started, "uvicorn did not start"

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            await self._guard.async_store.close()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@dataclass
class User:
    """A signed-in user on an HTTP client of their own (a second browser)."""

    client: httpx.Client
    session_id: str

    def whoami(self) -> dict[str, Any]:
        response = self.client.get("/whoami")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def ended_reason(self) -> str | None:
        """Why the session ended (``None``: still valid). Asks once: the answer
        also clears the cookie."""
        answer = self.whoami()
        assert (answer["session"] is None) == (answer["ended_reason"] is not None), answer
        return None if answer["ended_reason"] is None else str(answer["ended_reason"])


@dataclass
class Live:
    """A guard, the host app served by uvicorn, and helpers to sign users in."""

    guard: SessionGuard
    server: Server
    browser: Browser
    clients: list[httpx.Client] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)
    #: uncaught script errors and CSP violations seen by any page
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def login(
        self, user: str, *, name: str | None = None, roles: tuple[str, ...] = (),
        user_agent: str = UA["mac"], ip: str | None = None,
    ) -> User:
        headers = {"user-agent": user_agent}
        if ip is not None:
            headers["x-forwarded-for"] = ip
        client = httpx.Client(base_url=self.url, headers=headers)
        self.clients.append(client)
        response = client.post("/login", json={"user": user, "metadata": _metadata(name, roles)})
        assert response.status_code == 200, response.text
        return User(client, response.json()["session"]["id"])

    def context(self, *, viewport: dict[str, int] = DESKTOP, **options: Any) -> BrowserContext:
        context = self.browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC", **options)
        self.contexts.append(context)
        return context

    def browser_login(
        self, context: BrowserContext, user: str, *, name: str | None = None,
        roles: tuple[str, ...] = (), ip: str | None = None,
    ) -> str:
        """Sign ``user`` in inside ``context`` (its cookie jar); the session id."""
        headers = {} if ip is None else {"x-forwarded-for": ip}
        response = context.request.post(
            self.url + "/login", data={"user": user, "metadata": _metadata(name, roles)}, headers=headers
        )
        assert response.status == 200, response.text()
        return str(response.json()["session"]["id"])

    def open(self, context: BrowserContext, path: str) -> Page:
        """Open an admin page and wait until its script has loaded the data."""
        page = context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda message: self._console(message.text))
        page.goto(self.url + ADMIN + path)
        page.wait_for_selector("body[data-ready]")
        return page

    def admin_page(self, **options: Any) -> Page:
        """An admin (Ada) signed in on a fresh browser, on the admin page."""
        context = self.context(user_agent=UA["mac"], **options)
        self.browser_login(context, "ada", name="Ada Lovelace", roles=("admin",))
        return self.open(context, "/")

    def api(self, page: Page, path: str) -> Any:
        response = page.request.get(self.url + ADMIN + "/api" + path)
        assert response.status == 200, response.text()
        return response.json()

    def _console(self, text: str) -> None:
        if "Content Security Policy" in text:
            self.problems.append(f"CSP violation: {text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        for client in self.clients:
            client.close()
        self.server.stop()
        self.guard.store.close()


def _metadata(name: str | None, roles: tuple[str, ...]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if name is not None:
        metadata["name"] = name
    if roles:
        metadata["roles"] = list(roles)
    return metadata


@pytest.fixture
def make_live(browser: Browser) -> Iterator[Callable[..., Live]]:
    """Start live servers; each is checked for script errors and stopped at teardown."""
    lives: list[Live] = []

    def make(clock: FakeClock | None = None, **settings: Any) -> Live:
        """A live server; with ``clock``, the guard runs on that fake clock (and
        the server sends no ``Date`` header: it would tell the real time)."""
        settings = {"secret_key": SECRET, "cookie_secure": False, "store_url": "memory://", **settings}
        guard = SessionGuard(Config(**settings), clock=clock)
        server = Server(starlette_app(guard), guard, date_header=clock is None)
        live = Live(guard, server, browser)
        lives.append(live)
        return live

    yield make
    problems = [p for live in lives for p in live.problems]
    for live in lives:
        live.close()
    assert not problems, problems


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def live(request: pytest.FixtureRequest, make_live: Callable[..., Live]) -> Live:
    """A live server on the memory store and on Redis."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return make_live(store_url=server.url, key_prefix=request.getfixturevalue("key_prefix"))
    return make_live()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def session_row(page: Page, session_id: str) -> Any:
    return page.locator(f'#sessions-table tbody tr[data-session-id="{session_id}"]')


# -- the scenarios of issue 5 ----------------------------------------------------------


def test_admin_signs_out_a_session_and_its_user_sees_revoked(live: Live) -> None:
    grace_phone = live.login("grace", name="Grace Hopper", user_agent=UA["iphone"])
    grace_pc = live.login("grace", name="Grace Hopper", user_agent=UA["windows"])
    page = live.admin_page()
    row = session_row(page, grace_phone.session_id)
    expect(row).to_contain_text("Grace Hopper")
    expect(row).to_contain_text("Safari 17 on iOS")

    row.get_by_role("button", name="Sign out the Safari 17 on iOS session of Grace Hopper").click()

    expect(page.locator("#status")).to_have_text("Signed out the Safari 17 on iOS session of Grace Hopper.")
    expect(row).to_have_class("ended")
    expect(row.locator('button[data-action="end-session"]')).to_be_disabled()
    assert grace_phone.ended_reason() == "revoked"
    assert grace_pc.ended_reason() is None  # the other session stays
    expect(page.locator('#audit-table tbody tr[data-type="revoked"]')).to_have_count(1)


def test_admin_signs_out_every_session_of_one_user(live: Live) -> None:
    bob = [live.login("bob", name="Bob", user_agent=ua) for ua in (UA["android"], UA["linux"])]
    grace = live.login("grace")
    page = live.admin_page()
    session_row(page, bob[0].session_id).get_by_role("button", name="Sign out every session of Bob").click()
    expect(page.locator("#status")).to_have_text("Signed out 2 sessions of Bob.")
    expect(page.locator("#sessions-table tbody tr.ended")).to_have_count(2)
    assert [b.ended_reason() for b in bob] == ["revoked", "revoked"]
    assert grace.ended_reason() is None


def test_policy_form_rejects_a_bad_value_then_saves_a_good_one(live: Live) -> None:
    page = live.admin_page()
    idle = page.locator("#pol-web-idle_timeout")
    expect(idle).to_have_value("1h")
    status = page.locator("#status")

    idle.fill("soon")
    page.get_by_role("button", name="Save policy").click()
    error = page.locator("#pol-web-idle_timeout-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("'soon' is not a duration")
    expect(idle).to_have_attribute("aria-invalid", "true")
    expect(idle).to_be_focused()
    expect(status).to_contain_text("Web idle timeout: ")
    assert live.api(page, "/policy")["platforms"]["web"]["idle_timeout"] == "1h"  # nothing saved

    limit = page.locator("#pol-mobile-max_sessions")
    idle.fill("15m")
    limit.fill("none")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#pol-mobile-max_sessions-error")).to_contain_text("positive integer")
    expect(error).to_be_hidden()  # the earlier message went with its mistake
    expect(limit).to_be_focused()

    limit.fill("2")
    limit.press("Enter")  # keyboard submit
    expect(status).to_have_text("Policy saved. It applies at once to every session.")
    expect(page.locator("#policy-form .error:visible")).to_have_count(0)
    expect(idle).not_to_have_attribute("aria-invalid", "true")
    policy = live.api(page, "/policy")
    assert policy["platforms"]["web"]["idle_timeout"] == "15m"
    assert policy["platforms"]["mobile"]["max_sessions"] == 2
    assert policy["platforms"]["desktop"]["max_sessions"] is None  # empty box: unlimited
    expect(page.locator('#audit-table tbody tr[data-type="policy_changed"]')).to_have_count(1)


def test_policy_form_sets_the_total_limit(live: Live) -> None:
    page = live.admin_page()
    total = page.get_by_label("Maximum sessions in all")
    expect(total).to_have_value("")  # unlimited
    status = page.locator("#status")

    total.fill("0")
    page.get_by_role("button", name="Save policy").click()
    error = page.locator("#pol-max_sessions_total-error")
    expect(error).to_contain_text("positive integer")
    expect(total).to_have_attribute("aria-invalid", "true")
    expect(total).to_be_focused()
    assert live.api(page, "/policy")["max_sessions_total"] is None  # nothing saved

    total.fill("3")
    total.press("Enter")
    expect(status).to_have_text("Policy saved. It applies at once to every session.")
    expect(error).to_be_hidden()
    assert live.api(page, "/policy")["max_sessions_total"] == 3
    page.reload()
    expect(page.get_by_label("Maximum sessions in all")).to_have_value("3")
    total = page.get_by_label("Maximum sessions in all")
    total.fill("")  # empty: unlimited again
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#status")).to_have_text("Policy saved. It applies at once to every session.")
    assert live.api(page, "/policy")["max_sessions_total"] is None


def test_sign_out_everyone_needs_the_typed_phrase(live: Live) -> None:
    grace = live.login("grace", name="Grace Hopper")
    bob = live.login("bob", user_agent=UA["android"])
    page = live.admin_page()
    phrase = page.get_by_label("Confirmation phrase")
    button = page.get_by_role("button", name="Sign out everyone")
    expect(page.get_by_label("Keep my session")).to_be_checked()

    for attempt in ("", "sign out all", "SIGN OUT"):
        phrase.fill(attempt)
        button.click()
        expect(page.locator("#all-phrase-error")).to_be_visible()
        expect(phrase).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#status")).to_contain_text("Nobody was signed out")
    assert grace.whoami()["session"] is not None
    assert bob.whoami()["session"] is not None
    expect(page.locator("#sessions-table tbody tr")).to_have_count(3)

    phrase.fill("SIGN OUT ALL")
    button.click()
    expect(page.locator("#status")).to_have_text("Everyone was signed out except this session.")
    assert grace.ended_reason() == "signout_all"
    assert bob.ended_reason() == "signout_all"
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(1)  # the admin's own, kept
    expect(rows.first).to_contain_text("This session")
    expect(page.locator('#audit-table tbody tr[data-type="signout_all"]')).to_have_count(1)


def test_user_ends_one_of_their_own_sessions_from_me(live: Live) -> None:
    context = live.context(user_agent=UA["mac"])
    here = live.browser_login(context, "ada", name="Ada Lovelace")
    phone = live.login("ada", name="Ada Lovelace", user_agent=UA["iphone"])
    laptop = live.login("ada", name="Ada Lovelace", user_agent=UA["windows"])
    grace = live.login("grace")
    page = live.open(context, "/me")
    cards = page.locator("#my-sessions > li")
    expect(cards).to_have_count(3)
    current = page.locator(f'#my-sessions > li[data-session-id="{here}"]')
    expect(current).to_contain_text("This device")
    expect(current.get_by_role("button")).to_have_count(0)  # this device is signed out by the app
    expect(cards.first).to_have_attribute("data-session-id", here)

    page.locator(f'#my-sessions > li[data-session-id="{phone.session_id}"]').get_by_role("button").click()
    expect(cards).to_have_count(2)
    expect(page.locator("#status")).to_have_text("Signed out Safari 17 on iOS.")
    assert phone.ended_reason() == "signed_out"
    assert laptop.whoami()["session"] is not None

    page.get_by_role("button", name="Sign out all other sessions").click()
    expect(cards).to_have_count(1)
    expect(page.locator("#status")).to_have_text("Signed out 1 other session.")
    expect(page.get_by_role("button", name="Sign out all other sessions")).to_be_disabled()
    assert laptop.ended_reason() == "signed_out"
    assert grace.ended_reason() is None  # other users are untouched
    assert live.api(page, "/me/sessions")["sessions"][0]["current"] is True


# -- more of the pages ----------------------------------------------------------------


@pytest.mark.parametrize("bypass_csp", [
    pytest.param(False, id="with-csp"),
    pytest.param(True, id="escaping-alone"),
])
def test_attacker_strings_show_as_text_and_never_run(
    make_live: Callable[..., Live], bypass_csp: bool
) -> None:
    """The hostile strings are the user id, the display name and the user agent
    of a session, and of the admin looking at them. ``escaping-alone`` turns
    the CSP off in the browser, so only the escaping stands between the markup
    and a running script."""
    live = make_live()
    live.login(HOSTILE, name=HOSTILE, user_agent=HOSTILE)
    context = live.context(user_agent=HOSTILE, bypass_csp=bypass_csp)
    live.browser_login(context, HOSTILE, name=HOSTILE, roles=("admin",))
    dialogs: list[str] = []
    context.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page = live.open(context, "/")
    expect(page.locator("#sessions-table tbody tr")).to_have_count(2)
    expect(page.locator(".who strong")).to_have_text(HOSTILE)
    first = page.locator("#sessions-table tbody tr").first
    expect(first.locator("td").first).to_contain_text(HOSTILE)
    expect(first.locator("[title]").first).to_have_attribute("title", HOSTILE)  # the user agent
    expect(page.locator("#audit-table tbody")).to_contain_text(HOSTILE)
    page.get_by_label("Filter shown rows").fill("<script>")
    expect(page.locator("#sessions-table tbody tr:visible")).to_have_count(2)

    me = live.open(context, "/me")
    expect(me.locator(".who strong")).to_have_text(HOSTILE)
    expect(me.locator("#my-sessions > li")).to_have_count(2)  # the same hostile user, twice
    expect(me.locator("#my-sessions > li.current")).to_contain_text("This device")

    for shown in (page, me):
        shown.wait_for_timeout(200)  # an onerror would have fired by now
        assert shown.evaluate("window.__pwned") is None
        assert shown.locator("img").count() == 0
        assert shown.locator("script:not([src])").count() == 0
    assert dialogs == []


def test_admin_table_sorts_filters_and_loads_more(make_live: Callable[..., Live]) -> None:
    live = make_live()
    for i in range(54):
        live.login(f"user{i:02}", name=f"User {i:02}", user_agent=UA["linux"])
    live.login("zed", name="Zed", user_agent=UA["iphone"])
    page = live.admin_page()
    rows = page.locator("#sessions-table tbody tr")
    more = page.get_by_role("button", name="Load more sessions")
    expect(rows).to_have_count(50)
    expect(page.locator("#sessions-summary")).to_have_text("50 sessions shown; more can be loaded.")
    more.click()
    expect(rows).to_have_count(56)
    expect(more).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Loaded 6 more sessions.")

    user_header = page.locator('th[data-key="name"]')
    user_header.get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(user_header).to_have_attribute("aria-sort", "ascending")
    expect(page.locator('th[data-key="created_at"]')).not_to_have_attribute("aria-sort", re.compile("."))
    expect(rows.first).to_contain_text("Ada Lovelace")
    page.keyboard.press("Space")
    expect(user_header).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_contain_text("Zed")

    page.get_by_label("Filter shown rows").fill("iOS")
    expect(page.locator("#sessions-table tbody tr:visible")).to_have_count(1)
    page.get_by_label("Filter shown rows").fill("")
    page.get_by_label("Platform", exact=True).select_option("mobile")
    page.get_by_role("button", name="Apply").first.click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Zed")
    page.get_by_label("Platform", exact=True).select_option("")
    page.locator("#f-user").fill("user07")
    page.locator("#f-user").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("User 07")

    page.locator("#a-user").fill("zed")
    page.locator("#a-user").press("Enter")
    expect(page.locator("#audit-table tbody tr")).to_have_count(1)
    expect(page.locator("#audit-table tbody")).to_contain_text("zed")


def test_readonly_admin_reads_but_cannot_change(make_live: Callable[..., Live]) -> None:
    live = make_live(readonly_roles="auditor")
    live.login("grace")
    context = live.context()
    live.browser_login(context, "carol", roles=("auditor",))
    page = live.open(context, "/")
    expect(page.locator("#sessions-table tbody tr")).to_have_count(2)
    expect(page.locator("#sessions-table button[data-action]")).to_have_count(0)
    expect(page.locator("#pol-web-idle_timeout")).to_be_disabled()
    expect(page.locator("#pol-web-idle_timeout")).to_have_value("1h")
    expect(page.get_by_role("button", name="Sign out everyone")).to_have_count(0)


def test_user_picks_own_idle_timeouts_when_allowed(make_live: Callable[..., Live]) -> None:
    live = make_live(allow_user_timeouts=True)
    context = live.context()
    live.browser_login(context, "ada")
    page = live.open(context, "/me")
    web = page.get_by_label("Web", exact=True)
    expect(web).to_be_visible()
    expect(web).to_have_value("")
    options = web.locator("option")
    expect(options).to_have_text(["Administrator's setting", "Never", "10 minutes", "30 minutes",
                                  "90 minutes", "1 hour", "4 hours", "8 hours", "12 hours", "1 day",
                                  "2 days"])
    web.select_option(label="30 minutes")
    page.get_by_label("Mobile", exact=True).select_option(label="Never")
    page.get_by_role("button", name="Save timeouts").click()
    expect(page.locator("#status")).to_have_text("Your idle timeouts were saved.")
    chosen = live.api(page, "/me/settings")["idle_timeout"]
    assert chosen == {"web": "30m", "mobile": "never", "desktop": None}
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.get_by_label("Mobile", exact=True)).to_have_value("never")


def test_user_signs_out_everywhere(make_live: Callable[..., Live]) -> None:
    live = make_live()
    phone = live.login("ada", user_agent=UA["iphone"])
    context = live.context()
    live.browser_login(context, "ada")
    page = live.open(context, "/me")
    page.get_by_role("button", name="Sign out everywhere, here too").click()
    expect(page.locator("#status")).to_have_text(
        "Signed out of 2 sessions, this one included. Reload the page to sign in again.")
    expect(page.get_by_role("button", name="Sign out all other sessions")).to_be_disabled()
    assert phone.ended_reason() == "signed_out"
    assert page.request.get(live.url + "/whoami").json() == {"session": None, "ended_reason": None}


def test_own_timeouts_are_hidden_when_not_allowed(make_live: Callable[..., Live]) -> None:
    live = make_live()
    context = live.context()
    live.browser_login(context, "ada")
    page = live.open(context, "/me")
    expect(page.locator("#timeouts")).to_be_hidden()


def test_anonymous_browser_gets_the_401_page(make_live: Callable[..., Live]) -> None:
    live = make_live()
    page = live.context().new_page()
    response = page.goto(live.url + ADMIN + "/")
    assert response is not None and response.status == 401
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in required")


#: Text nodes whose colour contrast with their background is under WCAG AA
#: (4.5:1; 3:1 for large text). Disabled controls are exempt, as in WCAG.
LOW_CONTRAST_JS = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    const root = parse(getComputedStyle(document.documentElement).backgroundColor);
    return root || {r: 255, g: 255, b: 255, a: 1};
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || !el.checkVisibility()) continue;
    if (el.closest(":disabled, .visually-hidden")) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      low.push([node.textContent.trim().slice(0, 40), style.color, ratio.toFixed(2)]);
    }
  }
  return low;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_contrast_focus_and_skip_link(make_live: Callable[..., Live], scheme: str) -> None:
    live = make_live()
    live.login("grace", name="Grace Hopper", roles=("support",), user_agent=UA["iphone"])
    page = live.admin_page(color_scheme=scheme)
    page.locator("#pol-web-idle_timeout").fill("soon")
    page.get_by_role("button", name="Save policy").click()  # an error message and a status, too
    expect(page.locator("#pol-web-idle_timeout-error")).to_be_visible()
    me = live.open(page.context, "/me")
    for shown in (page, me):
        assert shown.evaluate(LOW_CONTRAST_JS) == []

    me.keyboard.press("Tab")  # the first stop of a freshly loaded page
    assert me.evaluate("document.activeElement.className") == "skip-link"
    assert me.evaluate("document.activeElement.getBoundingClientRect().top") >= 0  # shown when focused
    me.keyboard.press("Enter")
    assert me.evaluate("document.activeElement.id") == "main"
    me.keyboard.press("Tab")
    assert me.evaluate("document.activeElement.tagName") == "BUTTON"
    assert me.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_report_only_banner(make_live: Callable[..., Live], scheme: str) -> None:
    live = make_live(enforce="report")
    page = live.admin_page(color_scheme=scheme)
    banner = page.get_by_role("note")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Report-only mode")
    assert page.evaluate(LOW_CONTRAST_JS) == []
    assert make_live().admin_page().locator("#report-only").count() == 0


# -- the expiry warning (expiry.js) -------------------------------------------------------


@pytest.mark.parametrize("path", ["/me", "/"])
def test_expiry_warning_keeps_the_session_or_says_why_it_ended(
    make_live: Callable[..., Live], path: str
) -> None:
    """Both clocks are fake and moved together: the guard's (the server's
    time) and the page's (Playwright's clock drives Date and the timers of
    expiry.js). The idle timeout is 10 minutes, so the warning is due 8
    minutes after the last use."""
    clock = FakeClock()
    live = make_live(clock=clock, idle_timeout="10m")
    context = live.context()
    context.clock.install(time=clock.now)
    live.browser_login(context, "ada", name="Ada Lovelace", roles=("admin",))
    page = live.open(context, path)
    notice = page.locator(".sg-expiry")
    stay = page.get_by_role("button", name="Stay signed in")

    def wait(seconds: int) -> None:
        clock.advance(seconds)
        page.clock.run_for(seconds * 1000)

    wait(7 * 60)
    expect(notice).to_have_count(0)  # nothing due yet: not even built
    wait(65)  # 1:55 left
    expect(notice).to_be_visible()
    expect(page.locator(".sg-expiry-message")).to_have_text(
        "Your session is about to end because you have been inactive.")
    expect(page.locator(".sg-expiry-countdown")).to_contain_text("Time left: 1:5")
    assert page.evaluate(LOW_CONTRAST_JS) == []
    if path == "/me":
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "expiry.png"
        page.screenshot(path=str(shot))
        if os.environ.get("SESSIONGUARD_DOCS_SCREENSHOTS") == "1":
            (DOCS / "expiry.png").write_bytes(shot.read_bytes())

    stay.click()  # an active request: the session is used now
    expect(notice).to_be_hidden()
    (session,) = live.guard.sessions("ada")
    assert session.expires_at is not None
    assert session.expires_at.timestamp() == clock.now + 10 * 60

    wait(8 * 60 + 5)  # the warning again, 1:55 before the new expiry, and then nothing is done
    expect(notice).to_be_visible()
    wait(2 * 60)
    expect(page.locator(".sg-expiry-message")).to_have_text(
        "You were signed out because you were inactive for too long.")
    expect(stay).to_be_hidden()
    expect(page.locator(".sg-expiry-countdown")).to_have_text("Reload the page to sign in again.")
    expect(page.locator("main button").first).to_be_disabled()
    assert live.guard.sessions("ada") == []
    ending = live.guard.store.events(user_id="ada", limit=1, cursor=None).items[0]
    assert (ending.type, ending.actor) == ("idle_timeout", "system")


def test_expiry_warning_follows_activity_elsewhere(make_live: Callable[..., Live]) -> None:
    """A use of the session in another tab moves the expiry: the warning that
    was due is not shown, and one that shows goes away."""
    clock = FakeClock()
    live = make_live(clock=clock, idle_timeout="10m")
    context = live.context()
    context.clock.install(time=clock.now)
    live.browser_login(context, "ada")
    page = live.open(context, "/me")
    notice = page.locator(".sg-expiry")

    def wait(seconds: int) -> None:
        clock.advance(seconds)
        page.clock.run_for(seconds * 1000)

    wait(5 * 60)
    assert context.request.get(live.url + "/whoami").ok  # another tab uses the session
    wait(3 * 60 + 5)  # the first warning was due now: the script looks, and waits on
    page.wait_for_timeout(300)
    expect(notice).to_have_count(0)
    wait(5 * 60)  # 1:55 before the expiry the other tab moved
    expect(notice).to_be_visible()
    assert context.request.get(live.url + "/whoami").ok
    wait(15)  # the next look while warning sees the new expiry
    expect(notice).to_be_hidden()


# -- the activity charts ---------------------------------------------------------------


def test_activity_charts_draw_the_store_s_figures(live: Live) -> None:
    live.login("grace", name="Grace Hopper", user_agent=UA["iphone"])
    live.login("alan", name="Alan Turing", user_agent=UA["windows"])
    live.login("katherine", user_agent=UA["linux"]).client.post("/logout")
    revoked = live.login("mallory", user_agent=UA["android"])
    page = live.admin_page()
    session_row(page, revoked.session_id).locator('button[data-action="end-session"]').click()
    expect(session_row(page, revoked.session_id)).to_have_class(re.compile("ended"))
    page.get_by_role("button", name="Refresh charts").click()
    # the active sessions (Redis counts in the background: the page asks again until it has a count)
    bars = page.locator("#chart-active rect.chart-bar")
    expect(bars).to_have_count(3, timeout=15_000)
    counts = {bars.nth(i).get_attribute("data-platform"): bars.nth(i).get_attribute("data-count")
              for i in range(3)}
    # Alan (Windows) and Ada (the admin, a Mac) on the web, Grace on her phone; Mallory's
    # phone was revoked (on Redis the count may be from before the revocation)
    assert counts in ({"web": "2", "mobile": "1", "desktop": "0"},
                      {"web": "2", "mobile": "2", "desktop": "0"})
    expect(page.locator("#chart-active svg")).to_have_attribute("role", "img")
    # the endings of the current hour: a sign-out and a revocation
    current = page.locator("#chart-endings g[data-hour]").last
    expect(current.locator('rect[data-reason="signed_out"]')).to_have_attribute("data-count", "1")
    expect(current.locator('rect[data-reason="revoked"]')).to_have_attribute("data-count", "1")
    expect(page.locator("#chart-endings svg")).to_have_attribute(
        "aria-label", re.compile(r"^2 endings in the last 24 hours: revoked 1, signed out 1\.$"))
    expect(page.locator("#chart-endings-legend li")).to_have_count(6)
    assert page.evaluate("document.querySelectorAll('#charts [style]').length") == 0  # no inline style


def history(live: Live, clock: FakeClock, start: float) -> None:
    """A day of activity, hour by hour, on the fake clock: logins on every
    platform, sign-outs, revocations, evictions, and idle timeouts noticed later."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    agents = [UA["mac"], UA["iphone"], UA["windows"], UA["android"], UA["linux"], UA["slack"]]
    idle: list[User] = []
    for hour in range(24):
        clock.now = start + hour * 3600 + 300
        remembered = httpx.Client(base_url=live.url, headers={"user-agent": agents[hour % len(agents)]})
        live.clients.append(remembered)  # remember-me sessions stay active all day
        assert remembered.post("/login", json={"user": f"kept{hour}", "remember_me": True}).status_code == 200
        for n in range(3 + hour % 4):
            user = live.login(f"user{hour}-{n}", user_agent=agents[(hour + n) % len(agents)])
            if n == 0 and hour % 3 == 0:
                user.client.post("/logout")
            elif n == 1 and hour % 5 == 1:
                httpx.delete(f"{live.url}{ADMIN}/api/sessions/{user.session_id}", headers=admin)
            elif n == 2 and hour < 20:
                idle.append(user)
        if hour % 7 == 3:  # a fourth session of one user on a limit of three
            for _ in range(4):
                live.login(f"busy{hour}", user_agent=UA["mac"])
        for user in [u for u in idle if hour % 4 == 0]:
            user.ended_reason()  # noticed now, dated an hour after its login
        idle = [] if hour % 4 == 0 else idle


def test_screenshot_of_the_activity_charts(make_live: Callable[..., Live]) -> None:
    start = time.time() - 23.5 * 3600
    clock = FakeClock(start)
    live = make_live(clock=clock, admin_token=ADMIN_TOKEN, web_max_sessions=3, trusted_proxies="127.0.0.1")
    history(live, clock, start)
    clock.now = start + 23.5 * 3600
    page = live.admin_page()
    page.wait_for_selector("#charts[data-ready]")
    expect(page.locator("#chart-active rect.chart-bar")).to_have_count(3)
    hours = page.locator("#chart-endings g[data-hour]").all()
    totals = [int(g.get_attribute("data-total") or 0) for g in hours]
    # the day's endings (about 30; the first hour's fall out of the window or not with the minute
    # the test runs at: the buckets are clock hours)
    assert len(totals) == 24 and sum(totals) >= 25
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "charts-desktop.png"
    page.locator("#charts").screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    if os.environ.get("SESSIONGUARD_DOCS_SCREENSHOTS") == "1":
        (DOCS / "charts.png").write_bytes(target.read_bytes())
    phone = live.admin_page(viewport=PHONE)  # one column: each chart the page's width
    phone.wait_for_selector("#charts[data-ready]")
    boxes = [phone.locator(f"#{name} svg").bounding_box() for name in ("chart-active", "chart-endings")]
    assert all(box is not None and box["width"] > 300 for box in boxes), boxes
    phone.locator("#charts").screenshot(path=str(ARTIFACTS / "charts-phone.png"))


# -- recently ended sessions (SPEC 9.2) ---------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def timed_live(request: pytest.FixtureRequest, make_live: Callable[..., Live]) -> tuple[Live, FakeClock]:
    """A live server on a fake clock (now), on the memory store and on Redis."""
    clock = FakeClock(time.time())
    settings: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "idle_timeout": "1h", "web_max_sessions": 1}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        settings |= {"store_url": server.url, "key_prefix": request.getfixturevalue("key_prefix")}
    return make_live(clock, **settings), clock


def test_admin_status_filter_shows_ended_sessions_with_reasons(timed_live: tuple[Live, FakeClock]) -> None:
    live, clock = timed_live
    ida = live.login("ida", name="Ida Idle", user_agent=UA["linux"])
    clock.advance(2 * 3600)  # Ida idles out and never comes back
    assert live.guard.sweep() == 1
    bob = live.login("bob", name="Bob", user_agent=UA["android"])
    assert bob.client.post("/logout").status_code == 200
    grace = live.login("grace", name="Grace Hopper", user_agent=UA["windows"])
    page = live.admin_page()
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(2)  # Ada and Grace: only active sessions by default
    expect(page.locator('#sessions-table tbody tr[data-status="ended"]')).to_have_count(0)

    page.locator("#f-status").select_option(label="Recently ended")
    page.get_by_role("button", name="Apply").first.click()
    expect(rows).to_have_count(2)
    idle_row = session_row(page, ida.session_id)
    expect(idle_row).to_have_attribute("data-status", "ended")
    expect(idle_row).to_contain_text("Signed out after inactivity")
    expect(idle_row.locator('button[data-action="end-session"]')).to_be_disabled()
    expect(session_row(page, bob.session_id)).to_contain_text("Signed out by the user")
    expect(session_row(page, grace.session_id)).to_have_count(0)

    page.locator("#f-status").select_option(label="All")
    page.get_by_role("button", name="Apply").first.click()
    expect(rows).to_have_count(4)
    expect(page.locator('#sessions-table tbody tr[data-status="active"]')).to_have_count(2)
    expect(session_row(page, grace.session_id)).to_contain_text("Active")


def test_me_page_shows_recently_ended_sessions_in_words(timed_live: tuple[Live, FakeClock]) -> None:
    live, _ = timed_live
    laptop = live.login("ada", name="Ada Lovelace", user_agent=UA["windows"])
    phone = live.login("ada", name="Ada Lovelace", user_agent=UA["iphone"])
    assert phone.client.post("/logout").status_code == 200
    context = live.context(user_agent=UA["mac"])
    live.browser_login(context, "ada", name="Ada Lovelace")  # a web login: evicts the laptop (limit 1)
    page = live.open(context, "/me")
    ended = page.locator("#my-ended > li")
    expect(ended).to_have_count(2)
    evicted = page.locator(f'#my-ended > li[data-session-id="{laptop.session_id}"]')
    expect(evicted).to_contain_text("Signed out because you signed in on another device")
    expect(evicted).to_contain_text("Firefox 133 on Windows")
    expect(page.locator(f'#my-ended > li[data-session-id="{phone.session_id}"]')).to_contain_text(
        "You signed out")
    expect(page.locator("#my-ended-empty")).to_be_hidden()
    expect(page.locator("#my-sessions > li")).to_have_count(1)
    assert laptop.ended_reason() == "evicted"


# -- screenshots ------------------------------------------------------------------------


def seed(live: Live) -> None:
    """A small, realistic population: several users, platforms and cities."""
    live.login("grace", name="Grace Hopper", roles=("support",), user_agent=UA["iphone"], ip="81.2.69.142")
    live.login("grace", name="Grace Hopper", roles=("support",), user_agent=UA["windows"], ip="2.125.160.216")
    live.login("alan", name="Alan Turing", user_agent=UA["android"], ip="89.160.20.112")
    live.login("katherine", name="Katherine Johnson", user_agent=UA["linux"], ip="216.160.83.56")
    revoked = live.login("mallory", name="Mallory", user_agent=UA["windows"], ip="175.16.199.1")
    answer = httpx.delete(f"{live.url}{ADMIN}/api/sessions/{revoked.session_id}",
                          headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 204, answer.text
    # Ada's own recently ended sessions, for the self-service page
    old = live.login("ada", name="Ada Lovelace", roles=("admin",), user_agent=UA["linux"], ip="89.160.20.112")
    assert old.client.post("/logout").status_code == 200


def test_screenshots_of_both_pages(make_live: Callable[..., Live]) -> None:
    settings: dict[str, Any] = {
        "trusted_proxies": "127.0.0.1", "allow_user_timeouts": True, "admin_token": ADMIN_TOKEN,
    }
    if GEOIP_TEST_DB.exists():
        settings["geoip_database"] = str(GEOIP_TEST_DB)
    live = make_live(**settings)
    seed(live)
    ARTIFACTS.mkdir(exist_ok=True)
    shots: dict[str, Path] = {}
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = live.context(viewport=viewport, user_agent=UA["mac"])
        live.browser_login(context, "ada", name="Ada Lovelace", roles=("admin",), ip="2001:480::1")
        if size == "desktop":
            live.login("ada", name="Ada Lovelace", roles=("admin",), user_agent=UA["iphone"],
                       ip="81.2.69.142")
        for name, path in (("admin", "/"), ("me", "/me")):
            page = live.open(context, path)
            if size == "phone" and name == "admin":
                expect(page.locator("#sessions-table thead")).to_be_hidden()  # rows become cards
                expect(page.get_by_label("Sort by")).to_be_visible()
                label = page.evaluate(
                    "getComputedStyle(document.querySelector('#sessions-table tbody td'), '::before').content"
                )
                assert label == '"User"'
            if name == "admin":  # every session, the recently ended with their reasons too
                page.locator("#f-status").select_option(label="All")
                page.get_by_role("button", name="Apply").first.click()
                expect(page.locator('#sessions-table tbody tr[data-status="ended"]')).to_have_count(2)
            else:
                expect(page.locator("#my-ended > li")).to_have_count(1)
            shots[f"{name}-{size}"] = target = ARTIFACTS / f"{name}-{size}.png"
            page.screenshot(path=str(target), full_page=True)
    for target in shots.values():
        assert target.stat().st_size > 10_000
    if os.environ.get("SESSIONGUARD_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        for name in ("admin", "me"):
            (DOCS / f"{name}.png").write_bytes(shots[f"{name}-desktop"].read_bytes())
