#!/usr/bin/env bash
# Browser tests of the web app (run by scripts/test.sh): builds the app with Trunk,
# builds the server, and runs e2e/run.mjs in headless Chromium. The playground is served
# by a static file server inside the test; the dashboard tests start `watchdog serve` on a
# free loopback port with a temporary state directory and stop it at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

[ -x /usr/bin/chromium ] || { echo "50-browser: /usr/bin/chromium missing; run scripts/setup.sh --test" >&2; exit 1; }
[ -d .tools/node_modules/playwright-core ] || { echo "50-browser: playwright-core missing; run scripts/setup.sh --test" >&2; exit 1; }

# The web crate's unit tests (URL state, file parsing) on wasm32 under node.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p watchdog-web --target wasm32-unknown-unknown --locked

# A release build is what users get; WEB_DEBUG=1 makes iteration quicker.
if [ "${WEB_DEBUG:-0}" = 1 ]; then bash scripts/build-web.sh --debug; else bash scripts/build-web.sh; fi

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=${WATCHDOG_BIN:-$target_dir/debug/watchdog}
if [ -z "${WATCHDOG_BIN:-}" ]; then
  cargo build -p watchdog --locked
fi
if ! "$bin" serve --help >/dev/null 2>&1; then
  echo "50-browser: $bin has no 'serve' command; cannot run the dashboard tests" >&2
  exit 1
fi
node e2e/run.mjs --dist dist --server "$bin" ${SHOTS_DIR:+--shots "$SHOTS_DIR"}
