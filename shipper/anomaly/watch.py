"""The anomaly watch: per-source counters, windows, detection and outputs, wired together.

Counting is exact across crashes because it happens when events are *settled*, in
checkpoint order: a batch's counters are computed (numpy, once per batch) when the
reader submits it, carried on its acknowledgement entry, and added when the file's
watermark moves over it, in the same step that moves the registry offset. The window
state saved with a checkpoint therefore covers exactly the events before the saved
offsets; what is replayed after a crash was never counted, and is counted once.

A tick (a few times per window) looks at the readers (caught up or not, files gone),
closes due windows in order, runs the detector on each, and hands the window summary
and any anomaly to the document writer, the webhooks, the agent log and Prometheus.
"""

from __future__ import annotations

import logging
import operator
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from _fastparse import counters
from _fastparse.counters import LEVEL_NAMES, NO_EXTENSIONS, WindowCounts

from ..metrics import Metrics
from .detector import Change, ColdDetector, CompiledDetector, Detector, DetectorConfig, empty_state
from .documents import DocumentWriter, anomaly_document, doc_id, index_name, window_document, window_lines
from .notify import Notifier
from .windows import MAX_SAMPLES, SourceWindows, Window, add_classes

log = logging.getLogger("shipper.anomaly")

try:  # an error sample's fields found in C, only they decoded; the whole document decoded without it
    if NO_EXTENSIONS:
        raise ImportError("SHIPPER_NO_EXTENSIONS")
    from _fastparse._counting import error_samples as _error_samples
except ImportError:  # not built (no compiler, SHIPPER_NO_EXTENSIONS)
    _error_samples = None

STATE_VERSION = 1
# anomaly starts (WARNING) and clears (INFO) written to the agent's log one by one, at most
# this many of each per LOG_PERIOD seconds; the rest are summed up in one line per period (their documents,
# webhooks and Prometheus series are not limited: a backfill of a noisy log can start
# dozens a second, and a log line each buries everything else the agent says)
LOG_BURST = 10
LOG_PERIOD = 60.0
# open windows of a source that make a settle close the due ones itself, not wait for the tick
EARLY_CLOSE = 128


@dataclass(frozen=True)
class WatchConfig:
    """The watch's settings (from ``AnomalyConfig``)."""

    window_ms: int = 10_000
    grace_ms: int = 5_000
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    max_gap: int = 60  # empty windows closed in a row for a gap in event time
    forget_after_ms: int = 600_000  # a retired source's series and state go after this
    metrics_index: str = "shipper-metrics-%Y.%m.%d"
    anomalies_index: str = "shipper-anomalies-%Y.%m.%d"
    documents: bool = True


class Token:
    """One batch's counters, from submit to settle."""

    __slots__ = ("counts", "samples", "source")

    def __init__(self, source: str, counts: WindowCounts, samples: dict[int, list[str]]) -> None:
        self.source = source
        self.counts = counts
        self.samples = samples


class Source:
    """Everything the watch keeps about one source."""

    def __init__(self, name: str, cfg: WatchConfig) -> None:
        self.name = name
        self.windows = SourceWindows(cfg.window_ms, cfg.grace_ms, cfg.max_gap)
        self._detector_cfg = cfg.detector
        self._detector: Detector | CompiledDetector | ColdDetector | None = None  # made at the first judged window
        self.keys: set[str] = set()  # file keys seen for it (to tell files gone from files idle)
        self.inflight = 0  # batches submitted, not settled
        self.retired_at: float | None = None
        self.classes: set[str] = set()  # label values used, to remove the series later
        self.levels: set[str] = set()
        self.signals: set[str] = set()
        self.has_predictions = False
        self.children: dict[tuple[str, str], Any] = {}  # (series, label) -> prometheus child, once made
        self.sampled: dict[int, int] = {}  # window start -> error messages taken (at observe)
        # counts settled since the Prometheus counters were last told (Metrics.before_collect)
        self.pending_events = 0
        self.pending_bytes = 0
        self.pending_late = 0
        self.pending_levels = [0] * len(LEVEL_NAMES)
        self.pending_classes: dict[str, int] = {}
        self.pending = False
        self._detector_json: orjson.Fragment | None = None  # changes only when a window is judged

    @property
    def detector(self) -> Detector | CompiledDetector | ColdDetector:
        if self._detector is None:  # numpy only once a window can be judged
            self._detector = ColdDetector(self._detector_cfg)
        return self._detector

    @detector.setter
    def detector(self, detector: Detector | CompiledDetector | ColdDetector) -> None:
        self._detector = detector

    def detector_state(self) -> orjson.Fragment:
        """The detector's saved form, serialized once per judged window, not per checkpoint."""
        if self._detector_json is None:
            saved = self._detector.to_dict() if self._detector is not None else empty_state()
            self._detector_json = orjson.Fragment(orjson.dumps(saved))
        return self._detector_json

    def detector_changed(self) -> None:
        self._detector_json = None


