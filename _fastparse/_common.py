"""Pieces shared by both parser implementations.

Everything here runs once per parser or once per ``feed()`` call, never once per line:
the constant JSON fragments of an event, the per-feed timestamp and index strings, the
tag lists and the :class:`Batch` result type. Because both twins take these bytes from
the same place, only the per-line work (splitting, escaping, number formatting) has to
be kept identical by hand.
"""

from __future__ import annotations

import time
from array import array
from typing import Any

from orjson import dumps as _json_dumps

# Tag bits, in the order the tags appear in a document.
TAG_TRUNCATED = 1
TAG_INVALID_UTF8 = 2
TAG_PARSE_ERROR = 4
TAG_INCOMPLETE = 8
TAG_NAMES = ("truncated", "invalid_utf8", "parse_error", "incomplete")


def _tags_fragment(mask: int) -> bytes:
    names = [n for bit, n in enumerate(TAG_NAMES) if mask & (1 << bit)]
    if not names:
        return b""
    return b',"tags":[' + b",".join(b'"' + n.encode() + b'"' for n in names) + b"]"


#: ``TAGS[mask]`` is the ``,"tags":[...]`` fragment for that combination of tag bits.
TAGS: tuple[bytes, ...] = tuple(_tags_fragment(m) for m in range(16))


def labels_fragment(labels: dict[str, str] | None) -> bytes:
    """``,"labels":{...}`` (in the given order), or nothing for no labels."""
    if not labels:
        return b""
    return b',"labels":{' + b",".join(json_string(k) + b":" + json_string(v) for k, v in labels.items()) + b"}"


def check_labels(labels: Any) -> dict[str, str] | None:
    """``labels=`` checked: a mapping of str to str (ECS ``labels`` are keyword strings)."""
    if labels is None:
        return None
    if not isinstance(labels, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                               for k, v in labels.items()):
        raise TypeError("labels must be a dict of non-empty str -> str")
    return dict(labels)


#: ``ev_level`` codes: index into this tuple.
LEVEL_NAMES = ("none", "trace", "debug", "info", "warning", "error", "critical", "other")
LEVEL_NONE, LEVEL_OTHER = 0, 7
#: lower-cased level text -> code; any other non-empty text is "other"
LEVEL_CODES = {b"trace": 1, b"debug": 2, b"info": 3, b"warning": 4, b"warn": 4, b"error": 5,
               b"critical": 6, b"fatal": 6}
#: codes from which on an event is an error event
LEVEL_ERROR = 5


def level_code(text: bytes | None) -> int:
    """The ``ev_level`` code of a ``log.level`` value (ASCII case-insensitive)."""
    if not text:
        return LEVEL_NONE
    return LEVEL_CODES.get(text.lower(), LEVEL_OTHER) if len(text) <= 8 else LEVEL_OTHER


def json_string(s: str) -> bytes:
    """``s`` as a JSON string literal (quotes included), UTF-8, escaped like messages are.

    orjson escapes exactly the set the message escaper does (``"``, ``\\``, short escapes
    for ``\\b\\f\\n\\r\\t``, ``\\u00xx`` for other controls, everything else verbatim).
    Lone surrogates (file names that are not UTF-8, decoded with surrogateescape) cannot
    be encoded: their original bytes are decoded again with U+FFFD replacement.
    """
    try:
        return _json_dumps(s)
    except (TypeError, UnicodeEncodeError):
        pass
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogatepass")
    return _json_dumps(raw.decode("utf-8", "replace"))


def json_string_body(s: str) -> bytes:
    """``json_string(s)`` without the surrounding quotes."""
    return json_string(s)[1:-1]


class Fragments:
    """The constant bytes of every event of one parser, JSON-escaped once.

    An event is, with ``<...>`` filled in per line and ``[...]`` present only sometimes::

        action_head <id> action_tail
        doc_head "<message>" log_head <offset> [original_length <N>] doc_tail [tags] doc_end

    ``action_head`` and ``doc_head`` depend on the feed's time (index name, timestamp)
    and come from :meth:`heads`; the rest is fixed for the parser's lifetime.
    """

    __slots__ = ("action_tail", "doc_end", "doc_tail", "id_sep", "log_head",
                 "original_length", "tags")

    def __init__(self, *, input_id: str, path: str, host_name: str, id_prefix: str,
                 labels: dict[str, str] | None = None, id_key: bytes | None = None) -> None:
        # contract v1: <prefix>.<hex offset>; v2 (id_key): the 22-character hash alone
        self.id_sep = b'","_id":"' + (b"" if id_key else json_string_body(id_prefix) + b".")
        self.action_tail = b'"}}\n'
        self.log_head = b',"log":{"file":{"path":' + json_string(path) + b'},"offset":'
        self.original_length = b',"original_length":'
        self.doc_tail = (b'},"host":{"name":' + json_string(host_name)
                         + b'},"event":{"dataset":' + json_string(input_id) + b"}"
                         + labels_fragment(labels))
        self.tags = TAGS
        self.doc_end = b"}\n"

    def heads(self, index: bytes, timestamp: bytes) -> tuple[bytes, bytes]:
        """``(action_head, doc_head)`` for one feed; ``doc_head`` ends before the message's quote."""
        return (b'{"create":{"_index":"' + index + self.id_sep,
                b'{"@timestamp":"' + timestamp + b'","message":')


