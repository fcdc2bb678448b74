"""The pure-Python twin's fast path for the program formats: a program as one regex.

``_pyparser.match`` runs a :class:`~._formats.Program` with a backtracking matcher (with a
memo of failed states and a step budget). In Python it costs tens of microseconds a line;
``re`` runs the same search in C. :func:`program_regex` compiles a program into an
anchored regex in which every choice is *atomic* and is the matcher's first viable one:

* a lazy capture before a literal: ``(?>(.*?)lit)``, the literal's first occurrence (the
  matcher tries the occurrences in order); before a whitespace run: ``(?>(.*?)[ws]++)``,
  the first whitespace byte and its whole run (the matcher tries ends from the shortest
  up, skipping those not followed by whitespace, and a run from the longest down);
  before the end of the line ``(.*)\\Z`` (its only choice); before an optional group the
  first position where the group or what follows it can start (``(?=...)``), or the
  empty capture when a capture could start there;
* a dissect capture (``MODE_FIRST``) ends at the first occurrence of the next literal;
  a level capture takes the first of ``LEVEL_WORDS`` found there; a time capture takes
  ``ts_shape_len``'s shape where the line has one, and only then, else it is lazy;
* a whitespace run alone is ``[ws]++``; an optional group is entered when its inside
  matches (atomically) and skipped only where its first operation cannot match
  (``(?!...)``: the matcher's attempt inside fails at once there); when that first
  operation is not known the group is required.

Why a match of this regex is the matcher's match: the matcher explores its choices
depth-first in the same order, and every choice on the regex's path is the first one
whose subtree is not dead at once; since that path reaches the end of the line, it is
the matcher's first successful path. The matcher's steps along it are one per operation
plus a few per position a lookahead capture passes over, which ``max_len`` keeps inside
its budget. When the atomic regex does not match, the line may still match by backing
up, or not at all: the caller runs the matcher. ``tests/test_twin_fastpath.py`` checks
regex == matcher on random programs and lines.
"""

from __future__ import annotations

import re

from ._formats import (
    LEVEL_WORDS,
    MAX_MATCH_BYTES,
    MODE_FIRST,
    MODE_LEVEL,
    MODE_TIME,
    OP_CAP,
    OP_END,
    OP_LIT,
    OP_OPT,
    OP_OPTEND,
    OP_WS,
    WHITESPACE,
    Program,
)

_WS = b"[" + b"".join(re.escape(bytes([c])) for c in WHITESPACE) + b"]"
_TS_HEAD = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}"
#: ``ts_shape_len``'s shape: the head, a fraction, a zone (Z, +hh:mm, +hhmm, +hh)
_TS_SHAPE = _TS_HEAD + rb"(?:[.,][0-9]+)?(?:Z|[-+][0-9]{2}(?::[0-9]{2}|[0-9]{2})?)?"
_LEVELS = b"|".join(re.escape(w) for w in LEVEL_WORDS)

__all__ = ["MAX_MATCH_BYTES", "ProgramRegex", "program_regex"]


class ProgramRegex:
    """A program's atomic regex, the slot of each of its groups, and the longest line on
    which a match of it is the matcher's (see ``program_source``)."""

    __slots__ = ("group_slots", "max_len", "regex")

    def __init__(self, regex: re.Pattern[bytes], group_slots: tuple[int, ...], max_len: int) -> None:
        self.regex = regex
        self.group_slots = group_slots
        self.max_len = max_len


def _first(ops: list[tuple[int, int, int]], lits: list[bytes], e: int) -> list[bytes] | None:
    """Regexes, one of which matches where any path through ``ops[e:]`` starts to match
    (its first literal, a whitespace byte, the end), or None (a capture can start it)."""
    op, a, _ = ops[e]
    if op == OP_LIT:
        return [re.escape(lits[a])]
    if op == OP_WS:
        return [_WS]
    if op == OP_END:
        return [rb"\Z"]
    if op == OP_OPTEND:
        return _first(ops, lits, e + 1)
    if op == OP_OPT:
        inside, after = _first(ops, lits, e + 1), _first(ops, lits, a)
        return None if inside is None or after is None else inside + after
    return None


