"""Configuration: the ``SESSIONGUARD_*`` variables of SPEC §3 as one value.

:class:`Config` accepts every setting either typed (``idle_timeout=1800``) or
in the environment's string syntax (``idle_timeout="30m"``) and normalises it
in ``__post_init__``. Every problem is collected and reported at once in one
:class:`~sessionguard.errors.ConfigurationError`, each line naming the
environment variable (users know the variables, even when the value came from
code), the bad value (``'***'`` for secrets) and the accepted forms.

Nothing here reads the environment or touches a file at import time.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .durations import MAX_DURATION, format_duration, parse_duration, show
from .errors import ConfigurationError
from .parsers import (
    ENV_PREFIX,
    INHERIT,
    PARSERS,
    PLATFORM_PARSERS,
    PLATFORM_SETTINGS,
    PLATFORMS,
    SECRETS,
    Inherit,
    Inheritable,
    Network,
)
from .permissions import RolePermissions
from .redaction import redact_url

__all__ = [
    "INHERIT",
    "MAX_DURATION",
    "PLATFORMS",
    "Config",
    "Inheritable",
    "format_duration",
    "parse_duration",
    "redact_url",
]


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    """Every setting of SPEC §3, validated and normalised.

    Field names are the variable names without ``SESSIONGUARD_``, lower-cased.
    Each field takes its normalised type or the environment's string syntax:
    ``Config(secret_key=key, idle_timeout="30m", web_max_sessions="3")``.
    Durations are whole seconds (``None`` = never); ``local_cache``,
    ``store_timeout`` and ``store_spin`` are float seconds and also accept
    ``ms`` and ``us`` (``"250ms"``).
    Per-platform fields default to :data:`INHERIT`; :meth:`platform_policy`
    resolves them. Secrets never appear in ``repr`` or in error messages.

    :raises ConfigurationError: listing every invalid setting at once.
    """

    secret_key: tuple[str, ...] = field(repr=False)
    store_url: str = field(default="memory://", repr=False)
    key_prefix: str = "sg"
    idle_timeout: int | None = 3600
    absolute_timeout: int | None = 30 * 86400
    remember_me_period: int | None = 14 * 86400
    max_sessions: int | None = None
    #: lifetime from login of a session without remember-me; INHERIT: the absolute timeout
    session_timeout: Inheritable = INHERIT
    #: the kinds of session: web, mobile, desktop and any extra names (SPEC 9.1)
    platforms: tuple[str, ...] = PLATFORMS
    #: the settings of the extra platforms: ``{"messenger": {"idle_timeout": "5m",
    #: "max_sessions": 2}}`` (keys: ``idle_timeout``, ``absolute_timeout``,
    #: ``session_timeout``, ``max_sessions``; the variables ``<NAME>_IDLE_TIMEOUT`` ...);
    #: each unset one inherits the all-platform value
    platform_settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict, hash=False)
    web_idle_timeout: Inheritable = INHERIT
    web_absolute_timeout: Inheritable = INHERIT
    web_session_timeout: Inheritable = INHERIT
    web_max_sessions: Inheritable = INHERIT
    mobile_idle_timeout: Inheritable = INHERIT
    mobile_absolute_timeout: Inheritable = INHERIT
    mobile_session_timeout: Inheritable = INHERIT
    mobile_max_sessions: Inheritable = INHERIT
    desktop_idle_timeout: Inheritable = INHERIT
    desktop_absolute_timeout: Inheritable = INHERIT
    desktop_session_timeout: Inheritable = INHERIT
    desktop_max_sessions: Inheritable = INHERIT
    #: ``MAX_SESSIONS_TOTAL``: concurrent sessions per user across all platforms (``None``: unlimited)
    max_sessions_total: int | None = None
    session_ceiling: int = 1000
    on_limit: str = "evict_oldest"
    evict: str = "oldest_login"
    passive_paths: tuple[str, ...] = ()
    allow_user_timeouts: bool = False
    #: the idle timeouts a user may pick (``None``: never), in the order offered
    user_idle_timeout_choices: tuple[int | None, ...] = (
        None, 600, 1800, 5400, 3600, 4 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400,
    )
    cookie_name: str = "sg_session"
    cookie_secure: bool = True
    cookie_samesite: str = "lax"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    accept_bearer: bool = True
    platform_header: str = "X-Client-Platform"
    on_invalid: str = "anonymous"
    store_unavailable: str = "503"
    admin_path: str | None = "/_sessionguard"
    admin_roles: tuple[str, ...] = ("admin",)
    readonly_roles: tuple[str, ...] = ()
    #: ``ROLE_PERMISSIONS``: when set, the only source of admin permissions
    role_permissions: RolePermissions | None = None
    #: ``/me`` and ``/api/me/*`` are served
    self_service: bool = True
    admin_token: str | None = field(default=None, repr=False)
    trusted_proxies: tuple[Network, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    geoip_database: str | None = None
    audit_maxlen: int = 100_000
    audit_retention: int | None = 90 * 86400
    local_cache: float = 0.0
    store_timeout: float = 0.5
    store_spin: float = 0.0002
    #: DBSC (SPEC 9.6): offer web sessions created over HTTPS binding to the browser's key
    device_bound: bool = False
    #: seconds a device-bound session's cookie is accepted after it was issued
    device_bound_cookie_lifetime: int = 300
    #: ``ENFORCE``: ``on``, or ``report`` (timeouts and limits reported, not applied)
    enforce: str = "on"
    #: ``METRICS``: Prometheus metrics (the ``metrics`` extra, :mod:`.metrics`)
    metrics: bool = False
    #: ``ON_ANOMALY``: what a session's sudden change of client does: ``log``, ``flag``, ``revoke``
    on_anomaly: str = "log"

    def __post_init__(self) -> None:
        errors: list[str] = []
        for name, parse in PARSERS.items():
            raw = getattr(self, name)
            try:
                object.__setattr__(self, name, parse(raw))
            except ValueError as exc:
                errors.append(_problem(name, raw, str(exc)))
        errors.extend(self._platform_settings())
        if not any(line.startswith(f"{ENV_PREFIX}COOKIE_") for line in errors):
            errors.extend(self._conflicts())
        if self.device_bound is True:  # (not a bad value that stays a string)
            errors.extend(self._device_bound_needs())
        if errors:
            raise ConfigurationError(errors)

    def _platform_settings(self) -> list[str]:
        """Read :attr:`platform_settings` (each value as its variable's); the problems."""
        given, problems = self.platform_settings, []
        extras = self.platforms[len(PLATFORMS):] if isinstance(self.platforms, tuple) else ()
        settings: dict[str, dict[str, Inheritable]] = {}
        if not isinstance(given, Mapping):
            given = {}
            problems.append("platform_settings must be a mapping of platform name to settings")
        for name, values in given.items():
            if name not in extras:
                why = f"{name!r} is not one of the extra platforms of {ENV_PREFIX}PLATFORMS"
                if name in PLATFORMS:
                    why = f"{name!r} is built in: set {name}_idle_timeout, ... instead"
                problems.append(f"platform_settings: {why}")
                continue
            values = values if isinstance(values, Mapping) else {}
            for key in values:
                if key not in PLATFORM_SETTINGS:
                    problems.append(f"platform_settings[{name!r}]: {key!r} is not a setting"
                                    f" (use {', '.join(PLATFORM_SETTINGS)})")
        for name in extras:
            own = given.get(name)
            values = own if isinstance(own, Mapping) else {}
            settings[name] = {}
            for key, parse in PLATFORM_PARSERS.items():
                raw = values.get(key, INHERIT)
                try:
                    settings[name][key] = parse(raw)
                except ValueError as exc:
                    problems.append(_problem(f"{name}_{key}", raw, str(exc)))
        object.__setattr__(self, "platform_settings", settings)
        return problems

    def _conflicts(self) -> list[str]:
        name, problems = self.cookie_name, []
        prefix = next((p for p in ("__Host-", "__Secure-") if name.lower().startswith(p.lower())), "")
        cookie = f"{ENV_PREFIX}COOKIE_NAME={name!r} requires"
        if prefix and not self.cookie_secure:
            problems.append(f"{cookie} {ENV_PREFIX}COOKIE_SECURE=true (a {prefix} cookie is Secure)")
        if prefix == "__Host-" and self.cookie_path != "/":
            problems.append(f"{cookie} {ENV_PREFIX}COOKIE_PATH=/ (not {self.cookie_path!r})")
        if prefix == "__Host-" and self.cookie_domain is not None:
            problems.append(
                f"{cookie} {ENV_PREFIX}COOKIE_DOMAIN to be unset (not {self.cookie_domain!r};"
                " a __Host- cookie has no Domain)"
            )
        if self.cookie_samesite == "none" and not self.cookie_secure:
            problems.append(
                f"{ENV_PREFIX}COOKIE_SAMESITE='none' requires {ENV_PREFIX}COOKIE_SECURE=true"
                " (browsers refuse SameSite=None cookies that are not Secure)"
            )
        return problems

    def _device_bound_needs(self) -> list[str]:
        problems = []
        variable = f"{ENV_PREFIX}DEVICE_BOUND='on'"
        if self.admin_path is None:
            problems.append(
                f"{variable} requires {ENV_PREFIX}ADMIN_PATH (the browser registers and refreshes its"
                " key at <ADMIN_PATH>/dbsc/...; it is off)"
            )
        if importlib.util.find_spec("cryptography") is None:
            problems.append(
                f"{variable} needs the cryptography package to verify the browser's signatures:"
                " pip install 'sessionguard-middleware[dbsc]'"
            )
        return problems

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``SESSIONGUARD_<FIELD>`` for every field from ``environ``.

        :param environ: defaults to :data:`os.environ`; tests pass a dict.
            Unset and empty variables keep their defaults (an empty
            ``SESSIONGUARD_SECRET_KEY`` is reported as missing); unknown
            ``SESSIONGUARD_*`` variables are ignored.
        :raises ConfigurationError: listing every invalid variable at once.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {"secret_key": ""}
        for name in PARSERS:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw.strip():
                values[name] = raw
        try:  # the extra platforms' own variables: <NAME>_IDLE_TIMEOUT, ...
            extras = PARSERS["platforms"](values.get("platforms", PLATFORMS))
        except ValueError:
            extras = ()  # (reported by Config)
        settings: dict[str, dict[str, str]] = {}
        for name in extras[len(PLATFORMS):]:  # type: ignore[index]
            for key in PLATFORM_SETTINGS:
                raw = environ.get(f"{ENV_PREFIX}{name.upper()}_{key.upper()}")
                if raw is not None and raw.strip():
                    settings.setdefault(name, {})[key] = raw
        return cls(**values, platform_settings=settings)

    def platform_policy(self, platform: str) -> tuple[int | None, int | None, int | None, int | None]:
        """``(idle_timeout, absolute_timeout, max_sessions, session_timeout)`` of
        ``platform``, with :data:`INHERIT` replaced by the all-platform values
        (a session timeout inherited from nowhere is ``None``: the absolute
        timeout alone).

        :raises ValueError: if ``platform`` is not one of :attr:`platforms`.
        """
        if platform not in self.platforms:
            raise ValueError(f"{platform!r} is not a platform (use {', '.join(self.platforms)})")
        own: Mapping[str, object] = self.platform_settings.get(platform, {})

        def resolve(name: str, default: Inheritable) -> int | None:
            value = own[name] if platform not in PLATFORMS else getattr(self, f"{platform}_{name}")
            value = default if isinstance(value, Inherit) else value
            return None if isinstance(value, Inherit) else value  # type: ignore[return-value]

        return (
            resolve("idle_timeout", self.idle_timeout),
            resolve("absolute_timeout", self.absolute_timeout),
            resolve("max_sessions", self.max_sessions),
            resolve("session_timeout", self.session_timeout),
        )

    @property
    def on_invalid_redirect(self) -> str | None:
        """The path of ``ON_INVALID=redirect:/path``, else ``None``."""
        return self.on_invalid[9:] if self.on_invalid.startswith("redirect:") else None

    @property
    def redacted_store_url(self) -> str:
        """:attr:`store_url` with its password replaced by ``***``."""
        return redact_url(self.store_url)

    def __repr__(self) -> str:
        shown = [f"store_url={self.redacted_store_url!r}"]
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr]
        return f"Config({', '.join(shown)})"


def _problem(name: str, value: object, tail: str) -> str:
    variable = ENV_PREFIX + name.upper()
    if name in SECRETS:  # a missing secret has no value to hide
        missing = not value or tail.startswith("is required")
        return f"{variable} {tail}" if missing else f"{variable}='***' {tail}"
    if name == "store_url" and isinstance(value, str):
        value = redact_url(value)
    return f"{variable}={show(value)} {tail}"
