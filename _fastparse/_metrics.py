"""Model metrics in log lines, as data: which names are metrics and how names fold.

A metric is ``key=value``, ``key: value`` or ``key = value`` in the first line of an
event's message (the key may be quoted, as in a printed dict: ``{'loss': 0.31}``), or a
numeric top-level value of a JSON line. Names are normalised (lower case; ``/``, ``.`` and
``-`` become ``_``), then an alias folds (``ALIASES``: a whole name, or a suffix after an
``_``, so ``val_acc`` becomes ``val_accuracy``), and the name is kept when it is one of
``KNOWN`` or ends with ``_`` + one of them (``train_loss``, ``eval_samples_per_sec``), or
the user listed it. Both twins use these tables (the compiled parser copies them into C
arrays once per parser): adding a metric is a change here, not an ``if`` anywhere.

Values: an integer, decimal or exponent number, with trailing unit letters or ``%``
ignored (``35ms``, ``97.5%``), written in the document as JSON (``+`` dropped, leading
zeros removed, ``.5`` -> ``0.5``, ``5.`` -> ``5``, otherwise as logged). ``nan`` and
``inf`` are not written (JSON has neither); for a loss or gradient norm they make the
event a ``nan_loss`` error event. The first value of a name in an event is the one kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Names (after normalising and aliasing) that are model metrics, also as the last ``_`` part.
KNOWN: tuple[str, ...] = (
    "loss", "accuracy", "precision", "recall", "f1", "auc", "rmse", "mae", "mse", "mape",
    "perplexity", "bleu", "rouge1", "rouge2", "rougel", "wer", "cer", "top1", "top5",
    "learning_rate", "latency", "throughput", "gpu_util", "gpu_mem",
    "epoch", "step", "grad_norm", "tokens_per_sec", "samples_per_sec", "steps_per_sec",
    "tp", "fp", "fn", "tn",
)

#: Spelling -> canonical name (applied to the whole name, or to a suffix after an ``_``).
ALIASES: dict[str, str] = {
    "acc": "accuracy",
    "ppl": "perplexity",
    "f1_score": "f1",
    "lr": "learning_rate",
    "roc_auc": "auc",
    "auroc": "auc",
    "gpu_utilization": "gpu_util",
    "gpu_memory": "gpu_mem",
    "gradient_norm": "grad_norm",
    "tokens_per_second": "tokens_per_sec",
    "samples_per_second": "samples_per_sec",
    "steps_per_second": "steps_per_sec",
}

#: Metrics whose NaN or infinite value makes the event a ``nan_loss`` error event.
NAN_LOSS: tuple[str, ...] = ("loss", "grad_norm")

#: At most this many distinct names per parser get an id (and are written).
MAX_NAMES = 1024
#: Longest key and number text looked at.
MAX_KEY = 64
MAX_NUMBER = 40

#: key (group 1), number (group 2) or nan/inf (group 3). Mirrored by ``metric_scan`` in C.
METRIC_RE = re.compile(
    rb"(?<![A-Za-z0-9_./\-])([A-Za-z][A-Za-z0-9_./\-]*)['\"]?[ \t]*[=:][ \t]*"
    rb"(?:([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    rb"|([-+]?(?:nan|inf(?:inity)?))(?![A-Za-z0-9]))",
    re.IGNORECASE,
)

_NORM = bytes.maketrans(b"/.-ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"___abcdefghijklmnopqrstuvwxyz")


def normalise(name: str | bytes) -> bytes:
    """Lower case, ``/``, ``.`` and ``-`` as ``_`` (ASCII only, as the C side does)."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    return raw.translate(_NORM)


class MetricSpec:
    """The ``metrics=`` argument checked: off, or the known names and aliases to use.

    ``known`` and ``aliases`` are normalised bytes; ``aliases`` is sorted longest first,
    so ``f1_score`` folds before a shorter alias could."""

    __slots__ = ("aliases", "known", "on")

    def __init__(self, on: bool, known: tuple[bytes, ...], aliases: tuple[tuple[bytes, bytes], ...]) -> None:
        self.on = on
        self.known = known
        self.aliases = aliases

    def name(self, key: bytes) -> bytes | None:
        """The metric name of a logged key, or None when it is not a metric."""
        if len(key) > MAX_KEY:
            return None
        n = key.translate(_NORM)
        for a, b in self.aliases:
            if n == a:
                n = b
                break
            if n.endswith(a) and n[-len(a) - 1] == 95:
                n = n[:-len(a)] + b
                break
        for k in self.known:
            if n == k or (n.endswith(k) and n[-len(k) - 1] == 95):
                return n
        return None


