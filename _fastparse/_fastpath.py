"""The pure-Python twin's fast path for the program formats: a program as one regex.

``_pyparser.match`` runs a :class:`~._formats.Program` with a backtracking matcher (with a
memo of failed states and a step budget). In Python it costs tens of microseconds a line;
``re`` runs the same search in C. :func:`program_regex` compiles a program into an
anchored regex in which every choice is *atomic*: each capture (with the operation after
it), each whitespace run and each optional group takes its first choice, in the matcher's
order, that lets its own next step match, and never goes back:

* a lazy capture before a literal: ``(?>(.*?)lit)``, the literal's first occurrence
  (the matcher tries the occurrences from the first on); before a whitespace run:
  ``(?>(.*?)[ws]++)``, the first whitespace byte and its whole run (the matcher tries the
  ends from the shortest up, skipping those not followed by whitespace, and a run from
  the longest down); before the end of the line ``(.*)\\Z`` (its only choice); before
  anything else ``(?>(.*?))``, the empty capture;
* a dissect capture (``MODE_FIRST``) ends at the first occurrence of the next literal;
* a level capture takes the first of ``LEVEL_WORDS`` found there;
* a time capture takes ``ts_shape_len``'s shape where the line has one, and only then;
  else it is a lazy capture;
* a whitespace run alone is ``[ws]++``; an optional group ``(?>(?:...)?)`` (inside first).

Why a match of this regex is the matcher's match: the matcher explores its choices
depth-first in the same order, and the regex's path takes the first choice at every
point; since that path reaches the end of the line, the matcher's first path is the same
one and it never backs up (so it also stays far inside its step budget: one step per
operation). When the atomic regex does not match, the line may still match by backing
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
    """A program's atomic regex and the slot of each of its groups."""

    __slots__ = ("group_slots", "regex")

    def __init__(self, regex: re.Pattern[bytes], group_slots: tuple[int, ...]) -> None:
        self.regex = regex
        self.group_slots = group_slots


def program_source(prog: Program) -> tuple[bytes, list[int]] | None:
    """The atomic regex source of ``prog`` and the slot of each group, or None for a
    program shape it does not handle (the matcher is used)."""
    ops, lits = prog.ops, prog.lits
    out: list[bytes] = []
    slots: list[int] = []
    depth = 0
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
            depth += 1
        elif op == OP_OPTEND:
            if depth == 0:
                return None
            depth -= 1
            out.append(b")?)")
        elif op == OP_CAP:
            if e + 1 >= n:
                return None
            nop, na, _ = ops[e + 1]
            slots.append(a)
            if nop == OP_LIT:
                nxt = re.escape(lits[na])
            elif nop == OP_WS:
                nxt = _WS + b"++"
            else:
                nxt = b""
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
                if nxt:
                    e += 1
            else:
                out.append(b"(?>(.*?)" + nxt + b")")
                if nxt:
                    e += 1
        else:
            return None
        e += 1
    if depth or not ops or ops[-1][0] != OP_END:
        return None
    return b"".join(out), slots


def program_regex(prog: Program) -> ProgramRegex | None:
    src = program_source(prog)
    if src is None:
        return None
    return ProgramRegex(re.compile(src[0], re.S), tuple(src[1]))
