/*
 * Copyright (C) ngx_tunnel developers
 *
 * A session with the server: the connection, yamux, the control stream
 * (hello, binds, notices), pings, and staying connected: reconnect with
 * backoff after a loss, and make-before-break when the server reloads (a
 * new session binds the same names, then the old one leaves).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client.h"


#define SESSION_CONNECT_TIMEOUT   15000     /* ms: connect, TLS, welcome */
#define SESSION_LEAVE_GRACE       30000     /* ms an old session may drain */
#define SESSION_MOVE_WAIT         5000      /* ms it waits for the next */
#define SESSION_QUIT_GRACE        5000      /* ms open connections get on quit */
#define SESSION_STABLE            30000     /* ms up: backoff starts over */
#define SESSION_FLAP_ATTEMPTS     2         /* after a short session */
#define REBIND_DELAY              20        /* ms: a port an old one holds */
#define REBIND_TRIES              250
#define BACKOFF_FIRST             100
#define BACKOFF_CAP               30000
#define READ_SIZE                 (64 * 1024)
#define SESSION_BLOCK             (64 * 1024)  /* yamux output blocks */
#define SESSION_BLOCKS_KEPT       32        /* 2 MiB of them, for reuse */
#define SESSION_MAX_STREAMS       65536
#define SESSION_WINDOW_MAX        (64 * 1024 * 1024)  /* auto-tuned up to */
#define IOVS                      64


typedef enum {
    S_CONNECTING = 0,
    S_HELLO,                      /* hello sent, waiting for welcome */
    S_ONLINE,
    S_MOVING,                     /* asked to move: serves on until the
                                     next session has bound every name */
    S_LEAVING                     /* go-away sent: ends with its streams */
} session_state_e;


struct session_s {
    client_t         *cl;
    conn_t            conn;
    loop_io_t         io;
    loop_post_t       flush;
    loop_timer_t      timer;
    yamux_session_t  *mux;
    uint32_t          ctl;
    session_state_e   state;

    uint32_t          tid[MAX_TUNNELS];   /* tunnel ids of this session */
    unsigned          binds_pending;
    session_t        *older;              /* cl->old: the next older one */
    int               refused;            /* a bind: "shutting down" */
    int               released;           /* moved: its names unbound */

    loop_timer_t      rebind;             /* ports our old sessions held */
    uint32_t          rebinding;          /* tunnels waiting for theirs */
    uint32_t          rebinds;            /*   to ask for at the timer */
    unsigned          rebind_tries;

    uint64_t          started;
    uint64_t          welcomed;
    uint64_t          last_input;
    uint32_t          heartbeat;
    char              id[65];

    fwd_t           **fwds;
    unsigned          nfwds;
    unsigned          cfwds;

    int               in_mux;             /* inside yamux: no free */
    int               dead;
    char              why[384];

    uint8_t          *stash;              /* input yamux did not take */
    size_t            nstash;

    size_t            nctl;
    uint8_t           ctl_in[TUNNEL_MSG_MAX];
    uint8_t           rbuf[READ_SIZE];
};


static void *session_mux_alloc(size_t size, void *ud);
static void session_mux_free(void *p, size_t size, void *ud);
static void session_io(void *data, unsigned events);
static void session_established(session_t *s);
static void session_read(session_t *s);
static int session_input(session_t *s, const uint8_t *p, size_t n,
    size_t *used);