def parse_spec(value: Any) -> MetricSpec:
    """``"auto"`` (the default), ``"none"``, or ``{"names": [...], "aliases": {a: b}}``
    (the built-in tables plus these). ValueError/TypeError name the bad key."""
    if value is None or value == "auto":
        names: Sequence[str] = ()
        extra: Mapping[str, str] = {}
    elif value == "none":
        return MetricSpec(False, (), ())
    elif isinstance(value, Mapping):
        unknown = set(value) - {"names", "aliases"}
        if unknown:
            raise ValueError(f"metrics: unknown key {sorted(unknown)[0]!r}")
        names = value.get("names") or ()
        extra = value.get("aliases") or {}
        if isinstance(names, str) or not isinstance(names, Sequence) \
                or not all(isinstance(n, str) and n for n in names):
            raise TypeError("metrics.names must be a list of names")
        if not isinstance(extra, Mapping) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in extra.items()):
            raise TypeError("metrics.aliases must be a mapping of name -> name")
        for n in (*names, *extra, *extra.values()):
            if len(n.encode("utf-8")) > MAX_KEY:  # the compiled parser's name buffers
                raise ValueError(f"metrics: the name {n!r} is longer than {MAX_KEY} bytes")
    else:
        raise ValueError(f'metrics must be "auto", "none" or a mapping, not {value!r}')
    known = list(dict.fromkeys(normalise(k) for k in (*KNOWN, *names)))
    aliases = {normalise(k): normalise(v) for k, v in ALIASES.items()}
    aliases.update((normalise(k), normalise(v)) for k, v in extra.items())
    for b in aliases.values():
        if b not in known and not any(b.endswith(b"_" + k) for k in known):
            known.append(b)  # a user alias names a metric of its own
    order = sorted(aliases.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    return MetricSpec(True, tuple(known), tuple(order))


_NONZERO = (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9")


def number_text(raw: bytes) -> bytes:
    """A logged number as JSON: no ``+``, no leading zeros, ``.5`` -> ``0.5``, ``5.`` -> ``5``."""
    if b"e" not in raw and b"E" not in raw and not raw.endswith(b"."):
        head = raw[:1]
        if head in _NONZERO or (head == b"0" and raw[1:2] == b"." and len(raw) > 2):
            return raw  # already JSON: the common 12, 3.5, 0.87
    sign = b""
    if raw[:1] in (b"+", b"-"):
        sign = b"-" if raw[:1] == b"-" else b""
        raw = raw[1:]
    e = len(raw)
    for i, c in enumerate(raw):
        if c in (69, 101):  # e E
            e = i
            break
    mant, exp = raw[:e], raw[e:]
    dot = mant.find(b".")
    ip, fp = (mant, b"") if dot < 0 else (mant[:dot], mant[dot + 1:])
    ip = ip.lstrip(b"0") or b"0"
    return sign + ip + (b"." + fp if fp else b"") + exp


def is_nan_loss(name: bytes) -> bool:
    """A loss or gradient norm: its NaN makes the event a ``nan_loss`` error event."""
    return any(name == k or name.endswith(b"_" + k) for k in _NAN_LOSS)


_NAN_LOSS = tuple(k.encode() for k in NAN_LOSS)


class PredictionSpec:
    """``predictions=`` checked: dotted paths of the label, prediction and score fields in
    a JSON line, and the value that means positive (None: ``true`` or ``1``)."""

    __slots__ = ("label", "positive", "prediction", "score")

    def __init__(self, label: str, prediction: str | None, score: str | None, positive: Any) -> None:
        self.label = label
        self.prediction = prediction
        self.score = score
        self.positive = positive

    def is_positive(self, v: Any) -> bool:
        """``v`` (a JSON scalar) equals ``positive``: booleans only to booleans, numbers by
        value, strings as strings; by default ``true`` or ``1`` is positive."""
        if self.positive is None:
            return v is True or (type(v) in (int, float) and v == 1)
        return _scalar_eq(v, self.positive)


def _scalar_eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def field_at(obj: dict[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted path in a JSON object: the key as written first,
    else the path walked through nested objects."""
    if path in obj:
        return True, obj[path]
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def parse_predictions(value: Any) -> PredictionSpec | None:
    """``{"label": FIELD, "prediction": FIELD, "score": FIELD, "positive": VALUE}`` (label
    required) or None. ValueError/TypeError name the bad key."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError("predictions must be a mapping with label, prediction, score, positive")
    unknown = set(value) - {"label", "prediction", "score", "positive"}
    if unknown:
        raise ValueError(f"predictions: unknown key {sorted(unknown)[0]!r}")
    paths: list[str | None] = []
    for key in ("label", "prediction", "score"):
        v = value.get(key)
        if v is None and key != "label":
            paths.append(None)
            continue
        if not isinstance(v, str) or not v:
            raise TypeError(f"predictions.{key} must be a field name (a dotted path)")
        paths.append(v)
    positive = value.get("positive")
    if positive is not None and not isinstance(positive, (str, int, float, bool)):
        raise TypeError("predictions.positive must be a JSON scalar (string, number or boolean)")
    assert paths[0] is not None
    return PredictionSpec(paths[0], paths[1], paths[2], positive)
