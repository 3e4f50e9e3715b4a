"""The login city, from a GeoIP2 / GeoLite2 City database (``GEOIP_DATABASE``).

Read with ``maxminddb`` alone (the ``geoip`` extra: ``pip install
'sessionguard-middleware[geoip]'``), which reads ``.mmdb`` files without
MaxMind's web-service client and its HTTP stack. The database is opened and
checked when the guard is built, so that a missing, unreadable or wrong file
stops start-up instead of failing every login.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ConfigurationError

VARIABLE = "SESSIONGUARD_GEOIP_DATABASE"


class CityDatabase:
    """An open City database. :meth:`open` checks it; :meth:`city` reads it."""

    def __init__(self, reader: Any, path: str) -> None:
        self._reader = reader
        self.path = path
        #: what the file says it is, such as ``GeoLite2-City``
        self.kind: str = reader.metadata().database_type

    @classmethod
    def open(cls, path: str) -> CityDatabase:
        """Open the database at ``path``.

        :raises ConfigurationError: naming ``GEOIP_DATABASE``: ``maxminddb``
            is not installed, or the file cannot be read, is not a MaxMind
            database, or is not a City database.
        """
        try:
            import maxminddb
        except ImportError:
            raise ConfigurationError([
                f"{VARIABLE} is set, but the GeoIP reader is not installed"
                " (pip install 'sessionguard-middleware[geoip]')"
            ]) from None
        if os.path.isdir(path):
            raise _bad(path, "is a directory (use the path of a GeoIP2 or GeoLite2 City .mmdb file)")
        try:
            reader = maxminddb.open_database(path)
        except OSError as exc:
            raise _bad(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
        except (maxminddb.InvalidDatabaseError, ValueError):
            raise _bad(path, "is not a MaxMind database (use a GeoIP2 or GeoLite2 City .mmdb file)") from None
        database = cls(reader, path)
        if "City" not in database.kind:
            reader.close()
            raise _bad(path, f"is a {database.kind} database, not a City database (use GeoLite2-City)")
        return database

    def city(self, ip: str) -> str | None:
        """The English name of the city of ``ip``, or ``None`` (unknown address,
        no city, or not an address)."""
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        names = (record.get("city") or {}).get("names") or {}
        name = names.get("en")
        return name if isinstance(name, str) else None

    def close(self) -> None:
        """Release the file."""
        self._reader.close()


def _bad(path: str, tail: str) -> ConfigurationError:
    return ConfigurationError([f"{VARIABLE}={path!r} {tail}"])
