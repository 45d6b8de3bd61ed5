/*
 * fuzz_server.c - libFuzzer target for the HTTP request and JSON body
 * handling of `moestream serve` (src/server_http.c, src/server_routes.c,
 * src/server_sse.c error bodies, chat template rendering and tokenization of
 * request prompts). The server object is real except that it has no engine:
 * the tokenizer and chat template come from the tinymoe fixture
 * ($MOESTREAM_FIXTURES or ../shared/fixtures), and a valid generation
 * request is validated, rendered, tokenized and then refused with 503 by
 * the submission (no scheduler), which is the path a busy server takes too.
 *
 * Input: first byte selects the way in.
 *   even: the rest is "METHOD TARGET\n" + "Header: value\n"... + "\n" + body,
 *         handed to server_route directly (fast; the Authorization header is
 *         honoured, the API key is "k").
 *   odd:  the rest is sent as raw bytes over loopback to the real
 *         libmicrohttpd daemon of the server (body limit 4 KiB), then the
 *         write side is shut and the answer read until the server closes.
 * Invariants checked: every answer has a status in 200..599 and a body;
 * non-2xx JSON bodies are OpenAI-shaped errors (abort otherwise).
 * Built and run by `make fuzz-server`.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat.h"
#include "gguf.h"
#include "server.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct server srv;
static int port;
static struct gguf_ctx *g; /* process lifetime: the tokenizer reads it */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *fx = getenv("MOESTREAM_FIXTURES");
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/tinymoe/tinymoe-Q8_0.gguf", fx ? fx : "../shared/fixtures");

    if (gguf_open(&g, path, err, sizeof(err)) || tok_init(&srv.tok, g, err, sizeof(err))) {
        fprintf(stderr, "fuzz_server: %s: %s (set MOESTREAM_FIXTURES)\n", path, err);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/templates/Qwen-Qwen3-0.6B.jinja", fx ? fx : "../shared/fixtures");
    FILE *f = fopen(path, "rb");
    static char src[1 << 16];
    size_t n = f ? fread(src, 1, sizeof(src) - 1, f) : 0;
    if (f)
        fclose(f);
    src[n] = 0;
    if (chat_tmpl_init(&srv.tmpl, n ? src : NULL, n, NULL, NULL, "2026-01-01 00:00:00", err, sizeof(err))) {
        fprintf(stderr, "fuzz_server: template: %s\n", err);
        exit(1);
    }
    srv.tmpl_src = n ? src : (char *)chat_chatml_template;
    srv.o.host = "127.0.0.1";
    srv.o.port = 0;
    srv.o.parallel = 2;
    srv.o.queue_max = 2;
    srv.o.body_limit = 4096;
    srv.o.api_key = "k";
    srv.o.alias = "fuzz";
    srv.o.n_predict = 8;
    srv.o.keepalive_s = 10;
    sampler_default_opts(&srv.o.samp);
    srv.n_ctx = 256;
    srv.n_vocab = tok_n_vocab(srv.tok);
    pthread_mutex_init(&srv.mu, NULL);
    atomic_store(&srv.ready, 1);
    if (server_http_start(&srv, &port, err, sizeof(err))) {
        fprintf(stderr, "fuzz_server: %s\n", err);
        exit(1);
    }
    return 0;
}

static void check_body(int status, const char *body, size_t len)
{
    if (status < 200 || status > 599 || !body)
        abort();
    if (status < 300)
        return;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (!e || !json_is_string(json_object_get(e, "message")) || !json_is_integer(json_object_get(e, "code")) ||
        json_integer_value(json_object_get(e, "code")) != status)
        abort();
    json_decref(j);
}

static void direct(const char *in, size_t n)
{
    char method[16] = "", target[512] = "", auth[512];
    bool has_auth = false;
    const char *p = in, *end = in + n;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return;
    if (sscanf(p, "%15s %511s", method, target) != 2)
        return;
    for (p = nl + 1; p < end;) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le == p) {
            p = le + 1;
            break;
        }
        if ((size_t)(le - p) > 15 && !strncasecmp(p, "Authorization: ", 15) && (size_t)(le - p) - 15 < sizeof(auth)) {
            memcpy(auth, p + 15, (size_t)(le - p) - 15);
            auth[le - p - 15] = 0;
            has_auth = true;
        }
        p = le + 1;
    }
    if (p > end)
        p = end;
    struct srv_resp r;
    server_route(&srv, method, target, has_auth ? auth : NULL, p, (size_t)(end - p), &r);
    if (r.req) /* no scheduler: never submitted */
        abort();
    check_body(r.status, r.body, r.body ? strlen(r.body) : 0);
    free(r.body);
}

static void over_socket(const uint8_t *in, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        if (fd >= 0)
            close(fd);
        return;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, in + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char buf[1 << 16];
    size_t len = 0;
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    while (len + 1 < sizeof(buf) && poll(&pf, 1, 5000) > 0) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    int status;
    /* a complete answer must be well-formed; MHD may also just close */
    if (len && sscanf(buf, "HTTP/1.%*d %d", &status) == 1 && (status < 100 || status > 599))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        over_socket(data + 1, size - 1);
    else
        direct((const char *)data + 1, size - 1);
    return 0;
}
