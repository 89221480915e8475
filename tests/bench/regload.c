/*
 * Copyright (C) ngx_tunnel developers
 *
 * regload: registrations against an ngx_tunnel server, for the benchmark.
 * It speaks the protocol through core/ (yamux.c, tunnel_msg.c), as the
 * client does, so that the wire format lives in one place.
 *
 *   regload time -n N PORT TOKEN [--tls CAFILE]
 *       N registrations one after the other: connect (+ TLS handshake),
 *       HELLO, WELCOME, BIND http, BOUND, then close.  Prints one JSON line:
 *       {"n":..,"ok":..,"median_ms":..,"p99_ms":..,"max_ms":..,"error":".."}
 *
 *   regload hold -n N PORT TOKEN [--tls CAFILE] --ready FILE [--hold S]
 *       N sessions, each with one http tunnel bound (names r<pid>-<i>),
 *       all kept open; writes {"n":..,"ok":..,"setup_s":..,"error":".."}
 *       to FILE once they are up, then answers pings until SIGTERM or S
 *       (60) seconds, and closes them.
 *
 * Blocking sockets, 127.0.0.1 only, every wait bounded (10 s per step).
 * The server's certificate is checked against CAFILE and 127.0.0.1.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "yamux.h"
#include "tunnel_msg.h"


#define STEP_MS  10000


typedef struct {
    int               fd;
    SSL              *ssl;
    yamux_session_t  *mux;
    uint32_t          ctl;
    int               got;          /* type of the last message, 0: none */
    int               dead;
    char              error[160];
    size_t            nin;
    uint8_t           in[TUNNEL_MSG_MAX];
} sess_t;


static uint16_t          port;
static const char       *token;
static SSL_CTX          *tls;
static volatile sig_atomic_t  stop;


static double
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static void
on_stop(int signo)
{
    (void) signo;
    stop = 1;
}


static int
on_open(yamux_session_t *mux, uint32_t id, void *ud)
{
    (void) mux; (void) id; (void) ud;
    return 1;                       /* no public connections here: refuse */
}


static void
on_data(yamux_session_t *mux, uint32_t id, void *sd, const uint8_t *p,
    size_t n)
{
    size_t         used;
    const char    *why;
    tunnel_msg_t   m;
    sess_t        *s;

    (void) sd;
    s = yamux_session_data(mux);

    if (id != s->ctl || n > sizeof(s->in) - s->nin) {
        s->dead = 1;
        snprintf(s->error, sizeof(s->error), "unexpected data");
        return;
    }

    memcpy(s->in + s->nin, p, n);
    s->nin += n;
    yamux_stream_consumed(mux, id, n);

    while (s->nin) {
        if (tunnel_msg_decode(&m, s->in, s->nin, &used, &why)
            != TUNNEL_MSG_OK)
        {
            break;                  /* AGAIN; INVALID shows as no answer */
        }

        s->got = m.type;

        if (m.type == TUNNEL_ERROR || m.type == TUNNEL_BIND_ERROR) {
            s->dead = 1;
            snprintf(s->error, sizeof(s->error), "%s: %.*s",
                     tunnel_msg_type_name(m.type), (int) m.message.len,
                     (const char *) m.message.data);
        }

        memmove(s->in, s->in + used, s->nin - used);
        s->nin -= used;
    }
}


static void on_fin(yamux_session_t *m, uint32_t id, void *sd)
{ (void) m; (void) id; (void) sd; }
static void on_writable(yamux_session_t *m, uint32_t id, void *sd)
{ (void) m; (void) id; (void) sd; }
static void on_closed(yamux_session_t *m, uint32_t id, void *sd,
    yamux_close_e how)
{ (void) m; (void) id; (void) sd; (void) how; }
static void on_ping_ack(yamux_session_t *m, uint32_t o, void *ud)
{ (void) m; (void) o; (void) ud; }

static void
on_go_away(yamux_session_t *mux, uint32_t code, void *ud)
{
    sess_t  *s = ud;

    (void) mux;
    s->dead = 1;
    snprintf(s->error, sizeof(s->error), "go-away %u", code);
}


static const yamux_callbacks_t  callbacks = {
    on_open, on_data, on_fin, on_writable, on_closed, on_ping_ack,
    on_go_away
};


static int
sess_flush(sess_t *s)
{
    int           n, i;
    ssize_t       w;
    size_t        sent;
    struct iovec  iov[16];

    while ((n = yamux_output(s->mux, iov, 16)) > 0) {
        sent = 0;

        if (s->ssl) {
            for (i = 0; i < n; i++) {
                w = SSL_write(s->ssl, iov[i].iov_base, (int) iov[i].iov_len);
                if (w <= 0) {
                    return -1;
                }
                sent += w;
            }

        } else {
            w = writev(s->fd, iov, n);
            if (w <= 0) {
                return -1;
            }
            sent = w;
        }

        yamux_output_advance(s->mux, sent);
    }

    return 0;
}


