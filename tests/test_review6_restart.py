"""Review of glue6 (one replay record for up to 64 reads of a file far ahead of its reader,
the in-flight budget released once per answer) and startup6 (``run -c FILE --once`` read
without argparse): a backfill, files written in full before the agent starts so that its
reads run under records of reads ahead, SIGKILLed a few times in the middle and restarted,
then finished by ``run --once`` (its own command line): every line exactly once in
Elasticsearch (documents counted), and ``--once`` ends by itself. (Under the review's load,
~9, the kills came with 0-31 k of the 150 k lines in the index.)"""

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


@pytest.mark.parametrize("threads", [0, 1])
def test_backfill_sigkilled_under_records_of_reads_ahead_then_run_once(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path, threads: int
) -> None:
    rng = random.Random(threads)
    input_id = f"review6-{secrets.token_hex(3)}"
    root = tmp_path / "models"
    w = writer(root, [f"m{i}/run/train.log" for i in range(2)], 150_000, seed=11 + threads)
    assert w.wait(120) == 0  # all written first: the reader is megabytes behind the file's end
    cfg = agent_config(es_plain["url"], root, tmp_path / "data", input_id)
    cfg["parse_threads"] = threads
    cfg["max_inflight_bytes"] = "4MiB"
    agent = agent_factory(cfg)
    agent.start()
    for _ in range(3):
        time.sleep(rng.uniform(0.6, 1.5))
        agent.signal(signal.SIGKILL)
        agent.proc.wait(10)
        agent.start()
    time.sleep(rng.uniform(0.3, 1.0))
    agent.signal(signal.SIGKILL)
    agent.proc.wait(10)
    agent.start("--once")
    assert agent.wait(180) == 0, agent.log()[-3000:]
    assert_exactly_once(es_client, f"shipper-logs-{input_id}-*", root)
