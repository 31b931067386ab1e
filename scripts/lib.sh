# Shared set-up for scripts/run-local.sh and scripts/test.sh (sourced, not run).
# Installs the Python tools into .venv/ (inside the repository) and starts a moto server on
# loopback that stops when the calling script exits.

DESKBRIDGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$DESKBRIDGE_ROOT/.venv"

ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/moto_server" ] && cmp -s "$DESKBRIDGE_ROOT/scripts/requirements.txt" "$stamp"; then
    return 0
  fi
  echo "setting up .venv (moto[server], cfn-lint)…" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$DESKBRIDGE_ROOT/scripts/requirements.txt"
  cp "$DESKBRIDGE_ROOT/scripts/requirements.txt" "$stamp"
}

VENV_CHECKOV="$DESKBRIDGE_ROOT/.venv-checkov"

# checkov lives in .venv-checkov/, apart from moto and cfn-lint: its dependency pins clash.
ensure_checkov() {
  local stamp="$VENV_CHECKOV/.requirements"
  if [ -x "$VENV_CHECKOV/bin/checkov" ] && cmp -s "$DESKBRIDGE_ROOT/scripts/requirements-checkov.txt" "$stamp"; then
    return 0
  fi
  echo "setting up .venv-checkov (checkov)…" >&2
  python3 -m venv "$VENV_CHECKOV"
  "$VENV_CHECKOV/bin/pip" install --quiet --disable-pip-version-check -r "$DESKBRIDGE_ROOT/scripts/requirements-checkov.txt"
  cp "$DESKBRIDGE_ROOT/scripts/requirements-checkov.txt" "$stamp"
}

# checkov over template.yaml, offline (no download of policies or guidelines). Every skipped
# check is justified inline in the template (Metadata: checkov: skip).
run_checkov() {
  "$VENV_CHECKOV/bin/checkov" --file "$DESKBRIDGE_ROOT/template.yaml" --framework cloudformation \
    --compact --quiet --skip-download
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto on 127.0.0.1 and exports MOTO_URL; the server is stopped on exit.
start_moto() {
  local port
  port="$(free_port)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  trap 'stop_background' EXIT
  export MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "moto_server did not start on $MOTO_URL" >&2
  return 1
}

BACKGROUND_PIDS=()
stop_background() {
  # The runner first (it still talks to moto while it shuts down), then moto.
  for pid in "${BACKGROUND_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}

# Local AWS settings pointing at moto (any non-empty credentials work there).
use_moto_env() {
  export AWS_ENDPOINT_URL="$MOTO_URL"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  unset AWS_PROFILE AWS_SESSION_TOKEN
}
