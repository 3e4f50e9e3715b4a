"""The session policy in force: timeouts and limits per platform.

The environment gives the defaults (:meth:`Policy.from_config`); an admin may
store an override through the API, which every app server sharing the store
then applies at once. Only the JSON form is stored (:meth:`Policy.to_json`:
timeouts, limits, remember-me period, ``on_limit``), and every process applies
it to its own defaults (``default.updated(stored)``), so the settings that
exist only in the environment (``EVICT``, ``ALLOW_USER_TIMEOUTS``, ``SESSION_CEILING``,
``ENFORCE``) always come
from the process's configuration. This module converts between the policy and
its JSON form (SPEC §5) and validates that form field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .config import format_duration, parse_duration

if TYPE_CHECKING:
    from .config import Config

ON_LIMIT = ("evict_oldest", "reject")
#: The name of ``MAX_SESSIONS_TOTAL`` among :meth:`Policy.limits` (no platform's name).
TOTAL = "*"
EVICT = ("oldest_login", "least_recent")


class PolicyError(ValueError):
    """A policy document has a bad field; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


_PLATFORM_FIELDS = ("idle_timeout", "absolute_timeout", "session_timeout", "max_sessions")


@dataclass(frozen=True, slots=True)
class PlatformPolicy:
    """Timeouts (seconds, ``None`` = never) and limit (``None`` = unlimited)
    of one platform.

    ``session_timeout`` caps the lifetime of a session without remember-me
    (``SESSION_TIMEOUT``); ``None``, or one at or above the absolute timeout,
    is no cap of its own (it is kept as ``None``, so that raising the absolute
    timeout later raises it too). :attr:`session_lifetime` is the lifetime of
    such a session: the session timeout, else the absolute timeout."""

    idle_timeout: int | None
    absolute_timeout: int | None
    max_sessions: int | None
    session_timeout: int | None = None
    #: the longest a session without remember-me lives from login (s; ``None``: no limit)
    session_lifetime: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        session, absolute = self.session_timeout, self.absolute_timeout
        if session is not None and absolute is not None and session >= absolute:
            session = None
            object.__setattr__(self, "session_timeout", None)
        object.__setattr__(self, "session_lifetime", absolute if session is None else session)


