"""The Redis store: ``redis://``, ``rediss://``, ``redis+sentinel://`` and
``redis+cluster://``.

How the package is laid out (a request's check goes top to bottom):

- :mod:`.urls` ``STORE_URL`` → :class:`~.urls.Target`; :mod:`.clients` redis-py
  clients, timeouts, bounded retries, error translation;
- :mod:`.operations` every store operation, written once as an I/O-free
  generator of :mod:`.calls` (scripts and plain commands): the request path
  in :mod:`.checks`, the state, clock and context of every call in
  :mod:`.state_calls`, one user's sessions in :mod:`.users`; :mod:`.listing`
  the admin listing and the audit pages;
- :mod:`.keys` key names, :mod:`.records` the record codec, :mod:`.scripts` and
  ``lua/`` the server side;
- :mod:`.census` the count of active sessions for the metrics;
- :mod:`.state` the policy and sign-out epoch every process caches, kept fresh
  by pub/sub; :mod:`.local_cache` ``LOCAL_CACHE``;
- :mod:`.sync_store` and :mod:`.async_store` drive the operations (they differ
  by ``await``); :mod:`.lane` and :mod:`.lane_async` the request path's lean
  connections.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...policy import Policy
from .async_store import AsyncRedisStore
from .keys import Keys
from .local_cache import LocalCache
from .operations import Operations
from .state import StateCache
from .sync_store import RedisStore, Shared
from .urls import parse_url

if TYPE_CHECKING:
    from ...config import Config

__all__ = ["AsyncRedisStore", "RedisStore", "open_redis_stores"]


def open_redis_stores(
    config: Config,
    policy: Policy,
    *,
    clock: Callable[[], int] | None = None,
) -> tuple[RedisStore, AsyncRedisStore]:
    """The sync and async stores on the Redis ``config.store_url`` names. Nothing
    connects here.

    :param policy: the configured policy (a stored override replaces it).
    :param clock: epoch milliseconds for tests; by default the Redis server's ``TIME``.

    With ``config.local_cache`` above zero, both stores share one
    :class:`~.local_cache.LocalCache` of valid checks (see there for its bounds).
    :raises ConfigurationError: for a malformed ``redis+sentinel://`` or
        ``redis+cluster://`` URL.
    """
    target = parse_url(config.store_url)
    state = StateCache(policy)
    local = None
    if config.local_cache > 0:
        local = LocalCache(config.local_cache, state.trusted_at)
    ops = Operations(
        Keys(config.key_prefix), state, clock=clock,
        cluster=target.cluster, audit_maxlen=config.audit_maxlen, audit_retention=config.audit_retention,
        local=local,
    )
    shared = Shared(target, config.store_timeout, ops, config.store_spin)
    store = RedisStore(shared)
    shared.subscriber.tick = store.tick
    shared.subscriber.reread = store.reread_state
    shared.recount = store.recount
    return store, AsyncRedisStore(shared)
