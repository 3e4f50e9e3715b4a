"""The Redis Functions library: its contract written once (scripts.py) and kept by
the Lua, its loading wherever Redis lacks it (a fresh or restarted server,
``FUNCTION FLUSH``, every Cluster primary), the error on a Redis without
Functions, bounded per-user calls, and the listing index's sweep."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest

from conftest import SECRET
from redis_servers import CountingProxy, RedisServer
from sessionguard import Config
from sessionguard.config import PLATFORMS
from sessionguard.core import Outcome
from sessionguard.errors import StoreUnavailable
from sessionguard.policy import Policy
from sessionguard.stores.cursors import newest_first
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis import AsyncRedisStore, RedisStore, open_redis_stores
from sessionguard.stores.redis.keys import Keys
from sessionguard.stores.redis.records import decode_record
from sessionguard.stores.redis.scripts import (
    CONTEXT,
    FUNCTIONS,
    PAGE,
    SHARED,
    contract_lua,
    library,
    pack_context,
)
from sessionguard.tokens import Tokens, session_id

TOKENS = Tokens([SECRET])
LUA = resources.files("sessionguard.stores.redis") / "lua"
Stores = tuple[RedisStore, AsyncRedisStore]


@pytest.fixture
def make_stores() -> Iterator[Callable[..., Stores]]:
    made: list[RedisStore] = []

    def make(url: str, prefix: str = "sg", *, clock: Callable[[], int] | None = None,
             **config: Any) -> Stores:
        cfg = Config(secret_key=SECRET, store_url=url, key_prefix=prefix, **config)
        stores = open_redis_stores(cfg, Policy.from_config(cfg), clock=clock)
        made.append(stores[0])
        return stores

    yield make
    for store in made:
        store.close()


def new(store: Any, user: str = "ada", platform: str = "web") -> NewSession:
    """A login of ``user`` for ``store`` (its ids carry the store's slot tag of the user)."""
    return NewSession(id=session_id(TOKENS.new_sid(store.slot_tag(user))), user_id=user, platform=platform)


def _fields(flat: list[Any]) -> dict[str, Any]:
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def libraries(client: Any) -> list[str]:
    """The names of the libraries loaded (``FUNCTION LIST``, RESP2: flat lists)."""
    return sorted(_fields(entry)["library_name"].decode() for entry in client.function_list())


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- the contract, written once -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_function_reads_its_arguments_by_contract_name(name: str) -> None:
    """No Lua file numbers KEYS or ARGV by hand, every name it reads is in the
    contract, every argument of the contract is read, and its header lists them
    in the contract's order."""
    source = (LUA / f"{name}.lua").read_text(encoding="utf-8")
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("--"))
    function = FUNCTIONS[name]
    assert not re.search(r"\b(KEYS|ARGV)\[\s*\d", code), "a KEYS/ARGV position written by hand"
    keys = {k.removesuffix("...") for k in function.keys}
    args = {a.removesuffix("...") for a in function.args}
    assert set(re.findall(r"\bK\.(\w+)", code)) == keys
    read = {a or b for a, b in re.findall(r"\bA\.(\w+)|\bA\['(\w+)'\]", code)}
    read |= {a for a in args for prefix in re.findall(r"\bA\['(\w+)' \.\.", code) if a.startswith(prefix)}
    assert read == args
    header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
    argv = re.search(r"^-- ARGV +(.*(?:\n--  +.*)*)", header, re.M)
    assert re.search(r"^-- KEYS +\S", header, re.M) and argv, "the header names KEYS and ARGV"
    positions = []
    for arg in function.args:
        # the name as a word of its own ("events...:" names the run "events..."), and one per
        # platform as "<name>_<platform>"
        name = arg.removesuffix("...")
        for platform in PLATFORMS:
            name = re.sub(rf"_{platform}$", "_<platform>", name)
        found = re.search(rf"\b{re.escape(name)}(?=[ :,;(.]|$)", argv.group(1), re.M)
        assert found, f"the header does not name {arg}"
        positions.append(found.start())
    assert positions == sorted(positions), "the header lists ARGV in the contract's order"


