/*
 * cli.h - what the subcommands of `moestream` share: the common flags
 * (model, threads, context, RAM budget, I/O backend, sampling, statistics),
 * loading a model + session + tokenizer from them, and statistics output.
 * Only main.c and the cli_*.c files use it; they are the only code that
 * prints to the user or exits.
 */
#ifndef MOESTREAM_CLI_H
#define MOESTREAM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "model.h"
#include "sampler.h"
#include "session.h"

struct tokenizer;
struct trace_writer;

struct cli_opts {
    const char *model_dir;      /* -m */
    const char *prompt;         /* -p */
    const char *prompt_file;    /* -f */
    const char *system;         /* --system, -sys, --system-prompt */
    const char *chat_template;  /* --chat-template FILE: overrides the model's */
    int reasoning;              /* --reasoning on|off|auto (-rea; "on" without a value): 1, 0; -1 = template default */
    bool verbose_prompt;        /* --verbose-prompt: print each formatted prompt */
    bool jinja;                 /* --jinja: accepted (templates are always Jinja); --no-jinja clears it */
    bool chat;                  /* run --chat: format -p with the chat template */
    int n_predict;              /* -n */
    int n_threads;              /* -t */
    int n_ctx;                  /* -c; 0 = min(train ctx, 4096) */
    int n_batch;                /* -b */
    uint64_t ram_budget;        /* --ram-budget */
    uint64_t cache_size;        /* --cache-size: expert cache bytes, overriding the budget's share */
    enum provider_io io;        /* --io */
    int queue_depth;            /* --queue-depth */
    const char *ssd_cache;      /* --ssd-cache DIR: the SSD tier's directory */
    uint64_t ssd_cache_size;    /* --ssd-cache-size (bytes; 0 = half the free space there) */
    uint64_t read_chunk;        /* --read-chunk (bytes; 0 = whole experts) */
    bool mlock;
    bool verify_reads;          /* default on; --no-verify-reads turns it off */
    bool verify_given;          /* --verify-reads or --no-verify-reads was given */
    bool stats;                 /* --stats */
    bool stats_json;            /* --stats-json */
    bool special;               /* run/chat: --special (-sp) renders special tokens in the output, as in
                                 * llama.cpp (prompts always parse them); tokenize/logits --text:
                                 * parse special tokens in the text */
    bool bos;                   /* --bos */
    bool ids;                   /* tokenize --ids */
    bool no_escape;             /* --no-escape: keep \n, \t ... in prompts literal */
    bool preload;               /* --preload: fill the expert cache before running */
    int prefetch;               /* --prefetch [off|lookahead|coact|both]: enum prefetch_kind */
    const char *coact;          /* --coact FILE: co-activation statistics, loaded if present,
                                   saved at exit */
    const char *act_bits;       /* --act-bits as given: 16, 8, mixed or a per-site list */
    uint8_t act_site[ENGINE_N_SITES]; /* bits per call site, 0 = the default split */
    int moe_topk;               /* --moe-topk K: experts per token (0 = the model's) */
    bool kv_f16;                /* --cache-type f16 (-ctk/-ctv f16 both): F16 attention KV cache */
    float cache_bias;           /* --cache-bias B: router bonus of cached experts (0 = off) */
    bool escape_text;           /* load --text through cli_unescape (perplexity) */
    const char *trace_out;      /* --trace-out */
    const char *pin_profile;    /* --pin-profile TRACE: keep its most-routed experts resident */
    enum provider_cache_policy cache_policy; /* --cache-policy */
    bool has_n_predict;         /* -n was given */
    /* bench / iobench */
    int repeat;                 /* --repeat; 0 = not given */
    bool cold;                  /* --cold */
    bool json;                  /* --json */
    const char *compare_a, *compare_b; /* --compare "ARGS_A" "ARGS_B" */
    int prompt_tokens;          /* --prompt-tokens */
    const char *trace_in;       /* --trace */
    const char *device;         /* --device */
    uint64_t size;              /* --size, bytes */
    const char *qd_list;        /* --qd */
    double seconds;             /* --seconds */
    struct sampler_opts samp;
    bool seed_random;           /* no -s, or -s -1: the seed came from the clock (printed when sampling) */
    bool no_display_prompt;     /* --no-display-prompt: do not echo the prompt before the continuation */
    bool ignore_eos;            /* --ignore-eos: keep generating past end-of-generation tokens */
    bool log_disable;           /* --log-disable: no notices for ignored llama.cpp flags */
    bool context_shift;         /* --context-shift: when the context is full, drop the older half
                                 * of the tokens after the first --keep and re-read the rest */
    int keep;                   /* --keep N: tokens kept at the start (-1: the whole first prompt) */
    /* logits / perplexity */
    const char *tokens_in, *text_in, *out, *tokens_out, *kl_base;
    int chunks;                 /* perplexity: 0 = all */
    int n_parallel;             /* --parallel: sequences decoded together (batch, bench) */
};

