/*
 * cli_iobench.c - `moestream iobench`: the I/O-only side of performance.
 *   --trace FILE   replays a routing trace (src/trace.h) through the real
 *                  expert provider with no compute (bench/replay.c): the
 *                  ceiling a run with that routing could reach on this disk.
 *   --device PATH  raw O_DIRECT random-read bandwidth of a file or block
 *                  device per queue depth (io/devbench.c).
 * Only the CLI prints; the measuring is done by bench/ and io/.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "devbench.h"
#include "replay.h"
#include "splitfmt.h"
#include "trace.h"

#define IOBENCH_FLAGS \
    "--model --trace --ram-budget --io --queue-depth --ssd-cache --ssd-cache-size --read-chunk --cache-policy --mlock --verify-reads --json --device " \
    "--size --qd --seconds"

#define IOBENCH_DEFAULT_QD "1,4,8,16,32"
#define IOBENCH_DEFAULT_SECONDS 2.0
#define IOBENCH_SMALL_FILE (1ull << 30) /* below this a file may sit in the drive's cache */

static void iobench_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream iobench -m DIR --trace FILE [--ram-budget SIZE] [--io BACKEND] [--cache-policy P]\n"
            "       moestream iobench --device PATH [-m DIR] [--size BYTES] [--qd LIST] [--seconds S]\n\n"
            "Trace replay: reads the experts a recorded run asked for (moestream run|bench --trace-out),\n"
            "forward step by forward step, through the real expert cache and reader but with no compute,\n"
            "and reports the I/O-only ceiling: tokens per second if compute were free, bytes per token,\n"
            "cache hit rate and bandwidth. The model is opened with the run's context, batch and thread\n"
            "count (from the trace header), so the same --ram-budget gives the same expert cache; without\n"
            "--ram-budget the run's own budget is used. Replayed bytes equal the run's for the same cache\n"
            "(exactly so when completion order is deterministic: --io buffered, or a cache that never evicts).\n\n"
            "  -m, --model DIR        the split model the trace was recorded on\n"
            "      --trace FILE       the routing trace\n"
            "      --ram-budget SIZE  RAM budget to replay with (default: the run's)\n"
            "      --io BACKEND       uring (default), pread or buffered\n"
            "      --queue-depth N    reads in flight (default 16)\n"
            "      --cache-policy P   slru (default) or lru\n"
            "      --mlock, --verify-reads  as for run (reads are not checked unless --verify-reads)\n\n"
            "Device bandwidth: random reads of BYTES at random 16 KiB-aligned offsets with O_DIRECT,\n"
            "at each queue depth for a fixed time. Use a file of at least 1 GiB (a model's experts file\n"
            "will do) or the block device itself (read-only; needs read permission).\n\n"
            "      --device PATH      file or block device to read\n"
            "      --size BYTES       bytes per read (default: the model's expert blob with -m, else 1M)\n"
            "      --qd LIST          queue depths, comma separated (default " IOBENCH_DEFAULT_QD ")\n"
            "      --seconds S        time per queue depth (default %.0f)\n"
            "      --io BACKEND       uring (default) or pread\n\n"
            "      --json             one JSON object on stdout instead of the text report\n",
            IOBENCH_DEFAULT_SECONDS);
}

static void iobench_log(const char *msg)
{
    fprintf(stderr, "moestream: %s\n", msg);
}