def _calls(ops: list[tuple[int, int, int]], e: int) -> int:
    """Calls the matcher makes from ``ops[e]`` at a position where no path through it can
    start (see ``_first``)."""
    op, a, _ = ops[e]
    if op == OP_OPTEND:
        return 1 + _calls(ops, e + 1)
    if op == OP_OPT:
        return 1 + _calls(ops, e + 1) + _calls(ops, a)
    return 1


def program_source(prog: Program, budget: int = 20000) -> tuple[bytes, list[int], int] | None:
    """The atomic regex source of ``prog``, the slot of each group and the longest line its
    matches may be trusted on; None for a program shape it does not handle.

    Every choice the regex makes is the matcher's first viable one, so a match is the
    matcher's first path (the module docstring): a lazy capture before something that is
    not a literal or whitespace ends at the first position where what follows can start
    (``(?=...)`` of ``_first``), or, when a capture can follow, is empty; an optional group
    is skipped only where its first operation cannot match (``(?!...)``), and is required
    when that is not known. The matcher's steps on such a path: one per operation, and
    for each lookahead capture a few per position it skips (``_calls``): ``max_len`` keeps
    that within ``budget``."""
    ops, lits = prog.ops, prog.lits
    out: list[bytes] = []
    slots: list[int] = []
    skips: list[list[bytes] | None] = []  # per open group: what its inside starts with
    per_pos = 0  # matcher calls per position skipped by lookahead captures
    e = 0
    n = len(ops)
    while e < n:
        op, a, b = ops[e]
        if op == OP_LIT:
            out.append(re.escape(lits[a]))
        elif op == OP_WS:
            out.append(_WS + b"++")
        elif op == OP_END:
            out.append(rb"\Z")
        elif op == OP_OPT:
            out.append(b"(?>(?:")
            skips.append(_first(ops, lits, e + 1))
        elif op == OP_OPTEND:
            if not skips:
                return None
            g = skips.pop()
            out.append(b")" if g is None else b")|(?!" + b"|".join(g) + b"))")
            if g is None:
                out.append(b")")
        elif op == OP_CAP:
            if e + 1 >= n:
                return None
            nop, na, _ = ops[e + 1]
            slots.append(a)
            if nop == OP_LIT:
                nxt, eat = re.escape(lits[na]), True
            elif nop == OP_WS:
                nxt, eat = _WS + b"++", True
            elif nop == OP_END:
                nxt, eat = b"", False
            else:
                f = _first(ops, lits, e + 1)
                nxt, eat = (b"" if f is None else b"(?=" + b"|".join(f) + b")"), False
                if f is not None:
                    per_pos += _calls(ops, e + 1)
            if b == MODE_LEVEL:
                out.append(b"((?>" + _LEVELS + b"))")
            elif nop == OP_END and b != MODE_TIME:
                out.append(b"(.*)")
            elif b == MODE_FIRST:
                if nop != OP_LIT:
                    return None
                out.append(b"(?>(.*?)" + nxt + b")")
                e += 1
            elif b == MODE_TIME:
                lazy = b".*" if nop == OP_END else b".*?"
                out.append(b"(?>((?=" + _TS_HEAD + b")(?>" + _TS_SHAPE + b")|(?!" + _TS_HEAD + b")"
                           + lazy + b")" + nxt + b")")
                e += eat
            else:
                out.append(b"(?>(.*?)" + nxt + b")")
                e += eat
        else:
            return None
        e += 1
    if skips or not ops or ops[-1][0] != OP_END:
        return None
    max_len = MAX_MATCH_BYTES
    if per_pos:
        max_len = min(max_len, (budget - 16 * n) // per_pos - 1)
    return b"".join(out), slots, max_len


def program_regex(prog: Program, budget: int = 20000) -> ProgramRegex | None:
    src = program_source(prog, budget)
    if src is None or src[2] < 0:
        return None
    return ProgramRegex(re.compile(src[0], re.S), tuple(src[1]), src[2])
