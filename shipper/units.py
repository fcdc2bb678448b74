"""Value conventions shared by every config key: durations and sizes.

One parser for each so that `10s` or `64MiB` means the same thing everywhere, and a
bad value names what was expected instead of failing somewhere deep in the agent.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_duration(value: object) -> float:
    """Seconds from `<n>ms|s|m|h`; a bare number is not accepted, because `10` is ambiguous."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"expected a duration like 500ms, 10s, 5m or 1h, got {value!r}")


def parse_size(value: object) -> int:
    """Bytes from `<n>KiB|MiB|GiB` (or a plain integer number of bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512KiB, 64MiB or 1GiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    raise ValueError(f"expected a size like 512KiB, 64MiB or 1GiB, got {value!r}")


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GiB"
