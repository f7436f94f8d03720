#!/usr/bin/env bash
# Runs every check and test of WatchDog: formatting, clippy (native and wasm32), the Rust
# test suites, the wasm build of the core, then each extra suite in scripts/tests.d/
# (browser, PostgreSQL, Prometheus, end-to-end), in name order.
# Installs what it needs first (scripts/setup.sh --test, idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy (wasm32: core, web)"
cargo clippy -p watchdog-core -p watchdog-web --target wasm32-unknown-unknown --locked -- -D warnings

step "build core for wasm32-unknown-unknown"
cargo build -p watchdog-core --target wasm32-unknown-unknown --release --locked

step "cargo test"
cargo test --workspace --locked

for suite in scripts/tests.d/*.sh; do
  [ -e "$suite" ] || continue
  step "$suite"
  bash "$suite"
done
step "all checks passed"
