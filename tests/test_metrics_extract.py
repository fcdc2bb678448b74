"""Metrics in log lines (``"metrics":{...}``, ``Batch.m_*``), labels, predictions and the
per-event arrays, both implementations; real Keras, Hugging Face, Lightning lines."""

from __future__ import annotations

import math
import random
from array import array
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fastparse import _pyparser
from _fastparse._common import ARRAYS
from _fastparse._metrics import ALIASES, KNOWN, number_text
from tests.test_fastparse import CPARSER, SETTINGS, T0, docs, impl, make, needs_both, split_at

__all__ = ["impl"]


def metrics(impl: ModuleType, message: bytes, **kw: Any) -> tuple[dict[str, Any] | None, Any, Any]:
    p = make(impl, **kw)
    b = p.feed(message + b"\n", T0)
    d = docs(b)[0]
    return d.get("metrics"), b, p


@pytest.mark.parametrize(("line", "want"), [
    # Keras progress line
    (b"1875/1875 [==============================] - 5s 3ms/step - loss: 0.2954 - accuracy: 0.9143 "
     b"- val_loss: 0.1425 - val_accuracy: 0.9582",
     {"loss": 0.2954, "accuracy": 0.9143, "val_loss": 0.1425, "val_accuracy": 0.9582}),
    # Hugging Face Trainer, a printed dict
    (b"{'loss': 0.6931, 'grad_norm': 1.2345, 'learning_rate': 4.9e-05, 'epoch': 0.01}",
     {"loss": 0.6931, "grad_norm": 1.2345, "learning_rate": 4.9e-05, "epoch": 0.01}),
    (b"{'eval_loss': 0.41, 'eval_accuracy': 0.88, 'eval_runtime': 12.5, 'eval_samples_per_second': 80.1}",
     {"eval_loss": 0.41, "eval_accuracy": 0.88, "eval_samples_per_sec": 80.1}),
    # key=value, slashes and dots, aliases on the last part, units and percent
    (b"step=1200 train/loss=0.4321 val.acc=91.5% lr=3e-4 ppl=12.7 f1_score=0.8 latency=35ms",
     {"step": 1200, "train_loss": 0.4321, "val_accuracy": 91.5, "learning_rate": 3e-4, "perplexity": 12.7,
      "f1": 0.8, "latency": 35}),
    (b"gpu_utilization = 97 gpu-memory: 10.5GB tokens_per_second=1234.5 TP=40 FP=3 FN=2 TN=55",
     {"gpu_util": 97, "gpu_mem": 10.5, "tokens_per_sec": 1234.5, "tp": 40, "fp": 3, "fn": 2, "tn": 55}),
    # numbers rewritten as JSON; the first value of a name wins; unknown names are left alone
    (b"loss=+007.50 acc=.5 auc=5. rmse=1E+02 loss=9 batch_size=32 version=1.2.3",
     {"loss": 7.5, "accuracy": 0.5, "auc": 5, "rmse": 100.0}),
    (b"no metrics at 07:30:01 here: none http://host:8080/path", None),
])
def test_real_lines(impl: ModuleType, line: bytes, want: dict[str, Any] | None) -> None:
    got, b, p = metrics(impl, line)
    assert got == want
    names = list((want or {}).keys())
    assert [p.metric_names[i] for i in b.m_id] == names
    assert b.m_value.tolist() == [float(v) for v in (want or {}).values()]
    assert b.m_item.tolist() == [0] * len(names)


def test_numbers_as_written(impl: ModuleType) -> None:
    p = make(impl)
    b = p.feed(b"loss=+007.50 acc=.5 auc=5. rmse=1E+02 mae=-0.0\n", T0)
    assert b'"metrics":{"loss":7.50,"accuracy":0.5,"auc":5,"rmse":1E+02,"mae":-0.0}' in b.body
    assert number_text(b"-00.5e-3") == b"-0.5e-3"


def test_nan_and_inf(impl: ModuleType) -> None:
    got, b, p = metrics(impl, b"step=7 loss=nan acc=0.5")
    assert got == {"step": 7, "accuracy": 0.5}
    d = docs(b)[0]
    assert d["error"] == {"class": "nan_loss"} and b.ev_class[0] == p.error_classes.index("nan_loss") + 1
    got, b, _ = metrics(impl, b"grad_norm: inf")
    assert got is None and docs(b)[0]["error"] == {"class": "nan_loss"}
    got, b, _ = metrics(impl, b"accuracy=NaN loss=1e999")  # overflows to inf: a loss
    assert got is None and docs(b)[0]["error"] == {"class": "nan_loss"}
    got, b, _ = metrics(impl, b"accuracy=NaN")  # not a loss: not written, not an error
    assert got is None and "error" not in docs(b)[0]