static int iobench_trace(struct cli_opts *o)
{
    char err[1024];
    struct trace *t;
    if (trace_read(&t, o->trace_in, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream iobench: %s\n", err);
        return 1;
    }
    /* the run's sizes, so the budget arithmetic gives the same cache */
    o->n_ctx = t->h.n_ctx;
    o->n_batch = t->h.n_batch;
    o->n_threads = t->h.n_threads;
    bool own_budget = o->ram_budget != 0;
    if (!own_budget)
        o->ram_budget = t->h.ram_budget;
    struct model *m = NULL;
    struct engine *e = NULL;
    int n_ctx, n_batch, rc = 1;
    if (cli_open_model(&m, o, &n_ctx, &n_batch) || cli_open_engine(&e, m, o))
        goto out;
    if (t->h.preload && engine_preload(e, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream iobench: preload (the run used --preload): %s\n", err);
        goto out;
    }
    struct replay_stats st;
    if (replay_run(e, t, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream iobench: %s\n", err);
        goto out;
    }
    double wall = st.prefill_s + st.decode_s;
    double hit = st.hits + st.misses ? (double)st.hits / (double)(st.hits + st.misses) : 0;
    double bpt = st.n_tokens ? (double)st.bytes_read / st.n_tokens : 0;
    double dbpt = st.n_decode_tokens ? (double)st.decode_bytes_read / st.n_decode_tokens : 0;
    double dec = st.decode_s > 0 ? st.n_decode_tokens / st.decode_s : 0;
    double pre = st.prefill_s > 0 ? st.n_prefill_tokens / st.prefill_s : 0;
    double bw_io = st.io_wait_s > 0 ? st.bytes_read / st.io_wait_s : 0;
    double bw_wall = wall > 0 ? st.bytes_read / wall : 0;
    const char *policy = o->cache_policy == PROVIDER_CACHE_LRU ? "lru" : "slru";
    double belady = st.accesses ? (double)st.belady_hits / (double)st.accesses : 0;
    double belady_dec = st.decode_accesses ? (double)st.belady_decode_hits / (double)st.decode_accesses : 0;
    if (o->json) {
        printf("{\"mode\":\"trace\",\"trace\":");
        cli_json_str(stdout, o->trace_in);
        printf(",\"model\":");
        cli_json_str(stdout, o->model_dir);
        printf(",\"io\":\"%s\",\"queue_depth\":%d,\"cache_policy\":\"%s\",\"ram_budget_bytes\":%llu,"
               "\"cache_bytes\":%llu,\"run_cache_bytes\":%llu,\"steps\":%d,\"tokens\":%d,\"prefill_tokens\":%d,"
               "\"decode_tokens\":%d,\"prefill_s\":%.6f,\"decode_s\":%.6f,\"prefill_tok_s\":%.3f,"
               "\"decode_tok_s\":%.3f,\"bytes_read\":%llu,\"reads\":%llu,\"bytes_read_per_token\":%.1f,"
               "\"decode_bytes_read_per_token\":%.1f,\"cache_hit_rate\":%.6f,\"evictions\":%llu,"
               "\"io_wait_s\":%.6f,\"read_bw_bytes_s\":%.0f,\"read_bw_wall_bytes_s\":%.0f,"
               "\"belady_hit_rate\":%.6f,\"belady_decode_hit_rate\":%.6f}\n",
               provider_backend_name(engine_provider(e)), o->queue_depth, policy, (unsigned long long)model_plan(m)->ram_budget,
               (unsigned long long)model_plan(m)->cache_bytes, (unsigned long long)t->h.cache_bytes, st.n_steps, st.n_tokens,
               st.n_prefill_tokens, st.n_decode_tokens, st.prefill_s, st.decode_s, pre, dec,
               (unsigned long long)st.bytes_read, (unsigned long long)st.reads, bpt, dbpt, hit,
               (unsigned long long)st.evictions, st.io_wait_s, bw_io, bw_wall, belady, belady_dec);
    } else {
        printf("iobench: replayed %s: %d tokens (%d prompt, %d decode) in %d forward steps\n", o->trace_in,
               st.n_tokens, st.n_prefill_tokens, st.n_decode_tokens, st.n_steps);
        printf("iobench: io %s, cache policy %s, RAM budget %.2f GiB%s, expert cache %.1f MiB (the run had %.1f MiB)\n",
               provider_backend_name(engine_provider(e)), policy, model_plan(m)->ram_budget / 1073741824.0,
               own_budget ? "" : " (the run's)", model_plan(m)->cache_bytes / 1048576.0, t->h.cache_bytes / 1048576.0);
        char d[32] = "n/a (no decode steps)", pp[32] = "n/a (no prompt steps)";
        if (st.n_decode_tokens)
            snprintf(d, sizeof(d), "%.1f tok/s", dec);
        if (st.n_prefill_tokens)
            snprintf(pp, sizeof(pp), "%.1f tok/s", pre);
        printf("iobench: I/O-only ceiling: decode %s, prompt %s\n", d, pp);
        printf("iobench: read %.1f MiB in %llu reads, %.3f MiB/token (decode %.3f MiB/token), cache hit rate "
               "%.1f%%, %llu evictions\n",
               st.bytes_read / 1048576.0, (unsigned long long)st.reads, bpt / 1048576.0, dbpt / 1048576.0,
               100 * hit, (unsigned long long)st.evictions);
        printf("iobench: Belady's optimal hit rate with the same slots: %.1f%%, in decode steps %.1f%% (the "
               "ceiling for any policy)\n", 100 * belady, 100 * belady_dec);
        printf("iobench: bandwidth %.0f MB/s over I/O wait (%.3f s), %.0f MB/s over the replay (%.3f s)\n",
               bw_io / 1e6, st.io_wait_s, bw_wall / 1e6, wall);
    }
    rc = 0;
out:
    engine_close(e);
    model_close(m);
    trace_free(t);
    return rc;
}

/* Parses "1,4,8" into qd[]; returns the count, or -1. */
static int parse_qd_list(const char *s, int *qd, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > 4096 || n == max)
            return -1;
        qd[n++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return n;
}

/* The largest expert read of a split model: blob_bytes rounded up to the
 * blob alignment (what the provider reads). 0 with a message on error. */
static uint64_t model_read_size(const char *dir)
{
    char err[1024];
    struct split_model *sm;
    if (split_open(&sm, dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream iobench: %s\n", err);
        return 0;
    }
    uint64_t best = 0;
    for (int l = 0; l < sm->n_layer; l++) {
        uint64_t b = (sm->layers[l].blob_bytes + SPLIT_BLOB_ALIGN - 1) / SPLIT_BLOB_ALIGN * SPLIT_BLOB_ALIGN;
        if (sm->layers[l].n_expert > 0 && b > best)
            best = b;
    }
    split_close(sm);
    if (best == 0)
        fprintf(stderr, "moestream iobench: %s has no routed experts: pass --size\n", dir);
    return best;
}

static int iobench_device(struct cli_opts *o)
{
    char err[1024];
    int qd[64];
    int n_qd = parse_qd_list(o->qd_list ? o->qd_list : IOBENCH_DEFAULT_QD, qd, 64);
    if (n_qd <= 0) {
        fprintf(stderr, "moestream iobench: --qd: expected queue depths 1..4096 separated by commas, e.g. 1,4,16\n");
        return 2;
    }
    if (o->io == PROVIDER_IO_BUFFERED) {
        fprintf(stderr, "moestream iobench: --device measures O_DIRECT reads: use --io uring or --io pread\n");
        return 2;
    }
    uint64_t block = o->size;
    if (!block)
        block = o->model_dir ? model_read_size(o->model_dir) : 1ull << 20;
    if (!block)
        return 1;
    if (block % 4096 || block > (256ull << 20)) {
        fprintf(stderr, "moestream iobench: --size %llu: reads must be a multiple of 4096 bytes and at most 256M\n",
                (unsigned long long)block);
        return 2;
    }
    uint64_t fsize;
    bool blk;
    int rc = devbench_size(o->device, &fsize, &blk, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "moestream iobench: %s%s\n", err,
                rc == -EPERM || rc == -EACCES ? " (no permission to read it: pass a large file on that device instead)"
                                              : "");
        return 1;
    }
    if (fsize < block) {
        fprintf(stderr, "moestream iobench: %s holds %llu bytes, less than one %llu-byte read: use a larger file "
                        "(at least 1 GiB) or the block device\n",
                o->device, (unsigned long long)fsize, (unsigned long long)block);
        return 1;
    }
    if (!blk && fsize < IOBENCH_SMALL_FILE)
        fprintf(stderr, "moestream iobench: note: %s is only %.1f MiB; random reads over a small file may be served "
                        "by the drive's cache: use a file of at least 1 GiB or the block device\n",
                o->device, fsize / 1048576.0);
    double secs = o->seconds > 0 ? o->seconds : IOBENCH_DEFAULT_SECONDS;
    enum reader_backend be = o->io == PROVIDER_IO_PREAD ? READER_PREAD : READER_URING;
    if (o->json) {
        printf("{\"mode\":\"device\",\"path\":");
        cli_json_str(stdout, o->device);
        printf(",\"file_bytes\":%llu,\"read_bytes\":%llu,\"seconds_per_qd\":%.3f,\"results\":[",
               (unsigned long long)fsize, (unsigned long long)block, secs);
    }
    rc = 0;
    bool warned = false;
    for (int i = 0; i < n_qd; i++) {
        struct devbench_opts d = { o->device, be, (size_t)block, qd[i], secs, 0, 0x5eed + (uint64_t)i, iobench_log };
        struct devbench_result r;
        if (devbench_run(&d, &r, err, sizeof(err)) < 0) {
            fprintf(stderr, "moestream iobench: %s\n", err);
            rc = 1;
            break;
        }
        if (i == 0 && !o->json)
            printf("iobench: %s (%.1f MiB), %.0f KiB reads at random aligned offsets, %s, %s, %.1f s per queue "
                   "depth\n   qd       MB/s       IOPS      reads\n",
                   o->device, fsize / 1048576.0, block / 1024.0, reader_backend_name(r.backend),
                   r.backend == READER_BUFFERED ? "buffered (NOT O_DIRECT: the page cache is measured)" : "O_DIRECT",
                   secs);
        if (r.backend == READER_BUFFERED && !warned) {
            fprintf(stderr, "moestream iobench: warning: O_DIRECT is not available for %s: the numbers include the "
                            "page cache\n",
                    o->device);
            warned = true;
        }
        double bw = r.seconds > 0 ? r.bytes / r.seconds : 0, iops = r.seconds > 0 ? r.reads / r.seconds : 0;
        if (o->json)
            printf("%s{\"qd\":%d,\"io\":\"%s\",\"bytes_s\":%.0f,\"mb_s\":%.1f,\"iops\":%.1f,\"reads\":%llu,"
                   "\"seconds\":%.4f}",
                   i ? "," : "", qd[i], reader_backend_name(r.backend), bw, bw / 1e6, iops,
                   (unsigned long long)r.reads, r.seconds);
        else
            printf("%5d %10.1f %10.1f %10llu\n", qd[i], bw / 1e6, iops, (unsigned long long)r.reads);
        fflush(stdout);
    }
    if (o->json)
        printf("]}\n");
    return rc;
}

int cli_iobench(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, IOBENCH_FLAGS, iobench_usage);
    if (!o.verify_given)
        o.verify_reads = false; /* an I/O benchmark measures reads, not hashing, unless asked */
    if (!o.trace_in == !o.device) {
        fprintf(stderr, "moestream iobench: pass either -m DIR --trace FILE or --device PATH (see --help)\n");
        return 2;
    }
    if (o.device)
        return iobench_device(&o);
    if (!o.model_dir) {
        fprintf(stderr, "moestream iobench: --trace needs the model it was recorded on: pass -m DIR\n");
        return 2;
    }
    return iobench_trace(&o);
}
