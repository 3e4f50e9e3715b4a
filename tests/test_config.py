"""Tests of :mod:`sessionguard.config`: every variable good and bad, durations,
error reporting, secrets, cookie-prefix conflicts and per-platform inheritance."""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionguard.config import (
    INHERIT,
    MAX_DURATION,
    PLATFORMS,
    Config,
    format_duration,
    parse_duration,
    redact_url,
)
from sessionguard.errors import ConfigurationError
from sessionguard.policy import Policy

KEY = "k" * 32
OLD_KEY = "o" * 40
SPEC_VARIABLES = """
    SECRET_KEY STORE_URL KEY_PREFIX IDLE_TIMEOUT ABSOLUTE_TIMEOUT REMEMBER_ME_PERIOD
    MAX_SESSIONS WEB_IDLE_TIMEOUT MOBILE_IDLE_TIMEOUT DESKTOP_IDLE_TIMEOUT
    WEB_ABSOLUTE_TIMEOUT MOBILE_ABSOLUTE_TIMEOUT DESKTOP_ABSOLUTE_TIMEOUT
    WEB_MAX_SESSIONS MOBILE_MAX_SESSIONS DESKTOP_MAX_SESSIONS SESSION_CEILING ON_LIMIT EVICT
    MAX_SESSIONS_TOTAL
    PASSIVE_PATHS ALLOW_USER_TIMEOUTS COOKIE_NAME COOKIE_SECURE COOKIE_SAMESITE
    COOKIE_DOMAIN COOKIE_PATH ACCEPT_BEARER PLATFORM_HEADER ON_INVALID STORE_UNAVAILABLE
    ADMIN_PATH ADMIN_ROLES READONLY_ROLES ADMIN_TOKEN TRUSTED_PROXIES GEOIP_DATABASE
    AUDIT_MAXLEN AUDIT_RETENTION LOCAL_CACHE STORE_TIMEOUT STORE_SPIN ALLOWED_ORIGINS
    ROLE_PERMISSIONS SELF_SERVICE USER_IDLE_TIMEOUT_CHOICES DEVICE_BOUND DEVICE_BOUND_COOKIE_LIFETIME
    METRICS ON_ANOMALY ENFORCE SESSION_TIMEOUT WEB_SESSION_TIMEOUT MOBILE_SESSION_TIMEOUT
    DESKTOP_SESSION_TIMEOUT PLATFORMS
""".split()


def env(**variables: str) -> dict[str, str]:
    """An environment with a valid secret key and ``SESSIONGUARD_``-prefixed ``variables``."""
    return {"SESSIONGUARD_SECRET_KEY": KEY} | {
        f"SESSIONGUARD_{name.upper()}": value for name, value in variables.items()
    }


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90", 90, id="plain-seconds"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("12h", 43200, id="hours"),
        pytest.param("30d", 2592000, id="days"),
        pytest.param("1.5h", 5400, id="fractional-hours"),
        pytest.param("0.5m", 30, id="fractional-minutes"),
        pytest.param("  2H\n", 7200, id="case-and-whitespace"),
        pytest.param("15 m", 900, id="space-before-unit"),
        pytest.param("never", None, id="never"),
        pytest.param(" NeVeR ", None, id="never-any-case"),
        pytest.param("36500d", MAX_DURATION, id="longest"),
    ],
)
def test_parse_duration(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("", "is not a duration", id="empty"),
        pytest.param("15x", "is not a duration", id="unknown-unit"),
        pytest.param("-5", "is not a duration", id="negative"),
        pytest.param("1.5", "is not a duration", id="plain-fraction"),
        pytest.param("1e3", "is not a duration", id="exponent"),
        pytest.param("250ms", "is not a duration", id="milliseconds"),
        pytest.param("500us", "is not a duration", id="microseconds"),
        pytest.param("inherit", "is not a duration", id="inherit"),
        pytest.param("\u0663", "is not a duration", id="non-ascii-digit"),
        pytest.param("5m3s", "is not a duration", id="compound"),
        pytest.param("0", "is not a positive duration", id="zero"),
        pytest.param("0d", "is not a positive duration", id="zero-days"),
        pytest.param("0.5s", "is not a whole number of seconds", id="half-second"),
        pytest.param("36501d", "is too long", id="too-long"),
    ],
)
def test_parse_duration_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert message.startswith(f"{text!r} {problem} (use ")
    assert "never" in message


def test_parse_duration_message() -> None:
    with pytest.raises(ValueError, match=r"^'15x' is not a duration \(use seconds such as 900, "):
        parse_duration("15x")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(None, "never", id="never"),
        pytest.param(86400, "1d", id="day"),
        pytest.param(5400, "90m", id="minutes-not-fractional-hours"),
        pytest.param(90, "90s", id="seconds"),
        pytest.param(7200, "2h", id="hours"),
        pytest.param(1, "1s", id="one-second"),
        pytest.param(3601, "3601s", id="inexact"),
        pytest.param(30 * 86400, "30d", id="thirty-days"),
        pytest.param(0, "0s", id="zero"),
    ],
)
def test_format_duration(seconds: int | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, True, 1.5, "60"], ids=["negative", "bool", "float", "str"])
def test_format_duration_rejects(seconds: Any) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@given(st.none() | st.integers(min_value=1, max_value=MAX_DURATION))
def test_duration_round_trip(seconds: int | None) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=20))
def test_parse_duration_fails_only_with_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result is None or 1 <= result <= MAX_DURATION


