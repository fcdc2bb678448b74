"""Review of the compiled detector (anomaly5): edges the long random runs of
test_anomaly_detector.py do not reach.

CompiledDetector, numpy's Detector and ColdDetector (which becomes one of them) must give
the same changes and the same saved form, and each must continue from the others' saved
state with the same decisions: histories of 1 to 3 windows, ``min_history`` of 0, 1 and
beyond the history, groups of 255 to 513 windows (the 256-window groups), a source with
one window, NaN and infinite values (a metric mean that overflowed, a quality score that
is not a number), events of 0 and below.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from shipper.anomaly.detector import ColdDetector, CompiledDetector, Detector, DetectorConfig


def _compiled_or_skip() -> None:
    from shipper.anomaly import detector

    if detector._judge_c is None:
        pytest.skip("the compiled judge (_fastparse._counting) is not built")


def _windows(rnd: random.Random, n: int) -> list[tuple[dict[str, float | None], int]]:
    """What Window.signals gives (always ``events``), with values at their edges."""
    out = []
    for w in range(n):
        v: dict[str, float | None] = {"events": rnd.choice((0.0, 1.0, 5.0, 100.0, float(rnd.randint(0, 50)), -1.0))}
        if rnd.random() < 0.5:
            v["error_ratio"] = rnd.choice((0.0, 0.1, 1.0, None, rnd.random()))
        if rnd.random() < 0.5:
            v["errors.x"] = rnd.choice((0.0, 1.0, 3.0))
        if rnd.random() < 0.5:
            edges = (1.0, 2.0, rnd.gauss(2, 0.1), math.nan, math.inf, -math.inf, None, 1e308)
            v["metrics.loss.mean"] = rnd.choice(edges)
        if rnd.random() < 0.3:
            v["quality.auc"] = rnd.choice((0.5, rnd.random(), math.nan))
        out.append((v, 1000 * w))
    return out


def _same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # NaN values compare by their text


@pytest.mark.parametrize("seed", range(40))
def test_compiled_numpy_and_cold_agree_at_the_edges(seed: int) -> None:
    import numpy as np

    _compiled_or_skip()
    rnd = random.Random(seed)
    cfg = DetectorConfig(
        history=rnd.choice((1, 2, 3, 5, 20)),
        min_history=rnd.choice((0, 1, 2, 3, 10, 30)),
        sigma=rnd.choice((2.0, 3.0)),
        clear_sigma=rnd.choice((1.0, 2.0)),
    )
    windows = _windows(rnd, rnd.choice((1, 2, 30, 300, 600)))
    ref: Any = Detector(cfg)
    det: Any = CompiledDetector(cfg)
    cold: Any = ColdDetector(cfg)
    i = 0
    with np.errstate(all="ignore"):
        while i < len(windows):
            k = rnd.choice((1, 2, 7, 255, 256, 257, 513))
            group = windows[i : i + k]
            expect = ref.observe_many(group)
            assert _same(det.observe_many(group), expect)
            assert _same(cold.observe_many(group), expect)
            saved = ref.to_dict()
            assert _same(det.to_dict(), saved)
            assert _same(cold.to_dict(), saved)
            if rnd.random() < 0.25:  # a restart from either side's saved state
                src = saved if rnd.random() < 0.5 else det.to_dict()
                ref = Detector.from_dict(cfg, src)
                det = CompiledDetector.from_dict(cfg, src)
                cold = ColdDetector.from_dict(cfg, src)
            i += k


def test_without_the_extension_the_cold_detector_becomes_numpys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A state saved by the compiled detector, loaded where _counting is not built: numpy's
    Detector, continuing with the same decisions."""
    import numpy as np

    _compiled_or_skip()
    from shipper.anomaly import detector

    rnd = random.Random(7)
    cfg = DetectorConfig(history=20, min_history=3)
    windows = _windows(rnd, 200)
    det = CompiledDetector(cfg)
    with np.errstate(all="ignore"):
        det.observe_many(windows[:100])
        saved = det.to_dict()
        expect = det.observe_many(windows[100:])
        monkeypatch.setattr(detector, "_judge_c", None)
        twin = ColdDetector.from_dict(cfg, saved)
        assert type(twin) is Detector
        assert _same(twin.observe_many(windows[100:]), expect)
        assert _same(twin.to_dict(), det.to_dict())
        fresh = ColdDetector(cfg)
        fresh.observe_many(windows[:2])
        fresh.observe_many(windows[2:50])
        assert type(fresh.hot) is Detector
