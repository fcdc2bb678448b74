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

The `_id` is contract v1's ``<id_prefix>.<hex offset>``, or with ``id_key=`` (bytes,
from ``_ids.id_key``) contract v2's 22-character base64url BLAKE2b-128 of the key and the
event's start offset (``_ids.event_id_from_key``; in C one compression per event,
``blake2b.h``). The timestamp is the feed's read time, the index ``index_pattern`` formatted with its UTC
date. Invalid UTF-8 is replaced like ``bytes.decode("utf-8", "replace")`` does (tag
"invalid_utf8"); a line longer than ``max_line_bytes`` keeps its first ``max_line_bytes``
bytes, less up to 3 so as not to cut a UTF-8 character (tag "truncated", and the full
length as ``original_length``); the rest is counted, not buffered. A partial last line is
held across feeds (at most ``max_line_bytes + 4`` bytes of it); ``flush()`` emits it
as is (no ``\\r`` removed) tagged "incomplete".

Formats (``format=``; ``timezone=`` an IANA name or None for the host's zone;
``json_root=``). A line that a structured format does not parse is shipped as above with
the tag "parse_error" (tag order: truncated, invalid_utf8, parse_error, incomplete),
except in ``python``, where such lines (traceback lines) are plain and untagged:

- ``plain``: the document above.
- ``python``: per line the first of ``%(asctime)s - %(name)s - %(levelname)s - %(message)s``,
  ``%(asctime)s %(levelname)s %(name)s: %(message)s``, ``%(levelname)s:%(name)s:%(message)s``
  (levelname one of DEBUG INFO WARNING WARN ERROR CRITICAL FATAL NOTSET TRACE).
