"""`python -m shipper` and the `shipper` command (``entry``): the process around cli.main."""

import gc
import sys
from typing import NoReturn


def entry() -> NoReturn:
    # Start-up makes thousands of objects (modules, classes, functions) and no garbage cycle
    # worth finding: the collector, run every 700 allocations, walks them over and over
    # (~3% of a `run --once` of a small file). Off for the imports (and, in cli._run, the
    # config and the agent's imports), on again before anything runs. Frozen first, as
    # cli._run freezes its own: turned on, the collector's first run (at main's first
    # allocations) would otherwise walk every object the imports made, all still in the
    # youngest generation (~8 M instructions, 0.8% of a `run --once` of a small file).
    gc.disable()
    try:
        from .cli import main
    finally:
        gc.freeze()
        gc.enable()
    code = main()
    # The process ends here. Its finalization collects cycles over every object still
    # alive (all the modules' classes and functions: ~60 M instructions, 5% of a `run
    # --once` of a small file) only to free memory the exit frees anyway. Frozen, they are
    # not walked; module teardown and objects' own finalizers run as before, and what must
    # reach the disk or the wire (checkpoint, dead letters, log lines) was written before
    # main returned.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
