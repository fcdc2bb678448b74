"""The host zone's offset table: the UTC shortcut must give what sampling the zone gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys, time
from _fastparse import _formats
host = _formats.zone_table(None)
named = _formats.zone_table(sys.argv[1])
print(_formats._host_is_utc(), host == named, len(host[0]) // 8)
"""


def probe(tz: str) -> list[str]:
    env = {**os.environ, "TZ": tz}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, tz], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return out.split()


def test_utc_host_takes_the_utc_table() -> None:
    assert probe("UTC") == ["True", "True", "1"]


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/Europe/Paris").exists(), reason="no tzdata")
def test_zone_with_daylight_saving_is_sampled() -> None:
    is_utc, same, changes = probe("Europe/Paris")
    assert (is_utc, same) == ("False", "True")
    assert int(changes) > 200  # two a year since 1976
