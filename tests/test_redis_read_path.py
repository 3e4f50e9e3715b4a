"""The Redis store's read path (issue 15): a check is one ``MGET`` judged in
Python on the process's estimate of the server's clock; every use is written
back by the subscriber's tick; a record judged ended is judged again, once,
by the ``check`` function."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import SECRET
from redis_servers import RedisServer
from sessionguard import Config
from sessionguard.core import Outcome, flush_by
from sessionguard.policy import Policy
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import RedisStore, open_redis_stores, server_clock
from sessionguard.stores.redis.keys import Keys
from sessionguard.stores.redis.records import decode_record
from sessionguard.tokens import Tokens, session_id

TOKENS = Tokens([SECRET])


@pytest.fixture
def make_store() -> Iterator[Callable[..., RedisStore]]:
    """``make_store(url, clock=None, **config)``: the sync store of one "process"."""
    made: list[RedisStore] = []

    def make(url: str, *, clock: Callable[[], int] | None = None, **config: Any) -> RedisStore:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix="sg", **config)
        store = open_redis_stores(cfg, Policy.from_config(cfg), clock=clock)[0]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def login(store: RedisStore, user: str = "ada") -> Any:
    new = NewSession(id=session_id(TOKENS.new_sid(store.slot_tag(user))), user_id=user, platform="web")
    return store.create(new).record


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def written_commands(server: RedisServer) -> tuple[int, dict[str, int]]:
    """Redis's count of changes to the data, and its calls per command."""
    client = server.client()
    try:
        dirty = int(client.info("persistence")["rdb_changes_since_last_save"])
        calls = {name.removeprefix("cmdstat_"): int(stats["calls"])
                 for name, stats in client.info("commandstats").items()}
        return dirty, calls
    finally:
        client.close()


def test_a_check_writes_nothing_even_when_a_touch_is_due(private_redis: RedisServer,
                                                         make_store: Any) -> None:
    now = [1_800_000_000_000]
    store = make_store(private_redis.url, idle_timeout="1h", clock=lambda: now[0])
    record = login(store)
    wait_until(lambda: store.subscribed)
    store._shared.subscriber.tick = None  # this test writes back by hand, below
    now[0] += 20 * 60 * 1000  # a third of the idle timeout: a touch is due
    dirty, before = written_commands(private_redis)
    for passive in (False, True) * 5:
        assert store.check(record.id, passive=passive).outcome is Outcome.VALID
    changed, after = written_commands(private_redis)
    sent = {name: count - before.get(name, 0) for name, count in after.items()
            if count != before.get(name, 0) and name not in ("info", "ping", "hello")}  # (a new lane)
    assert (changed, sent) == (dirty, {"mget": 10})  # read-only: no write, no function call
    store.tick()  # the subscriber's tick writes the use back (touch.lua)
    client = private_redis.client()
    assert decode_record(record.id, client.get(Keys("sg").session(record.id))).last_seen == now[0]
    client.close()


def test_a_record_read_again_unchanged_is_not_decoded_again(private_redis: RedisServer,
                                                           make_store: Any) -> None:
    now = [1_800_000_000_000]
    store = make_store(private_redis.url, idle_timeout="1h", clock=lambda: now[0])
    record = login(store)
    wait_until(lambda: store.subscribed)
    store._shared.subscriber.tick = None  # this test writes back by hand, below
    first = store.check(record.id, passive=True).record
    known = store._ops.reads.of(record.id)
    assert known is not None and known.record is not None
    decoded = known.record
    assert store.check(record.id, passive=True).record is first  # the same bytes: the same record
    assert known.record is decoded
    now[0] += 20 * 60 * 1000  # a touch is due: the tick writes it back, the bytes change
    assert store.check(record.id, passive=False).outcome is Outcome.VALID
    store.tick()
    again = store.check(record.id, passive=True).record
    assert known.record is not decoded and again is not None and again.last_seen == now[0]
    # a malformed id is kept nowhere and costs no command
    assert store.check("not-an-id", passive=True).outcome is Outcome.INVALID
    assert store._ops.reads.of("not-an-id") is None


