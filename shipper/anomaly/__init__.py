"""Per-source anomaly counters: see a failing model in the numbers before anyone reads a log.

Modules, one job each:

- ``_fastparse/counters.py``: a batch's per-event arrays -> counters per window (numpy).
- ``windows``: a source's open windows, and when event time or wall time closes them.
- ``detector``: the k-sigma watch over a rolling history (floors, directions, hysteresis,
  silence).
- ``quality``: accuracy, precision, recall, F1 and ROC AUC of a window's predictions.
- ``documents``: window summaries and anomaly events for Elasticsearch, and their writer.
- ``notify``: webhooks, with bounded queues, timeouts and retries.
- ``watch``: ties them together; fed by the pipeline at settle time, ticked by the agent,
  saved with every registry checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..config import AnomalyConfig
from ..metrics import Metrics
from .detector import DetectorConfig
from .documents import DocumentWriter
from .notify import Notifier, WebhookConfig
from .watch import AnomalyWatch, WatchConfig

__all__ = ["AnomalyWatch", "WatchConfig", "build"]


def build(
    cfg: AnomalyConfig,
    metrics: Metrics,
    *,
    host_id: str,
    host_name: str,
    client: Any,
    readers: Callable[[], Iterable[Any]],
    files: Callable[[], dict[str, Any]],
) -> AnomalyWatch:
    """The watch for an agent's config, with its writer (on the agent's client) and webhooks."""
    wcfg = WatchConfig(
        window_ms=int(cfg.window * 1000),
        grace_ms=int(cfg.grace * 1000),
        detector=DetectorConfig(
            history=cfg.history,
            min_history=cfg.min_history,
            sigma=cfg.sigma,
            clear_sigma=cfg.clear_sigma,
            directions=cfg.directions,
        ),
        max_gap=cfg.history,
        forget_after_ms=int(cfg.forget_after * 1000),
        metrics_index=cfg.metrics_index,
        anomalies_index=cfg.anomalies_index,
        documents=cfg.documents,
    )
    writer = DocumentWriter(client) if cfg.documents and client is not None else None
    hooks = [WebhookConfig(url, timeout, retries) for url, timeout, retries in cfg.notify]
    notifier = Notifier(hooks, cfg.notify_queue) if hooks else None
    return AnomalyWatch(
        wcfg,
        metrics,
        host_id=host_id,
        host_name=host_name,
        writer=writer,
        notifier=notifier,
        readers=readers,
        files=files,
    )
