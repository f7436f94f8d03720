#!/usr/bin/env bash
# Example deploy script: ship, then tell WatchDog so it watches the release.
#
# A WatchDog server:
#   WATCHDOG_SERVER=http://watchdog.internal:8080 WATCHDOG_API_TOKEN=... \
#     examples/deploy.sh checkout production v1.4.2
#
# The original WatchDog's file mode: the deploy is appended to
# DIR/deploy-events.jsonl, where a running `watchdog run --state-dir DIR` picks it up:
#   WATCHDOG_STATE_DIR=.WatchDog examples/deploy.sh app production v1.4.2
#
# `watchdog notify` retries when the server is briefly unreachable, and a deploy posted
# twice is stored once, so re-running this script is safe. WATCHDOG_BIN names the
# binary when it is not `watchdog` on the PATH (e.g. target/release/watchdog).
set -euo pipefail

usage="usage: deploy.sh SERVICE ENVIRONMENT VERSION"
service="${1:?$usage}"
environment="${2:?$usage}"
version="${3:?$usage}"
watchdog="${WATCHDOG_BIN:-watchdog}"

echo "deploying ${service} ${version} to ${environment}"
# Your real rollout goes here, e.g.:
#   kubectl -n "${environment}" set image "deploy/${service}" "app=registry/${service}:${version}"
#   kubectl -n "${environment}" rollout status "deploy/${service}"

# The new version takes traffic from now on: start the watch.
if [[ -n "${WATCHDOG_STATE_DIR:-}" && -z "${WATCHDOG_SERVER:-}" ]]; then
  "${watchdog}" notify \
    --state-dir "${WATCHDOG_STATE_DIR}" \
    --deploy "${version}" \
    --service "${service}" \
    --environment "${environment}"
else
  "${watchdog}" notify \
    --deploy-id "${version}" \
    --service "${service}" \
    --environment "${environment}" \
    --server "${WATCHDOG_SERVER:-http://127.0.0.1:8080}"
fi
