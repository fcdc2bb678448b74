"""Review of this session's parser changes (cspeed6: number_fast's 16-byte load, the line
splitter fp_lines; twin6: the second of a line planned by int() of its fields, the
multiline starters after a newline). The review's throw-away runs compared the compiled
parser, the twin, and both as they were at the session's start (a174564): 2,400 random
cases (five formats, tracebacks, progress bars, ANSI, invalid UTF-8, CRLF, truncation,
any chunking, expiry), 72,000 metric lines of awkward numbers at four line limits, and
108,000 times around DST changes in nine zones: no difference. What stays here: the metric
numbers cut by ``max_line_bytes`` at every byte and the times that a zone's clock skips or
repeats, pinned to what the session's start gave."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.test_fastparse import CPARSER, impl

__all__ = ["impl"]  # the fixture: every case on both parsers

KW = dict(input_id="t", path="/l", host_name="h", id_prefix="f", index_pattern="i", multiline="none")
T0 = 1795591801123
NUMS = ["0", "-1", "+1", "007", "00.5", "1.", ".5", "1e5", "1E+05", "2.5e-4", "1e", "1e+400", "nan", "-inf", "-0.0",
        "1_000", "1234567", "12345678", "1234567.1234567", "1234567.12345678", "12345678.1", "9" * 20,
        "18446744073709551616", "0.1234567890123456789", "9007199254740993", "4.9e-324", "7e22", "1.2.3", "--1"]


def _out(mod: ModuleType, data: bytes, **kw: object) -> tuple[bytes, list[float], list[int], list[int]]:
    b = mod.Parser(**{**KW, **kw}).feed(data, T0)
    return b.body, b.m_value.tolist(), b.m_id.tolist(), b.ev_time.tolist()


@pytest.mark.skipif(CPARSER is None, reason="_cparser not built")
@pytest.mark.parametrize("fmt", ["python", "plain", "logfmt"])
def test_numbers_cut_at_every_byte_compiled_is_twin(fmt: str) -> None:
    """A metric line cut by ``max_line_bytes`` inside, before and after each number (the
    16-byte load must not see the digits past the cut), CRLF or LF: the twin's bytes and values."""
    from _fastparse import _pyparser

    head = "2026-11-25 07:30:01,123 - root - INFO - " if fmt == "python" else ""
    lines = [f"{head}loss={n} lr: {n}s val/acc {n}".encode() for n in NUMS]
    for sep in (b"\n", b"\r\n"):
        data = sep.join(lines) + sep
        for maxb in range(len(head) + 4, max(map(len, lines)) + 2):
            got = _out(CPARSER, data, format=fmt, timezone="UTC", max_line_bytes=maxb)
            want = _out(_pyparser, data, format=fmt, timezone="UTC", max_line_bytes=maxb)
            assert got == want, (fmt, sep, maxb)


DST_LINES = [b"2026-03-29 02:30:00,000 - root - INFO - gap", b"2026-10-25 02:30:00,500 - root - INFO - fold",
             b"2024-02-29 23:59:60,999 - root - INFO - leap", b"2025-02-29 10:00:00,000 - root - INFO - no such day",
             b"2026-11-25 24:00:00,000 - root - INFO - hour 24", b"2026-04-05 02:15:00,001 - root - INFO - lord howe"]
# ev_time of DST_LINES as the session's start (a174564) gave them, both parsers
DST_TIMES = {
    "Europe/Berlin": [1774747800000, 1792891800500, 1709247600999, 1740819600000, T0, 1775348100001],
    "Australia/Lord_Howe": [1774711800000, 1792855800500, 1709211600999, 1740783600000, T0, 1775317500001],
    "America/St_Johns": [1774760400000, 1792904400500, 1709263800999, 1740835800000, T0, 1775364300001],
}


@pytest.mark.parametrize("zone", sorted(DST_TIMES))
def test_times_a_clock_skips_or_repeats_as_before(impl: ModuleType, zone: str) -> None:
    """A local time in a DST gap or fold, a leap second, Feb 29 of a common year, hour 24:
    the times the session's start gave (the twin now plans a second by int() of its fields)."""
    for fmt in ("python", "%(asctime)s - %(name)s - %(levelname)s - %(message)s"):
        assert _out(impl, b"\n".join(DST_LINES) + b"\n", format=fmt, timezone=zone)[3] == DST_TIMES[zone], fmt
