"""A/B of two trees' agents on the same corpus, run alternately (A, B, A, B ...).

On a shared 2-core machine one run of each, minutes apart, says little: the load moves.
This generates the corpus once, byte-compiles both trees (so neither pays for compiling
its modules, see ``compile_tree``), starts one discarding endpoint, then runs
``shipper run --once`` from tree A and tree B in turn, each on a fresh data_dir, and
prints every run and the per-tree median of CPU-seconds per million lines, wall lines/s
and peak RSS, with the ratio B/A measured in the same minutes.

    git archive main | tar -x -C /tmp/before && (cd /tmp/before && python setup.py build_ext --inplace)
    python benchmarks/agent_ab.py --a /tmp/before --b . [-n 1000000] [--rounds 4] [--json]

``--no-anomaly`` turns the watch off in both; ``--naive`` adds the naive shipper to
each round (its CPU per line, a ratio in the same minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_e2e import NAIVE, Bench, compile_tree, endpoint_docs, measure  # noqa: E402


def agent_config(
    work: Path, name: str, log: Path, url: str, fmt: str, anomaly: bool, extra: str = "", es: str = ""
) -> Path:
    cfg = work / f"{name}.yml"
    cfg.write_text(
        f"data_dir: {work / ('data-' + name)}\n"
        f"inputs: [{{id: bench, paths: ['{log}'], format: '{fmt}', multiline: auto, metrics: auto}}]\n"
        f"output: {{elasticsearch: {{hosts: ['{url}'], template: false{', ' + es if es else ''}}}}}\n"
        f"anomaly: {{enabled: {'true' if anomaly else 'false'}}}\n"
        "http: {listen: null}\nlog_level: error\n" + (extra + "\n" if extra else "")
    )
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", type=Path, required=True, help="tree A (before)")
    ap.add_argument("--b", type=Path, default=ROOT, help="tree B (after; default this tree)")
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--corpus", choices=["training", "inference", "loghub"], default="training")
    ap.add_argument("--format", default=None)
    ap.add_argument("--no-anomaly", action="store_true")
    ap.add_argument("--naive", action="store_true", help="also the naive shipper once per round")
    ap.add_argument("--extra-a", default="", help="more config lines (YAML) for A, e.g. 'watch: {coalesce: 0ms}'")
    ap.add_argument("--extra-b", default="", help="... for B (with --b = --a: an A/B of two configs of one tree)")
    ap.add_argument("--es-a", default="", help="more keys of output.elasticsearch for A, e.g. 'bulk_max_bytes: 8MiB'")
    ap.add_argument("--es-b", default="", help="... for B")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    fmt = a.format or {"training": "python", "inference": "json", "loghub": "plain"}[a.corpus]
    trees = {"A": a.a.resolve(), "B": a.b.resolve()}
    for t in trees.values():
        compile_tree(t)

    runs: list[dict[str, Any]] = []
    with Bench(a.corpus, a.n, prefix="shipper-ab-") as bench:
        work, log, lines, url = bench.work, bench.log, bench.lines, bench.url
        for rnd in range(a.rounds):
            order = ["A", "B"] if rnd % 2 == 0 else ["B", "A"]  # neither always goes first
            for name in order:
                extra = a.extra_a if name == "A" else a.extra_b
                es = a.es_a if name == "A" else a.es_b
                cfg = agent_config(work, f"{name}{rnd}", log, url, fmt, not a.no_anomaly, extra, es)
                before = endpoint_docs(url)
                r = measure([sys.executable, "-m", "shipper", "run", "-c", str(cfg), "--once"], cwd=trees[name])
                r.update(tree=name, round=rnd, docs=endpoint_docs(url) - before)
                runs.append(r)
                print(_row(r, lines), file=sys.stderr)
            if a.naive:
                before = endpoint_docs(url)
                r = measure([sys.executable, "-c", NAIVE, url, str(log), "naive-bench"])
                r.update(tree="naive", round=rnd, docs=endpoint_docs(url) - before)
                runs.append(r)
                print(_row(r, lines), file=sys.stderr)

    summary: dict[str, Any] = {"lines": lines, "corpus": a.corpus, "format": fmt}
    summary["trees"] = {k: str(v) for k, v in trees.items()}
    for name in ["A", "B"] + (["naive"] if a.naive else []):
        rs = [r for r in runs if r["tree"] == name]
        summary[name] = {
            "cpu_s_per_m_lines": statistics.median(r["cpu_s"] / lines * 1e6 for r in rs),
            "lines_per_cpu_s": statistics.median(lines / r["cpu_s"] for r in rs),
            "lines_per_s": statistics.median(lines / r["wall_s"] for r in rs),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rs),
            "runs": len(rs),
        }
    summary["B_over_A_lines_per_cpu_s"] = summary["B"]["lines_per_cpu_s"] / summary["A"]["lines_per_cpu_s"]
    if a.naive:
        for name in ("A", "B"):
            summary[f"{name}_over_naive"] = summary[name]["lines_per_cpu_s"] / summary["naive"]["lines_per_cpu_s"]
    summary["runs"] = runs
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        for name in ["A", "B"] + (["naive"] if a.naive else []):
            s = summary[name]
            print(
                f"{name:6} median of {s['runs']}: {s['cpu_s_per_m_lines']:.3f} CPU-s/M, "
                f"{s['lines_per_cpu_s']:,.0f} lines/CPU-s, {s['lines_per_s']:,.0f} lines/s, "
                f"peak {s['peak_rss_mib']:.1f} MiB"
            )
        print(f"B / A lines per CPU-second: {summary['B_over_A_lines_per_cpu_s']:.3f}")
        if a.naive:
            print(f"A / naive {summary['A_over_naive']:.2f}x, B / naive {summary['B_over_naive']:.2f}x")


def _row(r: dict[str, Any], lines: int) -> str:
    return (
        f"  round {r['round']} {r['tree']:5}: {r['cpu_s'] / lines * 1e6:.3f} CPU-s/M, "
        f"{lines / r['wall_s']:,.0f} lines/s, "
        f"peak {r['peak_rss_mib']:.1f} MiB, docs {r['docs']}"
    )


if __name__ == "__main__":
    main()
