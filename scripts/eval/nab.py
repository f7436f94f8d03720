#!/usr/bin/env python3
"""Scores `watchdog replay` on the NAB realTraffic series in ../shared/data/nab.

For every labelled anomaly window, a deploy is placed shortly before the labelled anomaly
(the window's centre, where NAB puts the label) and should be called a regression; deploys
placed at least a day and a half away from any window should not be. Deploys without
data around them (24 samples in the day before, 12 in the two hours after) are skipped:
the series have gaps of days. Each deploy is
replayed on its own (the series as metrics, one deploy), so verdicts do not interact.

    python3 scripts/eval/nab.py [--bin target/release/watchdog] [--lead-mins 10] [--metric value]
"""
import argparse, datetime as dt, json, os, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument('--bin', default='target/release/watchdog')
ap.add_argument('--data', default=os.path.join(os.path.dirname(__file__), '../../../shared/data/nab'))
ap.add_argument('--lead-mins', type=float, default=10.0, help='deploy this long before the labelled anomaly')
ap.add_argument('--metric', default='value', help='metric name to give the series')
ap.add_argument('--replay-args', default='', help='extra replay arguments, e.g. "--monitoring-window-secs 14400"')
ap.add_argument('-v', action='store_true')
a = ap.parse_args()
if not os.path.isdir(a.data):
    print(f'skipped: {a.data} not present'); sys.exit(0)
windows = json.load(open(os.path.join(a.data, 'realTraffic_windows.json')))
P = lambda s: dt.datetime.strptime(s[:19], '%Y-%m-%d %H:%M:%S').replace(tzinfo=dt.timezone.utc)
F = lambda t: t.strftime('%Y-%m-%dT%H:%M:%SZ')
tot = {'bad': 0, 'det': 0, 'good': 0, 'fa': 0, 'inc_bad': 0, 'inc_good': 0}
tmp = tempfile.mkdtemp()
for name, wins in sorted(windows.items()):
    path = os.path.join(a.data, name)
    rows = [l.strip().split(',') for l in open(path)][1:]
    pts = [(P(r[0]), float(r[1])) for r in rows if len(r) == 2]
    mpath = os.path.join(tmp, 'm.jsonl')
    with open(mpath, 'w') as f:
        for t, v in pts:
            f.write(json.dumps({'timestamp': F(t), a.metric: v}) + '\n')
    wins = [(P(w[0]), P(w[1])) for w in wins]
    deploys = []
    for ws, we in wins:
        c = ws + (we - ws) / 2
        deploys.append((c - dt.timedelta(minutes=a.lead_mins), True))
    t = pts[0][0] + dt.timedelta(days=1)
    while t < pts[-1][0] - dt.timedelta(hours=6):
        if all(t < ws - dt.timedelta(days=1.5) or t > we + dt.timedelta(days=1.5) for ws, we in wins):
            deploys.append((t, False))
        t += dt.timedelta(hours=12)
    def enough(t):
        before = sum(1 for u, _ in pts if t - dt.timedelta(hours=24) <= u < t)
        after = sum(1 for u, _ in pts if t <= u < t + dt.timedelta(hours=2))
        return before >= 24 and after >= 12
    skipped = [d for d in deploys if not enough(d[0])]
    tot['nodata'] = tot.get('nodata', 0) + len(skipped)
    deploys = [d for d in deploys if enough(d[0])]
    for i, (t, bad) in enumerate(deploys):
        dpath = os.path.join(tmp, 'd.jsonl')
        with open(dpath, 'w') as f:
            f.write(json.dumps({'timestamp': F(t), 'deploy_id': f'{name}#{i}'}) + '\n')
        out = subprocess.run([a.bin, 'replay', '--metrics', mpath, '--deploys', dpath] + a.replay_args.split(),
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr); sys.exit(1)
        v = json.loads(out.stdout.splitlines()[0])
        k = v['verdict']
        if bad:
            tot['bad'] += 1; tot['det'] += k == 'regression'; tot['inc_bad'] += k == 'inconclusive'
        else:
            tot['good'] += 1; tot['fa'] += k == 'regression'; tot['inc_good'] += k == 'inconclusive'
        if a.v or (bad and k != 'regression') or (not bad and k == 'regression'):
            print(f"  {'BAD ' if bad else 'good'} {name} {F(t)} -> {k}: {v['reason'][:150]}")
print(f"detected {tot['det']}/{tot['bad']} labelled anomalies (inconclusive {tot['inc_bad']}); "
      f"false alarms {tot['fa']}/{tot['good']} quiet deploys (inconclusive {tot['inc_good']}); "
      f"{tot['nodata']} deploys skipped for lack of data around them")