def test_calls_are_built_from_the_contract() -> None:
    check = FUNCTIONS["check"]
    with pytest.raises(TypeError):
        check.call(("k",), context="c", use="", token="")  # `now` missing
    with pytest.raises(TypeError):
        check.call(("k",), context="c", use="", token="", now="", id="x")  # not in the contract
    empty = {"use": "", "token": "", "now": "", "lowered": ""}
    assert check.call(("k",), context="c", **empty).args == ("c",)  # trailing empties out
    assert check.call(("k",), context="c", **{**empty, "now": "5"}).args == ("c", "", "", "5")
    assert check.call(("k",), context="c", **{**empty, "token": "i"}).args == ("c", "", "i")
    assert check.call(("k",), context="c", **{**empty, "lowered": "7"}).args == ("c", "", "", "", "7")
    touch = FUNCTIONS["touch"]
    assert touch.call(("k1", "k2"), "i1", "1", "i2", "2", context="c", now="").args == (
        "c", "", "i1", "1", "i2", "2")
    with pytest.raises(ValueError, match="context fields"):
        pack_context({"epoch_at": "0"})


def test_the_lua_side_of_the_contract_is_generated() -> None:
    generated = contract_lua()
    for name, function in FUNCTIONS.items():
        for position, arg in enumerate(function.args, 1):
            assert f"['{arg.removesuffix('...')}'] = {position}" in generated
        assert f"['{name}'] = {{" in generated
    assert "local CONTEXT = {" + ", ".join(repr(field) for field in CONTEXT) + "}" in generated
    assert f"local READ_LIMIT = {PAGE}" in generated


def test_every_lua_file_is_a_shared_file_or_a_function() -> None:
    """The library is built from every file of ``lua/``: the shared ones (in the
    order of ``SHARED``, each once) before every function's, none left out."""
    files = {path.name.removesuffix(".lua") for path in LUA.iterdir() if path.name.endswith(".lua")}
    assert len(set(SHARED)) == len(SHARED) and not set(SHARED) & set(FUNCTIONS)
    assert files == set(SHARED) | set(FUNCTIONS)
    source = library().source
    starts = [source.index((LUA / f"{name}.lua").read_text(encoding="utf-8")) for name in SHARED]
    assert starts == sorted(starts) and starts[-1] < source.index("local function check_function")


def test_the_library_registers_every_function(private_redis: RedisServer) -> None:
    built = library()
    client = private_redis.client()
    assert client.function_load(built.source).decode() == built.name
    [entry] = client.function_list()
    functions = [_fields(f)["name"].decode() for f in _fields(entry)["functions"]]
    assert sorted(functions) == sorted(built.names.values())
    assert all(name.startswith(f"sg_{built.name.rsplit('_', 1)[1]}_") for name in built.names.values())
    # another version of the library (a rolling deploy) loads beside it: its names differ
    other = built.source.replace(built.name.rsplit("_", 1)[1], "0123456789ab")
    client.function_load(other)
    assert libraries(client) == sorted([built.name, "sessionguard_0123456789ab"])
    client.close()


# -- loading where Redis lacks the library -----------------------------------------------------------


