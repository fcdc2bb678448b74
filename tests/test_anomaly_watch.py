"""The watch: counts at the checkpoint (settle order), saved with the registry, silence, retirement."""

from __future__ import annotations

import logging
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest

from _fastparse import counters
from _fastparse.counters import WindowCounts
from shipper.acks import Watermark
from shipper.anomaly.detector import Change, DetectorConfig
from shipper.anomaly.watch import LOG_BURST, LOG_PERIOD, AnomalyWatch, WatchConfig, _error_messages
from shipper.anomaly.windows import Window
from shipper.metrics import Metrics
from shipper.pipeline import Pipeline, Segment
from shipper.registry import Registry
from tests.anomaly_batches import Event, FakeBatch, FakeOwner, FakeParser

W = 1000
T0 = 1_700_000_000_000
CFG = WatchConfig(window_ms=W, grace_ms=500, detector=DetectorConfig(min_history=10), forget_after_ms=5000)


class Writer:
    """Collects what the watch would index."""

    dropped = failed_items = 0

    def __init__(self) -> None:
        self.docs: list[tuple[str, str, dict[str, Any]]] = []

    def add(self, index: str, doc_id: str, doc: dict[str, Any]) -> None:
        self.docs.append((index, doc_id, doc))


def sample(m: Metrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def make_watch(owners: list[FakeOwner], files: dict[str, Any] | None = None) -> tuple[AnomalyWatch, Metrics, Writer]:
    m = Metrics()
    w = Writer()
    watch = AnomalyWatch(
        CFG,
        m,
        host_id="h" * 32,
        host_name="gpu1",
        writer=w,  # type: ignore[arg-type]
        readers=lambda: owners,
        files=lambda: files or {},
    )
    return watch, m, w


async def test_counts_follow_the_watermark_not_the_order_of_acknowledgements() -> None:
    owner = FakeOwner("trainer", FakeParser(("loss",), ("accelerator_oom", "other")))
    watch, m, _ = make_watch([owner])
    pipeline = Pipeline(
        max_inflight_bytes=1 << 30, max_bytes=1 << 20, max_events=1000, flush_interval=0.1, senders=1, metrics=m
    )
    pipeline.observer = watch
    offsets: list[int] = []
    wm = Watermark(0, lambda off, gen: offsets.append(off))
    wm.owner = owner
    batches = [
        FakeBatch([Event(time=T0 + 10 * i + j, cls=1 if j == 0 else 0) for j in range(5)], start_offset=500 * i)
        for i in range(3)
    ]
    for b in batches:
        await pipeline.submit(b, wm, 0, "trainer")
    segs: list[Segment] = [pipeline._queue.get_nowait() for _ in range(3)]
    await pipeline.settle(segs[2], 5)  # acknowledged first, but after two unacknowledged chunks
    assert sample(m, "shipper_source_events_total", source="trainer") == 0
    await pipeline.settle(segs[0], 5)
    assert sample(m, "shipper_source_events_total", source="trainer") == 5 and offsets == [500]
    await pipeline.settle(segs[1], 3)
    assert sample(m, "shipper_source_events_total", source="trainer") == 5
    await pipeline.settle(segs[1], 2)
    assert sample(m, "shipper_source_events_total", source="trainer") == 15 and offsets == [500, 1500]
    assert sample(m, "shipper_source_error_events_total", source="trainer", **{"class": "accelerator_oom"}) == 3
    assert sample(m, "shipper_source_bytes_total", source="trainer") == 1500


def settle_direct(watch: AnomalyWatch, owner: FakeOwner, events: list[Event]) -> None:
    token = watch.observe(FakeBatch(events), owner, owner.source)
    assert token is not None
    watch.settle(token)


def test_state_is_saved_with_the_registry_and_restored(tmp_path: Path) -> None:
    owner = FakeOwner("svc", FakeParser(("loss",)))
    watch, _, _ = make_watch([owner])
    reg = Registry(tmp_path)
    reg.extras["anomaly"] = watch.state
    for k in range(30):
        settle_direct(watch, owner, [Event(time=T0 + k * W + j, metrics={0: 1.0 + j}) for j in range(10)])
    watch.tick((T0 + 29 * W + 600) / 1000)
    settle_direct(watch, owner, [Event(time=T0 + 30 * W + 5)])
    reg.save()
    reg.close()
    reg2 = Registry(tmp_path)
    watch2, _, _ = make_watch([owner])
    watch2.restore(reg2.loaded_extras["anomaly"])
    reg2.close()
    a, b = watch.sources["svc"], watch2.sources["svc"]
    assert a.detector.to_dict() == b.detector.to_dict()
    assert orjson.dumps(a.windows.to_dict()) == orjson.dumps(b.windows.to_dict())
    assert sorted(b.windows.open) == [T0 + 29 * W, T0 + 30 * W]
    assert b.windows.open[T0 + 29 * W].metrics["loss"] == [10, 55.0, 1.0, 10.0]


def test_silence_of_a_caught_up_source_is_flagged_once() -> None:
    owner = FakeOwner("job")
    watch, m, writer = make_watch([owner])
    for k in range(20):
        settle_direct(watch, owner, [Event(time=T0 + k * W + j * 10) for j in range(40)])
        watch.tick((T0 + k * W + 999) / 1000)
    # the job stops logging; its reader is at the end of its file, wall time goes on
    for k in range(20, 26):
        watch.tick((T0 + k * W + 600) / 1000)
    assert sample(m, "shipper_anomaly_active", source="job", signal="silence") == 1
    assert sample(m, "shipper_anomalies_total", source="job", signal="silence") == 1
    anomalies = [d for _, _, d in writer.docs if "anomaly" in d and d["anomaly"]["signal"] == "silence"]
    assert [d["anomaly"]["state"] for d in anomalies] == ["start"]
    windows = [d for _, _, d in writer.docs if "window" in d]
    assert [d["window"]["events"] for d in windows][-5:] == [0, 0, 0, 0, 0]
    settle_direct(watch, owner, [Event(time=T0 + 26 * W + 1)])
    watch.tick((T0 + 27 * W + 600) / 1000)
    assert sample(m, "shipper_anomaly_active", source="job", signal="silence") == 0


def test_a_source_whose_files_are_gone_is_retired_without_alert(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    owner = FakeOwner("gone", key="k9", path=str(log))
    owners = [owner]
    files = {"k9": owner.state}
    watch, m, writer = make_watch(owners, files)
    for k in range(20):
        settle_direct(watch, owner, [Event(time=T0 + k * W + j) for j in range(40)])
        watch.tick((T0 + k * W + 999) / 1000)
    owners.clear()  # the reader read to its end and closed
    log.unlink()
    for k in range(20, 24):
        watch.tick((T0 + k * W + 600) / 1000)
    assert watch.sources["gone"].retired_at is not None
    assert sample(m, "shipper_source_events_total", source="gone") == 800
    for k in range(24, 30):  # forget_after (5 s) later
        watch.tick((T0 + k * W + 600) / 1000)
    assert not [d for _, _, d in writer.docs if "anomaly" in d]
    assert "gone" not in watch.sources
    assert m.registry.get_sample_value("shipper_source_events_total", {"source": "gone"}) is None


def test_documents_have_stable_ids_and_the_issue_fields() -> None:
    owner = FakeOwner("pred", FakeParser(("loss",), ("timeout", "other")))
    watch, _, writer = make_watch([owner])
    events = [
        Event(time=T0 + 1, level=5, cls=1, message="NCCL timeout", metrics={0: 2.0}, label=1, pred=1, score=0.9),
        Event(time=T0 + 2, level=3, metrics={0: 4.0}, label=0, pred=1, score=0.4),
        Event(time=T0 + 3, level=3, label=0, pred=0, score=0.2),
    ]
    settle_direct(watch, owner, events)
    watch.shutdown((T0 + 100) / 1000)  # the window is open: documented as it is, kept open
    watch.shutdown((T0 + 200) / 1000)
    (idx1, id1, doc), (idx2, id2, _) = writer.docs
    assert id1 == id2 and idx1 == idx2 and idx1.startswith("shipper-metrics-")
    assert doc["@timestamp"] == "2023-11-14T22:13:20.000Z" and doc["event"]["dataset"] == "pred"
    win = doc["window"]
    assert (win["events"], win["bytes"], win["errors"]) == (3, 300, 1)
    assert win["level"] == {"info": 2, "error": 1} and win["error_class"] == {"timeout": 1}
    assert doc["metrics"]["loss"] == {"count": 2, "sum": 6.0, "min": 2.0, "max": 4.0, "mean": 3.0}
    q = doc["quality"]
    assert q["accuracy"] == 2 / 3 and q["precision"] == 0.5 and q["recall"] == 1.0 and q["auc"] == 1.0
    assert watch.sources["pred"].windows.open  # still open for the next run


def test_a_file_read_and_closed_before_any_tick_is_not_gone(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    owner = FakeOwner("once", key="k1", path=str(log))
    watch, _, _ = make_watch([], {"k1": owner.state})  # the reader closed already (--once)
    settle_direct(watch, owner, [Event(time=T0 + 1)])
    watch.tick((T0 + 5000) / 1000)
    assert watch.sources["once"].retired_at is None


def test_a_failure_in_counting_never_reaches_shipping() -> None:
    class Broken:
        count = 1

        @property
        def ev_time(self) -> bytes:
            raise RuntimeError("boom")

    watch, _, _ = make_watch([])
    assert watch.observe(Broken(), FakeOwner("x"), "x") is None
    watch.settle(object())  # type: ignore[arg-type]
    assert watch.failures == 2


def test_a_backfill_closes_due_windows_without_waiting_for_the_tick() -> None:
    """Many windows settled between two ticks (a backfill) are closed and judged as they
    become due, so open windows (saved with every checkpoint) stay few."""
    from shipper.anomaly.watch import EARLY_CLOSE

    owner = FakeOwner("backfill")
    watch, _, writer = make_watch([owner])
    n = 3 * EARLY_CLOSE
    for k in range(n):  # no tick at all
        settle_direct(watch, owner, [Event(time=T0 + k * W + j * 10) for j in range(5)])
    src = watch.sources["backfill"]
    assert len(src.windows.open) <= EARLY_CLOSE
    windows = [d["window"]["events"] for _, _, d in writer.docs if "window" in d]
    assert len(windows) >= n - EARLY_CLOSE and set(windows) == {5}
    assert len(src.detector.to_dict()) > 0


async def test_submit_drops_the_per_event_arrays_once_counted() -> None:
    owner = FakeOwner("trainer", FakeParser(("loss",)))
    watch, m, _ = make_watch([owner])
    pipeline = Pipeline(
        max_inflight_bytes=1 << 30, max_bytes=1 << 20, max_events=1000, flush_interval=0.1, senders=1, metrics=m
    )
    pipeline.observer = watch
    wm = Watermark(0, lambda off, gen: None)
    wm.owner = owner
    b = FakeBatch([Event(time=T0 + j, metrics={0: 1.0}) for j in range(5)])
    await pipeline.submit(b, wm, 0, "trainer")
    assert b.ev_time is None and b.m_value is None  # type: ignore[comparison-overlap]
    seg = pipeline._queue.get_nowait()
    await pipeline.settle(seg, 5)
    assert sample(m, "shipper_source_events_total", source="trainer") == 5


def test_anomaly_log_lines_are_limited_per_period_documents_are_not(caplog: pytest.LogCaptureFixture) -> None:
    """A noisy backfill starts anomalies by the dozen a second: the agent's log gets
    LOG_BURST lines a period and one line summing up the rest; documents and the
    Prometheus counter get every one."""
    watch, m, writer = make_watch([])
    src = watch._source("noisy")
    caplog.set_level(logging.INFO, logger="shipper.anomaly")
    n = LOG_BURST + 15
    for k in range(n):
        change = Change(f"metrics.m{k}.mean", "start", "up", 2.0, 1.0, 0.1)
        watch._report(src, Window(T0 + k * W), change)

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "anomal" in r.getMessage()]

    lines = [r.getMessage() for r in said()]
    assert len(lines) == LOG_BURST and all("anomaly started: noisy" in x for x in lines)
    assert len([d for _, _, d in writer.docs if "anomaly" in d]) == n
    assert sum(sample(m, "shipper_anomalies_total", source="noisy", signal=f"metrics.m{k}.mean") for k in range(n)) == n
    watch.tick((T0 + n * W) / 1000)  # within the period: nothing more
    assert len(said()) == LOG_BURST
    watch._log_since -= LOG_PERIOD  # the period is over
    watch.tick((T0 + n * W) / 1000)
    last = said()[-1]
    assert last.levelno == logging.WARNING and last.getMessage().startswith("15 more anomalies started and 0 cleared")
    watch._report(src, Window(T0 + n * W), Change("events", "start", "up", 2.0, 1.0, 0.1))
    assert said()[-1].getMessage().startswith("anomaly started: noisy events")  # a new period
    for k in range(LOG_BURST + 3):  # clears (INFO) have a budget of their own
        watch._report(src, Window(T0 + (n + 1) * W), Change(f"metrics.m{k}.mean", "clear", "up", 1.0, 1.0, 0.1))
    watch._report(src, Window(T0 + (n + 2) * W), Change("bytes", "start", "up", 2.0, 1.0, 0.1))
    assert len([r for r in said() if r.getMessage().startswith("anomaly cleared")]) == LOG_BURST
    assert said()[-1].getMessage().startswith("anomaly started: noisy bytes")  # not used up by the clears


LAZY_NUMPY = """
import sys, time
import shipper.app, shipper.anomaly
from _fastparse import Parser
from shipper.anomaly.watch import AnomalyWatch, WatchConfig
from shipper.metrics import Metrics
assert "numpy" not in sys.modules, "imported"
p = Parser(input_id="x", path="/l/a.log", host_name="h", id_prefix="", id_key=b"k" * 71,
           index_pattern="i-%Y", format="python", multiline="auto", metrics="auto")
t0 = 1_700_000_000
stamp = lambda i: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t0 + i)).encode()
lines = [b"%s,123 - trainer - ERROR - step=%d loss=1.5 boom\\n" % (stamp(i), i) for i in range(40)]
b = p.feed(b"".join(lines), t0 * 1000)
class Owner:
    source = "s"
    parser = p
w = AnomalyWatch(WatchConfig(), Metrics(), host_id="h" * 32, host_name="h")
w.settle(w.observe(b, Owner(), "x"))
w.state()
w.metrics.render()
assert "numpy" not in sys.modules and w.failures == 0, "counted"
w.tick(t0 + 60)
n = w.sources["s"].detector.n
assert "numpy" not in sys.modules and w.failures == 0 and 0 < n <= 10, ("cold", n)
lines = [b"%s,123 - trainer - ERROR - step=%d loss=1.5 boom\\n" % (stamp(60 + 10 * i), i) for i in range(40)]
w.settle(w.observe(p.feed(b"".join(lines), (t0 + 60) * 1000), Owner(), "x"))
w.tick(t0 + 600)
from shipper.anomaly import detector
compiled = detector._judge_c is not None  # the compiled judge needs no numpy at all
assert ("numpy" in sys.modules) != compiled and w.failures == 0 and w.sources["s"].detector.n > n, "judged"
"""


@pytest.mark.skipif(counters._fold_c is None, reason="the numpy twin of the fold needs numpy")
def test_numpy_is_imported_when_the_first_window_is_judged_not_before() -> None:
    """numpy is ~14 MiB of an idle agent's RSS: imports, a counted and settled batch, a
    registry write and a scrape need none of it (the compiled fold counts), nor do the
    windows closed before the detector has ``min_history`` of them (ColdDetector), nor,
    with the compiled judge (CompiledDetector), the windows judged after them."""
    subprocess.run([sys.executable, "-c", LAZY_NUMPY], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_error_samples_are_the_first_lines_of_messages_or_error_type() -> None:
    """What an anomaly document quotes: the first line (<= 500 chars) of the message, or
    ``type: message`` of an error object; a document that is not JSON is skipped."""
    docs = [
        {"message": "CUDA out of memory\nTraceback (most recent call last):\n  ..."},
        {"message": "x" * 600},
        {"message": "ignored", "error": {"type": "ValueError", "message": "bad value\nmore"}},
        {"message": "m", "error": {"type": "Timeout"}},
        {"message": 42},
        [1, 2],
    ]
    body = bytearray()
    ends = array("q")
    for d in docs:
        body += b'{"create":{"_index":"x"}}\n' + orjson.dumps(d) + b"\n"
        ends.append(len(body))
    body += b'{"create":{"_index":"x"}}\n{not json\n'
    ends.append(len(body))

    class Batch:
        pass

    batch = Batch()
    batch.body, batch.item_ends = bytes(body), ends.tobytes()  # type: ignore[attr-defined]
    starts = [T0, T0 + W, T0 + 2 * W]
    counts = WindowCounts(starts, [3, 3, 1], [0] * 3, [[0] * 8] * 3, [[0, 3], [0, 3], [0, 1]], ("other",), T0 + 2 * W)
    counts.error_rows, counts.error_items = [0, 0, 0, 1, 1, 1, 2], [0, 1, 2, 3, 4, 5, 6]
    sampled: dict[int, int] = {}
    assert _error_messages(batch, counts, sampled) == {
        0: ["CUDA out of memory", "x" * 500, "ValueError: bad value"],
        1: ["Timeout", "42", ""],
    }
    assert sampled == {T0: 3, T0 + W: 3, T0 + 2 * W: 1}  # a document that is not JSON takes its turn
    sampled = {T0: 2}  # taken by batches still in flight: one more for the first window
    assert _error_messages(batch, counts, sampled)[0] == ["CUDA out of memory"]