def test_user_names_aliases_and_none(impl: ModuleType) -> None:
    spec = {"names": ["reward", "kl"], "aliases": {"rew": "reward", "kl_div": "kl"}}
    got, _, _ = metrics(impl, b"episode_rew=3.5 kl_div=0.01 loss=1", metrics=spec)
    assert got == {"episode_reward": 3.5, "kl": 0.01, "loss": 1}
    got, b, _ = metrics(impl, b"loss=1 acc=2", metrics="none")
    assert got is None and len(b.m_id) == 0
    with pytest.raises(ValueError, match="metrics"):
        make(impl, metrics="some")
    with pytest.raises(ValueError, match="unknown key"):
        make(impl, metrics={"name": ["x"]})


def test_python_format_reads_the_message_only(impl: ModuleType) -> None:
    p = make(impl, format="python", timezone="UTC")
    b = p.feed(b"2026-11-25 07:30:01,123 - trainer - INFO - epoch=2 loss=0.25\n"
               b"2026-11-25 07:30:02,123 - trainer - INFO - nothing\n"
               b"2026-11-25 07:30:03,123 - trainer - INFO - loss=0.125 epoch=2\n", T0)
    assert [d.get("metrics") for d in docs(b)] == [{"epoch": 2, "loss": 0.25}, None, {"loss": 0.125, "epoch": 2}]
    assert b.m_item.tolist() == [0, 0, 2, 2]
    assert [p.metric_names[i] for i in b.m_id] == ["epoch", "loss", "loss", "epoch"]
    assert b.ev_time.tolist() == [1795591801123 + k * 1000 - (T0 - 1795591801123) for k in range(3)]


def test_json_metrics_and_predictions(impl: ModuleType) -> None:
    lines = [
        {"msg": "eval", "loss": 0.5, "step": 10, "ok": True, "name": "x", "pred": {"label": 1, "score": 0.9},
         "y": 1},
        {"msg": "eval loss=0.7", "y": "cat", "yhat": "dog", "p": 0.2},
        {"msg": "no label"},
        {"msg": "tp", "tp": 40, "fp": 3, "y": 0, "yhat": 1},
    ]
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    p = make(impl, format="json", predictions={"label": "y", "prediction": "yhat", "score": "p"})
    b = p.feed(data, T0)
    ds = docs(b)
    assert ds[0]["metrics"] == {"loss": 0.5, "step": 10} and ds[1]["metrics"] == {"loss": 0.7}
    assert ds[3]["metrics"] == {"tp": 40, "fp": 3}
    assert b.p_item.tolist() == [0, 1, 3]
    assert b.p_label.tolist() == [1, 0, 0] and b.p_pred.tolist() == [-1, 0, 1]
    sc = b.p_score.tolist()
    assert math.isnan(sc[0]) and sc[1] == 0.2 and math.isnan(sc[2])
    p = make(impl, format="json", predictions={"label": "pred.label", "score": "pred.score", "positive": 1})
    b = p.feed(data, T0)
    assert b.p_item.tolist() == [0] and b.p_label.tolist() == [1] and b.p_score.tolist() == [0.9]
    p = make(impl, format="json", predictions={"label": "y", "prediction": "yhat", "positive": "cat"})
    b = p.feed(data, T0)
    assert b.p_label.tolist() == [0, 1, 0] and b.p_pred.tolist() == [-1, 0, 0]


def test_labels(impl: ModuleType) -> None:
    p = make(impl, labels={"model": "bert", "run": "r7"})
    d = docs(p.feed(b"hello\n", T0))[0]
    assert d["labels"] == {"model": "bert", "run": "r7"}
    assert list(d)[:6] == ["@timestamp", "message", "log", "host", "event", "labels"]
    with pytest.raises(TypeError):
        make(impl, labels={"model": 3})
    with pytest.raises(ValueError, match="labels"):
        make(impl, format="<labels> <Content>")


