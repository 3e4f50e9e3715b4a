"""The state every process shares through Redis (``P:state``, ``stores/redis/state.py``
and ``lua/state.lua``): the deployment's tag key, and what losing a global key does.

Losing a key must never bring a session back (issue 16 item 7): a state found without
its epoch or its tag key is made anew with the epoch at that moment, so every session
existing then ends (``signout_all``), in a process started afterwards as in the ones
already running.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from redis_servers import RedisServer
from sessionguard.core import Outcome
from sessionguard.stores.redis import state as redis_state
from sessionguard.stores.redis.keys import Keys
from test_redis_store import make_stores, new, request_commands, wait_until

__all__ = ["make_stores"]  # a fixture, used by name


def test_processes_agree_on_the_tag_key_however_they_race(redis_url: str, key_prefix: str,
                                                         make_stores: Any) -> None:
    processes = [make_stores(redis_url, key_prefix)[0] for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        tags = set(pool.map(lambda store: store.slot_tag("ada@example.com"), processes))
    assert len(tags) == 1
    later, _ = make_stores(redis_url, key_prefix)
    assert later.slot_tag("ada@example.com") in tags
    other, _ = make_stores(redis_url, key_prefix + "b")  # another deployment
    users = [f"user{n}" for n in range(40)]
    assert sum(later.slot_tag(u) == other.slot_tag(u) for u in users) <= 2


def test_the_tag_key_costs_no_round_trip_once_read(private_redis: RedisServer, counting_proxy: Any,
                                                    make_stores: Any) -> None:
    proxy = counting_proxy(private_redis.host, private_redis.port)
    # a longer timeout: through the proxy's Python thread a reply once took over the default 0.5 s
    sync, _ = make_stores(proxy.url, store_timeout="5s")
    first = sync.create(new(sync)).record  # the process's first login reads the state (and the key)
    sync.check(first.id, passive=True)  # the first call loads the library (Function not found)
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    assert sync.slot_tag("bob") != ""
    assert request_commands(proxy) == []
    sync.create(new(sync, "bob"))
    assert sync.check(first.id, passive=True).outcome is Outcome.VALID
    assert request_commands(proxy) == ["FCALL", "MGET"]  # create, check: nothing more


LOSSES = [
    pytest.param(lambda raw, keys: raw.delete(keys.state), id="state-deleted"),
    pytest.param(lambda raw, keys: raw.hdel(keys.state, "at"), id="epoch-deleted"),
    pytest.param(lambda raw, keys: raw.hdel(keys.state, "tag_key"), id="tag-key-deleted"),
    pytest.param(lambda raw, keys: raw.hset(keys.state, "tag_key", "not hex"), id="tag-key-garbled"),
]


@pytest.mark.parametrize("lose", LOSSES)
def test_a_lost_state_signs_everyone_out_rather_than_back_in(redis_url: str, key_prefix: str,
                                                             make_stores: Any, lose: Any) -> None:
    first, _ = make_stores(redis_url, key_prefix)
    signed_out = first.create(new(first)).record
    time.sleep(0.002)
    first.end_all()
    time.sleep(0.002)
    alive = first.create(new(first, "bob")).record  # neither is presented before the loss
    wait_until(lambda: first.subscribed)
    raw, keys = redis.Redis.from_url(redis_url), Keys(key_prefix)
    lose(raw, keys)
    time.sleep(0.002)
    # a process started now: it never saw the epoch, nor the tag key the sessions are filed under
    later, later_async = make_stores(redis_url, key_prefix)
    assert later.check(signed_out.id, passive=True).outcome is Outcome.SIGNOUT_ALL
    assert later.check(alive.id, passive=True).outcome is Outcome.SIGNOUT_ALL
    # the running process follows at once (the new state is published)
    wait_until(lambda: first.check(alive.id, passive=True).outcome is Outcome.SIGNOUT_ALL, timeout=1)
    # new logins work everywhere, under one tag key again
    fresh = later.create(new(later, "bob")).record
    assert first.check(fresh.id, passive=True).outcome is Outcome.VALID
    assert first.slot_tag("bob") == later.slot_tag("bob")
    assert [r.id for r in first.user_sessions("bob")] == [fresh.id]
    assert [r.id for r in later.end_user("bob", "revoked")] == [fresh.id]
    raw.close()


def test_a_running_process_notices_a_lost_state_by_itself(redis_url: str, key_prefix: str,
                                                          make_stores: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_state, "RESYNC_SECONDS", 0.2)  # the subscriber's periodic re-read
    store, _ = make_stores(redis_url, key_prefix)
    record = store.create(new(store)).record
    time.sleep(0.002)
    wait_until(lambda: store.subscribed)
    raw = redis.Redis.from_url(redis_url)
    raw.delete(Keys(key_prefix).state)
    wait_until(lambda: store.check(record.id, passive=True).outcome is Outcome.SIGNOUT_ALL, timeout=2)
    assert raw.hexists(Keys(key_prefix).state, "tag_key")
    raw.close()


def test_losing_the_listing_index_or_the_audit_log_revives_nothing(redis_url: str, key_prefix: str,
                                                                  make_stores: Any) -> None:
    store, _ = make_stores(redis_url, key_prefix)
    ended = store.create(new(store)).record
    store.end(ended.id, "revoked")
    alive = store.create(new(store)).record
    raw, keys = redis.Redis.from_url(redis_url), Keys(key_prefix)
    assert raw.delete(keys.idx, keys.audit) >= 1
    later, _ = make_stores(redis_url, key_prefix)
    assert later.check(ended.id, passive=True).outcome is Outcome.REVOKED
    assert later.check(alive.id, passive=True).outcome is Outcome.VALID
    # what is lost is the admin listing of the sessions it held (and the events): a user's own
    # listing, limits and sign-outs go through the user's index
    assert later.list_sessions(user_id=None, platform=None, limit=10, cursor=None).items == []
    assert [r.id for r in later.user_sessions("ada")] == [alive.id]
    raw.close()
