"""Faults injected around the real Elasticsearch by a proxy (tests/faultproxy.py): 429 and
503 answers, delays, connections cut before the request and cut after Elasticsearch did
the work, items rejected one by one. In every case every line is indexed exactly once."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from .faultproxy import Fault, FaultProxy
from .test_agent_e2e import assert_exactly_once, writer

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(es_plain: dict[str, Any]) -> Any:
    with FaultProxy(es_plain["url"]) as p:
        yield p


def ship_through(
    proxy: FaultProxy, es_client: Any, agent_factory: Any, tmp_path: Path, lines: int = 20_000, **es_out: Any
) -> Any:
    input_id = f"fault-{secrets.token_hex(3)}"
    root = tmp_path / "models"
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": input_id, "paths": [f"{root}/**/*.log"], "scan_interval": "1s"}],
            "output": {
                "elasticsearch": {
                    "hosts": [proxy.url],
                    "backoff_initial": "50ms",
                    "backoff_max": "500ms",
                    "request_timeout": "5s",
                    "bulk_max_events": 2000,
                    **es_out,
                }
            },
            "http": {"listen": None},
        }
    ).start()
    w = writer(root, ["a/train.log", "b/train.log"], lines, seed=11, pace=0.0002)
    assert w.wait(120) == 0
    assert_exactly_once(es_client, f"shipper-logs-{input_id}-*", root)
    assert agent.stop() == 0
    return agent


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=429, count=5),
        Fault("status", status=503, count=5),
        Fault("status", status=502, count=3),
        Fault("delay", seconds=6.0, count=2),  # longer than request_timeout: the client gives up, ES did the work
        Fault("cut_before", count=5),  # aiohttp silently resends once after a cut before any answer
        Fault("cut_after", count=5),  # Elasticsearch indexed it, the agent never heard: replays answer 409
        Fault("item_status", status=429, every=3, count=5),
    ],
    ids=lambda f: f"{f.kind}-{getattr(f, 'status', '') or ''}",
)
def test_fault_then_exactly_once(
    fault: Fault, proxy: FaultProxy, es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    fault.after = 2  # let some requests through first
    proxy.add(fault)
    agent = ship_through(proxy, es_client, agent_factory, tmp_path)
    applied = [r for r in proxy.requests if r.fault]
    assert applied, "the fault was never applied"
    assert "Traceback" not in agent.log()


def test_too_large_splits(proxy: FaultProxy, es_client: Any, agent_factory: Any, tmp_path: Path) -> None:
    proxy.add(Fault("status", status=413, count=3))
    ship_through(proxy, es_client, agent_factory, tmp_path, lines=5_000)


def test_api_key_header_is_sent(proxy: FaultProxy, es_client: Any, agent_factory: Any, tmp_path: Path) -> None:
    """The minimal distribution cannot make API keys: check the header through the proxy."""
    ship_through(proxy, es_client, agent_factory, tmp_path, lines=1_000, api_key="c2hpcHBlcjpzZWNyZXQ=")
    bulk = [r for r in proxy.requests if r.path.startswith("/_bulk")]
    assert bulk and all(r.headers.get("authorization") == "ApiKey c2hpcHBlcjpzZWNyZXQ=" for r in bulk)


def test_not_elasticsearch_is_a_clear_error(proxy: FaultProxy, agent_factory: Any, tmp_path: Path) -> None:
    import urllib.request

    from .test_http_listener import free_port, get

    proxy.add(Fault("not_elasticsearch", path=".*", count=None))
    port = free_port()
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": "x", "paths": [f"{tmp_path}/logs/*.log"]}],
            "output": {"elasticsearch": {"hosts": [proxy.url]}},
            "http": {"listen": f"127.0.0.1:{port}"},
        }
    ).start()
    from .conftest import wait_for

    wait_for(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 503, 30, "/ready")
    assert agent.stop() == 0
    assert "is not Elasticsearch" in agent.log()
    _ = urllib.request


def test_gzip_bodies_with_item_rejections(
    proxy: FaultProxy, es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    proxy.add(Fault("item_status", status=429, every=2, count=3, after=1))
    ship_through(proxy, es_client, agent_factory, tmp_path, lines=5_000, compression="gzip")
    bulk = [r for r in proxy.requests if r.path.startswith("/_bulk")]
    assert bulk and all(r.headers.get("content-encoding") == "gzip" for r in bulk)
