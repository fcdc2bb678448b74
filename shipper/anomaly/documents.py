"""Window summaries and anomaly events as Elasticsearch documents, and their writer.

Documents go to ``shipper-metrics*`` / ``shipper-anomalies*`` indices (the templates
installed by the Elasticsearch output map them) with ``op_type: index`` and an ``_id``
that is a hash of the host id, the source and the window start (and, for anomalies, the
signal and state): a window closed again after a restart (its state is restored with
the checkpoint) replaces its document instead of doubling it.

The writer has its own bounded queue and task and shares only the client with log
shipping: it never waits in the caller, never holds in-flight budget, and when
Elasticsearch is away for long it drops its oldest documents (counted) rather than grow
without bound or slow the readers down.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import random
import time
from typing import Any

import orjson

from _fastparse.counters import LEVEL_NAMES, NO_EXTENSIONS

from .detector import Change
from .outqueue import OutQueue
from .windows import Window

try:  # window documents as bytes in one go (the same bytes as orjson of window_document's dict)
    if NO_EXTENSIONS:
        raise ImportError("SHIPPER_NO_EXTENSIONS")
    from _fastparse._counting import window_docs as _window_docs
except ImportError:  # not built (no compiler, SHIPPER_NO_EXTENSIONS)
    _window_docs = None

log = logging.getLogger(__name__)

ID_SCHEME = b"shipper-window/1"


# the hash of "scheme \0 host \0 source \0" per (host, source), copied per document
_ID_PREFIX: dict[tuple[str, str], Any] = {}
# day (days since the epoch) -> "YYYY-MM-DDT"; (index pattern, day) -> index name
_DAYS: dict[int, str] = {}
_INDICES: dict[tuple[str, int], str] = {}
_ISO: dict[int, str] = {}  # ms -> iso(ms), for the last few thousand window bounds
# strftime directives that change at most once a day: an index pattern made of them only
# is named once per day, not per window
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_DAILY = frozenset("YmdyjCDFGgVuwUWaAbBeh%")


def doc_id(host_id: str, source: str, start_ms: int, *extra: str) -> str:
    """BLAKE2b-128 (base64url) of host id, source, window start (and signal, state),
    joined by NUL bytes."""
    return _doc_id(host_id, source, start_ms, *extra).decode()


def _doc_id(host_id: str, source: str, start_ms: int, *extra: str) -> bytes:
    """``doc_id`` as ASCII bytes."""
    base = _ID_PREFIX.get((host_id, source))
    if base is None:
        if len(_ID_PREFIX) >= 1024:
            _ID_PREFIX.clear()
        base = _ID_PREFIX[(host_id, source)] = hashlib.blake2b(
            b"\0".join((ID_SCHEME, host_id.encode(), source.encode(), b"")), digest_size=16
        )
    h = base.copy()
    h.update(
        str(start_ms).encode() if not extra else b"\0".join([str(start_ms).encode(), *(e.encode() for e in extra)])
    )
    # base64url of the 16 bytes without its "==" padding: 22 characters
    return binascii.b2a_base64(h.digest(), newline=False)[:22].translate(_URLSAFE)


def _day(day: int) -> str:
    s = _DAYS.get(day)
    if s is None:
        if len(_DAYS) >= 1024:
            _DAYS.clear()
        s = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    return s


def iso(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC); the date part is made once per day, and a
    window's end (the next one's start) once."""
    s = _ISO.get(ms)
    if s is None:
        sec, milli = divmod(int(ms), 1000)
        day, s_ = divmod(sec, 86400)
        h, s_ = divmod(s_, 3600)
        m, s_ = divmod(s_, 60)
        s = f"{_day(day)}{h:02d}:{m:02d}:{s_:02d}.{milli:03d}Z"
        if len(_ISO) >= 4096:
            _ISO.clear()
        _ISO[ms] = s
    return s


def index_name(pattern: str, ms: int) -> str:
    """``time.strftime(pattern)`` at ``ms`` (UTC); once per day for a daily pattern."""
    day = int(ms) // 86_400_000
    key = (pattern, day)
    name = _INDICES.get(key)
    if name is None:
        name = time.strftime(pattern, time.gmtime(int(ms) / 1000))
        parts = pattern.split("%")
        daily = all(p[:1] in _DAILY for p in parts[1:] if p) and "%%" not in pattern
        if daily:
            if len(_INDICES) >= 1024:
                _INDICES.clear()
            _INDICES[key] = name
    return name


def window_document(w: Window, source: str, host_name: str, window_ms: int, quality: bool) -> dict[str, Any]:
    """The summary of one closed window (the fields a dashboard charts). Window's helpers
    (errors, level_counts, has_predictions) inline: this runs for every window."""
    start = iso(w.start)
    doc: dict[str, Any] = {
        "@timestamp": start,
        "event": {"dataset": source, "kind": "metric"},
        "host": {"name": host_name},
        "window": {
            "start": start,
            "end": iso(w.start + window_ms),
            "events": w.events,
            "bytes": w.bytes,
            "errors": sum(w.classes.values()),
            "level": {LEVEL_NAMES[i]: n for i, n in enumerate(w.levels) if n},
            "error_class": dict(w.classes),
        },
    }
    if w.metrics:
        doc["metrics"] = {
            name: {"count": c, "sum": s, "min": lo, "max": hi, "mean": s / c if c else None}
            for name, (c, s, lo, hi) in w.metrics.items()
        }
    if quality or w.scores or any(w.confusion):
        doc["quality"] = w.quality()
    return doc