static void session_flush(session_t *s);
static void session_flush_posted(void *data);
static void session_timer(void *data);
static void session_fail(session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void session_end(session_t *s);
static void session_send(session_t *s, tunnel_msg_t *m);
static void session_control(session_t *s, const uint8_t *p, size_t n);
static void session_message(session_t *s, tunnel_msg_t *m);
static void session_welcome(session_t *s, tunnel_msg_t *m);
static void session_bind_all(session_t *s);
static void session_bind(session_t *s, int i);
static int session_rebind_later(session_t *s, tunnel_t *t, int i);
static void session_rebind(void *data);
static void session_bound(session_t *s, tunnel_msg_t *m);
static void session_bind_error(session_t *s, tunnel_msg_t *m);
static void session_replace(session_t *s);
static void session_release_old(client_t *cl);
static void session_unbind_all(session_t *s);
static void session_leave_old(client_t *cl);
static void client_reconnect(void *data);
static void client_schedule(client_t *cl, const char *why);
static void client_check_done(client_t *cl);

static int on_open(yamux_session_t *mux, uint32_t id, void *ud);
static void on_data(yamux_session_t *mux, uint32_t id, void *sd,
    const uint8_t *p, size_t n);
static void on_fin(yamux_session_t *mux, uint32_t id, void *sd);
static void on_writable(yamux_session_t *mux, uint32_t id, void *sd);
static void on_closed(yamux_session_t *mux, uint32_t id, void *sd,
    yamux_close_e how);
static void on_ping_ack(yamux_session_t *mux, uint32_t opaque, void *ud);
static void on_go_away(yamux_session_t *mux, uint32_t code, void *ud);


static const yamux_callbacks_t  session_callbacks = {
    on_open, on_data, on_fin, on_writable, on_closed, on_ping_ack,
    on_go_away
};

/* freed output blocks, for all sessions: fresh memory page-faults */
static void      *session_blocks[SESSION_BLOCKS_KEPT];
static unsigned   session_nblocks;


void
client_connect(client_t *cl)
{
    session_t  *s;
    options_t  *o;

    o = cl->opt;

    if (cl->instance[0] == '\0') {
        unsigned char  r[8];
        int            i;

        if (RAND_bytes(r, sizeof(r)) != 1) {
            memset(r, 0, sizeof(r));
        }

        for (i = 0; i < 8; i++) {
            sprintf(cl->instance + 2 * i, "%02x", r[i]);
        }
    }

    s = calloc(1, sizeof(session_t));
    if (s == NULL) {
        client_schedule(cl, "out of memory");
        return;
    }

    s->cl = cl;
    s->started = loop_now();
    s->flush.handler = session_flush_posted;
    s->flush.data = s;
    s->timer.handler = session_timer;
    s->timer.data = s;
    s->rebind.handler = session_rebind;
    s->rebind.data = s;

    cl->active = s;

    snprintf(cl->status, sizeof(cl->status), "connecting");
    view_event(cl, LOG_INFO, "connecting", NULL, "connecting to %s:%s%s",
               o->server_host, o->server_port, o->plain ? " (no TLS)" : "");

    if (conn_start(&s->conn, o->server_host, o->server_port,
                   o->plain ? NULL : cl->tls)
        != 0)
    {
        char  why[sizeof(s->conn.error)];

        snprintf(why, sizeof(why), "%s", s->conn.error);
        cl->active = NULL;
        session_free(s);
        session_leave_old(cl);
        client_schedule(cl, why);
        return;
    }

    s->io.fd = s->conn.fd;
    s->io.handler = session_io;
    s->io.data = s;

    if (loop_add(cl->loop, &s->io) != 0) {
        cl->active = NULL;
        session_free(s);
        client_schedule(cl, "cannot watch the connection");
        return;
    }

    loop_timer(cl->loop, &s->timer, SESSION_CONNECT_TIMEOUT);
}


static void
session_io(void *data, unsigned events)
{
    int         rc;
    session_t  *s = data;

    if (events & LOOP_READ) {
        s->conn.readable = 1;
    }

    if (events & LOOP_RDHUP) {
        s->conn.rdhup = 1;
    }

    if (events & LOOP_WRITE) {
        s->conn.writable = 1;
    }

    if (s->conn.state != CONN_READY) {
        rc = conn_progress(&s->conn);

        if (rc < 0) {
            session_fail(s, "%s", s->conn.error);

            if (s->conn.fatal) {
                /* another try would meet the same certificate */
                s->cl->exit_code = 1;
                s->cl->quitting = 1;
            }

            session_end(s);
            return;
        }

        if (rc == 0) {
            return;
        }

        session_established(s);
    }

    session_read(s);

    if (!s->dead) {
        session_flush(s);
    }

    if (s->dead && !s->in_mux) {
        session_end(s);
    }
}


static void *
session_mux_alloc(size_t size, void *ud)
{
    (void) ud;

    if (size == SESSION_BLOCK && session_nblocks) {
        return session_blocks[--session_nblocks];
    }

    return malloc(size);
}


static void
session_mux_free(void *p, size_t size, void *ud)
{
    (void) ud;

    if (size == SESSION_BLOCK && session_nblocks < SESSION_BLOCKS_KEPT) {
        session_blocks[session_nblocks++] = p;
        return;
    }

    free(p);
}


/* the connection is up: yamux, the control stream, hello */
static void
session_established(session_t *s)
{
    yamux_config_t  yc;
    tunnel_msg_t    m;
    client_t       *cl;

    cl = s->cl;

    yamux_config_init(&yc, 1);
    yc.window = cl->opt->window;
    yc.max_window = cl->opt->window > SESSION_WINDOW_MAX ? cl->opt->window
                                                        : SESSION_WINDOW_MAX;
    yc.clock = loop_now;
    yc.block_size = SESSION_BLOCK;
    yc.allocator.alloc = session_mux_alloc;
    yc.allocator.free = session_mux_free;

    /* the server's tunnel_max_streams is the limit that counts */
    yc.max_streams = SESSION_MAX_STREAMS;

    s->mux = yamux_session_new(&yc, &session_callbacks, s);
    if (s->mux == NULL
        || yamux_stream_open(s->mux, &s->ctl, NULL) != YAMUX_OK)
    {
        session_fail(s, "out of memory");
        return;
    }

    memset(&m, 0, sizeof(m));
    m.type = TUNNEL_HELLO;
    m.version = TUNNEL_PROTO_VERSION;
    m.token = tunnel_str(cl->opt->token);
    m.client_name = tunnel_str("tunnel");
    m.client_version = tunnel_str(TUNNEL_CLIENT_VERSION);
    m.instance = tunnel_str(cl->instance);

    session_send(s, &m);
    s->state = S_HELLO;
    s->last_input = loop_now();
    s->conn.readable = 1;
    s->conn.writable = 1;
}


static void
session_read(session_t *s)
{
    ssize_t  n;
    size_t   used;
    int      rounds;

    if (s->stash) {
        if (session_input(s, s->stash, s->nstash, &used) != 0) {
            return;
        }

        if (used < s->nstash) {
            memmove(s->stash, s->stash + used, s->nstash - used);
            s->nstash -= used;
            return;
        }

        free(s->stash);
        s->stash = NULL;
        s->nstash = 0;
    }

    for (rounds = 0; rounds < 16 && s->conn.readable && !s->dead; rounds++) {
        n = conn_read(&s->conn, s->rbuf, READ_SIZE);

        if (n == CONN_AGAIN) {
            break;
        }

        if (n == 0) {
            session_fail(s, "the server closed the connection");
            return;
        }

        if (n < 0) {
            session_fail(s, "%s", s->conn.error);
            return;
        }

        s->last_input = loop_now();

        if (session_input(s, s->rbuf, n, &used) != 0) {
            return;
        }

        if (used < (size_t) n) {
            /* a ping flood: keep the rest until our answers are out */
            s->stash = malloc(n - used);
            if (s->stash == NULL) {
                session_fail(s, "out of memory");
                return;
            }

            memcpy(s->stash, s->rbuf + used, n - used);
            s->nstash = n - used;
            break;
        }
    }

    if (s->conn.readable && rounds == 16) {
        /* more is waiting: after the others had their turn */
        loop_post(s->cl->loop, &s->flush);
    }
}


static int
session_input(session_t *s, const uint8_t *p, size_t n, size_t *used)
{
    ssize_t  rc;

    s->in_mux = 1;
    rc = yamux_input(s->mux, p, n);
    s->in_mux = 0;

    if (rc == YAMUX_EPROTO) {
        session_fail(s, "the server broke the protocol: %s",
                     yamux_error(s->mux));
        return -1;
    }

    if (s->dead) {
        return -1;
    }

    *used = (size_t) rc;

    return 0;
}


static void
session_flush(session_t *s)
{
    int           n;
    ssize_t       w;
    struct iovec  iov[IOVS];

    if (s->mux == NULL || s->conn.state != CONN_READY) {
        return;
    }

    while (s->conn.writable && !s->dead) {

        if (conn_buffered(&s->conn) && conn_flush(&s->conn) != 0) {
            break;
        }

        n = yamux_output(s->mux, iov, IOVS);
        if (n == 0) {
            break;
        }

        w = conn_writev(&s->conn, iov, n);

        if (w == CONN_AGAIN) {
            break;
        }

        if (w < 0) {
            session_fail(s, "%s", s->conn.error);
            break;
        }

        s->in_mux = 1;
        yamux_output_advance(s->mux, (size_t) w);
        s->in_mux = 0;
    }

    if (s->stash && yamux_output_pending(s->mux) == 0) {
        loop_post(s->cl->loop, &s->flush);
    }

    if (s->state == S_LEAVING && s->nfwds == 0
        && yamux_output_pending(s->mux) == 0
        && conn_buffered(&s->conn) == 0)
    {
        /* said goodbye and has nothing left to carry */
        s->dead = 1;
        snprintf(s->why, sizeof(s->why), "left");
    }
}


static void
session_flush_posted(void *data)
{
    session_t  *s = data;

    session_read(s);

    if (!s->dead) {
        session_flush(s);
    }

    if (s->dead && !s->in_mux) {
        session_end(s);
    }
}


void
session_flush_later(session_t *s)
{
    loop_post(s->cl->loop, &s->flush);
}


static void
session_timer(void *data)
{
    uint64_t    now, silent;
    session_t  *s = data;

    now = loop_now();

    switch (s->state) {

    case S_CONNECTING:
    case S_HELLO:
        session_fail(s, "no answer from the server within %d s",
                     SESSION_CONNECT_TIMEOUT / 1000);
        break;

    case S_MOVING:
        if (!s->released) {
            /* no new session came (nginx stops, behind a proxy): leave */
            session_go_away(s);
            break;
        }

        /* fall through */

    case S_LEAVING:
        s->dead = 1;
        snprintf(s->why, sizeof(s->why), "left with %u connections open",
                 s->nfwds);
        break;

    case S_ONLINE:
        silent = now - s->last_input;

        if (silent >= 3 * (uint64_t) s->heartbeat) {
            session_fail(s, "no answer from the server for %llu s",
                         (unsigned long long) silent / 1000);
            break;
        }

        (void) yamux_ping(s->mux, (uint32_t) now);
        session_flush(s);
        loop_timer(s->cl->loop, &s->timer, s->heartbeat);
        break;
    }

    if (s->dead && !s->in_mux) {
        session_end(s);
    }
}


/* the session is lost: the client carries on with another */
static void
session_fail(session_t *s, const char *fmt, ...)
{
    va_list  args;

    if (s->dead) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, args);
    va_end(args);

    /*
     * The event handler that got us here ends the session on its way out
     * (session_io(), session_flush_posted(), session_timer()): ending it
     * here would free it under their feet.
     */
    s->dead = 1;
}


