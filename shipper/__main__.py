import gc
import sys

# Start-up makes thousands of objects (modules, classes, functions) and no garbage cycle
# worth finding: the collector, run every 700 allocations, walks them over and over
# (~3% of a `run --once` of a small file). Off for the imports (and, in cli._run, the
# config and the agent's imports), on again before anything runs.
gc.disable()
try:
    from .cli import main
finally:
    gc.enable()

sys.exit(main())
