"""Review of start/stop with Elasticsearch down: one that refuses connections (the review
found SIGTERM ends the agent in ~0.1 s, run or ``run --once``, parse_threads 0 or 1) and one
that accepts them and never answers (a hung node; a host behind a firewall that drops
packets looks the same: every connection waits for its timeout).

In the second case a SIGTERM that arrives while the agent starts (its cluster health check
and its check of the target indices, ~10 s each before they time out) is not looked at until
both have timed out; the agent then starts its inputs anyway. An input whose ``run`` took
its first step after ``stop()`` scanned and opened its files with readers that were never
told to stop: with everything read and within the in-flight budget, the agent then waited
for them forever (a file too big for the budget ended through the closed budget). Both were
there at the session's start (a174564). Both are fixed: ``InputTailer.run`` returns when stopped
before its first step, and ``App.run`` races each start-up step against the stop signal
(``App._unless_stopped``)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_agent_e2e import agent_config


@pytest.fixture
def silent_es() -> Iterator[socket.socket]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.settimeout(60)
        yield s


def _sigterm_while_starting(agent_factory: Any, tmp_path: Path, silent: socket.socket) -> str:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("".join(f"2026-11-25 07:30:01,123 - t - INFO - line {i}\n" for i in range(20_000)))
    cfg = agent_config(f"http://127.0.0.1:{silent.getsockname()[1]}", logs, tmp_path / "data", "silent")
    cfg["shutdown_timeout"] = "2s"
    agent = agent_factory(cfg)
    agent.start()
    conn, _ = silent.accept()  # the health check waits: the signal handlers are set
    agent.signal(signal.SIGTERM)
    try:
        assert agent.wait(150) == 0, agent.log()  # before: never ended (a reader never told to stop)
    finally:
        conn.close()
    log: str = agent.log()
    assert "received SIGTERM" in log and "INFO shipper: stopped" in log, log
    return log


def test_sigterm_while_starting_against_a_silent_elasticsearch_ends(
    agent_factory: Any, tmp_path: Path, silent_es: socket.socket
) -> None:
    _sigterm_while_starting(agent_factory, tmp_path, silent_es)


def test_sigterm_while_starting_starts_no_input(agent_factory: Any, tmp_path: Path, silent_es: socket.socket) -> None:
    log = _sigterm_while_starting(agent_factory, tmp_path, silent_es)
    assert "shipping 1 input(s)" not in log, log