# --- every variable, good ----------------------------------------------------------------

NETWORKS = (
    ipaddress.ip_network("10.0.0.1/32"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("10.0.0.0/8"),
)

GOOD = [
    pytest.param("secret_key", f" {KEY} , {OLD_KEY},", (KEY, OLD_KEY), id="secret-key-rotation"),
    pytest.param("secret_key", [KEY, OLD_KEY], (KEY, OLD_KEY), id="secret-key-list"),
    pytest.param("store_url", "memory://", "memory://", id="store-memory"),
    pytest.param("store_url", " redis://h:6379/0 ", "redis://h:6379/0", id="store-redis"),
    pytest.param("store_url", "rediss://:pw@h", "rediss://:pw@h", id="store-rediss"),
    pytest.param(
        "store_url", "redis+sentinel://a:1,b:2/m", "redis+sentinel://a:1,b:2/m", id="store-sentinel"
    ),
    pytest.param("store_url", "REDIS+CLUSTER://h:7000", "REDIS+CLUSTER://h:7000", id="store-cluster"),
    pytest.param("key_prefix", "app:sg", "app:sg", id="key-prefix"),
    pytest.param("idle_timeout", "30m", 1800, id="idle-string"),
    pytest.param("idle_timeout", 1800, 1800, id="idle-int"),
    pytest.param("idle_timeout", timedelta(minutes=5), 300, id="idle-timedelta"),
    pytest.param("idle_timeout", "never", None, id="idle-never"),
    pytest.param("idle_timeout", None, None, id="idle-none"),
    pytest.param("absolute_timeout", "7d", 604800, id="absolute"),
    pytest.param("remember_me_period", "1.5h", 5400, id="remember-me"),
    pytest.param("max_sessions", "3", 3, id="max-sessions"),
    pytest.param("max_sessions", 100_000, 100_000, id="max-sessions-largest"),
    pytest.param("max_sessions", "Unlimited", None, id="max-sessions-unlimited"),
    pytest.param("web_idle_timeout", "5m", 300, id="web-idle"),
    pytest.param("web_idle_timeout", "never", None, id="web-idle-never"),
    pytest.param("mobile_idle_timeout", "INHERIT", INHERIT, id="mobile-idle-inherit"),
    pytest.param("desktop_absolute_timeout", "1d", 86400, id="desktop-absolute"),
    pytest.param("web_max_sessions", "2", 2, id="web-max"),
    pytest.param("mobile_max_sessions", "unlimited", None, id="mobile-max-unlimited"),
    pytest.param("desktop_max_sessions", INHERIT, INHERIT, id="desktop-max-inherit"),
    pytest.param("on_limit", "REJECT", "reject", id="on-limit"),
    pytest.param("evict", "least_recent", "least_recent", id="evict"),
    pytest.param("passive_paths", "/health, /poll,,", ("/health", "/poll"), id="passive-paths"),
    pytest.param("passive_paths", ["/health"], ("/health",), id="passive-paths-list"),
    pytest.param("allow_user_timeouts", "yes", True, id="bool-yes"),
    pytest.param("allow_user_timeouts", "ON", True, id="bool-on"),
    pytest.param("allow_user_timeouts", "1", True, id="bool-1"),
    pytest.param("allow_user_timeouts", True, True, id="bool-true"),
    pytest.param("accept_bearer", "False", False, id="bool-false"),
    pytest.param("accept_bearer", "no", False, id="bool-no"),
    pytest.param("accept_bearer", "off", False, id="bool-off"),
    pytest.param("accept_bearer", "0", False, id="bool-0"),
    pytest.param("cookie_name", "__Host-sg", "__Host-sg", id="cookie-name-host"),
    pytest.param("cookie_name", "my.app-session_1", "my.app-session_1", id="cookie-name"),
    pytest.param("cookie_secure", "false", False, id="cookie-insecure"),
    pytest.param("cookie_samesite", "Strict", "strict", id="samesite-strict"),
    pytest.param("cookie_samesite", "NONE", "none", id="samesite-none"),
    pytest.param("cookie_domain", "example.com", "example.com", id="cookie-domain"),
    pytest.param("cookie_domain", ".example.com", ".example.com", id="cookie-domain-dot"),
    pytest.param("cookie_domain", "", None, id="cookie-domain-empty"),
    pytest.param("cookie_path", "/app", "/app", id="cookie-path"),
    pytest.param("platform_header", "X-App-Platform", "X-App-Platform", id="platform-header"),
    pytest.param("on_invalid", "401", "401", id="on-invalid-401"),
    pytest.param("on_invalid", 401, "401", id="on-invalid-401-int"),
    pytest.param("on_invalid", "Anonymous", "anonymous", id="on-invalid-anonymous"),
    pytest.param("on_invalid", "REDIRECT:/Login?next=1", "redirect:/Login?next=1", id="on-invalid-redirect"),
    pytest.param("store_unavailable", "anonymous", "anonymous", id="store-unavailable"),
    pytest.param("store_unavailable", 503, "503", id="store-unavailable-int"),
    pytest.param("admin_path", "OFF", None, id="admin-off"),
    pytest.param("admin_path", "/admin/", "/admin", id="admin-trailing-slash"),
    pytest.param("admin_path", "/ops/sessions", "/ops/sessions", id="admin-path"),
    pytest.param("admin_roles", "admin, ops,,", ("admin", "ops"), id="admin-roles"),
    pytest.param("readonly_roles", ("viewer",), ("viewer",), id="readonly-roles"),
    pytest.param("admin_token", "t" * 32, "t" * 32, id="admin-token"),
    pytest.param(
        "role_permissions", "admin=sessions:read+sessions:revoke+settings:update; helpdesk = sessions:read+"
        "sessions:revoke;policy=settings:update;",
        (("admin", frozenset({"sessions:read", "sessions:revoke", "settings:update"})),
         ("helpdesk", frozenset({"sessions:read", "sessions:revoke"})),
         ("policy", frozenset({"settings:update"}))),
        id="role-permissions",
    ),
    pytest.param("role_permissions", {"ops": ["sessions:read"]}, (("ops", frozenset({"sessions:read"})),),
                 id="role-permissions-mapping"),
    pytest.param("self_service", "off", False, id="self-service-off"),
    pytest.param("self_service", "on", True, id="self-service-on"),
    pytest.param("user_idle_timeout_choices", "never, 15m,1h,15m,900", (None, 900, 3600),
                 id="idle-choices"),
    pytest.param("user_idle_timeout_choices", ["2h", 60], (7200, 60), id="idle-choices-list"),
    pytest.param(
        "trusted_proxies",
        "10.0.0.1, 192.168.0.0/16, ::1, 10.1.2.3/8",
        NETWORKS,
        id="trusted-proxies",
    ),
    pytest.param("trusted_proxies", list(NETWORKS), NETWORKS, id="trusted-proxies-objects"),
    pytest.param("geoip_database", "/var/lib/GeoLite2-City.mmdb", "/var/lib/GeoLite2-City.mmdb", id="geoip"),
    pytest.param("geoip_database", "does/not/exist.mmdb", "does/not/exist.mmdb", id="geoip-not-opened"),
    pytest.param("audit_maxlen", "500", 500, id="audit-maxlen"),
    pytest.param("audit_retention", "30d", 30 * 86400, id="audit-retention"),
    pytest.param("audit_retention", "never", None, id="audit-retention-never"),
    pytest.param("local_cache", "250ms", 0.25, id="local-cache-ms"),
    pytest.param("local_cache", "2s", 2.0, id="local-cache-s"),
    pytest.param("local_cache", "1m", 60.0, id="local-cache-m"),
    pytest.param("local_cache", "off", 0.0, id="local-cache-off"),
    pytest.param("local_cache", "0", 0.0, id="local-cache-zero"),
    pytest.param("local_cache", 0.5, 0.5, id="local-cache-float"),
    pytest.param("store_timeout", "500ms", 0.5, id="store-timeout-ms"),
    pytest.param("store_timeout", "0.5", 0.5, id="store-timeout-fraction"),
    pytest.param("store_timeout", "1s", 1.0, id="store-timeout-s"),
    pytest.param("store_timeout", "30", 30.0, id="store-timeout-largest"),
    pytest.param("store_timeout", 2, 2.0, id="store-timeout-int"),
    pytest.param("store_spin", "200us", 0.0002, id="store-spin-us"),
    pytest.param("store_spin", "0.5ms", 0.0005, id="store-spin-ms"),
    pytest.param("store_spin", "1ms", 0.001, id="store-spin-largest"),
    pytest.param("store_spin", "off", 0.0, id="store-spin-off"),
    pytest.param("store_spin", "0", 0.0, id="store-spin-zero"),
    pytest.param("device_bound", "on", True, id="device-bound-on"),
    pytest.param("device_bound", "OFF", False, id="device-bound-off"),
    pytest.param("device_bound", True, True, id="device-bound-bool"),
    pytest.param("device_bound_cookie_lifetime", "30s", 30, id="lifetime-shortest"),
    pytest.param("device_bound_cookie_lifetime", "1h", 3600, id="lifetime-longest"),
    pytest.param("device_bound_cookie_lifetime", "5m", 300, id="lifetime-5m"),
    pytest.param("device_bound_cookie_lifetime", 90, 90, id="lifetime-int"),
]


@pytest.mark.parametrize(("name", "value", "expected"), GOOD)
def test_good_value_from_code(name: str, value: object, expected: object) -> None:
    config = Config(**{"secret_key": KEY, name: value})
    assert getattr(config, name) == expected
    assert type(getattr(config, name)) is type(expected)


def in_env(params: list[Any]) -> list[Any]:
    """The cases an environment can hold: non-blank strings."""
    return [p for p in params if isinstance(p.values[1], str) and p.values[1].strip()]


@pytest.mark.parametrize(("name", "value", "expected"), in_env(GOOD))
def test_good_value_from_env(name: str, value: str, expected: object) -> None:
    config = Config.from_env(env(**{name: value}))
    assert getattr(config, name) == expected


def test_defaults() -> None:
    config = Config(secret_key=KEY)
    assert config == Config.from_env({"SESSIONGUARD_SECRET_KEY": KEY})
    assert (config.store_url, config.key_prefix) == ("memory://", "sg")
    assert (config.idle_timeout, config.absolute_timeout) == (3600, 30 * 86400)
    assert (config.remember_me_period, config.max_sessions) == (14 * 86400, None)
    assert all(getattr(config, f"{p}_idle_timeout") is INHERIT for p in PLATFORMS)
    assert (config.on_limit, config.evict) == ("evict_oldest", "oldest_login")
    assert (config.passive_paths, config.allow_user_timeouts) == ((), False)
    assert (config.cookie_name, config.cookie_secure, config.cookie_samesite) == (
        "sg_session",
        True,
        "lax",
    )
    assert (config.cookie_domain, config.cookie_path) == (None, "/")
    assert (config.accept_bearer, config.platform_header) == (True, "X-Client-Platform")
    assert (config.on_invalid, config.on_invalid_redirect) == ("anonymous", None)
    assert (config.store_unavailable, config.admin_path) == ("503", "/_sessionguard")
    assert (config.admin_roles, config.readonly_roles, config.admin_token) == (
        ("admin",),
        (),
        None,
    )
    assert (config.trusted_proxies, config.geoip_database) == ((), None)
    assert (config.audit_maxlen, config.local_cache, config.store_timeout) == (100_000, 0.0, 0.5)
    assert config.audit_retention == 90 * 86400
    assert config.store_spin == 0.0002
    assert (config.role_permissions, config.self_service) == (None, True)
    assert (config.metrics, config.on_anomaly, config.enforce) == (False, "log", "on")
    hours = [3600 * n for n in (1, 4, 8, 12, 24, 48)]
    assert config.user_idle_timeout_choices == (None, 600, 1800, 5400, *hours)  # never,10m,30m,90m,1h,...


def test_device_bound_needs_the_admin_path_and_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config(secret_key=KEY, device_bound="on").device_bound is True
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(device_bound="on", admin_path="off", idle_timeout="15x"))
    assert [line.partition("=")[0] for line in caught.value.errors] == [
        "SESSIONGUARD_IDLE_TIMEOUT", "SESSIONGUARD_DEVICE_BOUND"]
    assert "requires SESSIONGUARD_ADMIN_PATH" in caught.value.errors[1]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cryptography" else real_find_spec(name, *a))
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(device_bound="on"))
    assert caught.value.errors == (
        "SESSIONGUARD_DEVICE_BOUND='on' needs the cryptography package to verify the browser's"
        " signatures: pip install 'sessionguard-middleware[dbsc]'",)
    assert Config.from_env(env(device_bound="off")).device_bound is False  # off needs nothing


