
/*
 * Copyright (C) ngx_tunnel developers
 *
 * A public connection carried by a yamux stream, both ways, with
 * back-pressure.  Public bytes are read straight into the session's output
 * queue (yamux_stream_reserve), so nothing is held for a tunnel that does not
 * read.  Tunnel bytes are written straight from the session's read buffer;
 * only what a slow public peer does not take is kept, and the peer's window
 * is credited as it drains, so that is never more than one window.
 *
 * A public socket with no byte either way for tunnel_idle_timeout is
 * closed and its stream reset.  A socketpair (a balancer's peer) has no
 * such timer: proxy_read_timeout or proxy_timeout bound it on nginx's side.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#define NGX_TUNNEL_BRIDGE_ROUNDS  16    /* reads per event, then yield */


static ngx_int_t ngx_tunnel_stream_header(ngx_tunnel_stream_t *bs,
    ngx_tunnel_tunnel_t *t, ngx_tunnel_handoff_t *h);
static void ngx_tunnel_bridge_read_handler(ngx_event_t *rev);
static void ngx_tunnel_bridge_write_handler(ngx_event_t *wev);
static void ngx_tunnel_bridge_data(ngx_tunnel_stream_t *bs, const u_char *p,
    size_t n);
static void ngx_tunnel_bridge_fin(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_bridge_writable(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_bridge_closed(ngx_tunnel_stream_t *bs,
    yamux_close_e how);
static void ngx_tunnel_bridge_abort(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_bridge_shutdown(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_bridge_test_done(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_bridge_finish(ngx_tunnel_stream_t *bs,
    ngx_uint_t reset);
static ngx_msec_t ngx_tunnel_bridge_idle(ngx_tunnel_session_t *ts,
    ngx_connection_t *c);
static void ngx_tunnel_bridge_active(ngx_tunnel_stream_t *bs);


static const ngx_tunnel_stream_handler_t  ngx_tunnel_bridge_handler = {
    ngx_tunnel_bridge_data,
    ngx_tunnel_bridge_fin,
    ngx_tunnel_bridge_writable,
    ngx_tunnel_bridge_closed,
    ngx_tunnel_bridge_abort
};


/*
 * A connection for a socket that nginx did not accept itself: a tcp
 * tunnel's public connection, one handed over by another worker, or an end
 * of a socketpair.  It has its own pool and log, and is registered for both
 * events, edge-triggered, as ngx_event_connect_peer() does.
 */
ngx_connection_t *
ngx_tunnel_connection(ngx_socket_t fd, struct sockaddr *sa,
    socklen_t socklen, ngx_log_t *log)
{
    ngx_log_t         *clog;
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        ngx_close_socket(fd);
        return NULL;
    }

    pool = ngx_create_pool(512, log);
    if (pool == NULL) {
        ngx_close_connection(c);
        return NULL;
    }

    c->pool = pool;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    clog = ngx_palloc(pool, sizeof(ngx_log_t));
    c->sockaddr = ngx_palloc(pool, socklen ? socklen : sizeof(ngx_sockaddr_t));
    c->addr_text.data = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);

    if (clog == NULL || c->sockaddr == NULL || c->addr_text.data == NULL) {
        ngx_tunnel_connection_close(c);
        return NULL;
    }

    *clog = *log;
    clog->connection = c->number;
    clog->data = NULL;
    clog->handler = NULL;

    if (socklen) {
        ngx_memcpy(c->sockaddr, sa, socklen);
        c->addr_text.len = ngx_sock_ntop(c->sockaddr, socklen,
                                         c->addr_text.data,
                                         NGX_SOCKADDR_STRLEN, 1);

    } else {
        c->sockaddr->sa_family = AF_UNIX;
        socklen = sizeof(sa_family_t);
        ngx_str_set(&c->addr_text, "unix:");
    }

    c->socklen = socklen;
    c->type = SOCK_STREAM;
    c->log = clog;
    c->log_error = NGX_ERROR_INFO;
    pool->log = clog;
    c->read->log = clog;
    c->write->log = clog;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;
    c->start_time = ngx_current_msec;
    c->write->ready = 1;

    if (ngx_add_conn(c) == NGX_ERROR) {
        ngx_tunnel_connection_close(c);
        return NULL;
    }

    return c;
}


void
ngx_tunnel_connection_close(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

    pool = c->pool;
    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


ngx_int_t
ngx_tunnel_session_connect(ngx_tunnel_session_t *ts, uint32_t tunnel_id,
    ngx_connection_t *c, ngx_tunnel_handoff_t *h, ngx_tunnel_done_pt done)
{
    ngx_tunnel_stream_t  *bs;

    bs = ngx_tunnel_stream_open(ts, tunnel_id, c, h);
    if (bs == NULL) {
        return NGX_ERROR;
    }

    bs->handler = &ngx_tunnel_bridge_handler;
    bs->data = c->data;
    bs->done = done;

    c->data = bs;
    c->read->handler = ngx_tunnel_bridge_read_handler;
    c->write->handler = ngx_tunnel_bridge_write_handler;
    c->log->action = "tunnelling";

    /* the read timer is ours from now on (preread_timeout used it) */
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    bs->idle = ngx_tunnel_bridge_idle(ts, c);
    ngx_tunnel_bridge_active(bs);

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "tunnel: %V carried by stream %uD of session %016xL",
                   &c->addr_text, bs->id, ts->id);

    ngx_tunnel_bridge_read_handler(c->read);

    return NGX_OK;
}


ngx_tunnel_stream_t *
ngx_tunnel_stream_open(ngx_tunnel_session_t *ts, uint32_t tunnel_id,
    ngx_connection_t *c, ngx_tunnel_handoff_t *h)
{
    int                   rc;
    ngx_uint_t            n;
    ngx_tunnel_tunnel_t  *t;
    ngx_tunnel_stream_t  *bs;

    if (ts->closing || !ts->welcomed) {
        return NULL;
    }

    t = ngx_tunnel_session_tunnel(ts, tunnel_id);
    if (t == NULL) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: tunnel %uD of session %016xL has ended",
                      tunnel_id, ts->id);
        return NULL;
    }

    if (ts->token->max_streams) {
        n = ngx_tunnel_registry_token_streams(ts->zone, ts->sh);

        if (n >= ts->token->max_streams) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel: account \"%V\" has %ui connections "
                          "open, its limit: refused", &ts->token->account,
                          n);
            return NULL;
        }
    }

    bs = ngx_pcalloc(c->pool, sizeof(ngx_tunnel_stream_t));
    if (bs == NULL) {
        return NULL;
    }

    rc = yamux_stream_open(ts->mux, &bs->id, bs);

    if (rc != YAMUX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: cannot open a stream to session %016xL: %s",
                      ts->id, yamux_strerror(rc));
        return NULL;
    }

    bs->session = ts;
    bs->member = t->member;
    bs->connection = c;
    bs->last_out = &bs->out;

    if (ngx_tunnel_stream_header(bs, t, h) != NGX_OK) {
        (void) yamux_stream_reset(ts->mux, bs->id);
        yamux_stream_set_data(ts->mux, bs->id, NULL);
        return NULL;
    }

    ngx_queue_insert_tail(&ts->streams, &bs->queue);
    ts->nstreams++;

    (void) ngx_atomic_fetch_add(&ts->sh->streams, 1);
    (void) ngx_atomic_fetch_add(&ts->sh->streams_total, 1);

    if (bs->member) {
        (void) ngx_atomic_fetch_add(&bs->member->conns, 1);
        (void) ngx_atomic_fetch_add(&bs->member->conns_total, 1);
    }

    return bs;
}


