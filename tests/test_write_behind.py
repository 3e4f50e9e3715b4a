"""The unwritten-use table against the plainest model of it: a dict scanned
whole on every question. Any sequence of calls must hand out the same uses."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sessionguard import Config
from sessionguard.policy import Policy
from sessionguard.stores.redis.state import StateCache
from sessionguard.stores.write_behind import Unwritten
from sessionguard.tokens import TAG_LENGTH

IDS = [f"{tag}{n}" for tag in ("aaaa", "bbbb") for n in range(3)]  # few: calls meet on one id


class Model:
    """What ``Unwritten`` promises, by scanning."""

    def __init__(self, max_entries: int) -> None:
        self.max = max_entries
        self.uses: dict[str, tuple[int, int]] = {}

    def note(self, session_id: str, seen: int, by: int) -> None:
        held = self.uses.get(session_id)
        if held is not None:
            seen, by = max(seen, held[0]), min(by, held[1])
        elif len(self.uses) >= self.max:
            first = next(iter(self.uses))
            self.uses[first] = (self.uses[first][0], 0)
        self.uses[session_id] = (seen, by)

    def overdue(self, session_id: str, now: int) -> int | None:
        held = self.uses.get(session_id)
        if held is None or held[1] > now:
            return None
        return self.uses.pop(session_id)[0]

    def due(self, now: int) -> list[tuple[str, int]]:
        ready = [(i, seen) for i, (seen, by) in self.uses.items() if by <= now]
        for i, _ in ready:
            del self.uses[i]
        return ready

    def take(self, tag: str) -> list[tuple[str, int]]:
        taken = [(i, seen) for i, (seen, _) in self.uses.items() if i.startswith(tag)]
        for i, _ in taken:
            del self.uses[i]
        return taken

    def all(self) -> list[tuple[str, int]]:
        uses, self.uses = self.uses, {}
        return [(i, seen) for i, (seen, _) in uses.items()]

    def written(self, session_id: str, last_seen: int) -> None:
        held = self.uses.get(session_id)
        if held is not None and held[0] <= last_seen:
            del self.uses[session_id]

    def owe(self, session_ids: list[str] | None) -> None:
        for session_id in list(self.uses) if session_ids is None else session_ids:
            if session_id in self.uses:
                self.uses[session_id] = (self.uses[session_id][0], 0)


ids, times = st.sampled_from(IDS), st.integers(0, 50)
calls = st.one_of(
    st.tuples(st.just("note"), ids, times, times),
    st.tuples(st.just("overdue"), ids, times),
    st.tuples(st.just("due"), times),
    st.tuples(st.just("take"), st.sampled_from(["aaaa", "bbbb", "cccc"])),
    st.tuples(st.just("written"), ids, times),
    st.tuples(st.just("all")),
    st.tuples(st.just("owe"), st.one_of(st.none(), st.lists(ids, max_size=3))),
)


def answer(result: Any) -> Any:
    return sorted(result) if isinstance(result, list) else result


@settings(max_examples=1000, deadline=None)
@given(st.lists(calls, max_size=60), st.integers(1, 7))
def test_every_sequence_of_calls_hands_out_what_the_model_does(script: list[tuple[Any, ...]],
                                                               max_entries: int) -> None:
    table, model = Unwritten(max_entries), Model(max_entries)
    for name, *args in script:
        assert answer(getattr(table, name)(*args)) == answer(getattr(model, name)(*args)), (name, args)
        assert len(table) == len(model.uses)


def test_owed_uses_are_due_at_once_and_keep_their_moment_of_use() -> None:
    table = Unwritten()
    table.note("aaaa1", 10, 500)
    table.note("aaaa2", 11, 500)
    table.note("bbbb1", 12, 500)
    table.owe(["aaaa1", "cccc9"])
    assert table.overdue("aaaa1", 20) == 10 and table.overdue("aaaa2", 20) is None
    table.owe()
    assert sorted(table.due(20)) == [("aaaa2", 11), ("bbbb1", 12)]


def test_the_state_channel_owes_the_uses_of_the_sessions_it_names() -> None:
    # a user's own timeout changed by another process (set_user_timeouts.lua announces the ids)
    cache = StateCache(Policy.from_config(Config(secret_key="k" * 32)))
    cache.unwritten = table = Unwritten()
    table.note("aaaa1", 10, 500)
    table.note("aaaa2", 11, 500)
    cache.announced(b'{"drop": ["aaaa1"]}')
    assert table.due(20) == [("aaaa1", 10)]


def test_a_use_written_and_seen_again_is_due_at_its_new_moment_not_the_old() -> None:
    table = Unwritten()
    table.note("aaaa1", 1, 5)
    table.written("aaaa1", 3)  # its moment 5 stays in the heap, outdated
    table.note("aaaa1", 6, 40)
    assert table.due(20) == [] and table.due(40) == [("aaaa1", 6)]


def test_rebuilding_the_heap_keeps_the_moment_being_added() -> None:
    table = Unwritten()
    for n in range(1027):  # outdated moments: the next note rebuilds the heap
        table.note(f"bbbb{n}", n, 10**9)
        table.written(f"bbbb{n}", n)
    table.note("aaaa1", 7, 50)
    assert len(table._moments) == 1 and table.due(50) == [("aaaa1", 7)]


def test_the_heap_of_moments_stays_bounded_by_the_uses() -> None:
    # one session noted again and again with ever earlier moments, and sessions
    # written back before their moment: outdated moments are dropped, not kept
    table = Unwritten()
    for n in range(20_000):
        table.note("aaaa1", n, 1_000_000 - n)
        table.note(f"bbbb{n}", n, 10**9)
        table.written(f"bbbb{n}", n)
    assert len(table) == 1 and len(table._moments) <= 2 * len(table) + 1025
    assert table.due(10**9) == [("aaaa1", 19_999)] and table._by_tag == {}


def test_a_login_takes_its_tag_without_walking_every_use() -> None:
    table = Unwritten()
    for n in range(50_000):
        table.note(f"{n % 9000:04d}x{n}", n, 10**9)
    assert sorted(table.take("0042")) == sorted((f"0042x{n}", n) for n in range(42, 50_000, 9000))
    assert all(i[:TAG_LENGTH] != "0042" for i in table._uses)


def test_threads_noting_and_a_writer_taking_lose_nothing() -> None:
    table, handed = Unwritten(), []
    lock, done = threading.Lock(), threading.Event()

    def noter(k: int) -> None:
        for n in range(3000):
            table.note(f"{k:04d}{n}", n, n)

    def writer() -> None:
        while not done.is_set():
            got = table.due(10**9)
            with lock:
                handed.extend(got)

    threads = [threading.Thread(target=noter, args=(k,)) for k in range(4)]
    drain = threading.Thread(target=writer)
    drain.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    drain.join()
    handed.extend(table.all())
    assert sorted(handed) == sorted((f"{k:04d}{n}", n) for k in range(4) for n in range(3000))
