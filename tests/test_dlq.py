"""Documents Elasticsearch refuses (400) go to the dead-letter queue with the reason,
only those; after the mapping is fixed `shipper dlq replay` indexes them, doubling nothing."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import ROOT, wait_for

pytestmark = pytest.mark.integration


def strict_template(es_client: Any, input_id: str, index: str) -> None:
    """A strict mapping without `tags` or `log.original_length`: tagged lines are refused (400)."""
    fields = {
        "@timestamp": {"type": "date"},
        "message": {"type": "text"},
        "log": {"properties": {"file": {"properties": {"path": {"type": "keyword"}}}, "offset": {"type": "long"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "event": {"properties": {"dataset": {"type": "keyword"}}},
    }
    es_client.indices.put_index_template(
        name=f"strict-{input_id}",
        index_patterns=[index],
        priority=500,
        template={"mappings": {"dynamic": "strict", "properties": fields}},
    )


def test_strict_mapping_dead_letters_then_replay(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    input_id = f"dlq-{secrets.token_hex(4)}"
    index = f"shipper-logs-{input_id}-*"
    # strict: no `tags`, no `log.original_length`, so truncated and invalid-UTF-8 lines are refused
    strict_template(es_client, input_id, index)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = []
    for i in range(300):
        if i % 50 == 7:
            lines.append(b"x" * 200 + b" too long")  # truncated at 100 bytes
        elif i % 50 == 9:
            lines.append(b"bad utf-8 \xff\xfe here")
        else:
            lines.append(f"good line {i}".encode())
    (logs / "a.log").write_bytes(b"\n".join(lines) + b"\n")
    bad = {i for i in range(300) if i % 50 in (7, 9)}
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"id": input_id, "paths": [f"{logs}/*.log"], "max_line_bytes": "100B"}],
        "output": {"elasticsearch": {"hosts": [es_plain["url"]], "template": False}},
        "http": {"listen": None},
    }
    agent = agent_factory(cfg)
    assert agent.start("--once").wait(120) == 0, agent.log()

    es_client.indices.refresh(index=index)
    assert es_client.count(index=index)["count"] == 300 - len(bad)
    dlq = [orjson.loads(line) for line in (tmp_path / "data" / "dlq" / "dlq.ndjson").read_bytes().splitlines()]
    assert len(dlq) == len(bad)
    assert {r["status"] for r in dlq} == {400}
    assert {r["reason"]["type"] for r in dlq} == {"strict_dynamic_mapping_exception"}
    offsets = sorted(orjson.loads(r["document"])["log"]["offset"] for r in dlq)
    starts = [sum(len(x) + 1 for x in lines[:i]) for i in sorted(bad)]
    assert offsets == starts

    listing = subprocess.run(
        [sys.executable, "-m", "shipper", "dlq", "list", "-c", str(agent.config)],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert listing.returncode == 0
    assert f"{len(bad)} document(s)".encode() in listing.stdout
    assert b"strict_dynamic_mapping_exception" in listing.stdout

    # the user fixes the mapping, then replays
    es_client.indices.put_mapping(
        index=index,
        properties={"tags": {"type": "keyword"}, "log": {"properties": {"original_length": {"type": "long"}}}},
    )
    replay = subprocess.run(
        [sys.executable, "-m", "shipper", "dlq", "replay", "-c", str(agent.config)],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert f"replayed {len(bad)} document(s); 0 still refused".encode() in replay.stdout
    es_client.indices.refresh(index=index)
    wait_for(lambda: es_client.count(index=index)["count"] == 300, 10, "300 documents")
    assert (tmp_path / "data" / "dlq" / "dlq.ndjson").read_bytes() == b""
    # a second replay and a second run double nothing
    assert (
        subprocess.run(
            [sys.executable, "-m", "shipper", "dlq", "replay", "-c", str(agent.config)],
            capture_output=True,
            cwd=ROOT,
            timeout=60,
        ).returncode
        == 0
    )
    assert agent.start("--once").wait(120) == 0
    es_client.indices.refresh(index=index)
    assert es_client.count(index=index)["count"] == 300
    es_client.indices.delete_index_template(name=f"strict-{input_id}")


def test_full_dead_letter_queue_holds_events_instead_of_dropping(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    input_id = f"dlqfull-{secrets.token_hex(4)}"
    index = f"shipper-logs-{input_id}-*"
    strict_template(es_client, input_id, index)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(b"ok 1\n" + b"y" * 300 + b"\n" + b"ok 2\n")  # the long line is refused
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"id": input_id, "paths": [f"{logs}/*.log"], "max_line_bytes": "100B"}],
        "output": {"elasticsearch": {"hosts": [es_plain["url"]], "template": False, "backoff_max": "1s"}},
        "dlq": {"max_bytes": "100B"},  # too small for the refused document
        "http": {"listen": None},
    }
    agent = agent_factory(cfg).start()
    wait_for(lambda: "dead-letter queue" in agent.log() and "is full" in agent.log(), 30, "the queue-full error")
    time.sleep(2)
    registry = (tmp_path / "data" / "registry.json").read_bytes()
    # checkpoints move per parsed chunk: this chunk holds all three lines, and it is held
    assert b'"offset":0,' in registry, "the file must not advance past the held event"
    assert agent.stop() == 0
    assert not (tmp_path / "data" / "dlq" / "dlq.ndjson").exists()
    # with room in the queue, the held event goes there and the file advances
    cfg["dlq"] = {"max_bytes": "1MiB"}
    agent2 = agent_factory(cfg, name="agent2")
    assert agent2.start("--once").wait(60) == 0, agent2.log()
    assert len((tmp_path / "data" / "dlq" / "dlq.ndjson").read_bytes().splitlines()) == 1
    es_client.indices.refresh(index=index)
    assert es_client.count(index=index)["count"] == 2
    es_client.indices.delete_index_template(name=f"strict-{input_id}")
