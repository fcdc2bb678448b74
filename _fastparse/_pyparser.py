"""The pure-Python parser: the reference twin of ``_cparser.pyx``, byte for byte.

Used when the extension is not built or ``SHIPPER_NO_EXTENSIONS`` is set. Kept simple
(``bytes.split``, ``bytes.decode("utf-8", "replace")``, orjson for escaping, which
escapes exactly as the message rules say) with one fast path for the common line: short
enough, valid UTF-8, no tags. See the package docstring for the format.
"""

from __future__ import annotations

from array import array
from typing import Any

from ._common import (
    TAG_INCOMPLETE,
    TAG_INVALID_UTF8,
    TAG_TRUNCATED,
    Batch,
    EventTime,
    Fragments,
    _json_dumps,
    check_args,
)

__all__ = ["Batch", "Parser"]

_CR = 13


def _utf8_len(lead: int) -> int:
    """Length of the UTF-8 sequence a lead byte starts (0: not a multi-byte lead)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def cut_point(content: bytes, limit: int) -> int:
    """Where to cut an over-long line: ``limit``, or up to 3 bytes less so as not to split
    a valid UTF-8 sequence. ``content`` is the line (or at least its first limit+3 bytes)."""
    for back in (1, 2, 3):
        p = limit - back
        if p < 0:
            break
        b = content[p]
        if 0x80 <= b <= 0xBF:  # a continuation byte: look further back
            continue
        n = _utf8_len(b)
        if n > back and p + n <= len(content):
            try:
                content[p:p + n].decode("utf-8")
            except UnicodeDecodeError:
                break
            return p
        break
    return limit


def _esc(b: bytes) -> bytes:
    return b.replace(b"%", b"%%")


class Parser:
    """Turns appended log bytes into ``_bulk`` items. See the package docstring."""

    __slots__ = ("_action_head", "_cap", "_doc_head", "_frags", "_hold", "_last_cr", "_max",
                 "_offset", "_skip", "_time", "_times", "_tpl")

    def __init__(self, *, input_id: str, path: str, host_name: str, id_prefix: str,
                 index_pattern: str, start_offset: int = 0,
                 max_line_bytes: int = 1048576) -> None:
        check_args(input_id, path, host_name, id_prefix, index_pattern, start_offset,
                   max_line_bytes)
        self._frags = Fragments(input_id=input_id, path=path, host_name=host_name,
                                id_prefix=id_prefix)
        self._time = EventTime(index_pattern)
        self._times: tuple[bytes, bytes] | None = None
        self._action_head = b""
        self._doc_head = b""
        self._tpl = b""
        self._max = int(max_line_bytes)
        self._cap = self._max + 4  # bytes of a partial line held; beyond: counted only
        self._offset = int(start_offset)
        self._hold = bytearray()
        self._skip = 0  # bytes of the partial line past the held ones
        self._last_cr = False  # the partial line's last byte is "\r"

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def pending(self) -> int:
        return len(self._hold) + self._skip

    # -- per feed -------------------------------------------------------------------

    def _prepare(self, read_time_ms: int) -> None:
        times = self._time.get(read_time_ms)
        if times is self._times:
            return
        self._times = times
        f = self._frags
        self._action_head, self._doc_head = f.heads(*times)
        # One bytes-% template for the common event: (offset hex, message JSON, offset).
        self._tpl = (_esc(self._action_head) + b"%x" + _esc(f.action_tail + self._doc_head)
                     + b"%b" + _esc(f.log_head) + b"%d" + _esc(f.doc_tail + f.doc_end))

    def _event(self, content: bytes, length: int, off: int, tags: int) -> bytes:
        """The general event: ``content`` is the line, or its head when longer than held."""
        f = self._frags
        orig = b""
        if length > self._max:
            content = content[:cut_point(content, self._max)]
            tags |= TAG_TRUNCATED
            orig = f.original_length + b"%d" % length
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            text = content.decode("utf-8", "replace")
            tags |= TAG_INVALID_UTF8
        return b"".join((self._action_head, b"%x" % off, f.action_tail, self._doc_head,
                         _json_dumps(text), f.log_head, b"%d" % off, orig, f.doc_tail,
                         f.tags[tags], f.doc_end))

    def _hold_more(self, chunk: bytes) -> None:
        if not chunk:
            return
        room = self._cap - len(self._hold)
        if len(chunk) <= room:
            self._hold += chunk
        else:
            if room > 0:
                self._hold += chunk[:room]
            self._skip += len(chunk) - max(room, 0)
        self._last_cr = chunk[-1] == _CR

    def _take_held(self) -> tuple[bytes, int]:
        """The held partial line: (held head, full raw length); resets the holding state."""
        content = bytes(self._hold)
        raw = len(content) + self._skip
        self._hold = bytearray()
        self._skip = 0
        self._last_cr = False
        return content, raw

    def feed(self, data: Any, read_time_ms: int) -> Batch:
        if not isinstance(data, bytes):
            data = memoryview(data).tobytes()
        self._prepare(read_time_ms)
        start = off = self._offset
        out: list[bytes] = []
        ends = array("q")
        offs = array("q")
        size = 0
        lines = 0
        pos = 0

        if self._hold or self._skip:  # complete the line held from earlier feeds
            nl = data.find(b"\n")
            if nl < 0:
                self._hold_more(data)
                return Batch(b"", 0, b"", b"", start, start, 0)
            self._hold_more(data[:nl])
            cr = self._last_cr
            content, raw = self._take_held()
            length = raw - cr
            if length:
                item = self._event(content[:length], length, off, 0)
                out.append(item)
                size += len(item)
                ends.append(size)
                offs.append(off)
            off += raw + 1
            lines += 1
            pos = nl + 1

        last = data.rfind(b"\n")
        if last >= pos:
            tpl = self._tpl
            maxb = self._max
            dumps = _json_dumps
            event = self._event
            region = data[pos:last].split(b"\n")
            lines += len(region)
            for line in region:
                nxt = off + len(line) + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    if len(line) <= maxb:
                        try:
                            item = tpl % (off, dumps(line.decode("utf-8")), off)
                        except UnicodeDecodeError:
                            item = event(line, len(line), off, 0)
                    else:
                        item = event(line, len(line), off, 0)
                    out.append(item)
                    size += len(item)
                    ends.append(size)
                    offs.append(off)
                off = nxt
            pos = last + 1

        if pos < len(data):
            self._hold_more(data[pos:])
        self._offset = off
        return Batch(b"".join(out), len(ends), ends.tobytes(), offs.tobytes(), start, off, lines)

    def flush(self, read_time_ms: int) -> Batch:
        start = self._offset
        if not (self._hold or self._skip):
            return Batch(b"", 0, b"", b"", start, start, 0)
        self._prepare(read_time_ms)
        content, raw = self._take_held()
        item = self._event(content, raw, start, TAG_INCOMPLETE)
        self._offset = start + raw
        return Batch(item, 1, array("q", [len(item)]).tobytes(), array("q", [start]).tobytes(),
                     start, self._offset, 1)
