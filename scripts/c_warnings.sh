#!/usr/bin/env bash
# The compiled modules' C, as Cython wrote it (setup.sh builds it), through gcc with the
# warnings that mean undefined behaviour made errors: an uninitialised index in the line
# splitter's byte loop (3e35a3b) shipped lines as truncated now and then, depending on the
# bytes past a feed, and only a differential run found it; gcc -O3 -Wall names it at once.
# The build itself keeps its flags (a user's compiler may warn where this one does not).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gcc >/dev/null; then
  echo "c_warnings: no gcc here, skipped" >&2
  exit 0
fi
inc=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
flags=(-O3 -Wall -fPIC -I"$inc"
       -Werror=maybe-uninitialized -Werror=uninitialized -Werror=array-bounds
       -Werror=stringop-overflow -Werror=return-type -Werror=implicit-function-declaration
       -Werror=int-conversion -Werror=incompatible-pointer-types)
pids=()
for f in _fastparse/_cparser.c _fastparse/_counting.c _fastparse/_idcheck.c; do
  [ -f "$f" ] || { echo "c_warnings: $f missing (run scripts/setup.sh)" >&2; exit 1; }
  gcc "${flags[@]}" -c "$f" -o /dev/null &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
