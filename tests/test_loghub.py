"""Conformance: the LogPAI templates of the 16 LogHub datasets, every field of all 32,000
lines against the ground-truth ``*_structured.csv``, on both parser implementations."""

from __future__ import annotations

import csv
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from _fastparse import _pyparser
from tests.test_fastparse import CPARSER, IMPLS

LOGHUB = Path(__file__).parents[2] / "shared" / "corpora" / "loghub"
pytestmark = pytest.mark.skipif(not (LOGHUB / "formats.tsv").exists(), reason=f"the LogHub corpus is not at {LOGHUB}")

KW: dict[str, Any] = dict(
    input_id="loghub", path="/x.log", host_name="h", id_prefix="p", index_pattern="loghub-%Y.%m.%d", timezone="UTC"
)
READ_MS = 1795591801123  # 2026-11-25T07:30:01.123Z


def formats() -> dict[str, str]:
    if not (LOGHUB / "formats.tsv").exists():
        return {}
    rows = (LOGHUB / "formats.tsv").read_text().splitlines()[1:]
    return dict(r.split("\t", 1) for r in rows if r.strip())


FORMATS = formats()
#: what each dataset's @timestamp becomes for its first line (zone-less times are UTC here)
FIRST_TS = {
    "Android": "2026-03-17T16:13:38.811Z",
    "Apache": "2005-12-04T04:47:44.000Z",
    "BGL": "2005-06-03T15:42:50.675Z",
    "HDFS": "2008-11-09T20:36:15.000Z",
    "HPC": "2004-02-26T14:12:22.000Z",
    "Hadoop": "2015-10-18T18:01:47.978Z",
    "HealthApp": "2017-12-23T22:15:29.606Z",
    "Linux": "2026-06-14T15:16:01.000Z",
    "Mac": "2026-07-01T09:00:55.000Z",
    "OpenSSH": "2025-12-10T06:55:46.000Z",
    "OpenStack": "2017-05-16T00:00:00.008Z",
    "Proxifier": "2026-10-30T16:49:06.000Z",
    "Spark": "2017-06-09T20:10:40.000Z",
    "Thunderbird": "2005-11-09T12:01:01.000Z",
    "Windows": "2016-09-28T04:30:30.000Z",
    "Zookeeper": "2015-07-29T17:41:44.747Z",
}


def parse_all(impl: ModuleType, name: str) -> list[dict[str, Any]]:
    data = (LOGHUB / f"{name}_2k.log").read_bytes()
    p = impl.Parser(format=FORMATS[name], **KW)
    body = p.feed(data, READ_MS).body + p.flush(READ_MS).body
    return [orjson.loads(d) for d in body.split(b"\n")[1:-1:2]]


@pytest.fixture(params=IMPLS, scope="module")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(FORMATS) or ["none"])
def test_every_field_matches_ground_truth(impl: ModuleType, name: str) -> None:
    with open(LOGHUB / f"{name}_2k.log_structured.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    docs = parse_all(impl, name)
    assert len(docs) == len(rows) == 2000
    fields = [c for c in rows[0] if c not in ("LineId", "EventId", "EventTemplate")]
    bad = []
    for row, doc in zip(rows, docs, strict=True):
        assert "parse_error" not in doc.get("tags", []), (name, row["LineId"], doc["message"])
        for col in fields:
            got = doc["message"] if col == "Content" else doc.get(col)
            if (got if got is not None else "") != row[col].strip():  # compared stripped (README)
                bad.append((row["LineId"], col, got, row[col]))
    assert not bad, f"{name}: {len(bad)} mismatches, first: {bad[:3]}"
    level = next((c for c in fields if c in ("Level", "level")), None)
    if level:
        assert all(d["log"]["level"] == r[level] for d, r in zip(docs, rows, strict=True))
    assert docs[0]["@timestamp"] == FIRST_TS[name]


@pytest.mark.skipif(CPARSER is None, reason="_cparser not built")
def test_both_implementations_give_the_same_bytes() -> None:
    for name, fmt in FORMATS.items():
        data = (LOGHUB / f"{name}_2k.log").read_bytes()
        out = []
        for m in (CPARSER, _pyparser):
            p = m.Parser(format=fmt, **KW)
            out.append(p.feed(data, READ_MS).body + p.flush(READ_MS).body)
        assert out[0] == out[1], name
