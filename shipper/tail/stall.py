"""Tests only: stop the event loop on demand, to force a race deterministically.

With `SHIPPER_TEST_STALL=<path>`, a task checks every 10 ms whether <path> exists; while
it does, the loop is blocked (`time.sleep`: no scan, no read, no send), after writing
<path>.stalled so that the test knows. Watchdog's thread goes on meanwhile (it pins new
files), as it would while a loaded agent's loop is busy parsing. The test then moves,
copies and truncates files "between two looks" of the agent, removes <path>, and the
agent finds what a slow loop would have found.

`point(name)` stops the loop at a named place inside a step (between a read and what
follows it, where no await lets the loop-level hook in) while <path>.<name> exists:
the file system changes at that very moment. Free when the hook is not enabled.
"""

from __future__ import annotations

import asyncio
import os
import time

_started = False
_path: str | None = None  # SHIPPER_TEST_STALL, once start() saw it


def start() -> None:
    """Start the hook once per process when the environment asks for it."""
    global _started, _path
    path = os.environ.get("SHIPPER_TEST_STALL")
    if not path or _started:
        return
    _started, _path = True, path
    asyncio.get_running_loop().create_task(_watch(path), name="test-stall")


def point(name: str) -> None:
    """Block here (the whole loop) while <path>.<name> exists; <path>.<name>.stalled says so."""
    if _path is None:
        return
    marker = f"{_path}.{name}"
    if os.path.exists(marker):
        _block(marker)


def _block(marker: str) -> None:
    ack = marker + ".stalled"
    with open(ack, "w") as f:
        f.write(f"{os.getpid()}\n")
    while os.path.exists(marker):
        time.sleep(0.01)  # blocks the loop: this is the point
    os.unlink(ack)


async def _watch(path: str) -> None:
    while True:
        await asyncio.sleep(0.01)
        if os.path.exists(path):
            _block(path)
