"""The README's quick starts run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

README = Path(__file__).parent.parent / "README.md"


def snippet(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, title
    return match.group(1)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONGUARD_SECRET_KEY", "r" * 40)
    monkeypatch.setenv("SESSIONGUARD_STORE_URL", "memory://")


def test_fastapi_quick_start() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("Quick start: Starlette / FastAPI"), "README", "exec"), namespace)
    with TestClient(namespace["app"], base_url="https://testserver") as client:
        assert client.get("/me").status_code == 401
        token = client.post("/login", params={"user": "ada"}).json()["token"]
        assert client.get("/me").json() == {"user": "ada", "platform": "web"}
        other = TestClient(namespace["app"], base_url="https://testserver")
        assert other.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_flask_quick_start() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_flask"}  # Flask(__name__) needs a module name
    exec(compile(snippet("Quick start: Flask"), "README", "exec"), namespace)
    transport = httpx.WSGITransport(app=namespace["app"])
    with httpx.Client(transport=transport, base_url="https://testserver") as client:
        assert client.get("/me").status_code == 401
        client.post("/login", data={"user": "ada", "remember": "1"})
        assert client.get("/me").json() == {"user": "ada"}
