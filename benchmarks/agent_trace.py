"""Run the agent with timestamps of each step a line takes (for benchmarks/latency.py --trace).

    SHIPPER_TRACE=/tmp/trace.txt python benchmarks/agent_trace.py run -c shipper.yml

Writes one line per step, CLOCK_MONOTONIC seconds (comparable with the writer's
``time.monotonic()`` in another process on Linux):

    H t                     a watchdog hint reached the loop
    S t start end           a parsed chunk [start, end) handed to the pipeline (read + parsed)
    B t0 t1 end             a sender waited for the registry write (the read times on disk)
    D t0 t1 end             a bulk request carrying up to offset ``end``: sent at t0, acknowledged at t1

The patches wrap methods; the agent's own behaviour is unchanged apart from the writes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper import cli, pipeline
from shipper.tail import input as tail_input

_out = open(os.environ["SHIPPER_TRACE"], "w", buffering=1)  # noqa: SIM115 - for the process's life


def _patch() -> None:
    submit = pipeline.Pipeline.submit
    start = pipeline.Pipeline.start
    hint = tail_input.InputTailer.hint

    async def traced_submit(self: Any, batch: Any, watermark: Any, *a: Any, **k: Any) -> None:
        _out.write(f"S {time.monotonic():.6f} {batch.start_offset} {batch.end_offset}\n")
        await submit(self, batch, watermark, *a, **k)

    def traced_start(
        self: Any,
        deliver: Callable[[list[Any]], Awaitable[None]],
        before_send: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        async def d(parts: list[Any]) -> None:
            end = max(seg.batch.end_offset for seg, _ in parts)
            t0 = time.monotonic()
            await deliver(parts)
            _out.write(f"D {t0:.6f} {time.monotonic():.6f} {end}\n")

        async def b(version: int) -> None:
            t0 = time.monotonic()
            if before_send is not None:
                await before_send(version)
            _out.write(f"B {t0:.6f} {time.monotonic():.6f} 0\n")

        start(self, d, b)

    def traced_hint(self: Any, path: str, structural: bool) -> None:
        _out.write(f"H {time.monotonic():.6f}\n")
        hint(self, path, structural)

    pipeline.Pipeline.submit = traced_submit  # type: ignore[method-assign]
    pipeline.Pipeline.start = traced_start  # type: ignore[method-assign]
    tail_input.InputTailer.hint = traced_hint  # type: ignore[method-assign]


if __name__ == "__main__":
    _patch()
    sys.exit(cli.main(sys.argv[1:]))