/* the stream header, then the bytes read before we got the connection */
static ngx_int_t
ngx_tunnel_stream_header(ngx_tunnel_stream_t *bs, ngx_tunnel_tunnel_t *t,
    ngx_tunnel_handoff_t *h)
{
    size_t             n;
    u_char            *p;
    tunnel_msg_t       m;
    ngx_connection_t  *c;
    u_char             addr[NGX_SOCKADDR_STRLEN];

    c = bs->connection;

    ngx_memzero(&m, sizeof(tunnel_msg_t));
    m.type = TUNNEL_STREAM;
    m.tunnel_id = t->id;
    m.kind = (uint32_t) t->kind;

    if (h->peer_len) {
        n = ngx_sock_ntop(&h->peer.sockaddr, h->peer_len, addr,
                          NGX_SOCKADDR_STRLEN, 0);
        m.remote_addr.data = addr;
        m.remote_addr.len = n;
        m.remote_port = ngx_inet_get_port(&h->peer.sockaddr);
    }

    if (h->server_name.len) {
        m.server_name.data = h->server_name.data;
        m.server_name.len = h->server_name.len;
    }

    bs->preread = ngx_pnalloc(c->pool, 1024 + h->server_name.len
                                       + h->preread.len);
    if (bs->preread == NULL) {
        return NGX_ERROR;
    }

    n = tunnel_msg_encode(&m, bs->preread, 1024 + h->server_name.len);
    if (n == 0) {
        return NGX_ERROR;
    }

    p = bs->preread + n;

    /* a socketpair from a balancer brings no preread bytes (data NULL) */
    if (h->preread.len) {
        p = ngx_cpymem(p, h->preread.data, h->preread.len);
    }

    bs->preread_len = p - bs->preread;

    return NGX_OK;
}


