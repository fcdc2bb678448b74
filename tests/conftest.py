"""Shared fixtures: the real Elasticsearch (one per session) and the agent as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def es_plain() -> Iterator[dict[str, Any]]:
    """The `plain` server of scripts/es.py, started once for the whole session.

    SHIPPER_TEST_ES_URL points the tests at a server that is already running instead.
    """
    if os.environ.get("SHIPPER_TEST_ES_URL"):
        yield {"url": os.environ["SHIPPER_TEST_ES_URL"]}
        return
    import es  # scripts/es.py

    was_running = es.info("plain") is not None and _healthy(es.info("plain"))
    info = es.start("plain")
    yield info
    if not was_running and not os.environ.get("SHIPPER_KEEP_ES"):
        es.stop("plain")


def _healthy(info: dict[str, Any] | None) -> bool:
    if not info:
        return False
    try:
        from elasticsearch import Elasticsearch

        Elasticsearch(info["url"], request_timeout=2).cluster.health()
        return True
    except Exception:
        return False


@pytest.fixture
def es_client(es_plain: dict[str, Any]) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_plain["url"], request_timeout=60)
    yield client
    client.close()


class AgentProcess:
    """`shipper run` as a real process, stopped by real signals."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> AgentProcess:
        logf = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "run", "-c", str(self.config), *extra],
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        logf.close()
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"agent did not stop on SIGTERM; log:\n{self.log()}") from None

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"agent did not finish; log:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[AgentProcess] = []

    def make(cfg: dict[str, Any], name: str = "agent") -> AgentProcess:
        home = tmp_path / "agents"  # away from the log globs of the tests
        home.mkdir(exist_ok=True)
        path = home / f"{name}.yml"
        path.write_text(yaml.safe_dump(cfg))
        a = AgentProcess(path, home / f"{name}.out")
        made.append(a)
        return a

    yield make
    for a in made:
        if a.proc is not None and a.proc.poll() is None:
            a.proc.kill()
            a.proc.wait()


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