static void
session_end(session_t *s)
{
    client_t   *cl;
    session_t **pp;
    int         was_active, i;

    cl = s->cl;
    was_active = (cl->active == s);

    for (pp = &cl->old; *pp; pp = &(*pp)->older) {
        if (*pp == s) {
            *pp = s->older;
            break;
        }
    }

    if (was_active) {
        cl->active = NULL;

        for (i = 0; i < cl->opt->ntunnels; i++) {
            cl->opt->tunnels[i].bound = 0;
        }

        /*
         * A session that was up starts the backoff over: from nothing after
         * a stable one, from 400 ms at most after a short one, so that a
         * server that keeps dropping us is not asked several times a
         * second, but a cut connection comes back well within a second.
         */
        if (s->welcomed) {
            if (loop_now() - s->welcomed >= SESSION_STABLE) {
                cl->attempts = 0;

            } else if (cl->attempts > SESSION_FLAP_ATTEMPTS) {
                cl->attempts = SESSION_FLAP_ATTEMPTS;
            }
        }

        /*
         * Refused outright: nginx stops (it closes its ports then, not on
         * a reload), the sessions waiting for this one need not wait.  A
         * reset after the connect is what a session that lands in a worker
         * just as it quits gets: those wait on (SESSION_MOVE_WAIT).
         */
        if (s->state == S_CONNECTING) {
            session_leave_old(cl);
        }
    }

    /* a moved session that the server closes once it is empty: as planned */
    if (s->state != S_LEAVING && (s->state != S_MOVING || s->nfwds)) {
        view_event(cl, was_active ? LOG_ERROR : LOG_INFO, "disconnected",
                   NULL, "session %s ended: %s",
                   s->id[0] ? s->id : "(new)", s->why);
    }

    session_free(s);

    if (was_active && !cl->quitting && cl->exit_code < 0) {
        client_schedule(cl, NULL);
    }

    client_check_done(cl);
}


