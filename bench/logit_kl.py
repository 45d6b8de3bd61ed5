#!/usr/bin/env python3
"""logit_kl.py - how far each --act-bits setting is from exact logits, next to llama.cpp.

For every logit fixture of ../shared/fixtures (models/*, arch/*, tinymoe) runs
`moestream logits` once per precision setting and prints mean KL(reference || ours) and
top-1 agreement, beside llama.cpp's own KL against the same reference. References (fixtures
README): models/ the float64 exact logits, arch/ llama.cpp on the dequantized weights;
tinymoe has reference logits only for its last position (the trainer's float32 forward), so
its row compares all 64 positions with our 16-bit run and the last position with the trainer.

With --long N the same models score N chunks of 256 tokens of tinymoe/val-a-512k.txt
(`moestream perplexity --kl-base`, positions 128..254 of each chunk) and the table shows
mean KL and top-1 against this tool's own 16-bit run instead: many more positions, so the
routing flips that dominate the fixtures' means (one flip in 64-141 positions moves a mean
by 1e-4..1e-2) average out; the reference is 16-bit, not exact (16-bit is within 1e-6 of exact
on every fixture).

usage: bench/logit_kl.py [--bin build/bin/moestream] [--fixtures DIR] [--only NAME]
                         [--long N] [SETTING ...]      (default settings: 16 mixed 8)
Pure Python (no numpy): about 10 s per setting and fixture on 2 threads.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
from array import array


def read_f32(path):
    a = array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return a


def compare(ref, x, n, nv):
    """mean KL(ref || x) over positions, top-1 agreement"""
    kl, same = 0.0, 0
    for t in range(n):
        a = ref[t * nv:(t + 1) * nv]
        b = x[t * nv:(t + 1) * nv]
        ma, mb = max(a), max(b)
        la = math.log(sum(math.exp(v - ma) for v in a))
        lb = math.log(sum(math.exp(v - mb) for v in b))
        k = 0.0
        for va, vb in zip(a, b):
            pa = va - ma - la
            k += math.exp(pa) * (pa - (vb - mb - lb))
        kl += k
        same += a.index(ma) == b.index(mb)
    return kl / n, same / n


def run_logits(binary, model, tokens, setting, threads):
    fd, out = tempfile.mkstemp(suffix=".f32")
    os.close(fd)
    try:
        cmd = [binary, "logits", "-m", model, "--tokens", tokens, "--out", out, "-t", str(threads),
               "--act-bits", setting, "-c", "512"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("logit_kl: %s failed:\n%s" % (" ".join(cmd), r.stderr))
        return read_f32(out)
    finally:
        os.remove(out)


def run_long(binary, model, text, setting, threads, chunks, base):
    cmd = [binary, "perplexity", "-m", model, "-f", text, "-c", "256", "--chunks", str(chunks), "-t", str(threads),
           "--act-bits", setting, "--kl-base", base]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("logit_kl: %s failed:\n%s" % (" ".join(cmd), r.stderr))
    ppl = kl = top1 = None
    for line in r.stdout.splitlines():
        w = line.replace(",", "").split()
        if line.startswith("perplexity:"):
            ppl = float(w[1])
        elif line.startswith("kl-divergence:"):
            kl, top1 = float(w[2]), float(w[5])
    return ppl, kl, top1


def long_table(o):
    text = os.path.join(o.fixtures, "tinymoe", "val-a-512k.txt")
    print("| model (%d x 256 tokens of val-a) | " % o.long + " | ".join("`%s` KL / top-1 / ppl" % s for s in o.settings)
          + " |")
    print("|---|" + "---|" * len(o.settings))
    for name, gguf, _, _, _ in fixtures(o.fixtures):
        if o.only and o.only not in name:
            continue
        fd, base = tempfile.mkstemp(suffix=".kl")
        os.close(fd)
        os.remove(base)
        try:
            ppl16, _, _ = run_long(o.bin, gguf, text, "16", o.threads, o.long, base)
            cells = []
            for s in o.settings:
                if s == "16":
                    cells.append("0 / 1 / %.4f" % ppl16)
                    continue
                ppl, kl, top1 = run_long(o.bin, gguf, text, s, o.threads, o.long, base)
                cells.append("%.3g / %.4f / %.4f" % (kl, top1, ppl))
            print("| %s | %s |" % (name, " | ".join(cells)), flush=True)
        finally:
            if os.path.exists(base):
                os.remove(base)


def fixtures(root):
    """(name, gguf, tokens, reference logits, llama.cpp logits or None)"""
    m = os.path.join(root, "models")
    for q in ("Q8_0", "Q4_K_M", "Q2_K"):
        b = os.path.join(m, "q3moe-a-" + q)
        yield ("q3moe-" + q, b + ".gguf", b + ".tokens.i32", b + ".logits-exact.f32", b + ".logits-llamacpp.f32")
    a = os.path.join(root, "arch")
    for arch in ("llama", "qwen35moe", "gpt-oss", "deepseek2"):
        b = os.path.join(a, arch + "-Q8_0")
        yield (arch, b + ".gguf", b + ".tok.i32", b + ".dq.logits.f32", b + ".logits.f32")
    t = os.path.join(root, "tinymoe")
    yield ("tinymoe", os.path.join(t, "tinymoe-Q8_0.gguf"), os.path.join(t, "ref64.tokens.i32"), None,
           os.path.join(t, "ref64.logits-llamacpp-Q8_0.f32"))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "bin", "moestream"))
    ap.add_argument("--fixtures", default=os.environ.get("MOESTREAM_FIXTURES",
                                                         os.path.join(here, "..", "..", "shared", "fixtures")))
    ap.add_argument("--only", help="run only fixtures whose name contains this")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--long", type=int, default=0, metavar="N", help="score N chunks of val-a instead")
    ap.add_argument("settings", nargs="*", default=["16", "mixed", "8"])
    o = ap.parse_args()
    if not os.path.isdir(o.fixtures):
        sys.exit("logit_kl: no fixtures at %s (pass --fixtures)" % o.fixtures)
    if o.long:
        return long_table(o)
    settings = o.settings
    print("| fixture | llama.cpp KL / top-1 | " + " | ".join("`%s` KL / top-1" % s for s in settings) + " |")
    print("|---|---|" + "---|" * len(settings))
    for name, gguf, tok, ref_path, llama_path in fixtures(o.fixtures):
        if o.only and o.only not in name:
            continue
        n = os.path.getsize(tok) // 4
        llama = read_f32(llama_path)
        nv = len(llama) // n
        runs = {s: run_logits(o.bin, gguf, tok, s, o.threads) for s in settings}
        if ref_path:
            ref = read_f32(ref_path)
            note = ""
        else:
            # tinymoe: our 16-bit run stands in for exact; check it against the trainer's last logits
            ref = runs["16"] if "16" in runs else run_logits(o.bin, gguf, tok, "16", o.threads)
            last = read_f32(os.path.join(os.path.dirname(tok), "ref64.last-logits-transformers.f32"))
            k16, _ = compare(last, ref[(n - 1) * nv:], 1, nv)
            kll, _ = compare(last, llama[(n - 1) * nv:], 1, nv)
            note = " (reference: our 16-bit run; last position vs the trainer: 16-bit %.2g, llama.cpp %.2g)" % (
                k16, kll)
        cells = []
        lk, lt = compare(ref, llama, n, nv)
        for s in settings:
            k, t = compare(ref, runs[s], n, nv)
            cells.append("%.3g / %.3f" % (k, t))
        print("| %s%s | %.3g / %.3f | %s |" % (name, note, lk, lt, " | ".join(cells)), flush=True)


if __name__ == "__main__":
    main()
