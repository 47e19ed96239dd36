#!/usr/bin/env python3
"""Samples CPU once a second while a benchmark runs, to spot interference on a
shared machine: per sample, the CPU of the benchmarked server (the pid in any
/tmp/xb-*/server.pid), of the load generator (comm xmppbench), and of every
other process ("foreign"), in % of one core, plus the busiest foreign command.
Usage: cpu_monitor.py OUT.tsv   (runs until killed)"""
import glob, os, sys, time

HZ = os.sysconf("SC_CLK_TCK")

def snapshot():
    cpu = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(")")
        comm = s[s.find("(") + 1:r]
        fields = s[r + 2:].split()
        cpu[int(d)] = (comm, int(fields[11]) + int(fields[12]))
    return cpu

def server_pids():
    p = set()
    for f in glob.glob("/tmp/xb-*/server.pid"):
        try:
            p.add(int(open(f).read().strip()))
        except (OSError, ValueError):
            pass
    return p

out = open(sys.argv[1], "a", buffering=1)
out.write("time\tserver\tclient\tforeign\ttop_foreign\n")
prev, pt = snapshot(), time.time()
while True:
    time.sleep(1)
    cur, t = snapshot(), time.time()
    dt = t - pt
    srv = server_pids()
    acc = {"server": 0.0, "client": 0.0, "foreign": 0.0}
    foreign = {}
    for pid, (comm, ticks) in cur.items():
        if pid == os.getpid():
            continue
        # a process new since the last sample: count all it used
        d = ticks - prev[pid][1] if pid in prev else ticks
        pct = 100.0 * d / HZ / dt
        if pct <= 0:
            continue
        if pid in srv:
            acc["server"] += pct
        elif comm == "xmppbench":
            acc["client"] += pct
        else:
            acc["foreign"] += pct
            foreign[comm] = foreign.get(comm, 0) + pct
    top = max(foreign.items(), key=lambda kv: kv[1]) if foreign else ("-", 0)
    out.write(f"{time.strftime('%H:%M:%S', time.gmtime(t))}\t{acc['server']:.0f}\t{acc['client']:.0f}\t{acc['foreign']:.0f}\t{top[0]}:{top[1]:.0f}\n")
    prev, pt = cur, t