void
session_free(session_t *s)
{
    client_t  *cl;

    cl = s->cl;

    while (s->nfwds) {
        fwd_abort(s->fwds[s->nfwds - 1]);
    }

    free(s->fwds);

    loop_timer_cancel(cl->loop, &s->timer);
    loop_timer_cancel(cl->loop, &s->rebind);
    loop_unpost(cl->loop, &s->flush);

    if (s->conn.fd != -1 && s->io.handler) {
        loop_del(cl->loop, &s->io);
    }

    conn_close(&s->conn);

    if (s->mux) {
        yamux_session_free(s->mux);
    }

    free(s->stash);
    free(s);
}


/* a session is leaving for good: no new streams, then close */
void
session_go_away(session_t *s)
{
    if (s->state == S_LEAVING) {
        return;
    }

    s->state = S_LEAVING;

    if (s->mux) {
        (void) yamux_go_away(s->mux, YAMUX_GOAWAY_NORMAL);
        (void) yamux_stream_close(s->mux, s->ctl);
    }

    loop_timer(s->cl->loop, &s->timer, s->cl->quitting ? SESSION_QUIT_GRACE
                                                       : SESSION_LEAVE_GRACE);
    session_flush_later(s);
}


/* control */

static void
session_send(session_t *s, tunnel_msg_t *m)
{
    size_t   n;
    uint8_t  buf[4096];

    n = tunnel_msg_encode(m, buf, sizeof(buf));

    if (n == 0 || yamux_stream_write(s->mux, s->ctl, buf, n) != (ssize_t) n)
    {
        session_fail(s, "cannot send a %s message",
                     tunnel_msg_type_name(m->type));
        return;
    }

    session_flush_later(s);
}


