"""One deadline per store call, kept under CLIENT PAUSE and SIGSTOP by every
request (lane, fallback and retries included); which calls are sent again after
a late reply or a dropped connection (calls.Rerun); the private attributes of
redis-py and asyncio (stores/redis/internals.py) and the public path without them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import SECRET
from redis_servers import RedisServer
from sessionguard import Config, StoreUnavailable
from sessionguard.core import Outcome
from sessionguard.policy import Policy
from sessionguard.stores.redis import AsyncRedisStore, RedisStore, open_redis_stores
from sessionguard.stores.redis import state as redis_state
from test_redis_store import TOKENS, new, request_commands, wait_until

pytestmark = pytest.mark.redis
Stores = tuple[RedisStore, AsyncRedisStore]


@pytest.fixture
def make_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stores]]:
    """``make_stores(url, **config)``: both stores of one "process", closed at teardown."""
    monkeypatch.setattr(redis_state, "RESYNC_SECONDS", 3600.0)  # no re-reads in the counts
    made: list[RedisStore] = []

    def make(url: str, **config: Any) -> Stores:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix="sg", **config)
        stores = open_redis_stores(cfg, Policy.from_config(cfg), slot_tag=TOKENS.slot_tag)
        made.append(stores[0])
        return stores

    yield make
    for store in made:
        store.close()


def test_a_login_whose_reply_is_late_is_not_sent_again(private_redis: RedisServer, counting_proxy: Any,
                                                        make_stores: Any) -> None:
    # a login reads all the user's sessions (Rerun.ON_DROP): after a timeout Redis may
    # still be running it, so it is not run again; it did take its one slot
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5, max_sessions=1, on_limit="reject")
    sync.create(new("bob"))  # loads the script (NOSCRIPT)
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    sleeper = threading.Thread(target=private_redis.command, args=("DEBUG", "SLEEP", "0.3"))
    sleeper.start()
    time.sleep(0.05)
    with pytest.raises(StoreUnavailable):
        sync.create(new())  # the reply comes after the 0.2 s read timeout
    sleeper.join()
    assert request_commands(proxy).count("EVALSHA") == 1
    assert len(sync.user_sessions("ada")) == 1


def test_an_end_whose_reply_is_late_is_sent_again(private_redis: RedisServer, counting_proxy: Any,
                                                   make_stores: Any) -> None:
    # ending one session is cheap and idempotent (Rerun.ALWAYS): a late reply is retried
    # within STORE_TIMEOUT
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5)
    record = sync.create(new()).record
    sync.end(sync.create(new()).record.id, "signed_out")  # loads end.lua (NOSCRIPT)
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    sleeper = threading.Thread(target=private_redis.command, args=("DEBUG", "SLEEP", "0.3"))
    sleeper.start()
    time.sleep(0.05)
    sync.end(record.id, "signed_out")  # the first reply comes after the 0.2 s read timeout
    sleeper.join()
    assert request_commands(proxy).count("EVALSHA") == 2
    assert sync.check(record.id, passive=True).outcome is Outcome.SIGNED_OUT


def test_a_login_is_sent_again_after_a_dropped_connection(private_redis: RedisServer, counting_proxy: Any,
                                                          make_stores: Any) -> None:
    # a dropped connection (not a timeout) is worth one more try even for a login
    proxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url, store_timeout=0.5, max_sessions=1, on_limit="reject")
    sync.create(new("bob"))
    wait_until(lambda: sync.subscribed)
    proxy.reset()
    private_redis.command("CLIENT", "PAUSE", 150, "WRITE")  # the login waits, unanswered

    def kill() -> None:
        time.sleep(0.05)
        private_redis.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    killer = threading.Thread(target=kill)
    killer.start()
    created = sync.create(new())
    killer.join()
    assert request_commands(proxy).count("EVALSHA") == 2
    assert sync.user_sessions("ada") == [created.record]