class _Platforms(dict[str, PlatformPolicy]):
    """The platforms' policies; a platform not among them (its sessions' kind was
    taken out of ``PLATFORMS`` since they logged in) follows web's, as
    ``context.lua`` does: its sessions keep ending by timeouts."""

    def __missing__(self, name: str) -> PlatformPolicy:
        if name == "web":  # (a policy built without web, by hand)
            raise KeyError(name)
        return self["web"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything that decides whether a session is still valid.

    ``platforms`` maps each platform's name to its policy: web, mobile and
    desktop first, then the extra kinds of ``PLATFORMS`` (SPEC 9.1)."""

    platforms: Mapping[str, PlatformPolicy]
    remember_me_period: int | None
    on_limit: str = "evict_oldest"
    #: concurrent sessions per user across all platforms (``MAX_SESSIONS_TOTAL``; ``None``: unlimited)
    max_sessions_total: int | None = None
    evict: str = "oldest_login"
    allow_user_timeouts: bool = False
    #: the most sessions one user can hold, whatever the limits say (``SESSION_CEILING``)
    session_ceiling: int = 1000
    #: ``ENFORCE=on``; ``False`` (``report``): the timeouts and limits are judged and
    #: reported (:func:`~.core.would_end`, :attr:`~.core.Admission.reported`), not applied
    enforce: bool = True

    def __post_init__(self) -> None:
        if type(self.platforms) is not _Platforms:
            object.__setattr__(self, "platforms", _Platforms(self.platforms))

    def platform(self, name: str) -> PlatformPolicy:
        """The policy of platform ``name`` (web's for one not configured)."""
        return self.platforms[name]

    @property
    def web(self) -> PlatformPolicy:
        """The policy of web sessions."""
        return self.platforms["web"]

    @property
    def mobile(self) -> PlatformPolicy:
        """The policy of mobile sessions."""
        return self.platforms["mobile"]

    @property
    def desktop(self) -> PlatformPolicy:
        """The policy of desktop sessions."""
        return self.platforms["desktop"]

    def limits(self) -> dict[str, int | None]:
        """The session limits (``None``: unlimited): each platform's by name, and
        ``MAX_SESSIONS_TOTAL`` under :data:`TOTAL`, as :func:`~.core.limits_lowered`
        compares them."""
        limits = {p: v.max_sessions for p, v in self.platforms.items()}
        limits[TOTAL] = self.max_sessions_total
        return limits

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        """The policy the environment (or ``Config``) describes."""
        return cls(
            {p: PlatformPolicy(*config.platform_policy(p)) for p in config.platforms},
            remember_me_period=config.remember_me_period,
            on_limit=config.on_limit,
            max_sessions_total=config.max_sessions_total,
            evict=config.evict,
            allow_user_timeouts=config.allow_user_timeouts,
            session_ceiling=config.session_ceiling,
            enforce=config.enforce == "on",
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form of SPEC §5 (durations as strings)."""
        return {
            "platforms": {
                p: {
                    "idle_timeout": format_duration(v.idle_timeout),
                    "absolute_timeout": format_duration(v.absolute_timeout),
                    "session_timeout": format_duration(v.session_lifetime),  # what applies
                    "max_sessions": v.max_sessions,
                }
                for p, v in self.platforms.items()
            },
            "remember_me_period": format_duration(self.remember_me_period),
            "on_limit": self.on_limit,
            "max_sessions_total": self.max_sessions_total,
        }

    def updated(self, data: object, *, stored: bool = False) -> Policy:
        """A copy with the fields of the (possibly partial) JSON ``data``
        applied. Raises :class:`PolicyError` naming the first bad field.

        :param stored: ``data`` is the policy another process stored: a platform
            this process is not configured for is skipped, not refused (each
            process applies what it knows of a stored policy)."""
        if not isinstance(data, Mapping):
            raise PolicyError("body", "must be a JSON object")
        unknown = set(data) - {"platforms", "remember_me_period", "on_limit", "max_sessions_total"}
        if unknown:
            raise PolicyError(sorted(unknown)[0], "unknown field")
        platforms = data.get("platforms", {})
        known = ", ".join(self.platforms)
        if not isinstance(platforms, Mapping):
            raise PolicyError("platforms", f"must be an object keyed by {known}")
        updated = dict(self.platforms)
        for name, fields in platforms.items():
            if name not in updated:
                if stored:
                    continue
                shown = name if len(str(name)) <= 64 else name[:61] + "..."
                raise PolicyError(f"platforms.{shown}", f"unknown platform ({known})")
            updated[name] = _platform(updated[name], name, fields)
        policy = replace(self, platforms=updated)
        if "remember_me_period" in data:
            period = _duration("remember_me_period", data["remember_me_period"])
            policy = replace(policy, remember_me_period=period)
        if "on_limit" in data:
            if data["on_limit"] not in ON_LIMIT:
                raise PolicyError("on_limit", "must be evict_oldest or reject")
            policy = replace(policy, on_limit=data["on_limit"])
        if "max_sessions_total" in data:
            total = _limit("max_sessions_total", data["max_sessions_total"])
            policy = replace(policy, max_sessions_total=total)
        return policy


def _platform(current: PlatformPolicy, name: str, fields: object) -> PlatformPolicy:
    where = f"platforms.{name}"
    if not isinstance(fields, Mapping):
        raise PolicyError(where, "must be an object")
    unknown = set(fields) - set(_PLATFORM_FIELDS)
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}", "unknown field")
    updated = current
    for key in ("idle_timeout", "absolute_timeout", "session_timeout"):
        if key in fields:
            updated = replace(updated, **{key: _duration(f"{where}.{key}", fields[key])})
    if "max_sessions" in fields:
        updated = replace(updated, max_sessions=_limit(f"{where}.max_sessions", fields["max_sessions"]))
    return updated


def _limit(field: str, limit: object) -> int | None:
    if limit is None or limit == "unlimited":
        return None
    if isinstance(limit, int) and type(limit) is int and 1 <= limit <= 100_000:
        return limit
    raise PolicyError(field, "must be a positive integer or null")


def _duration(field: str, value: object) -> int | None:
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise PolicyError(field, "must be a duration string such as 30m, 12h, 7d or never")
    try:
        return parse_duration(value)
    except ValueError:
        raise PolicyError(
            field, f"{value[:40]!r} is not a duration (use 900, 15m, 2h, 7d or never)"
        ) from None
