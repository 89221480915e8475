
/*
 * Copyright (C) ngx_tunnel developers
 *
 * A stream as nginx's upstream connection, when the session that owns the
 * tunnel is in this worker: the http balancer's peer.  nginx's upstream
 * reads and writes it through c->recv, c->send and their chain forms, which
 * copy out of the stream's buffered input and into the session's output
 * queue; the stream's events post the connection's.  A peer in another
 * worker needs a socketpair instead: two more descriptors, four system
 * calls and two wake-ups per request, which this spares.
 *
 * nginx owns c->data, so a connection's stream is found by its index among
 * the worker's connections.  The connection's descriptor is a placeholder
 * socket shared by all of them (c->shared: ngx_close_connection() leaves it
 * open): nginx only asks it for a pending error (getsockopt(SO_ERROR) in
 * ngx_http_upstream_test_connect()), which it has none of.  Both events are
 * marked active, so nginx never adds them to epoll (edge-triggered event
 * methods only: the balancer uses a socketpair with others); the
 * balancer's free() takes the connection back, so only
 * ngx_tunnel_peer_close() closes one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_tunnel_session.h"


static ngx_tunnel_stream_t *ngx_tunnel_peer_stream(ngx_connection_t *c);
static ssize_t ngx_tunnel_peer_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static ssize_t ngx_tunnel_peer_recv_chain(ngx_connection_t *c,
    ngx_chain_t *in, off_t limit);
static ssize_t ngx_tunnel_peer_send(ngx_connection_t *c, u_char *buf,
    size_t size);
static ngx_chain_t *ngx_tunnel_peer_send_chain(ngx_connection_t *c,
    ngx_chain_t *in, off_t limit);
static void ngx_tunnel_peer_data(ngx_tunnel_stream_t *bs, const u_char *p,
    size_t n);
static void ngx_tunnel_peer_fin(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_peer_writable(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_peer_closed(ngx_tunnel_stream_t *bs,
    yamux_close_e how);
static void ngx_tunnel_peer_abort(ngx_tunnel_stream_t *bs);
static void ngx_tunnel_peer_wake(ngx_tunnel_stream_t *bs);


static const ngx_tunnel_stream_handler_t  ngx_tunnel_peer_handler = {
    ngx_tunnel_peer_data,
    ngx_tunnel_peer_fin,
    ngx_tunnel_peer_writable,
    ngx_tunnel_peer_closed,
    ngx_tunnel_peer_abort
};


static ngx_socket_t           ngx_tunnel_peer_placeholder = -1;
static ngx_tunnel_stream_t  **ngx_tunnel_peer_streams;  /* by connection */


/* in each worker: the placeholder lives as long as the process */
ngx_int_t
ngx_tunnel_peer_init(ngx_cycle_t *cycle)
{
    ngx_tunnel_peer_streams = ngx_pcalloc(cycle->pool, cycle->connection_n
                                          * sizeof(ngx_tunnel_stream_t *));
    if (ngx_tunnel_peer_streams == NULL) {
        return NGX_ERROR;
    }

    ngx_tunnel_peer_placeholder = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC,
                                         0);

    if (ngx_tunnel_peer_placeholder == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "tunnel: socket() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_connection_t *
ngx_tunnel_peer_open(ngx_tunnel_session_t *ts, uint32_t tunnel_id,
    ngx_tunnel_handoff_t *h, ngx_log_t *log)
{
    ngx_pool_t           *pool;
    ngx_connection_t     *c;
    ngx_tunnel_stream_t  *bs;

    c = ngx_get_connection(ngx_tunnel_peer_placeholder, log);
    if (c == NULL) {
        return NULL;
    }

    c->shared = 1;

    pool = ngx_create_pool(512, log);
    if (pool == NULL) {
        ngx_close_connection(c);
        return NULL;
    }

    c->pool = pool;
    c->type = SOCK_STREAM;
    c->recv = ngx_tunnel_peer_recv;
    c->send = ngx_tunnel_peer_send;
    c->recv_chain = ngx_tunnel_peer_recv_chain;
    c->send_chain = ngx_tunnel_peer_send_chain;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    /* no socket options to set: nginx must not try */
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
    c->sndlowat = 1;

    c->read->log = log;
    c->write->log = log;
    c->read->active = 1;
    c->write->active = 1;
    c->write->ready = 1;

    bs = ngx_tunnel_stream_open(ts, tunnel_id, c, h);
    if (bs == NULL) {
        ngx_close_connection(c);
        ngx_destroy_pool(pool);
        return NULL;
    }

    bs->handler = &ngx_tunnel_peer_handler;
    ngx_tunnel_peer_streams[c - ngx_cycle->connections] = bs;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, log, 0,
                   "tunnel: upstream carried by stream %uD of session "
                   "%016xL in this worker", bs->id, ts->id);

    return c;
}


