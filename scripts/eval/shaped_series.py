#!/usr/bin/env python3
"""Shaped synthetic series through the shared deploy-task ruler.

The real tasks of ../shared/bench are operations metrics: spiky, bursty, mostly level.
This probe asks how the detector does on shapes those tasks hold few of and other real
series hold many of (economic and capacity series): steady trends, random walks with and
without drift, a short cycle, sticky AR(1) noise, a change of spread, skew and counts.
Ten families, eight series each (the change's sign alternates), 300 samples a minute
apart, one change at sample 150 (a level step, a slope change, a drift reversal, a spread
change or a rate change, each plainly visible); `deploy_tasks.py` cuts one bad task at the
change and up to two healthy ones away from it, and scores every built-in baseline beside
the command. The series are written in the layout of the ruler's TCPD loader, which is
what makes it take them (the shared copy lists only NAB and Nezha; the loader is there).

    python3 scripts/eval/shaped_series.py \\
      --cmd "$PWD/target/release/watchdog replay --metrics {metrics} --deploys {deploys} --monitoring-window-secs {window_secs}" \\
      --cmd-name watchdog

Prints the ruler's report, then each family's verdicts for the command. `--seed N` draws
other series (default 7); every other flag goes to `deploy_tasks.py`.

This is a probe of generality, not a target: nothing in the detector is fitted to it, and
a family it handles badly is a known limit to report, not a rule to add.
"""
from __future__ import annotations

import collections
import json
import math
import os
import random
import sys
import tempfile
from pathlib import Path

N, CHANGE, PER_FAMILY = 300, 150, 8


def families(rng: random.Random):
    """(name, series maker) pairs; each maker takes the change's sign (+1 or -1)."""
    def noise(n, sd=1.0):
        return [rng.gauss(0.0, sd) for _ in range(n)]

    def ar1(n, phi):
        x, out = 0.0, []
        for _ in range(n):
            x = phi * x + rng.gauss(0.0, math.sqrt(1.0 - phi * phi))
            out.append(x)
        return out

    def walk(sign):
        x, out = 50.0, []
        for i in range(N):
            x += rng.gauss(0.0, 1.0) + (8.0 * sign if i == CHANGE else 0.0)
            out.append(x)
        return out

    def drift(sign):
        x, step, out = 50.0, 0.3 * sign, []
        for i in range(N):
            if i == CHANGE:
                step = -step
            x += step + rng.gauss(0.0, 0.5)
            out.append(x)
        return out

    def poisson(lam):
        # Knuth's product of uniforms: fine for the small rates used here
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1

    def after(i):
        return i >= CHANGE

    yield "level", lambda s: [10 + e + (3 * s if after(i) else 0) for i, e in enumerate(noise(N))]
    yield "ar07", lambda s: [10 + e + (3 * s if after(i) else 0) for i, e in enumerate(ar1(N, 0.7))]
    yield "walk", walk
    yield "trend_step", lambda s: [10 + 0.05 * i + e + (3 * s if after(i) else 0)
                                   for i, e in enumerate(noise(N))]
    yield "slope_change", lambda s: [20 + 0.05 * i + e + (0.4 * s * (i - CHANGE) if after(i) else 0)
                                     for i, e in enumerate(noise(N))]
    yield "cycle12", lambda s: [10 + 3 * math.sin(2 * math.pi * i / 12) + e + (3 * s if after(i) else 0)
                                for i, e in enumerate(noise(N))]
    yield "spread", lambda s: [10 + e * (4 if after(i) else 1) for i, e in enumerate(noise(N))]
    yield "counts", lambda s: [float(poisson(8 if after(i) == (s > 0) else 3)) for i in range(N)]
    yield "skewed", lambda s: [10 * math.exp(rng.gauss(0.0, 0.4)) * (1.8 ** s if after(i) else 1)
                               for i in range(N)]
    yield "drift_turn", drift


def write_root(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    base = root / "tcpd" / "datasets"
    annotations = {}
    for rep in range(PER_FAMILY):
        sign = 1 if rep % 2 == 0 else -1
        for name, make in families(rng):
            sid = f"{name}_{rep}"
            (base / sid).mkdir(parents=True, exist_ok=True)
            doc = {"n_dim": 1, "series": [{"raw": make(sign)}], "time": {}}
            (base / sid / f"{sid}.json").write_text(json.dumps(doc))
            # two annotators, the second a sample off at times, as people are
            annotations[sid] = {"a": [CHANGE], "b": [CHANGE + rng.choice([-1, 0, 1])]}
    (root / "tcpd" / "annotations.json").write_text(json.dumps(annotations))


def main() -> int:
    args = sys.argv[1:]
    seed = 7
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    name = args[args.index("--cmd-name") + 1] if "--cmd-name" in args else "cmd"
    bench = Path(__file__).resolve().parents[3] / "shared" / "bench"
    sys.path.insert(0, str(bench))
    import deploy_tasks  # noqa: E402  (the shared ruler)

    if "tcpd" not in deploy_tasks.ALL_DATASETS:
        deploy_tasks.ALL_DATASETS.append("tcpd")
    with tempfile.TemporaryDirectory(prefix="shaped_") as tmp:
        root = Path(tmp)
        write_root(root, seed)
        out = root / "out.json"
        rc = deploy_tasks.main(["--data", str(root), "--datasets", "tcpd",
                                "--tasks-dir", str(root / "tasks"), "--out", str(out)] + args)
        if rc or not out.exists():
            return rc or 1
        report = json.loads(out.read_text())
    by_family = collections.defaultdict(collections.Counter)
    for task in report["tasks"]:
        verdict = task["results"].get(name, {}).get("verdict")
        if verdict is None:
            continue
        family = task["series"].rsplit("_", 1)[0]
        by_family[(family, task["label"])][verdict] += 1
    if by_family:
        print(f"\n### {name} by family\n")
        print("| family | bad: regression / healthy / inconclusive | healthy: regression / healthy / inconclusive |")
        print("|---|---|---|")
        for family in sorted({f for f, _ in by_family}):
            cells = []
            for label in ("bad", "healthy"):
                c = by_family[(family, label)]
                cells.append(f"{c['regression']} / {c['healthy']} / {c['inconclusive']}")
            print(f"| {family} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
