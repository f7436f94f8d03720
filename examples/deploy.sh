#!/usr/bin/env bash
# Example deploy script: ship, then tell WatchDog so it watches the release.
#
#   WATCHDOG_SERVER=http://watchdog.internal:8080 WATCHDOG_API_TOKEN=... \
#     examples/deploy.sh checkout production v1.4.2
#
# `watchdog notify` retries when the server is briefly unreachable, and a deploy posted
# twice is stored once, so re-running this script is safe.
set -euo pipefail

service="${1:?usage: deploy.sh SERVICE ENVIRONMENT VERSION}"
environment="${2:?usage: deploy.sh SERVICE ENVIRONMENT VERSION}"
version="${3:?usage: deploy.sh SERVICE ENVIRONMENT VERSION}"

echo "deploying ${service} ${version} to ${environment}"
# Your real rollout goes here, e.g.:
#   kubectl -n "${environment}" set image "deploy/${service}" "app=registry/${service}:${version}"
#   kubectl -n "${environment}" rollout status "deploy/${service}"

# The new version takes traffic from now on: start the watch.
watchdog notify \
  --deploy-id "${version}" \
  --service "${service}" \
  --environment "${environment}" \
  --server "${WATCHDOG_SERVER:-http://127.0.0.1:8080}"
