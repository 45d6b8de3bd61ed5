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

#include "model.h"
#include "pool.h"
#include "sampler.h"
#include "session.h"

struct tokenizer;

struct cli_opts {
    const char *model_dir;      /* -m */
    const char *prompt;         /* -p */
    const char *prompt_file;    /* -f */
    const char *system;         /* --system */
    int n_predict;              /* -n */
    int n_threads;              /* -t */
    int n_ctx;                  /* -c; 0 = min(train ctx, 4096) */
    int n_batch;                /* -b */
    uint64_t ram_budget;        /* --ram-budget */
    enum provider_io io;        /* --io */
    int queue_depth;            /* --queue-depth */
    bool mlock;
    bool verify_reads;
    bool stats;                 /* --stats */
    bool stats_json;            /* --stats-json */
    bool special;               /* --special: parse special tokens in the prompt */
    bool bos;                   /* --bos */
    bool ids;                   /* tokenize --ids */
    const char *trace_out;      /* --trace-out */
    struct sampler_opts samp;
    /* logits / perplexity */
    const char *tokens_in, *text_in, *out, *tokens_out, *kl_base;
    int chunks;                 /* perplexity: 0 = all */
};

struct cli_runtime {
    struct model *m;
    struct pool *pool;
    struct session *s;
    struct tokenizer *tok;
    FILE *trace;
};

/* Parses argv (after the subcommand). usage() is printed for --help; an
 * unknown or malformed flag prints one line and exits 2. `allowed` lists the
 * flags the subcommand takes (space separated, long or short names). */
void cli_parse(struct cli_opts *o, int argc, char **argv, const char *allowed,
               void (*usage)(FILE *out));

/* Opens the model, pool, session and tokenizer; on error prints one line
 * and returns nonzero. */
int cli_load(struct cli_runtime *rt, const struct cli_opts *o);
void cli_unload(struct cli_runtime *rt);

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

#endif
