#!/usr/bin/env bash
# Runs the whole test suite once per Keras backend (a backend is fixed at import).
# Usage: bash tests/run_all_backends.sh [extra pytest args]
set -u
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
failed=()
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=$backend ==="
  start=$(date +%s)
  KERAS_BACKEND=$backend "$python" -m pytest -q tests "$@" || failed+=("$backend")
  echo "=== $backend took $(( $(date +%s) - start )) s ==="
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "All backends passed."
