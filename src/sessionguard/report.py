"""Report-only mode (SPEC 9.7, ``ENFORCE=report``): the ``would_end`` audit
events of what the timeouts and limits would have done, had they applied.

The rules are :mod:`.core`'s (:func:`~.core.judge` applies no timeout while
``Policy.enforce`` is false, :func:`~.core.would_end` names the one that would
have ended a session, :func:`~.core.admission` reports the evictions or the
refusal a limit would have made); this module turns them into events:

- a timeout: ``would_end`` with ``reason`` ``idle_timeout`` or
  ``absolute_timeout``, dated when the session would have ended, once per
  session and moment in each process (:class:`Reports`): an idle session is
  reported when a request finds it past its idle limit, again only after a new
  idle gap; a session past its absolute timeout once;
- a limit at a login: ``would_end`` with ``reason`` ``evicted`` for each
  session it would have evicted, or ``rejected`` (about the new session) when
  it would have refused the login.

Revocations, sign-outs and sign-out of everyone are never reported: they apply.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from . import audit
from .core import Record

#: Sessions whose last reported moment a process remembers (the oldest is forgotten first).
REMEMBERED = 10_000
#: The audit ``type`` of a report.
WOULD_END = "would_end"


class Reports:
    """The moment last reported for each session, in this process (thread-safe)."""

    def __init__(self, *, remembered: int = REMEMBERED) -> None:
        self._remembered = remembered
        self._moments: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, session_id: str, moment: int) -> bool:
        """Whether ``moment`` of ``session_id`` is reported for the first time here."""
        with self._lock:
            if self._moments.get(session_id) == moment:
                self._moments.move_to_end(session_id)
                return False
            self._moments[session_id] = moment
            self._moments.move_to_end(session_id)
            if len(self._moments) > self._remembered:
                self._moments.popitem(last=False)
            return True


def would_end(record: Record, reason: str, at: int) -> audit.Event:
    """The report that ``record``'s session would have ended with ``reason`` at ``at``."""
    return audit.about(record, WOULD_END, "system", at, reason)
