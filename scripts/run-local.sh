#!/usr/bin/env bash
# Runs deskbridge locally end to end: moto for DynamoDB and SQS, the table and queues created by
# `deskbridge bootstrap`, the local runner (`deskbridge serve`), and the signed sample webhooks of
# events/ sent to it. Brevo runs in dry-run (requests printed, none sent) unless BREVO_API_KEY is set.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DESKBRIDGE_ROOT"

ensure_venv
start_moto
use_moto_env

# The sample events are signed with these test secrets (see README); keep any you set yourself.
export ZENDESK_WEBHOOK_SECRET="${ZENDESK_WEBHOOK_SECRET:-dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==}"
export INTERCOM_CLIENT_SECRET="${INTERCOM_CLIENT_SECRET:-deskbridge-test-intercom-secret}"
export GORGIAS_WEBHOOK_TOKEN="${GORGIAS_WEBHOOK_TOKEN:-deskbridge-test-gorgias-token}"
# The CINNOX sample goes to the generic source of examples/cinnox-zapier.yaml; with a
# configuration file of your own that lacks generic:cinnox, the demo skips it.
export DESKBRIDGE_CONFIG="${DESKBRIDGE_CONFIG:-$DESKBRIDGE_ROOT/examples/cinnox-zapier.yaml}"
export CINNOX_WEBHOOK_TOKEN="${CINNOX_WEBHOOK_TOKEN:-deskbridge-test-cinnox-token}"
PORT="${DESKBRIDGE_PORT:-3000}"

echo "== building deskbridge"
cargo build --quiet --locked --bin deskbridge
BIN="$DESKBRIDGE_ROOT/target/debug/deskbridge"

echo "== deskbridge bootstrap (moto at $MOTO_URL)"
BOOT="$("$BIN" bootstrap)"
echo "$BOOT"
set -a; eval "$BOOT"; set +a

echo "== deskbridge serve --port $PORT"
"$BIN" serve --port "$PORT" &
BACKGROUND_PIDS+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

echo "== deskbridge demo: sending the signed sample events"
"$BIN" demo --url "http://127.0.0.1:$PORT"
sleep 0.5
echo "== done: the lines starting with 'brevo dry-run:' above are what deskbridge sent (or would send) to Brevo"
