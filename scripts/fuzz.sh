#!/usr/bin/env bash
# Bounded fuzzing of every target in fuzz/ (webhook parsers and signature checks, the
# configuration file). Installs cargo-fuzz into .tools/ (inside the repository) when missing,
# builds all targets once, then runs each for FUZZ_SECONDS (default 30). Fails if any target
# crashes (panic, broken property, timeout or out-of-memory); crashing inputs land in
# fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
#   scripts/fuzz.sh                       # every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh      # longer
#   scripts/fuzz.sh zendesk_webhook       # some targets only
#
# Works on the stable toolchain: cargo-fuzz passes unstable `-Z` flags to rustc, which stable
# accepts with RUSTC_BOOTSTRAP=1 (set here, for these builds only; they live in fuzz/target).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# address (cargo-fuzz's default) or none (about twice the executions, no ASan checks).
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
# Most seconds one input may take before it counts as a hang.
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
# Extra libFuzzer options, e.g. FUZZ_ARGS="-jobs=2 -workers=2" or "-dict=…".
FUZZ_ARGS="${FUZZ_ARGS:-}"
CARGO_FUZZ_VERSION="0.13.2"

TOOLS="$ROOT/.tools"
export PATH="$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if [ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS"
fi

if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi

BUILD=(--sanitizer "$FUZZ_SANITIZER")
echo "== cargo fuzz build ${BUILD[*]}"
start=$SECONDS
cargo fuzz build "${BUILD[@]}"
echo "   built in $((SECONDS - start)) s"

LOGS="$ROOT/fuzz/target/logs"
mkdir -p "$LOGS"
failed=()
summary=()
for target in "${TARGETS[@]}"; do
  seeds="$ROOT/fuzz/corpus/$target"
  # New inputs go to a scratch corpus under fuzz/target (git-ignored); the committed seeds in
  # fuzz/corpus/ are only read, so a run never changes the repository.
  work="$ROOT/fuzz/target/corpus/$target"
  mkdir -p "$work" "$ROOT/fuzz/artifacts/$target"
  log="$LOGS/$target.log"
  echo "== $target: ${FUZZ_SECONDS}s (log: ${log#"$ROOT"/})"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
  if cargo fuzz run "${BUILD[@]}" "$target" "$work" "$seeds" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -print_final_stats=1 \
    $FUZZ_ARGS >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$target")
    # The panic message, the artifact and cargo-fuzz's reproduction hints.
    grep -A2 -E "panicked at" "$log" | head -8 || true
    grep -E "Test unit written to|ERROR: libFuzzer|^SUMMARY|^\s*cargo fuzz (run|tmin)" "$log" | head -8 || true
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)"
  summary+=("$(printf '%-18s %-6s %12s execs  %s' "$target" "$status" "${execs:-?}" "$cov")")
done

echo "== summary (FUZZ_SECONDS=$FUZZ_SECONDS, sanitizer $FUZZ_SANITIZER)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/; see docs/fuzzing.md)" >&2
  exit 1
fi
