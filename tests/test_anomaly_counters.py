"""_fastparse.counters: per-window counters of a batch equal a per-event Python reference,
with the compiled fold (``_counting``) and with its numpy twin, and the two agree."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import pytest

from _fastparse import counters
from tests.anomaly_batches import Event, FakeBatch

METRICS = ("loss", "accuracy", "tp", "fp", "fn", "tn")
CLASSES = ("accelerator_oom", "nan_loss", "other")


def _random_events(rng: random.Random, n: int, t0: int, spread: int) -> list[Event]:
    out = []
    for _ in range(n):
        e = Event(
            time=t0 + rng.randrange(spread),
            level=rng.randrange(8),
            cls=rng.choice([0, 0, 0, 1, 2, 3]),
            nbytes=rng.randrange(1, 5000),
            message=f"msg {rng.random()}",
        )
        for mid in rng.sample(range(len(METRICS)), rng.randrange(3)):
            counts = METRICS[mid] in counters.CONFUSION_METRICS  # logged counts are whole numbers
            e.metrics[mid] = rng.choice([float(rng.randrange(4)) if counts else rng.uniform(-5, 5), float("nan")])
        if rng.random() < 0.5:
            e.label = rng.randrange(2)
            e.pred = rng.choice([-1, 0, 1])
            e.score = rng.choice([float("nan"), round(rng.random(), 1)])
        out.append(e)
    return out


def _reference(events: list[Event], window_ms: int) -> dict[int, dict]:
    ref: dict[int, dict] = defaultdict(
        lambda: {
            "events": 0,
            "bytes": 0,
            "levels": [0] * 8,
            "classes": [0] * (len(CLASSES) + 1),
            "metrics": {},
            "confusion": [0, 0, 0, 0],
            "pairs": [],
        }
    )
    for e in events:
        w = ref[e.time // window_ms * window_ms]
        w["events"] += 1
        w["bytes"] += e.nbytes
        w["levels"][e.level] += 1
        w["classes"][e.cls] += 1
        for mid, v in e.metrics.items():
            name = METRICS[mid]
            if name in counters.CONFUSION_METRICS and math.isfinite(v):
                w["confusion"][counters.CONFUSION_METRICS.index(name)] += round(v)
            if not math.isfinite(v):
                continue
            m = w["metrics"].setdefault(name, [0, 0.0, math.inf, -math.inf])
            m[0] += 1
            m[1] += v
            m[2] = min(m[2], v)
            m[3] = max(m[3], v)
        if e.label is not None:
            if e.pred >= 0:
                code = {(1, 1): 0, (1, 0): 1, (0, 1): 2, (0, 0): 3}[(e.pred, e.label)]
                w["confusion"][code] += 1
            if not math.isnan(e.score):
                w["pairs"].append((e.score, e.label))
    return ref


TWIN = [True] if counters._fold_c is None else [False, True]


@pytest.mark.parametrize("twin", TWIN, ids=lambda t: "twin" if t else "compiled")
@pytest.mark.parametrize("spread", [1, 2500, 50_000, 10**12])  # one window, a few, many, sparse (sorting path)
def test_counters_equal_reference(spread: int, twin: bool) -> None:
    rng = random.Random(spread)
    window = 1000
    for _ in range(20):
        events = _random_events(rng, rng.randrange(1, 400), 1_700_000_000_000, spread)
        c = counters.count(FakeBatch(events), window, METRICS, CLASSES, twin=twin)
        assert c is not None
        ref = _reference(events, window)
        assert sorted(ref) == c.starts
        for r, start in enumerate(c.starts):
            w = ref[start]
            assert c.events[r] == w["events"]
            assert c.bytes[r] == w["bytes"]
            assert c.levels[r] == w["levels"]
            assert c.classes[r] == w["classes"]
            assert (c.confusion[r] if c.confusion is not None else [0, 0, 0, 0]) == w["confusion"]
            rows = [k for k, row in enumerate(c.m_row) if row == r]
            got = {c.m_name[k]: [c.m_count[k], c.m_sum[k], c.m_min[k], c.m_max[k]] for k in rows}
            assert set(got) == set(w["metrics"])
            for name, (cnt, tot, lo, hi) in w["metrics"].items():
                assert got[name][0] == cnt
                assert got[name][1] == pytest.approx(tot)
                assert (got[name][2], got[name][3]) == (lo, hi)
            if c.pair_row is None or c.pair_score is None or c.pair_label is None:
                assert w["pairs"] == [] and c.pair_score is None and c.pair_label is None
            else:
                prow = c.pair_row == r
                assert list(zip(c.pair_score[prow].tolist(), c.pair_label[prow].tolist(), strict=True)) == w["pairs"]
        assert c.max_time == max(e.time for e in events)


@pytest.mark.skipif(counters._fold_c is None, reason="the compiled fold is not built")
@pytest.mark.parametrize("spread", [1, 2500, 50_000])
def test_compiled_fold_equals_twin(spread: int) -> None:
    """Both give the same lists: the same sums (added in item order), samples and rows."""
    rng = random.Random(spread + 7)
    for _ in range(30):
        events = _random_events(rng, rng.randrange(1, 600), 1_700_000_000_000, spread)
        a = counters.count(FakeBatch(events), 1000, METRICS, CLASSES, error_samples=2)
        b = counters.count(FakeBatch(events), 1000, METRICS, CLASSES, error_samples=2, twin=True)
        assert a is not None and b is not None
        for name in counters.WindowCounts.__slots__:
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, np.ndarray):
                assert x.tolist() == y.tolist(), name
            else:
                assert x == y, name


@pytest.mark.parametrize("twin", TWIN, ids=lambda t: "twin" if t else "compiled")
def test_error_samples_are_the_first_per_window(twin: bool) -> None:
    events = [Event(time=t, cls=1 if t % 2 else 0) for t in range(0, 4000, 100)]
    c = counters.count(FakeBatch(events), 1000, (), CLASSES, error_samples=2, twin=twin)
    assert c is not None
    per_row: dict[int, list[int]] = defaultdict(list)
    for row, item in zip(c.error_rows, c.error_items, strict=True):
        per_row[row].append(item)
    expected = {r: [i for i, e in enumerate(events) if e.cls and e.time // 1000 == r][:2] for r in range(4)}
    assert dict(per_row) == {r: v for r, v in expected.items() if v}


@pytest.mark.parametrize("twin", TWIN, ids=lambda t: "twin" if t else "compiled")
def test_empty_batch_and_missing_arrays(twin: bool) -> None:
    assert counters.count(FakeBatch([]), 1000, twin=twin) is None

    class Bare:
        ev_time = np.array([5, 1500], dtype=np.int64).tobytes()

    c = counters.count(Bare(), 1000, twin=twin)
    assert c is not None
    assert c.events == [1, 1] and c.bytes == [0, 0]
    assert [row[0] for row in c.classes] == [1, 1]
