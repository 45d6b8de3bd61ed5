#!/usr/bin/env python3
"""serve_load.py - bounded load test of `moestream serve` over loopback.

Starts the server on a free port, measures each prompt's greedy answer alone,
then runs N requests from C concurrent clients, mixed by request number:
  0-2  non-streamed greedy completions   3-4 non-streamed greedy chat
  5-6  streamed greedy completions       7   streamed chat, abandoned after 2 events
  8    malformed JSON (expects 400)      9   streamed sampled chat (temperature 0.8)
Checks that every greedy answer equals the one measured alone (concurrent
requests share forward steps; numbers must not change), that streams end with
[DONE], that malformed bodies get 400, that abandoned streams are counted as
cancelled. Samples the server's RSS every 50 ms against its RAM budget. Then
SIGTERM, and the exit status must be 0. Reports throughput, p50/p99 latency.

  --decode-bench: instead, C clients each send `--rounds` greedy completions
  of --max-tokens tokens on distinct prompts; reports aggregate generated
  tok/s and expert bytes read per generated token (from /metrics).

Standard library only; everything stops by itself (timeouts on every socket).
"""
import argparse, http.client, json, os, signal, socket, subprocess, sys, threading, time

PROMPTS = [
    "def fibonacci(n):", "The quick brown fox", "import numpy as np\n", "Once upon a time",
    "class Stack:\n    def __init__(self):", "SELECT name FROM users WHERE", "# Sort a list in Python\n",
    "The capital of France is",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, args):
        self.port = free_port()
        cmd = [args.bin, "serve", "-m", args.model, "--port", str(self.port), "--parallel", str(args.parallel),
               "--queue", str(args.queue), "--alias", "load"] + args.extra.split()
        if args.ram_budget:
            cmd += ["--ram-budget", args.ram_budget]
        self.log = open(args.log, "w")
        self.p = subprocess.Popen(cmd, stderr=self.log, stdout=self.log)
        deadline = time.time() + args.load_timeout
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.p.poll() is not None:
                sys.exit("server exited during load; see " + args.log)
            time.sleep(0.2)
        self.p.kill()
        sys.exit("server did not become healthy")

    def conn(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, raw=None):
        c = self.conn()
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, out

    def metrics(self):
        st, out = self.request("GET", "/metrics")
        m = {}
        for line in out.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.split()
                m[k] = float(v)
        return m

    def rss(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


def body_for(kind, prompt, max_tokens, stream, temp=0.0):
    if kind == "chat":
        return {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": temp,
                "stream": stream, "stream_options": {"include_usage": True}}
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": temp, "stream": stream,
            "stream_options": {"include_usage": True}}


def read_stream(resp, kind, abandon_after=None):
    """Text of an SSE stream; (text, done, n_tokens)."""
    text, done, events, ntok = "", False, 0, 0
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            break
        events += 1
        j = json.loads(data)
        if j.get("usage"):
            ntok = j["usage"]["completion_tokens"]
        for ch in j.get("choices", []):
            text += (ch.get("delta", {}).get("content") or "") if kind == "chat" else ch.get("text", "")
        if abandon_after and events >= abandon_after:
            return text, False, ntok
    return text, done, ntok


