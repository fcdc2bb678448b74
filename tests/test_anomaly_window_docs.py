"""Window documents made as bytes in one go (``_counting.window_docs`` through
``documents.window_lines``) against ``DocumentWriter.add`` of ``window_document``'s dict
(the twin): the same bulk lines, byte for byte, for windows of every shape."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from _fastparse.counters import N_LEVELS
from shipper.anomaly import documents
from shipper.anomaly.documents import DocumentWriter, doc_id, index_name, window_document, window_lines
from shipper.anomaly.windows import Window

if documents._window_docs is None:
    pytest.skip("the compiled window documents are not in use (SHIPPER_NO_EXTENSIONS)", allow_module_level=True)

PATTERN = "shipper-metrics-%Y.%m.%d"
T0 = 1_763_540_000_000
FLOATS = [0.0, -0.0, 1.0, 0.1, 1e-7, 123456789.125, 1e300, -2.5e-300, 5e-324, math.nan, math.inf, -math.inf, 3]


def _dicts(ws: list[Window], source: str, host: str, quality: bool) -> list[bytes]:
    w = DocumentWriter(None, max_queue=1 << 20)
    for x in ws:
        w.add(
            index_name(PATTERN, x.start),
            doc_id("h" * 32, source, x.start),
            window_document(x, source, host, 10_000, quality),
        )
    return list(w._queue)


def _random_window(rng: random.Random, start: int) -> Window:
    def num() -> Any:
        return rng.choice(FLOATS) if rng.random() < 0.3 else rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-12, 12)

    names = ["loss", "step", 'é"q\\', "a\nb", "\u2028", "x" * 40, ""]
    w = Window(
        start,
        events=rng.randint(0, 10**6),
        bytes=rng.randint(0, 2**40),
        levels=[rng.choice([0, 0, 1, 7, 10**9]) for _ in range(rng.randint(0, N_LEVELS))],
        classes={rng.choice([*names, "other", "timeout"]): rng.randint(1, 10**5) for _ in range(rng.randint(0, 4))},
        metrics={
            rng.choice(names): [rng.choice([0, 1, 2, 10**7]), num(), num(), num()] for _ in range(rng.randint(0, 6))
        },
        samples=["s"] if rng.random() < 0.2 else None,
    )
    if rng.random() < 0.05:
        w.confusion = [1, 0, 2, 0]
    if rng.random() < 0.05:
        w.scores, w.labels = [np.array([0.5, 0.25])], [np.array([1, 0], np.int8)]
    return w


@pytest.mark.parametrize("seed", range(6))
def test_same_lines_as_the_dicts(seed: int) -> None:
    rng = random.Random(seed)
    ws = [_random_window(rng, T0 + 10_000 * i) for i in range(300)]
    for source, host in (("trainer", "gpu1"), ('src"é', "h\n")):
        assert window_lines(ws, source, host, "h" * 32, 10_000, PATTERN, False) == _dicts(ws, source, host, False)
        assert window_lines(ws[:7], source, host, "h" * 32, 10_000, PATTERN, True) == _dicts(ws[:7], source, host, True)


def test_plain_and_odd_windows() -> None:
    ws = [
        Window(T0),
        Window(T0 + 10_000, events=5, bytes=100, levels=[0, 5] + [0] * (N_LEVELS - 2)),
        Window(T0 + 20_000, events=3, classes={"timeout": 3}, metrics={"loss": [0, 0.0, math.inf, -math.inf]}),
        Window(T0 + 30_000, events=1, metrics={"m": [2, 3, 1, 2]}),  # ints where floats are usual
        Window(T0 + 40_000, events=1, levels=[1] * (N_LEVELS + 1)),  # more levels than names: the dict's error
    ]
    with pytest.raises(IndexError):
        _dicts(ws, "s", "h", False)
    with pytest.raises(IndexError):
        window_lines(ws, "s", "h", "h" * 32, 10_000, PATTERN, False)
    ws.pop()
    ws.append(Window(T0 + 40_000, classes={1: 2}))  # type: ignore[dict-item]  # not a str: the dict's own error
    with pytest.raises(TypeError):
        _dicts(ws, "s", "h", False)
    with pytest.raises(TypeError):
        window_lines(ws, "s", "h", "h" * 32, 10_000, PATTERN, False)
    ws.pop()
    assert window_lines(ws, "s", "h", "h" * 32, 10_000, PATTERN, False) == _dicts(ws, "s", "h", False)
    assert window_lines([], "s", "h", "h" * 32, 10_000, PATTERN, False) == []
