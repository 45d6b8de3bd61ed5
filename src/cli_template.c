/*
 * cli_template.c - `moestream template`: prints the exact prompt a model's
 * chat template renders for a conversation (JSON, keys as in an OpenAI
 * request: messages, tools, add_generation_prompt, enable_thinking,
 * bos_token, eos_token, ...). For users debugging a template and for tests.
 * On a template error prints the template's own message and exits 1.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat.h"
#include "cli.h"
#include "gguf.h"
#include "splitfmt.h"

static void template_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream template (-m DIR|FILE.gguf | --template FILE.jinja) [CONVERSATION.json]\n"
            "Prints the prompt the chat template renders for the conversation (a JSON object read from\n"
            "the file, or stdin): keys messages, tools, add_generation_prompt (default true),\n"
            "enable_thinking, bos_token, eos_token; any other key is a template variable too.\n\n"
            "  -m, --model DIR        a split model directory (its manifest's tokenizer.chat_template)\n"
            "                         or a GGUF file\n"
            "      --template FILE    a Jinja template file instead of the model's\n"
            "      --now TIME         fix strftime_now's clock: \"YYYY-MM-DD HH:MM:SS\"\n"
            "A model without a template gets ChatML (with a notice on stderr).\n"
            "Exit status: 0, 1 when the template refuses the conversation or fails, 2 for usage errors.\n");
}

static char *read_stream(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

/* The manifest of a split directory, or the GGUF file itself. */
static int open_model_kvs(struct gguf_ctx **g, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char mpath[4200];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(mpath, sizeof(mpath), "%s/%s", path, SPLIT_MANIFEST);
        path = mpath;
    }
    return gguf_open(g, path, err, errlen);
}

int cli_template(int argc, char **argv)
{
    const char *model = NULL, *tfile = NULL, *conv_path = NULL, *now = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            template_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) {
            model = argv[++i];
        } else if (!strcmp(a, "--template") && has_val) {
            tfile = argv[++i];
        } else if (!strcmp(a, "--now") && has_val) {
            now = argv[++i];
        } else if (a[0] != '-' && !conv_path) {
            conv_path = a;
        } else {
            fprintf(stderr, "moestream template: unknown option or missing value '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!!model == !!tfile) {
        fprintf(stderr, "moestream template: give exactly one of -m DIR and --template FILE (see --help)\n");
        return 2;
    }
    char err[1024];
    struct chat_tmpl *t = NULL;
    int rc = 1;
    char *text = NULL, *out = NULL;
    json_t *conv = NULL;
    if (tfile) {
        size_t len;
        char *src = cli_read_file(tfile, &len);
        if (!src)
            return 1;
        int r = chat_tmpl_init(&t, src, len, NULL, NULL, now, err, sizeof(err));
        free(src);
        if (r) {
            fprintf(stderr, "moestream template: %s: %s\n", tfile, err);
            return 1;
        }
    } else {
        struct gguf_ctx *g;
        if (open_model_kvs(&g, model, err, sizeof(err))) {
            fprintf(stderr, "moestream template: %s\n", err);
            return 1;
        }
        bool fallback;
        int r = chat_tmpl_from_gguf(&t, g, now, &fallback, err, sizeof(err));
        gguf_close(g);
        if (r) {
            fprintf(stderr, "moestream template: %s: %s\n", model, err);
            return 1;
        }
        if (fallback)
            fprintf(stderr, "moestream template: %s has no chat template; using ChatML\n", model);
    }
    size_t len;
    if (conv_path) {
        text = cli_read_file(conv_path, &len);
    } else {
        text = read_stream(stdin, &len);
        if (!text)
            fprintf(stderr, "moestream template: cannot read the conversation from stdin\n");
    }
    if (!text)
        goto done;
    json_error_t je;
    conv = json_loadb(text, len, 0, &je);
    if (!conv) {
        fprintf(stderr, "moestream template: %s: line %d column %d: %s\n", conv_path ? conv_path : "stdin", je.line,
                je.column, je.text);
        goto done;
    }
    size_t olen;
    if (chat_render(t, conv, &out, &olen, err, sizeof(err))) {
        fprintf(stderr, "moestream template: %s\n", err);
        goto done;
    }
    fwrite(out, 1, olen, stdout);
    fflush(stdout);
    rc = ferror(stdout) ? 1 : 0;
done:
    free(out);
    json_decref(conv);
    free(text);
    chat_tmpl_free(t);
    return rc;
}
