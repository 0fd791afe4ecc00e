#!/usr/bin/env bash
# `make test-busy`: the whole suite three times in a row beside two processes that keep both cores busy,
# as on a shared 2-core machine. Not part of .ci/run (about 3x make test's time). make test runs the suite in
# TEST_WORKERS pytest-xdist processes (the Makefile's default unless set here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
BUSY="${BUSY:-2}"

pids=()
stop_busy() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_busy EXIT INT TERM
for _ in $(seq "$BUSY"); do
    .venv/bin/python -c 'while True: pass' &
    pids+=("$!")
done
echo "test-busy: $BUSY busy processes (${pids[*]}), $ROUNDS rounds of make test (TEST_WORKERS=${TEST_WORKERS:-the Makefile default})"

for round in $(seq "$ROUNDS"); do
    start=$(date +%s)
    if ! make --no-print-directory test; then
        echo "test-busy: round $round of $ROUNDS FAILED after $(( $(date +%s) - start )) s"
        exit 1
    fi
    echo "test-busy: round $round of $ROUNDS passed in $(( $(date +%s) - start )) s"
done
echo "test-busy: $ROUNDS rounds passed beside $BUSY busy processes"
