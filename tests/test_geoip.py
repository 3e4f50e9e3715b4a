"""Login city from a GeoIP2 City database (``GEOIP_DATABASE``, read with
``maxminddb``, the ``geoip`` extra), resolved once at login from the client
address (honouring ``TRUSTED_PROXIES``), on both shells; a database that
cannot serve is a start-up error. The tests build their own tiny databases
with ``mmdb-writer``; MaxMind's public test database is a cross-check."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from apps import flask_app, starlette_app
from conftest import SECRET
from sessionguard import Config, ConfigurationError, SessionGuard

#: MaxMind's public test database (from the MaxMind-DB repository's ``test-data/``,
#: MIT licensed: ``tests/data/GeoLite2-City-Test.LICENSE-MIT``).
MAXMIND_TEST_DB = Path(__file__).resolve().parent / "data" / "GeoLite2-City-Test.mmdb"

NETWORKS = {
    "198.51.100.0/24": "Testville",
    "2001:db8:1::/48": "Zürich",
    "203.0.113.0/24": "Proxyton",  # where the untrusted proxy sits
}


def city_record(name: str) -> dict[str, Any]:
    return {
        "city": {"geoname_id": 1, "names": {"en": name}},
        "country": {"geoname_id": 2, "iso_code": "ZZ", "names": {"en": "Testland"}},
    }


def write_database(path: Path, kind: str) -> str:
    """A database of type ``kind`` (``GeoLite2-City``, ...) holding :data:`NETWORKS`."""
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type=kind, languages=["en"],
        description="sessionguard test cities",
    )
    for network, name in NETWORKS.items():
        writer.insert_network(IPSet([network]), city_record(name))
    writer.to_db_file(str(path))
    return str(path)


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A GeoLite2-City-shaped database holding :data:`NETWORKS`."""
    path = write_database(tmp_path_factory.mktemp("geoip") / "cities.mmdb", "GeoLite2-City")
    with maxminddb.open_database(path) as reader:  # the file really is a City database
        assert reader.metadata().database_type == "GeoLite2-City"
    return path


Login = Callable[..., dict[str, Any]]


@pytest.fixture(params=["asgi", "wsgi"])
def login_from(request: pytest.FixtureRequest) -> Login:
    """``login_from(guard, peer, headers={})``: log in as a client whose
    socket address is ``peer``; returns the login's session JSON."""
    shell = str(request.param)

    def login(guard: SessionGuard, peer: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        if shell == "asgi":
            import asyncio

            async def run() -> httpx.Response:
                transport = httpx.ASGITransport(app=starlette_app(guard), client=(peer, 40000))
                async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
                    return await client.post("/login", json={"user": "ada"}, headers=headers)

            response = asyncio.run(run())
        else:
            transport = httpx.WSGITransport(app=flask_app(guard), remote_addr=peer)
            with httpx.Client(transport=transport, base_url="https://testserver") as client:
                response = client.post("/login", json={"user": "ada"}, headers=headers)
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()["session"]
        stored = guard.store.list_sessions(user_id="ada", platform=None, limit=1, cursor=None).items[0]
        assert stored.city == session["city"] and stored.ip == session["ip"]  # kept with the record
        return session

    return login


def make_guard(database: str, **settings: Any) -> SessionGuard:
    return SessionGuard(Config(secret_key=SECRET, geoip_database=database, **settings))


@pytest.mark.parametrize(
    ("peer", "city"),
    [
        pytest.param("198.51.100.7", "Testville", id="ipv4"),
        pytest.param("2001:db8:1::42", "Zürich", id="ipv6"),
        pytest.param("::ffff:198.51.100.9", "Testville", id="ipv4-mapped-ipv6"),
        pytest.param("192.0.2.1", None, id="ipv4-unknown"),
        pytest.param("2001:db8:2::1", None, id="ipv6-unknown"),
        pytest.param("127.0.0.1", None, id="loopback"),
    ],
)
def test_city_resolved_at_login(city_db: str, login_from: Login, peer: str, city: str | None) -> None:
    session = login_from(make_guard(city_db), peer)
    assert session["city"] == city


def test_no_database_means_no_city(login_from: Login) -> None:
    guard = SessionGuard(Config(secret_key=SECRET))
    assert login_from(guard, "198.51.100.7")["city"] is None


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded_for", "ip", "city"),
    [
        pytest.param("10.0.0.0/8", "10.1.2.3", "198.51.100.7", "198.51.100.7", "Testville",
                     id="trusted-proxy"),
        pytest.param("10.0.0.0/8", "10.1.2.3", "192.0.2.1, 198.51.100.7, 10.9.9.9", "198.51.100.7",
                     "Testville", id="trusted-proxy-chain"),
        pytest.param("fd00::/8", "fd00::1", "2001:db8:1::9", "2001:db8:1::9", "Zürich",
                     id="trusted-ipv6-proxy"),
        pytest.param("10.0.0.0/8", "203.0.113.5", "198.51.100.7", "203.0.113.5", "Proxyton",
                     id="untrusted-proxy"),
        pytest.param("", "203.0.113.5", "198.51.100.7", "203.0.113.5", "Proxyton",
                     id="no-trusted-proxies"),
    ],
)
def test_city_behind_proxies(
    city_db: str, login_from: Login, trusted: str, peer: str, forwarded_for: str, ip: str, city: str
) -> None:
    guard = make_guard(city_db, trusted_proxies=trusted)
    session = login_from(guard, peer, {"X-Forwarded-For": forwarded_for})
    assert (session["ip"], session["city"]) == (ip, city)


