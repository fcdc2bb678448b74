"""Compiled regular expressions kept across starts, as Python keeps compiled modules.

The libraries the agent imports compile ~190 patterns at import (urllib3's URL grammar
alone ~200 M instructions, yaml's reader and resolver ~65 M): about a quarter of a
start-up's instructions, the same work at every start. While start-up runs (``install``
to ``finish``, one thread), ``re``'s compiler is wrapped: a pattern seen at an earlier
start is made by ``_sre.compile`` from the program recorded then (the arguments
``re._compiler.compile`` passed it); a new one is compiled as usual and its program
recorded. ``finish`` puts the compiler back before anything else runs and writes the
file when something new was recorded (at least a few patterns).

The file sits in the package's ``__pycache__`` beside the bytecode (nothing is written in
a read-only install: then each start compiles as before) and is only read by the
interpreter that wrote it (version, implementation and ``_sre.MAGIC`` in its header).
``_sre.compile`` validates a program before it makes a pattern of it; an entry that fails
there, or whose pattern text differs, is compiled the usual way.
"""

from __future__ import annotations

import _sre
import marshal
import os
import sys
import threading
from pathlib import Path
from typing import Any

try:
    from re import _compiler  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_compile as _compiler

_HEADER = ("shipper-re-cache", 1, sys.implementation.name, sys.hexversion, _sre.MAGIC)
_MAX_ENTRIES = 2000  # past it, a write keeps only what this start compiled
# a start with fewer new patterns than this does not write: a few differ at every start
# (email's header parser builds character classes from sets, in hash-seed order)
_MIN_NEW = 8
_SRE_DEBUG = _compiler.SRE_FLAG_DEBUG  # re.DEBUG: printed at compile, never cached


def default_path() -> Path | None:
    """``SHIPPER_RE_CACHE``: ``0`` off, a file's path, else (unset, ``1``) the package's
    ``__pycache__``."""
    env = os.environ.get("SHIPPER_RE_CACHE", "")
    if env == "0":
        return None
    if env not in ("", "1"):
        return Path(env)
    return Path(__file__).parent / "__pycache__" / f"re-cache.{sys.implementation.cache_tag}.marshal"


class _Capture:
    """Stands in for the ``_sre`` module during one compile: keeps the arguments of
    ``_sre.compile`` (and makes the pattern with them)."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] | None = None

    def compile(self, *args: Any) -> Any:
        self.args = args
        return _sre.compile(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(_sre, name)


def _plain(a: Any) -> Any:
    """``a`` with the int subclasses ``re`` uses for its opcodes as ints (marshal takes
    only exact types)."""
    if type(a) is list:
        return [int(x) for x in a]
    if isinstance(a, int) and type(a) is not int:
        return int(a)
    return a


class ReCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[bool, Any, int], tuple[Any, ...]] = {}
        self.new: dict[tuple[bool, Any, int], tuple[Any, ...]] = {}
        self.hits = 0
        self.used: dict[tuple[bool, Any, int], tuple[Any, ...]] = {}
        self._original: Any = None
        self._lock = threading.Lock()
        try:
            data = marshal.loads(path.read_bytes())
            if type(data) is tuple and len(data) == 2 and data[0] == _HEADER and type(data[1]) is dict:
                self.entries = data[1]
        except (OSError, ValueError, EOFError, TypeError):
            pass

    def install(self) -> None:
        if self._original is None:
            self._original = _compiler.compile
            _compiler.compile = self.compile

    def compile(self, p: Any, flags: int = 0) -> Any:
        flags = int(flags)
        key = (type(p) is str, p, flags)  # not (p, flags): "a" and b"a" hash alike
        if not flags & _SRE_DEBUG and type(p) in (str, bytes):
            args = self.entries.get(key)
            if args is not None and args[0] == p and type(args[0]) is type(p):
                try:
                    pattern = _sre.compile(*args)
                    self.hits += 1
                    self.used[key] = args
                    return pattern
                except Exception:
                    del self.entries[key]
            with self._lock:
                capture = _Capture()
                _compiler._sre = capture
                try:
                    pattern = self._original(p, flags)
                finally:
                    _compiler._sre = _sre
            if capture.args is not None and capture.args[0] is p:
                args = tuple(map(_plain, capture.args))
                try:
                    marshal.dumps(args)
                except ValueError:
                    return pattern
                self.new[key] = args
            return pattern
        return self._original(p, flags)

    def finish(self) -> None:
        """Put ``re``'s compiler back and write what this start added."""
        if self._original is None:
            return
        _compiler.compile = self._original
        self._original = None
        if len(self.new) < (_MIN_NEW if self.entries else 1):
            return
        entries = {**self.entries, **self.new}
        if len(entries) > _MAX_ENTRIES:
            entries = {**self.used, **self.new}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(exist_ok=True)
            tmp.write_bytes(marshal.dumps((_HEADER, entries)))
            os.replace(tmp, self.path)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
        self.entries, self.new = entries, {}


_active: ReCache | None = None


def start() -> None:
    """Wrap ``re``'s compiler until ``finish`` (the start-up of a command)."""
    global _active
    path = default_path()
    if _active is None and path is not None:
        _active = ReCache(path)
        _active.install()


def finish() -> None:
    """End of start-up: ``re`` as it was, new programs written. Safe to call twice."""
    global _active
    if _active is not None:
        _active.finish()
        _active = None
