"""Fork safety: a Redis store used before a fork (``gunicorn --preload`` whose
app called the store, ``multiprocessing`` with ``fork``) works in the child as
in a fresh process: its state subscriber (and the write-behind tick it runs)
is started again there, so ``LOCAL_CACHE`` stays on and honours a revocation
made by another process, and the child's uses of sessions are written back.

A real ``os.fork`` of the test process; the child reports over a pipe and
leaves with ``os._exit``, never returning into pytest.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from conftest import SECRET, FakeClock
from sessionguard import Config, SessionGuard
from sessionguard.core import Outcome
from sessionguard.stores.protocol import NewSession
from sessionguard.stores.redis.state import TRUST_SECONDS
from sessionguard.tokens import session_id

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]

#: generous: the machine may be busy; nothing here asserts speed
WAIT = 10.0


def wait_until(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


class Pipe:
    """One direction of JSON messages between the parent and the child."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._buffer = b""

    def send(self, message: Any) -> None:
        os.write(self.write_fd, json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float = 3 * WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.read_fd], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no message from the other process")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise EOFError("the other process closed the pipe")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)


def fork(child: Callable[[], None]) -> int:
    """Run ``child`` in a forked process that exits with 0, or 1 when it raised."""
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        child()
        code = 0
    except BaseException:
        traceback.print_exc(file=sys.stderr)
    finally:
        os._exit(code)


def login(guard: SessionGuard, user: str) -> Any:
    sid = guard.tokens.new_sid(guard.store.slot_tag(user))
    return guard.store.create(NewSession(id=session_id(sid), user_id=user, platform="web")).record


def test_a_forked_child_runs_its_own_subscriber_and_write_behind(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    guard = SessionGuard(Config(secret_key=SECRET, store_url=redis_url, key_prefix=key_prefix,
                                local_cache="1h", idle_timeout="1h"), clock=clock)
    revoked, used = login(guard, "ada"), login(guard, "grace")
    # used before the fork: the parent's subscriber (and its tick) are running
    assert guard.store.check(revoked.id, passive=True).outcome is Outcome.VALID
    assert wait_until(lambda: guard.store.subscribed)
    to_child, to_parent = Pipe(), Pipe()

    def child() -> None:
        store = guard.store
        # the child's first store call starts its own subscriber, whose subscription comes
        # up: LOCAL_CACHE is trusted here too
        assert store.check(revoked.id, passive=False).outcome is Outcome.VALID
        time.sleep(TRUST_SECONDS + 0.5)  # what the parent's subscription had proved has lapsed
        to_parent.send({"subscribed": wait_until(lambda: store.subscribed)})
        assert store.check(revoked.id, passive=False).outcome is Outcome.VALID
        hit = store.cached_check(revoked.id, passive=True)
        to_parent.send({"cached": hit is not None and hit.outcome is Outcome.VALID})
        assert to_child.receive() == "revoked"  # by the parent, another process
        to_parent.send({"honoured": wait_until(
            lambda: store.check(revoked.id, passive=True).outcome is Outcome.REVOKED)})
        # a use due for writing back (past the touch interval): the child's tick writes it
        clock.advance(11 * 60)
        assert store.check(used.id, passive=False).outcome is Outcome.VALID
        to_parent.send({"used_at": round(clock() * 1000)})
        assert to_child.receive() == "done"

    pid = fork(child)
    try:
        assert to_parent.receive() == {"subscribed": True}
        assert to_parent.receive() == {"cached": True}
        assert guard.end_session(revoked.id)
        to_child.send("revoked")
        assert to_parent.receive() == {"honoured": True}
        used_at = to_parent.receive()["used_at"]
        # read by a process that never saw the use: only the child's write-behind can tell it
        reader = SessionGuard(Config(secret_key=SECRET, store_url=redis_url, key_prefix=key_prefix),
                              clock=clock)
        try:
            assert wait_until(lambda: reader.store.user_sessions("grace")[0].last_seen >= used_at)
        finally:
            reader.close()
        to_child.send("done")
    finally:
        _, status = os.waitpid(pid, 0)
        guard.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_every_background_thread_starts_again_in_a_child_unless_stopped() -> None:
    # the state subscriber above, the Sentinel watch alike: the same base class
    from sessionguard.stores.redis.background import Background

    class Sleeper(Background):
        def __init__(self) -> None:
            self._init_thread()

        def _run(self) -> None:
            self._stop.wait()

    running, stopped = Sleeper(), Sleeper()
    running.start()
    stopped.start()
    stopped.stop()
    to_parent = Pipe()

    def child() -> None:
        for sleeper in (running, stopped):
            sleeper.start()
        to_parent.send([s._thread is not None and s._thread.is_alive() for s in (running, stopped)])
        running.stop()

    pid = fork(child)
    try:
        assert to_parent.receive() == [True, False]
    finally:
        _, status = os.waitpid(pid, 0)
        running.stop()
    assert os.waitstatus_to_exitcode(status) == 0