def test_field_names_are_the_spec_variables() -> None:
    # (platform_settings holds the extra platforms' <NAME>_IDLE_TIMEOUT, ... variables)
    names = [field.name.upper() for field in dataclasses.fields(Config) if field.name != "platform_settings"]
    assert sorted(names) == sorted(SPEC_VARIABLES)


def test_every_variable_is_read_from_env() -> None:
    variables = {name: "x" for name in SPEC_VARIABLES if name != "SECRET_KEY"}
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(**variables))
    reported = {line.partition("=")[0] for line in caught.value.errors}
    # "x" is a fine key prefix, cookie name, domain, header name, role and GeoIP path.
    fine = {"KEY_PREFIX", "COOKIE_NAME", "COOKIE_DOMAIN", "PLATFORM_HEADER", "ADMIN_ROLES"}
    fine |= {"READONLY_ROLES", "GEOIP_DATABASE"}
    expected = {f"SESSIONGUARD_{name}" for name in variables.keys() - fine}
    assert reported == expected


def test_normalised_values_are_accepted_again() -> None:
    config = Config.from_env(
        env(
            idle_timeout="30m",
            web_max_sessions="3",
            trusted_proxies="10.0.0.0/8",
            on_invalid="redirect:/login",
            admin_token="t" * 40,
            local_cache="250ms",
        )
    )
    again = Config(**{f.name: getattr(config, f.name) for f in dataclasses.fields(Config)})
    assert again == config
    assert dataclasses.replace(config, idle_timeout="1h").idle_timeout == 3600


