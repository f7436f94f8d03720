#!/usr/bin/env bash
# Prometheus end to end (run by scripts/test.sh): a real Prometheus from Debian's package
# scrapes a scenario exposed on /metrics on loopback, and `watchdog serve` pulls it and
# catches the bad deploy. The test starts and stops Prometheus itself, with its own
# temporary storage and a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
bin=$(command -v prometheus || true)
[ -n "$bin" ] || { echo "40-prometheus: prometheus missing; run scripts/setup.sh --test" >&2; exit 1; }
export WATCHDOG_TEST_PROMETHEUS="$bin"
tests=()
for f in server/tests/prometheus_*.rs; do
  tests+=(--test "$(basename "$f" .rs)")
done
cargo test -p watchdog --locked "${tests[@]}" -- --nocapture
