"""Where the Redis store lives: ``STORE_URL`` parsed into a :class:`Target`
(``redis://``, ``rediss://``, ``redis+sentinel://``, ``redis+cluster://``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis

from ...config import redact_url
from ...errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives, from ``STORE_URL``."""

    kind: str  # "redis", "sentinel" or "cluster"
    url: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"


#: The query options a ``redis://`` URL may carry: redis-py's names, those whose
#: value is text or a number (the store sets the rest itself: the protocol, the
#: retries, bytes replies). redis-py hands any other name to the connection's
#: constructor, a ``TypeError`` at the first request.
OPTIONS = frozenset({
    "db", "username", "password", "client_name", "lib_name", "lib_version", "max_connections",
    "timeout", "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "health_check_interval",
})
#: ... and a ``rediss://`` URL also these
TLS_OPTIONS = frozenset({
    "ssl_ca_certs", "ssl_ca_data", "ssl_ca_path", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile",
    "ssl_password", "ssl_ciphers", "ssl_check_hostname", "ssl_min_version", "ssl_validate_ocsp",
    "ssl_validate_ocsp_stapled", "ssl_ocsp_expected_cert",
})
#: ... and a ``redis+sentinel://`` or ``redis+cluster://`` URL only this
CLUSTER_OPTIONS = frozenset({"db"})


def parse_url(url: str) -> Target:
    """``redis://``, ``rediss://``, ``redis+sentinel://h:p[,h:p]/service[?db=N]``
    or ``redis+cluster://h:p[,h:p]``. Raises :class:`ConfigurationError`, also
    for an option the store would not use (redis-py would fail at the first
    request, or ignore it)."""
    scheme = url.partition("://")[0].lower()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise _bad_url(url, "host[:port][/db], as in redis://h:6379/0") from None
    known = {"redis": OPTIONS, "rediss": OPTIONS | TLS_OPTIONS}.get(scheme, CLUSTER_OPTIONS)
    unknown = sorted(set(parse_qs(parts.query, keep_blank_values=True)) - known)
    if unknown:
        raise ConfigurationError([
            f"SESSIONGUARD_STORE_URL={redact_url(url)!r} has an option the store does not know:"
            f" {', '.join(unknown)} (use {', '.join(sorted(known))})"
        ])
    if scheme in ("redis", "rediss"):
        try:  # redis-py would only notice at the first connection, inside a request
            parts.port  # noqa: B018 - raises ValueError on a bad port
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError:
            raise _bad_url(url, "host[:port][/db] with valid options, as in redis://h:6379/0") from None
        return Target("redis", url=url)
    options: dict[str, Any] = {}
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if userinfo:
        user, colon, password = userinfo.partition(":")
        options.update(username=unquote(user) or None, password=unquote(password) if colon else None)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        hosts = tuple(_host(h) for h in hostlist.split(","))
        if "db" in query:
            options["db"] = int(query["db"])
    except ValueError:
        raise _bad_url(url, "a host:port list") from None
    if scheme == "redis+cluster":
        return Target("cluster", hosts=hosts, options=options)
    service = parts.path.strip("/")
    if not service:
        raise _bad_url(url, "a service name after the hosts, as in redis+sentinel://h:26379/mymaster")
    return Target("sentinel", hosts=hosts, service=service, options=options)


def _host(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(text)
    return host.strip("[]"), int(port)


def _bad_url(url: str, expected: str) -> ConfigurationError:
    return ConfigurationError([f"SESSIONGUARD_STORE_URL={redact_url(url)!r} needs {expected}"])