def test_config_is_frozen_and_slotted() -> None:
    config = Config(secret_key=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.idle_timeout = 5  # type: ignore[misc]
    assert not hasattr(config, "__dict__")
    assert hash(config) == hash(Config(secret_key=KEY))


# --- every variable, bad -----------------------------------------------------------------

BAD = [
    pytest.param("secret_key", "short", "has a key shorter than 32 characters", id="key-short"),
    pytest.param("secret_key", f"{KEY},short", ": key 2 (", id="key-second-short"),
    pytest.param("secret_key", 42, "is not a key", id="key-int"),
    pytest.param("store_url", "http://h", "is not a store URL", id="store-http"),
    pytest.param("store_url", "localhost:6379", "is not a store URL", id="store-no-scheme"),
    pytest.param("store_url", "redis", "is not a store URL", id="store-word"),
    pytest.param("key_prefix", "a b", "is not a key prefix", id="prefix-space"),
    pytest.param("key_prefix", "{sg}", "is not a key prefix", id="prefix-brace"),
    pytest.param("key_prefix", "", "is not a key prefix", id="prefix-empty"),
    pytest.param("idle_timeout", "15x", "is not a duration", id="idle-unit"),
    pytest.param("idle_timeout", "0", "is not a positive duration", id="idle-zero"),
    pytest.param("idle_timeout", 0, "is not a positive duration", id="idle-zero-int"),
    pytest.param("idle_timeout", -1, "is not a positive duration", id="idle-negative-int"),
    pytest.param("idle_timeout", True, "is not a duration", id="idle-bool"),
    pytest.param("idle_timeout", 1.5, "is not a duration", id="idle-float"),
    pytest.param("idle_timeout", "inherit", "is not a duration", id="idle-inherit"),
    pytest.param("idle_timeout", timedelta(0), "is not a positive duration", id="idle-timedelta"),
    pytest.param("absolute_timeout", "0.5s", "is not a whole number", id="absolute-fraction"),
    pytest.param("remember_me_period", "99999d", "is too long", id="remember-too-long"),
    pytest.param("max_sessions", "0", "is not a session limit", id="max-zero"),
    pytest.param("max_sessions", "-1", "is not a session limit", id="max-negative"),
    pytest.param("max_sessions", "lots", "is not a session limit", id="max-word"),
    pytest.param("max_sessions", 100_001, "is not a session limit", id="max-too-many"),
    pytest.param("max_sessions", True, "is not a session limit", id="max-bool"),
    pytest.param("web_idle_timeout", "15x", "or inherit)", id="web-idle"),
    pytest.param("mobile_absolute_timeout", "0", "or inherit)", id="mobile-absolute-zero"),
    pytest.param("desktop_max_sessions", "0", "unlimited, or inherit)", id="desktop-max"),
    pytest.param("on_limit", "drop", "(use evict_oldest or reject)", id="on-limit"),
    pytest.param("evict", "newest", "(use oldest_login or least_recent)", id="evict"),
    pytest.param("passive_paths", "health", "is not a list of paths", id="passive-relative"),
    pytest.param("passive_paths", "/ok,health", "is not a list of paths", id="passive-one-bad"),
    pytest.param("allow_user_timeouts", "maybe", "is not a boolean", id="bool-word"),
    pytest.param("allow_user_timeouts", 1, "is not a boolean", id="bool-int"),
    pytest.param("cookie_name", "a b", "is not a cookie name", id="cookie-name-space"),
    pytest.param("cookie_name", "a;b", "is not a cookie name", id="cookie-name-semicolon"),
    pytest.param("cookie_secure", "2", "is not a boolean", id="cookie-secure"),
    pytest.param("cookie_samesite", "lenient", "(use lax or strict or none)", id="samesite"),
    pytest.param("cookie_domain", "exa mple.com", "is not a domain", id="domain-space"),
    pytest.param("cookie_domain", "a.com;x", "is not a domain", id="domain-semicolon"),
    pytest.param("cookie_path", "app", "is not a path", id="cookie-path-relative"),
    pytest.param("cookie_path", "/a;b", "is not a path", id="cookie-path-semicolon"),
    pytest.param("accept_bearer", "x", "is not a boolean", id="accept-bearer"),
    pytest.param("platform_header", "X Platform", "is not a header name", id="header-space"),
    pytest.param("platform_header", "", "is not a header name", id="header-empty"),
    pytest.param("on_invalid", "403", "is not a valid choice", id="on-invalid-403"),
    pytest.param("on_invalid", "redirect:login", "redirect:/", id="redirect-relative"),
    pytest.param("on_invalid", "redirect://evil.example", "redirect:/", id="redirect-offsite"),
    pytest.param("on_invalid", "redirect:/\\evil.example", "redirect:/", id="redirect-backslash"),
    pytest.param("on_invalid", "redirect:/a\r\nSet-Cookie: x=1", "redirect:/", id="redirect-crlf"),
    pytest.param("on_invalid", "redirect:/a b", "redirect:/", id="redirect-space"),
    pytest.param("store_unavailable", "500", "(use 503 or anonymous)", id="store-unavailable"),
    pytest.param("admin_path", "admin", "is not an admin path", id="admin-relative"),
    pytest.param("admin_path", "/", "is not an admin path", id="admin-root"),
    pytest.param("admin_path", "/a b", "is not an admin path", id="admin-space"),
    pytest.param("admin_path", "/a?x", "is not an admin path", id="admin-query"),
    pytest.param("admin_roles", ["admin", 5], "is not a list", id="roles-not-str"),
    pytest.param("readonly_roles", 5, "is not a list", id="readonly-int"),
    pytest.param("admin_token", "short", "is too short", id="admin-token-short"),
    pytest.param("role_permissions", "admin=sessions:delete", "unknown permission 'sessions:delete'",
                 id="role-unknown-permission"),
    pytest.param("role_permissions", "admin", "which is not role=perm+perm", id="role-no-equals"),
    pytest.param("role_permissions", "=sessions:read", "which is not role=perm+perm", id="role-no-name"),
    pytest.param("role_permissions", "a=sessions:read;a=settings:update", "twice", id="role-twice"),
    pytest.param("role_permissions", "a b=sessions:read", "not a role name", id="role-space"),
    pytest.param("role_permissions", ";", "is empty", id="role-empty"),
    pytest.param("role_permissions", 5, "is not a role-permission list", id="role-int"),
    pytest.param("self_service", "maybe", "is not a boolean", id="self-service-word"),
    pytest.param("user_idle_timeout_choices", "10m,soon", "'soon', which is not a duration",
                 id="choice-word"),
    pytest.param("user_idle_timeout_choices", "0", "which is not a duration", id="choice-zero"),
    pytest.param("user_idle_timeout_choices", ", ,", "is empty", id="choices-empty"),
    pytest.param("trusted_proxies", "bogus", "'bogus', which is not an address", id="proxy-word"),
    pytest.param("trusted_proxies", "10.0.0.1,10.0.0.0/33", "'10.0.0.0/33'", id="proxy-prefix"),
    pytest.param("geoip_database", "", "is not a file path", id="geoip-empty"),
    pytest.param("geoip_database", "   ", "is not a file path", id="geoip-blank"),
    pytest.param("audit_maxlen", "0", "is not a positive integer", id="audit-zero"),
    pytest.param("audit_maxlen", "many", "is not a positive integer", id="audit-word"),
    pytest.param("audit_maxlen", -5, "is not a positive integer", id="audit-negative"),
    pytest.param("audit_retention", "0", "is not a positive duration", id="retention-zero"),
    pytest.param("audit_retention", "3 weeks", "is not a duration", id="retention-words"),
    pytest.param("local_cache", "never", "is not a cache duration", id="cache-never"),
    pytest.param("local_cache", "fast", "is not a cache duration", id="cache-word"),
    pytest.param("local_cache", -1, "is not a cache duration", id="cache-negative"),
    pytest.param("local_cache", float("nan"), "is not a cache duration", id="cache-nan"),
    pytest.param("store_timeout", "0", "is not a timeout", id="timeout-zero"),
    pytest.param("store_timeout", "31", "is not a timeout", id="timeout-too-long"),
    pytest.param("store_timeout", "1d", "is not a timeout", id="timeout-day"),
    pytest.param("store_timeout", "never", "is not a timeout", id="timeout-never"),
    pytest.param("store_timeout", float("inf"), "is not a timeout", id="timeout-inf"),
    pytest.param("store_spin", "2ms", "is not a polling time", id="spin-too-long"),
    pytest.param("store_spin", "1s", "is not a polling time", id="spin-second"),
    pytest.param("store_spin", "busy", "is not a polling time", id="spin-word"),
    pytest.param("store_spin", -1, "is not a polling time", id="spin-negative"),
    pytest.param("device_bound", "maybe", "is not a boolean (use true or false; also 1/0, yes/no, on/off)",
                 id="device-bound-word"),
    pytest.param("device_bound_cookie_lifetime", "29s", "from 30s to 1h", id="lifetime-too-short"),
    pytest.param("device_bound_cookie_lifetime", "61m", "from 30s to 1h", id="lifetime-too-long"),
    pytest.param("device_bound_cookie_lifetime", "never", "from 30s to 1h", id="lifetime-never"),
    pytest.param("device_bound_cookie_lifetime", "5x", "is not a cookie lifetime", id="lifetime-unit"),
]


def check_line(line: str, name: str, value: object, problem: str) -> None:
    variable = f"SESSIONGUARD_{name.upper()}"
    shown = "'***'" if name in ("secret_key", "admin_token") else repr(value)
    assert line.startswith(f"{variable}={shown} "), line
    assert problem in line
    assert "(use " in line


@pytest.mark.parametrize(("name", "value", "problem"), BAD)
def test_bad_value_from_code(name: str, value: object, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config(**{"secret_key": KEY, name: value})
    assert len(caught.value.errors) == 1
    check_line(caught.value.errors[0], name, value, problem)
    assert caught.value.errors[0] in str(caught.value)


@pytest.mark.parametrize(("name", "value", "problem"), in_env(BAD))
def test_bad_value_from_env(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(**{name: value}))
    assert len(caught.value.errors) == 1
    check_line(caught.value.errors[0], name, value, problem)


def test_error_message_style() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(idle_timeout="15x"))
    assert caught.value.errors == (
        "SESSIONGUARD_IDLE_TIMEOUT='15x' is not a duration"
        " (use seconds such as 900, or 15m, 2h, 7d, or never)",
    )
    assert isinstance(caught.value, ValueError)


def test_every_bad_variable_is_reported_at_once() -> None:
    environ = env(
        idle_timeout="15x",
        max_sessions="0",
        web_max_sessions="x",
        cookie_samesite="lenient",
        trusted_proxies="bogus",
        local_cache="never",
        store_url="http://h",
    )
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(environ)
    variables = [line.partition("=")[0] for line in caught.value.errors]
    assert variables == [
        "SESSIONGUARD_STORE_URL",
        "SESSIONGUARD_IDLE_TIMEOUT",
        "SESSIONGUARD_MAX_SESSIONS",
        "SESSIONGUARD_WEB_MAX_SESSIONS",
        "SESSIONGUARD_COOKIE_SAMESITE",
        "SESSIONGUARD_TRUSTED_PROXIES",
        "SESSIONGUARD_LOCAL_CACHE",
    ]
    assert all(line in str(caught.value).splitlines()[i + 1] for i, line in enumerate(variables))


def test_long_values_are_shortened_in_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(key_prefix="x " * 500))
    assert len(caught.value.errors[0]) < 200


