"""shipper.metrics keeps its series as plain numbers and imports prometheus_client only to
render them: the exposition must be what prometheus_client's own Counter, Gauge and
Histogram give for the same operations, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shipper import metrics as shipper_metrics
from shipper.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent


def _reference() -> tuple[CollectorRegistry, dict[str, Any]]:
    """The series as shipper.metrics declared them with prometheus_client (before it
    kept its own numbers): same names, help, labels, buckets, order."""
    r = CollectorRegistry(auto_describe=True)
    m = Metrics()
    out: dict[str, Any] = {}
    for attr, value in vars(m).items():
        if not isinstance(value, shipper_metrics.Family):
            continue
        cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[value.kind]
        name = value.name + ("_total" if value.kind == "counter" else "")
        kw: dict[str, Any] = {"registry": r}
        if value.kind == "histogram":
            kw["buckets"] = value.bounds
        out[attr] = cls(name, value.documentation, list(value.labelnames), **kw)
    return r, out


def _apply(m: Any, ops: list[tuple[str, str, tuple[Any, ...], tuple[Any, ...]]]) -> None:
    for attr, method, labels, args in ops:
        target = getattr(m, attr)
        if method == "remove":
            target.remove(*labels)
            continue
        if labels:
            target = target.labels(*labels)
        getattr(target, method)(*args)


OPS: list[tuple[str, str, tuple[Any, ...], tuple[Any, ...]]] = [
    ("input_lines", "inc", ("trainer",), (1000,)),
    ("input_lines", "inc", ("infer",), (3,)),
    ("input_lines", "inc", ("trainer",), (0.5,)),
    ("input_bytes", "inc", ("trainer",), (123456789012,)),
    ("input_bytes_behind", "set_function", ("trainer",), (lambda: 42,)),
    ("input_bytes_behind", "set", ("infer",), (7,)),
    ("events_acked", "inc", (), (99,)),
    ("events_acked", "inc", (), ()),
    ("bulk_duration", "observe", (), (0.003,)),
    ("bulk_duration", "observe", (), (0.25,)),
    ("bulk_duration", "observe", (), (7.0,)),
    ("bulk_duration", "observe", (), (1000.0,)),
    ("retries", "inc", ("429",), ()),
    ("retries", "inc", ("item",), (12,)),
    ("dlq_events", "inc", ('mapper_parsing_exception "quoted"\nnewline\\',), ()),
    ("inflight_bytes", "set_function", (), (lambda: 1 << 20,)),
    ("open_files", "set_function", (), (lambda: 3,)),
    ("source_events", "inc", ("trainer",), (10,)),
    ("source_level_events", "inc", ("trainer", "INFO"), (9,)),
    ("source_level_events", "inc", ("trainer", "ERROR"), (1,)),
    ("source_error_events", "inc", ("trainer", "nan_loss"), (1,)),
    ("anomaly_active", "set", ("trainer", "bytes"), (1,)),
    ("anomaly_active", "set", ("trainer", "errors.nan_loss"), (1,)),
    ("anomaly_active", "set", ("trainer", "bytes"), (0,)),
    ("anomalies", "inc", ("trainer", "bytes"), ()),
    ("anomaly_dropped", "inc", ("documents",), (2,)),
    ("source_level_events", "remove", ("trainer", "ERROR"), ()),
    ("source_level_events", "remove", ("gone", "INFO"), ()),  # not there: no error, as prometheus_client
    ("source_late_events", "inc", (1,), (float("inf"),)),  # a label value made str, an infinite count
]


@pytest.mark.parametrize("created", [True, False])
def test_the_exposition_is_prometheus_clients_own(monkeypatch: pytest.MonkeyPatch, created: bool) -> None:
    monkeypatch.setattr(shipper_metrics, "_USE_CREATED", created)
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", created)
    ref_registry, ref = _reference()
    ours = Metrics()
    _apply(type("R", (), ref)(), OPS)
    _apply(ours, OPS)
    # each series keeps the time it was made (*_created): give ours the reference's
    for attr, fam in vars(ours).items():
        if isinstance(fam, shipper_metrics.Family) and hasattr(fam._only, "created"):
            fam._only.created = ref[attr]._created
    for attr, fam in vars(ours).items():
        if isinstance(fam, shipper_metrics.Family):
            for key, child in fam.children.items():
                if hasattr(child, "created"):
                    child.created = ref[attr]._metrics[key]._created
    want = generate_latest(ref_registry)
    assert ours.render() == want
    assert b'shipper_dlq_events_total{reason="mapper_parsing_exception \\"quoted\\"\\nnewline\\\\"} 1.0' in want
    assert ours.registry.get_sample_value("shipper_input_lines_total", {"input": "trainer"}) == 1000.5
    gone = {"source": "trainer", "level": "ERROR"}
    assert ours.registry.get_sample_value("shipper_source_level_events_total", gone) is None


def test_the_watch_counts_reach_the_scrape() -> None:
    m = Metrics()
    calls = []
    m.before_collect.callbacks.append(lambda: (calls.append(1), m.source_events.labels("s").inc(5)))
    assert m.registry.get_sample_value("shipper_source_events_total", {"source": "s"}) == 5
    assert b'shipper_source_events_total{source="s"} 10.0' in m.render()
    assert len(calls) == 2


def test_errors_as_prometheus_client() -> None:
    m = Metrics()
    with pytest.raises(ValueError):
        m.input_lines.labels("a").inc(-1)
    with pytest.raises(ValueError):
        m.input_lines.labels("a", "b")
    with pytest.raises(ValueError):
        m.events_acked.labels("a")
    with pytest.raises(ValueError):
        m.source_level_events.remove("a")


def test_no_prometheus_client_until_a_scrape() -> None:
    code = (
        "import sys\n"
        "from shipper.metrics import Metrics\n"
        "m = Metrics(); m.input_lines.labels('x').inc(3); m.bulk_duration.observe(0.1)\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert b'shipper_input_lines_total{input=\"x\"} 3.0' in m.render()\n"
        "assert 'prometheus_client' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