def test_progress_and_ansi(impl: ModuleType) -> None:
    data = (b"\x1b[31mERROR\x1b[0m:trainer:\x1b]0;title\x07boom\n"
            b"epoch 1:  10%|#         |\r epoch 1:  50%|#####     |\r epoch 1: 100%|##########| loss=0.3\r\n"
            b"plain\n")
    for progress, msgs in (("last", ["boom", " epoch 1: 100%|##########| loss=0.3", "plain"]),
                           ("drop", ["boom", "plain"])):
        p = make(impl, format="python", progress=progress)
        b = p.feed(data, T0)
        ds = docs(b)
        assert [d["message"] for d in ds] == msgs
        assert ds[0]["log"]["level"] == "ERROR" and b.ev_level[0] == 5
        assert b.lines == 3
    p = make(impl, progress="all")
    assert docs(p.feed(data, T0))[1]["message"].count("\r") == 2
    with pytest.raises(ValueError, match="progress"):
        make(impl, progress="first")


def test_ev_bytes_and_levels(impl: ModuleType) -> None:
    data = (b"2026-11-25 07:30:01,123 - t - WARNING - w\r\n\n"
            b"2026-11-25 07:30:02,123 - t - ERROR - failed\n"
            b"Traceback (most recent call last):\n  File \"x\", line 1\nValueError: x\n\n"
            b"2026-11-25 07:30:03,123 - t - NOTICE - n\n"
            b"tail")
    p = make(impl, format="python", timezone="UTC", multiline="auto")
    bs = [p.feed(data, T0), p.flush(T0)]
    ev_bytes = [x for b in bs for x in b.ev_bytes]
    lv = [x for b in bs for x in b.ev_level]
    assert lv == [4, 5, 0, 0]  # NOTICE is no level word of the python layouts: a plain line
    assert ev_bytes == [43, 45 + 35 + 19 + 14, 41, 4]
    assert sum(b.bytes for b in bs) == len(data)


def test_batch_arrays_types(impl: ModuleType) -> None:
    b = make(impl).feed(b"x\n", T0)
    for name, code in ARRAYS:
        a = getattr(b, name)
        assert isinstance(a, array) and a.typecode == code
    e = make(impl).feed(b"", T0)
    assert all(len(getattr(e, n)) == 0 for n, _ in ARRAYS)


# -- twins and chunking, arrays included -----------------------------------------------------

PIECES = st.sampled_from([
    b"loss=0.5 ", b"acc: 91% ", b"val/acc = .25 ", b"lr=1e-4", b"'eval_loss': 3, ", b"grad_norm=nan ",
    b"loss=inf ", b"step=", b"12", b" ", b"\n", b"\r\n", b"\r", b"\x1b[1;31m", b"\x1b]0;t\x07", b"\x1b",
    b"CUDA out of memory", b"cuda OUT OF memory", b"NCCL error", b"Traceback (most recent call last):\n",
    b"  File \"a.py\", line 1\n", b"ValueError: bad\n", b"2026-11-25 07:30:01,123 - t - ERROR - ",
    b"2026-11-25 07:30:01,123 - t - INFO - ", b"ERROR:root:", b"\xff", b"\xc3\xa9", b"x" * 30,
    b"tp=3 fn=1 ", b"epoch: 2/10 ", b"throughput=1,234 ",
])
EVENTS = st.lists(PIECES, max_size=60).map(b"".join)


def _all(p: Any, chunks: list[bytes], flush: bool) -> tuple[Any, ...]:
    bs = [p.feed(c, T0 + i) for i, c in enumerate(chunks)]
    if flush:
        bs.append(p.flush(T0))
    body = b"".join(b.body for b in bs)
    arrs = []
    base = 0
    for b in bs:
        for name, _ in ARRAYS:
            a = getattr(b, name).tolist()
            if name in ("m_item", "p_item"):
                a = [x + base for x in a]
            if name in ("ev_time",):
                a = [0] * len(a)  # feeds carry different read times
            arrs.append((name, a))
        base += b.count
    merged: dict[str, list[Any]] = {}
    for name, a in arrs:
        merged.setdefault(name, []).extend(a)
    return body, merged, p.metric_names


FMTS = ["plain", "python", "%(levelname)s:%(name)s:%(message)s"]


@SETTINGS
@given(data=EVENTS, cuts=st.lists(st.integers(0, 2000), max_size=6),
       fmt=st.sampled_from(FMTS), ml=st.sampled_from(["none", "auto"]),
       progress=st.sampled_from(["last", "all", "drop"]), max_line=st.sampled_from([12, 40, 1 << 20]))