static void
session_control(session_t *s, const uint8_t *p, size_t n)
{
    int           rc;
    size_t        used, k;
    const char   *why;
    tunnel_msg_t  m;

    while (n) {
        k = sizeof(s->ctl_in) - s->nctl;
        if (k > n) {
            k = n;
        }

        memcpy(s->ctl_in + s->nctl, p, k);
        s->nctl += k;
        p += k;
        n -= k;

        while (!s->dead) {
            rc = tunnel_msg_decode(&m, s->ctl_in, s->nctl, &used, &why);

            if (rc == TUNNEL_MSG_AGAIN) {
                break;
            }

            if (rc == TUNNEL_MSG_INVALID) {
                session_fail(s, "the server sent a bad message: %s", why);
                return;
            }

            session_message(s, &m);

            memmove(s->ctl_in, s->ctl_in + used, s->nctl - used);
            s->nctl -= used;
        }
    }
}


static void
session_message(session_t *s, tunnel_msg_t *m)
{
    client_t  *cl;
    tunnel_t  *t;
    unsigned   i;

    cl = s->cl;

    switch (m->type) {

    case TUNNEL_WELCOME:
        session_welcome(s, m);
        break;

    case TUNNEL_ERROR:
        if (m->code == TUNNEL_E_AUTH) {
            view_event(cl, LOG_ERROR, "refused", NULL,
                       "The server did not accept your token (it says: "
                       "%.*s). Check --token or TUNNEL_TOKEN: the server's "
                       "operator gives you one.", (int) m->message.len,
                       (const char *) m->message.data);

        } else {
            view_event(cl, LOG_ERROR, "refused", NULL,
                       "The server refused the session: %.*s",
                       (int) m->message.len, (const char *) m->message.data);
        }

        if (m->code == TUNNEL_E_AUTH || m->code == TUNNEL_E_VERSION
            || m->code == TUNNEL_E_BAD_MESSAGE)
        {
            /* retrying would only be refused again */
            s->dead = 1;
            snprintf(s->why, sizeof(s->why), "refused");
            client_quit(cl, 1);
            return;
        }

        session_fail(s, "the server refused the session (%s)",
                     tunnel_error_text(m->code));
        break;

    case TUNNEL_BOUND:
        session_bound(s, m);
        break;

    case TUNNEL_BIND_ERROR:
        session_bind_error(s, m);
        break;

    case TUNNEL_UNBOUND:
        for (i = 0; i < (unsigned) cl->opt->ntunnels; i++) {
            if (s->tid[i] == m->tunnel_id) {
                t = &cl->opt->tunnels[i];
                s->tid[i] = 0;

                if (s == cl->active) {
                    t->bound = 0;
                    view_event(cl, LOG_ERROR, "unbound", t,
                               "the server took %s away: %.*s", t->url,
                               (int) m->message.len,
                               (const char *) m->message.data);
                }
            }
        }
        break;

    case TUNNEL_NOTICE:
        if (m->code == TUNNEL_NOTICE_RECONNECT) {
            /* a planned restart: the server is back soon, so are we */
            cl->attempts = 0;
            view_event(cl, LOG_INFO, "reconnect", NULL,
                       "the server asks to reconnect (%.*s): opening a new "
                       "session first", (int) m->message.len,
                       (const char *) m->message.data);
            session_replace(s);
            break;
        }

        view_event(cl, LOG_INFO, "notice", NULL, "server: %.*s",
                   (int) m->message.len, (const char *) m->message.data);
        break;

    default:
        session_fail(s, "the server sent %s, which only a client sends",
                     tunnel_msg_type_name(m->type));
    }
}


static void
session_welcome(session_t *s, tunnel_msg_t *m)
{
    client_t  *cl;
    size_t     n;

    cl = s->cl;

    if (s->state != S_HELLO) {
        session_fail(s, "the server said welcome twice");
        return;
    }

    n = m->session_id.len < sizeof(s->id) - 1 ? m->session_id.len
                                              : sizeof(s->id) - 1;
    memcpy(s->id, m->session_id.data, n);
    s->id[n] = '\0';

    s->heartbeat = m->heartbeat_ms ? m->heartbeat_ms : 10000;
    s->welcomed = loop_now();
    s->state = S_ONLINE;

    cl->backoff = 0;
    snprintf(cl->status, sizeof(cl->status), "online");

    view_event(cl, LOG_INFO, "connected", NULL,
               "connected to %s:%s, session %s (%llu ms)",
               cl->opt->server_host, cl->opt->server_port, s->id,
               (unsigned long long) (s->welcomed - s->started));

    loop_timer(cl->loop, &s->timer, s->heartbeat);
    (void) yamux_ping(s->mux, (uint32_t) loop_now());

    session_bind_all(s);
}


static void
session_bind_all(session_t *s)
{
    int  i;

    for (i = 0; i < s->cl->opt->ntunnels; i++) {
        if (!s->cl->opt->tunnels[i].failed) {
            session_bind(s, i);
        }
    }

    if (s->binds_pending == 0) {
        client_quit(s->cl, 1);
    }
}


