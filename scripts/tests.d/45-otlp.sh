#!/usr/bin/env bash
# OTLP and remote write end to end (run by scripts/test.sh), with real clients:
# - the OpenTelemetry Python SDK and its OTLP/HTTP exporters (protobuf and JSON), from
#   PyPI in a virtualenv made here (idempotently) under .tools/otel-venv, exporting a
#   simulated service (scripts/otlp_service.py) to `watchdog serve`;
# - a real Prometheus from Debian's package scraping `simulate --serve-metrics` and
#   forwarding with remote_write to `watchdog serve`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
venv=$PWD/.tools/otel-venv
# The JSON exporter 0.66b1 pins the SDK to 1.45.1.
want="opentelemetry-sdk==1.45.1 opentelemetry-exporter-otlp-proto-http==1.45.1 opentelemetry-exporter-otlp-json-http==0.66b1"
if ! "$venv/bin/python" -c 'import opentelemetry.exporter.otlp.json.http, opentelemetry.exporter.otlp.proto.http, opentelemetry.sdk' 2>/dev/null; then
  echo "[45-otlp] creating $venv with $want"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
fi
bin=$(command -v prometheus || true)
[ -n "$bin" ] || { echo "45-otlp: prometheus missing; run scripts/setup.sh --test" >&2; exit 1; }
export WATCHDOG_TEST_OTEL_PYTHON="$venv/bin/python"
export WATCHDOG_TEST_PROMETHEUS="$bin"
cargo test -p watchdog --locked --test otlp_e2e -- --nocapture
