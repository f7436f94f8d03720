#!/usr/bin/env python3
"""Writes a large file of real log messages for measuring `watchdog signatures` end to end.

The messages (the `Content` column) of the Loghub 2k samples in ../shared/data/loghub-2k
(or --data DIR), interleaved system by system in line order and repeated until --lines
lines are written, one message per line.

    python3 scripts/eval/signatures_corpus.py --lines 10000000 --out mixed10m.log
"""
import argparse
import csv
import sys
from pathlib import Path

SYSTEMS = ["HDFS", "OpenSSH", "Linux", "HealthApp", "Android", "Apache", "Mac", "Windows"]


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(here.parents[2] / "shared" / "data" / "loghub-2k"))
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    columns = []
    for system in SYSTEMS:
        path = Path(args.data) / system / f"{system}_2k.log_structured_corrected.csv"
        if not path.is_file():
            print(f"error: {path} not found (pass --data DIR)", file=sys.stderr)
            return 2
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["LineId"]))
        columns.append([r["Content"].replace("\r", " ").replace("\n", " ") for r in rows])
    mixed = [m for group in zip(*columns) for m in group]
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for i in range(args.lines):
            out.write(mixed[i % len(mixed)])
            out.write("\n")
    print(f"wrote {args.lines} lines to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
