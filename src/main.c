/*
 * main.c - the `moestream` command: dispatches to the subcommands. Only the
 * CLI prints and exits.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "moestream - run Mixture-of-Experts models larger than RAM by streaming experts from disk\n\n"
            "usage: moestream COMMAND [options]     (moestream COMMAND --help for each)\n\n"
            "  run          generate a continuation of a prompt\n"
            "  batch        continuations of many prompts, decoded together (shared expert reads)\n"
            "  chat         interactive chat with the model's chat template\n"
            "  logits       float32 logits of every position of a token sequence\n"
            "  perplexity   perplexity of a text (llama-perplexity protocol)\n"
            "  tokenize     print the tokens of stdin\n"
            "  bench        prompt and decode speed, I/O and memory statistics; A/B comparisons\n"
            "  iobench      I/O-only replay of a routing trace, or raw device read bandwidth\n"
            "  serve        OpenAI-compatible HTTP server, several conversations decoded together\n"
            "  template     print the prompt a model's chat template renders for a conversation (JSON)\n\n"
            "Options without a command (moestream -m DIR -p TEXT) mean `run`; --version prints the\n"
            "git revision and the kernel ISA in use.\n\n"
            "A model is a GGUF file (the first part of a multi-part one) or, faster and checked, a\n"
            "directory made from it once by moestream-split:\n"
            "  moestream run -m model.gguf -p \"def fibonacci(n):\" -n 64\n"
            "  moestream-split model.gguf -o model-split\n"
            "  moestream run -m model-split -p \"def fibonacci(n):\" -n 64 --ram-budget 8G\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        char v[256];
        version_format(v, sizeof(v), "moestream");
        printf("%s\n", v);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        { "run", cli_run },         { "chat", cli_chat },         { "logits", cli_logits },
        { "perplexity", cli_perplexity }, { "tokenize", cli_tokenize },
        { "bench", cli_bench },           { "iobench", cli_iobench },      { "batch", cli_batch },
        { "template", cli_template },     { "serve", cli_serve },
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 2, argv + 2);
    /* llama.cpp habit: `moestream -m MODEL -p TEXT` is `moestream run ...` */
    if (argv[1][0] == '-' && argv[1][1] != 0)
        return cli_run(argc - 1, argv + 1);
    fprintf(stderr, "moestream: unknown command '%s' (see moestream --help)\n", argv[1]);
    return 2;
}
