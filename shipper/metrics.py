"""The agent's own Prometheus series, in one place, with names kept stable.

No label per file: files come and go, and a label per file would grow the series set
without bound on a host that rotates logs every hour.

The series are plain numbers here, with the part of prometheus_client's ``Counter``,
``Gauge`` and ``Histogram`` interface the agent uses (``labels``, ``inc``, ``set``,
``set_function``, ``observe``, ``remove``); prometheus_client itself (~48 M instructions
and ~1 MiB at import, with its exposition's http.server, wsgiref and urllib.request) is
imported at the first scrape (``registry``, ``render``), which hands it the same families
and samples its own classes would: the exposition is its own, byte for byte (the tests
compare). A run without a listener never imports it. Everything that counts runs on the
event loop's thread, as the scrape does.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# prometheus_client's switch for the *_created series, read as it reads it
_USE_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")
_Sample = tuple[str, dict[str, str], float]


def _go_float(f: float) -> str:
    """A histogram bound as prometheus_client writes it in ``le`` (floatToGoString)."""
    if f == math.inf:
        return "+Inf"
    if f == -math.inf:
        return "-Inf"
    if math.isnan(f):
        return "NaN"
    s = repr(float(f))
    dot = s.find(".")
    if f > 0 and dot > 6:  # large numbers in the exponent form, as Go writes them
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


class _Counter:
    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount

    def samples(self) -> list[_Sample]:
        out: list[_Sample] = [("_total", {}, self.value)]
        if _USE_CREATED:
            out.append(("_created", {}, self.created))
        return out


class _Gauge:
    def __init__(self) -> None:
        self.value = 0.0
        self.function: Callable[[], float] | None = None

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def set_function(self, f: Callable[[], float]) -> None:
        self.function = f

    def samples(self) -> list[_Sample]:
        return [("", {}, float(self.function()) if self.function is not None else self.value)]


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        for i, bound in enumerate(self.bounds):
            if amount <= bound:
                self.counts[i] += 1
                break

    def samples(self) -> list[_Sample]:
        out: list[_Sample] = []
        acc = 0.0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            acc += n
            out.append(("_bucket", {"le": _go_float(bound)}, acc))
        out.append(("_count", {}, acc))
        if self.bounds[0] >= 0:
            out.append(("_sum", {}, self.sum))
        if _USE_CREATED:
            out.append(("_created", {}, self.created))
        return out


class Family:
    """One series family: its children by label values (made on first use), or, without
    label names, the one series itself (``inc``, ``set``, ... on the family)."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = (),
    ) -> None:
        self.kind = kind
        # prometheus_client's name of the family: a counter's without _total
        self.name = name[:-6] if kind == "counter" and name.endswith("_total") else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        if kind == "histogram":
            bounds = [float(b) for b in buckets]
            if bounds[-1] != math.inf:
                bounds.append(math.inf)
            self.bounds = tuple(bounds)
        self.children: dict[tuple[str, ...], Any] = {}
        self._only: Any = None if self.labelnames else self._new()

    def _new(self) -> Any:
        if self.kind == "counter":
            return _Counter()
        if self.kind == "gauge":
            return _Gauge()
        return _Histogram(self.bounds)

    def labels(self, *values: object) -> Any:
        if not self.labelnames:
            raise ValueError(f"No label names were set when constructing {self.kind}:{self.name}")
        if len(values) != len(self.labelnames):
            raise ValueError("Incorrect label count")
        key = tuple(map(str, values))
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._new()
        return child

    def remove(self, *values: object) -> None:
        if len(values) != len(self.labelnames):
            raise ValueError(f"Incorrect label count (expected {len(self.labelnames)}, got {values})")
        self.children.pop(tuple(map(str, values)), None)

    # the one series of a family without labels
    def inc(self, amount: float = 1) -> None:
        self._only.inc(amount)

    def set(self, value: float) -> None:
        self._only.set(value)

    def set_function(self, f: Callable[[], float]) -> None:
        self._only.set_function(f)

    def observe(self, amount: float) -> None:
        self._only.observe(amount)

    def series(self) -> Iterable[tuple[str, dict[str, str], float]]:
        """(name, labels, value) of every sample, in prometheus_client's order."""
        if self._only is not None:
            for suffix, labels, value in self._only.samples():
                yield self.name + suffix, labels, value
            return
        for key, child in list(self.children.items()):
            series_labels = list(zip(self.labelnames, key, strict=True))
            for suffix, labels, value in child.samples():
                yield self.name + suffix, dict(series_labels + list(labels.items())), value


