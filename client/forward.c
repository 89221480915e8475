/*
 * Copyright (C) ngx_tunnel developers
 *
 * A public connection carried in a stream the server opened: its header,
 * the dial to the local service, then the bytes both ways.
 *
 * Toward the local service, data is written straight from the yamux input
 * buffer; what the socket does not take is kept, and the stream's window is
 * credited only for what the socket took, so the kept bytes never exceed
 * the window.  Toward the server, the local socket is read straight into
 * the session's output queue; when the stream's window or the queue is
 * full, reading stops until yamux says the stream is writable again.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "client.h"


#define FWD_CONNECT_TIMEOUT   10000     /* ms */
#define FWD_HEADER_MAX        2048      /* the stream header */
#define FWD_REQUEST_HEAD_MAX  (32 * 1024) /* for a Host rewrite */
#define FWD_READ_MAX          (64 * 1024)


typedef enum {
    F_HEADER = 0,           /* the stream header is not all here */
    F_CONNECTING,
    F_OPEN,
    F_FAILED                /* the local service could not be reached */
} fwd_state_e;


/* http requests, as far as the view needs them (no pipelining from nginx) */
typedef enum {
    H_IDLE = 0,             /* the next bytes from the server: a request */
    H_HEAD,                 /* collecting a request head to rewrite Host */
    H_WAIT,                 /* request sent, waiting for the status line */
    H_RAW                   /* upgraded, or not http: stop looking */
} http_state_e;


typedef struct {
    uint8_t       *data;
    size_t         start;
    size_t         end;
    size_t         size;
} fwd_buf_t;


struct fwd_s {
    session_t     *session;
    tunnel_t      *tunnel;
    uint32_t       id;
    fwd_state_e    state;
    http_state_e   http;

    loop_io_t      io;
    loop_timer_t   timer;

    unsigned       readable:1;      /* the local socket, edge-triggered */
    unsigned       writable:1;
    unsigned       local_eof:1;     /* it sent FIN; so did we, in yamux */
    unsigned       remote_fin:1;    /* the server's side sent FIN */
    unsigned       shut_wr:1;       /* we passed that FIN on */
    unsigned       stream_gone:1;   /* yamux forgot the stream */
    unsigned       counted:1;       /* in the tunnel's open count */
    unsigned       rdhup:1;         /* a FIN waits behind the bytes */

    fwd_buf_t      out;             /* toward the local service */
    size_t         owed;            /* received, not yet credited */
    fwd_buf_t      head;            /* a request head, for a Host rewrite */

    request_log_t  req;

    size_t         nhdr;
    uint8_t        hdr[FWD_HEADER_MAX];
    char           peer[64];        /* the public client, for PROXY */
    unsigned       peer_port;
};


static int fwd_header(fwd_t *f, const uint8_t **p, size_t *n);
static void fwd_dial(fwd_t *f);
static void fwd_io(void *data, unsigned events);
static void fwd_timeout(void *data);
static void fwd_connected(fwd_t *f);
static void fwd_established(fwd_t *f);
static ssize_t fwd_send(fwd_t *f, const uint8_t *p, size_t n);
static void fwd_unreachable(fwd_t *f, int err);
static void fwd_to_local(fwd_t *f, const uint8_t *p, size_t n);
static void fwd_request(fwd_t *f, const uint8_t *p, size_t n);
static void fwd_response(fwd_t *f, const uint8_t *p, size_t n);
static int fwd_rewrite_host(fwd_t *f);
static void fwd_write_local(fwd_t *f);
static void fwd_read_local(fwd_t *f);
static void fwd_credit(fwd_t *f, size_t n);
static void fwd_local_error(fwd_t *f, int err, const char *what);
static void fwd_check_done(fwd_t *f);
static void fwd_free(fwd_t *f);
static int fwd_proxy_header(fwd_t *f);
static int buf_add(fwd_buf_t *b, const uint8_t *p, size_t n);
static size_t buf_len(fwd_buf_t *b);
static void buf_drop(fwd_buf_t *b, size_t n);
static void buf_free(fwd_buf_t *b);