def _owner_info(owner: Any, input_id: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(source, metric names, error classes) of a reader; the input id without one."""
    source = getattr(owner, "source", None) or input_id
    parser = getattr(owner, "parser", None)
    return (
        source,
        tuple(getattr(parser, "metric_names", ()) or ()),
        tuple(getattr(parser, "error_classes", ()) or ()),
    )


class AnomalyWatch:
    """Owns the per-source state; fed by the pipeline, ticked by the agent."""

    def __init__(
        self,
        cfg: WatchConfig,
        metrics: Metrics,
        *,
        host_id: str,
        host_name: str,
        writer: DocumentWriter | None = None,
        notifier: Notifier | None = None,
        readers: Callable[[], Iterable[Any]] = list,
        files: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.host_id = host_id
        self.host_name = host_name
        self.writer = writer
        self.notifier = notifier
        self.readers = readers
        self.files = files
        self.sources: dict[str, Source] = {}
        self._cache: bytes | None = None  # serialized state, valid until the next change
        self._drops = {"documents": 0, "webhooks": 0}
        self._ticks = 0
        self.failures = 0
        self._logged = [0, 0]  # starts (WARNING), clears (INFO) logged in this period: a budget each
        self._log_since = time.monotonic()
        self._unlogged = [0, 0]  # starts, clears left out of the log in this period
        before = getattr(metrics, "before_collect", None)
        if before is not None:
            before.callbacks.append(self._flush_metrics)

    @property
    def changed(self) -> bool:
        """Something changed since the state was last serialized (the registry should save)."""
        return self._cache is None

    def start(self) -> None:
        """Start the document writer and the webhooks (needs the running loop)."""
        if self.writer is not None:
            self.writer.start()
        if self.notifier is not None:
            self.notifier.start()

    async def close(self, timeout: float) -> None:
        """Give queued documents and notifications ``timeout`` seconds, then stop them."""
        if self.writer is not None:
            if not await self.writer.flush(timeout):
                log.warning("%d window/anomaly documents not written at shutdown", len(self.writer))
            await self.writer.stop()
        if self.notifier is not None:
            await self.notifier.close(timeout)
        self._sync_drops()
        self._log_summary(time.monotonic())

    def _sync_drops(self) -> None:
        now = {
            "documents": (self.writer.dropped + self.writer.failed_items) if self.writer else 0,
            "webhooks": (self.notifier.dropped + self.notifier.failed) if self.notifier else 0,
        }
        for output, n in now.items():
            if n > self._drops[output]:
                self.metrics.anomaly_dropped.labels(output).inc(n - self._drops[output])
                self._drops[output] = n

    # -- hot path: once per batch ------------------------------------------------------

    def observe(self, batch: Any, owner: Any, input_id: str) -> Token | None:
        """Count a batch when it is submitted; the counts apply when it settles.

        Runs inside the reader's submit: a failure here is logged and the batch is not
        counted, but shipping goes on (the counters must never stop the logs)."""
        try:
            return self._observe(batch, owner, input_id)
        except Exception:
            self._failed("counting a batch")
            return None

    def settle(self, token: Token) -> None:
        """The watermark moved over the batch: add its counters to windows and totals.

        Runs inside the acknowledgement path: a failure is logged, never raised."""
        try:
            self._settle(token)
        except Exception:
            self._failed("adding a batch's counts")

    def _failed(self, what: str) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 10000 == 0:
            log.exception("anomaly watch: %s failed (%d so far); log shipping goes on", what, self.failures)

    def _observe(self, batch: Any, owner: Any, input_id: str) -> Token | None:
        source, metric_names, error_classes = _owner_info(owner, input_id)
        counts = counters.count(batch, self.cfg.window_ms, metric_names, error_classes, error_samples=MAX_SAMPLES)
        if counts is None:
            return None
        src = self._source(source)
        samples = _error_messages(batch, counts, src.sampled) if len(counts.error_items) else {}
        src.inflight += 1
        key = getattr(getattr(owner, "state", None), "key", None)
        if key is not None and key not in src.keys:  # known before any tick (a reader may close first)
            src.keys.add(key)
        return Token(source, counts, samples)

    def _settle(self, token: Token) -> None:
        src = self._source(token.source)
        src.inflight -= 1
        c = token.counts
        # the Prometheus series are told when collected (_flush_metrics): plain ints here
        src.pending = True
        events = sum(c.events)
        src.pending_events += events
        src.pending_bytes += sum(c.bytes)
        one = len(c.starts) == 1  # the batch's totals: its one row, or column sums (in C)
        levels = c.levels[0] if one else list(map(sum, zip(*c.levels, strict=True)))
        src.pending_levels = list(map(operator.add, src.pending_levels, levels))
        classes = c.classes[0] if one else list(map(sum, zip(*c.classes, strict=True)))
        if len(classes) > 1 and classes[0] != events:  # error events in the batch
            add_classes(src.pending_classes, classes, c.class_names)
        late = src.windows.late_events
        samples = token.samples
        for w, r in src.windows.add(c, int(time.time() * 1000)):
            if samples and r in samples:
                w.add_samples(samples[r])
        if src.windows.late_events != late:
            src.pending_late += src.windows.late_events - late
        if (c.confusion is not None and any(map(any, c.confusion))) or c.pair_row is not None:
            src.has_predictions = True
        self._cache = None
        if len(src.windows.open) >= EARLY_CLOSE:
            # a backfill settles many windows between two ticks: close what is due now, a
            # group at a time (one detector pass each), so open windows stay few. Every
            # registry write carries the open ones, and each holds its arrays and samples.
            due = src.windows.due(int(time.time() * 1000))
            if due:
                self._judge(src, due)

    def _flush_metrics(self) -> None:
        """Hand the counts settled since the last call to the Prometheus counters (before
        every collection of the registry: a scrape sees every settled batch)."""
        try:
            self._flush_pending()
        except Exception:
            self._failed("updating the Prometheus counters")

    def _flush_pending(self) -> None:
        for src in self.sources.values():
            if not src.pending:
                continue
            src.pending = False
            self._child(src, "events", "").inc(src.pending_events)
            self._child(src, "bytes", "").inc(src.pending_bytes)
            if src.pending_late:
                self._child(src, "late", "").inc(src.pending_late)
            for j, n in enumerate(src.pending_levels):
                if n:
                    self._child(src, "level", LEVEL_NAMES[j]).inc(n)
            for name, n in src.pending_classes.items():
                self._child(src, "class", name).inc(n)
            src.pending_events = src.pending_bytes = src.pending_late = 0
            src.pending_levels = [0] * len(LEVEL_NAMES)
            src.pending_classes = {}

    def _child(self, src: Source, series: str, label: str) -> Any:
        """The Prometheus counter of a source (and level or class), looked up once."""
        child = src.children.get((series, label))
        if child is None:
            m = self.metrics
            if series == "level":
                src.levels.add(label)
                child = m.source_level_events.labels(src.name, label)
            elif series == "class":
                src.classes.add(label)
                child = m.source_error_events.labels(src.name, label)
            else:
                child = {"events": m.source_events, "bytes": m.source_bytes, "late": m.source_late_events}[
                    series
                ].labels(src.name)
            src.children[(series, label)] = child
        return child

    def _source(self, name: str) -> Source:
        src = self.sources.get(name)
        if src is None:
            src = self.sources[name] = Source(name, self.cfg)
        return src

    # -- the tick ----------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Caught-up and retirement states from the readers, then close what is due."""
        now = time.time() if now is None else now
        now_ms = int(now * 1000)
        self._ticks += 1
        if self._ticks % 240 == 0:
            self._prune_keys()
        at_end: dict[str, bool] = {}  # source -> every reader of it at the end of its file
        live: set[str] = set()  # sources with a reader whose file is still matched
        orphaned: set[str] = set()
        for r in self.readers():
            source = _owner_info(r, r.cfg.id)[0]
            src = self._source(source)
            if r.state.key not in src.keys:
                src.keys.add(r.state.key)
                self._cache = None
            (orphaned if getattr(r, "orphaned", False) else live).add(source)
            at_end[source] = at_end.get(source, True) and _at_end(r)
        for src in list(self.sources.values()):
            if src.name in live:
                if src.retired_at is not None:
                    log.info("source %s has files again", src.name)
                    src.retired_at = None
                src.windows.caught_up(now_ms, at_end[src.name] and src.inflight == 0)
            elif src.name in orphaned or not self._has_files(src):
                src.windows.caught_up(now_ms, False)
                if src.retired_at is None:
                    self._retire(src, now)
                elif now - src.retired_at > self.cfg.forget_after_ms / 1000 and src.inflight == 0:
                    self._forget(src)
                    continue
            else:  # files idle and closed: nothing unread that the agent knows of
                src.windows.caught_up(now_ms, src.inflight == 0)
            due = src.windows.due(now_ms)
            if due:
                self._judge(src, due)
        self._sync_drops()
        mono = time.monotonic()
        if mono - self._log_since >= LOG_PERIOD:
            self._log_summary(mono)

    def _prune_keys(self) -> None:
        """Forget file keys the registry forgot (rotated files cleaned): bounded state."""
        files = self.files()
        open_keys = {r.state.key for r in self.readers()}
        for src in self.sources.values():
            gone = {k for k in src.keys if k not in files and k not in open_keys}
            if gone:
                src.keys -= gone
                self._cache = None

    def _has_files(self, src: Source) -> bool:
        files = self.files()
        for key in src.keys:
            st = files.get(key)
            if st is not None and os.path.exists(st.path):
                return True
        return False

    def _retire(self, src: Source, now: float) -> None:
        """Files all gone: no silence alert, alerts dropped without a clear, series kept a while."""
        src.retired_at = now
        src.detector_changed()
        for signal in src.detector.forget_alerts() if src._detector is not None else []:
            self.metrics.anomaly_active.labels(src.name, signal).set(0)
        log.info(
            "source %s: all its files are gone; retired (series removed after %ds)",
            src.name,
            self.cfg.forget_after_ms // 1000,
        )
        self._cache = None

    def _forget(self, src: Source) -> None:
        self._flush_metrics()  # not after the series are removed: that would make them again
        self._close(src, src.windows.close_all())
        m = self.metrics
        for metric, labelsets in (
            (m.source_events, [(src.name,)]),
            (m.source_bytes, [(src.name,)]),
            (m.source_late_events, [(src.name,)]),
            (m.source_level_events, [(src.name, v) for v in src.levels]),
            (m.source_error_events, [(src.name, v) for v in src.classes]),
            (m.anomaly_active, [(src.name, v) for v in src.signals]),
            (m.anomalies, [(src.name, v) for v in src.signals]),
        ):
            for labels in labelsets:
                try:
                    metric.remove(*labels)
                except KeyError:
                    pass
        del self.sources[src.name]
        self._cache = None
        log.info("source %s forgotten", src.name)

    def _close(self, src: Source, ws: list[Window]) -> None:
        """Summarize windows (their documents), in order: complete ones, which `_judge`
        then runs the detector on, or, at retirement, partial ones (no evidence)."""
        self._cache = None
        self._documents(src, ws)

    def _documents(self, src: Source, ws: list[Window]) -> None:
        """Queue the window documents of ``ws`` (as bulk lines in one go for the agent's
        writer; as dicts, one by one, for any other)."""
        writer = self.writer
        if writer is None or not self.cfg.documents or not ws:
            return
        cfg = self.cfg
        if isinstance(writer, DocumentWriter):
            writer.add_lines(
                window_lines(
                    ws, src.name, self.host_name, self.host_id, cfg.window_ms, cfg.metrics_index, src.has_predictions
                )
            )
            return
        for w in ws:
            writer.add(
                index_name(cfg.metrics_index, w.start),
                doc_id(self.host_id, src.name, w.start),
                window_document(w, src.name, self.host_name, cfg.window_ms, src.has_predictions),
            )

    def _judge(self, src: Source, due: list[Window]) -> None:
        """Close windows in order and run the detector over all of them in one pass."""
        self._close(src, due)
        if src.sampled:  # sampling bookkeeping of closed (and late) windows, once per tick
            last = due[-1].start
            src.sampled = {start: n for start, n in src.sampled.items() if start > last}
        src.detector_changed()
        results = src.detector.observe_many([(w.signals(), w.start) for w in due])
        for w, changes in zip(due, results, strict=True):
            for change in changes:
                self._report(src, w, change)

    def _report(self, src: Source, w: Window, change: Change) -> None:
        m = self.metrics
        src.signals.add(change.signal)
        starting = change.state == "start"
        m.anomaly_active.labels(src.name, change.signal).set(1 if starting else 0)
        if starting:
            m.anomalies.labels(src.name, change.signal).inc()
        doc = anomaly_document(change, src.name, self.host_name, w.start, w.samples if starting else [])
        self._log_change(starting, doc["message"])
        if self.writer is not None and self.cfg.documents:
            self.writer.add(
                index_name(self.cfg.anomalies_index, w.start),
                doc_id(self.host_id, src.name, w.start, change.signal, change.state),
                doc,
            )
        if self.notifier is not None:
            self.notifier.notify(doc)

    def _log_change(self, starting: bool, message: str) -> None:
        now = time.monotonic()
        if now - self._log_since >= LOG_PERIOD:
            self._log_summary(now)
        kind = 0 if starting else 1
        if self._logged[kind] < LOG_BURST:
            self._logged[kind] += 1
            (log.warning if starting else log.info)("%s", message)
        else:
            self._unlogged[kind] += 1

    def _log_summary(self, now: float) -> None:
        """One line for the anomalies of the period not logged one by one; a new period."""
        started, cleared = self._unlogged
        if started or cleared:
            log.warning(
                "%d more anomalies started and %d cleared in the last %.0f s, not logged one by one "
                "(%d of each a period at most; every one is in the anomalies index and shipper_anomalies_total)",
                started,
                cleared,
                now - self._log_since,
                LOG_BURST,
            )
        self._unlogged = [0, 0]
        self._logged = [0, 0]
        self._log_since = now

    def shutdown(self, now: float | None = None) -> None:
        """Close what is due (judged), then document the open windows as they are (not
        judged: a partial window is no evidence). They stay open in the saved state, so
        the next run completes them and replaces their documents."""
        self.tick(now)
        for src in self.sources.values():
            self._documents(src, src.windows.close_all())

    # -- persistence -----------------------------------------------------------------

    def state(self) -> Any:
        """The state for the registry snapshot (serialized once per change)."""
        if self._cache is None:
            self._cache = orjson.dumps(
                {
                    "version": STATE_VERSION,
                    "window_ms": self.cfg.window_ms,
                    "sources": {
                        s.name: {
                            "windows": s.windows.to_dict(),
                            "detector": s.detector_state(),
                            "keys": sorted(s.keys),
                            "retired_at": s.retired_at,
                            "has_predictions": s.has_predictions,
                            "signals": sorted(s.signals),
                        }
                        for s in self.sources.values()
                    },
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        return orjson.Fragment(self._cache)

    def restore(self, data: Any) -> None:
        """Take back a saved state (from the registry). A different window length makes
        history and open windows meaningless: they are dropped, with a log line."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return
        if data.get("window_ms") != self.cfg.window_ms:
            log.info(
                "anomaly window changed (%s ms -> %d ms): history starts over",
                data.get("window_ms"),
                self.cfg.window_ms,
            )
            return
        for name, d in data.get("sources", {}).items():
            src = self._source(name)
            src.windows = SourceWindows.from_dict(d["windows"], self.cfg.window_ms, self.cfg.grace_ms, self.cfg.max_gap)
            src.detector = ColdDetector.from_dict(self.cfg.detector, d["detector"])  # numpy when needed
            src.keys = set(d.get("keys", []))
            src.retired_at = d.get("retired_at")
            src.has_predictions = bool(d.get("has_predictions"))
            src.signals = set(d.get("signals", []))
            for signal in src.detector.active:  # an alert raised before the restart is still on
                src.signals.add(signal)
                self.metrics.anomaly_active.labels(name, signal).set(1)
        self._cache = None


def _at_end(reader: Any) -> bool:
    """Read to the end of its file (asks the file, since the reader's size may be stale)."""
    if getattr(reader, "behind", 0) > 0:
        return False
    try:
        size = os.fstat(reader.fd).st_size
    except (OSError, AttributeError, TypeError):
        return True
    return size <= reader.position


def _error_messages(batch: Any, counts: WindowCounts, sampled: dict[int, int]) -> dict[int, list[str]]:
    """First lines of the sampled error events' messages, per window row: only until a
    window has MAX_SAMPLES of them, counting batches still in flight (``sampled``: window
    start -> messages taken), so a burst of errors costs a few JSON decodes, not one per batch.
    Compiled (``_counting.error_samples``: the quoted fields found by a scan, only they
    decoded; a document it does not take decoded whole, here) or this loop, its twin."""
    ends = memoryview(batch.item_ends).cast("B").cast("q")
    body = batch.body
    if _error_samples is not None:
        out: dict[int, list[str]] = _error_samples(
            body,
            ends,
            counts.error_rows,
            counts.error_items,
            counts.starts,
            sampled,
            MAX_SAMPLES,
            _message,
            orjson.loads,
        )
        return out
    out = {}
    starts = counts.starts
    for row, item in zip(counts.error_rows, counts.error_items, strict=True):
        start_ms = starts[row]
        taken = sampled.get(start_ms, 0)
        if taken >= MAX_SAMPLES:
            continue
        sampled[start_ms] = taken + 1
        msg = _message(body, ends[item - 1] if item else 0, ends[item])
        if msg is None:
            continue
        cut = msg.find("\n")
        out.setdefault(row, []).append((msg if cut < 0 else msg[:cut])[:500])
    return out


def _message(body: Any, start: int, end: int) -> str | None:
    """What a sample quotes of the document in ``body[start:end]`` (the bulk action line,
    then the document), decoded whole: ``error.type: error.message`` or the message;
    None when it is not JSON (skipped)."""
    nl = body.find(b"\n", start, end)
    try:
        d = orjson.loads(memoryview(body)[nl + 1 : end] if nl >= 0 else b"")
    except orjson.JSONDecodeError:
        return None
    msg: Any = ""
    if type(d) is dict:  # what orjson makes (no subclass can come out)
        msg = d.get("message", "")
        err = d.get("error")
        if type(err) is dict and err.get("type"):
            msg = f"{err.get('type')}: {err.get('message', '')}" if err.get("message") else str(err["type"])
    return msg if type(msg) is str else str(msg)