# --- secrets -----------------------------------------------------------------------------

SECRET = "s3cr3t-" + "a" * 30
PASSWORD = "hunter2-redis-password"


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param(env(secret_key=f"{SECRET},tooshort-{PASSWORD}"), id="short-second-key"),
        pytest.param(env(secret_key=SECRET, admin_token=PASSWORD), id="short-admin-token"),
        pytest.param(env(secret_key=SECRET, store_url=f"http://u:{PASSWORD}@h"), id="bad-url"),
        pytest.param(env(secret_key=SECRET, store_url=f"{PASSWORD}@h"), id="url-no-scheme"),
        pytest.param(env(secret_key=SECRET, store_url=f"http://h/?password={PASSWORD}"), id="url-query"),
        pytest.param(
            env(
                secret_key=SECRET,
                admin_token="t" * 40 + PASSWORD,
                idle_timeout="x",
                store_url=f"redis://:{PASSWORD}@h",
            ),
            id="valid-secrets-other-error",
        ),
    ],
)
def test_secrets_never_in_errors(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(environ)
    text = str(caught.value) + repr(caught.value) + repr(caught.value.errors)
    assert SECRET not in text
    assert "tooshort" not in text
    assert PASSWORD not in text


def test_missing_secret_key() -> None:
    for environ in ({}, {"SESSIONGUARD_SECRET_KEY": ""}, {"SESSIONGUARD_SECRET_KEY": " , "}):
        with pytest.raises(ConfigurationError) as caught:
            Config.from_env(environ)
        (line,) = caught.value.errors
        assert line.startswith("SESSIONGUARD_SECRET_KEY is required (use ")


def test_secrets_never_in_repr() -> None:
    token = "admin-token-" + "b" * 32
    config = Config(secret_key=[SECRET, OLD_KEY], admin_token=token, store_url=f"redis://u:{PASSWORD}@h:6379")
    for text in (repr(config), str(config)):
        assert SECRET not in text
        assert OLD_KEY not in text
        assert token not in text
        assert PASSWORD not in text
        assert "store_url='redis://u:***@h:6379'" in text
    assert config.redacted_store_url == "redis://u:***@h:6379"
    assert config.store_url == f"redis://u:{PASSWORD}@h:6379"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        pytest.param("memory://", "memory://", id="memory"),
        pytest.param("redis://h:6379/0", "redis://h:6379/0", id="no-password"),
        pytest.param("redis://:pw@h", "redis://:***@h", id="password"),
        pytest.param("redis://user:pw@h/0", "redis://user:***@h/0", id="user-password"),
        pytest.param("redis://pw@h", "redis://***@h", id="lone-userinfo"),
        pytest.param("redis://:p/w@d@h/0", "redis://:***@h/0", id="unescaped-password"),
        pytest.param("rediss://h/0?password=pw&db=1", "rediss://h/0?password=***&db=1", id="query"),
        pytest.param("redis+sentinel://:pw@a:1,b:2/m", "redis+sentinel://:***@a:1,b:2/m", id="sentinel"),
        pytest.param("u:pw@h", "u:***@h", id="no-scheme"),
        pytest.param("rediss://h/0?ssl_password=pw&ssl_cert_reqs=none",
                     "rediss://h/0?ssl_password=***&ssl_cert_reqs=none", id="ssl-password"),
        pytest.param("redis://h/0?db=1&Password=pw", "redis://h/0?db=1&Password=***", id="any-case"),
        pytest.param("redis+sentinel://a:1/m?sentinel_password=pw&db=2",
                     "redis+sentinel://a:1/m?sentinel_password=***&db=2", id="sentinel-password"),
        pytest.param("redis://h?token=t&api_secret=s&ssl_keyfile=/k&x_auth=a&client_name=web",
                     "redis://h?token=***&api_secret=***&ssl_keyfile=***&x_auth=***&client_name=web",
                     id="token-secret-key-auth"),
        pytest.param("rediss://h?ssl%5Fpass%77ord=pw", "rediss://h?ssl%5Fpass%77ord=***", id="encoded-name"),
        pytest.param("redis://h?password", "redis://h?password", id="no-value"),
        pytest.param("redis://:p%40w%3Ad@h/0", "redis://:***@h/0", id="encoded-password"),
        pytest.param("redis://us%3Aer:pw@h", "redis://***:***@h", id="encoded-user"),
        pytest.param("redis://h/0#password=pw", "redis://h/0#***", id="fragment"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- cookie prefixes and cross-variable rules --------------------------------------------


@pytest.mark.parametrize(
    ("settings", "variables"),
    [
        pytest.param(
            {"cookie_name": "__Host-sg", "cookie_secure": "false"},
            ["SESSIONGUARD_COOKIE_SECURE"],
            id="host-insecure",
        ),
        pytest.param(
            {"cookie_name": "__Host-sg", "cookie_path": "/app"},
            ["SESSIONGUARD_COOKIE_PATH"],
            id="host-path",
        ),
        pytest.param(
            {"cookie_name": "__Host-sg", "cookie_domain": "example.com"},
            ["SESSIONGUARD_COOKIE_DOMAIN"],
            id="host-domain",
        ),
        pytest.param(
            {"cookie_name": "__host-sg", "cookie_domain": "example.com"},
            ["SESSIONGUARD_COOKIE_DOMAIN"],
            id="host-any-case",
        ),
        pytest.param(
            {
                "cookie_name": "__Host-sg",
                "cookie_secure": "false",
                "cookie_path": "/a",
                "cookie_domain": "example.com",
            },
            [
                "SESSIONGUARD_COOKIE_SECURE",
                "SESSIONGUARD_COOKIE_PATH",
                "SESSIONGUARD_COOKIE_DOMAIN",
            ],
            id="host-all-three",
        ),
        pytest.param(
            {"cookie_name": "__Secure-sg", "cookie_secure": "false"},
            ["SESSIONGUARD_COOKIE_SECURE"],
            id="secure-insecure",
        ),
        pytest.param(
            {"cookie_samesite": "none", "cookie_secure": "false"},
            ["SESSIONGUARD_COOKIE_SECURE"],
            id="samesite-none-insecure",
        ),
    ],
)
def test_cookie_conflicts(settings: dict[str, str], variables: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(**settings))
    assert len(caught.value.errors) == len(variables)
    for line, variable in zip(caught.value.errors, variables, strict=True):
        first = "COOKIE_SAMESITE" if "cookie_samesite" in settings else "COOKIE_NAME"
        assert line.startswith(f"SESSIONGUARD_{first}=")
        assert variable in line


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"cookie_name": "__Host-sg"}, id="host"),
        pytest.param(
            {"cookie_name": "__Secure-sg", "cookie_domain": "example.com", "cookie_path": "/app"},
            id="secure-with-domain-and-path",
        ),
        pytest.param({"cookie_samesite": "none"}, id="samesite-none-secure"),
        pytest.param({"cookie_secure": "false"}, id="plain-http-development"),
    ],
)
def test_cookie_combinations_allowed(settings: dict[str, str]) -> None:
    Config.from_env(env(**settings))