/* one read, fed to yamux; -1 when the session is over */
static int
sess_read(sess_t *s)
{
    ssize_t  n, used;
    size_t   off;
    uint8_t  buf[16384];

    n = s->ssl ? SSL_read(s->ssl, buf, sizeof(buf))
               : read(s->fd, buf, sizeof(buf));
    if (n <= 0) {
        snprintf(s->error, sizeof(s->error), "the server closed");
        return -1;
    }

    for (off = 0; off < (size_t) n; off += used) {
        used = yamux_input(s->mux, buf + off, n - off);
        if (used < 0) {
            snprintf(s->error, sizeof(s->error), "yamux: %s",
                     yamux_error(s->mux));
            return -1;
        }
        if (sess_flush(s) != 0) {
            return -1;
        }
    }

    return 0;
}


/* until a message of type "want" arrives, within STEP_MS */
static int
sess_wait(sess_t *s, int want)
{
    double         end;
    struct pollfd  pfd;

    end = now_ms() + STEP_MS;
    s->got = 0;

    while (s->got != want) {
        if (s->dead || now_ms() > end) {
            if (!s->error[0]) {
                snprintf(s->error, sizeof(s->error), "no %s in time",
                         tunnel_msg_type_name(want));
            }
            return -1;
        }

        if (s->ssl == NULL || SSL_pending(s->ssl) == 0) {
            pfd.fd = s->fd;
            pfd.events = POLLIN;
            if (poll(&pfd, 1, 100) <= 0) {
                continue;
            }
        }

        if (sess_read(s) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
sess_send(sess_t *s, tunnel_msg_t *m)
{
    size_t   n;
    uint8_t  buf[1024];

    n = tunnel_msg_encode(m, buf, sizeof(buf));
    if (n == 0 || yamux_stream_write(s->mux, s->ctl, buf, n) != (ssize_t) n) {
        snprintf(s->error, sizeof(s->error), "cannot send %s",
                 tunnel_msg_type_name(m->type));
        return -1;
    }

    return sess_flush(s);
}


static void
sess_close(sess_t *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->mux) {
        yamux_session_free(s->mux);
        s->mux = NULL;
    }
}


/* connect, hello, welcome, bind "name", bound */
static int
sess_register(sess_t *s, const char *name, const char *instance)
{
    int                 one;
    struct sockaddr_in  sin;
    yamux_config_t      yc;
    tunnel_msg_t        m;
    struct timeval      tv = { STEP_MS / 1000, 0 };

    memset(s, 0, offsetof(sess_t, in));
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0) {
        snprintf(s->error, sizeof(s->error), "socket: %s", strerror(errno));
        return -1;
    }

    one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (connect(s->fd, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
        snprintf(s->error, sizeof(s->error), "connect: %s", strerror(errno));
        return -1;
    }

    if (tls) {
        s->ssl = SSL_new(tls);
        if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
            snprintf(s->error, sizeof(s->error), "SSL_new failed");
            return -1;
        }

        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), "127.0.0.1");

        if (SSL_connect(s->ssl) != 1) {
            snprintf(s->error, sizeof(s->error), "TLS handshake failed");
            return -1;
        }
    }

    yamux_config_init(&yc, 1);
    s->mux = yamux_session_new(&yc, &callbacks, s);
    if (s->mux == NULL || yamux_stream_open(s->mux, &s->ctl, NULL) != 0) {
        snprintf(s->error, sizeof(s->error), "yamux: out of memory");
        return -1;
    }

    memset(&m, 0, sizeof(m));
    m.type = TUNNEL_HELLO;
    m.version = TUNNEL_PROTO_VERSION;
    m.token = tunnel_str(token);
    m.client_name = tunnel_str("regload");
    m.client_version = tunnel_str("0");
    m.instance = tunnel_str(instance);

    if (sess_send(s, &m) != 0 || sess_wait(s, TUNNEL_WELCOME) != 0) {
        return -1;
    }

    memset(&m, 0, sizeof(m));
    m.type = TUNNEL_BIND;
    m.request_id = 1;
    m.kind = TUNNEL_KIND_HTTP;
    m.name = tunnel_str(name);

    if (sess_send(s, &m) != 0 || sess_wait(s, TUNNEL_BOUND) != 0) {
        return -1;
    }

    return 0;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static int
