#!/usr/bin/env bash
# Builds the web app into dist/ with Trunk (what `watchdog serve` serves).
#   scripts/build-web.sh            release build: wasm-release profile + wasm-opt -Oz
#   scripts/build-web.sh --debug    quick unoptimised build for development
# Prints the size of the wasm, raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Trunk never downloads tools here (Trunk.toml: offline = true); check them first so a
# missing one is named instead of failing deep inside the build.
for tool in trunk wasm-bindgen wasm-opt; do
  command -v "$tool" >/dev/null || { echo "build-web: $tool not found; run scripts/setup.sh" >&2; exit 1; }
done
wasm-opt --version | grep -q 'version 132' || {
  echo "build-web: wasm-opt on PATH is not binaryen 132 ($(wasm-opt --version)); run scripts/setup.sh" >&2
  exit 1
}
# Offline trunk passes --offline to cargo: make sure the crates are there.
cargo fetch --locked >/dev/null
if [ "${1:-}" = "--debug" ]; then
  trunk build
else
  trunk build --release
fi
wasm=$(ls dist/*_bg.wasm)
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf 'build-web: %s: %d bytes raw (%.0f KB), %d bytes gzipped (%.0f KB)\n' \
  "$wasm" "$raw" "$(echo "$raw/1024" | bc -l)" "$gz" "$(echo "$gz/1024" | bc -l)"
