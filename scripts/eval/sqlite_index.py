#!/usr/bin/env python3
"""A model of how the SQLite store writes samples, to compare index layouts without
rebuilding the server: 10,000 series, commits of 5,000 rows with random series, a
150-byte JSON body per row, WAL with synchronous=NORMAL as the server runs it.

    python3 scripts/eval/sqlite_index.py VARIANT [ROWS]

VARIANT:
  labels   rows carry service and environment text, index (service, environment, ts_ms)
           (the schema before migration 0020)
  ids      rows carry an integer series id, index (series_id, ts_ms)
  noindex  rows carry a series id, no index (the bound)
  bulk     rows carry a series id; every EVERY rows (env, default 500000) their entries
           go into a WITHOUT ROWID (series_id, ts_ms, id) table in one sorted INSERT
           (what store/sqlite/samples.rs does)
  clustered  WITHOUT ROWID table clustered on (series_id, ts_ms, seq)
Env: B (rows a commit, default 5000), CACHE_KIB (page cache, default 2000), EVERY.
Prints rows/s (Python's own time included) and database bytes per row.
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

variant = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
SERIES = 10_000
B = int(os.environ.get("B", "5000"))
EVERY = int(os.environ.get("EVERY", "500000"))

d = tempfile.mkdtemp(dir="/tmp")
p = os.path.join(d, "t.db")
c = sqlite3.connect(p, isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=normal")
c.execute("pragma cache_size=-%d" % int(os.environ.get("CACHE_KIB", "2000")))
if variant == "labels":
    c.execute("create table samples (id integer primary key, ts_ms bigint not null, service text not null, environment text not null, body text not null)")
    c.execute("create index samples_series on samples (service, environment, ts_ms)")
elif variant in ("ids", "noindex", "bulk"):
    c.execute("create table samples (id integer primary key, series_id bigint not null, ts_ms bigint not null, body text not null)")
    if variant == "ids":
        c.execute("create index samples_series on samples (series_id, ts_ms)")
    if variant == "bulk":
        c.execute("create table sample_index (series_id bigint, ts_ms bigint, id bigint, primary key (series_id, ts_ms, id)) without rowid")
elif variant == "clustered":
    c.execute("create table samples (series_id bigint not null, ts_ms bigint not null, seq bigint not null, body text not null, primary key (series_id, ts_ms, seq)) without rowid")
else:
    sys.exit(f"unknown variant {variant!r}")

rng = random.Random(1)
t0 = time.time()
ts = 1_700_000_000_000
n = seq = indexed = 0
index_secs = 0.0
while n < total:
    rows = []
    for _ in range(B):
        s = rng.randrange(SERIES)
        seq += 1
        body = '{"timestamp":"2026-12-01T17:51:04.123Z","service":"svc-%d","environment":"load","error_rate":0.0112,"p95_latency_ms":183.2,"request_rate":1212}' % s
        if variant == "labels":
            rows.append((ts, "svc-%d" % s, "load", body))
        elif variant == "clustered":
            rows.append((s, ts, seq, body))
        else:
            rows.append((s, ts, body))
    c.execute("begin")
    if variant == "labels":
        c.executemany("insert into samples (ts_ms, service, environment, body) values (?,?,?,?)", rows)
    elif variant == "clustered":
        c.executemany("insert into samples values (?,?,?,?)", rows)
    else:
        c.executemany("insert into samples (series_id, ts_ms, body) values (?,?,?)", rows)
    c.execute("commit")
    n += B
    ts += 50
    if variant == "bulk" and n % EVERY == 0:
        t1 = time.time()
        c.execute("begin")
        hi = c.execute("select max(id) from samples").fetchone()[0]
        c.execute("insert into sample_index select series_id, ts_ms, id from samples where id > ? and id <= ? order by series_id, ts_ms, id", (indexed, hi))
        indexed = hi
        c.execute("commit")
        index_secs += time.time() - t1
    if n % 500_000 == 0:
        c.execute("pragma wal_checkpoint(passive)")
elapsed = time.time() - t0
c.execute("pragma wal_checkpoint(truncate)")
size = os.path.getsize(p)
print(f"{variant}: {n / elapsed:,.0f} rows/s ({elapsed:.1f} s, of which indexing {index_secs:.1f} s), {size / n:.0f} bytes/row")
os.system(f"rm -rf {d}")