static void
session_bind(session_t *s, int i)
{
    tunnel_t      *t;
    tunnel_msg_t   m;

    t = &s->cl->opt->tunnels[i];

    memset(&m, 0, sizeof(m));
    m.type = TUNNEL_BIND;
    m.request_id = (uint32_t) i + 1;
    m.kind = t->kind;

    /* again the very name and port the server gave before */
    if (t->bound_name[0]) {
        m.name = tunnel_str(t->bound_name);

    } else if (t->name[0]) {
        m.name = tunnel_str(t->name);
    }

    m.port = t->bound_port ? t->bound_port : t->remote_port;

    session_send(s, &m);
    s->binds_pending++;
}


/*
 * The port we ask for again is "in use": by one of our own old sessions, in
 * an nginx whose registry is not this one (a binary upgrade: USR2).  That
 * one gives it up, and we ask again a little later.  1 if so.
 */
static int
session_rebind_later(session_t *s, tunnel_t *t, int i)
{
    int           held;
    session_t    *o;
    client_t     *cl;
    tunnel_msg_t  m;

    cl = s->cl;
    held = (s->rebinding & (1u << i)) != 0;

    for (o = cl->old; o && !held; o = o->older) {
        if (o->tid[i] == 0 || o->dead) {
            continue;
        }

        /* its tid stays: a connection on its way is still served */
        memset(&m, 0, sizeof(m));
        m.type = TUNNEL_UNBIND;
        m.tunnel_id = o->tid[i];
        session_send(o, &m);
        session_flush_later(o);
        held = 1;
    }

    if (!held) {
        return 0;
    }

    if (s->rebind_tries++ >= REBIND_TRIES) {
        s->rebinding &= ~(1u << i);
        return 0;
    }

    view_event(cl, LOG_DEBUG, "rebind", t,
               "port %u is still held by our previous session: asking again",
               (unsigned) t->bound_port);

    s->rebinding |= 1u << i;
    s->rebinds |= 1u << i;
    loop_timer(cl->loop, &s->rebind, REBIND_DELAY);

    return 1;
}


static void
session_rebind(void *data)
{
    int         i;
    session_t  *s = data;

    if (s->state != S_ONLINE) {
        return;
    }

    for (i = 0; i < s->cl->opt->ntunnels; i++) {
        if (s->rebinds & (1u << i)) {
            session_bind(s, i);
        }
    }

    s->rebinds = 0;
    session_flush(s);

    if (s->dead && !s->in_mux) {
        session_end(s);
    }
}


static void
session_bound(session_t *s, tunnel_msg_t *m)
{
    client_t  *cl;
    tunnel_t  *t;
    size_t     n;
    int        first;

    cl = s->cl;

    if (m->request_id == 0 || m->request_id > (unsigned) cl->opt->ntunnels) {
        session_fail(s, "the server answered a bind we did not send");
        return;
    }

    t = &cl->opt->tunnels[m->request_id - 1];
    s->tid[m->request_id - 1] = m->tunnel_id;
    s->binds_pending--;

    first = (t->url[0] == '\0');

    n = m->url.len < sizeof(t->url) - 1 ? m->url.len : sizeof(t->url) - 1;
    memcpy(t->url, m->url.data, n);
    t->url[n] = '\0';

    n = m->name.len < sizeof(t->bound_name) - 1 ? m->name.len
                                                : sizeof(t->bound_name) - 1;
    if (n) {
        memcpy(t->bound_name, m->name.data, n);   /* a tcp tunnel has none */
    }

    t->bound_name[n] = '\0';

    t->bound_port = m->port;
    t->bound = 1;

    view_event(cl, first ? LOG_INFO : LOG_DEBUG, "bound", t,
               "%s -> %s", t->url, t->label);

    s->rebinding &= ~(1u << (m->request_id - 1));

    if (s->binds_pending == 0 && s == cl->active && !s->refused
        && s->rebinding == 0)
    {
        /* every name is here now: the old sessions may go */
        session_release_old(cl);
    }

    view_redraw(cl);
}


