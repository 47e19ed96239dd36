#!/usr/bin/env python3
"""Per run of a bench/run.sh log: mean CPU (% of one core) of the server, the
generator and everything else ("foreign") from the cpu_monitor.py samples taken
while the run was in progress (from its '==' line to its first output line).
Usage: interference.py SUITE.log MONITOR.tsv"""
import sys

log, mon = sys.argv[1], sys.argv[2]
samples = []
for l in open(mon):
    p = l.rstrip("\n").split("\t")
    if p[0] == "time":
        continue
    samples.append((p[0], int(p[1]), int(p[2]), int(p[3]), p[4]))
runs, cur = [], None
for l in open(log):
    t, _, rest = l.rstrip("\n").partition(" ")
    if rest.startswith("== "):
        cur = [rest.split(":")[0][3:], t, None]
        runs.append(cur)
    elif cur and cur[2] is None and rest:
        cur[2] = t
print(f"{'run':32} {'window':19} {'n':>3} {'server':>6} {'client':>6} {'foreign':>7}  top foreign (max sample)")
for name, a, b in runs:
    w = [s for s in samples if a <= s[0] <= (b or "99")]
    if not w:
        continue
    m = lambda i: sum(s[i] for s in w) / len(w)
    top = max(w, key=lambda s: s[3])
    print(f"{name:32} {a}-{b} {len(w):3} {m(1):6.0f} {m(2):6.0f} {m(3):7.0f}  {top[4]} ({top[3]})")
