"""How each ``SESSIONGUARD_*`` value is read: one parser per setting
(:data:`PARSERS`), taking the environment's text or a typed value and
returning the normalised value, or raising ``ValueError`` whose message is
the accepted forms (:class:`~sessionguard.config.Config` adds the variable's
name and the bad value). Durations are read by
:mod:`sessionguard.durations`.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from typing import TypeAlias

from .durations import bounded, duration, duration_choices, interval, interval_or_off, show
from .origins import origin_of
from .permissions import role_permissions

#: The built-in kinds of session (``PLATFORMS`` adds others, see :func:`_platforms`).
PLATFORMS = ("web", "mobile", "desktop")
#: An extra platform's name (SPEC 9.1); upper-cased, it starts its own variables.
PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_]{0,15}", re.ASCII)
#: The settings of one platform: ``<PLATFORM>_<SETTING>`` (``WEB_IDLE_TIMEOUT``).
PLATFORM_SETTINGS = ("idle_timeout", "absolute_timeout", "session_timeout", "max_sessions")
ENV_PREFIX = "SESSIONGUARD_"
MAX_SESSIONS_LIMIT = 100_000  # the admin policy API accepts the same range
#: ``SESSION_CEILING``: the most sessions one user can hold, whatever the limits say.
SESSION_CEILING_RANGE = (1, 100_000)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)  # RFC 9110 token
_DOMAIN = re.compile(r"\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?", re.ASCII)
# A local path of visible ASCII without ; or , (they would split a cookie attribute or a
# list); "//host" and "/\\host" are refused because a redirect there would leave the site.
_URL_PATH = re.compile(r"/(?![/\\])[!-+\--:<-~]*")
_FILE_PATH = re.compile(r"[^\x00]+")
_STORE_SCHEMES = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")
_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}  # fmt: skip

class Inherit(enum.Enum):
    """Marks a per-platform setting that takes the all-platform value."""

    INHERIT = "inherit"

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT = Inherit.INHERIT
Inheritable: TypeAlias = int | None | Inherit
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _local_cache(value: object) -> float:
    tail = "is not a cache duration (use 0 or off, or a duration such as 250ms, 2s or 1m)"
    return interval_or_off(value, tail=tail)


def _store_timeout(value: object) -> float:
    tail = "is not a timeout (use seconds above 0 and at most 30, such as 0.5, 500ms or 2s)"
    seconds = interval(value, tail=tail)
    if not 0 < seconds <= 30:
        raise ValueError(tail)
    return seconds


def _store_spin(value: object) -> float:
    tail = "is not a polling time (use off, or a duration up to 1ms such as 200us or 0.2ms)"
    seconds = interval_or_off(value, tail=tail)
    if seconds > 0.001:
        raise ValueError(tail)
    return seconds


def _limit(value: object) -> int | None:
    tail = f"is not a session limit (use a positive integer up to {MAX_SESSIONS_LIMIT}, or unlimited)"
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "unlimited":
            return None
        value = int(text) if text.isascii() and text.isdigit() else value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(tail)
    if not 1 <= value <= MAX_SESSIONS_LIMIT:
        raise ValueError(tail)
    return value


def _inheriting(parse: Callable[[object], int | None]) -> Callable[[object], Inheritable]:
    def parse_or_inherit(value: object) -> Inheritable:
        if value is INHERIT or isinstance(value, str) and value.strip().lower() == "inherit":
            return INHERIT
        try:
            return parse(value)
        except ValueError as exc:
            # "(use a, b, or c)" becomes "(use a, b, c, or inherit)"
            head, _, last = str(exc).rpartition(" or ")
            raise ValueError(f"{head} {last.rstrip(')')}, or inherit)") from None

    return parse_or_inherit


def _platforms(value: object) -> tuple[str, ...]:
    tail = "(use comma-separated names such as web,mobile,desktop,messenger: [a-z][a-z0-9_]{0,15} each)"
    names = _list(value)
    for name in names:
        if not PLATFORM_NAME.fullmatch(name):
            raise ValueError(f"has {show(name)}, which is not a platform name {tail}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"names {', '.join(twice)} twice {tail}")
    missing = [p for p in PLATFORMS if p not in names]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}: web, mobile and desktop always stay {tail}")
    # the built-ins first, in their order: what the pages and the JSON list first
    return PLATFORMS + tuple(n for n in names if n not in PLATFORMS)


#: How each per-platform setting is read (also an extra platform's, see ``Config.platform_settings``).
PLATFORM_PARSERS: dict[str, Callable[[object], Inheritable]] = {
    "idle_timeout": _inheriting(duration),
    "absolute_timeout": _inheriting(duration),
    "session_timeout": _inheriting(duration),
    "max_sessions": _inheriting(_limit),
}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise ValueError("is not a boolean (use true or false; also 1/0, yes/no, on/off)")


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = str(value).strip().lower() if isinstance(value, str | int) else None
        if text not in choices or isinstance(value, bool):
            raise ValueError(f"is not a valid choice (use {' or '.join(choices)})")
        return text

    return parse


def _text(value: object, pattern: re.Pattern[str], tail: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise ValueError(tail)
    return value.strip()


def _list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("is not a list (use comma-separated values)")
    return tuple(v.strip() for v in value if v.strip())


def _secret_key(value: object) -> tuple[str, ...]:
    tail = "use one or more comma-separated keys of at least 32 characters each"
    keys = _list(value) if isinstance(value, str | list | tuple) else None
    if keys is None:
        raise ValueError(f"is not a key or a list of keys ({tail})")
    if not keys:
        raise ValueError(f"is required ({tail})")
    short = [str(i) for i, key in enumerate(keys, 1) if len(key) < 32]
    if short:
        raise ValueError(f"has a key shorter than 32 characters: key {', '.join(short)} ({tail})")
    return keys


def _session_ceiling(value: object) -> int:
    low, high = SESSION_CEILING_RANGE
    tail = f"is not a session ceiling (use an integer from {low} to {high}, such as 1000)"
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(tail)
    return value


def _store_url(value: object) -> str:
    tail = (
        "is not a store URL (use memory://, or a redis://, rediss://, redis+sentinel://"
        " or redis+cluster:// URL)"
    )
    if not isinstance(value, str) or "://" not in value:
        raise ValueError(tail)
    if value.strip().partition("://")[0].lower() not in _STORE_SCHEMES:
        raise ValueError(tail)
    return value.strip()


def _key_prefix(value: object) -> str:
    tail = "is not a key prefix (use a non-empty word without spaces, { or }, such as sg)"
    return _text(value, re.compile(r"[^\s{}]+"), tail)


def _paths(value: object) -> tuple[str, ...]:
    paths = _list(value)
    if not all(_URL_PATH.fullmatch(path) for path in paths):
        raise ValueError("is not a list of paths (use comma-separated prefixes such as /health)")
    return paths


def _on_invalid(value: object) -> str:
    tail = "is not a valid choice (use anonymous, 401, or redirect:/local/path)"
    text = str(value).strip() if isinstance(value, str | int) else ""
    if text.lower() in ("anonymous", "401") and not isinstance(value, bool):
        return text.lower()
    if text[:9].lower() == "redirect:" and _URL_PATH.fullmatch(text[9:]):
        return "redirect:" + text[9:]
    raise ValueError(tail)


def _admin_path(value: object) -> str | None:
    if value is None or isinstance(value, str) and value.strip().lower() == "off":
        return None
    tail = "is not an admin path (use a path such as /_sessionguard, or off)"
    path = _text(value, _URL_PATH, tail)
    path = path.removesuffix("/")
    if not path or path.endswith("/") or "?" in path or "#" in path:
        raise ValueError(tail)
    return path


def _admin_token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) < 32:
        raise ValueError("is too short (use at least 32 random characters)")
    return value.strip()


def _networks(value: object) -> tuple[Network, ...]:
    items = _list(value) if isinstance(value, str) else value
    networks: list[Network] = []
    for item in items if isinstance(items, list | tuple) else [items]:
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except (ValueError, TypeError):
            raise ValueError(
                f"has {show(item)}, which is not an address"
                " (use comma-separated IPs or CIDRs such as 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _cookie_domain(value: object) -> str | None:
    if value is None or value == "":
        return None
    return _text(value, _DOMAIN, "is not a domain (use a host such as example.com)")


def _geoip_database(value: object) -> str | None:
    if value is None:
        return None
    return _text(value, _FILE_PATH, "is not a file path (use the path of an .mmdb file)")


def _origins(value: object) -> tuple[str, ...]:
    origins = []
    for item in _list(value):
        origin = origin_of(item)
        if origin is None:
            raise ValueError(
                f"has {show(item)}, which is not an origin"
                " (use comma-separated origins such as https://app.example.com or http://localhost:3000)"
            )
        origins.append(origin)
    return tuple(origins)


def _positive(value: object) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("is not a positive integer (use a count such as 100000)")
    return value


PARSERS: dict[str, Callable[[object], object]] = {
    "secret_key": _secret_key,
    "store_url": _store_url,
    "key_prefix": _key_prefix,
    "idle_timeout": duration,
    "absolute_timeout": duration,
    "remember_me_period": duration,
    "max_sessions": _limit,
    # = the absolute timeout (INHERIT) unless set; "never" is no timeout of its own, the same
    "session_timeout": _inheriting(duration),
    "platforms": _platforms,
    **{f"{p}_{name}": PLATFORM_PARSERS[name] for p in PLATFORMS for name in PLATFORM_SETTINGS},
    "max_sessions_total": _limit,
    "session_ceiling": _session_ceiling,
    "on_limit": _choice("evict_oldest", "reject"),
    "evict": _choice("oldest_login", "least_recent"),
    "passive_paths": _paths,
    "allow_user_timeouts": _bool,
    "user_idle_timeout_choices": duration_choices,
    "cookie_name": lambda v: _text(v, _TOKEN, "is not a cookie name (use letters, digits, - and _)"),
    "cookie_secure": _bool,
    "cookie_samesite": _choice("lax", "strict", "none"),
    "cookie_domain": _cookie_domain,
    "cookie_path": lambda v: _text(v, _URL_PATH, "is not a path (use a path such as /)"),
    "accept_bearer": _bool,
    "platform_header": lambda v: _text(v, _TOKEN, "is not a header name (use e.g. X-Client-Platform)"),
    "on_invalid": _on_invalid,
    "store_unavailable": _choice("503", "anonymous"),
    "admin_path": _admin_path,
    "admin_roles": _list,
    "readonly_roles": _list,
    "role_permissions": role_permissions,
    "self_service": _bool,
    "admin_token": _admin_token,
    "trusted_proxies": _networks,
    "allowed_origins": _origins,
    "geoip_database": _geoip_database,
    "audit_maxlen": _positive,
    "audit_retention": duration,
    "local_cache": _local_cache,
    "store_timeout": _store_timeout,
    "store_spin": _store_spin,
    "device_bound": _bool,
    # SPEC 9.6: shorter makes every request a refresh, longer leaves a stolen cookie working longer
    "device_bound_cookie_lifetime": lambda v: bounded(
        v, 30, 3600, tail="is not a cookie lifetime (use a duration from 30s to 1h, such as 5m)"),
    "enforce": _choice("on", "report"),
    "metrics": _bool,
    "on_anomaly": _choice("log", "flag", "revoke"),
}
SECRETS = ("secret_key", "admin_token")
