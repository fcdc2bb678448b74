"""Elasticsearch itself stopped (SIGKILL, as a crash) and restarted mid-stream: the agent
waits with bounded memory, and every line ends up indexed exactly once."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_agent_e2e import assert_exactly_once, count, writer

pytestmark = pytest.mark.integration

# With max_inflight_bytes 4MiB: the interpreter and imports (~55 MiB) plus the budget and
# its copies; benchmarks/outage_memory.py measures the long version (RESULTS.md).
RSS_BOUND_MIB = 100


# Ports 9243-9249 (transport +100) belong to this area's throwaway servers; the first
# free one is taken so that two runs, or a benchmark on 9241/9242, do not collide.
PORTS = range(9243, 9250)


def _free(port: int) -> bool:
    for p in (port, port + 100):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def own_es() -> Any:
    import es  # scripts/es.py

    name = f"outage-{secrets.token_hex(3)}"
    port = next((p for p in PORTS if _free(p)), None)
    if port is None:
        pytest.skip(f"no free port for an own Elasticsearch in {PORTS}")
    srv = es.start(name, port=port, fresh=True)
    srv["port"] = port
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
    peak = 0.0
    for _ in range(120):  # 30 s down (the proof) while the writers go on: the readers
        # stop, memory stays within a bound
        peak = max(peak, rss_mib(agent.proc.pid))
        time.sleep(0.25)
    print(f"agent peak RSS while Elasticsearch was down 30 s: {peak:.1f} MiB")
    assert agent.proc.poll() is None, "the agent must wait for Elasticsearch, not exit"
    assert peak < RSS_BOUND_MIB, f"agent RSS {peak:.0f} MiB while Elasticsearch was down"
    es.start(name, port=srv["port"])
    assert w.wait(120) == 0
    assert_exactly_once(client, index, root)
    log = agent.log_path.read_text(errors="replace")  # all of it: log() is its last 5,000 characters
    assert "cannot reach Elasticsearch" in log and "delivering again" in log
    assert agent.stop() == 0