def test_city_is_resolved_once_at_login(city_db: str, login_from: Login) -> None:
    guard = make_guard(city_db)
    session = login_from(guard, "198.51.100.7")
    # Later requests, from anywhere, keep the login city.
    record = guard.store.check(session["id"], passive=False).record
    assert record is not None and record.city == "Testville" and record.ip == "198.51.100.7"


@pytest.mark.parametrize(
    ("peer", "city"),
    [
        pytest.param("81.2.69.142", "London", id="london"),
        pytest.param("89.160.20.112", "Linköping", id="linkoping"),
        pytest.param("2001:480::1", "San Diego", id="ipv6-san-diego"),
        pytest.param("1.1.1.1", None, id="unknown"),
    ],
)
def test_maxmind_test_database(login_from: Login, peer: str, city: str | None) -> None:
    assert login_from(make_guard(str(MAXMIND_TEST_DB)), peer)["city"] == city


# -- a database that cannot serve stops start-up (it made every login a 500) ----------------------


def test_a_missing_or_broken_database_is_a_start_up_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a database" * 100)
    country = write_database(tmp_path / "country.mmdb", "GeoLite2-Country")
    cases = {
        str(tmp_path / "missing.mmdb"): "cannot be read (No such file or directory)",
        str(tmp_path): "is a directory",
        str(junk): "is not a MaxMind database",
        country: "is a GeoLite2-Country database, not a City database",
    }
    for path, tail in cases.items():
        with pytest.raises(ConfigurationError) as raised:
            SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_GEOIP_DATABASE": path})
        [line] = raised.value.errors
        assert line.startswith(f"SESSIONGUARD_GEOIP_DATABASE={path!r} {tail}"), line


def test_without_the_geoip_extra_a_database_is_a_start_up_error(
    city_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "maxminddb", None)  # as if not installed: import fails
    with pytest.raises(ConfigurationError) as raised:
        make_guard(city_db)
    assert list(raised.value.errors) == [
        "SESSIONGUARD_GEOIP_DATABASE is set, but the GeoIP reader is not installed"
        " (pip install 'sessionguard-middleware[geoip]')"
    ]
    SessionGuard(Config(secret_key=SECRET)).close()  # without a database nothing is needed


def test_close_releases_the_database(city_db: str) -> None:
    guard = make_guard(city_db)
    assert guard.geoip is not None and guard.geoip.kind == "GeoLite2-City"
    guard.close()
    assert guard.city("198.51.100.7") is None
