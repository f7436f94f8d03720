#!/usr/bin/env bash
# Soak test (not part of CI): a release `watchdog serve` on a fresh SQLite state directory
# takes RATE samples/s of NDJSON for DURATION seconds over SERVICES series that churn
# (every CHURN_EVERY s, CHURN_STEP services are replaced by new names, as pod names come
# and go) over four connections, while a fifth client stamps its samples SKEW seconds off
# the wall clock (one 5,000-sample batch a second, refused per item when further ahead
# than max_future_skew_secs) and a deploy of a live service is posted every DEPLOY_EVERY s. loadgen samples the
# server's RSS every second; at the end it waits until every posted deploy has a verdict
# and exits non-zero otherwise.
#
#   scripts/soak.sh                  # the issue-12 soak: 30 min, 100k samples/s, 10k series
#   DURATION=300 scripts/soak.sh     # 5 minutes
#
# Disk: every sample is stored (about 195 bytes each with its index entry; retention runs
# hourly and keeps at least a day), so 30 min at 100k/s needs about 35 GB free in SOAK_DIR
# (default /tmp). The script checks before it starts and deletes the state directory when
# it ends.
#
# Memory: the engine keeps up to 2 x max_history points per metric and series (default
# 1,024, so 2,048), and at 10 samples/s per series those fill within minutes; MAX_HISTORY
# sets the detector's max_history for the run, to see how much of the RSS that is.
set -euo pipefail

DURATION=${DURATION:-1800}
RATE=${RATE:-100000}
SERVICES=${SERVICES:-10000}
CHURN_EVERY=${CHURN_EVERY:-30}
CHURN_STEP=${CHURN_STEP:-1000}
SKEW=${SKEW:-3600}
DEPLOY_EVERY=${DEPLOY_EVERY:-20}
WINDOW=${WINDOW:-120}
# Churned series must be forgotten for memory to stay flat: 5 minutes idle (default 2 days).
IDLE=${IDLE:-300}
MAX_HISTORY=${MAX_HISTORY:-}

root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WATCHDOG_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/watchdog}
if [ ! -x "$BIN" ] || [ -n "${SOAK_BUILD:-}" ]; then
  (cd "$root" && cargo build --release --bin watchdog)
fi

dir=$(mktemp -d "${SOAK_DIR:-/tmp}/watchdog-soak.XXXXXX")
need_mib=$(( RATE * DURATION / 1024 * 200 / 1024 ))
avail_mib=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
if (( avail_mib < need_mib + 4096 )); then
  echo "soak: needs about $need_mib MiB (+4 GiB spare) free in $dir, $avail_mib MiB are; lower DURATION or RATE, or set SOAK_DIR" >&2
  rm -rf "$dir"
  exit 1
fi

pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/soak.toml" <<TOML
[detector]
monitoring_window_secs = $WINDOW
${MAX_HISTORY:+max_history = $MAX_HISTORY}

[limits]
series_idle_secs = $IDLE
TOML

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WATCHDOG_API_TOKEN=soak
RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --state-dir "$dir/state" --listen "127.0.0.1:$port" \
  --config "$dir/soak.toml" >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$dir/serve.log" >&2; exit 1; }

echo "soak: $DURATION s at $RATE samples/s, $SERVICES series churning $CHURN_STEP every $CHURN_EVERY s, one client ${SKEW} s off, a deploy every $DEPLOY_EVERY s (window $WINDOW s); server pid $pid, state $dir/state" >&2
status=0
"$BIN" loadgen --url "http://127.0.0.1:$port" --batch 5000 --concurrency 4 --rate "$RATE" \
  --duration-secs "$DURATION" --services "$SERVICES" --churn-every-secs "$CHURN_EVERY" \
  --churn-step "$CHURN_STEP" --skewed-clock-secs "$SKEW" --deploys-every-secs "$DEPLOY_EVERY" \
  --judge-wait-secs $(( WINDOW + 600 )) --server-pid "$pid" || status=$?

echo "--- server"
curl -fsS "http://127.0.0.1:$port/metrics" \
  | grep -E '^watchdog_(samples_|items_rejected|series|engine_points|verdicts_|active_watches|deploys_ingested)' || true
echo "state_dir: $(du -sh "$dir/state" | cut -f1)"
echo "--- inconclusive verdicts (cause: reason)"
curl -fsS -H "authorization: Bearer $WATCHDOG_API_TOKEN" \
  "http://127.0.0.1:$port/api/v1/deploys?verdict=inconclusive&limit=500" \
  | python3 -c 'import json,sys; [print(r["deploy_id"], r["service"], "-", r["verdict"]["inconclusive_cause"], ":", r["verdict"]["reason"][:160]) for r in json.load(sys.stdin)["items"]]' || true
grep -E 'ERROR|panicked' "$dir/serve.log" | head -5 || true
exit $status
