"""Issue 7's detection proof, in the suite: stationary Poisson error rates over 200 windows,
two sources, a 5x error burst in one window of one of them.

The windows' signals come from the agent's own ``Window.signals()`` and are judged by the
agent's ``Detector.observe_many`` a tick's worth at a time, as ``AnomalyWatch`` does, with
the default detector config (history 60, min_history 10, sigma 3, clear_sigma 2).

"Stationary Poisson error rates": each source's volume is steady (``fixed``: 1000 events
every window; ``jitter``: 1000 +-2%), its error events ~ Poisson(2% x events), bytes 200
per event. (With Poisson event volume as well, ``events`` and ``bytes`` alarm at their
nominal ~0.15% of windows each: see benchmarks/RESULTS.md.)

What 3 sigma promises and what it does not: a burst is flagged, the false-positive rate
stays near the nominal tail (far under 1%), but "the control source raises nothing" holds
only most of the time: over 200 windows a steady Poisson(20) source draws a count beyond
its own one-sided 3-sigma tail in about one run of seven, and the detector flags it (it
is judged against a 60-window estimate, so it also flags a few windows just short of the
exact tail and misses a few beyond it: 13 alarms, 8 of them true outliers, in 100 runs of
benchmarks/anomaly_detection.py --synthetic --volume fixed). For these seeds every control
alarm is on such a true outlier, which is what the test asserts. Seed 1 of the
fixed-volume case draws 40 errors at a rate of 20 in window 130 (P(Poisson(20) >= 40) =
5e-5) and is flagged; with jitter, seeds 1 and 3 draw 41 and 37 (rates 20.2 and 19.8). At
``sigma: 4`` nothing in any control source is flagged and every burst still is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

from shipper.anomaly.detector import Detector, DetectorConfig, tail_probability
from shipper.anomaly.windows import Window

WINDOWS = 200
BURST_AT = 150
EVENTS = 1000
P_ERR = 0.02
SEEDS = range(5)
ERROR_SIGNALS = {"errors.other", "error_ratio"}
TICK = 7  # windows judged per observe_many call (a tick closes several)


def source(rng: np.random.Generator, volume: str, burst: bool) -> tuple[list[Window], np.ndarray]:
    """The windows of one source and the error rate (per window) each was drawn with."""
    if volume == "fixed":
        ev = np.full(WINDOWS, EVENTS)
    else:
        ev = np.round(EVENTS * rng.uniform(0.98, 1.02, WINDOWS)).astype(np.int64)
    lam = P_ERR * ev.astype(float)
    err = rng.poisson(lam)
    if burst:
        base = err[BURST_AT]
        lam[BURST_AT] *= 5
        err[BURST_AT] = rng.poisson(lam[BURST_AT])
        ev[BURST_AT] += max(int(err[BURST_AT] - base), 0)  # the extra error lines are extra events
    wins = [
        Window(start=w * 10_000, events=int(ev[w]), bytes=int(ev[w]) * 200, classes={"other": int(err[w])})
        for w in range(WINDOWS)
    ]
    return wins, lam


def starts(cfg: DetectorConfig, wins: list[Window]) -> list[set[str]]:
    """The signals whose alert starts in each window."""
    det = Detector(cfg)
    out: list[set[str]] = []
    for lo in range(0, len(wins), TICK):
        due = wins[lo : lo + TICK]
        for changes in det.observe_many([(w.signals(), w.start) for w in due]):
            out.append({c.signal for c in changes if c.state == "start"})
    return out


def poisson_sf(x: int, lam: float) -> float:
    """P(Poisson(lam) >= x)."""
    return 1.0 - sum(math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) for k in range(x))


class Result(NamedTuple):
    flagged: bool  # an error alert starts in the burst window or the next
    fp_windows: int  # stationary windows (both sources) in which any alert starts
    judged: int  # stationary windows past min_history, both sources
    control_alarms: list[tuple[int, list[str], int, float]]  # (window, signals, errors, true rate)


def run(volume: str, seed: int, cfg: DetectorConfig) -> Result:
    rng = np.random.default_rng(seed)
    control, lam_c = source(rng, volume, burst=False)
    burst, _ = source(rng, volume, burst=True)
    sc, sb = starts(cfg, control), starts(cfg, burst)
    stationary = [(w, s) for w, s in enumerate(sc) if w >= cfg.min_history]
    stationary += [(w, s) for w, s in enumerate(sb) if w >= cfg.min_history and w not in (BURST_AT, BURST_AT + 1)]
    return Result(
        flagged=any(sb[w] & ERROR_SIGNALS for w in (BURST_AT, BURST_AT + 1)),
        fp_windows=sum(1 for _, s in stationary if s),
        judged=len(stationary),
        control_alarms=[(w, sorted(s), control[w].errors, float(lam_c[w])) for w, s in enumerate(sc) if s],
    )


@pytest.mark.parametrize("volume", ["fixed", "jitter"])
def test_burst_flagged_control_quiet_false_positives_under_one_percent(volume: str) -> None:
    cfg = DetectorConfig()  # the defaults the agent uses
    assert (cfg.history, cfg.min_history, cfg.sigma) == (60, 10, 3.0)
    results = {seed: run(volume, seed, cfg) for seed in SEEDS}
    fp = judged = 0
    for seed, r in results.items():
        assert r.flagged, f"seed {seed}: burst not flagged in its window or the next"
        assert r.fp_windows / r.judged < 0.01, f"seed {seed}: {r}"
        fp += r.fp_windows
        judged += r.judged
        # the control source raises nothing but for windows whose error count is itself a
        # 3-sigma outlier of the rate it was drawn with (the detector is right there)
        for w, signals, errors, lam in r.control_alarms:
            assert set(signals) <= ERROR_SIGNALS, f"seed {seed} window {w}: {signals}"
            assert poisson_sf(errors, lam) < tail_probability(cfg.sigma), (seed, w, errors, lam)
    assert fp / judged < 0.005  # measured: well under 0.2% (nominal tail per signal 0.135%)
    quiet = [seed for seed, r in results.items() if not r.control_alarms]
    # measured with these seeds; each other one is a true outlier of its rate (asserted above)
    assert quiet == {"fixed": [0, 2, 3, 4], "jitter": [0, 2, 4]}[volume]


@pytest.mark.parametrize("volume", ["fixed", "jitter"])
def test_at_sigma_4_the_control_source_raises_nothing(volume: str) -> None:
    cfg = DetectorConfig(sigma=4.0)
    for seed in SEEDS:
        r = run(volume, seed, cfg)
        assert r.flagged, seed
        assert r.control_alarms == [], (seed, r.control_alarms)
