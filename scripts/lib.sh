# Shared set-up for scripts/run-local.sh and scripts/test.sh (sourced, not run).
# Installs the Python tools into .venv/ and checkov into .venv-checkov/ (inside the repository),
# and starts a moto server on loopback that stops when the calling script exits.

DESKBRIDGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$DESKBRIDGE_ROOT/.venv"

# Creates the virtualenv $1 with the pinned requirements file $2, unless it already holds them
# ($3: a program it must have).
ensure_python_tools() {
  local venv="$1" requirements="$2" program="$3"
  local stamp="$venv/.requirements"
  if [ -x "$venv/bin/$program" ] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  echo "setting up ${venv#"$DESKBRIDGE_ROOT"/} ($(grep -v '^#' "$requirements" | tr '\n' ' '))…" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}

# moto and cfn-lint in .venv/.
ensure_venv() {
  ensure_python_tools "$VENV" "$DESKBRIDGE_ROOT/scripts/requirements.txt" moto_server
}

VENV_CHECKOV="$DESKBRIDGE_ROOT/.venv-checkov"

# checkov in .venv-checkov/, apart from moto and cfn-lint: its dependency pins clash with theirs.
ensure_checkov() {
  ensure_python_tools "$VENV_CHECKOV" "$DESKBRIDGE_ROOT/scripts/requirements-checkov.txt" checkov
}

# Singer's tap-intercom in .venv-peer/, the peer connector of the backfill bench: its
# singer-python pins clash with cfn-lint's in .venv/.
ensure_peer() {
  ensure_python_tools "$DESKBRIDGE_ROOT/.venv-peer" "$DESKBRIDGE_ROOT/scripts/requirements-peer.txt" tap-intercom
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
