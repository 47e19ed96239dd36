"""Markdown table of an archive_compare.sh run: python3 archive_summary.py OUTDIR."""
import json,sys,glob,os
print("| mode | build | delivered msg/s | p50 ms | p99 ms | lost | server CPU s/10k | server %core | generator %core | machine busy % | time |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
rows=[]
for f in sorted(glob.glob(sys.argv[1]+'/*-*.txt')):
    v,m=os.path.basename(f)[:-4].split('-',1)
    for l in open(f):
        if l.startswith('{"addr"'):
            x=json.loads(l); rows.append((x['time'],m,v,x))
        elif 'login failed' in l or 'aborting' in l:
            rows.append(('',m,v,None))
for t,m,v,x in sorted(rows,key=lambda r:(r[1],r[2],r[0])):
    if x is None: print(f"| {m} | {v} | run failed (login failed: server not ready) | | | | | | | | |"); continue
    print(f"| {m} | {v} | {x['delivered_per_s']:,.0f} | {x['latency']['p50_ms']:.2f} | {x['latency']['p99_ms']:.2f} | {x['lost']} | {x['server_cpu_s_per_10k']:.3f} | {x['cpu']['server_cpu_pct']:.0f} | {x['cpu']['client_cpu_pct']:.0f} | {x['cpu']['machine_busy_pct']:.0f} | {t[11:19]} |")