int
fwd_open(session_t *s, uint32_t id)
{
    fwd_t  *f;

    f = calloc(1, sizeof(fwd_t));
    if (f == NULL) {
        return -1;
    }

    f->session = s;
    f->id = id;
    f->io.fd = -1;
    f->timer.handler = fwd_timeout;
    f->timer.data = f;

    if (session_fwd_add(s, f) != 0) {
        free(f);
        return -1;
    }

    yamux_stream_set_data(session_mux(s), id, f);

    return 0;
}


void
fwd_data(fwd_t *f, const uint8_t *p, size_t n)
{
    if (f->state == F_HEADER) {
        if (fwd_header(f, &p, &n) != 0 || n == 0) {
            return;
        }
    }

    f->tunnel->bytes_in += n;

    if (f->state == F_FAILED || f->shut_wr) {
        /* nobody to give it to: keep the server's side flowing */
        (void) yamux_stream_consumed(session_mux(f->session), f->id, n);
        return;
    }

    if (f->tunnel->kind == TUNNEL_KIND_HTTP && f->http != H_RAW) {
        fwd_request(f, p, n);
        return;
    }

    fwd_to_local(f, p, n);
}


/* the STREAM message: which tunnel, who is calling */
static int
fwd_header(fwd_t *f, const uint8_t **p, size_t *n)
{
    int            rc;
    size_t         k, used;
    client_t      *cl;
    const char    *why;
    tunnel_msg_t   m;

    cl = session_client(f->session);
    why = "a header over 2 KiB";

    k = sizeof(f->hdr) - f->nhdr;
    if (k > *n) {
        k = *n;
    }

    memcpy(f->hdr + f->nhdr, *p, k);
    f->nhdr += k;

    rc = tunnel_msg_decode(&m, f->hdr, f->nhdr, &used, &why);

    if (rc == TUNNEL_MSG_AGAIN && f->nhdr < sizeof(f->hdr)) {
        (void) yamux_stream_consumed(session_mux(f->session), f->id, k);
        return -1;
    }

    if (rc != TUNNEL_MSG_OK || m.type != TUNNEL_STREAM) {
        view_event(cl, LOG_ERROR, "error", NULL,
                   "the server opened a connection without a valid header "
                   "(%s): refused", rc == TUNNEL_MSG_OK ? "not a STREAM "
                   "message" : why);
        (void) yamux_stream_reset(session_mux(f->session), f->id);
        f->state = F_FAILED;
        return -1;
    }

    f->tunnel = session_tunnel(f->session, m.tunnel_id);

    if (f->tunnel == NULL) {
        view_event(cl, LOG_DEBUG, "error", NULL,
                   "a connection for tunnel %u, which this session does not "
                   "hold (any more): refused", m.tunnel_id);
        (void) yamux_stream_reset(session_mux(f->session), f->id);
        f->state = F_FAILED;
        return -1;
    }

    if (m.remote_addr.len && m.remote_addr.len < sizeof(f->peer)) {
        memcpy(f->peer, m.remote_addr.data, m.remote_addr.len);
        f->peer[m.remote_addr.len] = '\0';
        f->peer_port = m.remote_port;
    }

    f->tunnel->conns_open++;
    f->tunnel->conns_total++;
    f->counted = 1;

    /* first of all, before any byte of the connection is kept for it */
    if (f->tunnel->proxy_protocol && fwd_proxy_header(f) != 0) {
        (void) yamux_stream_reset(session_mux(f->session), f->id);
        f->state = F_FAILED;
        return -1;
    }

    view_event(cl, LOG_DEBUG, "stream-open", f->tunnel,
               "connection %u from %s:%u", f->id,
               f->peer[0] ? f->peer : "?", f->peer_port);

    /* the header is ours: credit it now; the rest follows the data */
    (void) yamux_stream_consumed(session_mux(f->session), f->id,
                                 used - (f->nhdr - k));

    *p += used - (f->nhdr - k);
    *n -= used - (f->nhdr - k);
    f->nhdr = 0;

    if (f->tunnel->kind != TUNNEL_KIND_HTTP) {
        f->http = H_RAW;
    }

    fwd_dial(f);

    return 0;
}


