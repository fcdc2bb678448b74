"""Issue 5's crash proofs at exact moments, with the real agent process and the real
Elasticsearch: SIGKILLed while it writes its registry (paused there by a test hook), after
a multiline event cut by its timeout was acknowledged but before its checkpoint, and a
replay across an injected UTC midnight. In each case nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipper.registry import Registry

from .conftest import wait_for
from .test_tailing import Run

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


def _config(r: Run, **top: Any) -> None:
    cfg = yaml.safe_load(r.agent.config.read_text())
    cfg.update(top)
    r.agent.config.write_text(yaml.safe_dump(cfg))


def _kill(r: Run) -> None:
    r.agent.signal(signal.SIGKILL)
    r.agent.proc.wait(10)


@pytest.mark.parametrize("phase", ["mid", "rename"])
def test_sigkill_while_writing_the_registry(
    phase: str, es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed with half a temporary registry written, or with a whole one not yet renamed:
    the registry the restarted agent reads is the previous whole one, and every line
    arrives once."""
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    _config(r, registry_flush_interval="200ms")
    app = r.logs / "app.log"
    app.write_bytes(r.lines("before", 3000))
    marker = tmp_path / "paused"
    monkeypatch.setenv("SHIPPER_TEST_REGISTRY_PAUSE", f"{phase}:4:{marker}")
    r.agent.start()
    with app.open("ab") as f:
        f.write(r.lines("during", 2000))
    wait_for(marker.exists, 60, f"the agent paused in its 4th registry write ({phase})")
    data = tmp_path / "data"
    tmp = (data / "registry.json.tmp").read_bytes()
    _kill(r)
    if phase == "mid":
        assert len(tmp) < len((data / "registry.json").read_bytes()) * 2, "half a registry"
    reg = Registry(data)  # the previous whole registry: loads, no error
    assert len(reg.files) == 1
    reg.close()
    monkeypatch.delenv("SHIPPER_TEST_REGISTRY_PAUSE")
    with app.open("ab") as f:
        f.write(r.lines("after", 1000))
    r.agent.start()
    r.assert_exactly_once()
    assert r.agent.stop() == 0
    assert "paused at" in r.agent.log()


def test_sigkill_after_a_timeout_cut_event_was_acknowledged_before_its_checkpoint(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path
) -> None:
    """A traceback held open is shipped by its timeout; the agent dies before the
    checkpoint. Lines that would have continued it arrive later: the replay must cut the
    event where it was cut (same bytes, a 409), or the late lines would be folded into
    an event Elasticsearch already has under that `_id` and be lost."""
    r = Run(es_plain, es_client, agent_factory, tmp_path, format="python", multiline={"timeout": "1s"})
    _config(r, registry_flush_interval="1h")  # no checkpoint but the one at shutdown
    tb = (
        "2026-11-25 07:30:01,123 - trainer - ERROR - step 12 failed\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 88, in <module>\n'
        "    out = model(batch)\n"
    )
    app = r.logs / "train.log"
    app.write_text("2026-11-25 07:30:00,000 - trainer - INFO - epoch=1 loss=0.5\n" + tb)
    r.agent.start()
    wait_for(lambda: r.count() == 2, 30, "the INFO line and the traceback cut by its timeout")
    _kill(r)  # acknowledged, not checkpointed
    before = r.messages()
    cut = next(m for m in before if m.startswith("step 12 failed"))
    with app.open("a") as f:  # would continue the traceback had it not been cut
        f.write('  File "model.py", line 7, in forward\n    raise ValueError("late")\nValueError: late\n'
                "2026-11-25 07:30:05,000 - trainer - INFO - epoch=2 loss=0.4\n")
    r.agent.start()
    wait_for(lambda: "epoch=2 loss=0.4" in r.messages(), 60, "the lines after the restart")
    time.sleep(2)  # anything doubled would have arrived by now
    after = r.messages()
    assert all(c == 1 for c in after.values()), after
    assert after[cut] == 1, "the cut event is the same event, not a longer one"
    assert any("ValueError: late" in m for m in after), "the late lines arrived"
    assert r.agent.stop() == 0


MIDNIGHT = 1795651200  # 2026-11-26T00:00:00Z


def test_replay_across_an_injected_utc_midnight(
    es_plain: dict[str, Any], es_client: Any, agent_factory: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines without a time of their own are read at 23:59:5x and acknowledged; the agent is
    SIGKILLed before its checkpoint and restarted after midnight (a shifted wall clock in
    the real agent process, tests/fakeclock). The replay keeps their read time and day:
    409s in yesterday's index, nothing in today's but the new lines."""
    r = Run(es_plain, es_client, agent_factory, tmp_path)
    _config(r, registry_flush_interval="1h")
    app = r.logs / "app.log"
    app.write_bytes(r.lines("before midnight", 500))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE / "fakeclock"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("SHIPPER_TEST_FAKE_EPOCH", str(MIDNIGHT - 15))
    r.agent.start()
    r.shipped(500)
    _kill(r)
    monkeypatch.setenv("SHIPPER_TEST_FAKE_EPOCH", str(MIDNIGHT + 300))
    r.agent.start()
    with app.open("ab") as f:
        f.write(r.lines("after midnight", 50))
    r.assert_exactly_once()
    es_client.indices.refresh(index=r.index)
    buckets = es_client.search(index=r.index, size=0, aggs={"i": {"terms": {"field": "_index"}}})
    per_index = {b["key"]: b["doc_count"] for b in buckets["aggregations"]["i"]["buckets"]}
    day = r.index[:-1]
    assert per_index == {f"{day}2026.11.25": 500, f"{day}2026.11.26": 50}, per_index
    assert r.agent.stop() == 0
