"""Burst detection and false positives of the anomaly watch, and what counting costs.

Three parts, each selectable:

- ``--synthetic``: the detector driven directly with per-window signals of two sources,
  stationary Poisson (events ~ Poisson(events_rate), error events ~ Poisson(error_rate),
  bytes ~ events x 200 +- noise) over ``--windows`` windows; in the "burst" source one
  window has 5x the error events. Repeated over ``--runs`` seeds. Reported: how often the
  burst is flagged in its window or the next, and the false-positive rate: windows past
  ``min_history`` in which any signal (events, bytes, error_ratio, errors.*) starts an
  alert, other than the burst window and the one after it, over all stationary windows of
  both sources (the control source must raise nothing). ``--volume fixed`` (events constant,
  error events ~ Poisson(rate x events), bytes 200 per event: issue 7's "stationary Poisson
  error rates") or ``--volume jitter`` (events within +-``--jitter``) instead of Poisson
  volume; the signals are built by the agent's ``Window.signals()``.
- ``--counters``: the per-batch cost of ``_fastparse.counters.count`` on a batch like a
  256 KiB chunk makes (about 2,500 events, metrics on a quarter of them), in ns per event.
- ``--overhead``: agent CPU per line with the watch on and off (``-n`` lines of a
  generated training log, to a bulk endpoint that discards; best of ``--reps``).
- ``--e2e``: the agent as a real process over generated logs of the same two sources
  (timestamps one window apart, a burst of error lines in one window), ``--once``, to a
  real Elasticsearch (``SHIPPER_TEST_ES_URL`` or ``--es``); reports which anomaly
  documents the agent indexed. Needs the parser's per-event arrays (issue 4).

    python benchmarks/anomaly_detection.py --synthetic --counters [--e2e --es http://127.0.0.1:9201]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _fastparse import counters  # noqa: E402
from shipper.anomaly.detector import CompiledDetector, Detector, DetectorConfig  # noqa: E402

DETECTOR: type[Detector] | type[CompiledDetector] = Detector  # --detector compiled: the agent's
from shipper.anomaly.windows import Window  # noqa: E402

ERROR_SIGNALS = ("errors.other", "error_ratio")


def synthetic_source(
    rng: np.random.Generator,
    windows: int,
    burst_at: int | None,
    events_rate: float,
    error_rate: float,
    volume: str = "poisson",
    jitter: float = 0.02,
) -> list[dict[str, float | None]]:
    """Per-window signals of one source, built by the agent's own ``Window.signals()``.

    ``volume``: ``poisson`` (events ~ Poisson(events_rate), errors ~ Poisson(error_rate),
    bytes ~ events x 200 + noise of sd 200 sqrt(events): the original study), ``fixed``
    (events = events_rate every window: a steady volume, error events ~ Poisson(rate x
    events), bytes = events x 200) or ``jitter`` (events uniform within +-``jitter`` of
    events_rate, otherwise as ``fixed``). A burst window has 5x the error rate; its extra
    error lines are extra events (and bytes)."""
    p = error_rate / events_rate
    if volume == "poisson":
        ev = rng.poisson(events_rate, windows).astype(float)
        err = rng.poisson(error_rate, windows).astype(float)
    else:
        if volume == "fixed":
            ev = np.full(windows, float(round(events_rate)))
        elif volume == "jitter":
            ev = np.round(events_rate * rng.uniform(1 - jitter, 1 + jitter, windows))
        else:
            raise ValueError(f"volume: {volume!r}")
        err = rng.poisson(p * ev).astype(float)
    if burst_at is not None:
        base = err[burst_at]
        err[burst_at] = rng.poisson(5 * p * ev[burst_at])
        ev[burst_at] += max(err[burst_at] - base, 0.0)  # the extra error lines are extra events
    # bytes: line lengths vary in the original study; otherwise tied to events (200 per line)
    nbytes = ev * 200 + rng.normal(0, 200, windows) * np.sqrt(ev) if volume == "poisson" else ev * 200
    rows = []
    for w in range(windows):
        win = Window(start=w * 10_000, events=int(ev[w]), bytes=int(nbytes[w]), classes={"other": int(err[w])})
        rows.append(win.signals())
    return rows


def run_source(
    cfg: DetectorConfig, rows: list[dict[str, float | None]], batch: int = 1
) -> tuple[list[list[str]], list[list[str]]]:
    """The alerts that start in each window, and those on after it, judged as the watch
    does (``observe_many`` over the windows a tick closes; ``batch`` windows per tick;
    the alert state after a batch is that of its last window, so ``active`` is exact only
    for ``batch`` 1)."""
    det = DETECTOR(cfg)
    starts: list[list[str]] = []
    active: list[list[str]] = []
    for lo in range(0, len(rows), batch):
        chunk = [(rows[w], w * 10_000) for w in range(lo, min(lo + batch, len(rows)))]
        for changes in det.observe_many(chunk):
            starts.append([c.signal for c in changes if c.state == "start"])
            active.append(sorted(det.active))
    return starts, active


def synthetic(
    windows: int,
    runs: int,
    burst_at: int,
    events_rate: float,
    error_rate: float,
    cfg: DetectorConfig,
    volume: str = "poisson",
    jitter: float = 0.02,
) -> dict[str, Any]:
    flagged = 0
    flagged_on = 0
    false_pos = 0
    judged = 0
    control_alerts = 0
    clean_controls = 0
    error_fp = 0
    by_signal: dict[str, int] = {}
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        for source in ("control", "burst"):
            rows = synthetic_source(
                rng, windows, burst_at if source == "burst" else None, events_rate, error_rate, volume, jitter
            )
            starts, active = run_source(cfg, rows)
            raised = 0
            for w, st in enumerate(starts):
                if source == "burst" and w in (burst_at, burst_at + 1):
                    continue
                if w >= cfg.min_history:
                    judged += 1
                    if st:
                        false_pos += 1
                        raised += 1
                        if source == "control":
                            control_alerts += 1
                        for s in st:
                            by_signal[s] = by_signal.get(s, 0) + 1
                    if any(s in ERROR_SIGNALS for s in st):
                        error_fp += 1
            if source == "burst":
                # an error-signal alert starts in the burst window or the next one
                flagged += any(s in ERROR_SIGNALS for w in (burst_at, burst_at + 1) for s in starts[w])
                # or on during the burst window (a false alarm just before it, not yet cleared)
                flagged_on += any(s in ERROR_SIGNALS for w in (burst_at, burst_at + 1) for s in active[w])
            elif raised == 0:
                clean_controls += 1
    return {
        "runs": runs,
        "windows": windows,
        "burst_flagged": flagged,
        "burst_alert_on": flagged_on,
        "judged_windows": judged,
        "false_positive_windows": false_pos,
        "fp_rate": false_pos / judged,
        "control_alert_windows": control_alerts,
        "clean_controls": clean_controls,
        "error_fp_windows": error_fp,
        "error_fp_rate": error_fp / judged,
        "by_signal": by_signal,
    }


METRIC_NAMES = ("loss", "accuracy", "lr", "grad_norm")
ERROR_CLASSES = (
    "accelerator_oom",
    "host_oom",
    "nan_loss",
    "load_failure",
    "data_loading",
    "input_error",
    "timeout",
    "distributed",
    "other",
)  # the parser's built-in table (its ids index this)


class _Batch:
    def __init__(self, n: int, rng: np.random.Generator, t0: int) -> None:
        self.ev_time = array("q", (t0 + np.sort(rng.integers(0, 400, n))).tolist())
        self.ev_level = array("B", rng.choice([3, 3, 3, 4, 5], n).tolist())
        self.ev_class = array("B", rng.choice([0] * 50 + [1, 9], n).tolist())
        self.ev_bytes = array("I", rng.integers(60, 200, n).tolist())
        items = np.sort(rng.choice(n, n // 4, replace=False))
        self.m_item = array("I", items.tolist())
        self.m_id = array("H", rng.integers(0, 4, len(items)).tolist())
        self.m_value = array("d", rng.random(len(items)).tolist())
        self.count = n
        item = b'{"create":{"_index":"i","_id":"x"}}\n{"message":"CUDA out of memory"}\n'
        self.body = item * n
        self.item_ends = array("q", range(len(item), len(item) * n + 1, len(item))).tobytes()


def counter_cost(n_events: int, reps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    batches = [_Batch(n_events, rng, 1_700_000_000_000 + i * 400) for i in range(16)]
    names, classes = METRIC_NAMES, ERROR_CLASSES
    for b in batches:
        counters.count(b, 10_000, names, classes)
    t0 = time.perf_counter()
    for i in range(reps):
        counters.count(batches[i % 16], 10_000, names, classes)
    per_batch = (time.perf_counter() - t0) / reps
    return {"events_per_batch": n_events, "us_per_batch": per_batch * 1e6, "ns_per_event": per_batch / n_events * 1e9}


def watch_cost(n_events: int, reps: int) -> dict[str, float]:
    """The whole per-batch cost of the watch on the hot path: ``observe`` at submit
    (counters, error samples) and ``settle`` when the watermark passes (totals, windows)."""
    from shipper.anomaly.watch import AnomalyWatch, WatchConfig
    from shipper.metrics import Metrics

    class Parser:
        metric_names = METRIC_NAMES
        error_classes = ERROR_CLASSES

    class Owner:
        source = "bench"
        parser = Parser()

    rng = np.random.default_rng(0)
    batches = [_Batch(n_events, rng, 1_700_000_000_000 + i * 400) for i in range(16)]
    watch = AnomalyWatch(WatchConfig(), Metrics(), host_id="h" * 32, host_name="bench")
    owner = Owner()
    t0 = time.perf_counter()
    tokens = [watch.observe(batches[i % 16], owner, "bench") for i in range(reps)]
    t1 = time.perf_counter()
    for tok in tokens:
        assert tok is not None
        watch.settle(tok)
    t2 = time.perf_counter()
    return {
        "observe_us": (t1 - t0) / reps * 1e6,
        "settle_us": (t2 - t1) / reps * 1e6,
        "ns_per_event": (t2 - t0) / reps / n_events * 1e9,
    }


def state_cost(sources: int, metrics: int, reps: int) -> dict[str, float]:
    """What the watch adds to each registry write: the saved state's size and the time to
    assemble it when only open windows changed (detector histories are cached)."""
    import orjson

    from shipper.anomaly.watch import AnomalyWatch, WatchConfig
    from shipper.metrics import Metrics

    watch = AnomalyWatch(WatchConfig(), Metrics(), host_id="h" * 32, host_name="bench")
    rng = np.random.default_rng(0)
    for i in range(sources):
        det = watch._source(f"source{i}").detector
        for k in range(det.cfg.history):
            values: dict[str, float | None] = {f"metrics.m{j}.mean": float(rng.random()) for j in range(metrics)}
            values.update({"events": 100.0, "bytes": 1e4, "error_ratio": 0.01, "errors.other": 1.0})
            det.observe(values, k * 10_000)
    size = len(orjson.dumps({"anomaly": watch.state()}))
    t0 = time.perf_counter()
    for _ in range(reps):
        watch._cache = None  # a settle happened: open windows changed
        watch.state()
    return {"kib": size / 1024, "ms": (time.perf_counter() - t0) / reps * 1e3}


def e2e(es_url: str, windows: int, burst_at: int, events_rate: int, error_rate: int) -> dict[str, Any]:
    """Two sources as two inputs, python-format lines with timestamps one second apart per window."""
    import yaml
    from elasticsearch import Elasticsearch

    tag = uuid.uuid4().hex[:8]
    rng = np.random.default_rng(7)
    start = (int(time.time()) // 86400 - 1) * 86400  # yesterday: a backfill, windows by event time
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for source in ("control", "burst"):
            lines = []
            for w in range(windows):
                n_ok = rng.poisson(events_rate)
                n_err = rng.poisson(5 * error_rate if (source == "burst" and w == burst_at) else error_rate)
                for i in range(n_ok + n_err):
                    t = start + w
                    ms = int(1000 * i / (n_ok + n_err))
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f",{ms:03d}"
                    level = "ERROR" if i < n_err else "INFO"
                    lines.append(f"{stamp} - trainer - {level} - step {w}.{i} loss=0.5\n")
            (root / source).mkdir()
            (root / source / "train.log").write_text("".join(lines))
        cfg = {
            "data_dir": str(root / "data"),
            "inputs": [
                {
                    "id": s,
                    "paths": [str(root / s / "*.log")],
                    "format": "python",
                    "timezone": "UTC",
                    "multiline": "none",
                }
                for s in ("control", "burst")
            ],
            "output": {"elasticsearch": {"hosts": [es_url], "index": f"shipper-logs-bench-{tag}-{{input}}"}},
            "http": {"listen": None},
            "anomaly": {
                "window": "1s",
                "grace": "1s",
                "metrics_index": f"shipper-metrics-bench-{tag}",
                "anomalies_index": f"shipper-anomalies-bench-{tag}",
            },
        }
        (root / "c.yml").write_text(yaml.safe_dump(cfg))
        from shipper.sinks.elasticsearch import TEMPLATES

        es = Elasticsearch(es_url)
        for kind in ("metrics", "anomalies"):  # this tree's mappings, whatever template another agent put
            es.indices.create(
                index=f"shipper-{kind}-bench-{tag}", mappings=TEMPLATES[f"shipper-{kind}"]["template"]["mappings"]
            )
        t0 = time.time()
        subprocess.run(
            [sys.executable, "-m", "shipper", "run", "-c", str(root / "c.yml"), "--once"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.time() - t0
    es.indices.refresh(index=f"shipper-*-bench-{tag}*")
    hits = es.search(index=f"shipper-anomalies-bench-{tag}", size=1000, query={"match_all": {}})["hits"]["hits"]
    windows_indexed = es.count(index=f"shipper-metrics-bench-{tag}")["count"]
    found = sorted(
        (
            h["_source"]["event"]["dataset"],
            (int(_ms(h["_source"]["@timestamp"])) // 1000 - start),
            h["_source"]["anomaly"]["signal"],
            h["_source"]["anomaly"]["state"],
        )
        for h in hits
    )
    es.indices.delete(index=f"shipper-*-bench-{tag}*")
    starts = [f for f in found if f[3] == "start"]
    return {
        "wall_s": round(wall, 1),
        "window_documents": windows_indexed,
        "anomaly_starts": starts,
        "burst_flagged": any(f[0] == "burst" and f[1] in (burst_at, burst_at + 1) for f in starts),
        "control_starts": [f for f in starts if f[0] == "control"],
    }


def overhead(n: int, reps: int) -> dict[str, Any]:
    """CPU of ``shipper run --once`` over a generated training log (Python layout, metrics,
    tracebacks) to the discarding bulk endpoint, with the anomaly watch on and off,
    alternating runs (the best of ``reps`` each: the machine is shared)."""
    sys.path.insert(0, str(HERE))
    from bench_e2e import corpus, free_port, measure

    work = Path(tempfile.mkdtemp(prefix="shipper-anomaly-overhead-"))
    log = work / "logs" / "train.log"
    log.parent.mkdir()
    log.write_bytes(corpus("training", n))
    lines = log.read_bytes().count(b"\n")
    port = free_port()
    ep = subprocess.Popen([sys.executable, str(HERE / "discard_endpoint.py"), str(port)])
    best: dict[str, float] = {}
    try:
        time.sleep(1.0)
        for rep in range(reps):
            for on in (True, False):
                name = "on" if on else "off"
                cfg = work / f"{name}{rep}.yml"
                cfg.write_text(
                    f"data_dir: {work / ('data-' + name + str(rep))}\n"
                    f"inputs: [{{id: bench, paths: ['{log}'], format: python}}]\n"
                    f"output: {{elasticsearch: {{hosts: ['http://127.0.0.1:{port}'], template: false}}}}\n"
                    f"http: {{listen: null}}\nlog_level: warning\nanomaly: {{enabled: {str(on).lower()}, "
                    "documents: false}\n"
                )
                r = measure([sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"], cwd=ROOT)
                best[name] = min(best.get(name, float("inf")), r["cpu_s"])
    finally:
        ep.terminate()
    return {
        "lines": lines,
        "cpu_on": best["on"],
        "cpu_off": best["off"],
        "lines_per_cpu_s_on": lines / best["on"],
        "lines_per_cpu_s_off": lines / best["off"],
        "overhead": best["on"] / best["off"] - 1,
    }


def _ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument(
        "--detector",
        choices=["numpy", "compiled"],
        default="numpy",
        help="--synthetic: numpy's Detector or the compiled one the agent uses (the output must be the same)",
    )
    ap.add_argument("--counters", action="store_true")
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--state", action="store_true", help="size and cost of the state in each registry write")
    ap.add_argument("--overhead", action="store_true", help="agent CPU with the watch on vs off")
    ap.add_argument("-n", type=int, default=1_000_000, help="--overhead: lines")
    ap.add_argument("--reps", type=int, default=3, help="--overhead: runs of each")
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--burst-at", type=int, default=150)
    ap.add_argument("--events-rate", type=float, default=1000)
    ap.add_argument("--error-rate", type=float, default=20)
    ap.add_argument("--sigma", type=float, default=3.0)
    ap.add_argument(
        "--volume",
        choices=("poisson", "fixed", "jitter"),
        default="poisson",
        help="--synthetic: events per window Poisson (and bytes noisy), constant, or uniform within +-jitter",
    )
    ap.add_argument("--jitter", type=float, default=0.02, help="--synthetic --volume jitter: relative spread")
    ap.add_argument("--es", default=os.environ.get("SHIPPER_TEST_ES_URL", "http://127.0.0.1:9201"))
    args = ap.parse_args()
    global DETECTOR
    DETECTOR = CompiledDetector if args.detector == "compiled" else Detector
    cfg = DetectorConfig(sigma=args.sigma, clear_sigma=min(2.0, args.sigma))
    if args.synthetic:
        r = synthetic(
            args.windows, args.runs, args.burst_at, args.events_rate, args.error_rate, cfg, args.volume, args.jitter
        )
        vol = {
            "poisson": f"events ~ Poisson({args.events_rate:g}), errors ~ Poisson({args.error_rate:g})",
            "fixed": f"events = {args.events_rate:g}, errors ~ Poisson({args.error_rate:g})",
            "jitter": f"events = {args.events_rate:g} +-{100 * args.jitter:g}% (uniform), "
            f"errors ~ Poisson({args.error_rate / args.events_rate:g} x events)",
        }[args.volume]
        print(
            f"synthetic: {r['runs']} runs x 2 sources x {r['windows']} windows, {vol}, "
            f"5x burst at window {args.burst_at}, sigma {args.sigma:g}"
        )
        print(
            f"  burst flagged (error alert starts) in its window or the next: {r['burst_flagged']} of {r['runs']} "
            f"(an error alert on then: {r['burst_alert_on']})"
        )
        print(
            f"  false positives: {r['false_positive_windows']} of {r['judged_windows']} stationary windows "
            f"= {100 * r['fp_rate']:.3f}% (control source: {r['control_alert_windows']} windows)"
        )
        print(
            f"  error signals alone (errors.other, error_ratio): {r['error_fp_windows']} windows "
            f"= {100 * r['error_fp_rate']:.3f}%; "
            f"control raised nothing at all in {r['clean_controls']} of {r['runs']} runs"
        )
        print(f"  alert starts by signal: {dict(sorted(r['by_signal'].items()))}")
    if args.counters:
        for n in (2500, 250):
            r2 = counter_cost(n, 2000)
            us, ns = r2["us_per_batch"], r2["ns_per_event"]
            print(f"counters.count: {n} events/batch: {us:.1f} us/batch, {ns:.1f} ns/event")
    if args.counters:
        r5 = watch_cost(2500, 2000)
        print(
            f"watch per 2500-event batch: observe {r5['observe_us']:.1f} us, settle {r5['settle_us']:.1f} us, "
            f"{r5['ns_per_event']:.1f} ns/event in all"
        )
    if args.state:
        r6 = state_cost(20, 30, 200)
        print(f"state: 20 sources x 34 signals x 60 windows: {r6['kib']:.0f} KiB, {r6['ms']:.3f} ms per registry write")
    if args.e2e:
        windows, burst_at = min(args.windows, 60), min(args.burst_at, 45)
        r3 = e2e(args.es, windows, burst_at, int(args.events_rate // 10), int(args.error_rate // 4))
        print(f"e2e: {r3}")
    if args.overhead:
        r4 = overhead(args.n, args.reps)
        print(
            f"overhead: {r4['lines']:,} lines, "
            f"CPU on {r4['cpu_on']:.2f} s ({r4['lines_per_cpu_s_on']:,.0f} lines/CPU-s), "
            f"off {r4['cpu_off']:.2f} s ({r4['lines_per_cpu_s_off']:,.0f} lines/CPU-s): {100 * r4['overhead']:+.1f}%"
        )


if __name__ == "__main__":
    main()