static void
fwd_dial(fwd_t *f)
{
    int        fd, one, err;
    target_t  *t;

    t = &f->tunnel->target;

    fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd == -1) {
        fwd_unreachable(f, errno);
        return;
    }

    if (t->addr.ss_family != AF_UNIX) {
        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    f->io.fd = fd;
    f->io.handler = fwd_io;
    f->io.data = f;

    if (loop_add(session_client(f->session)->loop, &f->io) != 0) {
        err = errno;
        close(fd);
        f->io.fd = -1;
        fwd_unreachable(f, err);
        return;
    }

    f->state = F_CONNECTING;

    if (connect(fd, (struct sockaddr *) &t->addr, t->addrlen) == 0) {
        fwd_connected(f);
        return;
    }

    if (errno != EINPROGRESS && errno != EAGAIN) {
        fwd_unreachable(f, errno);
        return;
    }

    /*
     * Worth a try: to a local service the handshake is usually over when
     * connect() returns, and a first write that goes through spares
     * buffering the request and waiting for the event that says connected.
     */
    f->writable = 1;

    loop_timer(session_client(f->session)->loop, &f->timer,
               FWD_CONNECT_TIMEOUT);
}


static void
fwd_io(void *data, unsigned events)
{
    int        err;
    socklen_t  len;
    fwd_t     *f = data;

    if (events & LOOP_READ) {
        f->readable = 1;
    }

    if (events & LOOP_WRITE) {
        f->writable = 1;
    }

    if (events & LOOP_RDHUP) {
        f->rdhup = 1;
    }

    if (f->state == F_CONNECTING) {
        if (!(events & (LOOP_WRITE | LOOP_HUP))) {
            return;
        }

        if (events & LOOP_HUP) {
            err = 0;
            len = sizeof(err);

            if (getsockopt(f->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            {
                err = errno;
            }

            if (err) {
                fwd_unreachable(f, err);
                return;
            }
        }

        fwd_connected(f);
        return;
    }

    if (f->state != F_OPEN) {
        return;
    }

    if (f->writable) {
        fwd_write_local(f);
    }

    if (f->state == F_OPEN && f->readable) {
        fwd_read_local(f);
    }

    fwd_check_done(f);
}


static void
fwd_timeout(void *data)
{
    fwd_t  *f = data;

    if (f->state == F_CONNECTING) {
        fwd_unreachable(f, ETIMEDOUT);
    }
}


/*
 * The socket was in epoll before connect(), so every byte the service sends
 * raises an event: reading waits for it.
 */
static void
fwd_connected(fwd_t *f)
{
    fwd_established(f);
    f->writable = 1;

    fwd_write_local(f);

    if (f->state == F_OPEN && f->readable) {
        fwd_read_local(f);
    }

    fwd_check_done(f);
}


static void
fwd_established(fwd_t *f)
{
    loop_timer_cancel(session_client(f->session)->loop, &f->timer);
    f->state = F_OPEN;
}


/*
 * The local service did not answer: a tcp or tls stream is reset, so the
 * public client sees its connection refused; an http stream gets a page
 * that says what happened, which the browser shows.
 */
static void
fwd_unreachable(fwd_t *f, int err)
{
    int               n;
    size_t            len;
    client_t         *cl;
    tunnel_t         *t;
    yamux_session_t  *mux;
    char              body[1024], page[1400];

    cl = session_client(f->session);
    t = f->tunnel;
    mux = session_mux(f->session);

    loop_timer_cancel(cl->loop, &f->timer);

    if (f->io.fd != -1) {
        loop_close(cl->loop, &f->io);
    }

    f->state = F_FAILED;

    view_event(cl, LOG_ERROR, "local-error", t,
               "cannot reach the local service at %s (%s): is it running?",
               t->target.text, strerror(err));

    /* what was kept for the local service will never go */
    fwd_credit(f, f->owed);
    buf_free(&f->out);
    buf_free(&f->head);

    if (t->kind != TUNNEL_KIND_HTTP) {
        (void) yamux_stream_reset(mux, f->id);
        session_flush_later(f->session);
        return;
    }

    n = snprintf(body, sizeof(body),
                 "<!DOCTYPE html>\n<title>502 Bad Gateway</title>\n"
                 "<h1>502 Bad Gateway</h1>\n"
                 "<p>The tunnel %s is online, but its client could not "
                 "reach the local service at %s (%s).</p>\n"
                 "<p>Start the service, or check the port given to "
                 "<code>tunnel</code>.</p>\n",
                 t->url, t->target.text, strerror(err));
    if (n < 0 || (size_t) n >= sizeof(body)) {
        n = (int) sizeof(body) - 1;
    }

    len = (size_t) snprintf(page, sizeof(page),
                            "HTTP/1.1 502 Bad Gateway\r\n"
                            "Content-Type: text/html; charset=utf-8\r\n"
                            "Content-Length: %d\r\n"
                            "Connection: close\r\n"
                            "X-Tunnel-Error: local service unreachable\r\n"
                            "\r\n%.*s", n, n, body);
    if (len >= sizeof(page)) {
        len = sizeof(page) - 1;
    }

    if (f->http == H_WAIT) {
        f->req.status = 502;
        f->req.duration = loop_now() - f->req.start;
        t->requests[t->nrequests++ % MAX_REQUESTS] = f->req;
        view_request(cl, t, &t->requests[(t->nrequests - 1) % MAX_REQUESTS]);
    }

    f->http = H_RAW;

    if (yamux_stream_write(mux, f->id, (const uint8_t *) page, len)
        != (ssize_t) len)
    {
        (void) yamux_stream_reset(mux, f->id);

    } else {
        (void) yamux_stream_close(mux, f->id);
        t->bytes_out += len;
    }

    session_flush_later(f->session);
}


/* toward the local service */

static void
fwd_to_local(fwd_t *f, const uint8_t *p, size_t n)
{
    ssize_t  w;

    if (f->writable && buf_len(&f->out) == 0) {
        w = fwd_send(f, p, n);

        if (w == -1) {
            /* after the session's input: the stream may be reset now */
            (void) yamux_stream_consumed(session_mux(f->session), f->id, n);
            return;
        }

        (void) yamux_stream_consumed(session_mux(f->session), f->id,
                                     (size_t) w);
        p += w;
        n -= (size_t) w;
    }

    if (n == 0) {
        return;
    }

    if (buf_add(&f->out, p, n) != 0) {
        fwd_credit(f, n);
        fwd_local_error(f, ENOMEM, "out of memory");
        return;
    }

    f->owed += n;
}


/*
 * An http tunnel: note each request for the view (method, path, then the
 * status when the response begins), and rewrite Host when asked to.
 */
static void
fwd_request(fwd_t *f, const uint8_t *p, size_t n)
{
    size_t       i, k;
    tunnel_t    *t;
    const char  *sp;

    t = f->tunnel;

    if (f->http == H_IDLE) {
        memset(&f->req, 0, sizeof(request_log_t));
        f->req.start = loop_now();

        for (i = 0; i < n && i < sizeof(f->req.method) - 1; i++) {
            if (p[i] == ' ') {
                break;
            }

            f->req.method[i] = (char) p[i];
        }

        if (i < n && p[i] == ' ') {
            sp = memchr(p + i + 1, ' ', n - i - 1);
            k = sp ? (size_t) ((const uint8_t *) sp - (p + i + 1))
                   : n - i - 1;

            if (k >= sizeof(f->req.path)) {
                k = sizeof(f->req.path) - 1;
            }

            memcpy(f->req.path, p + i + 1, k);
        }

        f->http = t->host_header[0] ? H_HEAD : H_WAIT;
    }

    if (f->http != H_HEAD) {
        fwd_to_local(f, p, n);
        return;
    }

    if (buf_add(&f->head, p, n) != 0) {
        fwd_credit(f, n);
        fwd_local_error(f, ENOMEM, "out of memory");
        return;
    }

    f->owed += n;

    if (memmem(f->head.data + f->head.start, buf_len(&f->head),
               "\r\n\r\n", 4) == NULL)
    {
        if (buf_len(&f->head) > FWD_REQUEST_HEAD_MAX) {
            fwd_local_error(f, E2BIG, "a request head over 32 KiB");
        }

        return;
    }

    if (fwd_rewrite_host(f) != 0) {
        fwd_local_error(f, ENOMEM, "out of memory");
        return;
    }

    f->http = H_WAIT;
    fwd_write_local(f);
}


/* moves the request head to "out", with the Host line replaced */
static int
fwd_rewrite_host(fwd_t *f)
{
    size_t        len, line;
    uint8_t      *p, *end, *eol;
    const char   *host;
    tunnel_t     *t;
    char          hdr[300];

    t = f->tunnel;
    host = t->host_header;

    if (strcmp(host, "rewrite") == 0) {
        host = strncmp(t->target.text, "unix:", 5) == 0 ? "localhost"
                                                        : t->target.text;
    }

    p = f->head.data + f->head.start;
    end = p + buf_len(&f->head);
    eol = memmem(p, end - p, "\r\n\r\n", 4) + 2;

    while (p < eol) {
        line = (uint8_t *) memmem(p, eol - p, "\r\n", 2) - p + 2;

        if (line > 5 && strncasecmp((char *) p, "host:", 5) == 0) {
            len = (size_t) snprintf(hdr, sizeof(hdr), "Host: %s\r\n", host);

            if (buf_add(&f->out, (uint8_t *) hdr, len) != 0) {
                return -1;
            }

        } else if (buf_add(&f->out, p, line) != 0) {
            return -1;
        }

        p += line;
    }

    if (buf_add(&f->out, p, end - p) != 0) {
        return -1;
    }

    buf_free(&f->head);

    return 0;
}


static void
fwd_write_local(fwd_t *f)
{
    ssize_t  w;
    size_t   n;

    while (f->writable && (n = buf_len(&f->out)) != 0) {
        w = fwd_send(f, f->out.data + f->out.start, n);

        if (w == -1) {
            return;
        }

        buf_drop(&f->out, (size_t) w);
        fwd_credit(f, (size_t) w);
    }

    if (buf_len(&f->out) || f->state != F_OPEN) {
        return;
    }

    /* every byte received is delivered: the window is whole again */
    fwd_credit(f, f->owed);
    buf_free(&f->out);

    if (f->remote_fin && !f->shut_wr && f->http != H_HEAD) {
        /*
         * When the service has closed its side too, the stream is over and
         * the close() that follows sends the FIN: no shutdown() for it.
         */
        if (!f->local_eof) {
            (void) shutdown(f->io.fd, SHUT_WR);
        }

        f->shut_wr = 1;
    }
}


/*
 * What the socket took (0: nothing, wait for it to be writable), or -1 when
 * the connection failed: then the stream is ended here.
 */
static ssize_t
fwd_send(fwd_t *f, const uint8_t *p, size_t n)
{
    ssize_t  w;

    w = write(f->io.fd, p, n);

    if (w >= 0) {
        if (f->state == F_CONNECTING) {
            fwd_established(f);
        }

        if ((size_t) w < n) {
            f->writable = 0;
        }

        return w;
    }

    if (errno == EAGAIN) {
        f->writable = 0;
        return 0;
    }

    if (f->state == F_CONNECTING) {
        fwd_unreachable(f, errno);

    } else {
        fwd_local_error(f, errno, "write");
    }

    return -1;
}


static void
fwd_read_local(fwd_t *f)
{
    int               rc;
    size_t            len;
    ssize_t           n;
    uint8_t          *p;
    yamux_session_t  *mux;

    mux = session_mux(f->session);

    while (f->readable && !f->local_eof && !f->stream_gone) {
        len = FWD_READ_MAX;
        p = yamux_stream_reserve(mux, f->id, &len, &rc);

        if (p == NULL) {
            if (rc != YAMUX_EAGAIN) {
                /* the stream cannot send any more (reset): stop reading */
                f->local_eof = 1;
            }

            break;
        }

        n = read(f->io.fd, p, len);

        if (n > 0) {
            if (f->http == H_WAIT) {
                fwd_response(f, p, (size_t) n);
            }

            yamux_stream_commit(mux, f->id, (size_t) n);
            f->tunnel->bytes_out += (uint64_t) n;
            session_flush_later(f->session);

            if ((size_t) n < len && !f->rdhup) {
                /* drained: spare the read that would say EAGAIN */
                f->readable = 0;
                break;
            }

            continue;
        }

        yamux_stream_commit(mux, f->id, 0);

        if (n == 0) {
            f->local_eof = 1;
            (void) yamux_stream_close(mux, f->id);
            session_flush_later(f->session);
            break;
        }

        if (errno == EAGAIN) {
            f->readable = 0;
            break;
        }

        fwd_local_error(f, errno, "read");
        return;
    }
}


/* the status line of the response to the request in f->req */
static void
fwd_response(fwd_t *f, const uint8_t *p, size_t n)
{
    int        status, i;
    client_t  *cl;
    tunnel_t  *t;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0) {
        return;
    }

    status = 0;

    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return;
        }

        status = status * 10 + (p[i] - '0');
    }

    if (status >= 100 && status < 200 && status != 101) {
        return;                 /* 100 Continue: the real one follows */
    }

    cl = session_client(f->session);
    t = f->tunnel;

    f->req.status = status;
    f->req.duration = loop_now() - f->req.start;
    t->requests[t->nrequests % MAX_REQUESTS] = f->req;
    t->nrequests++;
    view_request(cl, t, &t->requests[(t->nrequests - 1) % MAX_REQUESTS]);

    f->http = (status == 101) ? H_RAW : H_IDLE;
}