struct cli_runtime {
    struct model *m;
    struct engine *e;
    struct session *s;
    struct tokenizer *tok;
    struct trace_writer *trace; /* --trace-out: installed as the session's route hook */
    uint64_t preload_bytes, preload_reads, preload_misses; /* excluded from run statistics */
    uint64_t preload_tier_bytes;  /* of preload_bytes, from the SSD tier */
    double preload_wait_s, preload_verify_s;
    const char *coact_out;      /* --coact: save the prefetch statistics here at unload */
    struct provider_stats gen0; /* provider counters when decoding began (has_gen0) */
    bool has_gen0;
};

/* Parses argv (after the subcommand). usage() is printed for --help,
 * the version line for --version; an unknown or malformed flag prints one
 * line and exits 2. `allowed` lists the flags the subcommand takes (space
 * separated, long names). "--flag=value" is the same as "--flag value".
 * llama.cpp flags that mean nothing here (-ngl, -fa, -ub, --color, -v,
 * --log-disable) are accepted by every subcommand with a one-line notice;
 * CLI_COMPAT_FLAGS lists those a generating subcommand also accepts. The
 * sampling options are validated (finite, in range). */
#define CLI_COMPAT_FLAGS                                                                          \
    "--ignore-eos --presence-penalty --frequency-penalty --keep --reverse-prompt --interactive "   \
    "--conversation --no-conversation --chat-template --jinja --no-jinja --verbose-prompt --reasoning " \
    "--no-display-prompt --display-prompt --system --context-shift --no-context-shift"
void cli_parse(struct cli_opts *o, int argc, char **argv, const char *allowed,
               void (*usage)(FILE *out));

/* Opens the model, pool, session and tokenizer (and the --trace-out
 * writer); on error prints one line and returns nonzero. */
int cli_load(struct cli_runtime *rt, const struct cli_opts *o);
/* Frees everything; nonzero (with a printed line) if the trace could not be
 * written completely. */
int cli_unload(struct cli_runtime *rt);
/* Only the model, sized exactly as cli_load sizes it for these options (the
 * budget counts n_seq sequences of n_ctx and the scratch of n_batch rows and
 * n_threads); *n_ctx and *n_batch get the resolved values. Prints one line
 * on error. */
int cli_open_model(struct model **m, const struct cli_opts *o, int *n_ctx, int *n_batch);
/* An engine on m with the options' threads, prefetch, activation bits. */
int cli_open_engine(struct engine **e, const struct model *m, const struct cli_opts *o);
/* session_eval that also numbers the forward steps of the --trace-out
 * trace. Use it for every evaluation of a runtime that may trace. */
int cli_eval(struct cli_runtime *rt, const int32_t *tokens, int n, float *logits, bool all_logits);

/* Rewrites backslash escapes in place as llama.cpp's tools do by default
 * (\n \r \t \' \" \\ \xHH; anything else stays as written); returns the new
 * length. Prompt text (-p, -f) goes through it unless --no-escape. */
size_t cli_unescape(char *s, size_t len);

/* Writes s as a JSON string (quoted, escaped). */
void cli_json_str(FILE *f, const char *s);

/* Reads a whole file; NULL with a printed error. *len gets its size. */
char *cli_read_file(const char *path, size_t *len);

/* Prints the I/O and timing statistics of the run (stderr). */
void cli_print_stats(const struct cli_runtime *rt, const struct cli_opts *o, int n_prompt, double t_prompt,
                     int n_gen, double t_gen);

double cli_now(void);
uint64_t cli_peak_rss(void);

/* The common flag help text. */
void cli_common_help(FILE *out);

int cli_run(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_logits(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_iobench(int argc, char **argv);
int cli_batch(int argc, char **argv);
int cli_template(int argc, char **argv);
int cli_serve(int argc, char **argv);

#endif
