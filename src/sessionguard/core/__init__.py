"""The decision core: everything that decides lives here; no I/O, no clock.

Rules (SPEC §4), each written once, and the module that holds it:

- ``values``: the :class:`Record` of a session, the :class:`Outcome` of judging
  it, the units of time;
- ``timeouts``: the **absolute timeout** (:func:`lifetime`), the **idle
  timeout** (:func:`idle_limit`: the remember-me period, the user's own or the
  platform's), **which timeout** a session past both ended by
  (:func:`timed_out`), **judging** a record (:func:`judge`), the deadline
  shown (:func:`deadline`), **report-only** timeouts (:func:`would_end`), the
  **sweep's** order (:func:`sweep_deadline`) and a policy that
  :func:`shortens` a timeout;
- ``signout``: the **sign-out of everyone** and its :class:`Epoch` (a moment on
  the store's clock; :func:`epoch_after`);
- ``touches``: the **touch** rule: last-seen written back once per
  :func:`touch_interval` (:func:`touch_due`), a use in between written by
  :func:`flush_by` at the latest, so idle expiry stays exact to the second;
- ``tombstones``: **retention** (a record kept a day past its deadline:
  :func:`retention`), the tombstone an ended session leaves for a day
  (:func:`ended_at`, :func:`still_listed`);
- ``cookies``: the session cookie's ``Max-Age`` (:func:`cookie_max_age`,
  :func:`cookie_refresh_due`);
- ``limits``: **admission** of a login (:func:`admission`,
  :func:`admission_needs_count`, the ``EVICT`` :func:`eviction_order`,
  ``MAX_SESSIONS_TOTAL``, ``SESSION_CEILING``), **replacing** the presented
  session (:func:`counted`), **lowered limits** (:func:`limits_lowered`,
  :func:`reconcile_due`, :func:`surplus`);
- ``binding``: **device binding** (DBSC): :func:`refuses_token`,
  :func:`redeemable`.

**Report-only** (``ENFORCE=report``: ``Policy.enforce`` is false) runs through
them all: timeouts and limits are judged as usual but not applied; the store
still keeps a record for a day past the deadline its policy gives it.

The memory store calls these functions; each Redis Lua function mirrors them
and names them in its header (``core.judge``: the names below are the package's
own). The contract tests run the same scenarios on both, so the two cannot
drift.
"""

from __future__ import annotations

from .binding import CHALLENGE_MS as CHALLENGE_MS
from .binding import redeemable as redeemable
from .binding import refuses_token as refuses_token
from .binding import still_used as still_used
from .cookies import MAX_COOKIE_AGE as MAX_COOKIE_AGE
from .cookies import cookie_max_age as cookie_max_age
from .cookies import cookie_refresh_due as cookie_refresh_due
from .limits import LIMITS_GRACE_MS as LIMITS_GRACE_MS
from .limits import Admission as Admission
from .limits import admission as admission
from .limits import admission_needs_count as admission_needs_count
from .limits import counted as counted
from .limits import eviction_order as eviction_order
from .limits import limits_lowered as limits_lowered
from .limits import reconcile_due as reconcile_due
from .limits import surplus as surplus
from .signout import Epoch as Epoch
from .signout import epoch_after as epoch_after
from .timeouts import deadline as deadline
from .timeouts import idle_limit as idle_limit
from .timeouts import judge as judge
from .timeouts import lifetime as lifetime
from .timeouts import shortens as shortens
from .timeouts import sweep_deadline as sweep_deadline
from .timeouts import timed_out as timed_out
from .timeouts import would_end as would_end
from .tombstones import TOMBSTONE_MS as TOMBSTONE_MS
from .tombstones import ended_at as ended_at
from .tombstones import retention as retention
from .tombstones import still_listed as still_listed
from .touches import FLUSH_LEAD_MS as FLUSH_LEAD_MS
from .touches import TOUCH_MAX_MS as TOUCH_MAX_MS
from .touches import TOUCH_MIN_MS as TOUCH_MIN_MS
from .touches import flush_bounds as flush_bounds
from .touches import flush_by as flush_by
from .touches import touch_due as touch_due
from .touches import touch_interval as touch_interval
from .touches import touched as touched
from .values import DAY as DAY
from .values import ENDED_REASONS as ENDED_REASONS
from .values import NEVER_IDLE as NEVER_IDLE
from .values import SECOND as SECOND
from .values import Outcome as Outcome
from .values import Record as Record