def test_the_library_is_loaded_again_after_a_flush_and_a_restart(private_redis: RedisServer,
                                                                  make_stores: Any) -> None:
    now = [1_800_000_000_000]
    sync, async_ = make_stores(private_redis.url, idle_timeout="1h", clock=lambda: now[0])
    client = private_redis.client()
    assert libraries(client) == []
    record = sync.create(new(sync)).record  # the first call finds no library, loads it, calls again
    other = sync.create(new(sync, "bob")).record
    assert libraries(client) == [library().name]
    client.function_flush()
    now[0] += 3_600_000  # both idled out: a check reads, then calls the check function on its lane
    assert sync.check(record.id, passive=False).outcome is Outcome.IDLE_TIMEOUT  # the sync lane, the load
    client.function_flush()

    async def checked() -> Outcome:
        return (await async_.check(other.id, passive=False)).outcome

    assert asyncio.run(checked()) is Outcome.IDLE_TIMEOUT  # the async lane too
    assert libraries(client) == [library().name]
    client.close()
    private_redis.restart()  # no persistence: the data and the library are gone
    assert sync.check(record.id, passive=False).outcome is Outcome.INVALID
    again = sync.create(new(sync)).record
    assert sync.check(again.id, passive=True).outcome is Outcome.VALID


def test_every_cluster_primary_gets_the_library(redis_cluster: Any, make_stores: Any) -> None:
    prefix = "sgt-functions"
    sync, _ = make_stores(redis_cluster.url, prefix)
    for node in redis_cluster.nodes:  # a node added or restarted without the library
        node.client().function_flush()
    users = [f"user{i}" for i in range(12)]  # spread over the three primaries' slots
    records = [sync.create(new(sync, user)).record for user in users]
    assert all(sync.check(r.id, passive=False).outcome is Outcome.VALID for r in records)
    for node in redis_cluster.nodes:
        assert library().name in libraries(node.client())
    redis_cluster.nodes[1].client().function_flush()
    assert all(sync.check(r.id, passive=True).outcome is Outcome.VALID for r in records)
    cluster = redis_cluster.client()
    for key in cluster.scan_iter(match=f"{prefix}*"):
        cluster.delete(key)
    cluster.close()


def test_a_cluster_check_is_one_mget_and_nothing_else(redis_cluster: Any, make_stores: Any) -> None:
    """A check reads its record and tombstone (one slot) with one ``MGET``, whose keys
    redis-py finds from the command's key specs: no ``COMMAND GETKEYS`` round trip
    before it (one round trip per authenticated request), and nothing written."""
    sync, _ = make_stores(redis_cluster.url, "sgt-fcall-keys")
    records = [sync.create(new(sync, f"user{i}")).record for i in range(6)]
    calls = lambda: {n.port: n.client().info("commandstats") for n in redis_cluster.nodes}  # noqa: E731
    before = calls()
    for record in records * 5:
        assert sync.check(record.id, passive=True).outcome is Outcome.VALID
    after = calls()
    sent = {name: sum(after[port][name]["calls"] - before[port].get(name, {"calls": 0})["calls"]
                      for port in after if name in after[port])
            for name in {name for stats in after.values() for name in stats}}
    ours = {name: count for name, count in sent.items()
            if count and not any(word in name for word in ("info", "hello", "client"))}  # this test's INFOs
    ours.pop("cmdstat_time", None)  # the store's clock, measured by the subscriber's tick once a second
    assert ours == {"cmdstat_mget": 30}