def test_conflicts_reported_with_other_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(idle_timeout="x", cookie_name="__Host-sg", cookie_path="/a"))
    assert [line.partition("=")[0] for line in caught.value.errors] == [
        "SESSIONGUARD_IDLE_TIMEOUT",
        "SESSIONGUARD_COOKIE_NAME",
    ]


# --- inheritance, properties, from_env ---------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "platform", "policy"),
    [
        pytest.param({}, "web", (3600, 30 * 86400, None), id="defaults"),
        pytest.param(
            {"idle_timeout": "30m", "max_sessions": "5"},
            "mobile",
            (1800, 2592000, 5),
            id="all-platforms",
        ),
        pytest.param(
            {"idle_timeout": "30m", "web_idle_timeout": "5m"},
            "web",
            (300, 2592000, None),
            id="platform-override",
        ),
        pytest.param(
            {"idle_timeout": "30m", "web_idle_timeout": "5m"},
            "desktop",
            (1800, 2592000, None),
            id="override-stays-on-its-platform",
        ),
        pytest.param(
            {"mobile_idle_timeout": "never", "mobile_absolute_timeout": "never"},
            "mobile",
            (None, None, None),
            id="platform-never",
        ),
        pytest.param(
            {"max_sessions": "3", "desktop_max_sessions": "unlimited"},
            "desktop",
            (3600, 2592000, None),
            id="platform-unlimited",
        ),
        pytest.param(
            {"max_sessions": "3", "desktop_max_sessions": "inherit"},
            "desktop",
            (3600, 2592000, 3),
            id="explicit-inherit",
        ),
        pytest.param(
            {"absolute_timeout": "never", "web_absolute_timeout": "1d"},
            "web",
            (3600, 86400, None),
            id="absolute-override",
        ),
    ],
)
def test_platform_policy(settings: dict[str, str], platform: str, policy: tuple[int | None, ...]) -> None:
    assert Config.from_env(env(**settings)).platform_policy(platform)[:3] == policy


