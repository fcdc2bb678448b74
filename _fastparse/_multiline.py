"""Multiline grouping: the configuration and the line classifier (see the package docstring).

Used by the pure-Python twin; ``_cparser.pyx`` mirrors ``first_state``, ``next_state``
and ``error_fields`` for the built-in rules (start patterns stay in the twin). Everything
here works on one line at a time (without its line break), so grouping never depends on
how the file was chunked.
"""

from __future__ import annotations

import re
from typing import Any

# Group states.
NORMAL = 0  # one line so far: a Traceback header or a Java frame may still follow
FRAMES = 1  # inside a Python traceback's frames
EXC = 2  # after the exception line of a Python traceback
CHAIN = 3  # after "During handling ..." / "The above exception ..."
GROUP = 4  # inside an exception group's tree (every line indented)
JAVA = 5  # inside a Java stack trace
START = 6  # start-pattern mode

TB_HEADER = b"Traceback (most recent call last):"
EG_HEADER = b"  + Exception Group Traceback (most recent call last):"
CHAIN_PHRASES = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)

DEFAULT_MAX_LINES = 500
DEFAULT_MAX_BYTES = 1048576
DEFAULT_TIMEOUT_MS = 2000

_PY_EXC = re.compile(rb"([A-Za-z_][\w.]*)(?:: ?(.*))?", re.S)
_JAVA_EXC = re.compile(rb"(?:^|[\s\"'(])((?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*)(?::\s*(.*))?$", re.S)


class Config:
    """``multiline=`` checked: ``start`` (a compiled bytes regex or None for the built-in
    rules), ``max_lines``, ``max_bytes``, ``timeout_ms``."""

    __slots__ = ("max_bytes", "max_lines", "start", "timeout_ms")

    def __init__(self, start: re.Pattern[bytes] | None, max_lines: int, max_bytes: int,
                 timeout_ms: int) -> None:
        self.start = start
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout_ms = timeout_ms


def parse_config(value: Any) -> Config | None:
    """None for "none"; else a :class:`Config`. ValueError/TypeError name the bad key."""
    if value is None or value == "none":
        return None
    if value == "auto":
        return Config(None, DEFAULT_MAX_LINES, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS)
    if not isinstance(value, dict):
        raise ValueError(f'multiline must be "none", "auto" or a mapping, not {value!r}')
    unknown = set(value) - {"start", "max_lines", "max_bytes", "timeout_ms"}
    if unknown:
        raise ValueError(f"multiline: unknown key {sorted(unknown)[0]!r}")
    start = value.get("start")
    pattern = None
    if start is not None:
        if not isinstance(start, str):
            raise TypeError(f"multiline.start must be a str, not {type(start).__name__}")
        try:
            pattern = re.compile(start.encode("utf-8"))
        except re.error as e:
            raise ValueError(f"multiline.start: invalid regex: {e}") from None
    nums = []
    for key, default, low in (("max_lines", DEFAULT_MAX_LINES, 1), ("max_bytes", DEFAULT_MAX_BYTES, 1),
                              ("timeout_ms", DEFAULT_TIMEOUT_MS, 0)):
        v = value.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"multiline.{key} must be an int, not {type(v).__name__}")
        if v < low:
            raise ValueError(f"multiline.{key} must be >= {low}, not {v}")
        nums.append(v)
    return Config(pattern, nums[0], nums[1], nums[2])


def first_state(cfg: Config, line: bytes) -> int:
    """The state of a group that ``line`` (not empty) starts."""
    if cfg.start is not None:
        return START
    if line == TB_HEADER:
        return FRAMES
    if line == EG_HEADER:
        return GROUP
    return NORMAL


def _indented(line: bytes) -> bool:
    return line[0] in (32, 9)


def next_state(cfg: Config, state: int, line: bytes) -> int:
    """The group's state once ``line`` (not empty) is appended, or -1: ``line`` starts a new group."""
    if state == START:
        return -1 if cfg.start.search(line) else START  # type: ignore[union-attr]
    if state == NORMAL:
        if line == TB_HEADER:
            return FRAMES
        if line == EG_HEADER:
            return GROUP
        if line.startswith(b"\tat "):
            return JAVA
        return -1
    if state == FRAMES:
        return FRAMES if _indented(line) else EXC
    if state == EXC:
        if _indented(line):
            return EXC
        return CHAIN if line in CHAIN_PHRASES else -1
    if state == CHAIN:
        return FRAMES if line == TB_HEADER else GROUP if line == EG_HEADER else -1
    if state == GROUP:
        if line in CHAIN_PHRASES:
            return CHAIN
        return GROUP if _indented(line) else -1
    if state == JAVA:
        return JAVA if line.startswith((b"\t", b"Caused by: ")) else -1
    return -1


def error_fields(lines: list[bytes], java: bool, state0: int = NORMAL) -> tuple[bytes | None, bytes | None, int]:
    """(type, message, index of the first stack-trace line) of a grouped trace.

    Python: the trace starts at the first header line; the exception is the last line
    at column 0 after frames (with the indented lines right after it), or, when the
    last part is an exception group, its first ``  | Name: ...`` line. Java: the trace is
    the whole event; the exception is the last qualified name (``a.b.C`` with an optional
    ``: message``) at the end of the first line.
    """
    if java:
        m = _JAVA_EXC.search(lines[0])
        if m is None:
            return None, None, 0
        return m.group(1), m.group(2) or b"", 0
    first = -1 if state0 == NORMAL else 0
    exc = -1
    exc_end = -1
    state = state0
    found = False
    for i, line in enumerate(lines):
        if not line:
            continue
        if state in (NORMAL, CHAIN):
            if line == TB_HEADER:
                state = FRAMES
            elif line == EG_HEADER:
                state = GROUP
                exc = -1
                found = False
            if first < 0 and state != NORMAL:
                first = i
            continue
        if state == FRAMES:
            if not _indented(line):
                state = EXC
                exc, exc_end = i, i + 1
        elif state == EXC:
            if line in CHAIN_PHRASES:
                state = CHAIN
            elif exc_end == i:
                exc_end = i + 1
        elif state == GROUP:
            if line in CHAIN_PHRASES:
                state = CHAIN
            elif not found and line.startswith(b"  | ") and len(line) > 4 and line[4] not in (32, 9):
                found = True
                exc, exc_end = i, i + 1
                lines = [*lines[:i], line[4:], *lines[i + 1:]]
    if exc < 0:
        return None, None, max(first, 0)
    m = _PY_EXC.fullmatch(b"\n".join(lines[exc:exc_end]))
    if m is None:
        return None, b"\n".join(lines[exc:exc_end]), max(first, 0)
    return m.group(1), m.group(2) or b"", max(first, 0)