def test_any_chunking_same_events_and_arrays(impl: ModuleType, data: bytes, cuts: list[int], fmt: str,
                                             ml: str, progress: str, max_line: int) -> None:
    kw = dict(format=fmt, multiline=ml, progress=progress, max_line_bytes=max_line, timezone="UTC")
    whole = _all(make(impl, **kw), [data], True)
    pieces = _all(make(impl, **kw), split_at(data, cuts), True)
    # the body's @timestamp and index come from read times only when the line has none
    assert whole[1] == pieces[1] and whole[2] == pieces[2]
    assert whole[0].count(b"\n") == pieces[0].count(b"\n")


@needs_both
@SETTINGS
@given(data=EVENTS, cuts=st.lists(st.integers(0, 2000), max_size=6),
       fmt=st.sampled_from(FMTS), ml=st.sampled_from(["none", "auto"]),
       progress=st.sampled_from(["last", "all", "drop"]), max_line=st.sampled_from([12, 40, 1 << 20]))
def test_twins_identical_with_arrays(data: bytes, cuts: list[int], fmt: str, ml: str, progress: str,
                                     max_line: int) -> None:
    kw = dict(format=fmt, multiline=ml, progress=progress, max_line_bytes=max_line, timezone="UTC",
              labels={"run": "r1"})
    ps = [make(m, **kw) for m in (CPARSER, _pyparser)]
    for i, c in enumerate(split_at(data, cuts)):
        bc, bp = (p.feed(c, T0 + i * 1000) for p in ps)
        assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}
    bc, bp = (p.flush(T0) for p in ps)
    assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}
    assert ps[0].metric_names == ps[1].metric_names and ps[0].error_classes == ps[1].error_classes


@needs_both
def test_twins_identical_random_metric_lines() -> None:
    rng = random.Random(7)
    keys = [*KNOWN, *ALIASES, "val_acc", "train/loss", "x", "Loss", "LR", "eval-f1_score", "top10", "x.1", "k-",
            "at.7", "m/"]
    seps = ["=", ": ", " = ", ":", "'=", "\t:\t"]
    vals = ["0.5", "-1", "+3.", ".25", "1e-4", "1E+400", "nan", "-Inf", "infinity", "12ms", "97%", "0x1f",
            "007", "", "abc", "1.2.3", "3/10"]
    lines = []
    for _ in range(4000):
        parts = [rng.choice(keys) + rng.choice(seps) + rng.choice(vals) for _ in range(rng.randrange(1, 6))]
        lines.append(rng.choice([" ", ", ", " - ", "|"]).join(parts))
    data = "\n".join(lines).encode() + b"\n"
    out = []
    for m in (CPARSER, _pyparser):
        for metrics in ("auto", {"names": ["x_1", "k_", "at_7", "m_"]}):
            p = make(m, metrics=metrics)
            b = p.feed(data, T0)
            out.append((b.body, [getattr(b, n).tolist() for n, _ in ARRAYS], p.metric_names))
    assert out[0] == out[2] and out[1] == out[3]
    assert b'"x_1":' in out[3][0] and b'"at_7":' in out[3][0]


@needs_both
def test_twins_identical_numbers_at_the_end_of_memory() -> None:
    """The compiled number scan loads 16 bytes at once where they are in the same memory
    page, else words and bytes: the last number of a feed ending 0-17 bytes before a page's
    end reads alike either way, with and without its newline."""
    tails = [b"loss=1.5", b"loss=12345", b"acc=0.62 lr=2.5e-4", b"lr=3e-4", b"step=7", b"loss=1.234567",
             b"loss=1234567.1234567", b"loss=0.12345678", b"loss=12345678", b"loss=007", b"lr=1E+02"]
    filler = b"epoch=1 step=2 loss=0.5 acc=0.9\n" * 64
    seen = set()
    for tail in tails:
        for nl in (b"", b"\n"):
            for pad in range(4096 + 64):
                data = filler + b"x" * pad + b"\n" + tail + nl
                gap = -(id(data) + 32 + len(data)) % 4096  # CPython's bytes: 32 bytes of header
                if gap > 17 or (tail, nl, gap) in seen:
                    continue
                seen.add((tail, nl, gap))
                out = []
                for m in (CPARSER, _pyparser):
                    p = make(m)
                    bs = [p.feed(data, T0), p.flush(T0)]
                    out.append([(b.body, [getattr(b, n).tolist() for n, _ in ARRAYS]) for b in bs])
                assert out[0] == out[1], (tail, nl, gap)
    assert len(seen) > 10 * len(tails)


