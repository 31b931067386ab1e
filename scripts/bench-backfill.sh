#!/usr/bin/env bash
# The backfill bench (functions/sync/benches/backfill.rs) with its peer connector installed:
# sets up .venv-peer/ (Singer's tap-intercom), then runs the bench. Arguments select lines by
# label, e.g. `scripts/bench-backfill.sh peer`; none runs every line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DESKBRIDGE_ROOT"

ensure_peer
export DESKBRIDGE_PEER_TAP_INTERCOM="$DESKBRIDGE_ROOT/.venv-peer/bin/tap-intercom"
cargo bench --locked -p deskbridge-sync --bench backfill -- "$@"