def test_platform_policy_unknown_platform() -> None:
    with pytest.raises(ValueError, match="'tv' is not a platform"):
        Config(secret_key=KEY).platform_policy("tv")


def test_inherit_sentinel() -> None:
    assert repr(INHERIT) == "INHERIT"
    assert "web_idle_timeout=INHERIT" in repr(Config(secret_key=KEY))
    assert PLATFORMS == ("web", "mobile", "desktop")


@pytest.mark.parametrize(
    ("on_invalid", "redirect"),
    [
        pytest.param("anonymous", None, id="anonymous"),
        pytest.param("401", None, id="401"),
        pytest.param("redirect:/login", "/login", id="redirect"),
    ],
)
def test_on_invalid_redirect(on_invalid: str, redirect: str | None) -> None:
    assert Config(secret_key=KEY, on_invalid=on_invalid).on_invalid_redirect == redirect


def test_from_env_ignores_unset_empty_and_unknown() -> None:
    environ = env(idle_timeout="", cookie_domain="  ", test_redis_url="redis://h", typo="x")
    environ["OTHER_IDLE_TIMEOUT"] = "15x"
    config = Config.from_env(environ)
    assert config == Config(secret_key=KEY)


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONGUARD_SECRET_KEY", KEY)
    monkeypatch.setenv("SESSIONGUARD_WEB_MAX_SESSIONS", "2")
    assert Config.from_env().web_max_sessions == 2


@given(st.text(max_size=30))
def test_any_text_is_accepted_or_reported(text: str) -> None:
    environ = env(idle_timeout=text, web_max_sessions=text, on_invalid=text, local_cache=text)
    try:
        Config.from_env(environ)
    except ConfigurationError as exc:
        assert all(line.startswith("SESSIONGUARD_") for line in exc.errors)


@pytest.mark.parametrize("value", ["0", "100001", "many", "-3", "1.5"])
def test_session_ceiling_is_bounded(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config.from_env(env(session_ceiling=value))
    assert list(caught.value.errors) == [
        f"SESSIONGUARD_SESSION_CEILING={value!r} is not a session ceiling (use an integer from 1 to "
        "100000, such as 1000)"]


def test_session_ceiling_defaults_to_a_thousand_and_reaches_the_policy() -> None:
    assert Config.from_env(env()).session_ceiling == 1000
    config = Config.from_env(env(session_ceiling="25"))
    assert (config.session_ceiling, Policy.from_config(config).session_ceiling) == (25, 25)
