#!/usr/bin/env python3
"""kbench_ab.py REPS name=KBENCH ... -- KBENCH_ARGS : run moestream-kbench
--json binaries alternately (one run per binary per rep, each run under
flock /work/bench.lock), and print the median of every kernel column per
binary and type, and each type's ratio to Q4_K within the same binary.
Used for kernel A/B comparisons on the shared machine (bench/README.md)."""
import fcntl, json, statistics, subprocess, sys

i = sys.argv.index('--')
reps, bins, args = int(sys.argv[1]), [a.split('=', 1) for a in sys.argv[2:i]], sys.argv[i + 1:]
res = {n: [] for n, _ in bins}
lk = open('/work/bench.lock', 'a')
for r in range(reps):
    for n, b in bins:
        fcntl.flock(lk, fcntl.LOCK_EX)
        p = subprocess.run([b, '--json'] + args, capture_output=True, text=True)
        fcntl.flock(lk, fcntl.LOCK_UN)
        j = json.loads(p.stdout)
        res[n].append(j)
        print(f"rep {r} {n}: " + '  '.join(f"{k['type']} " + '/'.join(f"{v:.2f}" for c, v in k.items() if c != 'type')
                                           for k in j['kernels']), flush=True)
cols = [c for c in res[bins[0][0]][0]['kernels'][0] if c != 'type']
print('medians (' + ', '.join(cols) + '), and x Q4_K of the same binary:')
for n, _ in bins:
    med = {}
    for t in [k['type'] for k in res[n][0]['kernels']]:
        med[t] = [statistics.median(next(k[c] for k in j['kernels'] if k['type'] == t) for j in res[n]) for c in cols]
    for t, m in med.items():
        q = med.get('Q4_K')
        rel = '  x Q4_K ' + ' '.join(f"{a / b:.2f}" for a, b in zip(m, q)) if q else ''
        print(f"  {n:8s} {t:5s} " + ' '.join(f"{v:6.2f}" for v in m) + rel)
