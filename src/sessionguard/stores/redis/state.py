"""The state every process caches: the stored policy override, the epoch of the
last sign-out of everyone and the deployment's tag key (its slot tags), kept
current through Redis pub/sub. It is always read through ``state.lua``, which
makes a state found without its epoch or tag key anew, signing everyone out
(fail closed: a lost key never brings a session back).

Staleness bound: while the subscription is up, a change reaches every process
as soon as Redis delivers the message (milliseconds), and the store that made
the change applies it before returning. The subscription proves itself alive
every :data:`PING_SECONDS`; when it has not answered for :data:`TRUST_SECONDS`
(or is not up yet) requests re-read the state at most once per
:data:`POLL_SECONDS` (one extra round trip for one request per second per
process). So no process judges a request with a state older than about
``TRUST_SECONDS + POLL_SECONDS`` (2.5 s). The one loss no PING can detect, a
message dropped between Cluster nodes while every link answers, is bounded by
the subscriber's periodic re-read, :data:`RESYNC_SECONDS` (10 s).

The same channel carries the ids of ended or changed sessions for
``LOCAL_CACHE`` (:mod:`.local_cache`): every process drops them at once. That
cache is used only while the subscription is trusted as above, and is emptied
whenever the subscription goes down or is (re)established.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...core import Epoch
from ...policy import Policy
from ...tokens import SlotTags
from ..write_behind import Unwritten
from .background import Background
from .clients import ERRORS
from .keys import Keys
from .local_cache import LocalCache

logger = logging.getLogger("sessionguard")

#: Re-read the state at most this often while the subscription is down.
POLL_SECONDS = 1.0
#: The subscription is trusted while it answered a PING this recently.
TRUST_SECONDS = 1.5
#: Sent this often on the subscription to prove it alive.
PING_SECONDS = 0.5
#: The subscriber calls its tick this often.
TICK_SECONDS = 0.25
#: The subscriber re-reads the state this often anyway.
RESYNC_SECONDS = 10.0


def policy_to_json(policy: Policy) -> str:
    """The stored form of a policy: its JSON fields only (SPEC §5). Settings that
    exist only in the environment (``EVICT``, ``ALLOW_USER_TIMEOUTS``) are not
    stored, so each process keeps applying its own configuration of them."""
    return json.dumps(policy.to_json(), separators=(",", ":"), sort_keys=True)


def limits_text(policy: Policy) -> str:
    """The limits of ``policy`` as ``state.lua`` records and compares them
    (``core.limits_lowered``): ``name=limit`` pairs (``''``: unlimited), ``,``-separated."""
    return ",".join(f"{name}={'' if limit is None else limit}" for name, limit in policy.limits().items())


def policy_from_json(text: str, default: Policy) -> Policy | None:
    """The effective policy: the configured ``default`` with the stored fields
    applied (``None``, with an error logged, when they cannot be read)."""
    try:
        return default.updated(json.loads(text), stored=True)
    except ValueError:  # json.JSONDecodeError and PolicyError are ValueErrors
        logger.error("sessionguard: the stored policy is unreadable; the configured policy applies")
        return None


@dataclass(frozen=True, slots=True)
class State:
    """What every process caches: the stored policy (``None``: the configured
    one), the epoch and the deployment's slot tags, with the revision and
    generation that order them. ``tags`` is ``None`` until the state is read
    (``state.lua`` always gives it a tag key)."""

    rev: int = -1
    gen: str = ""
    epoch: Epoch = field(default_factory=Epoch)
    policy: Policy | None = None
    tags: SlotTags | None = None
    #: when limits were last lowered (ms on the store's clock, 0: never), and the
    #: limits last recorded (:func:`limits_text`), see :func:`~...core.reconcile_due`
    lowered: int = 0
    limits: str = ""

    @classmethod
    def from_fields(cls, fields: dict[str, str], default: Policy) -> State:
        policy = fields.get("policy")
        return cls(
            rev=int(fields.get("rev") or 0), gen=fields.get("gen", ""),
            epoch=Epoch(int(fields.get("at") or 0), fields.get("keep") or None),
            policy=policy_from_json(policy, default) if policy else None,
            tags=_tags(fields.get("tag_key", "")),
            lowered=int(fields.get("lowered") or 0), limits=fields.get("limits", ""),
        )

    @classmethod
    def from_reply(cls, reply: Any, default: Policy) -> State:
        """From ``state.lua``'s reply (the JSON it also publishes); the stored
        policy fields are applied to ``default``."""
        return cls.from_fields(json.loads(reply), default)


def _tags(key: str) -> SlotTags | None:
    """The slot tags of the tag key ``key`` (hex); ``None`` for none or a malformed
    one (the next read through ``state.lua`` then makes the state anew)."""
    try:
        return SlotTags(bytes.fromhex(key))
    except ValueError:
        return None


class StateCache:
    """The process's copy of :class:`State`, shared by its sync and async store and
    kept current by the pub/sub subscriber. While the subscription is down (or not
    yet up) the state is re-read at most once per :data:`POLL_SECONDS`, by one
    caller at a time; before the first read every caller reads it.

    With ``LOCAL_CACHE`` on, it also keeps the :class:`~.local_cache.LocalCache`
    honest: a new state empties it, announced ids leave it, and a subscription
    that goes down or comes (back) up empties it (messages may have been lost)."""

    def __init__(self, default: Policy) -> None:
        self.default = default
        self.state = State()
        #: the process's cache of valid checks (``LOCAL_CACHE``), if on
        self.local: LocalCache | None = None
        #: the uses this process has not written back yet: owed at once when the
        #: policy changes or a session's idle limit may have (:meth:`.Unwritten.owe`)
        self.unwritten: Unwritten | None = None
        self._lock = threading.Lock()
        self._loaded = False
        self._polled = float("-inf")
        self._subscribed = False
        self._heard = float("-inf")
        #: this process recorded the limits it applies in the state (``state.lua``), once
        self.limits_recorded = False

    def policy(self) -> Policy:
        return self.state.policy or self.default

    def read(self, reply: Any) -> State:
        """The state in ``reply`` (see :meth:`State.from_reply`)."""
        return State.from_reply(reply, self.default)

    def apply(self, state: State) -> None:
        """Take ``state`` unless it is older than the one held."""
        with self._lock:
            current = self.state
            taken = state.rev > current.rev or bool(state.gen and state.gen != current.gen)
            if taken:
                self.state = state
            self._loaded = True
        if taken and self.local is not None:
            self.local.clear()
        if taken and self.unwritten is not None and state.policy != current.policy:
            self.unwritten.owe()

    def announced(self, payload: bytes | str) -> None:
        """A message on the bus: a new state, or ``{"drop": [ids]}`` (sessions
        ended or changed, see ``store.lua`` announce). Anything else is ignored."""
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            drop = data.get("drop")
            if drop is None:
                self.apply(State.from_fields(data, self.default))
                return
            ids = [str(i) for i in drop]
            if self.local is not None:
                self.local.drop(ids)
            if self.unwritten is not None:  # changed (a user's own timeouts) or ended
                self.unwritten.owe(ids)
        except (ValueError, TypeError, AttributeError):
            logger.warning("sessionguard: ignored an unreadable message on the state channel")

    def claim_poll(self) -> bool:
        """Whether this caller must re-read the state now."""
        if self._loaded and self.trusted_at(time.monotonic()):
            return False  # the answer on nearly every call, given without the lock
        with self._lock:
            now = time.monotonic()
            if self._loaded and (self.trusted_at(now) or now - self._polled < POLL_SECONDS):
                return False
            self._polled = now
            return True

    def trusted_at(self, now: float) -> bool:
        """Whether the subscription is trusted at ``now`` (monotonic clock): no
        lock, two plain reads (the ``LOCAL_CACHE`` hit path asks)."""
        return self._subscribed and now - self._heard < TRUST_SECONDS

    def heard(self, *, subscribed: bool | None = None) -> None:
        """The subscription answered (``subscribed``: it is now up, or down)."""
        with self._lock:
            self._heard = time.monotonic()
            if subscribed is not None:
                self._subscribed = subscribed
        if subscribed is not None and self.local is not None:
            self.local.clear()

    @property
    def trusted(self) -> bool:
        return self.trusted_at(time.monotonic())

    def forked(self) -> None:
        """In a forked child: no subscription is up here yet (the parent's was),
        so nothing is trusted and the local cache is emptied until the child's
        own subscriber is up; new locks (another thread may have held one at
        the fork). The uses the parent had not written are the parent's to write."""
        self._lock = threading.Lock()
        self._subscribed, self._heard = False, float("-inf")
        if self.local is not None:
            self.local.forked()
        if self.unwritten is not None:
            self.unwritten.forked()


class Subscriber(Background):
    """A daemon thread that keeps a :class:`StateCache` current: it subscribes to
    the bus, re-reads the state once subscribed (changes made while it was down),
    applies every announced state, PINGs to prove the subscription alive, and
    reconnects with backoff. Started at a store's first use, never at import or
    construction; it also checks ``maxmemory-policy`` once.

    :param client: returns the sync client to use (created on first call).
    """

    THREAD_NAME = "sessionguard-pubsub"

    def __init__(self, client: Any, keys: Keys, cache: StateCache) -> None:
        self._client = client
        self._keys = keys
        self._cache = cache
        self._init_thread()
        #: called about every :data:`TICK_SECONDS` while subscribed (the store writes
        #: back the uses that are owed, see :mod:`..write_behind`); must not raise
        self.tick: Callable[[], object] | None = None
        #: re-reads the state into the cache (through ``state.lua``, which makes a lost
        #: state anew); the store sets it; raises a Redis error when it fails
        self.reread: Callable[[], object] | None = None

    def _forked(self) -> None:
        super()._forked()
        self._cache.forked()

    def _run(self) -> None:
        checked, delay = False, 0.1
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                client = self._client()
                if not checked:
                    checked = True
                    warn_if_evicting(client)
                self._listen(client)
            except ERRORS as exc:
                logger.debug("sessionguard: state subscription lost (%s); re-reading by polling",
                             type(exc).__name__)
                if time.monotonic() - began > 10:  # it had been up: retry soon
                    delay = 0.1
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def _listen(self, client: Any) -> None:
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self._keys.bus)
            pinged = synced = ticked = time.monotonic()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=TICK_SECONDS)
                now = time.monotonic()
                if self.tick is not None and now - ticked >= TICK_SECONDS:
                    self.tick()
                    ticked = now
                kind = None if message is None else message["type"]
                if kind == "subscribe" or (kind is not None and now - synced >= RESYNC_SECONDS):
                    if self.reread is not None:
                        self.reread()
                    if kind == "subscribe":  # (re)subscribed: messages sent before may be lost
                        self._cache.heard(subscribed=True)
                    synced = now
                if kind == "message":
                    self._cache.announced(message["data"])
                if kind is not None:
                    self._cache.heard()
                if now - pinged >= PING_SECONDS:
                    pubsub.ping()
                    pinged = now
        finally:
            self._cache.heard(subscribed=False)
            pubsub.close()


def warn_if_evicting(client: Any) -> None:
    """Log a warning when Redis may evict keys (sessions would vanish silently).
    Best effort: where ``CONFIG`` is disabled this only logs that it could not tell."""
    try:
        reply = client.config_get("maxmemory-policy")
    except ERRORS as exc:
        logger.info("sessionguard: could not read Redis maxmemory-policy (%s)", type(exc).__name__)
        return
    found = set(_config_values(reply, b"maxmemory-policy")) or {"unknown"}
    bad = sorted(p for p in found if p != "noeviction")
    if bad:
        logger.warning(
            "sessionguard: Redis maxmemory-policy is %s, not noeviction: under memory pressure "
            "Redis may evict sessions silently", ", ".join(bad),
        )


def _config_values(reply: Any, name: bytes) -> list[str]:
    """``CONFIG GET`` answers a dict, or (Cluster) a dict per node."""
    if not isinstance(reply, dict):
        return []
    values = []
    for key, value in reply.items():
        if isinstance(value, dict):
            values += _config_values(value, name)
        elif key in (name, name.decode()):
            values.append(value.decode() if isinstance(value, bytes) else str(value))
    return values
