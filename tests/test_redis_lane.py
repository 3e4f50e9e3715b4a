"""The lean lane's RESP encoding is byte for byte what redis-py sends."""

from __future__ import annotations

import pytest
import redis

from sessionguard.stores.redis.calls import Arg, Script
from sessionguard.stores.redis.lane import Encoder

SHA = "0123456789abcdef0123456789abcdef01234567"


def _redis_py(script: Script) -> bytes:
    packed = redis.Connection().pack_command("EVALSHA", SHA, len(script.keys), *script.keys, *script.argv)
    return b"".join(packed)


@pytest.mark.parametrize(
    ("keys", "args"),
    [
        (("sg:{ab12}:s:xyz", "sg:{ab12}:e:xyz", "sg:idx"), ("", "ab12", "ab12xyz", "0", "")),  # a check
        (("k",), ("ascii", "é non-ASCII", "日本")),  # characters are not bytes: the slow path
        (("k",), (b"raw \xff bytes", "text")),  # bytes among str
        (("k",), (42, "text", -1)),  # ints among str
        ((), ()),
        (("k\r\n",), ("$3\r\n", "")),  # RESP's own characters are data
    ],
)
def test_encoded_check_is_what_redis_py_packs(keys: tuple[str, ...], args: tuple[Arg, ...]) -> None:
    encoder = Encoder({"check": SHA})
    for context in (("ctx", "1", "0"), ("ctx", 7, "ü")):  # the context is encoded once, then reused
        script = Script("check", keys, args, context=context, hot=True)
        assert encoder.evalsha(script) == _redis_py(script)
        assert encoder.evalsha(script) == _redis_py(script)
