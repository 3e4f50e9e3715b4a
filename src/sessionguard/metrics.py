"""Prometheus metrics (SPEC 9.7, ``METRICS=on``; the ``metrics`` extra).

Every metric has a ``platform`` label, endings also ``reason``:

- ``sessionguard_sessions_active`` (gauge): the sessions active now in the
  whole deployment, from the store (:meth:`~.stores.protocol.Store.active_counts`:
  exact for ``memory://``; with Redis the deployment's last count, refreshed in
  the background, see :mod:`.stores.redis.census`). Every process reports the
  same figure: aggregate it with ``max``, not ``sum``;
- ``sessionguard_logins_total``, ``sessionguard_sessions_ended_total``,
  ``sessionguard_login_rejections_total``: counted from the audit events this
  process records (endings by a sign-out of everyone, one event for all, as
  each is noticed), so, as Prometheus counters are, per process: ``sum`` them;
- ``sessionguard_store_errors_total``: requests, logins and admin calls of this
  process that met an unavailable store;
- ``sessionguard_would_end_total`` (``ENFORCE=report``, with ``reason``): the
  ``would_end`` events this process recorded;
- ``sessionguard_check_seconds`` (histogram): how long the request path's store
  check took (a ``LOCAL_CACHE`` hit is not a store check: it is counted by
  ``sessionguard_local_cache_hits_total`` instead).

Where the platform is not known (a check that found no session, a store error
before any answer) the label is ``unknown``.

The counts are plain integers under a lock, turned into metric families only
when scraped; ``prometheus_client`` is imported when metrics are on, so that
installs without the extra never load it. One collector per guard: the guard
registers it in ``prometheus_client``'s default registry when built and takes
it out when closed; a guard built later with metrics on takes the place of an
earlier one's (the registry would refuse two collectors of the same names), so
the default registry shows the newest guard's. Each guard's own
``<ADMIN_PATH>/metrics`` always shows its own.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .audit import Event
from .core import ENDED_REASONS
from .errors import ConfigurationError, StoreUnavailable
from .platform import PLATFORMS
from .stores.protocol import ActiveCounts, AsyncStore, Check, Store

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

logger = logging.getLogger("sessionguard")

VARIABLE = "SESSIONGUARD_METRICS"
#: The platform label where the platform is not known.
UNKNOWN = "unknown"
#: The reasons a session ends with (``invalid`` is a forged token, not an ending).
ENDINGS = tuple(sorted(ENDED_REASONS - {"invalid"}))
#: What ``ENFORCE=report`` reports (``would_end`` events' reasons).
WOULD_END_REASONS = ("idle_timeout", "absolute_timeout", "evicted", "rejected")
#: Upper bounds (seconds) of the check histogram's buckets: a Redis round trip on
#: loopback takes about 0.1 ms, across a data centre about 1 ms.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

CheckFunction = Callable[..., Check]
AsyncCheckFunction = Callable[..., Awaitable[Check]]


class Metrics:
    """One guard's metrics: counts kept by the guard's code paths, and the
    collector ``prometheus_client`` asks at scrape time (:meth:`collect`).

    :param store: the guard's sync store (for the active sessions at scrape time
        of the default registry; held weakly).
    """

    def __init__(self, store: Store) -> None:
        self._store = weakref.ref(store)
        self._lock = threading.Lock()
        self.logins = dict.fromkeys(PLATFORMS, 0)
        self.rejections = dict.fromkeys(PLATFORMS, 0)
        self.ended = {(p, r): 0 for p in PLATFORMS for r in ENDINGS}
        self.store_errors = dict.fromkeys((*PLATFORMS, UNKNOWN), 0)
        self.cache_hits = dict.fromkeys(PLATFORMS, 0)
        self.would_end = {(p, r): 0 for p in PLATFORMS for r in WOULD_END_REASONS}
        #: per platform: the count of checks in each bucket (not cumulative; the
        #: last one is +Inf), and their total seconds
        self.checks: dict[str, list[int]] = {p: [0] * (len(BUCKETS) + 1) for p in PLATFORMS}
        self.check_seconds = dict.fromkeys(PLATFORMS, 0.0)

    @classmethod
    def start(cls, store: Store) -> Metrics:
        """The metrics of a guard on ``store``, registered in the default registry.

        :raises ConfigurationError: naming ``METRICS`` when ``prometheus_client``
            is not installed.
        """
        try:
            import prometheus_client
        except ImportError:
            raise ConfigurationError([
                f"{VARIABLE}=on needs prometheus_client, which is not installed"
                " (pip install 'sessionguard-middleware[metrics]')"
            ]) from None
        metrics = cls(store)
        metrics.register(prometheus_client.REGISTRY)
        return metrics

    # -- counting (called by the guard's code paths) ------------------------------

    def events(self, events: Sequence[Event]) -> None:
        """Count the logins, refusals and endings among audit events."""
        with self._lock:
            for event in events:
                platform = event.platform
                if platform is None:
                    continue  # a sign-out of everyone: its endings are counted as noticed
                if event.type == "login":
                    self.logins[platform] = self.logins.get(platform, 0) + 1
                elif event.type == "rejected":
                    self.rejections[platform] = self.rejections.get(platform, 0) + 1
                elif event.type == "would_end":  # ENFORCE=report: not an ending
                    key = (platform, event.reason or "")
                    self.would_end[key] = self.would_end.get(key, 0) + 1
                elif event.reason in ENDED_REASONS and event.type != "anomaly":
                    key = (platform, event.reason)
                    self.ended[key] = self.ended.get(key, 0) + 1

    def noticed_ending(self, platform: str, reason: str) -> None:
        """Count an ending that has no event of its own (a session of a sign-out
        of everyone, noticed when it is presented again)."""
        with self._lock:
            self.ended[(platform, reason)] = self.ended.get((platform, reason), 0) + 1

    def store_error(self, platform: str | None = None) -> None:
        """Count a store call that failed (``platform``: the session's, when known)."""
        key = platform or UNKNOWN
        with self._lock:
            self.store_errors[key] = self.store_errors.get(key, 0) + 1

    def _checked(self, check: Check, seconds: float) -> None:
        record = check.record or check.ended
        platform = UNKNOWN if record is None else record.platform
        bucket = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            counts = self.checks.get(platform)
            if counts is None:
                counts = self.checks[platform] = [0] * (len(BUCKETS) + 1)
            counts[bucket] += 1
            self.check_seconds[platform] = self.check_seconds.get(platform, 0.0) + seconds

    def _hit(self, check: Check) -> None:
        platform = UNKNOWN if check.record is None else check.record.platform
        with self._lock:
            self.cache_hits[platform] = self.cache_hits.get(platform, 0) + 1

    def timed(self, store: Store) -> CheckFunction:
        """``store.check``, counting ``LOCAL_CACHE`` hits and timing the rest."""
        check, cached, clock = store.check, store.cached_check, time.perf_counter

        def timed_check(session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
            hit = cached(session_id, passive=passive, unbound_token=unbound_token)
            if hit is not None:
                self._hit(hit)
                return hit
            started = clock()
            try:
                answer = check(session_id, passive=passive, unbound_token=unbound_token)
            except StoreUnavailable:
                self.store_error()
                raise
            self._checked(answer, clock() - started)
            return answer

        return timed_check

    def atimed(self, store: AsyncStore) -> AsyncCheckFunction:
        """:meth:`timed` for the async store."""
        check, cached, clock = store.check, store.cached_check, time.perf_counter

        async def timed_check(session_id: str, *, passive: bool, unbound_token: bool = False) -> Check:
            hit = cached(session_id, passive=passive, unbound_token=unbound_token)
            if hit is not None:
                self._hit(hit)
                return hit
            started = clock()
            try:
                answer = await check(session_id, passive=passive, unbound_token=unbound_token)
            except StoreUnavailable:
                self.store_error()
                raise
            self._checked(answer, clock() - started)
            return answer

        return timed_check

    # -- exposition -----------------------------------------------------------------

    def register(self, registry: CollectorRegistry) -> None:
        """Register in ``registry`` (the default one), in place of another guard's."""
        global _registered
        with _registry_lock:
            if _registered is not None:
                previous = _registered()
                if previous is not None:
                    registry.unregister(previous)
            registry.register(self)
            _registered = weakref.ref(self)

    def unregister(self) -> None:
        """Leave the default registry (when this guard's metrics are the ones there)."""
        global _registered
        import prometheus_client

        with _registry_lock:
            if _registered is not None and _registered() is self:
                prometheus_client.REGISTRY.unregister(self)
                _registered = None

    def describe(self) -> list[Metric]:
        """The metric families without samples (what the registry checks names with;
        without it, registering would call :meth:`collect`, a store call)."""
        return self.families(None, samples=False)

    def collect(self) -> list[Metric]:
        """The metric families, read at scrape time (the default registry's)."""
        store = self._store()
        active = None
        if store is not None:
            try:
                active = store.active_counts()
            except StoreUnavailable:
                self.store_error()
                logger.warning("sessionguard: active sessions not counted in this scrape (store unavailable)")
        return self.families(active)

    def render(self, active: ActiveCounts | None) -> tuple[str, bytes]:
        """The content type and text of a scrape, with ``active`` as the active sessions."""
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        return CONTENT_TYPE_LATEST, generate_latest(_Snapshot(self.families(active)))

    def families(self, active: ActiveCounts | None, *, samples: bool = True) -> list[Metric]:
        """The metric families of the current counts (``active``: the sessions
        active now, omitted when ``None``)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        platform = ["platform"]
        gauge = GaugeMetricFamily("sessionguard_sessions_active",
                                  "Sessions active now in the whole deployment (from the store).",
                                  labels=platform)
        logins = CounterMetricFamily("sessionguard_logins_total", "Sessions created.", labels=platform)
        ended = CounterMetricFamily("sessionguard_sessions_ended_total", "Sessions ended, by reason.",
                                    labels=["platform", "reason"])
        rejected = CounterMetricFamily("sessionguard_login_rejections_total",
                                       "Logins refused at the session limit (ON_LIMIT=reject).",
                                       labels=platform)
        errors = CounterMetricFamily("sessionguard_store_errors_total",
                                     "Requests and actions that met an unavailable store.", labels=platform)
        hits = CounterMetricFamily("sessionguard_local_cache_hits_total",
                                   "Sessions validated from LOCAL_CACHE, without a store round trip.",
                                   labels=platform)
        checks = HistogramMetricFamily("sessionguard_check_seconds",
                                       "Duration of the request path's store check.", labels=platform)
        would = CounterMetricFamily("sessionguard_would_end_total",
                                    "ENFORCE=report: sessions a timeout or limit would have ended, or logins"
                                    " it would have refused (reason rejected), had it applied.",
                                    labels=["platform", "reason"])
        families: list[Metric] = [gauge, logins, ended, rejected, errors, hits, checks, would]
        if not samples:
            return families
        if active is not None:
            for name, count in active.counts.items():
                gauge.add_metric([name], count)
        with self._lock:
            for counter, counts in ((logins, self.logins), (rejected, self.rejections),
                                    (errors, self.store_errors), (hits, self.cache_hits)):
                for name, count in counts.items():
                    counter.add_metric([name], count)
            for (name, reason), count in self.ended.items():
                ended.add_metric([name, reason], count)
            for (name, reason), count in self.would_end.items():
                would.add_metric([name, reason], count)
            for name, buckets in self.checks.items():
                cumulative, running = [], 0
                for bound, count in zip((*map(repr, BUCKETS), "+Inf"), buckets, strict=True):
                    running += count
                    cumulative.append((bound, running))
                checks.add_metric([name], cumulative, sum_value=self.check_seconds.get(name, 0.0))
        return families


class _Snapshot:
    """Families already built, as ``generate_latest`` reads a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


_registry_lock = threading.Lock()
#: the metrics in the default registry (at most one guard's at a time)
_registered: weakref.ref[Metrics] | None = None