static void
session_bind_error(session_t *s, tunnel_msg_t *m)
{
    client_t    *cl;
    tunnel_t    *t;
    int          i, left;
    const char  *hint;

    cl = s->cl;

    if (m->request_id == 0 || m->request_id > (unsigned) cl->opt->ntunnels) {
        session_fail(s, "the server answered a bind we did not send");
        return;
    }

    t = &cl->opt->tunnels[m->request_id - 1];
    s->binds_pending--;

    if (m->code == TUNNEL_E_SHUTDOWN || s != cl->active) {
        /*
         * The session landed in a worker that is quitting (or has been
         * asked to move since): its go-away is on the way, and the next
         * session binds the name.
         */
        s->refused = 1;
        view_event(cl, LOG_DEBUG, "bind-later", t,
                   "%s: %.*s; binding it in the next session", t->label,
                   (int) m->message.len, (const char *) m->message.data);
        return;
    }

    if (m->code == TUNNEL_E_PORT_TAKEN && t->bound_port
        && session_rebind_later(s, t, (int) m->request_id - 1))
    {
        return;
    }

    switch (m->code) {
    case TUNNEL_E_NAME_TAKEN:
        hint = " Choose another name with --name, or leave it out for a "
               "random one.";
        break;
    case TUNNEL_E_NAME_FORBIDDEN:
        hint = " Your token allows other names: ask the server's operator.";
        break;
    case TUNNEL_E_PORT_TAKEN:
        hint = " Leave --remote-port out to get any free port.";
        break;
    case TUNNEL_E_PORTS_FULL:
        hint = " Every public port of the server is in use: try again "
               "later, or ask its operator for a larger tunnel_tcp_ports.";
        break;
    default:
        hint = "";
    }

    t->failed = 1;

    view_event(cl, LOG_ERROR, "bind-error", t,
               "cannot open %s tunnel%s%s: %.*s.%s",
               tunnel_kind_name(t->kind), t->name[0] ? " " : "", t->name,
               (int) m->message.len, (const char *) m->message.data, hint);

    for (i = 0, left = 0; i < cl->opt->ntunnels; i++) {
        left += !cl->opt->tunnels[i].failed;
    }

    if (left == 0) {
        client_quit(cl, 1);
        return;
    }

    if (s->binds_pending == 0 && !s->refused && s->rebinding == 0) {
        session_release_old(cl);
    }
}


/*
 * The server is going away: a new session now; this one serves its streams,
 * and new ones the server still routes to it, until the new one has bound
 * every name (nginx may reload again meanwhile: older ones wait as well).
 */
static void
session_replace(session_t *s)
{
    client_t  *cl;

    cl = s->cl;

    if (s != cl->active || cl->quitting) {
        return;
    }

    s->state = S_MOVING;
    s->older = cl->old;
    cl->old = s;
    loop_timer(cl->loop, &s->timer, SESSION_MOVE_WAIT);

    client_connect(cl);
}


/*
 * The active session is bound: those it replaced give their names up.  Not
 * a go-away: that would refuse the streams the server opened before it saw
 * the names move, and may still be on their way.  The server closes each
 * once its streams are done.
 */
static void
session_release_old(client_t *cl)
{
    session_t  *s;

    for (s = cl->old; s; s = s->older) {
        session_unbind_all(s);
    }
}


/*
 * The server cannot be reached at all (nginx closes its ports when it
 * stops, not when it reloads), or we quit: the sessions that wait for a
 * successor leave once their streams are done.
 */
static void
session_leave_old(client_t *cl)
{
    session_t  *s;

    for (s = cl->old; s; s = s->older) {
        session_go_away(s);
    }
}


static void
session_unbind_all(session_t *s)
{
    int           i;
    tunnel_msg_t  m;

    if (s->state != S_MOVING || s->released || s->dead) {
        return;
    }

    s->released = 1;
    loop_timer(s->cl->loop, &s->timer, SESSION_LEAVE_GRACE);

    for (i = 0; i < s->cl->opt->ntunnels; i++) {
        if (s->tid[i] == 0) {
            continue;
        }

        /* s->tid stays: a stream still on its way is served */
        memset(&m, 0, sizeof(m));
        m.type = TUNNEL_UNBIND;
        m.tunnel_id = s->tid[i];
        session_send(s, &m);
    }
}


/* reconnecting */

static void
client_schedule(client_t *cl, const char *why)
{
    uint64_t  cap, delay;

    if (cl->quitting || cl->exit_code >= 0) {
        return;
    }

    /* full jitter over an exponential cap */
    cap = BACKOFF_FIRST;

    for (unsigned i = 0; i < cl->attempts && cap < BACKOFF_CAP; i++) {
        cap *= 2;
    }

    if (cap > BACKOFF_CAP) {
        cap = BACKOFF_CAP;
    }

    delay = (uint64_t) random() % (cap + 1);
    cl->attempts++;
    cl->backoff = delay;

    snprintf(cl->status, sizeof(cl->status), "reconnecting");

    if (why) {
        view_event(cl, LOG_ERROR, "error", NULL, "%s", why);
    }

    view_event(cl, LOG_INFO, "reconnecting", NULL, "reconnecting in %llu ms",
               (unsigned long long) delay);

    cl->reconnect.handler = client_reconnect;
    cl->reconnect.data = cl;
    loop_timer(cl->loop, &cl->reconnect, delay);
}


static void
client_reconnect(void *data)
{
    client_t  *cl = data;

    if (cl->active == NULL && !cl->quitting) {
        client_connect(cl);
    }
}


