"""/health, /ready and /metrics of a running agent, scraped over HTTP."""

from __future__ import annotations

import secrets
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.integration

SERIES = [
    "shipper_input_lines_total",
    "shipper_input_bytes_total",
    "shipper_input_bytes_behind",
    "shipper_output_events_acked_total",
    "shipper_output_bulk_duration_seconds",
    "shipper_output_retries_total",
    "shipper_dlq_events_total",
    "shipper_inflight_bytes",
    "shipper_open_files",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, labels: str = "") -> float | None:
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


def test_metrics_and_ready(es_plain: dict[str, Any], agent_factory: Any, tmp_path: Path) -> None:
    input_id = f"http-{secrets.token_hex(4)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    data = b"".join(f"line {i} loss=0.{i}\n".encode() for i in range(5000))
    (logs / "a.log").write_bytes(data)
    port = free_port()
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": input_id, "paths": [f"{logs}/*.log"]}],
            "output": {"elasticsearch": {"hosts": [es_plain["url"]]}},
            "http": {"listen": f"127.0.0.1:{port}"},
        }
    ).start()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30, "/health")

    def acked() -> bool:
        text = get(base + "/metrics")[1]
        return metric(text, "shipper_output_events_acked_total") == 5000

    wait_for(acked, 60, "5000 events acknowledged")
    status, body = get(base + "/ready")
    assert status == 200 and '"elasticsearch":"ok"' in body and '"registry":"writable"' in body
    text = get(base + "/metrics")[1]
    for name in SERIES:
        assert f"# TYPE {name} " in text, name
    assert metric(text, "shipper_input_lines_total", f'input="{input_id}"') == 5000
    assert metric(text, "shipper_input_bytes_total", f'input="{input_id}"') == len(data)
    assert metric(text, "shipper_input_bytes_behind", f'input="{input_id}"') == 0
    assert metric(text, "shipper_open_files") == 1
    assert metric(text, "shipper_inflight_bytes") == 0
    assert agent.stop() == 0


def test_ready_says_unreachable(agent_factory: Any, tmp_path: Path) -> None:
    port, dead = free_port(), free_port()
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": "x", "paths": [f"{tmp_path}/*.log"]}],
            "output": {"elasticsearch": {"hosts": [f"http://127.0.0.1:{dead}"]}},
            "http": {"listen": f"127.0.0.1:{port}"},
        }
    ).start()
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/health")[0] == 200, 30, "/health")
    status, body = get(base + "/ready")
    assert status == 503 and '"elasticsearch":"unreachable"' in body
    assert agent.stop() == 0


def test_templates_cover_only_shippers_patterns(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": "tpl", "paths": [f"{tmp_path}/none/*.log"]}],
            "output": {"elasticsearch": {"hosts": [es_plain["url"]]}},
            "http": {"listen": None},
        }
    )
    assert agent.start("--once").wait(60) == 0, agent.log()
    got = {
        t["name"]: t["index_template"]
        for t in es_client.indices.get_index_template(name="shipper-*")["index_templates"]
    }
    assert {n: t["index_patterns"] for n, t in got.items()} == {
        "shipper-logs": ["shipper-logs-*"],
        "shipper-metrics": ["shipper-metrics-*"],
        "shipper-anomalies": ["shipper-anomalies-*"],
    }
    props = got["shipper-logs"]["template"]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["log"]["properties"]["offset"]["type"] == "long"
    assert props["log"]["properties"]["file"]["properties"]["path"]["type"] == "keyword"


def test_python_format_into_elasticsearch(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """The line's own time is @timestamp (its zone the input's), and picks the day's index."""
    input_id = f"fmt-{secrets.token_hex(3)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "train.log").write_text(
        "2026-01-02 23:30:00,250 - trainer - INFO - epoch=1 loss=0.5\n"
        "2026-01-03 00:30:00,000 - trainer - ERROR - step failed\n"
        "Traceback (most recent call last):\n"
    )
    agent = agent_factory(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"id": input_id, "paths": [f"{logs}/*.log"], "format": "python", "timezone": "Europe/Berlin"}],
            "output": {"elasticsearch": {"hosts": [es_plain["url"]]}},
            "http": {"listen": None},
        }
    )
    assert agent.start("--once").wait(60) == 0, agent.log()
    index = f"shipper-logs-{input_id}-*"
    es_client.indices.refresh(index=index)
    hits = es_client.search(index=index, sort=[{"log.offset": "asc"}], size=10)["hits"]["hits"]
    assert [h["_index"] for h in hits[:2]] == [f"shipper-logs-{input_id}-2026.01.02"] * 2  # 22:30Z and 23:30Z
    assert [h["_source"]["@timestamp"] for h in hits[:2]] == ["2026-01-02T22:30:00.250Z", "2026-01-02T23:30:00.000Z"]
    assert [h["_source"]["log"].get("level") for h in hits] == ["INFO", "ERROR"]
    # multiline auto (the default): the traceback header belongs to the line before it
    assert hits[1]["_source"]["message"] == "step failed\nTraceback (most recent call last):"
