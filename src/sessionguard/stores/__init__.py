"""Session stores, chosen by ``STORE_URL``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .memory import AsyncMemoryStore, MemoryStore
from .protocol import AsyncStore, Store

if TYPE_CHECKING:
    from ..config import Config
    from ..policy import Policy

logger = logging.getLogger("sessionguard")


def open_stores(
    config: Config,
    policy: Policy,
    *,
    clock: Callable[[], int] | None = None,
) -> tuple[Store, AsyncStore]:
    """The sync and async stores ``config.store_url`` names. Nothing connects
    here: Redis clients connect on first use."""
    if config.store_url.startswith("memory:"):
        logger.warning(
            "sessionguard: STORE_URL=memory:// keeps sessions in this process only; "
            "use redis:// when the app runs in several workers or servers"
        )
        memory = MemoryStore(policy, clock=clock, audit_maxlen=config.audit_maxlen,
                             audit_retention=config.audit_retention)
        return memory, AsyncMemoryStore(memory)
    from .redis import open_redis_stores

    return open_redis_stores(config, policy, clock=clock)


__all__ = ["AsyncMemoryStore", "AsyncStore", "MemoryStore", "Store", "open_stores"]
