"""Burst detection and false positives of the anomaly watch, and what counting costs.

Three parts, each selectable:

- ``--synthetic``: the detector driven directly with per-window signals of two sources,
  stationary Poisson (events ~ Poisson(events_rate), error events ~ Poisson(error_rate),
  bytes ~ events x 200 +- noise) over ``--windows`` windows; in the "burst" source one
  window has 5x the error events. Repeated over ``--runs`` seeds. Reported: how often the
  burst is flagged in its window or the next, and the false-positive rate: windows past
  ``min_history`` in which any signal (events, bytes, error_ratio, errors.*) starts an
  alert, other than the burst window and the one after it, over all stationary windows of
  both sources (the control source must raise nothing).
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
from shipper.anomaly.detector import Detector, DetectorConfig  # noqa: E402


def synthetic(
    windows: int, runs: int, burst_at: int, events_rate: float, error_rate: float, cfg: DetectorConfig
) -> dict[str, Any]:
    flagged = 0
    false_pos = 0
    judged = 0
    control_alerts = 0
    clean_controls = 0
    error_fp = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        for source in ("control", "burst"):
            det = Detector(cfg)
            ev = rng.poisson(events_rate, windows).astype(float)
            err = rng.poisson(error_rate, windows).astype(float)
            if source == "burst":
                err[burst_at] = rng.poisson(5 * error_rate)
                ev[burst_at] += err[burst_at] - error_rate  # the extra error lines are extra events
            nbytes = ev * 200 + rng.normal(0, 200, windows) * np.sqrt(ev)
            hit = False
            raised = 0
            for w in range(windows):
                values = {
                    "events": ev[w],
                    "bytes": float(nbytes[w]),
                    "error_ratio": err[w] / ev[w] if ev[w] else None,
                    "errors.other": err[w],
                }
                starts = [c.signal for c in det.observe(values, w) if c.state == "start"]
                burst_window = source == "burst" and w in (burst_at, burst_at + 1)
                if burst_window:
                    # raised now, or still on from before (hysteresis): the burst is visible
                    hit = hit or any(s in ("errors.other", "error_ratio") for s in (*starts, *det.active))
                    continue
                if w >= cfg.min_history:
                    judged += 1
                    if starts:
                        false_pos += 1
                        raised += 1
                        if source == "control":
                            control_alerts += 1
                    if any(s in ("errors.other", "error_ratio") for s in starts):
                        error_fp += 1
            flagged += hit
            if source == "control" and raised == 0:
                clean_controls += 1
    return {
        "runs": runs,
        "windows": windows,
        "burst_flagged": flagged,
        "judged_windows": judged,
        "false_positive_windows": false_pos,
        "fp_rate": false_pos / judged,
        "control_alert_windows": control_alerts,
        "clean_controls": clean_controls,
        "error_fp_rate": error_fp / judged,
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
    ap.add_argument("--es", default=os.environ.get("SHIPPER_TEST_ES_URL", "http://127.0.0.1:9201"))
    args = ap.parse_args()
    cfg = DetectorConfig(sigma=args.sigma, clear_sigma=min(2.0, args.sigma))
    if args.synthetic:
        r = synthetic(args.windows, args.runs, args.burst_at, args.events_rate, args.error_rate, cfg)
        print(
            f"synthetic: {r['runs']} runs x 2 sources x {r['windows']} windows, "
            f"events ~ Poisson({args.events_rate:g}), "
            f"errors ~ Poisson({args.error_rate:g}), 5x burst at window {args.burst_at}, sigma {args.sigma:g}"
        )
        print(f"  burst flagged (alert on) in its window or the next: {r['burst_flagged']} of {r['runs']}")
        print(
            f"  false positives: {r['false_positive_windows']} of {r['judged_windows']} stationary windows "
            f"= {100 * r['fp_rate']:.3f}% (control source: {r['control_alert_windows']} windows)"
        )
        print(
            f"  error signals alone (errors.other, error_ratio): {100 * r['error_fp_rate']:.3f}% of windows; "
            f"control raised nothing at all in {r['clean_controls']} of {r['runs']} runs"
        )
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