static void
ngx_tunnel_bridge_read_handler(ngx_event_t *rev)
{
    int                    rc;
    size_t                 len;
    ssize_t                n;
    u_char                *p;
    ngx_uint_t             i;
    ngx_connection_t      *c;
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    c = rev->data;
    bs = c->data;
    ts = bs->session;

    if (c->close) {
        /* worker shutdown reached a public connection: it just goes on */
        c->close = 0;

        if (c->error) {
            ngx_tunnel_bridge_finish(bs, 1);
            return;
        }
    }

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: no data either way for %M ms "
                      "(tunnel_idle_timeout), closing the connection and "
                      "resetting stream %uD of session %016xL", bs->idle,
                      bs->id, ts->id);
        ngx_tunnel_bridge_finish(bs, 1);
        return;
    }

    if (bs->preread) {
        if (ngx_tunnel_stream_preread(bs) != NGX_OK) {
            ngx_tunnel_stream_post_flush(ts);
            return;
        }
    }

    for (i = 0; i < NGX_TUNNEL_BRIDGE_ROUNDS && !bs->eof && rev->ready; i++) {

        len = 0;
        p = yamux_stream_reserve(ts->mux, bs->id, &len, &rc);

        if (p == NULL) {
            if (rc == YAMUX_EAGAIN) {
                /* stream_writable will call us again */
                break;
            }

            ngx_tunnel_bridge_finish(bs, 1);
            return;
        }

        n = c->recv(c, p, len);

        if (n == NGX_AGAIN) {
            yamux_stream_commit(ts->mux, bs->id, 0);
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            yamux_stream_commit(ts->mux, bs->id, 0);

            if (n == NGX_ERROR) {
                ngx_tunnel_stream_post_flush(ts);
                ngx_tunnel_bridge_finish(bs, 1);
                return;
            }

            bs->eof = 1;
            (void) yamux_stream_close(ts->mux, bs->id);
            break;
        }

        yamux_stream_commit(ts->mux, bs->id, n);
        ngx_tunnel_bridge_active(bs);

        (void) ngx_atomic_fetch_add(&ts->sh->bytes_in, n);

        if (bs->member) {
            (void) ngx_atomic_fetch_add(&bs->member->bytes_in, n);
        }
    }

    if (i == NGX_TUNNEL_BRIDGE_ROUNDS && rev->ready) {
        ngx_post_event(rev, &ngx_posted_events);
    }

    ngx_tunnel_stream_post_flush(ts);

    if (ngx_handle_read_event(rev, bs->eof ? NGX_CLOSE_EVENT : 0) != NGX_OK) {
        ngx_tunnel_bridge_finish(bs, 1);
        return;
    }

    ngx_tunnel_bridge_test_done(bs);
}


/* the header and preread bytes go first, as room allows */
ngx_int_t
ngx_tunnel_stream_preread(ngx_tunnel_stream_t *bs)
{
    ssize_t                n;
    ngx_tunnel_session_t  *ts;

    ts = bs->session;

    n = yamux_stream_write(ts->mux, bs->id, bs->preread, bs->preread_len);

    if (n < 0) {
        return NGX_AGAIN;
    }

    bs->preread += n;
    bs->preread_len -= n;

    if (bs->preread_len) {
        return NGX_AGAIN;
    }

    bs->preread = NULL;

    return NGX_OK;
}


