"""The agent SIGKILLed at random moments while lines are written, restarted each time:
documents == lines written, no duplicates. (benchmarks/crash_soak.py runs the long version.)"""

from __future__ import annotations

import random
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .test_agent_e2e import agent_config, assert_exactly_once, writer

pytestmark = pytest.mark.integration


def test_sigkill_restarts_lose_and_double_nothing(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    rng = random.Random(3)
    input_id = f"crash-{secrets.token_hex(3)}"
    root = tmp_path / "models"
    agent = agent_factory(agent_config(es_plain["url"], root, tmp_path / "data", input_id))
    files = [f"m{i}/run/train.log" for i in range(5)]
    w = writer(root, files, 100_000, seed=9, pace=0.0003)
    agent.start()
    kills = 0
    while w.poll() is None and kills < 5:
        time.sleep(rng.uniform(0.5, 2.0))
        agent.signal(signal.SIGKILL)
        agent.proc.wait(10)
        kills += 1
        agent.start()
    assert w.wait(120) == 0
    assert kills >= 3
    assert_exactly_once(es_client, f"shipper-logs-{input_id}-*", root)
    assert agent.stop() == 0
