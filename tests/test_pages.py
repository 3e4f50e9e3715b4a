"""The admin sub-app's HTML pages and static files without a browser:
who gets which answer, the security headers, escaping, caching and markup
rules (no inline script or style, a label for every control). Both shells,
every store; the browser tests are in ``test_browser.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from conftest import Harness
from sessionguard.admin.pages import CSP, assets

ADMIN = "/_sessionguard"
ADMIN_TOKEN = "admin-" + "t" * 40
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
SECURITY = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class Markup(HTMLParser):
    """Every start tag of a document with its attributes, and the text of
    each ``<script>``."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def login(harness: Harness, user: str = "ada", roles: list[str] | None = None, **metadata: Any) -> Any:
    if roles is not None:
        metadata["roles"] = roles
    return harness.login(user, metadata=metadata)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, name


def assert_page(response: httpx.Response, status: int) -> Markup:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert_security_headers(response)
    return Markup(response.text)


@pytest.mark.parametrize("path", ["/", "/me"])
def test_anonymous_visitor_gets_401_html(harness: Harness, path: str) -> None:
    response = harness.client.get(ADMIN + path)
    markup = assert_page(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Sign in required" in response.text
    assert not markup.find("script")  # an error page runs nothing


@pytest.mark.parametrize("path", ["/", "/me"])
def test_anonymous_visitor_is_redirected_under_on_invalid_redirect(
    make_harness: Callable[..., Harness], path: str
) -> None:
    harness = make_harness(on_invalid="redirect:/signin")
    response = harness.client.get(ADMIN + path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert response.headers["cache-control"] == "no-store"


def test_ended_session_is_redirected_under_on_invalid_redirect(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(on_invalid="redirect:/signin")
    stale = login(harness, roles=["admin"])["token"]
    harness.client.post("/logout")
    harness.client.cookies.set("sg_session", stale)
    response = harness.client.get(ADMIN + "/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert "sg_session=;" in response.headers["set-cookie"]


def test_session_without_sessions_read_gets_403_on_admin_page(harness: Harness) -> None:
    login(harness, roles=["staff"])
    markup = assert_page(harness.client.get(ADMIN + "/"), 403)
    assert markup.find("a", href=f"{ADMIN}/me")  # where this user may go instead
    assert_page(harness.client.get(ADMIN + "/me"), 200)


def test_admin_sees_admin_page_with_every_section(harness: Harness) -> None:
    session = login(harness, roles=["admin"], name="Ada Lovelace")["session"]
    response = harness.client.get(ADMIN + "/")
    markup = assert_page(response, 200)
    body = markup.find("body")[0]
    assert body["data-api"] == f"{ADMIN}/api"
    assert body["data-session-id"] == session["id"]
    assert body["data-permissions"] == "sessions:read sessions:revoke settings:update"
    for form in ("session-filters", "policy-form", "audit-filters", "signout-all-form"):
        assert markup.find("form", id=form), form
    assert markup.find("input", id="all-phrase")[0]["data-phrase"] == "SIGN OUT ALL"
    headers = markup.find("th")
    assert headers and all(h.get("scope") == "col" for h in headers)
    assert [h for h in headers if h.get("aria-sort") == "descending"]  # newest login first
    assert markup.find("div", id="status")[0]["aria-live"] == "polite"
    assert "Ada Lovelace" in response.text


def test_readonly_role_sees_the_page_without_write_controls(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(readonly_roles="auditor")
    login(harness, roles=["auditor"])
    response = harness.client.get(ADMIN + "/")
    markup = assert_page(response, 200)
    assert markup.find("body")[0]["data-permissions"] == "sessions:read"
    assert not markup.find("form", id="signout-all-form")
    assert "disabled" in markup.find("fieldset", **{"class": "plain"})[0]
    assert "Save policy" not in response.text
    assert "Actions" not in response.text  # no sign-out column


def test_me_page_for_any_session(harness: Harness) -> None:
    session = login(harness)["session"]
    markup = assert_page(harness.client.get(ADMIN + "/me"), 200)
    assert markup.find("body")[0]["data-session-id"] == session["id"]
    assert markup.find("ul", id="my-sessions")
    assert not markup.find("a", href=f"{ADMIN}/")  # no link to a page this user may not see


def test_admin_token_opens_admin_page_but_not_me(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(admin_token=ADMIN_TOKEN)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert_page(harness.client.get(ADMIN + "/", headers=headers), 200)
    assert_page(harness.client.get(ADMIN + "/me", headers=headers), 403)


def test_attacker_strings_are_escaped_by_the_server(harness: Harness) -> None:
    harness.login(HOSTILE, metadata={"name": HOSTILE, "roles": ["admin"]})
    for path in ("/", "/me"):
        response = harness.client.get(ADMIN + path)
        markup = assert_page(response, 200)
        assert "<script>alert" not in response.text
        assert "<img" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img" in response.text
        assert markup.find("body")[0]["data-user-id"] == HOSTILE  # intact once unescaped


@pytest.mark.parametrize("path", ["/", "/me"])
def test_pages_hold_no_inline_script_or_style(harness: Harness, path: str) -> None:
    login(harness, roles=["admin"])
    markup = assert_page(harness.client.get(ADMIN + path), 200)
    scripts = markup.find("script")
    assert scripts and all(s.get("src", "").startswith(f"{ADMIN}/static/") for s in scripts)
    assert not "".join(markup.script_text).strip()
    assert not markup.find("style")
    for tag, attrs in markup.tags:
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], tag


@pytest.mark.parametrize("path", ["/", "/me"])
def test_every_control_has_a_label(harness: Harness, path: str) -> None:
    login(harness, roles=["admin"])
    markup = assert_page(harness.client.get(ADMIN + path), 200)
    labelled = {a["for"] for a in markup.find("label")}
    controls = [a for t, a in markup.tags if t in ("input", "select", "textarea")]
    assert controls
    for control in controls:
        assert control.get("id") in labelled, control
    assert not [a for t, a in markup.tags if t == "a" and a.get("href") is None]  # no fake buttons


def test_pages_honour_a_custom_admin_path(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(admin_path="/ops/sessions")
    login(harness, roles=["admin"])
    markup = assert_page(harness.client.get("/ops/sessions/"), 200)
    assert markup.find("body")[0]["data-api"] == "/ops/sessions/api"
    assert all(str(s["src"]).startswith("/ops/sessions/static/") for s in markup.find("script"))
    for link in markup.find("link", rel="stylesheet"):
        assert harness.client.get(str(link["href"])).status_code == 200


def test_bare_prefix_redirects_to_the_admin_page(harness: Harness) -> None:
    response = harness.client.get(ADMIN, follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == f"{ADMIN}/"


def test_head_of_a_page_has_no_body(harness: Harness) -> None:
    login(harness, roles=["admin"])
    response = harness.client.head(ADMIN + "/")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-security-policy"] == CSP


# -- static files ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "content_type"), [
    pytest.param("style.css", "text/css; charset=utf-8", id="css"),
    pytest.param("admin.js", "text/javascript; charset=utf-8", id="admin-js"),
    pytest.param("me.js", "text/javascript; charset=utf-8", id="me-js"),
    pytest.param("common.js", "text/javascript; charset=utf-8", id="common-js"),
    pytest.param("expiry.js", "text/javascript; charset=utf-8", id="expiry-js"),  # for apps too
])
def test_static_files_are_served_with_type_and_headers(
    harness: Harness, name: str, content_type: str
) -> None:
    response = harness.client.get(f"{ADMIN}/static/{name}")  # anonymous: they hold no data
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert_security_headers(response)
    assert response.content == assets()[name].body


def test_static_url_of_the_page_is_immutable_and_revalidates(harness: Harness) -> None:
    login(harness, roles=["admin"])
    markup = Markup(harness.client.get(ADMIN + "/").text)
    urls = [str(s["src"]) for s in markup.find("script")]
    urls += [str(a["href"]) for a in markup.find("link", rel="stylesheet")]
    assert len(urls) == 5  # common.js, admin.js, charts.js, expiry.js, style.css
    for url in urls:
        assert re.search(r"\?v=[0-9a-f]{20}$", url), url
        response = harness.client.get(url)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        etag = response.headers["etag"]
        again = harness.client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag


def test_unknown_static_file_is_404(harness: Harness) -> None:
    for name in ("nope.js", "..%2Fpages.py", "%2e%2e"):
        assert harness.client.get(f"{ADMIN}/static/{name}").status_code == 404
    assert harness.client.get(f"{ADMIN}/static/../pages.py").status_code == 404


def test_templates_escape_by_default() -> None:
    from sessionguard.admin.pages import environment

    template = environment().from_string("{{ value }}")
    assert template.render(value=HOSTILE) == (
        "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
    )
