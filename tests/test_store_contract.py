"""The store contract: the same scenarios on every store — memory, Redis
through the sync store and Redis through the asyncio store — so the Lua
scripts and the pure core cannot drift apart.

Stores are built directly (no guard); time is the FakeClock of ``conftest``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from conftest import SECRET, FakeClock
from sessionguard import Config, SessionLimitReached
from sessionguard.audit import Event, iso
from sessionguard.core import DAY, Outcome, Record
from sessionguard.policy import Policy
from sessionguard.stores.memory import AsyncMemoryStore, MemoryStore
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import open_redis_stores
from sessionguard.stores.redis.records import decode_record
from sessionguard.tokens import Tokens, session_id

TOKENS = Tokens([SECRET])
KINDS = ["memory", "memory-async", "redis-sync", "redis-async"]


class Blocking:
    """Any store seen through plain calls: an async store's coroutines run on a
    loop of this test's own."""

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.store = store
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if self._loop is None or not inspect.iscoroutinefunction(method):
            return method
        loop = self._loop
        return lambda *args, **kwargs: loop.run_until_complete(method(*args, **kwargs))


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make_store(**config) -> Blocking``: a store of the parametrised kind; stores
    made in one test share their data (same Redis prefix) but not their process state."""
    loop = asyncio.new_event_loop() if kind.endswith("async") else None
    settings: dict[str, Any] = {"secret_key": SECRET}
    if kind.startswith("redis"):
        settings.update(store_url=request.getfixturevalue("redis_server").url,
                        key_prefix=request.getfixturevalue("key_prefix"))
    made: list[Blocking] = []
    memory: dict[str, MemoryStore] = {}

    def millis() -> int:
        return round(clock() * 1000)

    def make(**config: Any) -> Blocking:
        cfg = Config(**settings, **config)
        policy = Policy.from_config(cfg)
        if kind.startswith("memory"):
            shared = memory.get("store") or MemoryStore(policy, clock=millis, audit_maxlen=cfg.audit_maxlen,
                                                        audit_retention=cfg.audit_retention)
            memory["store"] = shared
            store: Blocking = Blocking(AsyncMemoryStore(shared) if loop else shared, loop)
        else:
            sync, async_ = open_redis_stores(cfg, policy, clock=millis)
            store = Blocking(async_ if kind == "redis-async" else sync, loop)
            made.append(Blocking(sync, None))
        made.append(store)
        return store

    yield make
    for store in reversed(made):
        store.close()
    if loop is not None:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    return make_store(max_sessions=3)


def new(store: Any, user: str = "ada", platform: str = "web", **fields: Any) -> NewSession:
    """A login of ``user`` for ``store`` (its ids carry the store's slot tag of the user)."""
    sid = TOKENS.new_sid(store.slot_tag(user))
    return NewSession(id=session_id(sid), user_id=user, platform=platform, **fields)


def login(store: Any, clock: FakeClock, user: str = "ada", platform: str = "web", **fields: Any) -> Record:
    """A login, then one millisecond (logins stay strictly ordered)."""
    record: Record = store.create(new(store, user, platform, **fields)).record
    clock.advance(0.001)
    return record


def outcome(store: Any, record: Record, *, passive: bool = False) -> Outcome:
    result: Outcome = store.check(record.id, passive=passive).outcome
    return result


# -- the request path -----------------------------------------------------------------


def test_record_round_trips(store: Any, clock: FakeClock) -> None:
    fields = dict(remember_me=True, ip="2001:db8::1", city="Zürich", user_agent="Mozilla/5.0 " * 10,
                  device="Firefox 133 on Linux", metadata={"name": "Ada", "roles": ["admin"], "n": 1.5})
    user = "ada{x}:é|\u2603 \U0001f600"
    created = store.create(new(store, user, "desktop", **fields)).record
    assert (created.user_id, created.platform, created.last_seen) == (user, "desktop", created.created)
    assert {k: getattr(created, k) for k in fields} == fields
    check = store.check(created.id, passive=False)
    assert check.outcome is Outcome.VALID and check.record == created and check.policy is not None
    assert store.user_sessions(user) == [created]


@pytest.mark.parametrize("presented", [
    pytest.param(lambda: session_id(TOKENS.new_sid("0123")), id="unknown-id"),
    pytest.param(lambda: "not-a-session-id", id="malformed"),
    pytest.param(lambda: "abcd}{" + "x" * 20, id="braces"),
])
def test_unknown_ids_are_invalid(store: Any, presented: Callable[[], str]) -> None:
    assert store.check(presented(), passive=False).outcome is Outcome.INVALID
    assert store.end(presented(), "revoked") is None


MINUTE = 60


def stored_last_seen(store: Any, record: Record) -> int:
    """Last-seen as written in the store when a listing is served (which writes the
    uses that are due first). The listing itself shows more: the uses its process
    holds, not written yet; so the store's record is read here instead."""
    store.user_sessions(record.user_id)
    inner = store.store
    if isinstance(inner, AsyncMemoryStore):
        inner = inner.sync
    if isinstance(inner, MemoryStore):
        stored: Record = inner._records[record.id]
        return stored.last_seen
    value = inner._shared.sync_client().get(inner._ops.keys.session(record.id))
    return decode_record(record.id, value).last_seen


def test_last_seen_is_written_once_per_touch_interval(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)  # idle 1h: the touch interval is 10 minutes (a third, at most 10)
    clock.advance(MINUTE)
    used = store.check(record.id, passive=False).record
    assert used.last_seen == record.created + 60_001  # the request sees its own use ...
    assert stored_last_seen(store, record) == record.created  # ... which is not written yet
    clock.advance(10 * MINUTE - MINUTE)
    assert store.check(record.id, passive=False).record.last_seen == record.created + 600_001
    assert stored_last_seen(store, record) == record.created + 600_001  # written: an interval on


def test_an_unwritten_use_is_written_by_its_moment(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    clock.advance(MINUTE)
    store.check(record.id, passive=False)
    clock.advance(10 * MINUTE - 1)  # (the Redis store's tick writes up to two ticks ahead)
    assert stored_last_seen(store, record) == record.created
    clock.advance(1)  # an interval after the use
    assert stored_last_seen(store, record) == record.created + 60_001


def test_idle_expiry_stays_exact_with_unwritten_uses(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    clock.advance(10 * MINUTE)
    store.check(record.id, passive=False)  # not written: owed within 10 minutes
    clock.advance(60 * MINUTE - 0.001)
    assert outcome(store, record, passive=True) is Outcome.VALID  # the owed use counts
    clock.advance(0.001)
    assert outcome(store, record, passive=True) is Outcome.IDLE_TIMEOUT


def test_closing_writes_back_what_is_owed(make_store: Any, clock: FakeClock) -> None:
    first = make_store()
    record = login(first, clock)
    clock.advance(MINUTE)
    first.check(record.id, passive=False)
    first.close()
    assert stored_last_seen(make_store(), record) == record.created + 60_001


def test_passive_checks_never_touch(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    clock.advance(1800)
    assert store.check(record.id, passive=True).record.last_seen == record.created
    clock.advance(1800)
    assert outcome(store, record, passive=True) is Outcome.IDLE_TIMEOUT


def test_idle_timeout_is_exact_and_reported_once(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    clock.advance(3600 - 0.002)
    assert outcome(store, record, passive=True) is Outcome.VALID
    clock.advance(0.001)
    first = store.check(record.id, passive=False)
    assert (first.outcome, first.ended) == (Outcome.IDLE_TIMEOUT, record)
    again = store.check(record.id, passive=False)
    assert (again.outcome, again.ended) == (Outcome.IDLE_TIMEOUT, None)


def test_activity_slides_the_idle_timeout(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    for _ in range(5):
        clock.advance(3000)
        assert outcome(store, record) is Outcome.VALID


def test_absolute_timeout_beats_activity_and_remember_me(make_store: Any, clock: FakeClock) -> None:
    store = make_store(absolute_timeout="2h", remember_me_period="30d")
    plain, remembered = login(store, clock), login(store, clock, remember_me=True)
    for _ in range(4):
        clock.advance(1500)
        assert outcome(store, plain) is outcome(store, remembered) is Outcome.VALID
    clock.advance(1300)
    assert outcome(store, plain) is outcome(store, remembered) is Outcome.ABSOLUTE_TIMEOUT


def test_remember_me_idles_after_its_period(make_store: Any, clock: FakeClock) -> None:
    store = make_store(idle_timeout="1h", remember_me_period="2d")
    record = login(store, clock, remember_me=True)
    clock.advance(2 * 86400 - 1)
    assert outcome(store, record, passive=True) is Outcome.VALID
    clock.advance(1)
    assert outcome(store, record) is Outcome.IDLE_TIMEOUT


def test_remember_me_cookie_refresh_once_a_day(make_store: Any, clock: FakeClock) -> None:
    store = make_store(remember_me_period="30d")
    record = login(store, clock, remember_me=True)
    clock.advance(3600)
    assert store.check(record.id, passive=False).refresh_cookie is False
    clock.advance(DAY / 1000)
    assert store.check(record.id, passive=False).refresh_cookie is True
    clock.advance(2)
    assert store.check(record.id, passive=False).refresh_cookie is False


def test_platforms_have_their_own_timeouts(make_store: Any, clock: FakeClock) -> None:
    store = make_store(web_idle_timeout="10m", mobile_idle_timeout="never")
    web, mobile = login(store, clock), login(store, clock, platform="mobile")
    clock.advance(86400)
    assert (outcome(store, web), outcome(store, mobile)) == (Outcome.IDLE_TIMEOUT, Outcome.VALID)


def test_policy_changes_apply_to_existing_sessions(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    record = login(store, clock)
    assert store.policy() == Policy.from_config(Config(secret_key=SECRET))
    shorter = store.policy().updated({"platforms": {"web": {"idle_timeout": "5m"}}})
    store.set_policy(shorter)
    assert store.policy() == shorter
    assert make_store().policy() == shorter  # another process sharing the store
    clock.advance(301)
    assert outcome(store, record) is Outcome.IDLE_TIMEOUT


def test_a_stored_policy_keeps_environment_only_settings(make_store: Any, kind: str,
                                                       clock: FakeClock) -> None:
    store = make_store(evict="least_recent", allow_user_timeouts=True)
    record = login(store, clock)
    # a policy whose environment-only settings differ: only its JSON fields are stored
    other = replace(store.policy(), evict="oldest_login", allow_user_timeouts=False)
    store.set_policy(other.updated({"platforms": {"web": {"idle_timeout": "2h"}}}))
    policy = store.policy()
    assert (policy.web.idle_timeout, policy.evict, policy.allow_user_timeouts) == (7200, "least_recent", True)
    store.set_user_timeouts("ada", {"web": 600})
    clock.advance(601)
    assert outcome(store, record) is Outcome.IDLE_TIMEOUT  # user timeouts still allowed
    if kind.startswith("redis"):  # another process, configured otherwise, reads the same override
        seen = make_store(allow_user_timeouts=False).policy()
        assert (seen.web.idle_timeout, seen.evict, seen.allow_user_timeouts) == (7200, "oldest_login", False)


# -- user timeouts ---------------------------------------------------------------------


def test_user_timeouts_apply_when_allowed(make_store: Any, clock: FakeClock) -> None:
    store = make_store(allow_user_timeouts=True)
    web, mobile = login(store, clock), login(store, clock, platform="mobile")
    assert store.user_timeouts("ada") == {}
    store.set_user_timeouts("ada", {"web": 600, "mobile": None})
    assert store.user_timeouts("ada") == {"web": 600, "mobile": None}
    later = login(store, clock)
    assert later.user_idle == 600
    clock.advance(601)
    assert [outcome(store, r) for r in (web, mobile, later)] == [
        Outcome.IDLE_TIMEOUT, Outcome.VALID, Outcome.IDLE_TIMEOUT]


def test_user_timeouts_ignored_when_not_allowed(make_store: Any, clock: FakeClock) -> None:
    store = make_store(allow_user_timeouts=False)
    record = login(store, clock)
    store.set_user_timeouts("ada", {"web": 60})
    clock.advance(61)
    assert outcome(store, record) is Outcome.VALID


# -- logins: limits and eviction --------------------------------------------------------


def test_oldest_login_is_evicted(store: Any, clock: FakeClock) -> None:
    first, second, third = (login(store, clock) for _ in range(3))
    clock.advance(10)
    assert outcome(store, first) is Outcome.VALID  # recently used, still the oldest login
    created = store.create(new(store))
    assert [(r.id, r.last_seen) for r in created.evicted] == [(first.id, first.created + 10_003)]
    assert [outcome(store, r) for r in (first, second, third)] == [
        Outcome.EVICTED, Outcome.VALID, Outcome.VALID]


def test_least_recent_session_is_evicted(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=2, evict="least_recent")
    first, second = login(store, clock), login(store, clock)
    clock.advance(10)
    outcome(store, first)
    assert [r.id for r in store.create(new(store)).evicted] == [second.id]
    assert outcome(store, second) is Outcome.EVICTED


def test_a_lowered_limit_evicts_down_to_it(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=5)
    records = [login(store, clock) for _ in range(4)]
    store.set_policy(store.policy().updated({"platforms": {"web": {"max_sessions": 2}}}))
    assert [r.id for r in store.create(new(store)).evicted] == [r.id for r in records[:3]]


def test_reject_refuses_and_changes_nothing(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=2, on_limit="reject")
    records = [login(store, clock) for _ in range(2)]
    with pytest.raises(SessionLimitReached) as raised:
        store.create(new(store))
    assert (raised.value.limit, raised.value.platform, raised.value.user_id) == (2, "web", "ada")
    assert store.user_sessions("ada") == records[::-1]


def test_limits_count_per_user_and_platform(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=1)
    web, mobile = login(store, clock), login(store, clock, platform="mobile")
    other = login(store, clock, "bob")
    assert store.create(new(store, platform="desktop")).evicted == ()
    assert [outcome(store, r) for r in (web, mobile, other)] == [Outcome.VALID] * 3


def test_ended_sessions_do_not_count(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=2, on_limit="reject", idle_timeout="1h")
    login(store, clock)
    clock.advance(3000)
    fresh = login(store, clock)
    clock.advance(1000)  # the first idled out unseen; the second is still valid
    assert store.create(new(store)).evicted == ()
    assert outcome(store, fresh) is Outcome.VALID


def test_the_session_ceiling_evicts_the_oldest_login_of_all(make_store: Any, clock: FakeClock) -> None:
    store = make_store(session_ceiling=3)  # no limit per platform
    records = [login(store, clock, platform=p) for p in ("web", "mobile", "desktop")]
    created = store.create(new(store, platform="mobile"))
    assert [r.id for r in created.evicted] == [records[0].id]
    assert [outcome(store, r) for r in records] == [Outcome.EVICTED, Outcome.VALID, Outcome.VALID]
    assert len(store.user_sessions("ada")) == 3 and store.user_sessions("bob") == []


def test_the_session_ceiling_evicts_the_least_recent(make_store: Any, clock: FakeClock) -> None:
    store = make_store(session_ceiling=2, evict="least_recent")
    first, second = login(store, clock), login(store, clock, platform="desktop")
    clock.advance(10)
    outcome(store, first)
    assert [r.id for r in store.create(new(store)).evicted] == [second.id]


def test_the_ceiling_evicts_even_when_limits_reject(make_store: Any, clock: FakeClock) -> None:
    store = make_store(session_ceiling=2, max_sessions=5, on_limit="reject")
    first, _ = login(store, clock), login(store, clock)
    assert [r.id for r in store.create(new(store)).evicted] == [first.id]


def test_the_ceiling_counts_after_the_platform_limit(make_store: Any, clock: FakeClock) -> None:
    store = make_store(session_ceiling=3, max_sessions=2)
    web1, mobile1, web2 = login(store, clock), login(store, clock, platform="mobile"), login(store, clock)
    # the platform's limit evicts web1; then 2 sessions remain, under the ceiling of 3
    assert [r.id for r in store.create(new(store)).evicted] == [web1.id]
    clock.advance(0.001)
    # mobile has room (1 of 2), but the user holds 3: the ceiling evicts the oldest of all
    assert [r.id for r in store.create(new(store, platform="mobile")).evicted] == [mobile1.id]
    assert outcome(store, web2) is Outcome.VALID


def test_the_ceiling_holds_beyond_one_page_of_sessions(make_store: Any, clock: FakeClock) -> None:
    # more sessions than a Redis function reads in one call (scripts.PAGE): the store reads
    # them in pages and names the sessions to evict
    store = make_store(session_ceiling=30, idle_timeout="1h")
    stale = [login(store, clock) for _ in range(10)]
    clock.advance(1800)
    fresh = [login(store, clock, platform=("web", "mobile")[i % 2]) for i in range(20)]
    clock.advance(1800)  # the first ten idled out unseen: they do not count
    assert store.create(new(store)).evicted == ()
    for _ in range(9):
        login(store, clock)
    created = store.create(new(store, platform="desktop"))  # the 31st valid session
    assert [r.id for r in created.evicted] == [fresh[0].id]
    assert [outcome(store, r) for r in (stale[0], fresh[0], fresh[1])] == [
        Outcome.IDLE_TIMEOUT, Outcome.EVICTED, Outcome.VALID]
    assert len(store.user_sessions("ada")) == 30


@pytest.mark.parametrize("on_limit", ["evict_oldest", "reject"])
def test_a_platform_limit_beyond_one_page(make_store: Any, clock: FakeClock, on_limit: str) -> None:
    store = make_store(max_sessions=27, on_limit=on_limit)
    records = [login(store, clock) for _ in range(27)]
    if on_limit == "reject":
        with pytest.raises(SessionLimitReached):
            store.create(new(store))
        assert store.user_sessions("ada") == records[::-1]
    else:
        assert [r.id for r in store.create(new(store)).evicted] == [records[0].id]


@pytest.mark.parametrize("limit", [1, 27], ids=["one-call", "paged"])
def test_a_refused_login_leaves_the_presented_session_alone(make_store: Any, clock: FakeClock,
                                                            limit: int) -> None:
    # SPEC §4: with reject, the new login fails and nothing changes, the session the
    # request presented (the user's own on another platform, or another user's) included
    store = make_store(max_sessions=limit, on_limit="reject")
    records = [login(store, clock) for _ in range(limit)]
    mine, other = login(store, clock, platform="mobile"), login(store, clock, "bob")
    for presented in (mine, other):
        with pytest.raises(SessionLimitReached):
            store.create(new(store), ending=presented.id)
        assert outcome(store, presented) is Outcome.VALID
    assert {r.id for r in store.user_sessions("ada")} == {r.id for r in [*records, mine]}


@pytest.mark.parametrize("limit", [1, 27], ids=["one-call", "paged"])
@pytest.mark.parametrize("on_limit", ["evict_oldest", "reject"])
def test_a_login_at_the_limit_takes_the_place_of_the_presented_session(
    make_store: Any, clock: FakeClock, on_limit: str, limit: int
) -> None:
    # the client signing in again: its own session does not count, and ends
    store = make_store(max_sessions=limit, on_limit=on_limit)
    records = [login(store, clock) for _ in range(limit)]
    presented = records[-1]
    created = store.create(new(store), ending=presented.id)
    assert (created.replaced, created.evicted) == (presented, ())
    assert outcome(store, presented) is Outcome.SIGNED_OUT
    assert [outcome(store, r) for r in records[:-1]] == [Outcome.VALID] * (limit - 1)


def test_login_ends_the_presented_session(store: Any, clock: FakeClock) -> None:
    old = login(store, clock)
    created = store.create(new(store), ending=old.id)
    assert created.replaced == old
    assert outcome(store, old) is Outcome.SIGNED_OUT
    assert outcome(store, created.record) is Outcome.VALID



def test_a_login_with_metadata_that_is_not_json_changes_nothing(make_store: Any, clock: FakeClock) -> None:
    store = make_store(max_sessions=1)
    old = login(store, clock)
    with pytest.raises(TypeError):
        store.create(new(store, metadata={"when": object()}), ending=old.id)
    assert outcome(store, old) is Outcome.VALID  # neither ended as replaced nor evicted
    assert [r.id for r in store.user_sessions("ada")] == [old.id]


# -- sign-outs ----------------------------------------------------------------------------


def test_end_one_session(store: Any, clock: FakeClock) -> None:
    record, other = login(store, clock), login(store, clock, "bob")
    assert store.end(record.id, "revoked", user_id="bob") is None
    assert store.end(record.id, "revoked", user_id="ada") == record
    assert store.end(record.id, "revoked") is None
    assert (outcome(store, record), outcome(store, other)) == (Outcome.REVOKED, Outcome.VALID)


def test_end_leaves_a_timed_out_session_to_report_its_own_reason(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    clock.advance(3601)
    assert store.end(record.id, "revoked") is None
    assert store.check(record.id, passive=False).ended == record


def test_end_user_by_platform_keeping_one(store: Any, clock: FakeClock) -> None:
    web1, web2, mobile, bob = (login(store, clock), login(store, clock),
                               login(store, clock, platform="mobile"), login(store, clock, "bob"))
    assert store.end_user("ada", "revoked", platform="web", keep=web2.id) == [web1]
    ended = store.end_user("ada", "signed_out")
    assert sorted(r.id for r in ended) == sorted([web2.id, mobile.id])
    assert [outcome(store, r) for r in (web1, web2, mobile, bob)] == [
        Outcome.REVOKED, Outcome.SIGNED_OUT, Outcome.SIGNED_OUT, Outcome.VALID]


def test_set_roles_rewrites_the_roles_of_valid_sessions_only(store: Any, clock: FakeClock) -> None:
    web = login(store, clock, metadata={"name": "Ada", "roles": ["admin"], "n": [1, {"x": None}]},
                remember_me=True, ip="10.0.0.1", city="Paris", user_agent="UA \u00e9", device="Chrome")
    phone = login(store, clock, platform="mobile")  # no metadata at all
    ended, bob = login(store, clock), login(store, clock, "bob", metadata={"roles": ["admin"]})
    store.end(ended.id, "revoked")
    clock.advance(60)
    used = round(clock() * 1000)
    assert store.check(web.id, passive=False).outcome is Outcome.VALID  # a use, maybe unwritten
    updated = store.set_roles("ada", ["viewer"])
    assert sorted(r.id for r in updated) == sorted([web.id, phone.id])
    after = store.check(web.id, passive=True).record
    assert after.metadata == {"name": "Ada", "roles": ["viewer"], "n": [1, {"x": None}]}
    assert after._replace(metadata=web.metadata, last_seen=web.last_seen) == web  # nothing else changes
    assert after.last_seen == used  # the use is kept
    assert store.check(phone.id, passive=True).record.metadata == {"roles": ["viewer"]}
    assert outcome(store, ended) is Outcome.REVOKED  # stays ended
    assert store.check(bob.id, passive=True).record.metadata == {"roles": ["admin"]}
    clock.advance(14 * 86400 + 60)  # the remember-me period still runs from the last use
    assert outcome(store, web) is Outcome.IDLE_TIMEOUT
    assert store.set_roles("ada", []) == []


def test_rotate_moves_a_valid_session_to_a_new_id(store: Any, clock: FakeClock) -> None:
    record = login(store, clock, remember_me=True, metadata={"roles": ["admin"]}, ip="10.0.0.1")
    other = login(store, clock, platform="mobile")
    clock.advance(60)
    used = round(clock() * 1000)
    assert outcome(store, record) is Outcome.VALID  # a use, maybe unwritten
    new_id = new(store).id
    moved = store.rotate(record.id, new_id)
    assert moved.outcome is Outcome.VALID and moved.record.id == new_id
    assert moved.record == record._replace(id=new_id, last_seen=used)  # every field kept, the use too
    assert outcome(store, record) is Outcome.INVALID  # the old token is unknown, not "ended"
    assert store.check(new_id, passive=True).record == moved.record
    assert store.rotate(record.id, new_id).record == moved.record  # a retry changes nothing
    assert sorted(r.id for r in store.user_sessions("ada")) == sorted([new_id, other.id])
    listed = store.list_sessions(user_id=None, platform=None, limit=10, cursor=None).items
    assert sorted(r.id for r in listed) == sorted([new_id, other.id])
    assert store.end(new_id, "revoked") == moved.record
    assert store.rotate(new_id, new(store).id).outcome is Outcome.REVOKED
    assert store.rotate(record.id, new(store).id).outcome is Outcome.INVALID
    clock.advance(3601)
    timed_out = store.rotate(other.id, new(store).id)
    assert (timed_out.outcome, timed_out.ended) == (Outcome.IDLE_TIMEOUT, other)  # noticed now: reported
    assert outcome(store, other) is Outcome.IDLE_TIMEOUT


def test_end_all_keeps_one_and_admits_new_logins(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    ada, bob, mine = login(store, clock), login(store, clock, "bob"), login(store, clock, "carol")
    other_process = make_store()
    store.end_all(keep=mine.id)
    clock.advance(0.001)
    assert [outcome(store, r) for r in (ada, bob, mine)] == [Outcome.SIGNOUT_ALL, Outcome.SIGNOUT_ALL,
                                                             Outcome.VALID]
    later = login(other_process, clock)
    assert outcome(other_process, later) is outcome(store, later) is Outcome.VALID
    assert store.check(ada.id, passive=False).ended is None


def test_a_shorter_idle_timeout_counts_the_uses_not_written_back_yet(
    make_store: Any, clock: FakeClock
) -> None:
    # found while writing tests/test_model.py: a use inside the touch interval is written back by a
    # moment reckoned under the old idle timeout; judged by the new one without it, a
    # session used 2 minutes ago ended with a 5-minute idle timeout
    store = make_store(idle_timeout="1h")
    ada = login(store, clock)
    clock.advance(4 * 60)
    assert outcome(store, ada) is Outcome.VALID  # a use not written back (touch: 10 minutes)
    store.set_policy(store.policy().updated({"platforms": {"web": {"idle_timeout": "5m"}}}))
    clock.advance(2 * 60)
    assert [r.id for r in store.list_sessions(user_id=None, platform=None, limit=5, cursor=None).items] == [
        ada.id]
    assert outcome(store, ada, passive=True) is Outcome.VALID
    clock.advance(3 * 60)  # 5 minutes after the use
    assert outcome(store, ada, passive=True) is Outcome.IDLE_TIMEOUT


def test_a_shorter_idle_timeout_set_elsewhere_counts_the_uses_held_here(
    make_store: Any, clock: FakeClock
) -> None:
    store, other_process = make_store(idle_timeout="1h"), make_store(idle_timeout="1h")
    ada = login(store, clock)
    clock.advance(4 * 60)
    assert outcome(store, ada) is Outcome.VALID
    shorter = other_process.policy().updated({"platforms": {"web": {"idle_timeout": "5m"}}})
    other_process.set_policy(shorter)
    deadline = time.monotonic() + 2
    while store.policy() != shorter:  # Redis: until this process has heard of it (pub/sub)
        assert time.monotonic() < deadline, "the policy change did not reach the other store"
        time.sleep(0.01)
    clock.advance(2 * 60)
    assert outcome(store, ada, passive=True) is Outcome.VALID


def test_a_shorter_own_idle_timeout_counts_the_uses_not_written_back_yet(
    make_store: Any, clock: FakeClock
) -> None:
    store = make_store(idle_timeout="1h", allow_user_timeouts=True)
    ada = login(store, clock)
    clock.advance(4 * 60)
    assert outcome(store, ada) is Outcome.VALID
    store.set_user_timeouts("ada", {"web": 5 * 60})
    clock.advance(2 * 60)
    assert outcome(store, ada, passive=True) is Outcome.VALID
    clock.advance(3 * 60)
    assert outcome(store, ada, passive=True) is Outcome.IDLE_TIMEOUT


def test_end_all_never_keeps_a_session_the_last_one_ended(make_store: Any, clock: FakeClock) -> None:
    # found by tests/test_model.py: the new epoch replaced the one that remembered the
    # ending, so keeping a session nobody had presented since brought it back
    store = make_store()
    ada, bob = login(store, clock), login(store, clock, "bob")
    store.end_all(keep=bob.id)
    clock.advance(0.001)
    store.end_all(keep=ada.id)
    assert [outcome(store, r) for r in (ada, bob)] == [Outcome.SIGNOUT_ALL, Outcome.SIGNOUT_ALL]


def test_end_all_may_keep_again_the_session_the_last_one_kept(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    ada, bob = login(store, clock), login(store, clock, "bob")
    store.end_all(keep=ada.id)
    clock.advance(0.001)
    store.end_all(keep=ada.id)
    assert [outcome(store, r) for r in (ada, bob)] == [Outcome.VALID, Outcome.SIGNOUT_ALL]


# -- listings ------------------------------------------------------------------------------


def test_user_sessions_newest_first_and_valid_only(store: Any, clock: FakeClock) -> None:
    records = [login(store, clock, platform=p) for p in ("web", "mobile", "desktop")]
    store.end(records[1].id, "revoked")
    assert store.user_sessions("ada") == [records[2], records[0]]
    assert store.user_sessions("nobody") == []


def test_list_sessions_pages_newest_first(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    records = [login(store, clock, user, platform) for user in ("ada", "bob", "carol")
               for platform in ("web", "mobile")]
    store.end(records[3].id, "revoked")
    expected = [r for r in reversed(records) if r is not records[3]]
    seen, cursor = [], None
    while True:
        page = store.list_sessions(user_id=None, platform=None, limit=2, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    web = store.list_sessions(user_id=None, platform="web", limit=10, cursor=None)
    assert (web.items, web.next_cursor) == ([r for r in expected if r.platform == "web"], None)
    carol = store.list_sessions(user_id="carol", platform=None, limit=1, cursor=None)
    assert carol.items == [records[5]] and carol.next_cursor is not None
    rest = store.list_sessions(user_id="carol", platform=None, limit=1, cursor=carol.next_cursor)
    assert (rest.items, rest.next_cursor) == ([records[4]], None)


def test_listing_breaks_login_time_ties_by_id(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    records = [store.create(new(store, user)).record for user in ("ada", "bob", "carol", "dan")]
    expected = sorted(records, key=lambda r: r.id)
    first = store.list_sessions(user_id=None, platform=None, limit=2, cursor=None)
    second = store.list_sessions(user_id=None, platform=None, limit=2, cursor=first.next_cursor)
    assert first.items + second.items == expected and second.next_cursor is None


def test_listing_skips_timed_out_sessions(store: Any, clock: FakeClock) -> None:
    old = login(store, clock)
    clock.advance(3000)
    fresh = login(store, clock, "bob")
    clock.advance(1000)
    page = store.list_sessions(user_id=None, platform=None, limit=10, cursor=None)
    assert page.items == [fresh] and old not in page.items


def test_listing_after_signout_of_everyone_skips_the_ended(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    for i in range(3000):  # more than a page's scan bound, each its own user
        login(store, clock, f"user{i}")
    store.end_all()
    clock.advance(0.001)
    page = store.list_sessions(user_id=None, platform=None, limit=50, cursor=None)
    assert (page.items, page.next_cursor) == ([], None)
    mine = login(store, clock, "carol")
    store.end_all(keep=mine.id)
    clock.advance(0.001)
    later = login(store, clock, "zed", platform="mobile")
    both = store.list_sessions(user_id=None, platform=None, limit=10, cursor=None)
    assert (both.items, both.next_cursor) == ([later, mine], None)
    first = store.list_sessions(user_id=None, platform=None, limit=1, cursor=None)
    assert first.items == [later] and first.next_cursor is not None
    rest = store.list_sessions(user_id=None, platform=None, limit=1, cursor=first.next_cursor)
    assert (rest.items, rest.next_cursor) == ([mine], None)
    web = store.list_sessions(user_id=None, platform="web", limit=1, cursor=None)
    assert (web.items, web.next_cursor) == ([mine], None)
    mobile = store.list_sessions(user_id=None, platform="mobile", limit=1, cursor=None)
    assert (mobile.items, mobile.next_cursor) == ([later], None)
    store.end(mine.id, "revoked")
    assert store.list_sessions(user_id=None, platform="web", limit=1, cursor=None).items == []


def test_malformed_listing_cursor_lists_nothing(store: Any, clock: FakeClock) -> None:
    login(store, clock)
    page = store.list_sessions(user_id=None, platform=None, limit=10, cursor="garbage")
    assert (page.items, page.next_cursor) == ([], None)


# -- audit ---------------------------------------------------------------------------------


def test_events_newest_first_by_page_and_user(store: Any) -> None:
    events = [Event("login", 1000 + i, "user:u", user_id="ada" if i % 2 else "bob\ud800é", session_id=f"s{i}",
                    platform="web") for i in range(7)]
    store.append_events(events[:3])
    store.append_events(events[3:])
    seen, cursor = [], None
    while True:
        page = store.events(user_id=None, limit=3, cursor=cursor)
        seen += page.items
        if (cursor := page.next_cursor) is None:
            break
    assert seen == events[::-1]
    ada = store.events(user_id="ada", limit=2, cursor=None)
    assert ada.items == [events[5], events[3]]
    assert store.events(user_id="ada", limit=2, cursor=ada.next_cursor).items == [events[1]]
    assert store.events(user_id=None, limit=2, cursor="bogus").items == events[:4:-1]


# -- audit: what one user's self-service actions may add (SPEC 9.3, issue 16 item 8) -----------


def own(clock: FakeClock, kind: str, user: str = "ada", n: int = 1, detail: str | None = None) -> list[Event]:
    """The events of one self-service action of ``user``, now."""
    now = round(clock() * 1000)
    return [Event(kind, now, f"user:{user}", user, None if kind == "settings_changed" else f"s{i}",
                  detail=detail) for i in range(n)]


def test_settings_changes_are_coalesced_to_one_event_a_minute(make_store: Callable[..., Any],
                                                             clock: FakeClock) -> None:
    processes = [make_store(), make_store()]  # on Redis: two processes sharing the counts
    for i in range(50):
        processes[i % 2].append_self_service("ada", own(clock, "settings_changed", detail=str(i)))
        clock.advance(1)
    clock.advance(10)  # a minute after the one recorded
    processes[0].append_self_service("ada", own(clock, "settings_changed", detail="later"))
    shown = processes[1].events(user_id="ada", limit=100, cursor=None).items
    assert [(e.type, e.detail) for e in shown] == [("settings_changed", "later"), ("settings_changed", "0")]


def test_self_service_beyond_sixty_events_an_hour_is_counted_not_recorded(
        make_store: Callable[..., Any], clock: FakeClock) -> None:
    processes = [make_store(), make_store()]
    revoked = Event("revoked", round(clock() * 1000), "admin-token", "bob", "s-bob", "web", "revoked")
    processes[0].append_events([revoked])
    start = round(clock() * 1000)
    processes[0].append_self_service("ada", own(clock, "logout", n=50))  # signing out 50 others
    for i in range(15):
        clock.advance(10)
        processes[i % 2].append_self_service("ada", own(clock, "logout"))

    def ada() -> list[Event]:
        return list(processes[1].events(user_id="ada", limit=200, cursor=None).items)

    def reports() -> list[dict[str, Any]]:
        return [json.loads(e.detail or "") for e in ada() if e.type == "rate_limited"]

    assert [e.type for e in ada()].count("logout") == 60
    assert reports() == [{"not_recorded": 5, "limit": 60, "since": iso(start)}]
    processes[0].append_self_service("ada", own(clock, "logout", n=3))
    assert reports() == [{"not_recorded": 8, "limit": 60, "since": iso(start)}]  # still one, newest
    assert ada()[0].type == "rate_limited" and ada()[0].actor == "user:ada"
    assert processes[1].events(user_id="bob", limit=10, cursor=None).items == [revoked]
    clock.advance(3600)  # a new window: recorded again, the last window's report stays
    processes[1].append_self_service("ada", own(clock, "logout"))
    assert [e.type for e in ada()][:2] == ["logout", "rate_limited"]
    assert len(reports()) == 1


def test_events_are_kept_for_the_retention_only(make_store: Callable[..., Any], clock: FakeClock) -> None:
    store = make_store(audit_retention="1s")
    old = Event("login", round(clock() * 1000), "user:ada", "ada", "s1", "web")
    store.append_events([old])
    assert store.events(user_id=None, limit=10, cursor=None).items == [old]
    clock.advance(2)
    time.sleep(1.1)  # Redis dates stream entries by its own clock
    new = Event("login", round(clock() * 1000), "user:bob", "bob", "s2", "web")
    store.append_events([new])
    assert store.events(user_id=None, limit=10, cursor=None).items == [new]


# -- device binding (DBSC) --------------------------------------------------------------

KEY = '{"crv":"P-256","kty":"EC","x":"x","y":"y"}'


def _ms(clock: FakeClock) -> int:
    return round(clock() * 1000)


def test_bind_marks_the_record_and_keeps_the_key(store: Any, clock: FakeClock) -> None:
    record = login(store, clock, remember_me=True)
    bound = store.bind(record.id, KEY, "c1", _ms(clock))
    assert (bound.outcome, bound.refused) == (Outcome.VALID, None)
    assert bound.record == record._replace(device_bound=True) and bound.policy is not None
    check = store.check(record.id, passive=True)
    assert check.record.device_bound and check.record.remember_me  # both flags read back
    assert [r.device_bound for r in store.user_sessions("ada")] == [True]
    assert store.bind(record.id, KEY, "c2", _ms(clock)).refused == "bound"
    redeemed = store.redeem(record.id, "c3", _ms(clock))
    assert (redeemed.outcome, redeemed.key, redeemed.refused) == (Outcome.VALID, KEY, None)
    assert redeemed.record.device_bound


def test_a_challenge_redeems_once_and_only_while_young(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    issued = _ms(clock)
    assert store.bind(record.id, KEY, "c1", issued).refused is None
    assert store.redeem(record.id, "c1", issued).refused == "used"  # its registration's
    assert store.redeem(record.id, "c2", issued).refused is None
    assert store.redeem(record.id, "c2", issued).refused == "used"
    assert store.redeem(record.id, "c3", issued - 300_001).refused == "used"  # too old
    clock.advance(200)
    assert store.redeem(record.id, "c4", _ms(clock)).refused is None  # old ones pruned, new ones work
    assert store.redeem(record.id, "c4", _ms(clock)).refused == "used"


def test_binding_steps_refuse_unbound_unknown_and_ended_sessions(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    assert store.redeem(record.id, "c1", _ms(clock)).refused == "unbound"
    assert store.bind(record.id, KEY, "c1", _ms(clock) - 300_001).refused == "used"
    unknown = session_id(TOKENS.new_sid(store.slot_tag("ada")))
    assert store.bind(unknown, KEY, "c1", _ms(clock)) == (Outcome.INVALID, None, None, None, None)
    assert store.redeem("not an id", "c1", _ms(clock)).outcome is Outcome.INVALID
    assert store.bind(record.id, KEY, "c2", _ms(clock)).refused is None
    store.end(record.id, "revoked")
    assert store.redeem(record.id, "c3", _ms(clock)).outcome is Outcome.REVOKED
    assert store.bind(record.id, KEY, "c4", _ms(clock)).outcome is Outcome.REVOKED


def test_a_binding_step_that_finds_a_timeout_ends_the_session_once(make_store: Callable[..., Any],
                                                                    clock: FakeClock) -> None:
    store = make_store(idle_timeout=60)
    record = login(store, clock)
    store.bind(record.id, KEY, "c1", _ms(clock))
    clock.advance(61)
    ended = store.redeem(record.id, "c2", _ms(clock))
    assert ended.outcome is Outcome.IDLE_TIMEOUT and ended.record is not None
    assert store.check(record.id, passive=False).outcome is Outcome.IDLE_TIMEOUT
    assert store.check(record.id, passive=False).ended is None  # the ending was reported once


def test_a_bound_session_refuses_an_unbound_token_without_a_use(store: Any, clock: FakeClock) -> None:
    record = login(store, clock)
    store.bind(record.id, KEY, "c1", _ms(clock))
    clock.advance(30)
    assert store.check(record.id, passive=False, unbound_token=True).outcome is Outcome.STALE
    assert store.check(record.id, passive=True, unbound_token=True).outcome is Outcome.STALE
    assert store.check(record.id, passive=True).record.last_seen == record.last_seen  # not a use
    assert store.check(record.id, passive=False).outcome is Outcome.VALID
    other = login(store, clock, "bob")
    assert store.check(other.id, passive=False, unbound_token=True).outcome is Outcome.VALID


def test_a_bound_flag_beside_remember_me_and_an_own_timeout_keeps_all_three(
    make_store: Callable[..., Any], clock: FakeClock
) -> None:
    """The record's flags read together ('r', 'b', then the own idle timeout): a bound
    session with both refuses an unbound token, and its own timeout still ends it."""
    store = make_store(allow_user_timeouts=True)
    record = login(store, clock)
    kept = login(store, clock, remember_me=True)
    store.set_user_timeouts("ada", {"web": 600})
    for bound in (record, kept):
        assert store.bind(bound.id, KEY, "c1", _ms(clock)).refused is None
    seen = store.check(kept.id, passive=True).record
    assert (seen.remember_me, seen.device_bound, seen.user_idle) == (True, True, 600)
    assert store.check(kept.id, passive=True, unbound_token=True).outcome is Outcome.STALE
    assert store.check(record.id, passive=True, unbound_token=True).outcome is Outcome.STALE
    clock.advance(601)
    assert store.check(record.id, passive=True).outcome is Outcome.IDLE_TIMEOUT
    assert store.check(kept.id, passive=True).outcome is Outcome.VALID  # remember-me's period


def test_binding_keeps_through_touches_user_timeouts_and_ends_with_the_session(
    store: Any, clock: FakeClock
) -> None:
    record = login(store, clock)
    store.bind(record.id, KEY, "c1", _ms(clock))
    for _ in range(3):
        clock.advance(1200)
        assert store.check(record.id, passive=False).record.device_bound
    store.set_user_timeouts("ada", {"web": 7200})
    assert store.check(record.id, passive=True).record.device_bound
    assert store.redeem(record.id, "c2", _ms(clock)).key == KEY
    assert [r.id for r in store.end_user("ada", "revoked")] == [record.id]
    assert store.redeem(record.id, "c3", _ms(clock)).outcome is Outcome.REVOKED


HOUR = 3600


# -- report-only mode (ENFORCE=report) ---------------------------------------------------


def test_timeouts_are_judged_not_applied(make_store: Any, clock: FakeClock) -> None:
    store = make_store(enforce="report", idle_timeout="1h", absolute_timeout="3h")
    record = login(store, clock)
    clock.advance(2 * HOUR)
    check = store.check(record.id, passive=False)
    assert check.outcome is Outcome.VALID
    assert check.would_end == (Outcome.IDLE_TIMEOUT, record.created + HOUR * 1000)
    assert check.record is not None and check.record.last_seen == round(clock.now * 1000)  # used now
    assert store.check(record.id, passive=False).would_end is None  # just used: within its timeouts
    clock.advance(2 * HOUR)  # past the absolute timeout (and idle again): the absolute one first
    check = store.check(record.id, passive=True)
    assert (check.outcome, check.would_end) == (
        Outcome.VALID, (Outcome.ABSOLUTE_TIMEOUT, record.created + 3 * HOUR * 1000))
    assert [r.id for r in store.user_sessions("ada")] == [record.id]  # listed as active


def test_limits_are_reported_not_applied(make_store: Any, clock: FakeClock) -> None:
    store = make_store(enforce="report", web_max_sessions=2)
    first, second = login(store, clock), login(store, clock)
    created = store.create(new(store))
    assert created.evicted == ()
    assert [r.id for r in created.reported] == [first.id]
    assert created.would_refuse is False
    assert [outcome(store, r) for r in (first, second, created.record)] == [Outcome.VALID] * 3
    store.set_policy(replace(store.policy(), on_limit="reject"))  # ENFORCE stays the environment's
    refused = store.create(new(store))
    assert (refused.would_refuse, refused.reported, refused.evicted) == (True, (), ())
    assert len(store.user_sessions("ada")) == 4


def test_the_ceiling_still_applies(make_store: Any, clock: FakeClock) -> None:
    store = make_store(enforce="report", session_ceiling=2, web_max_sessions=1)
    first, second = login(store, clock), login(store, clock)
    created = store.create(new(store))
    assert [r.id for r in created.evicted] == [first.id]  # SESSION_CEILING is the store's bound
    assert [r.id for r in created.reported] == [second.id]  # what WEB_MAX_SESSIONS=1 would do
    assert outcome(store, first) is Outcome.EVICTED


def test_limits_beyond_one_page_are_reported(make_store: Any, clock: FakeClock) -> None:
    # more sessions than a Redis function reads in one call (scripts.PAGE): the store reads
    # them in pages, plans, and the login goes ahead with nothing to evict
    store = make_store(enforce="report", web_max_sessions=30)
    held = [login(store, clock) for _ in range(31)]
    created = store.create(new(store))
    assert created.evicted == ()
    assert [r.id for r in created.reported] == [r.id for r in held[:2]]
    assert len(store.user_sessions("ada")) == 32


def test_revocations_and_sign_outs_apply(make_store: Any, clock: FakeClock) -> None:
    store = make_store(enforce="report", idle_timeout="1h")
    revoked, signed_out, kept = login(store, clock), login(store, clock), login(store, clock)
    clock.advance(2 * HOUR)  # all three idle: not applied
    assert store.end(revoked.id, "revoked") is not None
    assert [r.id for r in store.end_user("ada", "signed_out", keep=kept.id)] == [signed_out.id]
    store.end_all()
    assert [outcome(store, r) for r in (revoked, signed_out, kept)] == [
        Outcome.REVOKED, Outcome.SIGNED_OUT, Outcome.SIGNOUT_ALL]
