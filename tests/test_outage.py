"""Elasticsearch itself stopped (SIGKILL, as a crash) and restarted mid-stream: the agent
waits with bounded memory, and every line ends up indexed exactly once."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_agent_e2e import assert_exactly_once, count, writer

pytestmark = pytest.mark.integration


@pytest.fixture
def own_es() -> Any:
    import es  # scripts/es.py

    name = f"outage-{secrets.token_hex(3)}"
    srv = es.start(name, port=9231, fresh=True)
    yield es, name, srv
    es.stop(name)
    import shutil

    shutil.rmtree(srv["dir"], ignore_errors=True)


def test_es_killed_and_restarted_mid_stream(own_es: Any, agent_factory: Any, tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch

    es, name, srv = own_es
    client = Elasticsearch(srv["url"], request_timeout=30)
    input_id = f"outage-{secrets.token_hex(3)}"
    index = f"shipper-logs-{input_id}-*"
    root = tmp_path / "models"
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": input_id, "paths": [f"{root}/**/*.log"], "scan_interval": "1s"}],
            "output": {"elasticsearch": {"hosts": [srv["url"]], "backoff_max": "2s", "request_timeout": "10s"}},
            "http": {"listen": None},
            "max_inflight_bytes": "4MiB",
        }
    ).start()
    w = writer(root, ["a/train.log", "b/train.log"], 60_000, seed=5, pace=0.0005)
    wait_for(lambda: count(client, index) > 5_000, 60, "the first documents")
    es.kill(name)  # a crash: requests in flight are cut
    time.sleep(5)
    assert agent.proc.poll() is None, "the agent must wait for Elasticsearch, not exit"
    es.start(name, port=9231)
    assert w.wait(120) == 0
    assert_exactly_once(client, index, root)
    log = agent.log()
    assert "cannot reach Elasticsearch" in log and "delivering again" in log
    assert agent.stop() == 0