static void
fwd_credit(fwd_t *f, size_t n)
{
    if (n > f->owed) {
        n = f->owed;
    }

    if (n == 0) {
        return;
    }

    f->owed -= n;

    if (!f->stream_gone) {
        (void) yamux_stream_consumed(session_mux(f->session), f->id, n);
        session_flush_later(f->session);
    }
}


/* the local connection broke: the public one is reset too */
static void
fwd_local_error(fwd_t *f, int err, const char *what)
{
    client_t  *cl;

    cl = session_client(f->session);

    if (err != ECONNRESET && err != EPIPE) {
        view_event(cl, LOG_ERROR, "local-error", f->tunnel,
                   "connection %u to %s: %s failed: %s", f->id,
                   f->tunnel->target.text, what, strerror(err));
    }

    fwd_credit(f, f->owed);
    buf_free(&f->out);
    buf_free(&f->head);

    if (f->io.fd != -1) {
        loop_close(cl->loop, &f->io);
    }

    f->state = F_FAILED;

    if (!f->stream_gone) {
        (void) yamux_stream_reset(session_mux(f->session), f->id);
        session_flush_later(f->session);
    }
}


void
fwd_fin(fwd_t *f)
{
    f->remote_fin = 1;

    if (f->state == F_OPEN) {
        fwd_write_local(f);
    }
}


