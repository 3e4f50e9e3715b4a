"""What every operation of the Redis store builds on (:class:`StateCalls`, the
base of :class:`~.operations.Operations`): the state every process caches
(``state.lua``: its reads, the stored policy, the epoch of a sign-out of
everyone, the tag key of the slot tags; :mod:`.state`), the clock (injected, or
the server's, estimated without a round trip: :mod:`.server_clock`), and the
context argument with which every session function is called (:meth:`~StateCalls.call`).
Like the rest of :mod:`.operations`, these are I/O-free generators.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import StoreUnavailable
from ...policy import Policy
from ...tokens import is_session_id
from ..write_behind import Unwritten
from .calls import Arg, Op, Rerun, Script, one
from .keys import Keys
from .local_cache import LocalCache
from .reads import Reads
from .records import decode_record
from .scripts import FUNCTIONS, Function, pack_context, pack_platforms
from .server_clock import ServerClock
from .state import State, StateCache, limits_text, policy_to_json

_STATE = FUNCTIONS["state"]


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class StateCalls:
    """The state, the clock and the context of the operations of one store
    (the parameters: :class:`~.operations.Operations`)."""

    def __init__(self, keys: Keys, cache: StateCache, *, clock: Callable[[], int] | None, cluster: bool,
                 local: LocalCache | None = None) -> None:
        self.keys = keys
        self.cache = cache
        self.clock = clock
        self.cluster = cluster
        self.local = local
        cache.local = local
        self._contexts: tuple[State, str] | None = None
        #: uses seen here, not written back yet (core.touch_due, core.flush_by)
        self.unwritten = cache.unwritten = Unwritten()
        #: the request path's read of each session, and the record it last decoded (:mod:`.checks`)
        self.reads = Reads(keys)
        #: the server's clock as this process estimates it (:mod:`.server_clock`)
        self.server_clock = ServerClock(clock)
        #: lowered limits: when (``State.lowered``) and, per user, when the user's sessions
        #: were last seen reconciled with them (``core.reconcile_due``, :mod:`.checks`)
        self._marks: tuple[int, dict[str, int]] = (0, {})

    # -- state and time --------------------------------------------------------

    def state(self) -> Op[State]:
        """The cached state, re-read first when the cache says so."""
        if self.cache.claim_poll():
            yield from self.reread_state()
        return self.cache.state

    def reread_state(self) -> Op[None]:
        """Read the state into the cache (``state.lua``: a lost one is made anew,
        signing everyone out, rather than read as "never signed out")."""
        reply = yield self._state_call("read")
        self.cache.apply(self.cache.read(reply))
        if not self.cache.limits_recorded or not self.cache.state.limits:
            # once a process (and whenever the state has none, as after its loss): the limits
            # it applies (its environment's, or the stored policy's) recorded, so that lowering
            # them by a restart applies to existing sessions
            limits = limits_text(self.cache.policy())
            if self.cache.state.limits != limits:
                reply = yield self._state_call("limits", limits=limits)
                self.cache.apply(self.cache.read(reply))
            self.cache.limits_recorded = True

    def _state_call(self, change: str, value: str = "", created: str = "", limits: str = "") -> Script:
        # a tag key for a state that has none: random, only ever stored once (state.lua)
        return _STATE.call((self.keys.state,), channel=self.keys.bus, change=change, now=self.now_arg(),
                           tag_key=secrets.token_hex(32), value=value, created=created, limits=limits)

    def slot_tag(self, user_id: str) -> Op[str]:
        """The slot tag of ``user_id`` under the deployment's tag key, which comes
        with the state (read once per process, and then kept by the subscriber)."""
        state = yield from self.state()
        if state.tags is None:  # never read yet in a way that gave a key
            yield from self.reread_state()
            state = self.cache.state
        if state.tags is None:
            raise StoreUnavailable("the store gave no readable tag key")
        return state.tags(user_id)

    def now(self) -> Op[int]:
        """The injected clock, else the Redis server's ``TIME`` (ms)."""
        if self.clock is not None:
            return self.clock()
        seconds, micros = yield from one("TIME", rerun=Rerun.ALWAYS)
        return int(seconds) * 1000 + int(micros) // 1000

    def estimated_now(self) -> int:
        """The store's clock as this process estimates it, without a round trip."""
        return self.server_clock.now()

    def policy(self) -> Op[Policy]:
        """The configured policy with the stored override's fields applied."""
        yield from self.state()
        return self.cache.policy()

    def set_policy(self, policy: Policy) -> Op[None]:
        """Store the JSON fields of ``policy`` for every process (``state.lua``) and
        apply them here at once (environment-only settings are not stored)."""
        # the limits as every process applies them (the stored fields over its configuration)
        limits = limits_text(self.cache.default.updated(policy.to_json()))
        reply = yield self._state_call("policy", policy_to_json(policy), limits=limits)
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def end_all(self, keep: str | None) -> Op[None]:
        """Move the epoch (``state.lua``): every session ends but ``keep``, if it
        still exists (its login time tells the function whether the last sign-out
        of everyone ended it, ``core.epoch_after``)."""
        created = ""
        if keep is not None and is_session_id(keep):
            value = yield from one("GET", self.keys.session(keep), rerun=Rerun.ALWAYS)
            created = "" if value is None else str(decode_record(keep, value).created)
        kept = keep if keep is not None and created else ""  # gone: ended (or never was)
        reply = yield self._state_call("epoch", kept, created)
        self._forget_all()
        self.cache.apply(self.cache.read(reply))

    def _forget_all(self) -> None:
        if self.local is not None:
            self.local.clear()

    def context(self, state: State) -> str:
        """The context argument of every session function under ``state``
        (:data:`.scripts.CONTEXT`): the same string object for as long as the
        state is the same one."""
        cached = self._contexts
        if cached is not None and cached[0] is state:
            return cached[1]
        policy = state.policy or self.cache.default
        fields = {
            "epoch_at": str(state.epoch.at), "epoch_keep": state.epoch.keep or "",
            "remember_me_period": _opt(policy.remember_me_period),
            "allow_user_timeouts": "1" if policy.allow_user_timeouts else "0",
            "on_limit": policy.on_limit, "evict": policy.evict,
            "session_ceiling": str(policy.session_ceiling),
            "max_sessions_total": _opt(policy.max_sessions_total),
            "enforce": "1" if policy.enforce else "0",
            "listed": "0" if self.cluster else "1", "prefix": self.keys.prefix,
        }
        fields["platforms"] = pack_platforms({
            name: (_opt(p.idle_timeout), _opt(p.absolute_timeout), _opt(p.session_lifetime),
                   _opt(p.max_sessions))
            for name, p in policy.platforms.items()
        })
        self._contexts = (state, pack_context(fields))
        return self._contexts[1]

    def call(self, function: Function, keys: tuple[str, ...], *rest: Arg, **args: Arg) -> Op[Any]:
        """Call a session function with the context it needs: the clock, and the
        epoch and policy of the cached state (re-read first when due)."""
        state = yield from self.state()
        return (yield function.call(keys, *rest, context=self.context(state), now=self.now_arg(), **args))

    def forget(self, ids: Sequence[str]) -> None:
        """Drop sessions from this process's cache at once (the functions announce
        them to the other processes)."""
        if self.local is not None and ids:
            self.local.drop(ids)

    def now_arg(self) -> str:
        """The ``now`` argument of a function: the injected clock, or ``''`` (Redis's ``TIME``)."""
        return "" if self.clock is None else str(self.clock())