def test_a_use_is_written_back_before_its_flush_by_moment(private_redis: RedisServer,
                                                          make_store: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_clock, "SYNC_SECONDS", 1.0)  # the product's own pace
    store = make_store(private_redis.url, idle_timeout=3)  # touch interval 1 s, lead 1 s
    record = login(store)
    wait_until(lambda: store.subscribed)
    check = store.check(record.id, passive=False)  # the same moment as the login: no touch due
    seen = check.record.last_seen
    by = flush_by(record, check.policy, seen)
    assert seen <= by <= seen + 1000
    client, key = private_redis.client(), Keys("sg").session(record.id)
    while True:  # the store's state, and the server's moment, read in one step
        pipe = client.pipeline(transaction=True)
        (seconds, micros), value = pipe.time().get(key).execute()
        moment = seconds * 1000 + micros // 1000
        if decode_record(record.id, value).last_seen >= seen:
            break
        assert moment < by, "the use was not written back by its flush_by moment"
        time.sleep(0.005)
    assert moment <= by + 5  # the pipeline's own latency
    client.close()


def test_a_timeout_found_by_two_processes_at_once_is_reported_once(private_redis: RedisServer,
                                                                   make_store: Any) -> None:
    now = [1_800_000_000_000]
    stores = [make_store(private_redis.url, idle_timeout="10m", clock=lambda: now[0]) for _ in range(4)]
    records = [login(stores[0], f"user{i}") for i in range(20)]
    for store in stores:
        store.check(records[0].id, passive=True)  # each process has read the state
    now[0] += 10 * 60 * 1000
    for record in records:
        barrier, answers = threading.Barrier(len(stores)), []

        def check(store: RedisStore, record: Any = record, barrier: Any = barrier,
                  answers: list[Any] = answers) -> None:
            barrier.wait()
            answers.append(store.check(record.id, passive=False))

        threads = [threading.Thread(target=check, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {a.outcome for a in answers} == {Outcome.IDLE_TIMEOUT}
        assert [a.ended.id for a in answers if a.ended is not None] == [record.id]  # one audit event


# -- two app servers whose clocks differ by minutes ------------------------------------------------

_SKEWED = """
import sys, time
skew = float(sys.argv[2])
real_time, real_ns = time.time, time.time_ns
time.time = lambda: real_time() + skew
time.time_ns = lambda: real_ns() + int(skew * 1e9)
from sessionguard import Config
from sessionguard.policy import Policy
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import open_redis_stores
from sessionguard.tokens import Tokens, session_id
cfg = Config(secret_key=sys.argv[3], store_url=sys.argv[1], key_prefix="sg", idle_timeout=2)
store = open_redis_stores(cfg, Policy.from_config(cfg))[0]
store.now()
while not store.subscribed:
    time.sleep(0.01)
print("ready", flush=True)
for line in sys.stdin:
    command, _, arg = line.split()[0], None, line.split()[1:]
    if command == "login":
        new = NewSession(id=session_id(Tokens([sys.argv[3]]).new_sid(store.slot_tag("ada"))),
                         user_id="ada", platform="web")
        print(store.create(new).record.id, flush=True)
    else:
        print(store.check(arg[0], passive=command == "passive").outcome.value, flush=True)
store.close()
"""


class Skewed:
    """A process whose wall clock is ``skew`` seconds off, running one Redis store."""

    def __init__(self, url: str, skew: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SKEWED, url, str(skew), SECRET],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.ask("") == "ready"

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def test_app_servers_with_skewed_clocks_agree_on_the_server_clock(private_redis: RedisServer) -> None:
    slow, fast = Skewed(private_redis.url, -600), Skewed(private_redis.url, +600)  # ten minutes each way
    try:
        session = slow.ask("login")
        time.sleep(1.2)
        assert fast.ask(f"active {session}") == "valid"  # a use: written back by the fast one's tick
        time.sleep(0.9)  # past the login's idle deadline, not past the use's
        assert slow.ask(f"passive {session}") == "valid"
        time.sleep(1.3)  # past the use's idle deadline
        assert {slow.ask(f"passive {session}"), fast.ask(f"passive {session}")} == {"idle_timeout"}
    finally:
        slow.close()
        fast.close()
