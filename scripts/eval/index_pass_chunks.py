#!/usr/bin/env python3
"""A model of the SQLite store's index pass (store/sqlite/samples.rs), to see how long it
holds the single writer: 10,000 series, an indexed pass's worth of rows and ROWS new
ones (default 500,000: five seconds at 100k samples/s), WAL with synchronous=NORMAL and
the writer's 64 MiB page cache.

    python3 scripts/eval/index_pass_chunks.py

one:      the new entries in one sorted INSERT ... SELECT, one transaction (before)
chunked:  the rows read and sorted on another connection, then their entries added
          10,000 a transaction (what the store does)
Prints the transactions, the longest writer hold, the writer's time in all and the
pass's. Four runs on the (shared) development machine: one hold of 750-950 ms; 50
holds of at most 33-61 ms, 0.9-1.3 s of writer time in all.
"""
import os, random, shutil, sqlite3, tempfile, time
SERIES, ROWS, CHUNK = 10_000, int(os.environ.get("ROWS", "500000")), 10_000
def setup():
    d = tempfile.mkdtemp(dir="/tmp"); p = os.path.join(d, "t.db")
    c = sqlite3.connect(p, isolation_level=None)
    c.execute("pragma journal_mode=wal"); c.execute("pragma synchronous=normal"); c.execute("pragma cache_size=-65536")
    c.execute("create table samples (id integer primary key autoincrement, series_id bigint not null, ts_ms bigint not null, body text not null)")
    c.execute("create table sample_index (series_id bigint not null, ts_ms bigint not null, sample_id bigint not null, primary key (series_id, ts_ms, sample_id)) without rowid")
    body = "x" * 150
    def fill(n, t0):
        c.execute("begin")
        c.executemany("insert into samples (series_id, ts_ms, body) values (?,?,?)", ((random.randrange(SERIES), t0 + i, body) for i in range(n)))
        c.execute("commit")
    # an earlier pass's worth, indexed, so every series has leaf pages
    fill(ROWS, 0); c.execute("insert into sample_index select series_id, ts_ms, id from samples order by 1,2,3")
    fill(ROWS, ROWS)
    return c, p, d
for variant in ["one", "chunked"]:
    random.seed(1)
    c, p, d = setup()
    frm = ROWS
    t0 = time.perf_counter(); holds = []
    if variant == "one":
        c.execute("begin immediate")
        c.execute("insert or ignore into sample_index select series_id, ts_ms, id from samples where id > ? order by 1,2,3", (frm,))
        c.execute("commit"); holds.append(time.perf_counter() - t0)
    else:
        r = sqlite3.connect(p, isolation_level=None)
        rows = r.execute("select series_id, ts_ms, id from samples where id > ?", (frm,)).fetchall(); rows.sort()
        read = time.perf_counter() - t0
        for i in range(0, len(rows), CHUNK):
            h = time.perf_counter()
            c.execute("begin immediate")
            c.executemany("insert or ignore into sample_index values (?,?,?)", rows[i:i+CHUNK])
            c.execute("commit"); holds.append(time.perf_counter() - h)
    total = time.perf_counter() - t0
    print(f"{variant}: {len(holds)} transactions, longest writer hold {max(holds)*1000:.0f} ms, writer held {sum(holds)*1000:.0f} ms in all, pass {total*1000:.0f} ms")
    c.close()
    shutil.rmtree(d)
