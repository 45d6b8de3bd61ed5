#!/usr/bin/env python3
"""act_speed.py - decode and prompt tok/s of several --act-bits settings, alternating.

Runs `moestream bench --json` once per (round, prompt length, setting), settings alternating
within a round; each round holds LOCK (flock, as `flock LOCK CMD` does: one benchmark on the
machine at a time), so a round's runs see the same machine. Prints the medians over rounds as
a Markdown table, with each setting's ratio to the first.

usage: bench/act_speed.py -m MODEL [--rounds 3] [--prompts 64,512] [--lock /work/bench.lock]
                          [--bin build/bin/moestream] [SETTING ...] [-- BENCH FLAGS]
  default settings: 16 mixed 8; default bench flags: --preload --ram-budget 20G -t 2 -c 1024 -n 32
e.g. bench/act_speed.py -m /work/models/q30b.gguf 16 mixed 8
"""
import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    argv = sys.argv[1:]
    extra = ["--preload", "--ram-budget", "20G", "-t", "2", "-c", "1024", "-n", "32"]
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", default="64,512")
    ap.add_argument("--lock", default="/work/bench.lock")
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "bin", "moestream"))
    ap.add_argument("settings", nargs="*", default=["16", "mixed", "8"])
    o = ap.parse_args(argv)
    prompts = [int(p) for p in o.prompts.split(",")]
    res = {}  # (prompt, setting) -> list of (prompt tok/s, decode tok/s)
    for r in range(o.rounds):
        with open(o.lock, "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            for p in prompts:
                for s in o.settings:
                    cmd = [o.bin, "bench", "-m", o.model, "--json", "--prompt-tokens", str(p), "--act-bits", s] + extra
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        sys.exit("act_speed: %s failed:\n%s" % (" ".join(cmd), out.stderr[-2000:]))
                    j = json.loads(out.stdout.strip().splitlines()[-1])
                    pt, dt = j["prefill_tok_s"], j["decode_tok_s"]
                    res.setdefault((p, s), []).append((pt, dt))
                    print("round %d prompt %d %-24s prompt %.2f tok/s, decode %.2f tok/s" % (r + 1, p, s, pt, dt),
                          file=sys.stderr, flush=True)
    cols = []
    for p in prompts:
        cols.append(("prompt (%d) tok/s" % p, p, 0))
        cols.append(("decode after %d tok/s" % p, p, 1))
    print("| `--act-bits` | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    base = {}
    for s in o.settings:
        cells = []
        for name, p, k in cols:
            med = statistics.median(v[k] for v in res[(p, s)])
            base.setdefault((p, k), med)
            ratio = med / base[(p, k)] if base[(p, k)] else 0
            cells.append("%.2f (%.2fx)" % (med, ratio))
        print("| %s | %s |" % (s, " | ".join(cells)))
    print("(medians of %d rounds, settings alternating; flags: %s)" % (o.rounds, " ".join(extra)))


if __name__ == "__main__":
    main()
