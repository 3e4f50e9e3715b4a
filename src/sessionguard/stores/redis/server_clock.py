"""The Redis server's clock as this process estimates it, without a round trip.

A check judges its record in Python (:meth:`.operations.Operations.check`) at
this estimate, so app servers whose own clocks differ agree: each estimates
the same clock. The offset from the local wall clock is measured with
``TIME``: by the subscriber's tick once per :data:`SYNC_SECONDS`, and by a
check when the last measurement is older than :data:`CLOCK_SECONDS` (the first
check, or the subscriber is down). How close it is: ``docs/redis.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .calls import Op, Rerun, one

#: The subscriber's tick measures the clock this often (seconds) ...
SYNC_SECONDS = 1.0
#: ... and a check does when it has not been for this long (the subscriber is down).
CLOCK_SECONDS = 10.0


class ServerClock:
    """The store's clock: the injected test ``clock`` if any, else the server's
    as estimated from the last :meth:`measure`."""

    def __init__(self, clock: Callable[[], int] | None) -> None:
        self.clock = clock
        #: the server's clock minus the local wall clock (ns)
        self.offset_ns = 0
        self._measured = float("-inf")  # when (monotonic seconds)

    def now(self) -> int:
        """The estimate (ms)."""
        if self.clock is not None:
            return self.clock()
        return (time.time_ns() + self.offset_ns) // 1_000_000

    @property
    def offset(self) -> int:
        """The server's clock minus the local wall clock (ms)."""
        return self.offset_ns // 1_000_000

    def stale(self) -> bool:
        """Whether a check must measure first (:data:`CLOCK_SECONDS`)."""
        return self.clock is None and time.monotonic() - self._measured > CLOCK_SECONDS

    def measure(self, at: float | None = None) -> Op[None]:
        """One ``TIME``: the offset is the server's moment less the midpoint of
        the moments it was asked and answered, so it is off by at most half the
        round trip. ``at``: the tick's monotonic time; it measures at most once per
        :data:`SYNC_SECONDS`."""
        if self.clock is not None or (at is not None and at - self._measured < SYNC_SECONDS):
            return
        sent = time.time_ns()
        # sent again if lost: the midpoint's bound then widens, still half of the whole wait
        seconds, micros = yield from one("TIME", rerun=Rerun.ALWAYS)
        received = time.time_ns()
        server_ns = (int(seconds) * 1_000_000 + int(micros)) * 1000
        self.offset_ns = server_ns - (sent + received) // 2
        self._measured = time.monotonic()
