#!/usr/bin/env bash
# Mutation testing of the modules named (default: every module mapped in tests/mutation.py),
# one after the other on one backend, then the table into benchmarks/RESULTS.md.
# Usage: bash tests/mutation.sh [MODULE ...]    (OUT: the JSON folder; each module's backend: tests/mutation.py)
set -u
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${OUT:-mutation_results}
mkdir -p "$out"
if [ $# -eq 0 ]; then
  set -- $("$python" -c "import sys; sys.path.insert(0, 'tests'); import mutation; print(' '.join(mutation.MODULES))")
fi
for module in "$@"; do
  "$python" tests/mutation.py "$module" \
    --json "$out/$(echo "$module" | tr '/' '_').json"
done
"$python" tests/mutation.py --table "$out" --write-results
