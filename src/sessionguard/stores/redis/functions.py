"""How the stores call the library of :mod:`.scripts`: ``FCALL``, and when Redis
does not know the function (a fresh or restarted server, ``FUNCTION FLUSH``, a
Cluster node added since) ``FUNCTION LOAD REPLACE`` and the call again, as
redis-py's scripts do on ``NOSCRIPT``.

Redis 7.0 or later (or Valkey 7.2 or later) is required: an older server
answers ``FCALL`` with "unknown command", which is reported once as
:class:`RedisTooOld` (a store failure naming the requirement) rather than
emulated with ``EVAL`` of the library on every call, which would cost Redis what
the library exists to save (see ``docs/redis.md``).
"""

from __future__ import annotations

from typing import Any

import redis

from .calls import Script
from .scripts import Library


class RedisTooOld(redis.ResponseError):
    """The server does not know Redis Functions (``FCALL``)."""


def function_missing(message: str) -> bool:
    """Whether an error reply says the called function is not loaded (redis-py
    drops the ``ERR`` prefix, hiredis keeps it)."""
    return "Function not found" in message


def _failure(exc: redis.ResponseError) -> redis.ResponseError:
    message = str(exc)
    if "unknown command" in message.lower() and ("fcall" in message.lower() or "function" in message.lower()):
        return RedisTooOld("sessionguard needs Redis 7.0 or later, or Valkey 7.2 or later (Redis Functions:"
                           f" FCALL, FUNCTION LOAD); the server answered: {message}")
    return exc


class Caller:
    """Sends :class:`~.calls.Script` requests as ``FCALL`` of the library's
    functions, loading the library on demand (on every primary of a Cluster:
    redis-py sends ``FUNCTION LOAD`` to all of them)."""

    def __init__(self, library: Library) -> None:
        self.library = library

    def command(self, request: Script) -> tuple[Any, ...]:
        return ("FCALL", self.library.names[request.name], len(request.keys), *request.keys, *request.args)

    def call(self, client: Any, request: Script) -> Any:
        """The reply of ``request`` on the sync ``client``."""
        command = self.command(request)
        try:
            return client.execute_command(*command)
        except redis.ResponseError as exc:
            if not function_missing(str(exc)):
                raise _failure(exc) from exc
        try:
            client.function_load(self.library.source, replace=True)
        except redis.ResponseError as exc:
            raise _failure(exc) from exc
        return client.execute_command(*command)

    async def acall(self, client: Any, request: Script) -> Any:
        """The reply of ``request`` on the asyncio ``client``."""
        command = self.command(request)
        try:
            return await client.execute_command(*command)
        except redis.ResponseError as exc:
            if not function_missing(str(exc)):
                raise _failure(exc) from exc
        try:
            await client.function_load(self.library.source, replace=True)
        except redis.ResponseError as exc:
            raise _failure(exc) from exc
        return await client.execute_command(*command)

    def call_waiting(self, client: Any, request: Script, wait_ms: int) -> list[Any]:
        """The replies to ``request`` and to a ``WAIT 1 wait_ms`` after it on the
        same connection, in one round trip (Sentinel: :mod:`.failover`), error
        replies in their place; a missing library is loaded and both sent again."""
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*self.command(request))
            pipe.execute_command("WAIT", 1, wait_ms)
            replies = _checked(pipe.execute(raise_on_error=False))
            if replies is not None:
                return replies
            try:
                client.function_load(self.library.source, replace=True)
            except redis.ResponseError as exc:
                raise _failure(exc) from exc
        raise redis.ResponseError("Function not found after FUNCTION LOAD")

    async def acall_waiting(self, client: Any, request: Script, wait_ms: int) -> list[Any]:
        """The asyncio twin of :meth:`call_waiting`."""
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*self.command(request))
            pipe.execute_command("WAIT", 1, wait_ms)
            replies = _checked(await pipe.execute(raise_on_error=False))
            if replies is not None:
                return replies
            try:
                await client.function_load(self.library.source, replace=True)
            except redis.ResponseError as exc:
                raise _failure(exc) from exc
        raise redis.ResponseError("Function not found after FUNCTION LOAD")


def _checked(replies: list[Any]) -> list[Any] | None:
    """``replies`` with the function's error translated; ``None`` when the
    function was missing."""
    reply = replies[0]
    if isinstance(reply, redis.ResponseError):
        if function_missing(str(reply)):
            return None
        return [_failure(reply), *replies[1:]]
    return list(replies)