void
fwd_writable(fwd_t *f)
{
    if (f->state == F_OPEN && f->readable) {
        fwd_read_local(f);
    }
}


void
fwd_closed(fwd_t *f, yamux_close_e how)
{
    client_t  *cl;

    f->stream_gone = 1;

    if (how != YAMUX_CLOSED_NORMAL) {
        /* an abort either way: the local service sees one too */
        if (f->io.fd != -1 && f->state == F_OPEN) {
            struct linger  l = { 1, 0 };

            (void) setsockopt(f->io.fd, SOL_SOCKET, SO_LINGER, &l,
                              sizeof(l));
        }

        cl = session_client(f->session);

        if (f->tunnel && how == YAMUX_CLOSED_RESET_REMOTE) {
            view_event(cl, LOG_DEBUG, "stream-reset", f->tunnel,
                       "connection %u reset by the public side", f->id);
        }

        fwd_free(f);
        return;
    }

    fwd_check_done(f);
}


void
fwd_abort(fwd_t *f)
{
    f->stream_gone = 1;
    fwd_free(f);
}


/* the stream is gone and the local side has nothing left to do */
static void
fwd_check_done(fwd_t *f)
{
    if (!f->stream_gone) {
        return;
    }

    if (f->state == F_OPEN && buf_len(&f->out)) {
        return;                 /* still delivering the last bytes */
    }

    fwd_free(f);
}