void
client_quit(client_t *cl, int code)
{
    if (cl->exit_code < 0 || code > cl->exit_code) {
        cl->exit_code = code;
    }

    cl->quitting = 1;
    loop_timer_cancel(cl->loop, &cl->reconnect);

    if (cl->active) {
        if (cl->active->state == S_ONLINE && code == 0) {
            session_go_away(cl->active);

        } else if (!cl->active->dead) {
            cl->active->dead = 1;
            snprintf(cl->active->why, sizeof(cl->active->why), "quit");

            if (!cl->active->in_mux) {
                session_end(cl->active);
            }
        }
    }

    session_leave_old(cl);

    client_check_done(cl);
}


static void
client_check_done(client_t *cl)
{
    if (cl->quitting && cl->active == NULL && cl->old == NULL) {
        loop_stop(cl->loop);
    }
}


/* yamux events */

static int
on_open(yamux_session_t *mux, uint32_t id, void *ud)
{
    session_t  *s = ud;

    (void) mux;

    if ((id & 1) || s->state == S_CONNECTING || s->state == S_HELLO) {
        return -1;
    }

    return fwd_open(s, id);
}


static void
on_data(yamux_session_t *mux, uint32_t id, void *sd, const uint8_t *p,
    size_t n)
{
    session_t  *s;

    s = yamux_session_data(mux);

    if (id == s->ctl) {
        yamux_stream_consumed(mux, id, n);
        session_control(s, p, n);
        return;
    }

    if (sd) {
        fwd_data(sd, p, n);
    }
}


static void
on_fin(yamux_session_t *mux, uint32_t id, void *sd)
{
    session_t  *s;

    s = yamux_session_data(mux);

    if (id == s->ctl) {
        if (s->state != S_LEAVING && s->state != S_MOVING) {
            session_fail(s, "the server closed the control stream");
        }

        return;
    }

    if (sd) {
        fwd_fin(sd);
    }
}


static void
on_writable(yamux_session_t *mux, uint32_t id, void *sd)
{
    (void) mux;
    (void) id;

    if (sd) {
        fwd_writable(sd);
    }
}


static void
on_closed(yamux_session_t *mux, uint32_t id, void *sd, yamux_close_e how)
{
    session_t  *s;

    s = yamux_session_data(mux);

    if (id == s->ctl) {
        if ((s->state != S_LEAVING && s->state != S_MOVING)
            || how != YAMUX_CLOSED_NORMAL)
        {
            session_fail(s, "the server closed the control stream");
        }

        return;
    }

    if (sd) {
        fwd_closed(sd, how);
    }
}


static void
on_ping_ack(yamux_session_t *mux, uint32_t opaque, void *ud)
{
    session_t  *s = ud;

    (void) mux;

    if (s == s->cl->active) {
        s->cl->rtt = (uint32_t) loop_now() - opaque;
    }
}


static void
on_go_away(yamux_session_t *mux, uint32_t code, void *ud)
{
    session_t  *s = ud;

    (void) mux;

    if (code != YAMUX_GOAWAY_NORMAL) {
        session_fail(s, "the server ended the session (%s)",
                     code == YAMUX_GOAWAY_PROTOCOL ? "protocol error"
                                                   : "internal error");
        return;
    }

    /* no RECONNECT notice came first: still move, as gently */
    if (s->state == S_ONLINE) {
        session_replace(s);
    }
}


/* for forward.c */

yamux_session_t *
session_mux(session_t *s)
{
    return s->mux;
}


client_t *
session_client(session_t *s)
{
    return s->cl;
}


tunnel_t *
session_tunnel(session_t *s, uint32_t tunnel_id)
{
    int  i;

    for (i = 0; i < s->cl->opt->ntunnels; i++) {
        if (s->tid[i] == tunnel_id && tunnel_id) {
            return &s->cl->opt->tunnels[i];
        }
    }

    return NULL;
}


int
session_fwd_add(session_t *s, fwd_t *f)
{
    fwd_t     **n;
    unsigned    c;

    if (s->nfwds == s->cfwds) {
        c = s->cfwds ? 2 * s->cfwds : 16;
        n = realloc(s->fwds, c * sizeof(fwd_t *));
        if (n == NULL) {
            return -1;
        }

        s->fwds = n;
        s->cfwds = c;
    }

    s->fwds[s->nfwds++] = f;

    return 0;
}


void
session_fwd_done(session_t *s, fwd_t *f)
{
    unsigned  i;

    for (i = 0; i < s->nfwds; i++) {
        if (s->fwds[i] == f) {
            s->fwds[i] = s->fwds[--s->nfwds];
            break;
        }
    }

    if (s->state == S_LEAVING && s->nfwds == 0) {
        session_flush_later(s);
    }
}
