"""Cursor pagination of ``GET api/sessions`` while sessions come and go: no
page repeats a session, and no session that existed throughout is skipped.
Run on both shells and every store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Harness
from sessionguard.stores.protocol import NewSession
from sessionguard.tokens import session_id

ADMIN_TOKEN = "admin-" + "t" * 40
TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
URL = "/_sessionguard/api/sessions"
USERS = ("ada", "bob", "cy")
PLATFORMS = ("web", "mobile")

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(USERS), st.sampled_from(PLATFORMS)),
        st.tuples(st.just("end"), st.integers(0, 10_000)),
        st.tuples(st.just("advance"), st.sampled_from([0.001, 1, 2])),
    ),
    max_size=4,
)


class World:
    """The sessions a test created and ended, on one harness."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.sessions: dict[str, tuple[str, str]] = {}  # id -> (user, platform)
        self.ended: set[str] = set()

    def create(self, user: str, platform: str) -> str:
        guard = self.h.guard
        new = NewSession(id=session_id(guard.tokens.new_sid(guard.store.slot_tag(user))), user_id=user,
                         platform=platform)
        guard.store.create(new)
        self.sessions[new.id] = (user, platform)
        return new.id

    def end(self, pick: int) -> None:
        alive = sorted(set(self.sessions) - self.ended)
        if alive:
            victim = alive[pick % len(alive)]
            self.h.guard.store.end(victim, "revoked")
            self.ended.add(victim)

    def act(self, action: tuple[Any, ...]) -> None:
        if action[0] == "create":
            self.create(action[1], action[2])
        elif action[0] == "end":
            self.end(action[1])
        else:
            self.h.clock.advance(action[1])


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(admin_token=ADMIN_TOKEN)


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    initial=st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(PLATFORMS),
                               st.sampled_from([0, 0, 0.001, 1])), max_size=25),
    limit=st.integers(1, 6),
    filters=st.sampled_from([{}, {"platform": "mobile"}, {"user_id": "ada"}]),
    between_pages=st.lists(ACTIONS, min_size=1, max_size=6),  # cycled between pages
)
def test_paging_never_repeats_nor_skips(
    harness: Harness,
    initial: list[tuple[str, str, float]],
    limit: int,
    filters: dict[str, str],
    between_pages: list[list[tuple[Any, ...]]],
) -> None:
    # A clean slate for this example: every earlier session ends.
    harness.guard.store.end_all()
    harness.clock.advance(1)
    world = World(harness)
    for user, platform, pause in initial:
        world.create(user, platform)
        harness.clock.advance(pause)
    existed = set(world.sessions)

    seen: list[str] = []
    created_at: list[str] = []
    cursor = None
    for page in range(200):
        ended_before_page = set(world.ended)
        params = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
        response = harness.client.get(URL, params=params, headers=TOKEN)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["sessions"]) <= limit
        for session in body["sessions"]:
            assert session["id"] in world.sessions, "a session nobody created"
            assert session["id"] not in ended_before_page, "an ended session was listed"
            assert all(session[k] == v for k, v in filters.items())
        seen += [s["id"] for s in body["sessions"]]
        created_at += [s["created_at"] for s in body["sessions"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        for action in between_pages[page % len(between_pages)]:
            world.act(action)
    else:
        pytest.fail("the listing never ended")

    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert created_at == sorted(created_at, reverse=True), "not newest login first"
    wanted = {
        sid for sid in existed - world.ended
        if all({"user_id": world.sessions[sid][0], "platform": world.sessions[sid][1]}[k] == v
               for k, v in filters.items())
    }
    missing = wanted - set(seen)
    assert not missing, f"{len(missing)} session(s) that existed throughout were skipped"