def one(srv, kind, prompt, max_tokens, stream, temp=0.0, abandon_after=None):
    c = srv.conn()
    path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
    c.request("POST", path, body=json.dumps(body_for(kind, prompt, max_tokens, stream, temp)),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        out = r.read()
        c.close()
        return r.status, out.decode(errors="replace"), False, 0
    if stream:
        text, done, ntok = read_stream(r, kind, abandon_after)
        c.close()  # abandoned: closes mid-stream
        return 200, text, done, ntok
    j = json.loads(r.read())
    c.close()
    ch = j["choices"][0]
    return 200, (ch["message"]["content"] or "") if kind == "chat" else ch["text"], True, j["usage"][
        "completion_tokens"]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else 0


def load_test(srv, args):
    expected = {}
    for kind in ("text", "chat"):
        for p in PROMPTS:
            st, text, _, _ = one(srv, kind, p, args.max_tokens, False)
            assert st == 200, text
            expected[(kind, p)] = text
    m0 = srv.metrics()
    budget = m0["moestream_ram_budget_bytes"]
    lock = threading.Lock()
    res = {"lat": [], "ok": 0, "wrong": [], "malformed_ok": 0, "abandoned": 0, "busy": 0, "sampled_ok": 0,
           "tokens": 0, "errors": []}
    next_i = [0]
    rss_max = [srv.rss()]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            rss_max[0] = max(rss_max[0], srv.rss())
            time.sleep(0.05)

    def client():
        while True:
            with lock:
                i = next_i[0]
                if i >= args.requests:
                    return
                next_i[0] += 1
            p = PROMPTS[(i * 7 + i // 10) % len(PROMPTS)]
            kind_n = i % 10
            t0 = time.time()
            try:
                if kind_n == 8:
                    st, out = srv.request("POST", "/v1/chat/completions", raw='{"messages": [{"role": "user", ')
                    with lock:
                        if st == 400 and '"invalid JSON at line 1' in out.decode():
                            res["malformed_ok"] += 1
                        else:
                            res["wrong"].append((i, "malformed", st))
                    continue
                if kind_n == 7:
                    st, text, done, _ = one(srv, "chat", p, 64, True, abandon_after=2)
                    with lock:
                        res["abandoned"] += st == 200
                        res["busy"] += st == 429
                    continue
                if kind_n == 9:
                    st, text, done, ntok = one(srv, "chat", p, args.max_tokens, True, temp=0.8)
                    with lock:
                        if st == 200 and done:
                            res["sampled_ok"] += 1
                            res["tokens"] += ntok
                            res["lat"].append(time.time() - t0)
                        elif st == 429:
                            res["busy"] += 1
                        else:
                            res["wrong"].append((i, "sampled", st, text[:200]))
                    continue
                kind = "chat" if kind_n in (3, 4) else "text"
                stream = kind_n in (5, 6)
                st, text, done, ntok = one(srv, kind, p, args.max_tokens, stream)
                dt = time.time() - t0
                with lock:
                    if st == 429:
                        res["busy"] += 1
                    elif st == 200 and done and text == expected[(kind, p)]:
                        res["ok"] += 1
                        res["tokens"] += ntok
                        res["lat"].append(dt)
                    else:
                        res["wrong"].append((i, kind, stream, st, text[:120], expected[(kind, p)][:120]))
            except Exception as e:  # counted, reported
                with lock:
                    res["errors"].append((i, repr(e)))

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.time()
    clients = [threading.Thread(target=client) for _ in range(args.clients)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(args.timeout)
    wall = time.time() - t0
    stop.set()
    time.sleep(0.3)  # let the cancellations land
    m1 = srv.metrics()
    n_greedy = sum(1 for i in range(args.requests) if i % 10 not in (7, 8, 9))
    print(f"load: {args.requests} requests from {args.clients} clients in {wall:.2f} s: "
          f"{args.requests / wall:.1f} req/s, {res['tokens'] / wall:.1f} generated tok/s")
    print(f"latency (answered requests, full response): p50 {1000 * pct(res['lat'], 50):.0f} ms, "
          f"p99 {1000 * pct(res['lat'], 99):.0f} ms")
    print(f"correct greedy answers (equal to the answer alone): {res['ok']}/{n_greedy}; sampled streams complete: "
          f"{res['sampled_ok']}; malformed -> 400: {res['malformed_ok']}; abandoned mid-stream: {res['abandoned']} "
          f"(server counted {int(m1['moestream_requests_cancelled_total'] - m0['moestream_requests_cancelled_total'])} "
          f"cancelled); 429: {res['busy']}; wrong: {len(res['wrong'])}; client errors: {len(res['errors'])}")
    for w in res["wrong"][:5] + res["errors"][:5]:
        print("  problem:", w)
    print(f"RSS max {rss_max[0] / 2**20:.1f} MiB vs RAM budget {budget / 2**20:.1f} MiB "
          f"({'within' if rss_max[0] <= budget else 'ABOVE'} budget)")
    print(f"expert cache hit rate {m1['moestream_expert_cache_hit_rate']:.3f}, bytes read per token "
          f"{m1['moestream_bytes_read_per_token']:.0f}, I/O wait share {m1['moestream_io_wait_share']:.3f}")
    good = (res["ok"] == n_greedy and not res["wrong"] and not res["errors"] and rss_max[0] <= budget)
    return good


def decode_bench(srv, args):
    for k in range(args.warmup):  # one sequential request per round: warms the expert cache, not measured
        st, text, _, _ = one(srv, "text", PROMPTS[k % len(PROMPTS)] + " # warm-up", args.max_tokens, False)
        assert st == 200, text
    m0 = srv.metrics()
    lock = threading.Lock()
    tokens = [0]
    rss_max = [srv.rss()]

    def client(k):
        for r in range(args.rounds):
            p = PROMPTS[(k + r * args.clients) % len(PROMPTS)] + f" # {k}.{r}"
            st, text, done, ntok = one(srv, "text", p, args.max_tokens, False)
            assert st == 200, text
            with lock:
                tokens[0] += ntok
                rss_max[0] = max(rss_max[0], srv.rss())

    t0 = time.time()
    th = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in th:
        t.start()
    for t in th:
        t.join(args.timeout)
    wall = time.time() - t0
    m1 = srv.metrics()
    gen = m1["moestream_tokens_predicted_total"] - m0["moestream_tokens_predicted_total"]
    byt = m1["moestream_bytes_read_total"] - m0["moestream_bytes_read_total"]
    steps = m1["moestream_engine_steps_total"] - m0["moestream_engine_steps_total"]
    print(f"decode-bench: parallel {args.parallel}, {args.clients} clients x {args.rounds} requests x "
          f"{args.max_tokens} tokens (after {args.warmup} warm-up): {gen:.0f} tokens in {wall:.2f} s = {gen / wall:.3f} tok/s aggregate; "
          f"{byt / 2**20 / max(gen, 1):.1f} MiB read per generated token; {steps:.0f} steps; "
          f"RSS max {rss_max[0] / 2**30:.2f} GiB vs budget {m1['moestream_ram_budget_bytes'] / 2**30:.2f} GiB")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/bin/moestream")
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--queue", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--ram-budget", default=None)
    ap.add_argument("--extra", default="", help="more server flags, e.g. '-t 2'")
    ap.add_argument("--log", default="/tmp/moestream-serve-load.log")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run")
    ap.add_argument("--load-timeout", type=float, default=600)
    ap.add_argument("--decode-bench", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=0, help="decode-bench: unmeasured requests first")
    args = ap.parse_args()
    srv = Server(args)
    try:
        good = decode_bench(srv, args) if args.decode_bench else load_test(srv, args)
    finally:
        srv.p.send_signal(signal.SIGTERM)
        try:
            rc = srv.p.wait(120)
        except subprocess.TimeoutExpired:
            srv.p.kill()
            rc = "killed after 120 s"
    print(f"SIGTERM: server exited with {rc}")
    sys.exit(0 if good and rc == 0 else 1)


if __name__ == "__main__":
    main()
