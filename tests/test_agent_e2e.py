"""The foundation's acceptance test: the agent as a real process against the real
Elasticsearch, another process writing 100,000 lines into nested directories (some
created after the agent started), then SIGTERM, more lines, restart: every line exactly once."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent


def expected_events(root: Path) -> dict[tuple[str, int], str]:
    """What was written: every non-empty line of every file, by (path, offset)."""
    out: dict[tuple[str, int], str] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".log"):
                continue
            path = os.path.join(dirpath, name)
            data = Path(path).read_bytes()
            off = 0
            for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
                if raw:
                    out[(path, off)] = raw.decode()
                off += len(raw) + 1
    return out


def indexed_events(es: Any, index: str) -> list[tuple[str, int, str]]:
    es.indices.refresh(index=index)
    docs: list[tuple[str, int, str]] = []
    after = None
    while True:
        body: dict[str, Any] = {
            "size": 10000,
            "sort": [{"log.file.path": "asc"}, {"log.offset": "asc"}],
            "_source": ["log.file.path", "log.offset", "message"],
        }
        if after:
            body["search_after"] = after
        hits = es.search(index=index, **body)["hits"]["hits"]
        if not hits:
            return docs
        for h in hits:
            s = h["_source"]
            docs.append((s["log"]["file"]["path"], s["log"]["offset"], s["message"]))
        after = hits[-1]["sort"]


def count(es: Any, index: str) -> int:
    try:
        es.indices.refresh(index=index)
        return int(es.count(index=index)["count"])
    except Exception:
        return 0


def writer(
    root: Path, files: list[str], lines: int, seed: int, pace: float = 0.0, delay: float = 0.0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "logwriter.py"),
            "--root",
            str(root),
            "--lines",
            str(lines),
            "--seed",
            str(seed),
            "--pace",
            str(pace),
            "--start-delay",
            str(delay),
            "--files",
            *files,
        ]
    )


def agent_config(es_url: str, root: Path, data_dir: Path, input_id: str) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "inputs": [{"id": input_id, "paths": [f"{root}/**/*.log"], "exclude": ["**/*.gz"], "scan_interval": "1s"}],
        "output": {"elasticsearch": {"hosts": [es_url]}},
        "http": {"listen": None},
    }


def assert_exactly_once(es: Any, index: str, root: Path) -> None:
    want = expected_events(root)
    wait_for(lambda: count(es, index) >= len(want), 120, f"{len(want)} documents in {index}")
    got = indexed_events(es, index)
    keys = [(p, o) for p, o, _ in got]
    # _count counts every document; with every expected event present, more is a double
    assert count(es, index) == len(want), f"{count(es, index) - len(want)} events doubled"
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} events doubled"
    missing = set(want) - set(keys)
    extra = set(keys) - set(want)
    assert not missing, f"{len(missing)} events missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected events, e.g. {sorted(extra)[:3]}"
    wrong = [(p, o) for p, o, m in got if want[(p, o)] != m]
    assert not wrong, f"{len(wrong)} messages differ from what was written, e.g. {wrong[:3]}"


def test_100k_lines_nested_new_dirs_sigterm_restart(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    input_id = f"e2e-{secrets.token_hex(4)}"
    index = f"shipper-logs-{input_id}-*"
    root = tmp_path / "models"
    (root / "bert" / "run1").mkdir(parents=True)
    agent = agent_factory(agent_config(es_plain["url"], root, tmp_path / "data", input_id))
    agent.start()

    early = [f"bert/run1/train{i}.log" for i in range(4)] + ["bert/run1/eval.log"]
    late = [f"gpt/run{i}/deep/er/train.log" for i in range(5)] + ["bert/run2/train.log"]
    w1 = writer(root, early, 50_000, seed=1)
    w2 = writer(root, late, 50_000, seed=2, delay=1.0)  # directories that appear after the start
    assert w1.wait(120) == 0 and w2.wait(120) == 0
    (root / "bert" / "run1" / "old.log.gz").write_bytes(b"excluded\n")
    assert len(expected_events(root)) == 100_000
    assert_exactly_once(es_client, index, root)

    agent.signal(signal.SIGTERM)
    assert agent.wait(60) == 0, agent.log()
    assert "checkpoint written" in agent.log()

    # more lines while the agent is down, and after it is back
    w3 = writer(root, [*early[:2], "bert/run3/new.log"], 6_000, seed=3)
    assert w3.wait(60) == 0
    agent.start()
    w4 = writer(root, [*late[:2], "t5/run1/train.log"], 4_000, seed=4, pace=0.001)
    assert w4.wait(120) == 0
    assert len(expected_events(root)) == 110_000
    assert_exactly_once(es_client, index, root)
    assert agent.stop() == 0, agent.log()
