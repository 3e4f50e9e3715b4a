"""What a built wheel installs (``scripts/test-wheels``): the bare install
(``pip install sessionguard-middleware``) has none of the extras, and a setting
that needs one stops start-up naming it; the full one (``[all]``) has them all.

``SESSIONGUARD_INSTALL`` (``bare`` or ``full``) says which install the tests
run against; without it (the development tree) these tests are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import sessionguard
from sessionguard import ConfigurationError, SessionGuard

INSTALL = os.environ.get("SESSIONGUARD_INSTALL")
pytestmark = pytest.mark.skipif(INSTALL is None, reason="run by scripts/test-wheels on an installed wheel")

SECRET = "w" * 40
#: The module each extra brings, by extra.
EXTRAS = {
    "geoip": "maxminddb", "fast": "ua_parser_rs", "demo": "uvicorn", "dbsc": "cryptography",
    "metrics": "prometheus_client",
}
#: A setting that needs each extra (other than ``fast``, which nothing needs, and
#: ``demo``, which only the ``demo`` command does).
NEEDS = {
    "geoip": {"SESSIONGUARD_GEOIP_DATABASE": "/nonexistent/GeoLite2-City.mmdb"},
    "metrics": {"SESSIONGUARD_METRICS": "on"},
    "dbsc": {"SESSIONGUARD_DEVICE_BOUND": "on"},
}


def test_the_tests_run_on_the_installed_wheel() -> None:
    path = Path(sessionguard.__file__).resolve()
    assert Path(sys.prefix).resolve() in path.parents, f"{path} is not in the virtualenv {sys.prefix}"
    assert "src" not in path.parts  # not the source tree, nor an editable install of it


@pytest.mark.skipif(INSTALL != "bare", reason="the bare install")
@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_bare_install_has_no_extra(extra: str) -> None:
    assert importlib.util.find_spec(EXTRAS[extra]) is None


@pytest.mark.skipif(INSTALL != "bare", reason="the bare install")
@pytest.mark.parametrize("extra", sorted(NEEDS))
def test_a_setting_whose_extra_is_missing_names_it(extra: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, **NEEDS[extra]})
    assert f"sessionguard-middleware[{extra}]" in str(caught.value)
    assert next(iter(NEEDS[extra])) in str(caught.value)


@pytest.mark.skipif(INSTALL != "full", reason="the full install")
@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_full_install_has_every_extra(extra: str) -> None:
    assert importlib.util.find_spec(EXTRAS[extra]) is not None


@pytest.mark.skipif(INSTALL != "full", reason="the full install")
def test_the_full_install_starts_with_every_extra_in_use() -> None:
    guard = SessionGuard.from_env({"SESSIONGUARD_SECRET_KEY": SECRET, "SESSIONGUARD_METRICS": "on",
                                   "SESSIONGUARD_DEVICE_BOUND": "on"})
    try:
        assert guard.metrics is not None
    finally:
        guard.close()
