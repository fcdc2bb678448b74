"""Tests only: a wall clock shifted to SHIPPER_TEST_FAKE_EPOCH at interpreter start.

Put this directory on PYTHONPATH of an agent process (tests/test_crash_points.py) to run
the real agent "just before UTC midnight" without touching the machine's clock. Only
time.time/time_ns move (what the agent stamps and names indices with); monotonic clocks,
which asyncio uses, do not.
"""

from __future__ import annotations

import os
import time

_start = os.environ.get("SHIPPER_TEST_FAKE_EPOCH")
if _start:
    _offset_ns = int(float(_start) * 1e9) - time.time_ns()
    _real_time_ns = time.time_ns

    def _time() -> float:
        return (_real_time_ns() + _offset_ns) / 1e9

    def _time_ns() -> int:
        return _real_time_ns() + _offset_ns

    time.time = _time
    time.time_ns = _time_ns