def test_a_redis_without_functions_is_a_store_failure_that_says_so(
        private_redis_factory: Callable[..., RedisServer], make_stores: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    server = private_redis_factory("--rename-command", "FCALL", "fcall-renamed",
                                   "--rename-command", "FUNCTION", "function-renamed")
    sync, _ = make_stores(server.url)
    with caplog.at_level(logging.WARNING, "sessionguard"), pytest.raises(StoreUnavailable):
        sync.check(session_id(TOKENS.new_sid('abcd')), passive=False)
    assert "needs Redis 7.0 or later" in caplog.text


# -- bounded per-user calls ----------------------------------------------------------------------


def test_per_user_calls_read_a_page_at_a_time(private_redis: RedisServer, counting_proxy: Any,
                                              make_stores: Any) -> None:
    proxy: CountingProxy = counting_proxy(private_redis.host, private_redis.port)
    sync, _ = make_stores(proxy.url)
    count = 2 * PAGE + 3
    for _ in range(count):
        sync.create(new(sync))
    proxy.reset()
    assert len(sync.user_sessions("ada")) == count
    assert len(sync.list_sessions(user_id="ada", platform=None, limit=10, cursor=None).items) == 10
    sync.set_user_timeouts("ada", {"web": 600})
    assert len(sync.end_user("ada", "revoked")) == count
    calls = [r.name for r in proxy.records if r.name == "FCALL"]
    assert len(calls) == 4 * 3  # four operations, three pages each
    assert sync.user_sessions("ada") == []


def test_a_touch_keeps_the_users_index_as_long_as_the_record(private_redis: RedisServer,
                                                               make_stores: Any) -> None:
    now = [1_800_000_000_000]
    sync, _ = make_stores(private_redis.url, idle_timeout="1h", clock=lambda: now[0])
    record = sync.create(new(sync)).record
    client, keys = private_redis.client(), Keys("sg")
    index = keys.user_index(record.id[:4], "ada")
    assert client.pttl(index) >= client.pttl(keys.session(record.id)) > 0
    client.pexpire(index, 1000)  # as if the login were long ago, the session used since
    now[0] += 20 * 60 * 1000  # a touch is due (a third of the idle timeout)
    assert sync.check(record.id, passive=False).record.last_seen == now[0]
    # the use is written back by the subscriber's tick (touch.lua)
    wait_until(lambda: decode_record(record.id, client.get(keys.session(record.id))).last_seen == now[0])
    assert client.pttl(index) >= client.pttl(keys.session(record.id)) > 3_600_000
    client.close()


# -- the listing index's sweep (issue 16, item 10) ---------------------------------------------------


def test_the_listing_index_forgets_sessions_whose_record_is_gone(private_redis: RedisServer,
                                                                make_stores: Any) -> None:
    never = dict(absolute_timeout="never")  # no login-time cut-off prunes the listing index
    sync, _ = make_stores(private_redis.url, **never)
    records = [sync.create(new(sync, f"user{i}")).record for i in range(12)]
    client, keys = private_redis.client(), Keys("sg")
    assert client.zcard(keys.idx) == 12
    for record in records[2:]:  # their retention ran out (a day after they idled out unseen)
        client.delete(keys.session(record.id))
    sweeper, _ = make_stores(private_redis.url, **never)
    sweeper._ops.sweep.rest = 0.0  # no rest before the first pass
    sweeper.now()  # starts its subscriber, whose tick sweeps
    wait_until(lambda: client.zcard(keys.idx) == 2)
    listed = sync.list_sessions(user_id=None, platform=None, limit=50, cursor=None).items
    assert listed == sorted(records[:2], key=newest_first)
    client.close()


def test_the_listing_index_forgets_ended_sessions_on_a_cluster(redis_cluster: Any, make_stores: Any) -> None:
    prefix = "sgt-sweep"
    sync, _ = make_stores(redis_cluster.url, prefix, absolute_timeout="never")
    sync._ops.sweep.rest = 0.0
    records = [sync.create(new(sync, f"user{i}")).record for i in range(4)]
    sync.end(records[0].id, "revoked")  # the function cannot reach the index: another slot
    sync.end_user("user1", "revoked")
    cluster, keys = redis_cluster.client(), Keys(prefix)
    # listed among the recently ended while their tombstones last (a day) ...
    ended = sync.list_sessions(user_id=None, platform=None, limit=50, cursor=None, status="ended").items
    assert {e.record.id for e in ended} == {records[0].id, records[1].id}
    assert {e.reason for e in ended} == {"revoked"}
    assert cluster.zcard(keys.idx) == 4
    for record in records[:2]:  # ... then forgotten
        cluster.delete(keys.tombstone(record.id))
    wait_until(lambda: cluster.zcard(keys.idx) == 2)
    for key in cluster.scan_iter(match=f"{prefix}*"):
        cluster.delete(key)
    cluster.close()