def format_ms(ms: int) -> bytes:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of a time in ms since the epoch (UTC)."""
    sec, milli = divmod(int(ms), 1000)
    t = time.gmtime(sec)
    return b"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, milli)


class EventTime:
    """Formats a read time (ms since the epoch) into the index name and ``@timestamp``.

    Called once per feed; the last result is cached, and so is the last index name (it
    changes at most once a second, in practice once a day). ``index_for(ms)`` names the
    index of an event's own time, cached per period of the pattern's finest directive
    (a day for ``%Y.%m.%d``): no strftime per line.
    """

    __slots__ = ("_index", "_ms", "_periods", "_result", "_sec", "granularity", "pattern")

    def __init__(self, pattern: str) -> None:
        from ._formats import index_granularity
        self.pattern = pattern
        self.granularity = index_granularity(pattern)
        self._ms: int | None = None
        self._result: tuple[bytes, bytes] = (b"", b"")
        self._sec: int | None = None
        self._index = b""
        self._periods: dict[int, bytes] = {}

    def index_for(self, ms: int) -> bytes:
        """The index name (JSON-escaped, no quotes) of an event at ``ms``."""
        period = ms // self.granularity
        name = self._periods.get(period)
        if name is None:
            if len(self._periods) > 1024:
                self._periods.clear()
            name = json_string_body(time.strftime(self.pattern, time.gmtime(period * self.granularity // 1000)))
            self._periods[period] = name
        return name

    def get(self, ms: int) -> tuple[bytes, bytes]:
        """``(index name JSON-escaped without quotes, "YYYY-MM-DDTHH:MM:SS.mmmZ")``."""
        if ms == self._ms:
            return self._result
        sec, milli = divmod(int(ms), 1000)
        t = time.gmtime(sec)
        if sec != self._sec:
            self._index = json_string_body(time.strftime(self.pattern, t))
            self._sec = sec
        ts = b"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, milli)
        self._result = (self._index, ts)
        self._ms = ms
        return self._result


#: The per-event arrays of a :class:`Batch`: (name, ``array`` typecode).
ARRAYS: tuple[tuple[str, str], ...] = (
    ("ev_time", "q"), ("ev_level", "B"), ("ev_class", "B"), ("ev_bytes", "I"),
    ("m_item", "I"), ("m_id", "H"), ("m_value", "d"),
    ("p_item", "I"), ("p_label", "b"), ("p_pred", "b"), ("p_score", "d"),
)


class EventArrays:
    """The arrays of one batch being built (the twin appends to them per event)."""

    __slots__ = tuple(name for name, _ in ARRAYS)

    ev_time: array[int]
    ev_level: array[int]
    ev_class: array[int]
    ev_bytes: array[int]
    m_item: array[int]
    m_id: array[int]
    m_value: array[float]
    p_item: array[int]
    p_label: array[int]
    p_pred: array[int]
    p_score: array[float]

    def __init__(self) -> None:
        for name, code in ARRAYS:
            setattr(self, name, array(code))


class Batch:
    """What one ``feed()``, ``flush()`` or ``expire()`` produced. See the package docstring.

    Besides the body and item bookkeeping, per-event arrays (``array.array``, item order):
    ``ev_time`` ``ev_level`` ``ev_class`` ``ev_bytes``, the metric values (``m_item``
    ``m_id`` ``m_value``) and prediction records (``p_item`` ``p_label`` ``p_pred``
    ``p_score``), so that counters are computed per batch without parsing the body.
    """

    __slots__ = ("body", "bytes", "count", "end_offset", "item_ends", "item_offsets",
                 "lines", "start_offset", *(name for name, _ in ARRAYS))

    ev_time: array[int]
    ev_level: array[int]
    ev_class: array[int]
    ev_bytes: array[int]
    m_item: array[int]
    m_id: array[int]
    m_value: array[float]
    p_item: array[int]
    p_label: array[int]
    p_pred: array[int]
    p_score: array[float]

    def __init__(self, body: bytes, count: int, item_ends: bytes, item_offsets: bytes,
                 start_offset: int, end_offset: int, lines: int,
                 arrays: EventArrays | None = None) -> None:
        self.body = body
        self.count = count
        self.item_ends = item_ends
        self.item_offsets = item_offsets
        self.start_offset = start_offset
        self.end_offset = end_offset
        self.lines = lines
        self.bytes: int = end_offset - start_offset
        if arrays is None:
            for name, code in ARRAYS:
                setattr(self, name, array(code))
        else:
            for name, _ in ARRAYS:
                setattr(self, name, getattr(arrays, name))

    def __repr__(self) -> str:
        return (f"<Batch count={self.count} lines={self.lines} "
                f"offsets={self.start_offset}..{self.end_offset} body={len(self.body)}B>")


def check_args(input_id: str, path: str, host_name: str, id_prefix: str, index_pattern: str,
               start_offset: int, max_line_bytes: int, timezone: str | None = None,
               id_key: bytes | None = None) -> None:
    if id_key is not None and (not isinstance(id_key, bytes) or not id_key):
        raise TypeError("id_key must be non-empty bytes or None")
    if timezone is not None and not isinstance(timezone, str):
        raise TypeError(f"timezone must be a str or None, not {type(timezone).__name__}")
    for name, value in (("input_id", input_id), ("path", path), ("host_name", host_name),
                        ("id_prefix", id_prefix), ("index_pattern", index_pattern)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    for what, number in (("start_offset", start_offset), ("max_line_bytes", max_line_bytes)):
        if not isinstance(number, int) or isinstance(number, bool):
            raise TypeError(f"{what} must be an int, not {type(number).__name__}")
    if start_offset < 0:
        raise ValueError(f"start_offset must be >= 0, not {start_offset}")
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be >= 1, not {max_line_bytes}")
