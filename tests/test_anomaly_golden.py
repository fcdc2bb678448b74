"""The watch's outputs on a fixed input, pinned byte for byte: window and anomaly documents
(as queued for Elasticsearch), notifications, the Prometheus series and the saved state.

A seeded backfill of two sources (levels, error classes with bursts, metrics with a NaN
and confusion counts, scored predictions, late events, a gap, a silence, batches spanning
one window or hundreds) goes through observe/settle/tick as the pipeline drives it, with
a restart (state saved and restored) half-way. Speed work on the watch (counting,
windows, detector, documents) must not move one byte of it: the digest below was taken
before that work; a change that alters an output on purpose updates it, and says why.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import pytest

from _fastparse import counters
from shipper.anomaly import detector, documents, windows
from shipper.anomaly import watch as watch_mod
from shipper.anomaly.detector import DetectorConfig
from shipper.anomaly.documents import DocumentWriter
from shipper.anomaly.watch import AnomalyWatch, WatchConfig
from shipper.metrics import Metrics
from tests.anomaly_batches import Event, FakeBatch, FakeOwner, FakeParser

W = 1000
T0 = 1_700_000_000_000
CFG = WatchConfig(window_ms=W, grace_ms=500, detector=DetectorConfig(min_history=10), max_gap=20)
METRICS = ("loss", "accuracy", "lr", "tp", "fp", "fn", "tn")
CLASSES = ("accelerator_oom", "nan_loss", "timeout", "other")
EXPECTED = "724b08222a3ae0ded0d67ac2f66b942fb023875cd7bad14f24c338122c2b29f5"


class Notes:
    """Collects notifications as the webhooks would get them."""

    dropped = failed = 0

    def __init__(self) -> None:
        self.docs: list[bytes] = []

    def notify(self, doc: dict[str, Any]) -> None:
        self.docs.append(orjson.dumps(doc))


def trainer_events(rng: random.Random) -> list[Event]:
    out: list[Event] = []
    for w in range(700):
        if 400 <= w < 406:  # silence
            continue
        n = rng.randint(35, 45) if w != 500 else 120  # a volume spike
        for j in range(n):
            t = T0 + w * W + rng.randrange(W)
            p_err = 0.3 if 300 <= w < 303 else 0.03
            cls = rng.randint(1, len(CLASSES) + 1) if rng.random() < p_err else 0  # +1: beyond the table
            metrics: dict[int, float] = {}
            if j % 4 == 0:
                loss = rng.gauss(2.0 if w != 450 else 9.0, 0.1)
                metrics[0] = float("nan") if rng.random() < 0.01 else loss
                metrics[1] = rng.uniform(0.7, 0.8)
                metrics[2] = 0.001
            if j % 9 == 0:
                metrics[3 + rng.randrange(4)] = float(rng.randint(0, 5))
            label = rng.randint(0, 1) if j % 7 == 0 else None
            out.append(
                Event(
                    time=t,
                    level=rng.randrange(9),
                    cls=cls,
                    nbytes=rng.randint(50, 500),
                    message=f"event {w}/{j}" + ("\ntraceback line" if cls else ""),
                    metrics=metrics,
                    label=label,
                    pred=rng.randint(0, 1) if label is not None and j % 2 else -1,
                    score=rng.random() if label is not None else float("nan"),
                )
            )
        if w % 97 == 50 and out:  # a late event, windows behind
            out.append(Event(time=out[-1].time - 30 * W, cls=1, message="late"))
    return out


def web_events(rng: random.Random) -> list[Event]:
    out = []
    for w in list(range(0, 250)) + list(range(350, 700)):  # a gap longer than max_gap
        for _ in range(rng.randint(3, 8) if w % 5 else 0):
            out.append(Event(time=T0 + w * W + rng.randrange(W), level=rng.choice((3, 4, 5)), nbytes=80))
    return out


def batches(events: list[Event], rng: random.Random) -> list[FakeBatch]:
    out, i = [], 0
    while i < len(events):
        n = rng.choice((20, 60, 200, 900, 7000))  # from part of one window to hundreds of them
        out.append(FakeBatch(events[i : i + n]))
        i += n
    return out


def run() -> dict[str, Any]:
    rng = random.Random(5)
    trainer = FakeOwner("trainer", FakeParser(METRICS, CLASSES), key="k1")
    web = FakeOwner("web", FakeParser((), ("other",)), key="k2")
    for o in (trainer, web):
        o.behind = 1  # backfilling: the clock is event time only
    feed = [(trainer, b) for b in batches(trainer_events(rng), rng)]
    web_b = batches(web_events(rng), rng)
    for k, b in enumerate(web_b):  # interleaved, as two readers submit
        feed.insert(min(len(feed), 3 * k + 1), (web, b))
    out: dict[str, Any] = {"states": []}
    metrics = Metrics()
    writer = DocumentWriter(None, max_queue=1_000_000)
    notes = Notes()

    def watch_() -> AnomalyWatch:
        return AnomalyWatch(
            CFG,
            metrics,
            host_id="h" * 32,
            host_name="gpu1",
            writer=writer,
            notifier=notes,  # type: ignore[arg-type]
            readers=lambda: [trainer, web],
            files=dict,
        )

    watch = watch_()
    pending: list[Any] = []
    for i, (owner, b) in enumerate(feed):
        pending.append(watch.observe(b, owner, owner.source))
        if i % 3 == 2:  # settled a few batches behind their submit, in order
            for tok in pending:
                watch.settle(tok)
            pending = []
        if i % 5 == 4:
            watch.tick(T0 / 1000 + 10_000 + i)
        if i == len(feed) // 2:  # a restart: the state saved at a checkpoint, restored
            for tok in pending:
                watch.settle(tok)
            pending = []
            saved = watch.state()
            out["states"].append(orjson.dumps(saved))
            metrics.render()  # the pending counts to the counters
            watch = watch_()
            watch.restore(orjson.loads(orjson.dumps(saved)))
    for tok in pending:
        watch.settle(tok)
    for o in (trainer, web):
        o.behind = 0
    end = (T0 + 720 * W) / 1000
    watch.tick(end)
    watch.shutdown(end + 0.7)
    out["states"].append(orjson.dumps(watch.state()))
    metrics.render()  # the pending counts to the counters
    out["documents"] = b"".join(writer._queue)
    out["notes"] = notes.docs
    out["prometheus"] = [
        line
        for line in metrics.render().decode().splitlines()
        if line.startswith(("shipper_source", "shipper_anomal")) and "_created" not in line
    ]
    return out


def digest(out: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for s in out["states"]:
        h.update(s)
    h.update(out["documents"])
    for d in out["notes"]:
        h.update(d)
    h.update("\n".join(out["prometheus"]).encode())
    return h.hexdigest()


@pytest.mark.parametrize("twin", ["none", "all", "fold", "window add", "detector", "error samples", "window documents"])
def test_outputs_are_pinned(twin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bytes with every compiled step (``_counting``), with their Python/numpy
    twins, and with each twin alone."""
    if twin != "all" and (
        counters._fold_c is None
        or windows._add_row is None
        or detector._judge_c is None
        or watch_mod._error_samples is None
        or documents._window_docs is None
    ):
        pytest.skip("the compiled counting is not built")
    if twin in ("all", "error samples"):
        monkeypatch.setattr(watch_mod, "_error_samples", None)
    if twin in ("all", "window documents"):
        monkeypatch.setattr(documents, "_window_docs", None)
    if twin in ("all", "fold"):
        monkeypatch.setattr(counters, "_fold_c", None)
    if twin in ("all", "window add"):
        monkeypatch.setattr(windows, "_add_row", None)
    if twin in ("all", "detector"):
        monkeypatch.setattr(detector, "_judge_c", None)
    out = run()
    docs = out["documents"].split(b"\n")
    n_windows = sum(1 for d in docs if d.startswith(b'{"index":{"_index":"shipper-metrics'))
    anomalies = [d for d in docs if d.startswith(b'{"index":{"_index":"shipper-anomalies')]
    # the input exercises what it should: windows of both sources, starts and clears
    assert n_windows > 1000
    assert len(anomalies) == len(out["notes"]) >= 6
    assert any(b'"state":"clear"' in n for n in out["notes"])
    assert any(b'"signal":"silence"' in n for n in out["notes"])
    assert any(b"samples" in n for n in out["notes"])
    assert digest(out) == EXPECTED