run_time(int n)
{
    int      i, ok;
    char     name[64], inst[32];
    double   t0, *ms;
    sess_t  *s;
    char     error[160] = "";

    ms = calloc(n, sizeof(double));
    s = malloc(sizeof(sess_t));
    if (ms == NULL || s == NULL) {
        return 1;
    }

    for (i = 0, ok = 0; i < n && !stop; i++) {
        snprintf(name, sizeof(name), "t%d-%d", (int) getpid(), i);
        snprintf(inst, sizeof(inst), "%08x%08x", (unsigned) getpid(), i);

        t0 = now_ms();
        if (sess_register(s, name, inst) == 0) {
            ms[ok++] = now_ms() - t0;
        } else if (!error[0]) {
            snprintf(error, sizeof(error), "%s", s->error);
        }

        sess_close(s);
    }

    qsort(ms, ok, sizeof(double), cmp_double);

    printf("{\"n\":%d,\"ok\":%d,\"median_ms\":%.2f,\"p99_ms\":%.2f,"
           "\"max_ms\":%.2f,\"error\":\"%s\"}\n", n, ok,
           ok ? ms[ok / 2] : 0.0, ok ? ms[(ok * 99 + 99) / 100 - 1] : 0.0,
           ok ? ms[ok - 1] : 0.0, error);

    free(ms);
    free(s);
    return ok == n ? 0 : 1;
}


static int
run_hold(int n, const char *ready, int hold)
{
    int             i, k, ok;
    char            name[64], inst[32], error[160] = "";
    double          t0, end;
    FILE           *f;
    sess_t        **ss;
    struct pollfd  *pfd;
    char            tmp[1100];

    ss = calloc(n, sizeof(sess_t *));
    pfd = calloc(n, sizeof(struct pollfd));
    if (ss == NULL || pfd == NULL) {
        return 1;
    }

    t0 = now_ms();

    for (i = 0, ok = 0; i < n && !stop; i++) {
        ss[i] = malloc(sizeof(sess_t));
        if (ss[i] == NULL) {
            break;
        }

        snprintf(name, sizeof(name), "r%d-%d", (int) getpid(), i);
        snprintf(inst, sizeof(inst), "%08x%08x", (unsigned) getpid(), i);

        if (sess_register(ss[i], name, inst) == 0) {
            ok++;
        } else {
            if (!error[0]) {
                snprintf(error, sizeof(error), "%s", ss[i]->error);
            }
            sess_close(ss[i]);
            ss[i]->dead = 1;
        }
    }

    snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return 1;
    }

    fprintf(f, "{\"n\":%d,\"ok\":%d,\"setup_s\":%.3f,\"error\":\"%s\"}\n",
            n, ok, (now_ms() - t0) / 1e3, error);
    fclose(f);
    rename(tmp, ready);

    /* keep them alive: answer the server's pings */
    end = now_ms() + hold * 1e3;

    while (!stop && now_ms() < end) {
        for (i = 0, k = 0; i < n && ss[i]; i++) {
            pfd[i].fd = ss[i]->dead ? -1 : ss[i]->fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
            k = i + 1;
        }

        if (poll(pfd, k, 200) <= 0) {
            continue;
        }

        for (i = 0; i < k; i++) {
            if (pfd[i].revents && sess_read(ss[i]) != 0) {
                ss[i]->dead = 1;
            }
        }
    }

    for (i = 0; i < n && ss[i]; i++) {
        sess_close(ss[i]);
        free(ss[i]);
    }

    free(ss);
    free(pfd);
    return ok == n ? 0 : 1;
}


int
main(int argc, char **argv)
{
    int          i, n = 100, hold = 60;
    const char  *mode, *cafile = NULL, *ready = NULL;

    if (argc < 4) {
        fprintf(stderr, "usage: regload time|hold -n N PORT TOKEN "
                        "[--tls CAFILE] [--ready FILE] [--hold S]\n");
        return 2;
    }

    mode = argv[1];

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
            cafile = argv[++i];
        } else if (strcmp(argv[i], "--ready") == 0 && i + 1 < argc) {
            ready = argv[++i];
        } else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc) {
            hold = atoi(argv[++i]);
        } else if (port == 0) {
            port = (uint16_t) atoi(argv[i]);
        } else {
            token = argv[i];
        }
    }

    if (n <= 0 || port == 0 || token == NULL) {
        fprintf(stderr, "regload: need -n N, PORT and TOKEN\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);

    if (cafile) {
        tls = SSL_CTX_new(TLS_client_method());
        if (tls == NULL || SSL_CTX_load_verify_locations(tls, cafile, NULL)
                           != 1)
        {
            fprintf(stderr, "regload: cannot read %s\n", cafile);
            return 1;
        }
        SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_mode(tls, SSL_MODE_AUTO_RETRY);
    }

    if (strcmp(mode, "time") == 0) {
        return run_time(n);
    }

    if (strcmp(mode, "hold") == 0 && ready) {
        return run_hold(n, ready, hold);
    }

    fprintf(stderr, "regload: mode is time or hold (hold needs --ready)\n");
    return 2;
}