/* tunnel -> public: straight to the socket, the rest buffered */
static void
ngx_tunnel_bridge_data(ngx_tunnel_stream_t *bs, const u_char *p, size_t n)
{
    ssize_t                sent;
    ngx_connection_t      *c;
    ngx_tunnel_session_t  *ts;

    c = bs->connection;
    ts = bs->session;

    ngx_tunnel_bridge_active(bs);

    (void) ngx_atomic_fetch_add(&ts->sh->bytes_out, n);

    if (bs->member) {
        (void) ngx_atomic_fetch_add(&bs->member->bytes_out, n);
    }

    if (bs->out == NULL && c->write->ready) {
        sent = c->send(c, (u_char *) p, n);

        if (sent == NGX_ERROR) {
            ngx_tunnel_bridge_finish(bs, 1);
            return;
        }

        if (sent > 0) {
            yamux_stream_consumed(ts->mux, bs->id, sent);
            p += sent;
            n -= sent;
        }
    }

    if (n == 0) {
        return;
    }

    if (ngx_tunnel_stream_buffer(bs, p, n) != NGX_OK) {
        ngx_tunnel_bridge_finish(bs, 1);
        return;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_tunnel_bridge_finish(bs, 1);
    }
}


/*
 * Keeps what the reader did not take, in chunks.  A link and its buf are
 * reused once their chunk is freed: a connection that lives long would
 * otherwise grow its pool by a buf per chunk.
 */
ngx_int_t
ngx_tunnel_stream_buffer(ngx_tunnel_stream_t *bs, const u_char *p, size_t n)
{
    size_t        k;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (n) {
        cl = (bs->out) ? (ngx_chain_t *) ((u_char *) bs->last_out
                                          - offsetof(ngx_chain_t, next))
                       : NULL;

        if (cl == NULL || cl->buf->last == cl->buf->end) {
            cl = bs->free;

            if (cl) {
                bs->free = cl->next;

            } else {
                cl = ngx_alloc_chain_link(bs->connection->pool);
                if (cl == NULL) {
                    return NGX_ERROR;
                }

                cl->buf = ngx_calloc_buf(bs->connection->pool);
                if (cl->buf == NULL) {
                    return NGX_ERROR;
                }
            }

            b = cl->buf;

            b->start = ngx_tunnel_chunk_alloc();
            if (b->start == NULL) {
                cl->next = bs->free;
                bs->free = cl;
                return NGX_ERROR;
            }

            b->pos = b->start;
            b->last = b->start;
            b->end = b->start + NGX_TUNNEL_CHUNK_SIZE;
            b->temporary = 1;

            cl->next = NULL;
            *bs->last_out = cl;
            bs->last_out = &cl->next;
        }

        b = cl->buf;
        k = ngx_min(n, (size_t) (b->end - b->last));
        b->last = ngx_cpymem(b->last, p, k);
        p += k;
        n -= k;
        bs->buffered += k;
    }

    return NGX_OK;
}


void
ngx_tunnel_stream_sent(ngx_tunnel_stream_t *bs)
{
    ngx_chain_t  *cl;

    cl = bs->out;
    bs->out = cl->next;

    if (bs->out == NULL) {
        bs->last_out = &bs->out;
    }

    ngx_tunnel_chunk_free(cl->buf->start);
    cl->buf->start = NULL;

    cl->next = bs->free;
    bs->free = cl;
}


static void
ngx_tunnel_bridge_write_handler(ngx_event_t *wev)
{
    off_t                  sent;
    ngx_chain_t           *rest;
    ngx_connection_t      *c;
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    c = wev->data;
    bs = c->data;
    ts = bs->session;

    if (bs->out) {
        sent = c->sent;
        rest = c->send_chain(c, bs->out, 0);

        if (rest == NGX_CHAIN_ERROR) {
            ngx_tunnel_bridge_finish(bs, 1);
            return;
        }

        sent = c->sent - sent;
        bs->buffered -= sent;

        /* give back the chunks that went out, credit the peer's window */
        while (bs->out != rest) {
            ngx_tunnel_stream_sent(bs);
        }

        if (sent) {
            ngx_tunnel_bridge_active(bs);
        }

        if (!bs->closed && sent) {
            yamux_stream_consumed(ts->mux, bs->id, sent);
            ngx_tunnel_stream_post_flush(ts);
        }
    }

    if (bs->out == NULL && bs->fin) {
        ngx_tunnel_bridge_shutdown(bs);
    }

    if (bs->out && ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_tunnel_bridge_finish(bs, 1);
        return;
    }

    ngx_tunnel_bridge_test_done(bs);
}


static void
ngx_tunnel_bridge_fin(ngx_tunnel_stream_t *bs)
{
    bs->fin = 1;

    if (bs->out == NULL) {
        ngx_tunnel_bridge_shutdown(bs);
    }

    ngx_tunnel_bridge_test_done(bs);
}


