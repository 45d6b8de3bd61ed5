#!/usr/bin/env python3
"""dict_sanity.py [-n TOKENS] [--bin MOESTREAM] REF=DIR NAME=DIR ... [-- RUN_ARGS]: the JSON /
dict-literal sanity test of issue 15. Each prompt opens a Python dict literal;
every model continues it greedily (moestream run --temp 0); the text from the
prompt's '{' to its matching '}' (strings and nesting respected) must parse
with ast.literal_eval. RUN_ARGS go to every moestream run. Prints one line per prompt and model, then per model
how many prompts parse and which of REF's (the first model) do not.
Exit status 0 when every model parses every prompt that REF parses, 1 if not,
2 on a usage or run error."""
import ast, subprocess, sys

PROMPTS = [
    'config = {"host": "localhost", "port":',
    'person = {"name": "Alice", "age":',
    'point = {"x":',
    'colors = {"red": "#ff0000", "green":',
    'headers = {"Content-Type": "application/json",',
    'DEFAULTS = {\n    "timeout": 30,\n    "retries":',
    'data = {"id": 1, "tags": ["a", "b"], "meta": {"created":',
    'settings = {\'debug\': False, \'level\':',
]


def first_dict(text, start):
    """text[start] == '{': the balanced literal from there, or None if unclosed"""
    depth, quote, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote:
            if c == '\\':
                i += 1
            elif c == quote:
                quote = None
        elif c in '"\'':
            quote = c
        elif c in '{[(':
            depth += 1
        elif c in '}])':
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    return None


def main(argv):
    n, binary, models, extra = 120, 'build/bin/moestream', [], []
    if '--' in argv:
        extra = argv[argv.index('--') + 1:]
        argv = argv[:argv.index('--')]
    i = 0
    while i < len(argv):
        if argv[i] == '-n':
            n = int(argv[i + 1]); i += 2
        elif argv[i] == '--bin':
            binary = argv[i + 1]; i += 2
        elif '=' in argv[i]:
            models.append(argv[i].split('=', 1)); i += 1
        else:
            print(__doc__, file=sys.stderr); return 2
    if not models:
        print(__doc__, file=sys.stderr); return 2
    ok = {m: [] for m, _ in models}
    for p in PROMPTS:
        for m, d in models:
            r = subprocess.run([binary, 'run', '-m', d, '-p', p, '-n', str(n), '--temp', '0', '--no-escape'] + extra,
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{m}: run failed on {p!r}: {r.stderr.strip()[-300:]}", file=sys.stderr); return 2
            out = r.stdout
            lit = first_dict(out, out.index('{')) if '{' in out else None
            verdict = 'unclosed'
            if lit is not None:
                try:
                    ast.literal_eval(lit); verdict = 'parses'
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    verdict = 'malformed'
            ok[m].append(verdict == 'parses')
            shown = (lit if lit is not None else out)[:160].replace('\n', '\\n')
            print(f"{m:6s} {verdict:9s} {shown}")
    ref = models[0][0]
    fail = False
    for m, _ in models:
        miss = [PROMPTS[k] for k in range(len(PROMPTS)) if ok[ref][k] and not ok[m][k]]
        fail |= bool(miss)
        print(f"{m}: parses {sum(ok[m])} of {len(PROMPTS)}; of {ref}'s {sum(ok[ref])}: "
              + ('all' if not miss else 'misses ' + '; '.join(repr(x) for x in miss)))
    return 1 if fail else 0


sys.exit(main(sys.argv[1:]))