ngx_uint_t
ngx_tunnel_peer(ngx_connection_t *c)
{
    return c->recv == ngx_tunnel_peer_recv;
}


ngx_uint_t
ngx_tunnel_peer_idle(ngx_connection_t *c)
{
    ngx_tunnel_stream_t  *bs;

    bs = ngx_tunnel_peer_stream(c);

    return !(bs->closed || bs->fin || bs->out || c->close);
}


/*
 * nginx is done with the connection.  After a whole response (or the
 * tunnel side's own FIN) the stream ends with a FIN, and the client closes
 * its local connection as it would on a socket's EOF.  Otherwise ("abort":
 * a response cut short, the public client gone) with a RST: the local
 * service may be blocked sending into a window nobody will credit again.
 */
void
ngx_tunnel_peer_close(ngx_connection_t *c, ngx_uint_t abort)
{
    ngx_pool_t           *pool;
    ngx_tunnel_stream_t  *bs;

    bs = ngx_tunnel_peer_stream(c);

    if (!bs->closed) {
        if (!bs->error && !bs->preread && (bs->fin || !abort)) {
            (void) yamux_stream_close(bs->session->mux, bs->id);
            ngx_tunnel_stream_detach(bs, 0);

        } else {
            ngx_tunnel_stream_detach(bs, 1);
        }
    }

    ngx_tunnel_peer_streams[c - ngx_cycle->connections] = NULL;

    pool = c->pool;
    ngx_close_connection(c);
    ngx_destroy_pool(pool);
}


static ngx_tunnel_stream_t *
ngx_tunnel_peer_stream(ngx_connection_t *c)
{
    return ngx_tunnel_peer_streams[c - ngx_cycle->connections];
}


/* tunnel -> upstream: what the stream received, its window credited */
static ssize_t
ngx_tunnel_peer_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t                 n, k;
    ngx_buf_t             *b;
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    bs = ngx_tunnel_peer_stream(c);
    ts = bs->session;

    n = 0;

    while (bs->out && n < size) {
        b = bs->out->buf;
        k = ngx_min(size - n, (size_t) (b->last - b->pos));

        buf = ngx_cpymem(buf, b->pos, k);
        b->pos += k;
        n += k;

        if (b->pos == b->last) {
            ngx_tunnel_stream_sent(bs);
        }
    }

    if (n) {
        bs->buffered -= n;

        if (!bs->closed) {
            (void) yamux_stream_consumed(ts->mux, bs->id, n);
            ngx_tunnel_stream_post_flush(ts);
        }

        /* an end still to report counts as something to read */
        c->read->ready = (bs->out || bs->fin || bs->error);

        return n;
    }

    c->read->ready = 0;

    if (bs->error) {
        c->read->error = 1;
        ngx_connection_error(c, NGX_ECONNRESET, "recv() failed");
        return NGX_ERROR;
    }

    if (bs->fin) {
        c->read->eof = 1;
        return 0;
    }

    return NGX_AGAIN;
}


/* as readv(): the bufs are filled from their "last", which the caller moves */
static ssize_t
ngx_tunnel_peer_recv_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    size_t      size;
    ssize_t     n, total;
    ngx_buf_t  *b;

    total = 0;

    for ( /* void */ ; in; in = in->next) {
        b = in->buf;
        size = b->end - b->last;

        if (limit && (off_t) size > limit - total) {
            size = (size_t) (limit - total);
        }

        if (size == 0) {
            break;
        }

        n = ngx_tunnel_peer_recv(c, b->last, size);

        if (n <= 0) {
            return total ? total : n;
        }

        total += n;

        if ((size_t) n < size || (limit && total >= limit)) {
            break;
        }
    }

    return total;
}


