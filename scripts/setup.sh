#!/usr/bin/env bash
# Installs everything WatchDog needs on a fresh Debian machine, idempotently:
# each step checks for what it installs and skips it when it is already there.
#   scripts/setup.sh            Rust targets, trunk, wasm-bindgen-cli, binaryen (wasm-opt)
#   scripts/setup.sh --test     the above plus Chromium, playwright-core, PostgreSQL, Prometheus,
#                               python3-venv (the OTLP suite makes its own virtualenv)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '[setup] %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then say "apt-get update"; apt-get update -qq; apt_updated=1; fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Rust targets and components
rustup target list --installed | grep -q wasm32-unknown-unknown || { say "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# trunk 0.21.14: 0.22 needs a newer rustc than this machine's.
if ! trunk --version 2>/dev/null | grep -q '0.21.14'; then
  say "cargo install trunk 0.21.14 (several minutes)"
  cargo install --locked trunk@0.21.14
fi

# wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock.
wbg=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock 2>/dev/null || true)
wbg=${wbg:-0.2.130}
if ! wasm-bindgen --version 2>/dev/null | grep -q "$wbg"; then
  say "cargo install wasm-bindgen-cli $wbg (several minutes)"
  cargo install wasm-bindgen-cli --version "$wbg"
fi

# wasm-opt from npm's binaryen 132 (Debian's 108 corrupts wasm-bindgen output).
tools=$PWD/.tools
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ]; then
  say "npm install binaryen@132"
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$tools" --no-audit --no-fund --silent binaryen@132
fi

if [ $want_test -eq 1 ]; then
  apt_install chromium chromium-driver postgresql prometheus
  # The OTLP suite (tests.d/45-otlp.sh) puts the OpenTelemetry Python SDK in a venv.
  python3 -c "import venv, ensurepip" >/dev/null 2>&1 || apt_install python3 python3-venv
  if [ ! -d "$tools/node_modules/playwright-core" ]; then
    say "npm install playwright-core"
    npm install --prefix "$tools" --no-audit --no-fund --silent playwright-core@1
  fi
fi
say "done"
