"""The lean lane's RESP encoding is byte for byte what redis-py sends."""

from __future__ import annotations

import pytest
import redis

from sessionguard.stores.redis.calls import Arg, Rerun, Script
from sessionguard.stores.redis.lane import Encoder

NAME = "sg_0123456789ab_check"


def _redis_py(script: Script) -> bytes:
    packed = redis.Connection().pack_command("FCALL", NAME, len(script.keys), *script.keys, *script.args)
    return b"".join(packed)


@pytest.mark.parametrize(
    ("keys", "args"),
    [
        (("sg:{ab12}:s:xyz",), ("0||1209600|0|3600||evict_oldest|sg",)),  # a check
        (("sg:{ab12}:s:xyz",), ("ctx", "p1700000000000", "1700000000001")),  # passive, owed, test clock
        (("k",), ("ascii", "é non-ASCII", "日本")),  # characters are not bytes: the slow path
        (("k",), (b"raw \xff bytes", "text")),  # bytes among str
        (("k",), (42, "text", -1)),  # ints among str
        ((), ()),
        (("k\r\n",), ("$3\r\n", "")),  # RESP's own characters are data
    ],
)
def test_encoded_check_is_what_redis_py_packs(keys: tuple[str, ...], args: tuple[Arg, ...]) -> None:
    encoder = Encoder({"check": NAME})
    script = Script("check", keys, args, Rerun.ALWAYS, hot=True)
    assert encoder.fcall(script) == _redis_py(script)
    assert encoder.fcall(script) == _redis_py(script)  # the head, encoded once, reused


@pytest.mark.parametrize("keys", [
    ("sg:{ab12}:s:xyz", "sg:{ab12}:e:xyz"),  # a check's read: the record and its tombstone
    ("k\r\n", "é"),  # RESP's own characters, and non-ASCII, are data
])
def test_encoded_read_is_what_redis_py_packs(keys: tuple[str, ...]) -> None:
    encoder = Encoder({"check": NAME})
    packed = b"".join(redis.Connection().pack_command("MGET", *keys))
    assert encoder.mget(keys) == packed
    assert encoder.mget(keys) is encoder.mget(tuple(keys)) == packed  # encoded once, kept
