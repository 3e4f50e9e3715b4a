"""The hijack signals' cost per authenticated request (SPEC 9.7, ``ON_ANOMALY``).

Every authenticated request reads its ``User-Agent`` and compares it with the
one the session's record holds (the store's check returns it: no round trip).
Measured in the same in-process run as the plain authenticated request
(:mod:`inprocess`):

- **same client**: what every authenticated request pays, the header read and
  the comparison, timed alone (the shells' very statements, a million times);
  it is inside the ``auth`` figures of the other tables;
- **browser updated**: the session's browser sends a newer version (another
  string, same family and system, same /16): both agents' parses come from the
  process's cache and the two networks are compared; paired one request at a
  time against ``auth`` on the same app (the ``watch-update`` series);
- **another browser**: a request from another browser on the session (an
  anomaly under the default ``ON_ANOMALY=log``): its event is recorded once
  (the warm-up's request), so the steady state is the judgement and the look-up
  that finds it already recorded (the ``watch-changed`` series).
"""

from __future__ import annotations

import timeit
from typing import Any

from common import USER_AGENT, Table, fmt, median

#: The watched scenarios and the User-Agent each sends (the login's is ``USER_AGENT``).
WATCHED = {
    "watch-update": USER_AGENT.replace("Edg/131.0.2903.112", "Edg/132.0.2957.127"),
    "watch-changed": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
}
_TITLES = {"watch-update": "browser updated µs (CPU)", "watch-changed": "another browser µs (CPU)"}


def same_client_cost(kind: str, n: int = 1_000_000) -> float:
    """µs per request of the shell's own statements on a request whose
    User-Agent is the login's (the best of three runs of ``n``)."""
    from inprocess import wsgi_environ

    stored = "".join(USER_AGENT)  # an equal string, not the same object: as a decoded record's
    if kind == "asgi":  # the shell keeps the header's bytes from its one pass over the headers
        agent = USER_AGENT.encode("latin-1")
        statement, names = 'agent.decode("latin-1") != stored', {"agent": agent}
    else:
        environ = wsgi_environ("/whoami", "sg_session=x")
        statement, names = 'environ.get("HTTP_USER_AGENT", "") != stored', {"environ": environ}
    spent = min(timeit.repeat(statement, globals={**names, "stored": stored}, number=n, repeat=3))
    empty = min(timeit.repeat("pass", number=n, repeat=3))
    return (spent - empty) / n * 1e6


def hijack_table(results: dict[str, Any]) -> Table:
    """One row per kind and sessionguard variant. ``results``: kind → :class:`inprocess.KindResult`."""
    table = Table("Hijack signals: added µs per authenticated request (ON_ANOMALY=log)",
                  ["variant", "same client µs", *_TITLES.values()])
    for kind, result in results.items():
        same = fmt(same_client_cost(kind), 3, sign=True)
        for r in result.results.values():
            if r.variant.role != "sessionguard":
                continue
            cells = [f"{kind.upper()} {r.variant.title}", same]
            for watched in _TITLES:
                s = r.series[watched]
                cells.append(f"{fmt(median(s.wall), 2, sign=True)} ({fmt(median(s.cpu), 2, sign=True)})"
                             if s.wall else "–")
            table.add(*cells)
    table.notes.append("“same client”: the `User-Agent` read and one string comparison, timed alone "
                       "(every authenticated request pays it; it is inside the `auth` figures above).")
    table.notes.append("“browser updated” and “another browser”: over the plain authenticated request on "
                       "the same app, paired one request at a time (median of the pair differences, per "
                       "round, then the median of rounds); no extra Redis round trip in either "
                       "(the anomaly's one audit event is recorded in the warm-up).")
    return table
