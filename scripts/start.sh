#!/usr/bin/env bash
# The main job: installs what is missing, builds the web app and the server, starts
# `watchdog serve` on the embedded SQLite default, loads demo data (a few catalogue
# scenarios, bad and healthy deploys, with logs), and keeps serving until Ctrl-C.
#   scripts/start.sh                       listen on 127.0.0.1:8080, state in ./state
#   WATCHDOG_LISTEN=0.0.0.0:9000 scripts/start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

echo "[start] building the web app (dist/) and the server"
bash scripts/build-web.sh
cargo build --release --locked -p watchdog
bin=$PWD/target/release/watchdog

listen=${WATCHDOG_LISTEN:-127.0.0.1:8080}
state=${WATCHDOG_STATE_DIR:-$PWD/state}
export WATCHDOG_API_TOKEN=${WATCHDOG_API_TOKEN:-dev-token-change-me}
mkdir -p "$state"
# The demo data is historical (2026-03-30), so event time comes from the data.
"$bin" serve --state-dir "$state" --listen "$listen" --web-dir dist --clock data &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

base="http://$listen"
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { echo "[start] the server did not come up" >&2; exit 1; }

demo=$(mktemp -d)
post() { # post ENDPOINT FILE
  curl -fsS -X POST "$base/api/v1/$1" -H "Authorization: Bearer $WATCHDOG_API_TOKEN" \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$2" >/dev/null
}
if [ ! -f "$state/.demo-loaded" ]; then
  echo "[start] loading demo data"
  # Event time comes from the data, so each scenario is placed two hours after the one
  # before, with 40 minutes after its deploy: every watch (30 min) ends inside the data.
  i=0
  for s in error_spike latency_step healthy pre_existing low_traffic overlapping_deploys; do
    "$bin" simulate --scenario "$s" --prefix "$s/" --after-mins 40 --shift-secs $((i * 7200)) \
      --out "$demo/$s" 2>/dev/null
    i=$((i + 1))
    post metrics "$demo/$s/metrics.jsonl"
    post logs "$demo/$s/logs.jsonl"
    post deploys "$demo/$s/deploys.jsonl"
  done
  touch "$state/.demo-loaded"
fi
rm -rf "$demo"
cat <<MSG

[start] WatchDog is running: open http://$listen/
        incidents: http://$listen/incidents   deploys: http://$listen/deploys   playground: http://$listen/
        API token for writes: $WATCHDOG_API_TOKEN
        Ctrl-C stops it; the data stays in $state.
MSG
wait $server
