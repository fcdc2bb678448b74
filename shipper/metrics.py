"""The agent's own Prometheus series, in one place, with names kept stable.

No label per file: files come and go, and a label per file would grow the series set
without bound on a host that rotates logs every hour.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _BeforeCollect:
    """Registered first, so that its callbacks run before any series is collected (a
    scrape, ``get_sample_value``): the anomaly watch keeps its per-source counts as plain
    ints per batch and hands them to the counters here, not with ~10 ``inc`` a batch."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        for callback in self.callbacks:
            callback()
        return []


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.before_collect = _BeforeCollect()
        r.register(self.before_collect)
        self.input_lines = Counter("shipper_input_lines_total", "Lines read, per input.", ["input"], registry=r)
        self.input_bytes = Counter("shipper_input_bytes_total", "Bytes read, per input.", ["input"], registry=r)
        self.input_generations = Counter(
            "shipper_input_generations_total",
            "New generations of files begun, per input: a truncation, or a copytruncate copy of a "
            "generation never read.",
            ["input"],
            registry=r,
        )
        self.input_bytes_behind = Gauge(
            "shipper_input_bytes_behind", "Bytes in matched files not yet read, per input.", ["input"], registry=r
        )
        self.events_acked = Counter(
            "shipper_output_events_acked_total",
            "Events Elasticsearch acknowledged (including 409 replays).",
            registry=r,
        )
        self.bulk_duration = Histogram(
            "shipper_output_bulk_duration_seconds",
            "Duration of bulk requests.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.retries = Counter(
            "shipper_output_retries_total", "Retried requests or items, by reason.", ["reason"], registry=r
        )
        self.dlq_events = Counter(
            "shipper_dlq_events_total", "Events written to the dead-letter queue, by reason.", ["reason"], registry=r
        )
        self.inflight_bytes = Gauge("shipper_inflight_bytes", "Bulk bytes read and not yet acknowledged.", registry=r)
        self.open_files = Gauge("shipper_open_files", "Files held open by readers.", registry=r)
        # per source (an input, or a name made from paths; never a file), counted when settled
        self.source_events = Counter(
            "shipper_source_events_total", "Events acknowledged or dead-lettered, per source.", ["source"], registry=r
        )
        self.source_bytes = Counter(
            "shipper_source_bytes_total", "File bytes of settled events, per source.", ["source"], registry=r
        )
        self.source_level_events = Counter(
            "shipper_source_level_events_total",
            "Settled events per source and log level.",
            ["source", "level"],
            registry=r,
        )
        self.source_error_events = Counter(
            "shipper_source_error_events_total",
            "Settled error events per source and error class.",
            ["source", "class"],
            registry=r,
        )
        self.source_late_events = Counter(
            "shipper_source_late_events_total",
            "Events whose window had closed (after the grace period): in the totals, not in a window.",
            ["source"],
            registry=r,
        )
        self.anomaly_active = Gauge(
            "shipper_anomaly_active",
            "1 while an anomaly is active, per source and signal.",
            ["source", "signal"],
            registry=r,
        )
        self.anomalies = Counter(
            "shipper_anomalies_total", "Anomalies started, per source and signal.", ["source", "signal"], registry=r
        )
        self.anomaly_dropped = Counter(
            "shipper_anomaly_dropped_total",
            "Window/anomaly documents or notifications dropped (queue full or given up), per output.",
            ["output"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
