#!/usr/bin/env bash
# The full test suite: formatting, lints, every Rust test (unit, handler, and the end-to-end
# tests against moto and wiremock), and the template's lint and security scan. Installs what it
# needs into .venv/ (moto, cfn-lint) and .venv-checkov/ (checkov).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DESKBRIDGE_ROOT"

ensure_venv
ensure_checkov
start_moto
export DESKBRIDGE_TEST_MOTO_URL="$MOTO_URL"

echo "== cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml
echo "== checkov -f template.yaml"
run_checkov
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
