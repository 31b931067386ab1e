#!/usr/bin/env bash
# Runs the fault-injection suite (tests/faults.rs) with several seeds, one after another, each
# against a fresh moto server, and prints every run's summary line and a tally. Not part of the
# test command (it takes about as many times the suite's few minutes as there are seeds); it is
# how the suite's verdict is shown to hold for seeds other than the one CI runs.
#
#   scripts/fault-seeds.sh [RUNS=20] [FIRST_SEED=0x5eed1001]
#
# DESKBRIDGE_FAULTS_DELIVERIES and DESKBRIDGE_FAULTS_RATE are passed on (defaults 5,000 and 0.12).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DESKBRIDGE_ROOT"

runs="${1:-20}"
first="${2:-0x5eed1001}"
ensure_venv
cargo test --locked --test faults --no-run 2>/dev/null

passed=0
failed=0
for i in $(seq 0 $((runs - 1))); do
  seed="$(printf '0x%x' $((first + i)))"
  start_moto
  started=$SECONDS
  if out="$(DESKBRIDGE_FAULTS_SEED="$seed" DESKBRIDGE_TEST_MOTO_URL="$MOTO_URL" \
      cargo test --locked --test faults 2>&1)"; then
    verdict=pass
    passed=$((passed + 1))
  else
    verdict=FAIL
    failed=$((failed + 1))
  fi
  summary="$(grep -m1 '^faults: [0-9]' <<<"$out" || echo 'faults: no summary line')"
  detail="$(grep -m1 '^faults: seed' <<<"$out" | grep -o 'dead-lettered [0-9]*; .*settled [a-zA-Z]* after [0-9]* s' || true)"
  echo "seed $seed: $verdict in $((SECONDS - started)) s — $summary; ${detail:-}"
  if [ "$verdict" = FAIL ]; then
    grep -E 'panicked|lost events|duplicated:|stale:' <<<"$out" | head -5 | sed 's/^/    /'
  fi
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  unset MOTO_PID
done
echo "fault seeds: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
