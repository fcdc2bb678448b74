"""Log lines to Elasticsearch ``_bulk`` bodies, fast.

Two implementations with byte-identical output: ``_cparser`` (Cython, built by
``setup.py``) and ``_pyparser`` (pure Python). The compiled one is used unless it is
missing or the environment variable ``SHIPPER_NO_EXTENSIONS`` is set (non-empty, not
"0"). ``IMPLEMENTATION`` says which one ``Parser`` is: "cython" or "python".

A :class:`Parser` is fed the bytes appended to one file, in any chunking::

    p = Parser(input_id="trainer", path="/logs/train.log", host_name="gpu1",
               id_prefix="a1b2", index_pattern="shipper-logs-trainer-%Y.%m.%d")
    batch = p.feed(chunk, read_time_ms)   # complete lines -> events
    batch = p.flush(read_time_ms)         # the partial last line, tagged "incomplete"

Each non-empty line (without its ``\\n`` and one ``\\r`` before it) becomes one item of
the body, an action line and a document line::

    {"create":{"_index":"<index>","_id":"<id_prefix>.<line offset, hex>"}}
    {"@timestamp":"2026-11-25T07:30:01.123Z","message":"<line>","log":{"file":{"path":"..."},
     "offset":<line offset>[,"original_length":<n>]},"host":{"name":"..."},
     "event":{"dataset":"<input_id>"}[,"tags":["truncated","invalid_utf8","incomplete"]]}

The timestamp is the feed's read time, the index ``index_pattern`` formatted with its UTC
date. Invalid UTF-8 is replaced like ``bytes.decode("utf-8", "replace")`` does (tag
"invalid_utf8"); a line longer than ``max_line_bytes`` keeps its first ``max_line_bytes``
bytes, less up to 3 so as not to cut a UTF-8 character (tag "truncated", and the full
length as ``original_length``); the rest is counted, not buffered. A partial last line is
held across feeds (at most ``max_line_bytes + 4`` bytes of it); ``flush()`` emits it
as is (no ``\\r`` removed) tagged "incomplete".

A :class:`Batch` carries the body, ``count`` items, ``item_ends`` and ``item_offsets``
(native int64 arrays: where item i ends in the body, at which file offset its line
starts), the file range consumed (``start_offset``..``end_offset``, ``bytes``) and the
number of lines consumed (``lines``, empty lines included).
"""

from __future__ import annotations

import os

from . import _pyparser
from ._common import Batch

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS", "Batch", "Parser"]

#: SHIPPER_NO_EXTENSIONS set (non-empty, not "0"): the compiled parser is not even imported.
NO_EXTENSIONS = os.environ.get("SHIPPER_NO_EXTENSIONS", "") not in ("", "0")
#: Why the compiled parser could not be imported (None: it was, or was not tried).
CPARSER_IMPORT_ERROR: ImportError | None = None

Parser: type[_pyparser.Parser]
if NO_EXTENSIONS:
    Parser = _pyparser.Parser
    IMPLEMENTATION = "python"
else:
    try:
        from ._cparser import Parser  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError as e:  # not built: the pure-Python twin does the same, slower
        CPARSER_IMPORT_ERROR = e
        Parser = _pyparser.Parser
        IMPLEMENTATION = "python"
