#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and measurements, from Debian's `postgresql`
# package: a fresh cluster in a temporary directory, listening on loopback only.
#   source scripts/pg.sh && pg_start    # exports WATCHDOG_TEST_DATABASE_URL, PG_DIR, PG_PORT
#   pg_stop                             # stops it and removes the directory
# Runs the server as the `postgres` user when started as root (initdb refuses root).
pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] || { echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql, or scripts/setup.sh --test)" >&2; return 1; }
  echo "$d"
}

pg_as() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_start() {
  local bin
  bin=$(pg_bin) || return 1
  PG_DIR=$(mktemp -d /tmp/watchdog-pg.XXXXXX)
  PG_PORT=${PG_PORT:-$(pg_free_port)}
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  pg_as "$bin/initdb -D $PG_DIR/data -U watchdog --auth=trust -E UTF8 --no-locale" >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # fsync stays on: the throughput figure should be what a real server does.
  pg_as "$bin/pg_ctl -D $PG_DIR/data -l $PG_DIR/server.log -w -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200\" start" >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  pg_as "$bin/createdb -h 127.0.0.1 -p $PG_PORT -U watchdog watchdog"
  export PG_DIR PG_PORT
  export WATCHDOG_TEST_DATABASE_URL="postgres://watchdog@127.0.0.1:$PG_PORT/watchdog"
  echo "pg.sh: PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)" >&2
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  local bin
  bin=$(pg_bin) || return 1
  pg_as "$bin/pg_ctl -D $PG_DIR/data -m fast -w stop" >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  unset PG_DIR
}
