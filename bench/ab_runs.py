#!/usr/bin/env python3
"""ab_runs.py REPS OUT name=CMD ... : run each named command (a shell string) once per rep, in order,
alternating, each rep under flock /work/bench.lock; CMD's stdout must be bench --json.
Prints per-run key figures and medians; appends raw JSON lines to OUT."""
import json, subprocess, sys, statistics, time
reps = int(sys.argv[1]); out = sys.argv[2]
cfgs = [a.split('=', 1) for a in sys.argv[3:]]
keys = ['decode_tok_s', 'decode_bytes_read_per_token', 'decode_cache_hit_rate', 'io_busy_frac',
        'decode_io_wait_ms', 'decode_attn_ms', 'decode_router_ms', 'decode_experts_ms', 'decode_io_busy_ms',
        'prefetch_issued', 'prefetch_used', 'prefetch_wasted', 'peak_rss_bytes']
res = {n: [] for n, _ in cfgs}
import fcntl
lk = open('/work/bench.lock', 'a')
for r in range(reps):
    fcntl.flock(lk, fcntl.LOCK_EX)  # one lock hold per rep: the configs run back to back
    for n, c in cfgs:
        t0 = time.time()
        p = subprocess.run(['sh', '-c', c], capture_output=True, text=True)
        line = [l for l in p.stdout.splitlines() if l.startswith('{')]
        if not line:
            print(n, 'FAILED', p.stderr[-800:]); continue
        j = json.loads(line[-1]); res[n].append(j)
        with open(out, 'a') as f:
            f.write(json.dumps({'name': n, 'rep': r, 'cmd': c, 'res': {k: j.get(k) for k in keys}}) + '\n')
        print(f"rep {r} {n:10s} tok/s {j['decode_tok_s']:.3f} MiB/tok {j['decode_bytes_read_per_token']/2**20:.1f} "
              f"hit {j['decode_cache_hit_rate']:.3f} busy {j['io_busy_frac']:.3f} wait {j['decode_io_wait_ms']:.1f} "
              f"attn {j['decode_attn_ms']:.1f} rout {j['decode_router_ms']:.1f} exp {j['decode_experts_ms']:.1f} "
              f"pf {j['prefetch_issued']:.0f}/{j['prefetch_used']:.0f}/{j['prefetch_wasted']:.0f} ({time.time()-t0:.0f}s)", flush=True)
    fcntl.flock(lk, fcntl.LOCK_UN)
print('medians:')
for n, _ in cfgs:
    if res[n]:
        m = {k: statistics.median(x[k] for x in res[n]) for k in keys}
        print(f"  {n:10s} tok/s {m['decode_tok_s']:.3f} ms/tok {1e3/m['decode_tok_s']:.1f} MiB/tok {m['decode_bytes_read_per_token']/2**20:.1f} "
              f"hit {m['decode_cache_hit_rate']:.3f} busy {m['io_busy_frac']:.3f} wait {m['decode_io_wait_ms']:.1f} "
              f"attn {m['decode_attn_ms']:.1f} exp {m['decode_experts_ms']:.1f} n={len(res[n])}")
