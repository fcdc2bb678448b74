"""Review of a shutdown while readers wait for room (send5's item: "a shutdown while
readers wait"): with Elasticsearch unreachable the in-flight budget fills, the reader waits
for an acknowledgement that never comes, and SIGTERM must still end the agent (shutdown_timeout
bounds the wait for acknowledgements; what was not acknowledged is read again next time).
Before the fix the agent waited for its readers forever: a reader waiting for room was
never told to stop."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from shipper.metrics import Metrics
from shipper.pipeline import Capacity
from tests.conftest import wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("threads", [0, 1])
def test_sigterm_ends_the_agent_while_its_reader_waits_for_room(
    agent_factory: Any, tmp_path: Path, threads: int
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "a.log", "w") as f:
        for i in range(60_000):
            f.write(f"2026-11-25 07:30:{i % 60:02d},123 - trainer - INFO - step {i} loss=0.{i % 997:03d}\n")
    agent = agent_factory({
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"id": "down", "paths": [f"{logs}/*.log"], "format": "python"}],
        "output": {"elasticsearch": {"hosts": [f"http://127.0.0.1:{_closed_port()}"]}},
        "max_inflight_bytes": "256KiB",
        "shutdown_timeout": "1s",
        "parse_threads": threads,
    })
    agent.start()
    wait_for(lambda: "failed" in agent.log(), 60, "a refused request")
    agent.signal(signal.SIGTERM)
    assert agent.wait(60) == 0, agent.log()  # before: never ended (its reader waited for room)
    assert "will be sent again at the next start" in agent.log()


async def test_a_closed_capacity_stops_its_waiters_and_lets_what_fits_pass() -> None:
    cap = Capacity(1000, Metrics())
    await cap.acquire(800)
    waiter = asyncio.create_task(cap.acquire(500))
    await asyncio.sleep(0)
    assert cap.waiting == 1
    await cap.close()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled() and cap.waiting == 0 and cap.used == 800
    await cap.acquire(100)  # fits: passes as before
    with pytest.raises(asyncio.CancelledError):
        await cap.acquire(500)  # would wait: refused at once
    assert cap.used == 900


def test_sigterm_ends_run_once_waiting_for_acknowledgements(agent_factory: Any, tmp_path: Path) -> None:
    """`run --once` has read everything and waits (without a deadline) for it to be
    acknowledged; with Elasticsearch unreachable, SIGTERM must still end it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("".join(f"2026-11-25 07:30:01,123 - t - INFO - line {i}\n" for i in range(100)))
    agent = agent_factory({
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"id": "down", "paths": [f"{logs}/*.log"], "format": "python"}],
        "output": {"elasticsearch": {"hosts": [f"http://127.0.0.1:{_closed_port()}"]}},
        "shutdown_timeout": "1s",
    })
    agent.start("--once")
    wait_for(lambda: "failed" in agent.log(), 60, "a refused request")
    agent.signal(signal.SIGTERM)
    assert agent.wait(60) == 0, agent.log()
