"""Formats and timestamps of the parser, both implementations (see ``_fastparse``'s docstring)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fastparse import _pyparser
from tests.test_fastparse import CPARSER, DATA, SETTINGS, T0, docs, impl, make, needs_both, run, split_at

__all__ = ["impl"]  # the fixture: each test runs on both implementations

HDFS = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
LINUX = r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>"
FORMATS = [
    "plain",
    "python",
    "json",
    "logfmt",
    HDFS,
    LINUX,
    "%(asctime)s | %(levelname)s | %(name)s | %(process)d | %(message)s",
    "%{client} %{?ident} [%{when}] %{verb}: %{Content}",
]


def doc(impl: ModuleType, line: bytes, ms: int = T0, **kw: Any) -> dict[str, Any]:
    kw.setdefault("timezone", "UTC")
    b = make(impl, **kw).feed(line + b"\n", ms)
    assert b.count == 1
    return docs(b)[0]  # type: ignore[no-any-return]


# -- python ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "ts", "logger", "level", "msg"),
    [
        (
            b"2026-11-25 07:30:01,123 - trainer.optim - WARNING - grad_norm=12.5",
            "2026-11-25T07:30:01.123Z",
            "trainer.optim",
            "WARNING",
            "grad_norm=12.5",
        ),
        (
            b"2026-11-25 07:30:01.5 ERROR data.loader: shard 3 failed: bad",
            "2026-11-25T07:30:01.500Z",
            "data.loader",
            "ERROR",
            "shard 3 failed: bad",
        ),
        (b"CRITICAL:root:out of memory", "2026-11-25T07:30:01.123Z", "root", "CRITICAL", "out of memory"),
    ],
)
def test_python_auto_layouts(impl: ModuleType, line: bytes, ts: str, logger: str, level: str, msg: str) -> None:
    d = doc(impl, line, format="python")
    assert (d["@timestamp"], d["log"]["logger"], d["log"]["level"], d["message"]) == (ts, logger, level, msg)
    assert "tags" not in d


def test_python_unmatched_line_is_plain_untagged(impl: ModuleType) -> None:
    d = doc(impl, b'  File "train.py", line 3, in <module>', format="python")
    assert d["message"] == '  File "train.py", line 3, in <module>' and "tags" not in d
    assert d["@timestamp"] == "2026-11-25T07:30:01.123Z" and "level" not in d["log"]


def test_python_layout_string_fields(impl: ModuleType) -> None:
    fmt = (
        "%(asctime)s [%(levelname)-8s] %(name)s %(filename)s:%(lineno)d %(funcName)s() pid=%(process)d "
        "tid=%(thread)d %(user)s: %(message)s"
    )
    line = b"2026-11-25 08:30:01,250 [INFO    ] trainer train.py:42 step() pid=77 tid=x12 ann: loss=0.5"
    d = doc(impl, line, format=fmt, timezone="Europe/Berlin")
    assert d["@timestamp"] == "2026-11-25T07:30:01.250Z"
    assert d["log"]["level"] == "INFO" and d["log"]["logger"] == "trainer"
    assert d["log"]["origin"] == {"file": {"name": "train.py", "line": 42}, "function": "step"}
    assert d["process"] == {"pid": 77, "thread": {"id": None}}
    assert d["user"] == "ann" and d["message"] == "loss=0.5"


def test_layout_mismatch_is_parse_error(impl: ModuleType) -> None:
    d = doc(impl, b"no layout here", format="%(asctime)s | %(levelname)s | %(message)s")
    assert d["message"] == "no layout here" and d["tags"] == ["parse_error"]


# -- templates and dissect -----------------------------------------------------------------------


def test_template_captures_top_level(impl: ModuleType) -> None:
    d = doc(impl, b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating", format=HDFS)
    assert d["message"] == "PacketResponder 1 terminating" and "Content" not in d
    got = (d["Date"], d["Time"], d["Pid"], d["Level"], d["log"]["level"])
    assert got == ("081109", "203615", "148", "INFO", "INFO")
    assert d["@timestamp"] == "2008-11-09T20:36:15.000Z"
    idx = make(impl, format=HDFS, timezone="UTC").feed(b"081109 203615 1 I c: x\n", T0).body.split(b"\n")[0]
    assert orjson.loads(idx)["create"]["_index"] == "shipper-logs-trainer-2008.11.09"


def test_template_optional_group(impl: ModuleType) -> None:
    a = doc(impl, b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: auth failure", format=LINUX)
    assert (a["Component"], a["PID"], a["message"]) == ("sshd(pam_unix)", "19939", "auth failure")
    b = doc(impl, b"Jun 14 15:16:01 combo kernel: boot", format=LINUX)
    assert (b["Component"], b["PID"], b["message"]) == ("kernel", None, "boot")
    assert b["@timestamp"] == "2026-06-14T15:16:01.000Z"


def test_template_mismatch_tag_order(impl: ModuleType) -> None:
    p = make(impl, format=HDFS, max_line_bytes=4, timezone="UTC")
    p.feed(b"\xff\xff\xff\xff\xff", T0)
    assert docs(p.flush(T0))[0]["tags"] == ["truncated", "invalid_utf8", "parse_error", "incomplete"]


def test_dissect(impl: ModuleType) -> None:
    d = doc(impl, b"10.0.0.1 - [2026-11-25T07:30:01Z] GET: /index.html ok", format=FORMATS[-1])
    assert (d["client"], d["when"], d["verb"], d["message"]) == (
        "10.0.0.1",
        "2026-11-25T07:30:01Z",
        "GET",
        "/index.html ok",
    )
    assert not any(k.startswith("?") for k in d)
    assert doc(impl, b"no brackets", format=FORMATS[-1])["tags"] == ["parse_error"]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("<message>", "'message'"),
        ("<Date> <host>", "'host'"),
        ("%{tags}", "'tags'"),
        ("%(event)s", "'event'"),
        ("%(error)s %(message)s", "'error'"),
        ("<@timestamp>", "'@timestamp'"),
        ("<Date> <metrics>", "'metrics'"),
        ("<A> <A>", "'A'"),
        ("%{+a} %{b}", "not supported"),
        ("nothing", "none of"),
        ("<A> (x", "unclosed"),
    ],
)
def test_bad_formats_are_refused(impl: ModuleType, bad: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make(impl, format=bad)


def test_bad_timezone_is_refused(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        make(impl, format="python", timezone="Mars/Olympus")
    with pytest.raises(TypeError):
        make(impl, format="python", timezone=5)


# -- json -----------------------------------------------------------------------------------------


def test_json(impl: ModuleType) -> None:
    line = b'{"ts": 1795591801.5, "level": "warn", "msg": "hot", "gpu": {"temp": 91}, "host": "x"}'
    d = doc(impl, line, format="json")
    assert (d["@timestamp"], d["log"]["level"], d["message"]) == ("2026-11-25T07:30:01.500Z", "warn", "hot")
    assert d["json"] == {"gpu": {"temp": 91}, "host": "x"} and d["host"] == {"name": "gpu-1"}
    r = doc(impl, line, format="json", json_root=True)
    assert r["gpu"] == {"temp": 91} and r["json"] == {"host": "x"} and r["host"] == {"name": "gpu-1"}
    assert (
        doc(impl, b'{"@timestamp":"2026-11-25T08:30:01.123+01:00"}', format="json")["@timestamp"]
        == "2026-11-25T07:30:01.123Z"
    )
    assert doc(impl, b'{"time": 1795591801123, "message": 5}', format="json")["message"] == "5"


@pytest.mark.parametrize("line", [b"{not json", b"[1, 2]", b'"s"', b'{"a": 1', b"\xff{}"])
def test_json_invalid_kept_as_message(impl: ModuleType, line: bytes) -> None:
    d = doc(impl, line, format="json")
    assert d["message"] == line.decode("utf-8", "replace") and "parse_error" in d["tags"]


# -- logfmt ----------------------------------------------------------------------------------------


def test_logfmt(impl: ModuleType) -> None:
    line = b'ts=2026-11-25T07:30:01.250Z level=info msg="step \\"done\\"" loss=0.5 ok path=/a\\b'
    d = doc(impl, line, format="logfmt")
    assert d["@timestamp"] == "2026-11-25T07:30:01.250Z" and d["log"]["level"] == "info"
    assert d["message"] == 'step "done"'
    assert d["logfmt"] == {"loss": "0.5", "ok": "true", "path": "/a\\b"}
    d = doc(impl, b"time=yesterday a=1 a=2", format="logfmt")
    assert d["logfmt"] == {"time": "yesterday", "a": "1"} and d["message"] == "time=yesterday a=1 a=2"
    assert doc(impl, b"just words", format="logfmt")["tags"] == ["parse_error"]


# -- timestamps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2026-11-25T07:30:01.123Z", "UTC", "2026-11-25T07:30:01.123Z"),
        ("2026-11-25T08:30:01.123+01:00", "UTC", "2026-11-25T07:30:01.123Z"),
        ("2026-11-25T02:30:01-0500", "UTC", "2026-11-25T07:30:01.000Z"),
        ("2026-11-25 08:30:01,123", "Europe/Berlin", "2026-11-25T07:30:01.123Z"),
        ("2026-07-25 09:30:01.9", "Europe/Berlin", "2026-07-25T07:30:01.900Z"),
        ("2026-11-25 07:30:01", "America/New_York", "2026-11-25T12:30:01.000Z"),
        ("1795591801", "UTC", "2026-11-25T07:30:01.000Z"),
        ("1795591801123", "UTC", "2026-11-25T07:30:01.123Z"),
        ("Nov 25 07:30:01", "UTC", "2026-11-25T07:30:01.000Z"),
        ("Dec 31 23:59:59", "UTC", "2025-12-31T23:59:59.000Z"),  # read in November: last year's December? no:
        ("not a time", "UTC", "2026-11-25T07:30:01.123Z"),
        ("2026-13-45 99:99:99", "UTC", "2026-11-25T07:30:01.123Z"),
    ],
)
def test_timestamps(impl: ModuleType, text: str, tz: str, expected: str) -> None:
    if text == "Dec 31 23:59:59":  # December read in late November is in the future: last year's
        expected = "2025-12-31T23:59:59.000Z"
    d = doc(impl, b'{"time": "%s"}' % text.encode(), format="json", timezone=tz)
    assert d["@timestamp"] == expected


def test_syslog_year_across_new_year(impl: ModuleType) -> None:
    jan = 1798761600000 + 3600_000  # 2027-01-01T01:00Z
    d = doc(impl, b"Dec 31 23:59:58 h k: x", ms=jan, format=LINUX)
    assert d["@timestamp"] == "2026-12-31T23:59:58.000Z"
    assert doc(impl, b"Jan  1 00:59:00 h k: x", ms=jan, format=LINUX)["@timestamp"] == "2027-01-01T00:59:00.000Z"


def test_index_from_each_events_own_date(impl: ModuleType) -> None:
    data = b"2026-11-24 23:59:59,999 - a - INFO - x\n2026-11-25 00:00:00,000 - a - INFO - y\nplain\n"
    b = make(impl, format="python", timezone="UTC", index_pattern="l-%Y.%m.%d-%H").feed(data, T0)
    idx = [orjson.loads(a)["create"]["_index"] for a in b.body.split(b"\n")[0:-1:2]]
    assert idx == ["l-2026.11.24-23", "l-2026.11.25-00", "l-2026.11.25-07"]


# -- properties over every format ----------------------------------------------------------------------

LINES = st.lists(
    st.sampled_from(
        [
            b"2026-11-25 07:30:01,123 - trainer - INFO - loss=0.5 acc=0.9",
            b"WARNING:root:careful",
            b'{"msg": "hi", "level": "info", "ts": 1795591801}',
            b'level=warn msg="a \\"b\\"" x=1 y',
            b"081109 203615 148 INFO dfs.DataNode: block \xff added",
            b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: auth",
            b"10.0.0.1 - [2026-11-25T07:30:01Z] GET: /x",
            b"2026-11-25 07:30:01,123 | INFO | t | 12 | m",
            b"   ",
            b"\r",
            b"x" * 70,
        ]
    )
    | DATA,
    max_size=12,
).map(lambda ls: b"\n".join(ls))


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=LINES, cuts=st.lists(st.integers(0, 600), max_size=6), max_line=st.sampled_from([1048576, 30, 7]))
def test_chunking_does_not_matter_any_format(
    impl: ModuleType, fmt: str, data: bytes, cuts: list[int], max_line: int
) -> None:
    kw = dict(format=fmt, timezone="UTC", max_line_bytes=max_line)
    whole = run(impl, [data], **kw)
    assert run(impl, split_at(data, cuts), **kw)[:4] == whole[:4]
    for line in whole[0].split(b"\n")[:-1]:
        orjson.loads(line)


@needs_both
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=LINES, cuts=st.lists(st.integers(0, 600), max_size=6), max_line=st.sampled_from([1048576, 30, 7]))
def test_cython_equals_python_any_format(fmt: str, data: bytes, cuts: list[int], max_line: int) -> None:
    ps = [make(m, format=fmt, timezone="Europe/Berlin", max_line_bytes=max_line) for m in (CPARSER, _pyparser)]
    for i, c in enumerate(split_at(data, cuts)):
        bc, bp = (p.feed(c, T0 + i * 86400_000 * 40) for p in ps)
        assert {k: getattr(bc, k) for k in bc.__slots__} == {k: getattr(bp, k) for k in bp.__slots__}
    assert ps[0].flush(T0).body == ps[1].flush(T0).body


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.binary(max_size=400), sizes=st.lists(st.integers(1, 64), min_size=1, max_size=5))
def test_fuzz_any_format(impl: ModuleType, fmt: str, data: bytes, sizes: list[int]) -> None:
    p = make(impl, format=fmt, timezone="UTC")
    pos = i = 0
    while pos < len(data):
        b = p.feed(data[pos : pos + sizes[i % len(sizes)]], T0)
        pos += sizes[i % len(sizes)]
        i += 1
        assert b.end_offset + p.pending == min(pos, len(data))
        for line in b.body.split(b"\n")[:-1]:
            orjson.loads(line)
    assert p.flush(T0).end_offset == len(data)