@needs_both
def test_twins_identical_number_digits() -> None:
    """Numbers of every length of integer, fraction and exponent around the compiled scan's
    word limits (7 digits, 8, 16 bytes), signs and leading zeros, in lines that repeat a
    shape (the shape path) and alone."""
    rng = random.Random(11)
    nums = []
    for il in (0, 1, 2, 6, 7, 8, 9, 15, 16, 17):
        for fl in (-1, 0, 1, 6, 7, 8, 9):
            for ex in ("", "e5", "E-22", "e+23", "e123", "e"):
                ip = "".join(rng.choice("123456789") for _ in range(il))
                nums.append(ip + ("" if fl < 0 else "." + "9" * fl) + ex)
    nums += ["0", "00", "0.0", "-0.5", "+1.25", "01.5", "0.", ".5", "5.", "1.e5"]
    lines = []
    for i, x in enumerate(nums):
        lines.append(f"step={i} loss={x} acc=0.5")
        lines.append(f"loss={x}")
    data = "\n".join(lines).encode() + b"\n"
    out = []
    for m in (CPARSER, _pyparser):
        p = make(m)
        b = p.feed(data, T0)
        out.append((b.body, [getattr(b, n).tolist() for n, _ in ARRAYS], p.metric_names))
    assert out[0] == out[1]


# -- the compiled parser's metric-line shapes ---------------------------------------------------
# The compiled parser keeps the shape of recent metric lines (the bytes between the values, the
# metric each value is written as) and writes a line of a kept shape from it, scanning only its
# numbers; digits may differ between the values (times, ids), not in keys. Lines of one shape,
# then lines that deviate from it in one place, give what the twin (no shapes) gives.

SHAPE_KEYS = ["loss", "acc", "lr", "step", "top1", "top5", "x1", "tok/s", "val_loss", "'loss'", "f1"]
SHAPE_SEPS = ["=", ": ", " = ", ":"]
SHAPE_VALS = ["0.5", "12", "2.5e-4", "1E+02", "-3", "+7", "007", ".5", "5.", "12345678", "1e-30", "35ms"]
DEVIATIONS = ["none", "digit", "char", "key", "value", "insert", "drop", "gap"]


def _shape_line(layout: list[tuple[str, str]], vals: list[str], prefix: str, dev: str, i: int, d: int) -> str:
    parts = [f"{k}{sep}{vals[j % len(vals)]}" for j, (k, sep) in enumerate(layout)]
    j = i % len(parts)
    if dev == "key":
        parts[j] = SHAPE_KEYS[d % len(SHAPE_KEYS)] + parts[j][len(layout[j][0]):]
    elif dev == "value":
        parts[j] = layout[j][0] + layout[j][1] + ["nan", "inf", "x", "1e999", "1" * 45, "", "0x1f", "3/4", "-"][d % 9]
    elif dev == "insert":
        parts.insert(j, ["at", "step=", "loss=nan", "top1=inf", "{", "k:v", "|"][d % 7])
    elif dev == "drop":
        parts.pop(j)
    line = prefix + " ".join(parts) + (" done" if dev == "gap" else "")
    if dev == "digit":
        digits = [k for k, c in enumerate(line) if c.isdigit()]
        if digits:
            k = digits[i % len(digits)]
            line = line[:k] + str(d) + line[k + 1:]
    elif dev == "char":  # any byte of the message, the same length
        k = len(prefix) + i % (len(line) - len(prefix))
        line = line[:k] + " x=:.-'e"[d % 8] + line[k + 1:]
    return line


@needs_both
@SETTINGS
@given(layout=st.lists(st.tuples(st.sampled_from(SHAPE_KEYS), st.sampled_from(SHAPE_SEPS)), min_size=1, max_size=6),
       rows=st.lists(st.tuples(st.lists(st.sampled_from(SHAPE_VALS), min_size=1, max_size=6),
                               st.sampled_from(DEVIATIONS), st.integers(0, 99), st.integers(0, 9)),
                     min_size=1, max_size=10),
       fmt=st.sampled_from(["plain", "python"]))
