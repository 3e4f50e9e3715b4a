"""Hijack signals (SPEC 9.7, ``ON_ANOMALY``): a session whose client suddenly
looks like another device.

The rule, written once here: a request on a valid session is an *anomaly* when

- its User-Agent names another browser family or another operating system
  than the one at login (``client_changed``), or
- its User-Agent differs from the one at login (any difference, an update
  included) and its client address is outside the login address's /16 (IPv4)
  or /48 (IPv6) network (``network_changed``).

Both need a User-Agent that differs from the login's as a string, so the
common request pays one string comparison: the record the store's check
returns already holds the login's address and User-Agent (no store round
trip), and the shells compare before calling :meth:`Watch.judge`. Parses of
User-Agents and networks are cached per process.

An anomaly is recorded (an ``anomaly`` audit event) once per session and
distinct client (browser family and system) or network, per process:
:meth:`Watch.first` remembers what it reported for the last
:data:`REMEMBERED` sessions, so a session used on and on from a changed
client adds one event, not one a request. With several processes, each may
record the same change once.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from . import audit
from .core import Record
from .incoming import IPNetwork, client_ip
from .platform import client_family, clip, device_label

#: Sessions whose reported anomalies a process remembers (the oldest is forgotten first).
REMEMBERED = 10_000
#: Distinct changes recorded per session and process; beyond, the session's
#: further changes are not recorded (it stays flagged under ``ON_ANOMALY=flag``).
PER_SESSION = 8
#: The audit ``actor`` of anomalies and of the revocations they cause.
SYSTEM = "system"
#: Client addresses resolved (peer and ``X-Forwarded-For`` → address) kept per process.
ADDRESSES = 4096

#: What the shells give :meth:`Watch.judge` to read a request's client address
#: only when it is needed: a function returning its peer and ``X-Forwarded-For``.
Peer = Callable[[], tuple[str | None, str | None]]


class Anomaly(NamedTuple):
    """What changed: ``reason`` is ``"client_changed"`` (another browser family
    or operating system) or ``"network_changed"`` (another network, and another
    User-Agent); ``change`` what it changed to, the browser family and system
    (``"Firefox on Linux"``) or the network (``"198.51.0.0/16"``); ``device``
    and ``ip`` are the request's, ``login_device`` and ``login_ip`` the
    session's at login. ``ctx.anomaly`` under ``ON_ANOMALY=flag``. A named tuple,
    as :class:`~.core.Record` is: every request of a changed client builds one."""

    reason: str
    change: str
    session_id: str
    device: str
    ip: str
    login_device: str
    login_ip: str

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON object (also the audit event's ``detail``)."""
        return {"reason": self.reason, "change": self.change, "device": self.device, "ip": self.ip,
                "login_device": self.login_device, "login_ip": self.login_ip}


class Watch:
    """Judges requests against their session's login client, and remembers what
    this process has recorded (thread-safe). ``trusted``: ``TRUSTED_PROXIES``."""

    def __init__(self, trusted: Sequence[IPNetwork] = (), *, remembered: int = REMEMBERED) -> None:
        self._trusted = tuple(trusted)
        self._remembered = remembered
        self._reported: OrderedDict[str, set[tuple[str, str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._addresses: dict[tuple[str | None, str | None], str] = {}

    def judge(self, record: Record, user_agent: str, peer: Peer) -> Anomaly | None:
        """The anomaly of a request with ``user_agent`` (and the client address
        that ``peer()`` gives, read only when needed) on the valid session
        ``record``, or ``None``."""
        user_agent = clip(user_agent)
        if user_agent == record.user_agent:
            return None
        family, system = client_family(user_agent)
        address = self._address(peer())
        if (family, system) != client_family(record.user_agent):
            reason, change = "client_changed", f"{family or 'unknown'} on {system or 'unknown'}"
        else:
            login_net, net = network(record.ip), network(address)
            if login_net is None or net is None or net == login_net:
                return None
            reason, change = "network_changed", net
        return Anomaly(reason, change, record.id, device_label(user_agent), address, record.device,
                       record.ip)

    def _address(self, raw: tuple[str | None, str | None]) -> str:
        """The client address of a peer and ``X-Forwarded-For`` (cached: parsing
        addresses costs microseconds, and a session comes from few)."""
        address = self._addresses.get(raw)
        if address is None:
            if len(self._addresses) >= ADDRESSES:
                self._addresses.clear()
            address = self._addresses[raw] = client_ip(raw[0], raw[1], self._trusted)
        return address

    def first(self, anomaly: Anomaly) -> bool:
        """Whether this process records ``anomaly``: the first time it sees this
        change of this session (its client, or its network), up to
        :data:`PER_SESSION` changes a session."""
        change = (anomaly.reason, anomaly.change)
        with self._lock:
            seen = self._reported.get(anomaly.session_id)
            if seen is None:
                seen = self._reported[anomaly.session_id] = set()
                if len(self._reported) > self._remembered:
                    self._reported.popitem(last=False)
            else:
                self._reported.move_to_end(anomaly.session_id)
            if change in seen or len(seen) >= PER_SESSION:
                return False
            seen.add(change)
            return True


def event(anomaly: Anomaly, record: Record, at: int) -> audit.Event:
    """The ``anomaly`` audit event of ``record``'s session."""
    return audit.about(record, "anomaly", SYSTEM, at, anomaly.reason, audit.compact_json(anomaly.to_json()))


@functools.lru_cache(maxsize=4096)
def network(ip: str) -> str | None:
    """The /16 (IPv4) or /48 (IPv6) network of an address, as text; ``None``
    for what is not an address. An IPv4-mapped IPv6 address is its IPv4 one."""
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, 48), strict=False))
        address = address.ipv4_mapped
    return str(ipaddress.IPv4Network((address, 16), strict=False))