# (source, host name) -> the window document's constant part; str -> its JSON text
_DOC_HEADS: dict[tuple[str, str], bytes] = {}
_NAMES: dict[str, bytes] = {}
_LEVEL_KEYS = tuple(orjson.dumps(name) + b":" for name in LEVEL_NAMES)
_ACTIONS: dict[str, bytes] = {}  # index name -> the bulk action's start


def _action(index: str) -> bytes:
    """``{"index":{"_index":INDEX,"_id":``, once per index name."""
    head = _ACTIONS.get(index)
    if head is None:
        if len(_ACTIONS) >= 64:
            _ACTIONS.clear()
        head = _ACTIONS[index] = b'{"index":{"_index":' + orjson.dumps(index) + b',"_id":'
    return head


def window_lines(
    ws: list[Window], source: str, host_name: str, host_id: str, window_ms: int, pattern: str, quality: bool
) -> list[bytes]:
    """The bulk lines (action, then document) of closed windows of one source: what
    ``DocumentWriter.add`` of ``window_document`` makes, byte for byte, the documents
    made as bytes in one go (``_counting.window_docs``) when built; a window with
    prediction quality goes through the dict."""
    docs: list[bytes | None] | None = None
    if _window_docs is not None and not quality:
        head = _DOC_HEADS.get((source, host_name))
        if head is None:
            if len(_DOC_HEADS) >= 1024:
                _DOC_HEADS.clear()
            head = _DOC_HEADS[(source, host_name)] = (
                b'","event":{"dataset":'
                + orjson.dumps(source)
                + b',"kind":"metric"},"host":{"name":'
                + orjson.dumps(host_name)
                + b'},"window":{"start":"'
            )
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        docs = _window_docs(ws, head, window_ms, iso, _LEVEL_KEYS, _NAMES, orjson.dumps)
    out = []
    for i, w in enumerate(ws):
        doc = docs[i] if docs is not None else None
        if doc is None:
            doc = orjson.dumps(window_document(w, source, host_name, window_ms, quality)) + b"\n"
        start = w.start
        out.append(
            b"".join((_action(index_name(pattern, start)), b'"', _doc_id(host_id, source, start), b'"}}\n', doc))
        )
    return out


def anomaly_document(
    change: Change, source: str, host_name: str, window_start: int, samples: list[str]
) -> dict[str, Any]:
    """One anomaly start or clear, with a few error messages of its window."""
    verb = "started" if change.state == "start" else "cleared"
    doc: dict[str, Any] = {
        "@timestamp": iso(window_start),
        "event": {"dataset": source, "kind": "alert"},
        "host": {"name": host_name},
        "message": (
            f"anomaly {verb}: {source} {change.signal} = {change.value:.6g} "
            f"({change.direction}; mean {change.mean:.6g}, stddev {change.stddev:.6g})"
        ),
        "anomaly": {
            "signal": change.signal,
            "value": change.value,
            "mean": change.mean,
            "stddev": change.stddev,
            "direction": change.direction,
            "state": change.state,
        },
    }
    if samples:
        doc["anomaly"]["samples"] = samples
    return doc


# One queued document: its bulk action and source lines, serialized when queued (a
# window summary as nested dicts is ~2.5 KB of objects, as bytes ~0.9 KB: a backfill closes
# windows faster than one request a second drains them)
Doc = bytes


class DocumentWriter(OutQueue[Doc]):
    """Indexes documents in the background through the agent's client; never blocks a caller."""

    def __init__(self, client: Any, *, max_queue: int = 10000, batch: int = 500, backoff_max: float = 30.0) -> None:
        super().__init__(max_queue, "anomaly-documents")
        self.client = client
        self.batch = batch
        self.backoff_max = backoff_max
        self.written = 0
        self.failed_items = 0
        self._attempt = 0
        self._warned = -1e9

    def add(self, index: str, doc_id_: str, doc: dict[str, Any]) -> None:
        """Queue one document for ``index`` (op_type index, so a later one with the same
        ``_id`` replaces it)."""
        self.put(b"".join((_action(index), orjson.dumps(doc_id_), b"}}\n", orjson.dumps(doc), b"\n")))

    def add_lines(self, lines: list[bytes]) -> None:
        """Queue documents made as bulk lines already (``window_lines``)."""
        for line in lines:
            self.put(line)

    async def _drain(self) -> None:
        take = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
        body = b"".join(take)
        try:
            resp = await self.client.bulk(operations=body, filter_path="errors,items.*.status,items.*.error")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # Elasticsearch away: wait, keep the documents (bounded)
            self._attempt += 1
            delay = min(self.backoff_max, 0.5 * 2 ** min(self._attempt, 10)) * (0.5 + random.random() / 2)
            log.debug("anomaly documents not written (%s); retry in %.1fs", e, delay)
            await asyncio.sleep(delay)
            return
        self._attempt = 0
        for _ in take:
            self._queue.popleft()
        result = resp.body if hasattr(resp, "body") else resp
        if not result.get("errors"):
            self.written += len(take)
            return
        retry: list[Doc] = []
        refused: list[Any] = []
        for item, sent in zip(result.get("items", []), take, strict=False):
            status = next(iter(item.values())).get("status", 200)
            if status == 429 or status >= 500:
                retry.append(sent)
            elif status >= 300:
                refused.append(item)
        self.written += len(take) - len(retry) - len(refused)
        self.failed_items += len(refused)
        if refused and time.monotonic() - self._warned > 60:  # a user without rights to the index: once a minute
            self._warned = time.monotonic()
            log.warning(
                "%d window/anomaly documents refused by Elasticsearch (first: %s); %d refused so far",
                len(refused),
                refused[0],
                self.failed_items,
            )
        if retry:
            self._queue.extendleft(reversed(retry))
            await asyncio.sleep(min(self.backoff_max, 1.0))