static void
fwd_free(fwd_t *f)
{
    client_t  *cl;

    cl = session_client(f->session);

    loop_timer_cancel(cl->loop, &f->timer);

    if (f->io.fd != -1) {
        loop_close(cl->loop, &f->io);
    }

    if (f->counted) {
        f->tunnel->conns_open--;
        view_event(cl, LOG_DEBUG, "stream-closed", f->tunnel,
                   "connection %u closed", f->id);
    }

    buf_free(&f->out);
    buf_free(&f->head);

    session_fwd_done(f->session, f);
    free(f);
}


/*
 * PROXY protocol (haproxy's proxy-protocol.txt), so that the local service
 * sees the public client's address: the source is the public client, the
 * destination the local service's own address.
 */
static int
fwd_proxy_header(fwd_t *f)
{
    int                   v4;
    size_t                len;
    uint8_t               bin[16 + 36];
    target_t             *t;
    struct in_addr        a4;
    struct in6_addr       a6;
    struct sockaddr_in   *d4;
    struct sockaddr_in6  *d6;
    char                  text[160], dst[INET6_ADDRSTRLEN];

    static const uint8_t  sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

    t = &f->tunnel->target;
    d4 = (struct sockaddr_in *) &t->addr;
    d6 = (struct sockaddr_in6 *) &t->addr;

    v4 = inet_pton(AF_INET, f->peer, &a4) == 1;

    if (!v4 && inet_pton(AF_INET6, f->peer, &a6) != 1) {
        /* no address we can state: say so */
        if (f->tunnel->proxy_protocol == 1) {
            return buf_add(&f->out, (uint8_t *) "PROXY UNKNOWN\r\n", 15);
        }

        memcpy(bin, sig, 12);
        bin[12] = 0x20;         /* v2, LOCAL */
        bin[13] = 0x00;
        bin[14] = 0;
        bin[15] = 0;

        return buf_add(&f->out, bin, 16);
    }

    if (f->tunnel->proxy_protocol == 1) {
        if (v4) {
            if (t->addr.ss_family != AF_INET
                || inet_ntop(AF_INET, &d4->sin_addr, dst, sizeof(dst))
                   == NULL)
            {
                strcpy(dst, "127.0.0.1");
            }

        } else if (t->addr.ss_family != AF_INET6
                   || inet_ntop(AF_INET6, &d6->sin6_addr, dst, sizeof(dst))
                      == NULL)
        {
            strcpy(dst, "::1");
        }

        len = (size_t) snprintf(text, sizeof(text), "PROXY %s %s %s %u %u\r\n",
                                v4 ? "TCP4" : "TCP6", f->peer, dst,
                                f->peer_port,
                                t->addr.ss_family == AF_INET
                                ? ntohs(d4->sin_port)
                                : t->addr.ss_family == AF_INET6
                                  ? ntohs(d6->sin6_port) : 0);

        return buf_add(&f->out, (uint8_t *) text, len);
    }

    memcpy(bin, sig, 12);
    bin[12] = 0x21;             /* v2, PROXY */

    if (v4) {
        bin[13] = 0x11;         /* TCP over IPv4 */
        bin[14] = 0;
        bin[15] = 12;
        memcpy(bin + 16, &a4, 4);

        if (t->addr.ss_family == AF_INET) {
            memcpy(bin + 20, &d4->sin_addr, 4);
            memcpy(bin + 26, &d4->sin_port, 2);

        } else {
            memset(bin + 20, 0, 4);
            memset(bin + 26, 0, 2);
        }

        bin[24] = (uint8_t) (f->peer_port >> 8);
        bin[25] = (uint8_t) f->peer_port;
        len = 16 + 12;

    } else {
        bin[13] = 0x21;         /* TCP over IPv6 */
        bin[14] = 0;
        bin[15] = 36;
        memcpy(bin + 16, &a6, 16);

        if (t->addr.ss_family == AF_INET6) {
            memcpy(bin + 32, &d6->sin6_addr, 16);
            memcpy(bin + 50, &d6->sin6_port, 2);

        } else {
            memset(bin + 32, 0, 16);
            memset(bin + 50, 0, 2);
        }

        bin[48] = (uint8_t) (f->peer_port >> 8);
        bin[49] = (uint8_t) f->peer_port;
        len = 16 + 36;
    }

    return buf_add(&f->out, bin, len);
}


/* a byte queue that is freed whenever it runs empty */

static int
buf_add(fwd_buf_t *b, const uint8_t *p, size_t n)
{
    size_t    size;
    uint8_t  *d;

    if (b->size - b->end < n && b->start) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }

    if (b->size - b->end < n) {
        size = b->size ? b->size : 16384;

        while (size - b->end < n) {
            size *= 2;
        }

        d = realloc(b->data, size);
        if (d == NULL) {
            return -1;
        }

        b->data = d;
        b->size = size;
    }

    memcpy(b->data + b->end, p, n);
    b->end += n;

    return 0;
}


static size_t
buf_len(fwd_buf_t *b)
{
    return b->end - b->start;
}


static void
buf_drop(fwd_buf_t *b, size_t n)
{
    b->start += n;

    if (b->start == b->end) {
        b->start = 0;
        b->end = 0;
    }
}


static void
buf_free(fwd_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->start = 0;
    b->end = 0;
    b->size = 0;
}
