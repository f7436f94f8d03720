#!/usr/bin/env bash
# PostgreSQL suites (run by scripts/test.sh): starts a throwaway PostgreSQL server from
# Debian's package on a loopback port (scripts/pg.sh), runs the shared store suite and the
# two-server test against it, and stops it whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=../pg.sh
source scripts/pg.sh
pg_bin >/dev/null || { echo "20-postgres: PostgreSQL missing; run scripts/setup.sh --test" >&2; exit 1; }
trap pg_stop EXIT
pg_start
tests=(--test store_suite)
for f in server/tests/postgres_*.rs; do
  [ -e "$f" ] && tests+=(--test "$(basename "$f" .rs)")
done
cargo test -p watchdog --locked "${tests[@]}" -- --nocapture
