"""Tests only: stop the event loop on demand, to force a race deterministically.

With `SHIPPER_TEST_STALL=<path>`, a task checks every 10 ms whether <path> exists; while
it does, the loop is blocked (`time.sleep`: no scan, no read, no send), after writing
<path>.stalled so that the test knows. Watchdog's thread goes on meanwhile (it pins new
files), as it would while a loaded agent's loop is busy parsing. The test then moves,
copies and truncates files "between two looks" of the agent, removes <path>, and the
agent finds what a slow loop would have found.
"""

from __future__ import annotations

import asyncio
import os
import time

_started = False


def start() -> None:
    """Start the hook once per process when the environment asks for it."""
    global _started
    path = os.environ.get("SHIPPER_TEST_STALL")
    if not path or _started:
        return
    _started = True
    asyncio.get_running_loop().create_task(_watch(path), name="test-stall")


async def _watch(path: str) -> None:
    ack = path + ".stalled"
    while True:
        await asyncio.sleep(0.01)
        if os.path.exists(path):
            with open(ack, "w") as f:
                f.write(f"{os.getpid()}\n")
            while os.path.exists(path):
                time.sleep(0.01)  # blocks the loop: this is the point
            os.unlink(ack)