- a logging layout (has ``%(``): ``levelname`` -> ``log.level``, ``name`` -> ``log.logger``,
  ``message`` -> ``message``, ``filename`` -> ``log.origin.file.name``, ``lineno`` ->
  ``log.origin.file.line``, ``funcName`` -> ``log.origin.function``, ``module`` ->
  ``log.origin.module`` (not ECS), ``process`` -> ``process.pid``, ``processName`` ->
  ``process.name``, ``thread`` -> ``process.thread.id``, ``threadName`` ->
  ``process.thread.name``; ``asctime``/``created`` feed ``@timestamp`` only; any other
  attribute lands top-level under its name. Numeric ones are JSON numbers, ``null`` when
  not digits. ``%(asctime)s`` takes a ``YYYY-mm-dd HH:MM:SS[,.frac][zone]`` when one is
  there, else matches like any field. Runs of spaces match runs of whitespace.
- a LogPAI template (has ``<Field>``), semantics as the LogHub README: ``<F>`` lazy, spaces
  match ``\\s+``, ``\\`` escapes, ``( ... )?`` optional (greedy), anchored at both ends;
  other regex syntax is literal text. Captures are stripped of ASCII whitespace and land
  top-level under their names, ``null`` inside an optional part that did not match;
  ``Content``/``content`` is ``message`` (not repeated); the first of ``Level``/``level``/
  ``levelname`` also fills ``log.level``, as written (not lower-cased).
- a dissect pattern (has ``%{``): each field up to the first occurrence of the literal
  after it, the last one to the end; ``%{}`` and ``%{?name}`` skip; the line must match
  whole. Not done: ``+`` append, ``*``/``&`` reference keys, ``->`` padding, ``/n``
  (refused with ValueError). Captures as for templates (``Content`` is the message).
- ``json``: ``message``/``msg`` -> ``message`` (else the whole line), ``level``/``log.level``
  -> ``log.level``, the first of ``@timestamp``/``timestamp``/``time``/``ts`` -> ``@timestamp``
  (removed when it parses), the rest as ``"json":{...}``; with ``json_root`` the rest at
  the root, except keys named like shipper's root fields (and ``json``), which stay under
  ``json``. Not an object, or invalid: ``parse_error``.
- ``logfmt``: ``k=v``, ``k="quoted \\"v\\""`` (backslash escapes of ``"`` ``\\\\`` n t r undone), a
  bare ``k`` is ``"true"``. The first ``msg``/``message`` -> ``message``, ``level``/``lvl`` ->
  ``log.level``, the first ``time``/``ts``/``timestamp`` -> ``@timestamp`` (kept in logfmt when
  it does not parse); the others as strings under ``"logfmt":{...}`` (ECS has no place for
  arbitrary pairs, and ``labels`` would mix them with the user's own labels), a repeated
  key keeps its first value, at most 128 pairs. No ``=`` at all: ``parse_error``.

A capture named ``@timestamp``, ``message``, ``log``, ``host``, ``event``, ``error``,
``metrics`` or ``tags`` is refused (ValueError naming it) when the Parser is made.

Document order: ``@timestamp``, ``message``, ``log`` (file, offset, original_length, then
level/logger/origin), ``host``, ``event``, then ``process``, captures, ``json``/``logfmt``, ``tags``.

Timestamps. ``@timestamp`` comes from the line when the format finds a time there
(layouts: asctime; templates: the first that parses of Time; Date+Time; Month+Day+Time;
Month+Date+Time; Date+Day+Time; Timestamp): ISO 8601 with ``T`` or a space, ``,``/``.``/
``:`` fractions, zone ``Z``/``UTC``/``+hh``/``+hhmm``/``+hh:mm`` or none; ``yy/mm/dd``,
``YYYY.mm.dd``, ``yymmdd``/``YYYYmmdd`` with ``HHMMSS``, ``YYYY-mm-dd-HH.MM.SS.frac``; month
names (``Dec 10 06:55:46``, ctime with the year after the time); 10-digit epoch seconds,
13-digit ms; JSON numbers (s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns). Without a year
(syslog, ``mm-dd``) the read time's year, or the year before when that would put the
time more than 7 days after the read time (a December line read in January). Zone-less
times are in ``timezone``: offsets from a table sampled once per zone 1970-2100; a local
time in a DST change resolves as ``u = L - off(L - off(L))``. Otherwise the read time.
The index is formatted from the event's own UTC time, cached per period of the pattern's
finest directive (per day for ``%Y.%m.%d``).

Matching: one backtracking matcher (leftmost-first, as Python's ``re`` does with the
equivalent regex) over a compiled program, with a memo of failed (op, position) states
and a budget of 20,000 steps per line; lines over 4096 bytes (after truncation) or past
the budget do not match. Both twins run the same algorithm, so they agree on every line.
In the compiled parser plain and the program formats (python, layouts, templates,
dissect) make no Python object per line (one GIL round trip per new index period);
``json`` and ``logfmt`` are handed to the pure-Python twin (orjson per line for json).

Multiline (``multiline=``: ``"none"``, the constructor's default; ``"auto"``, the agent's;
or a dict ``{"start": REGEX, "max_lines": 500, "max_bytes": 1048576, "timeout_ms": 2000}``,
every key optional, no ``start``: the auto rules with those limits). Lines are grouped
into one event; lines are decided one at a time, so chunking never matters:

- auto: a line followed by ``Traceback (most recent call last):`` or ``  + Exception Group
  Traceback (most recent call last):`` (exactly, at column 0 / as CPython indents it)
  starts a Python traceback, which goes on while lines are indented (frames, source,
  ``^^^^``/``~~~~`` position markers, the ``  |`` lines of exception groups); the first
  line at column 0 after frames is the exception line; indented lines right after it
  continue its message; ``During handling of the above exception, another exception
  occurred:`` / ``The above exception was the direct cause of the following exception:``
  followed by a new header chains. Any other line at column 0 ends the traceback and
  starts a new event (so a timestamped log line after the exception line is a new event;
  a message continued at column 0 after the exception line is one too). Java: a line
  followed by ``\tat ...`` starts a stack trace that goes on with lines starting with a
  tab (``\tat``, ``\t... N more``, ``\tSuppressed:``) or ``Caused by: ``. A traceback or
  header line with nothing before it starts its own event. Nothing else is grouped.
- start: a line where ``re.search(start)`` finds a match (bytes regex; anchor with ``^``)
  begins a new event; any other line joins the open event (or begins one if none is open).
- Empty lines between grouped lines belong to the event; trailing ones do not (an empty
  line is kept aside until the next non-empty line says whether the event goes on).
- An event with more lines than ``max_lines`` or a message longer than ``max_bytes`` (its
  lines, each already cut at ``max_line_bytes``, joined with ``\n``) is emitted with the tag
  "truncated" and the line that did not fit begins the next event, in the same state
  (a traceback's remaining frames keep being grouped, into further events).
- The event: ``message`` is the first line's message (the format parses the first line
  as usual: captures, level, time) then ``\n`` and the other lines verbatim (each without
  its ``\r``); ``log.offset``/``_id`` the first line's offset; a line cut at
  ``max_line_bytes`` tags it "truncated" with ``log.original_length`` the length of all
  its lines joined. A grouped Python traceback or Java trace adds, after ``event``,
  ``"error":{"type":..,"message":..,"stack_trace":..}``: ``stack_trace`` the lines from the
  first traceback header (Java: the whole event); ``type``/``message`` from the last
  exception line (``torch.cuda.OutOfMemoryError: CUDA out of memory...`` -> type and the
  text after ``: ``, plus its indented continuation lines; an exception group's first
  ``  | Name: text`` line; Java: the last dotted name, with ``: message``, ending the first
  line), absent when none is found. A single-line event is exactly what ``"none"`` makes.
- The open event is held (bytes bounded by ``max_bytes`` plus the partial line) until a
  line shows it ended: with ``auto`` every last line is held, since a traceback may
  follow. ``offset``, and so ``Batch.end_offset``, stays at the start of the open event,
  and ``pending`` counts the bytes from there: a checkpoint at ``end_offset`` re-reads it.
  Each event's ``@timestamp`` fallback and index use the read time of the feed that brought
  its first line. ``flush(t)`` emits the open event and the partial line (joined to the
  event when it continues it; "incomplete" only when the event's last line had no line
  break). ``expire(now_ms)`` emits the open event when ``now_ms`` is ``timeout_ms`` or more
  after the read time of the feed that brought its last line, and returns an empty
  batch otherwise (always, without grouping); ``feed`` never looks at time, so a replay
  with the same feeds and ``expire`` calls gives the same bytes. A restart at
  ``end_offset`` regroups the same way, except inside the rest of an event cut by the
  limits (its state is not in the checkpoint: those lines then group as if the file
  began there).
- The compiled parser groups by the built-in rules in C (plain and program formats: the
  open event in one buffer, no Python object per line; ``bench_parse.py --multiline
  auto``: about 4% slower than ``"none"`` for the ``python`` format, 15% for plain);
  a ``start`` pattern (a Python regex) and json/logfmt go through the pure-Python twin.

A :class:`Batch` carries the body, ``count`` items, ``item_ends`` and ``item_offsets``
(native int64 arrays: where item i ends in the body, at which file offset its line
starts), the file range consumed (``start_offset``..``end_offset``, ``bytes``) and the
number of lines consumed (``lines``, empty lines included). ``Parser.offset`` is where the next batch
starts (``start_offset + bytes`` of the last one) and ``pending`` the bytes fed past it.
"""

from __future__ import annotations

import os

from . import _pyparser
from ._common import ARRAYS, LEVEL_NAMES, Batch

__all__ = ["ARRAYS", "ID_CONTRACTS", "IMPLEMENTATION", "LEVEL_NAMES", "NO_EXTENSIONS", "Batch", "Parser"]

#: The `_id` contracts both parsers write: 1 (``id_prefix`` + "." + hex offset) and 2
#: (``id_key``: a per-event BLAKE2b-128, see ``_ids.py``). The registry reads this.
ID_CONTRACTS = (1, 2)

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