/* upstream -> tunnel: into the session's output queue, as the window allows */
static ssize_t
ngx_tunnel_peer_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t                n;
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    bs = ngx_tunnel_peer_stream(c);
    ts = bs->session;

    if (bs->closed || bs->error) {
        c->write->error = 1;
        ngx_connection_error(c, NGX_EPIPE, "send() failed");
        return NGX_ERROR;
    }

    if (bs->preread && ngx_tunnel_stream_preread(bs) != NGX_OK) {
        ngx_tunnel_stream_post_flush(ts);
        c->write->ready = 0;
        return NGX_AGAIN;
    }

    n = yamux_stream_write(ts->mux, bs->id, buf, size);

    if (n < 0) {
        if (n == YAMUX_EAGAIN) {
            c->write->ready = 0;
            return NGX_AGAIN;
        }

        c->write->error = 1;
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: cannot write to stream %uD of session "
                      "%016xL: %s", bs->id, ts->id, yamux_strerror((int) n));
        return NGX_ERROR;
    }

    if ((size_t) n < size) {
        c->write->ready = 0;
    }

    (void) ngx_atomic_fetch_add(&ts->sh->bytes_in, n);

    if (bs->member) {
        (void) ngx_atomic_fetch_add(&bs->member->bytes_in, n);
    }

    ngx_tunnel_stream_post_flush(ts);

    return n;
}


/* nginx's output chain reads files into memory for us (c->sendfile is 0) */
static ngx_chain_t *
ngx_tunnel_peer_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    off_t         sent;
    size_t        size;
    ssize_t       n;
    ngx_chain_t  *cl;

    if (limit == 0 || limit > (off_t) (NGX_MAX_SIZE_T_VALUE - ngx_pagesize)) {
        limit = NGX_MAX_SIZE_T_VALUE - ngx_pagesize;
    }

    sent = 0;

    for (cl = in; cl && sent < limit; cl = cl->next) {

        if (ngx_buf_special(cl->buf)) {
            continue;
        }

        if (!ngx_buf_in_memory(cl->buf)) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "tunnel: a file buffer for a stream");
            return NGX_CHAIN_ERROR;
        }

        size = cl->buf->last - cl->buf->pos;

        if ((off_t) size > limit - sent) {
            size = (size_t) (limit - sent);
        }

        if (size == 0) {
            continue;
        }

        n = ngx_tunnel_peer_send(c, cl->buf->pos, size);

        if (n == NGX_ERROR) {
            return NGX_CHAIN_ERROR;
        }

        if (n == NGX_AGAIN) {
            break;
        }

        sent += n;

        if ((size_t) n < size) {
            break;
        }
    }

    c->sent += sent;

    return ngx_chain_update_sent(in, sent);
}


static void
ngx_tunnel_peer_data(ngx_tunnel_stream_t *bs, const u_char *p, size_t n)
{
    ngx_tunnel_session_t  *ts;

    ts = bs->session;

    (void) ngx_atomic_fetch_add(&ts->sh->bytes_out, n);

    if (bs->member) {
        (void) ngx_atomic_fetch_add(&bs->member->bytes_out, n);
    }

    if (ngx_tunnel_stream_buffer(bs, p, n) != NGX_OK) {
        bs->error = 1;
        ngx_tunnel_stream_detach(bs, 1);
    }

    ngx_tunnel_peer_wake(bs);
}


static void
ngx_tunnel_peer_fin(ngx_tunnel_stream_t *bs)
{
    bs->fin = 1;
    ngx_tunnel_peer_wake(bs);
}


static void
ngx_tunnel_peer_writable(ngx_tunnel_stream_t *bs)
{
    ngx_connection_t  *c;

    c = bs->connection;

    c->write->ready = 1;
    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_tunnel_peer_closed(ngx_tunnel_stream_t *bs, yamux_close_e how)
{
    bs->closed = 1;

    if (how != YAMUX_CLOSED_NORMAL) {
        ngx_log_error(NGX_LOG_INFO, bs->connection->log, 0,
                      "tunnel: stream %uD of session %016xL reset by the "
                      "client (its local service may be down)", bs->id,
                      bs->session->id);
        bs->error = 1;
    }

    ngx_tunnel_stream_detach(bs, 0);
    ngx_tunnel_peer_wake(bs);
}


/* the session is going away: nginx sees the connection fail */
static void
ngx_tunnel_peer_abort(ngx_tunnel_stream_t *bs)
{
    bs->error = 1;
    bs->closed = 1;
    ngx_tunnel_stream_detach(bs, 0);
    ngx_tunnel_peer_wake(bs);
}


/* nginx's upstream, or the balancer's idle check, has something to see */
static void
ngx_tunnel_peer_wake(ngx_tunnel_stream_t *bs)
{
    ngx_connection_t  *c;

    c = bs->connection;

    c->read->ready = 1;
    ngx_post_event(c->read, &ngx_posted_events);

    if (bs->error) {
        ngx_tunnel_peer_writable(bs);
    }
}
