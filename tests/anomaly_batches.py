"""Batch-like objects with the parser's per-event arrays, for the anomaly tests."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Event:
    time: int
    level: int = 3
    cls: int = 0
    nbytes: int = 100
    message: str = "m"
    metrics: dict[int, float] = field(default_factory=dict)  # metric id -> value
    label: int | None = None
    pred: int = -1
    score: float = float("nan")


class FakeBatch:
    """What a parser batch carries, made from a list of events."""

    def __init__(self, events: list[Event], start_offset: int = 0) -> None:
        self.count = len(events)
        self.ev_time = array("q", [e.time for e in events])
        self.ev_level = array("B", [e.level for e in events])
        self.ev_class = array("B", [e.cls for e in events])
        self.ev_bytes = array("I", [e.nbytes for e in events])
        self.m_item, self.m_id, self.m_value = array("I"), array("H"), array("d")
        self.p_item, self.p_label, self.p_pred, self.p_score = array("I"), array("b"), array("b"), array("d")
        body = bytearray()
        ends = array("q")
        for i, e in enumerate(events):
            for mid, v in e.metrics.items():
                self.m_item.append(i)
                self.m_id.append(mid)
                self.m_value.append(v)
            if e.label is not None:
                self.p_item.append(i)
                self.p_label.append(e.label)
                self.p_pred.append(e.pred)
                self.p_score.append(e.score)
            body += b'{"create":{"_index":"x","_id":"%d"}}\n' % i
            body += orjson.dumps({"message": e.message}) + b"\n"
            ends.append(len(body))
        self.body = bytes(body)
        self.item_ends = ends.tobytes()
        self.start_offset = start_offset
        self.bytes = sum(e.nbytes for e in events)
        self.end_offset = start_offset + self.bytes
        self.lines = len(events)


class FakeParser:
    def __init__(self, metric_names: tuple[str, ...] = (), error_classes: tuple[str, ...] = ()) -> None:
        self.metric_names = list(metric_names)
        self.error_classes = error_classes


class FakeOwner:
    """A reader as the watch sees it."""

    def __init__(
        self, source: str, parser: FakeParser | None = None, key: str = "k1", path: str = "/nonexistent"
    ) -> None:
        self.source = source
        self.parser = parser or FakeParser()
        self.orphaned = False
        self.behind = 0
        self.position = 0
        self.fd = -1
        self.cfg: Any = type("Cfg", (), {"id": source})()
        self.state: Any = type("State", (), {"key": key, "path": path})()
