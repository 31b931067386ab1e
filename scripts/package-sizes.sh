#!/usr/bin/env bash
# Size of each Lambda function's deployment package: builds the three functions as arm64 zips
# with `cargo lambda build --release --arm64 --output-format zip` and prints, per function, the
# zip's size against the goal of 5 MB (5,000,000 bytes). Installs cargo-lambda and zig (the
# cross linker it uses) from PyPI into .venv-lambda/ unless DESKBRIDGE_LAMBDA_VENV names another
# virtualenv (created there if it lacks them). The first build takes a while (aws-lc-sys's C code
# and the AWS SDK, with LTO); later runs only rebuild what changed.
#   DESKBRIDGE_LAMBDA_VENV        virtualenv with cargo-lambda and ziglang (default .venv-lambda)
#   DESKBRIDGE_LAMBDA_TARGET_DIR  cargo target directory (default target/lambda-arm64)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DESKBRIDGE_ROOT"

CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.1
TARGET=aarch64-unknown-linux-gnu
FUNCTIONS=(deskbridge-webhook deskbridge-sync deskbridge-upsert)
GOAL_BYTES=5000000

VENV_LAMBDA="${DESKBRIDGE_LAMBDA_VENV:-$DESKBRIDGE_ROOT/.venv-lambda}"
TARGET_DIR="${DESKBRIDGE_LAMBDA_TARGET_DIR:-$DESKBRIDGE_ROOT/target/lambda-arm64}"

# cargo-lambda and ziglang, pinned, through lib.sh's installer (it needs a requirements file).
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
printf '# Written by scripts/package-sizes.sh.\ncargo-lambda==%s\nziglang==%s\n' \
  "$CARGO_LAMBDA_VERSION" "$ZIGLANG_VERSION" >"$requirements"
ensure_python_tools "$VENV_LAMBDA" "$requirements" cargo-lambda
# `cargo lambda` and zig (cargo-lambda runs the venv's `python3 -m ziglang`) come from the venv.
export PATH="$VENV_LAMBDA/bin:$PATH"

if command -v rustup >/dev/null; then
  target_installed() { rustup target list --installed | grep -qx "$TARGET"; }
else
  target_installed() { [ -d "$(rustc --print sysroot)/lib/rustlib/$TARGET" ]; }
fi
if ! target_installed; then
  echo "the Rust target $TARGET is not installed; add it with:" >&2
  echo "  rustup target add $TARGET" >&2
  exit 1
fi

echo "== $(cargo lambda --version)"
echo "== cargo lambda build --release --arm64 --output-format zip (target dir ${TARGET_DIR#"$DESKBRIDGE_ROOT"/})"
package_args=()
for function in "${FUNCTIONS[@]}"; do
  package_args+=(-p "$function")
done
lambda_dir="$TARGET_DIR/lambda"
CARGO_TARGET_DIR="$TARGET_DIR" cargo lambda build --release --arm64 --output-format zip --locked \
  --lambda-dir "$lambda_dir" "${package_args[@]}"

echo
printf '%-20s | %10s | %7s | %8s | %s\n' function "zip bytes" MB MiB "goal ≤ 5 MB"
missed=0
for function in "${FUNCTIONS[@]}"; do
  zip="$lambda_dir/$function/bootstrap.zip"
  bytes="$(stat -c %s "$zip")"
  if [ "$bytes" -le "$GOAL_BYTES" ]; then
    verdict=met
  else
    verdict=missed
    missed=$((missed + 1))
  fi
  printf '%-20s | %10s | %7s | %8s | %s\n' "$function" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1000000 }')" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "$verdict"
done
echo "(MB = 1,000,000 bytes, MiB = 1,048,576; zips in ${lambda_dir#"$DESKBRIDGE_ROOT"/}/<function>/bootstrap.zip)"
if [ "$missed" -gt 0 ]; then
  echo "$missed of ${#FUNCTIONS[@]} functions miss the 5 MB goal"
fi
