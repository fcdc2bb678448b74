"""A local three-node cluster (three processes of the same distribution): one node killed
mid-stream and brought back; every line indexed exactly once, and the agent says what happened."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_agent_e2e import assert_exactly_once, count, writer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture(scope="module")
def trio() -> Any:
    import es  # scripts/es.py

    srv = es.start("trio")
    yield es, srv
    es.stop("trio")


def test_node_killed_mid_stream_and_back(trio: Any, agent_factory: Any, tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch

    es, srv = trio
    client = Elasticsearch(srv["urls"][0], request_timeout=30)
    input_id = f"trio-{secrets.token_hex(3)}"
    index = f"shipper-logs-{input_id}-*"
    root = tmp_path / "models"
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": input_id, "paths": [f"{root}/**/*.log"], "scan_interval": "1s"}],
            # one node named, the others found by sniffing
            "output": {
                "elasticsearch": {
                    "hosts": [srv["urls"][0]],
                    "sniff": True,
                    "backoff_max": "2s",
                    "request_timeout": "10s",
                }
            },
            "http": {"listen": None},
            "max_inflight_bytes": "4MiB",
        }
    ).start()
    w = writer(root, ["a/train.log", "b/train.log", "c/eval.log"], 60_000, seed=7, pace=0.0005)
    wait_for(lambda: count(client, index) > 5_000, 60, "the first documents")
    es.kill_node("trio", 2)  # not the node the agent was given
    time.sleep(3)
    es.start_node("trio", 2)
    assert w.wait(120) == 0
    assert_exactly_once(client, index, root)
    assert agent.stop() == 0
    log = agent.log()
    if "ERROR shipper" in log:  # what failed is said, and so is the recovery
        assert "delivering again" in log