def test_twins_identical_metric_line_shapes(layout: list[tuple[str, str]], rows: list[Any], fmt: str) -> None:
    lines = []
    for n, (vals, dev, i, d) in enumerate(rows):
        prefix = f"2026-11-25 07:30:{n % 60:02d},{(n * 37) % 1000:03d} - trainer - INFO - "
        lines.append(_shape_line(layout, vals, prefix, "none", 0, 0))  # the shape
        lines.append(_shape_line(layout, vals, prefix, dev, i, d))
    data = "\n".join(lines).encode() + b"\n"
    out = []
    for m in (CPARSER, _pyparser):
        p = make(m, format=fmt, timezone="UTC")
        b = p.feed(data, T0)
        out.append((b.body, [getattr(b, n).tolist() for n, _ in ARRAYS], p.metric_names))
    assert out[0] == out[1]


@pytest.mark.parametrize("lines", [
    # a nan in the shape's gap: its key is read (top1 seen), so its digits may not differ
    [b"top1=nan top1=5", b"top5=nan top1=5", b"x top1=inf top1=7", b"x top5=inf top1=7"],
    # digits in a key are the key's: top1 is not top5
    [b"epoch=1 top1=0.5", b"epoch=2 top5=0.5", b"epoch=3 top1=0.5"],
    # the bytes after the last value, and a value that is no longer a number
    [b"step=1 loss=0.5 done", b"step=2 loss=0.5 done!", b"step=3 loss=x done", b"step=4 loss=1e999 done"],
    [b"loss=0.5 lr=x", b"loss=0.6 lr=1"],
    # the first value of a name wins: a repeat in the shape, then a line where it is not one
    [b"loss=1 loss=2 acc=3", b"loss=4 loss=5 acc=6", b"lr=4 loss=5 acc=6"],
])
def test_metric_line_shapes(impl: ModuleType, lines: list[bytes]) -> None:
    p = make(impl)
    b = p.feed(b"\n".join(lines) + b"\n", T0)
    fresh = []
    for line in lines:  # each line in a parser of its own: no shape kept from another line
        fb = make(impl).feed(line + b"\n", T0)
        fresh.append((docs(fb)[0].get("metrics"), fb.ev_class.tolist()))
    assert [(d.get("metrics"), [c]) for d, c in zip(docs(b), b.ev_class.tolist(), strict=True)] == fresh


# -- the config keys ---------------------------------------------------------------------------


def _input(**kw: Any) -> Any:
    from shipper.config import from_dict

    raw = {"inputs": [{"id": "trainer", "paths": ["/srv/models/**/*.log"], **kw}]}
    top = {k: raw["inputs"][0].pop(k) for k in list(raw["inputs"][0]) if k == "error_classes"}
    return from_dict({**raw, **top}, env={}).inputs[0]


def test_config_keys() -> None:
    from shipper.config import ConfigError, source_of

    inp = _input()
    assert (inp.progress, inp.metrics, inp.predictions, inp.path_fields, inp.source) == ("last", "auto", None,
                                                                                          None, None)
    inp = _input(path_fields="/srv/models/{model}/{run}/**", source="{model}/{run}", progress="drop",
                 metrics={"names": ["reward"], "aliases": {"rew": "reward"}}, format="json",
                 predictions={"label": "y", "positive": "cat"}, error_classes={"disk": ["no space left"]})
    labels = inp.path_fields.labels("/srv/models/bert/r7/logs/train.log")
    assert labels == {"model": "bert", "run": "r7"}
    assert source_of(inp.source, labels, inp.id) == "bert/r7"
    assert source_of(inp.source, {}, inp.id) == "trainer"
    assert inp.path_fields.labels("/elsewhere/x.log") == {}
    assert inp.metrics == {"names": ["reward"], "aliases": {"rew": "reward"}}
    assert inp.predictions == {"label": "y", "positive": "cat"} and inp.error_classes == {"disk": ["no space left"]}
    for kw, key in (({"progress": "first"}, "inputs[0].progress"),
                    ({"metrics": "maybe"}, "inputs[0].metrics"),
                    ({"metrics": {"nams": []}}, "inputs[0].metrics.nams"),
                    ({"predictions": {"score": "p"}, "format": "json"}, "inputs[0].predictions.label"),
                    ({"predictions": {"label": "y"}}, "inputs[0].predictions"),
                    ({"path_fields": "/srv/models/**"}, "inputs[0].path_fields"),
                    ({"source": "{model}"}, "inputs[0].source"),
                    ({"error_classes": {"other": ["abcd"]}}, "error_classes.other"),
                    ({"error_classes": {"x": ["ab"]}}, "error_classes.x")):
        with pytest.raises(ConfigError) as e:
            _input(**kw)
        assert e.value.path == key, (kw, e.value)
