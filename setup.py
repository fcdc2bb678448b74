"""Builds the optional C extension ``_fastparse._cparser``; metadata is in pyproject.toml.

The extension is optional: with ``SHIPPER_NO_EXTENSIONS=1`` at build time, without
Cython (and no generated ``_cparser.c``), or when compiling fails (no compiler, no
Python headers), the package installs with the pure-Python parser only and a warning
is printed. For development: ``python setup.py build_ext --inplace``.
"""

from __future__ import annotations

import os
import sys
import traceback

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
NO_EXTENSIONS = os.environ.get("SHIPPER_NO_EXTENSIONS", "") not in ("", "0")
if sys.implementation.name != "cpython":
    NO_EXTENSIONS = True

PYX = os.path.join("_fastparse", "_cparser.pyx")
C_SOURCE = os.path.join("_fastparse", "_cparser.c")
IDCHECK_PYX = os.path.join("_fastparse", "_idcheck.pyx")
IDCHECK_C = os.path.join("_fastparse", "_idcheck.c")
COUNTING_PYX = os.path.join("_fastparse", "_counting.pyx")  # the anomaly counters' fold (counters.py)
COUNTING_C = os.path.join("_fastparse", "_counting.c")
# The `_id` hash headers: an edit to them rebuilds the modules that include them.
ID_HEADERS = [os.path.join("_fastparse", h) for h in ("blake2b.h", "blake2b_id.h", "blake2b_id4.h")]


def _warn(msg: str) -> None:
    bar = "*" * 78
    print(f"\n{bar}\nWARNING: {msg}\n"
          "The pure-Python parser will be used: the same output, several times slower.\n"
          f"{bar}\n", file=sys.stderr)


def _extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        print("SHIPPER_NO_EXTENSIONS is set: not building _fastparse._cparser", file=sys.stderr)
        return []
    compile_args = [] if sys.platform == "win32" else ["-O3"]
    try:
        from Cython.Build import cythonize
    except ImportError:
        if os.path.exists(os.path.join(HERE, C_SOURCE)):  # an sdist carries the C file
            exts = [Extension("_fastparse._cparser", [C_SOURCE], extra_compile_args=compile_args)]
            if os.path.exists(os.path.join(HERE, IDCHECK_C)):
                exts.append(Extension("_fastparse._idcheck", [IDCHECK_C], extra_compile_args=compile_args))
            if os.path.exists(os.path.join(HERE, COUNTING_C)):
                exts.append(Extension("_fastparse._counting", [COUNTING_C], extra_compile_args=compile_args))
            return exts
        _warn("Cython is not installed: _fastparse._cparser is not built.")
        return []
    ext = Extension("_fastparse._cparser", [PYX], extra_compile_args=compile_args, depends=ID_HEADERS)
    # Test-only access to the C `_id` hash (blake2b.h) for tests/test_ids.py and the
    # id benchmarks; the parser includes the same header itself. Not needed at run time.
    idcheck = Extension("_fastparse._idcheck", [IDCHECK_PYX], extra_compile_args=compile_args, depends=ID_HEADERS)
    counting = Extension("_fastparse._counting", [COUNTING_PYX], extra_compile_args=compile_args)
    return cythonize(
        [ext, idcheck, counting],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
        quiet=True,
    )


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing, as aiohttp, yarl and multidict do."""

    def run(self) -> None:
        try:
            super().run()
        except Exception:  # no compiler at all (DistutilsPlatformError) and the like
            traceback.print_exc()
            _warn("building the C extension failed.")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception:  # CompileError, LinkError, missing headers ...
            traceback.print_exc()
            _warn(f"building the C extension {ext.name} failed.")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
