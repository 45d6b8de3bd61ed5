/*
 * server_http.c - the HTTP side of `moestream serve` on libmicrohttpd, one
 * thread per connection: collects the body (413 over the limit, refused
 * from Content-Length before reading when possible), hands the complete
 * request to server_route, and answers. A generation is waited for (plain
 * JSON) or streamed as SSE with chunked encoding; either way the client's
 * socket is watched while waiting, and a client that went away cancels its
 * request (the scheduler drops it before the next token). Silence on a
 * stream longer than the keep-alive interval sends an SSE comment.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

struct http {
    struct MHD_Daemon *d;
    int quiesced_fd;
};

struct conn {
    char *buf;
    size_t len, cap;
    bool too_big, queued;       /* queued: a response went out already */
    struct server *s;
    struct srv_req *req;       /* stream: owned by the response */
    struct MHD_Connection *c;
    double last_send;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The peer closed or reset the connection (without blocking). */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = { .fd = ci->connect_fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP))
        return true;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void wait_tick(struct srv_req *r, pthread_mutex_t *mu, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&r->cv, mu, &ts);
}

static enum MHD_Result send_body(struct MHD_Connection *c, int status, char *body, const char *ctype,
                                 int retry_after)
{
    if (!body) {
        body = strdup("{\"error\":{\"code\":500,\"message\":\"out of memory\",\"type\":\"server_error\"}}");
        status = 500;
        if (!body)
            return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype ? ctype : "application/json");
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct conn *k = cls;
    struct server *s = k->s;
    struct srv_req *r = k->req;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (r->out_len > r->out_off) {
            size_t n = r->out_len - r->out_off;
            n = n < max ? n : max;
            memcpy(buf, r->out + r->out_off, n);
            r->out_off += n;
            pthread_mutex_unlock(&s->mu);
            k->last_send = mono();
            return (ssize_t)n;
        }
        if (r->state == SRV_DONE) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (client_gone(k->c)) {
            atomic_store(&r->cancel, 1);
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (mono() - k->last_send > s->o.keepalive_s && max >= 16) {
            pthread_mutex_unlock(&s->mu);
            k->last_send = mono();
            memcpy(buf, ": keep-alive\n\n", 14);
            return 14;
        }
        wait_tick(r, &s->mu, 0.05);
    }
}

static void conn_free(struct conn *k)
{
    if (!k)
        return;
    if (k->req) {
        atomic_store(&k->req->cancel, 1); /* no-op when it finished */
        server_req_put(k->s, k->req);
    }
    free(k->buf);
    free(k);
}

/* The stream's response owns the conn from then on. */
static void stream_free(void *cls)
{
    conn_free(cls);
}

static enum MHD_Result answer(struct server *s, struct MHD_Connection *c, struct conn *k, const char *url,
                              const char *method)
{
    struct srv_resp r;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    server_route(s, method, url, auth, k->buf, k->len, &r);
    if (!r.req)
        return send_body(c, r.status, r.body, r.ctype, r.retry_after);
    struct srv_req *q = r.req;
    if (q->stream) {
        struct conn *sk = calloc(1, sizeof(*sk));
        if (!sk) {
            atomic_store(&q->cancel, 1);
            server_req_put(s, q);
            return MHD_NO;
        }
        sk->s = s;
        sk->req = q;
        sk->c = c;
        sk->last_send = mono();
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, sk,
                                                                      stream_free);
        if (!resp) {
            conn_free(sk);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    /* plain JSON: wait, watching the client */
    pthread_mutex_lock(&s->mu);
    while (q->state != SRV_DONE) {
        if (client_gone(c)) {
            atomic_store(&q->cancel, 1);
            pthread_mutex_unlock(&s->mu);
            server_req_put(s, q);
            return MHD_NO;
        }
        wait_tick(q, &s->mu, 0.05);
    }
    char *body = q->body;
    int status = q->status ? q->status : 500;
    q->body = NULL;
    pthread_mutex_unlock(&s->mu);
    server_req_put(s, q);
    if (!body)
        body = server_error_body(500, NULL, "the request was cancelled");
    return send_body(c, status, body, NULL, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct conn *k = *con_cls;
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k)
            return MHD_NO;
        k->s = s;
        k->c = c;
        *con_cls = k;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.body_limit) {
            k->too_big = k->queued = true;
            return send_body(c, 413,
                             server_error_body(413, NULL, "the request body (%s bytes) exceeds the limit of %zu bytes",
                                               cl, s->o.body_limit),
                             NULL, 0);
        }
        return MHD_YES;
    }
    if (k->queued) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (k->too_big || k->len + n > s->o.body_limit) {
            k->too_big = true;
            return MHD_YES;
        }
        if (k->len + n + 1 > k->cap) {
            size_t cap = (k->len + n + 1) * 2;
            char *b = realloc(k->buf, cap);
            if (!b)
                return MHD_NO;
            k->buf = b;
            k->cap = cap;
        }
        memcpy(k->buf + k->len, upload_data, n);
        k->len += n;
        k->buf[k->len] = 0;
        return MHD_YES;
    }
    k->queued = true;
    if (k->too_big)
        return send_body(c, 413, server_error_body(413, NULL, "the request body exceeds the limit of %zu bytes",
                                                   s->o.body_limit),
                         NULL, 0);
    return answer(s, c, k, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_free(*con_cls);
    *con_cls = NULL;
}

int server_http_start(struct server *s, int *port, char *err, size_t errlen)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->o.port) };
    if (inet_pton(AF_INET, s->o.host, &a.sin_addr) != 1) {
        snprintf(err, errlen, "--host %s: expected an IPv4 address such as 127.0.0.1 or 0.0.0.0", s->o.host);
        return -EINVAL;
    }
    struct http *h = calloc(1, sizeof(*h));
    if (!h)
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    h->quiesced_fd = -1;
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                MHD_USE_ITC,
                            (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &a,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        snprintf(err, errlen, "cannot listen on %s:%d (in use? see --port)", s->o.host, s->o.port);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : s->o.port;
    s->http = h;
    return 0;
}

void server_http_quiesce(struct server *s)
{
    if (s->http && s->http->quiesced_fd < 0)
        s->http->quiesced_fd = MHD_quiesce_daemon(s->http->d);
}

void server_http_stop(struct server *s)
{
    if (!s->http)
        return;
    MHD_stop_daemon(s->http->d);
    if (s->http->quiesced_fd >= 0)
        close(s->http->quiesced_fd);
    free(s->http);
    s->http = NULL;
}