static void
ngx_tunnel_bridge_writable(ngx_tunnel_stream_t *bs)
{
    ngx_connection_t  *c;

    c = bs->connection;

    /* it stopped reading at a full window: whatever is there waits */
    c->read->ready = 1;
    ngx_post_event(c->read, &ngx_posted_events);
}


static void
ngx_tunnel_bridge_closed(ngx_tunnel_stream_t *bs, yamux_close_e how)
{
    bs->closed = 1;

    if (how == YAMUX_CLOSED_RESET_REMOTE) {
        ngx_log_error(NGX_LOG_INFO, bs->connection->log, 0,
                      "tunnel: stream %uD of session %016xL reset by the "
                      "client (its local service may be down), closing the "
                      "connection", bs->id, bs->session->id);
        ngx_tunnel_bridge_finish(bs, 1);
        return;
    }

    ngx_tunnel_bridge_test_done(bs);
}


static void
ngx_tunnel_bridge_abort(ngx_tunnel_stream_t *bs)
{
    bs->closed = 1;
    ngx_tunnel_bridge_finish(bs, 1);
}


/* the tunnel side sent FIN and everything before it is delivered */
static void
ngx_tunnel_bridge_shutdown(ngx_tunnel_stream_t *bs)
{
    ngx_connection_t  *c;

    c = bs->connection;

    if (bs->shut) {
        return;
    }

    bs->shut = 1;

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, ngx_socket_errno,
                       "tunnel: shutdown() of stream %uD failed", bs->id);
    }
}


static void
ngx_tunnel_bridge_test_done(ngx_tunnel_stream_t *bs)
{
    if ((bs->eof && bs->shut) || (bs->closed && bs->out == NULL)) {
        ngx_tunnel_bridge_finish(bs, 0);
    }
}


/* the public connection is done; "reset" also aborts the stream */
static void
ngx_tunnel_bridge_finish(ngx_tunnel_stream_t *bs, ngx_uint_t reset)
{
    struct linger        linger;
    ngx_connection_t    *c;
    ngx_tunnel_done_pt   done;

    c = bs->connection;

    /* the stream may live on until both FINs are out: not with us */
    ngx_tunnel_stream_detach(bs, reset || !(bs->eof && bs->fin));

    if (reset && c->type == SOCK_STREAM
        && c->sockaddr && c->sockaddr->sa_family != AF_UNIX)
    {
        /* carry the abort on: the public peer sees a reset too */
        linger.l_onoff = 1;
        linger.l_linger = 0;

        (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER,
                          (const void *) &linger, sizeof(struct linger));
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "tunnel: stream %uD of session %016xL done%s", bs->id,
                   bs->session->id, reset ? ", reset" : "");

    done = bs->done;
    c->data = bs->data;

    if (done) {
        done(c, reset ? NGX_ERROR : NGX_OK);
        return;
    }

    ngx_tunnel_connection_close(c);
}


void
ngx_tunnel_stream_detach(ngx_tunnel_stream_t *bs, ngx_uint_t reset)
{
    ngx_tunnel_session_t  *ts;

    ts = bs->session;

    if (!bs->closed && ts->mux) {
        if (reset) {
            (void) yamux_stream_reset(ts->mux, bs->id);
        }

        yamux_stream_set_data(ts->mux, bs->id, NULL);
        ngx_tunnel_stream_post_flush(ts);
    }

    bs->closed = 1;

    ngx_queue_remove(&bs->queue);
    ts->nstreams--;

    if (ts->sh) {
        (void) ngx_atomic_fetch_add(&ts->sh->streams, -1);
    }

    if (bs->member && ts->sh) {
        (void) ngx_atomic_fetch_add(&bs->member->conns, -1);
    }

    while (bs->out) {
        ngx_tunnel_stream_sent(bs);
    }

    bs->buffered = 0;
}


void
ngx_tunnel_stream_post_flush(ngx_tunnel_session_t *ts)
{
    if (!ts->closing) {
        ngx_post_event(ts->connection->write, &ngx_posted_events);
    }
}


/* tunnel_idle_timeout for a public socket, 0 for a socketpair */
static ngx_msec_t
ngx_tunnel_bridge_idle(ngx_tunnel_session_t *ts, ngx_connection_t *c)
{
    return (c->sockaddr->sa_family == AF_UNIX) ? 0 : ts->conf->idle_timeout;
}


/* bytes went one way or the other: the idle time starts again */
static void
ngx_tunnel_bridge_active(ngx_tunnel_stream_t *bs)
{
    if (bs->idle) {
        ngx_add_timer(bs->connection->read, bs->idle);
    }
}
