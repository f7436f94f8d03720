#!/usr/bin/env python3
"""A cardinality attack on a running `watchdog serve`: posts samples for N distinct
service names (as a client that puts pod names in `service` would), in batches, and
prints the server's resident memory before and after, how many samples were accepted
and how many refused by the series limit.

    WATCHDOG_API_TOKEN=t watchdog serve --state-dir /tmp/wd-card --listen 127.0.0.1:18090 &
    python3 scripts/eval/cardinality.py --url http://127.0.0.1:18090 --token t \
        --pid $! --series 100000

Only the standard library; loopback only.
"""
import argparse
import json
import time
import urllib.request
from datetime import datetime, timezone


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def post(url, token, body):
    req = urllib.request.Request(
        url, data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--prefix", default="pod")
    a = ap.parse_args()
    before = rss_kib(a.pid)
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    accepted = refused = 0
    start = time.time()
    for lo in range(0, a.series, a.batch):
        hi = min(a.series, lo + a.batch)
        body = "".join(
            json.dumps({"timestamp": ts, "service": f"{a.prefix}-{i}", "environment": "production",
                        "error_rate": 0.01, "p95_latency_ms": 190.0}) + "\n"
            for i in range(lo, hi)
        )
        r = post(f"{a.url}/api/v1/metrics", a.token, body)
        accepted += r.get("accepted", 0)
        refused += r.get("rejected_total", 0)
    time.sleep(1)
    after = rss_kib(a.pid)
    print(json.dumps({
        "series_posted": a.series, "accepted": accepted, "refused": refused,
        "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
        "secs": round(time.time() - start, 1),
    }))


if __name__ == "__main__":
    main()