class BeforeCollect:
    """Callbacks run before any series is collected (a scrape, ``get_sample_value``): the
    anomaly watch keeps its per-source counts as plain ints per batch and hands them to
    the counters here, not with ~10 ``inc`` a batch."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []


class _Collector:
    """The families for prometheus_client's registry (its ``describe``/``collect``)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric

        return [Metric(f.name, f.documentation, f.kind) for f in self.metrics.families]

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric

        for callback in self.metrics.before_collect.callbacks:
            callback()
        out = []
        for f in self.metrics.families:
            metric = Metric(f.name, f.documentation, f.kind)
            for name, labels, value in f.series():
                metric.add_sample(name, labels, value)
            out.append(metric)
        return out


class Metrics:
    def __init__(self) -> None:
        self.families: list[Family] = []
        self.before_collect = BeforeCollect()
        self._registry: Any = None
        f = self._family
        self.input_lines = f("counter", "shipper_input_lines_total", "Lines read, per input.", ["input"])
        self.input_bytes = f("counter", "shipper_input_bytes_total", "Bytes read, per input.", ["input"])
        self.input_generations = f(
            "counter",
            "shipper_input_generations_total",
            "New generations of files begun, per input: a truncation, or a copytruncate copy of a "
            "generation never read.",
            ["input"],
        )
        self.input_bytes_behind = f(
            "gauge", "shipper_input_bytes_behind", "Bytes in matched files not yet read, per input.", ["input"]
        )
        self.events_acked = f(
            "counter", "shipper_output_events_acked_total", "Events Elasticsearch acknowledged (including 409 replays)."
        )
        self.bulk_duration = f(
            "histogram",
            "shipper_output_bulk_duration_seconds",
            "Duration of bulk requests.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.retries = f("counter", "shipper_output_retries_total", "Retried requests or items, by reason.", ["reason"])
        self.dlq_events = f(
            "counter", "shipper_dlq_events_total", "Events written to the dead-letter queue, by reason.", ["reason"]
        )
        self.inflight_bytes = f("gauge", "shipper_inflight_bytes", "Bulk bytes read and not yet acknowledged.")
        self.open_files = f("gauge", "shipper_open_files", "Files held open by readers.")
        # per source (an input, or a name made from paths; never a file), counted when settled
        self.source_events = f(
            "counter", "shipper_source_events_total", "Events acknowledged or dead-lettered, per source.", ["source"]
        )
        self.source_bytes = f(
            "counter", "shipper_source_bytes_total", "File bytes of settled events, per source.", ["source"]
        )
        self.source_level_events = f(
            "counter", "shipper_source_level_events_total", "Settled events per source and log level.",
            ["source", "level"],
        )
        self.source_error_events = f(
            "counter",
            "shipper_source_error_events_total",
            "Settled error events per source and error class.",
            ["source", "class"],
        )
        self.source_late_events = f(
            "counter",
            "shipper_source_late_events_total",
            "Events whose window had closed (after the grace period): in the totals, not in a window.",
            ["source"],
        )
        self.anomaly_active = f(
            "gauge", "shipper_anomaly_active", "1 while an anomaly is active, per source and signal.",
            ["source", "signal"],
        )
        self.anomalies = f(
            "counter", "shipper_anomalies_total", "Anomalies started, per source and signal.", ["source", "signal"]
        )
        self.anomaly_dropped = f(
            "counter",
            "shipper_anomaly_dropped_total",
            "Window/anomaly documents or notifications dropped (queue full or given up), per output.",
            ["output"],
        )

    def _family(
        self, kind: str, name: str, doc: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = ()
    ) -> Family:
        family = Family(kind, name, doc, labelnames, buckets)
        self.families.append(family)
        return family

    @property
    def registry(self) -> Any:
        """prometheus_client's ``CollectorRegistry`` of these series (imported here, once)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(_Collector(self))
        return self._registry

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
