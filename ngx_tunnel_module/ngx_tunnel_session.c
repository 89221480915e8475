
/*
 * Copyright (C) ngx_tunnel developers
 *
 * A registration connection: the yamux session on nginx's event loop, its
 * control stream (hello, binds), keep-alive, and the drain on reload.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#define NGX_TUNNEL_READ_SIZE      (64 * 1024)
#define NGX_TUNNEL_READ_ROUNDS    16        /* then let others run */
#define NGX_TUNNEL_IOVS           64
#define NGX_TUNNEL_CHUNKS_KEPT    16        /* 1 MiB of free chunks: two
                                               sessions' output queues */
#define NGX_TUNNEL_CHUNKS_TRIM    1000      /* ms between cache trims */
#define NGX_TUNNEL_CTL_OUT        4096      /* one control message */
#define NGX_TUNNEL_BIND_TRIES     16
#define NGX_TUNNEL_TUNNEL_POOL    1024      /* a tunnel, its name, its URL */

/*
 * A client that sends more than 2 MiB a second of frames that carry no data
 * (pings, window updates, empty data frames: 175,000 of them), beyond 8
 * bytes of them per byte of data, floods: the rule of nginx's HTTP/2, per
 * second.  A client sends a few such frames a second, and some for each
 * public connection.  Data for streams already gone counts as data.
 */
#define NGX_TUNNEL_FLOOD          (256 * 1024)
#define NGX_TUNNEL_FLOOD_PERIOD   1000


typedef struct {
    ngx_rbtree_t                  sessions;
    ngx_rbtree_node_t             sentinel;
    ngx_shm_zone_t               *zone;
    u_char                       *rbuf;         /* shared by all sessions:
                                                   yamux_input never keeps
                                                   a pointer into it */
    void                         *chunks;       /* free ones, each holding
                                                   the next's address */
    ngx_uint_t                    nchunks;
    ngx_uint_t                    low;          /* fewest free since the
                                                   last trim */
    ngx_event_t                   trim;
} ngx_tunnel_worker_t;


static void *ngx_tunnel_mux_alloc(size_t size, void *ud);
static void ngx_tunnel_mux_free(void *p, size_t size, void *ud);
static void ngx_tunnel_chunks_trim(ngx_event_t *ev);
static uint64_t ngx_tunnel_clock(void);
static void ngx_tunnel_session_read_handler(ngx_event_t *rev);
static void ngx_tunnel_session_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_tunnel_session_send(ngx_tunnel_session_t *ts);
static ngx_int_t ngx_tunnel_session_input(ngx_tunnel_session_t *ts,
    u_char *p, size_t n);
static ngx_int_t ngx_tunnel_session_flood(ngx_tunnel_session_t *ts);
static void ngx_tunnel_session_timer(ngx_event_t *ev);
static void ngx_tunnel_session_leave(ngx_tunnel_session_t *ts);
static void ngx_tunnel_session_drain(ngx_tunnel_session_t *ts);
static void ngx_tunnel_session_finalize(ngx_tunnel_session_t *ts);

static int ngx_tunnel_on_open(yamux_session_t *mux, uint32_t id, void *ud);
static void ngx_tunnel_on_data(yamux_session_t *mux, uint32_t id, void *sd,
    const uint8_t *p, size_t n);
static void ngx_tunnel_on_fin(yamux_session_t *mux, uint32_t id, void *sd);
static void ngx_tunnel_on_writable(yamux_session_t *mux, uint32_t id,
    void *sd);
static void ngx_tunnel_on_closed(yamux_session_t *mux, uint32_t id,
    void *sd, yamux_close_e how);
static void ngx_tunnel_on_ping_ack(yamux_session_t *mux, uint32_t opaque,
    void *ud);
static void ngx_tunnel_on_go_away(yamux_session_t *mux, uint32_t code,
    void *ud);

static void ngx_tunnel_control_data(ngx_tunnel_session_t *ts,
    const u_char *p, size_t n);
static ngx_int_t ngx_tunnel_control_event(ngx_tunnel_session_t *ts,
    tunnel_ctl_event_t *ev);
static void ngx_tunnel_hello(ngx_tunnel_session_t *ts, tunnel_msg_t *m);
static void ngx_tunnel_bind(ngx_tunnel_session_t *ts,
    tunnel_ctl_event_t *ev);
static ngx_uint_t ngx_tunnel_bind_name(ngx_tunnel_session_t *ts,
    ngx_tunnel_tunnel_t *t, tunnel_ctl_event_t *ev);
static ngx_uint_t ngx_tunnel_bind_port(ngx_tunnel_session_t *ts,
    ngx_tunnel_tunnel_t *t, tunnel_ctl_event_t *ev, ngx_str_t *why);
static void ngx_tunnel_bind_refuse(ngx_tunnel_session_t *ts,
    tunnel_msg_t *m, ngx_uint_t code, ngx_str_t *why);
static void ngx_tunnel_unbind(ngx_tunnel_session_t *ts, tunnel_msg_t *m);
static void ngx_tunnel_tunnel_release(ngx_tunnel_session_t *ts,
    ngx_tunnel_tunnel_t *t);
static void ngx_tunnel_tunnel_free(ngx_tunnel_session_t *ts,
    ngx_tunnel_tunnel_t *t);
static ngx_int_t ngx_tunnel_url(ngx_tunnel_session_t *ts,
    ngx_tunnel_tunnel_t *t, ngx_str_t *url);
static void ngx_tunnel_send(ngx_tunnel_session_t *ts, tunnel_msg_t *m);
static void ngx_tunnel_refuse(ngx_tunnel_session_t *ts, ngx_uint_t code,
    const char *message);
static ngx_str_t ngx_tunnel_str(ngx_pool_t *pool, tunnel_str_t *s);


static ngx_tunnel_worker_t  *ngx_tunnel_worker;


static const yamux_callbacks_t  ngx_tunnel_mux_callbacks = {
    ngx_tunnel_on_open,
    ngx_tunnel_on_data,
    ngx_tunnel_on_fin,
    ngx_tunnel_on_writable,
    ngx_tunnel_on_closed,
    ngx_tunnel_on_ping_ack,
    ngx_tunnel_on_go_away
};


/* the worker */

ngx_int_t
ngx_tunnel_worker_init(ngx_cycle_t *cycle, ngx_shm_zone_t *zone)
{
    ngx_tunnel_worker_t  *w;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_tunnel_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->rbuf = ngx_palloc(cycle->pool, NGX_TUNNEL_READ_SIZE);
    if (w->rbuf == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&w->sessions, &w->sentinel, ngx_rbtree_insert_value);
    w->zone = zone;

    w->trim.handler = ngx_tunnel_chunks_trim;
    w->trim.data = w;
    w->trim.log = cycle->log;
    w->trim.cancelable = 1;

    ngx_tunnel_worker = w;

    return ngx_tunnel_peer_init(cycle);
}


void
ngx_tunnel_worker_exit(ngx_cycle_t *cycle)
{
    void                  *p;
    ngx_rbtree_node_t     *node;
    ngx_tunnel_worker_t   *w;
    ngx_tunnel_session_t  *ts;

    w = ngx_tunnel_worker;
    if (w == NULL) {
        return;
    }

    /* the process ends without closing connections: clear the registry */

    while (w->sessions.root != w->sessions.sentinel) {
        node = ngx_rbtree_min(w->sessions.root, w->sessions.sentinel);
        ts = (ngx_tunnel_session_t *) node;

        ngx_rbtree_delete(&w->sessions, node);

        if (ts->sh) {
            ngx_tunnel_registry_session_remove(ts->zone, ts->sh);
            ts->sh = NULL;
        }
    }

    if (w->trim.timer_set) {
        ngx_del_timer(&w->trim);
    }

    while (w->chunks) {
        p = w->chunks;
        w->chunks = *(void **) p;
        (void) munmap(p, NGX_TUNNEL_CHUNK_SIZE);
    }

    w->nchunks = 0;
    ngx_tunnel_worker = NULL;
}


/*
 * Free chunks are kept for reuse: fresh memory costs a page fault per 4 KiB
 * and munmap() a TLB flush, which at a few Gbit/s through a large window
 * (a long link) takes more CPU than the copying.  Once a second, the free
 * chunks that went unused for that whole second are returned, down to
 * NGX_TUNNEL_CHUNKS_KEPT: a burst leaves nothing behind for long.
 */

void *
ngx_tunnel_chunk_alloc(void)
{
    void                 *p;
    ngx_tunnel_worker_t  *w;

    w = ngx_tunnel_worker;

    if (w && w->chunks) {
        p = w->chunks;
        w->chunks = *(void **) p;

        if (--w->nchunks < w->low) {
            w->low = w->nchunks;
        }

        return p;
    }

    /* its own mapping, not the heap, so that it can be returned */

    p = mmap(NULL, NGX_TUNNEL_CHUNK_SIZE, PROT_READ|PROT_WRITE,
             MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "mmap(%d) failed", NGX_TUNNEL_CHUNK_SIZE);
        return NULL;
    }

    return p;
}


void
ngx_tunnel_chunk_free(void *p)
{
    ngx_tunnel_worker_t  *w;

    w = ngx_tunnel_worker;

    if (w == NULL) {
        (void) munmap(p, NGX_TUNNEL_CHUNK_SIZE);
        return;
    }

    *(void **) p = w->chunks;
    w->chunks = p;
    w->nchunks++;

    if (w->nchunks > NGX_TUNNEL_CHUNKS_KEPT && !w->trim.timer_set) {
        w->low = w->nchunks;
        ngx_add_timer(&w->trim, NGX_TUNNEL_CHUNKS_TRIM);
    }
}


static void
ngx_tunnel_chunks_trim(ngx_event_t *ev)
{
    void                 *p;
    ngx_tunnel_worker_t  *w;

    w = ev->data;

    while (w->low > NGX_TUNNEL_CHUNKS_KEPT) {
        p = w->chunks;
        w->chunks = *(void **) p;
        (void) munmap(p, NGX_TUNNEL_CHUNK_SIZE);
        w->nchunks--;
        w->low--;
    }

    w->low = w->nchunks;

    if (w->nchunks > NGX_TUNNEL_CHUNKS_KEPT && !ev->timer_set) {
        ngx_add_timer(ev, NGX_TUNNEL_CHUNKS_TRIM);
    }
}


/* yamux has its output blocks from the chunk cache, the rest from malloc */

static void *
ngx_tunnel_mux_alloc(size_t size, void *ud)
{
    if (size == NGX_TUNNEL_CHUNK_SIZE) {
        return ngx_tunnel_chunk_alloc();
    }

    return ngx_alloc(size, ngx_cycle->log);
}


static void
ngx_tunnel_mux_free(void *p, size_t size, void *ud)
{
    if (size == NGX_TUNNEL_CHUNK_SIZE) {
        /* back to the cache: fresh memory costs a page fault per 4 KiB */
        ngx_tunnel_chunk_free(p);
        return;
    }

    ngx_free(p);
}


static uint64_t
ngx_tunnel_clock(void)
{
    return ngx_current_msec;
}


ngx_tunnel_session_t *
ngx_tunnel_session_find(uint64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    if (ngx_tunnel_worker == NULL) {
        return NULL;
    }

    node = ngx_tunnel_worker->sessions.root;
    sentinel = ngx_tunnel_worker->sessions.sentinel;

    while (node != sentinel) {
        if (id == node->key) {
            return (ngx_tunnel_session_t *) node;
        }

        node = (id < node->key) ? node->left : node->right;
    }

    return NULL;
}


/* the content handler of a "tunnel_server on" server */

void
ngx_tunnel_session_init(ngx_stream_session_t *s)
{
    ngx_connection_t               *c;
    yamux_config_t                  yc;
    ngx_tunnel_session_t           *ts;
    ngx_stream_tunnel_srv_conf_t   *tscf;
    ngx_stream_tunnel_main_conf_t  *tmcf;

    c = s->connection;

    tscf = ngx_stream_get_module_srv_conf(s, ngx_stream_tunnel_module);
    tmcf = ngx_stream_get_module_main_conf(s, ngx_stream_tunnel_module);

    if (ngx_tunnel_worker == NULL || tmcf->zone == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "tunnel_server needs a tunnel_zone in the stream block");
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    /*
     * Accepted before the listening sockets were closed, but come this far
     * (a TLS handshake takes a few rounds) after ngx_close_idle_connections()
     * went by: nothing would ever ask this session to leave, and the worker
     * would not exit.  The client tries again, and reaches a new worker.
     */
    if (ngx_exiting || ngx_terminate) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: worker is shutting down, session refused");
#if (NGX_STREAM_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;   /* its hello may be on the way */
        }
#endif
        ngx_stream_finalize_session(s, NGX_STREAM_SERVICE_UNAVAILABLE);
        return;
    }

    ts = ngx_pcalloc(c->pool, sizeof(ngx_tunnel_session_t));
    if (ts == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

#if (NGX_STREAM_SSL)
    if (c->ssl) {
        /*
         * Records read several at a time, not a read() for each header and
         * one for each body: ngx_ssl_recv() posts the read event again when
         * OpenSSL holds more than the socket says it has.
         */
        SSL_set_read_ahead(c->ssl->connection, 1);
        SSL_set_default_read_buffer_len(c->ssl->connection,
                                        NGX_TUNNEL_READ_SIZE);

        /*
         * Output through nginx's buffer: after SSL_write() wants to write,
         * OpenSSL must be given the same bytes again, but yamux may put a
         * window update or a ping before them by then.  The buffer (16 KiB,
         * one record) keeps the bytes SSL_write() has taken as they were.
         */
        c->ssl->buffer = 1;

        if (ngx_tunnel_tls_attach(c) != NGX_OK) {
            ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }
#endif

    ts->connection = c;
    ts->stream = s;
    ts->conf = tscf;
    ts->zone = tmcf->zone;

    ngx_queue_init(&ts->streams);
    ngx_queue_init(&ts->tunnels);

    yamux_config_init(&yc, 0);
    yc.window = (uint32_t) tscf->window;
    yc.max_window = (uint32_t) tscf->window_max;
    yc.clock = ngx_tunnel_clock;
    yc.max_streams = (uint32_t) tscf->max_streams;
    yc.block_size = NGX_TUNNEL_CHUNK_SIZE;
    yc.allocator.alloc = ngx_tunnel_mux_alloc;
    yc.allocator.free = ngx_tunnel_mux_free;

    ts->mux = yamux_session_new(&yc, &ngx_tunnel_mux_callbacks, ts);
    if (ts->mux == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    c->data = ts;
    c->read->handler = ngx_tunnel_session_read_handler;
    c->write->handler = ngx_tunnel_session_write_handler;
    c->log->action = "reading the tunnel client's hello";

    /* a graceful shutdown reaches idle connections through c->close */
    c->idle = 1;
    ngx_reusable_connection(c, 0);

    /* the id is random in the registry; before hello, a local one */
    ts->node.key = (ngx_rbtree_key_t) c->number << 1 | 1;
    ts->id = ts->node.key;
    ngx_rbtree_insert(&ngx_tunnel_worker->sessions, &ts->node);

    ts->timer.handler = ngx_tunnel_session_timer;
    ts->timer.data = ts;
    ts->timer.log = c->log;
    ngx_add_timer(&ts->timer, tscf->handshake_timeout);

    ts->last_input = ngx_current_msec;

    /* the hello may be there already */
    c->read->ready = 1;
    ngx_tunnel_session_read_handler(c->read);
}


static void
ngx_tunnel_session_read_handler(ngx_event_t *rev)
{
    size_t                 size;
    ssize_t                n;
    ngx_uint_t             i;
    ngx_connection_t      *c;
    ngx_tunnel_session_t  *ts;

    c = rev->data;
    ts = c->data;

    if (c->close) {
        c->close = 0;

        if (c->error || !ts->welcomed) {
            ngx_tunnel_session_close(ts);
            return;
        }

        ngx_tunnel_session_drain(ts);
    }

    if (ts->stash) {
        /* what the last round could not take: control answers were due */
        n = ngx_tunnel_session_input(ts, ts->stash->pos,
                                     ts->stash->last - ts->stash->pos);
        if (n == NGX_ERROR) {
            return;
        }

        ts->stash->pos += n;

        if (ts->stash->pos < ts->stash->last) {
            ngx_tunnel_session_flush(ts);
            return;
        }

        ngx_tunnel_chunk_free(ts->stash->start);
        ts->stash = NULL;
    }

    for (i = 0; i < NGX_TUNNEL_READ_ROUNDS; i++) {

        if (!rev->ready) {
            break;
        }

        n = c->recv(c, ngx_tunnel_worker->rbuf, NGX_TUNNEL_READ_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel: session %016xL closed by the client",
                          ts->id);
            ts->lost = 1;
            ngx_tunnel_session_close(ts);
            return;
        }

        ts->stream->received += n;
        ts->last_input = ngx_current_msec;

        size = ngx_tunnel_session_input(ts, ngx_tunnel_worker->rbuf, n);
        if (size == (size_t) NGX_ERROR) {
            return;
        }

        if (ngx_tunnel_session_flood(ts) != NGX_OK) {
            return;
        }

        if (size < (size_t) n) {
            /* keep the rest until our answers have been sent */
            ts->stash = &ts->stash_buf;
            ngx_memzero(ts->stash, sizeof(ngx_buf_t));

            ts->stash->start = ngx_tunnel_chunk_alloc();
            if (ts->stash->start == NULL) {
                ngx_tunnel_session_close(ts);
                return;
            }

            ts->stash->pos = ts->stash->start;
            ts->stash->last = ngx_cpymem(ts->stash->pos,
                                         ngx_tunnel_worker->rbuf + size,
                                         n - size);
            ts->stash->end = ts->stash->start + NGX_TUNNEL_CHUNK_SIZE;
            break;
        }
    }

    if (i == NGX_TUNNEL_READ_ROUNDS && rev->ready) {
        ngx_post_event(rev, &ngx_posted_events);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_tunnel_session_close(ts);
        return;
    }

    ngx_tunnel_session_flush(ts);
}


/* feeds bytes to yamux; returns how many it took, or NGX_ERROR if the
 * session was closed */
static ngx_int_t
ngx_tunnel_session_input(ngx_tunnel_session_t *ts, u_char *p, size_t n)
{
    ssize_t  rc;

    ts->in_input = 1;
    rc = yamux_input(ts->mux, p, n);
    ts->in_input = 0;

    if (rc == YAMUX_EPROTO) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "tunnel: session %016xL broke the yamux protocol: %s",
                      ts->id, yamux_error(ts->mux));
        ngx_tunnel_session_flush(ts);
        ngx_tunnel_session_close(ts);
        return NGX_ERROR;
    }

    if (ts->closing) {
        ngx_tunnel_session_close(ts);
        return NGX_ERROR;
    }

    return rc;
}


static ngx_int_t
ngx_tunnel_session_flood(ngx_tunnel_session_t *ts)
{
    off_t           frames;
    uint64_t        payload;
    yamux_stats_t   st;

    yamux_stats(ts->mux, &st);

    payload = st.bytes_in + st.bytes_dropped;

    if (ngx_current_msec - ts->flood_start >= NGX_TUNNEL_FLOOD_PERIOD) {
        ts->flood_start = ngx_current_msec;
        ts->flood_received = ts->stream->received;
        ts->flood_payload = payload;
        return NGX_OK;
    }

    frames = ts->stream->received - ts->flood_received;
    payload -= ts->flood_payload;

    if ((uint64_t) frames / 8 <= payload + NGX_TUNNEL_FLOOD) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL floods: %O bytes of frames carried "
                  "%uL bytes of data in %M ms, closing", ts->id, frames,
                  payload, ngx_current_msec - ts->flood_start);

    /* the go-away leaves with the last bytes, as the session ends */
    (void) yamux_go_away(ts->mux, YAMUX_GOAWAY_PROTOCOL);
    ngx_tunnel_session_close(ts);

    return NGX_ERROR;
}


static void
ngx_tunnel_session_write_handler(ngx_event_t *wev)
{
    ngx_connection_t      *c;
    ngx_tunnel_session_t  *ts;

    c = wev->data;
    ts = c->data;

    ngx_tunnel_session_flush(ts);
}


void
ngx_tunnel_session_flush(ngx_tunnel_session_t *ts)
{
    ngx_connection_t  *c;

    c = ts->connection;

    if (ts->in_input) {
        return;
    }

    if (ngx_tunnel_session_send(ts) == NGX_ERROR) {
        c->error = 1;
        ts->lost = 1;
        ngx_tunnel_session_close(ts);
        return;
    }

    if (ts->closing) {
        ngx_tunnel_session_close(ts);
        return;
    }

    if (ts->stash && yamux_output_pending(ts->mux) == 0) {
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_tunnel_session_close(ts);
    }
}


/* writes what yamux has queued, as far as the socket takes it */
static ngx_int_t
ngx_tunnel_session_send(ngx_tunnel_session_t *ts)
{
    int                i, n;
    size_t             sent, total;
    ngx_buf_t          bufs[NGX_TUNNEL_IOVS];
    ngx_chain_t        chain[NGX_TUNNEL_IOVS], *cl;
    struct iovec       iov[NGX_TUNNEL_IOVS];
    ngx_connection_t  *c;

    c = ts->connection;

    while (c->write->ready && !c->error) {

        if (c->buffered) {
            /* TLS: what nginx's buffer holds goes first, unchanged */
            if (c->send_chain(c, NULL, 0) == NGX_CHAIN_ERROR) {
                return NGX_ERROR;
            }

            if (c->buffered) {
                break;
            }
        }

        n = yamux_output(ts->mux, iov, NGX_TUNNEL_IOVS);
        if (n == 0) {
            break;
        }

        total = 0;

        for (i = 0; i < n; i++) {
            ngx_memzero(&bufs[i], sizeof(ngx_buf_t));
            bufs[i].start = iov[i].iov_base;
            bufs[i].pos = iov[i].iov_base;
            bufs[i].last = bufs[i].pos + iov[i].iov_len;
            bufs[i].end = bufs[i].last;
            bufs[i].memory = 1;

            chain[i].buf = &bufs[i];
            chain[i].next = (i + 1 < n) ? &chain[i + 1] : NULL;

            total += iov[i].iov_len;
        }

        bufs[n - 1].flush = 1;

        cl = c->send_chain(c, chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            return NGX_ERROR;
        }

        /* what the chain functions moved, whether sent or buffered */
        sent = 0;

        for (i = 0; i < n; i++) {
            sent += bufs[i].pos - bufs[i].start;
        }

        ts->in_input = 1;
        yamux_output_advance(ts->mux, sent);
        ts->in_input = 0;

        if (ts->closing || sent < total) {
            break;
        }
    }

#if (NGX_STREAM_SSL)
    if (c->ssl && ngx_tunnel_tls_flush(c) == NGX_ERROR) {
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


/* output that left yamux but not this host yet */
static ngx_uint_t
ngx_tunnel_session_buffered(ngx_tunnel_session_t *ts)
{
    ngx_connection_t  *c;

    c = ts->connection;

#if (NGX_STREAM_SSL)
    if (c->ssl && ngx_tunnel_tls_pending(c)) {
        return 1;
    }
#endif

    return c->buffered != 0;
}


static void
ngx_tunnel_session_timer(ngx_event_t *ev)
{
    ngx_msec_t             silent;
    ngx_queue_t           *q;
    ngx_tunnel_tunnel_t   *t;
    ngx_tunnel_session_t  *ts;

    ts = ev->data;

    if (!ts->welcomed) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "tunnel: client sent no hello within %M ms",
                      ts->conf->handshake_timeout);
        ngx_tunnel_refuse(ts, TUNNEL_E_TIMEOUT, NULL);
        return;
    }

    if (ts->draining) {
        if (ngx_current_msec >= ts->deadline) {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL drained for %M ms, "
                          "closing it with %ui streams open", ts->id,
                          ts->conf->drain_timeout, ts->nstreams);
            ngx_tunnel_session_close(ts);
            return;
        }

        /* done early when the client has moved every name elsewhere */
        for (q = ngx_queue_head(&ts->tunnels);
             q != ngx_queue_sentinel(&ts->tunnels);
             q = ngx_queue_next(q))
        {
            t = ngx_queue_data(q, ngx_tunnel_tunnel_t, queue);
            if (t->member && t->member->entry) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&ts->tunnels) && ts->nstreams == 0
            && yamux_output_pending(ts->mux) == 0
            && !ngx_tunnel_session_buffered(ts))
        {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL drained", ts->id);
            ngx_tunnel_session_close(ts);
            return;
        }
    }

    silent = ngx_current_msec - ts->last_input;

    if (silent >= 3 * ts->conf->heartbeat) {
        if (ts->stash) {
            /* it sent, but we stopped reading: our answers are not read */
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL does not read: %uz bytes "
                          "waited for %M ms", ts->id,
                          yamux_output_pending(ts->mux), silent);

        } else {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL is dead: nothing received "
                          "for %M ms", ts->id, silent);
        }

        ts->lost = 1;
        ngx_tunnel_session_close(ts);
        return;
    }

    (void) yamux_ping(ts->mux, (uint32_t) ngx_current_msec);
    ngx_tunnel_session_flush(ts);

#if (NGX_STREAM_SSL)
    if (!ts->closing && ts->connection->ssl) {
        ngx_tunnel_tls_idle(ts->connection);
    }
#endif

    if (!ts->closing) {
        ngx_add_timer(&ts->timer, ts->draining ? ngx_min(1000,
                                                     ts->conf->heartbeat)
                                               : ts->conf->heartbeat);
    }
}


/*
 * The worker is quitting: the client is asked to reconnect; it opens a new
 * session, binds its names there and leaves this one, which serves its open
 * streams, and the connections still routed to it, until then.  Our public
 * ports stay open meanwhile: each is handed over to the new session once
 * the client has bound it there (ngx_tunnel_tcp.c).
 */
static void
ngx_tunnel_session_drain(ngx_tunnel_session_t *ts)
{
    tunnel_msg_t  m;

    if (ts->draining) {
        return;
    }

    ts->draining = 1;
    ts->deadline = ngx_current_msec + ts->conf->drain_timeout;

    if (ts->sh) {
        ts->sh->draining = 1;
    }

    if (ts->ctl) {
        tunnel_ctl_drain(ts->ctl);
    }

    ngx_memzero(&m, sizeof(tunnel_msg_t));
    m.type = TUNNEL_NOTICE;
    m.code = TUNNEL_NOTICE_RECONNECT;
    m.message = tunnel_str("the server is reloading or stopping: "
                           "reconnect now");
    ngx_tunnel_send(ts, &m);

    (void) yamux_go_away(ts->mux, YAMUX_GOAWAY_NORMAL);

    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL asked to reconnect (shutdown), "
                  "%ui streams open", ts->id, ts->nstreams);

    if (ts->timer.timer_set) {
        ngx_del_timer(&ts->timer);
    }

    ngx_add_timer(&ts->timer, ngx_min(1000, ts->conf->heartbeat));

    ngx_tunnel_session_flush(ts);
}


void
ngx_tunnel_session_close(ngx_tunnel_session_t *ts)
{
    if (ts->in_input) {
        /* inside yamux: finish once it returns */
        ts->closing = 1;
        return;
    }

    ngx_tunnel_session_finalize(ts);
}


static void
ngx_tunnel_session_finalize(ngx_tunnel_session_t *ts)
{
    ngx_queue_t           *q;
    ngx_connection_t      *c;
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_tunnel_t   *t;

    c = ts->connection;
    ts->closing = 1;

    while (!ngx_queue_empty(&ts->streams)) {
        q = ngx_queue_head(&ts->streams);
        bs = ngx_queue_data(q, ngx_tunnel_stream_t, queue);
        bs->handler->abort(bs);
    }

    while (!ngx_queue_empty(&ts->tunnels)) {
        q = ngx_queue_head(&ts->tunnels);
        t = ngx_queue_data(q, ngx_tunnel_tunnel_t, queue);
        ngx_queue_remove(q);
        ngx_tunnel_tcp_close(t);

        /* the registry frees members with the session */
        ngx_destroy_pool(t->pool);
    }

    if (ts->sh) {
        /*
         * A connection that broke (not a client that left, nor a drain,
         * whose client binds its names elsewhere first): the names wait
         * for the client to come back.
         */
        if (!ts->lost || ts->draining || ts->conf->reconnect_grace == 0) {
            ngx_tunnel_registry_session_remove(ts->zone, ts->sh);

        } else if (ngx_tunnel_registry_session_lose(ts->zone, ts->sh)
                   == NGX_OK)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel: session %016xL lost its client: its "
                          "tunnels are kept for it for %M ms "
                          "(tunnel_reconnect_grace)", ts->id,
                          ts->conf->reconnect_grace);
        }

        ts->sh = NULL;
    }

    if (ngx_tunnel_worker) {
        ngx_rbtree_delete(&ngx_tunnel_worker->sessions, &ts->node);
    }

    if (ts->timer.timer_set) {
        ngx_del_timer(&ts->timer);
    }

    if (ts->stash) {
        ngx_tunnel_chunk_free(ts->stash->start);
        ts->stash = NULL;
    }

    /* a last go-away or error message, if the socket takes it now */
    (void) ngx_tunnel_session_send(ts);

    yamux_session_free(ts->mux);
    ts->mux = NULL;

    c->data = ts->stream;
    c->idle = 0;

#if (NGX_STREAM_SSL)
    if (c->ssl) {
        /*
         * The client may still be sending (a hello, pings): waiting for
         * its close_notify would read them, and OpenSSL's "application
         * data after close notify" is logged at crit by nginx 1.22.
         */
        c->ssl->no_wait_shutdown = 1;
    }
#endif

    ngx_stream_finalize_session(ts->stream, NGX_STREAM_OK);
}


/* yamux events */

static int
ngx_tunnel_on_open(yamux_session_t *mux, uint32_t id, void *ud)
{
    ngx_tunnel_session_t  *ts = ud;

    /* the client opens one stream, the first: the control stream */
    if (ts->ctl_id == 0) {
        ts->ctl_id = id;
        return 0;
    }

    /* one line and an end, not a line and a refusal for each of a flood */
    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL opened stream %uD besides its "
                  "control stream, closing", ts->id, id);

    ngx_tunnel_refuse(ts, TUNNEL_E_BAD_MESSAGE,
                      "a client opens no stream but its control stream");

    return -1;
}


static void
ngx_tunnel_on_data(yamux_session_t *mux, uint32_t id, void *sd,
    const uint8_t *p, size_t n)
{
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    ts = yamux_session_data(mux);

    if (id == ts->ctl_id) {
        yamux_stream_consumed(mux, id, n);
        ngx_tunnel_control_data(ts, p, n);
        return;
    }

    if (sd == NULL) {
        /*
         * Nobody reads the stream any more (nginx ended it with a FIN while
         * the local service still sent): its window would never be
         * credited, so the client's side would wait for ever.  Stop it.
         */
        (void) yamux_stream_reset(mux, id);
        return;
    }

    bs = sd;
    bs->handler->data(bs, p, n);
}


static void
ngx_tunnel_on_fin(yamux_session_t *mux, uint32_t id, void *sd)
{
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    ts = yamux_session_data(mux);

    if (id == ts->ctl_id) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "tunnel: session %016xL: client closed its control "
                      "stream, %ui streams open", ts->id, ts->nstreams);
        ngx_tunnel_session_leave(ts);
        return;
    }

    if (sd) {
        bs = sd;
        bs->handler->fin(bs);
    }
}


static void
ngx_tunnel_on_writable(yamux_session_t *mux, uint32_t id, void *sd)
{
    ngx_tunnel_stream_t  *bs;

    if (sd) {
        bs = sd;
        bs->handler->writable(bs);
    }
}


static void
ngx_tunnel_on_closed(yamux_session_t *mux, uint32_t id, void *sd,
    yamux_close_e how)
{
    ngx_tunnel_stream_t   *bs;
    ngx_tunnel_session_t  *ts;

    ts = yamux_session_data(mux);

    if (id == ts->ctl_id) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "tunnel: session %016xL: control stream reset",
                      ts->id);
        ngx_tunnel_session_close(ts);
        return;
    }

    if (sd) {
        bs = sd;
        bs->handler->closed(bs, how);
    }
}


static void
ngx_tunnel_on_ping_ack(yamux_session_t *mux, uint32_t opaque, void *ud)
{
    ngx_tunnel_session_t  *ts = ud;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, ts->connection->log, 0,
                   "tunnel: session %016xL: ping answered in %M ms",
                   ts->id, (ngx_msec_t) ((uint32_t) ngx_current_msec
                                         - opaque));
}


static void
ngx_tunnel_on_go_away(yamux_session_t *mux, uint32_t code, void *ud)
{
    ngx_tunnel_session_t  *ts = ud;

    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL: client is leaving (go-away %uD), "
                  "%ui streams open", ts->id, code, ts->nstreams);

    if (code != YAMUX_GOAWAY_NORMAL) {
        ngx_tunnel_session_close(ts);
        return;
    }

    ngx_tunnel_session_leave(ts);
}


/*
 * The client is leaving (go-away, or the end of its control stream): for a
 * new session, or because it quits.  Either way its open connections are
 * served to their end, within tunnel_drain_timeout.
 */
static void
ngx_tunnel_session_leave(ngx_tunnel_session_t *ts)
{
    ngx_queue_t          *q;
    ngx_tunnel_tunnel_t  *t;

    if (ts->nstreams == 0) {
        ngx_tunnel_session_close(ts);
        return;
    }

    /* it takes no new stream: its ports go (to a new session, if any) */
    for (q = ngx_queue_head(&ts->tunnels);
         q != ngx_queue_sentinel(&ts->tunnels);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_tunnel_tunnel_t, queue);
        ngx_tunnel_tcp_close(t);
    }

    if (!ts->draining) {
        ts->draining = 1;
        ts->deadline = ngx_current_msec + ts->conf->drain_timeout;

        if (ts->sh) {
            ts->sh->draining = 1;
        }

        if (ts->ctl) {
            tunnel_ctl_drain(ts->ctl);
        }
    }
}


/*
 * The control stream.  What its bytes say, and whether a client may say it
 * (the framing, the order, the fields of hello and bind), is decided by
 * tunnel_ctl in the core; what needs the token, the registry or a socket is
 * decided here.
 */

static void
ngx_tunnel_control_data(ngx_tunnel_session_t *ts, const u_char *p, size_t n)
{
    size_t                         k;
    ngx_uint_t                     events;
    tunnel_ctl_conf_t              conf;
    tunnel_ctl_event_t             ev;
    ngx_stream_tunnel_srv_conf_t  *tscf;

    if (ts->ctl == NULL) {
        ts->ctl = ngx_palloc(ts->connection->pool, sizeof(tunnel_ctl_t));
        if (ts->ctl == NULL) {
            ngx_tunnel_session_close(ts);
            return;
        }

        tscf = ts->conf;

        conf.domain.data = tscf->domain.data;
        conf.domain.len = tscf->domain.len;
        conf.port_min = tscf->port_min;
        conf.port_max = tscf->port_max;

        tunnel_ctl_init(ts->ctl, &conf);

        if (ts->draining) {
            tunnel_ctl_drain(ts->ctl);
        }
    }

    while (n) {
        k = tunnel_ctl_feed(ts->ctl, p, n);
        p += k;
        n -= k;

        for (events = 0;
             tunnel_ctl_next(ts->ctl, &ev) != TUNNEL_CTL_AGAIN;
             events++)
        {
            if (ngx_tunnel_control_event(ts, &ev) != NGX_OK) {
                return;
            }
        }

        /* only a hello left unanswered stops it: that would spin */
        if (k == 0 && events == 0) {
            ngx_log_error(NGX_LOG_ALERT, ts->connection->log, 0,
                          "tunnel: session %016xL: control stream stalled",
                          ts->id);
            ngx_tunnel_session_close(ts);
            return;
        }
    }
}


static ngx_int_t
ngx_tunnel_control_event(ngx_tunnel_session_t *ts, tunnel_ctl_event_t *ev)
{
    ngx_str_t  why;

    if (ts->closing) {
        return NGX_ERROR;
    }

    switch (ev->type) {

    case TUNNEL_CTL_HELLO:
        ngx_tunnel_hello(ts, &ev->msg);
        break;

    case TUNNEL_CTL_BIND:
        ngx_tunnel_bind(ts, ev);
        break;

    case TUNNEL_CTL_BIND_ERROR:
        /* an id is spent, as on a bind the registry refuses */
        ts->next_tunnel++;

        why.data = (u_char *) ev->message;
        why.len = ngx_strlen(ev->message);
        ngx_tunnel_bind_refuse(ts, &ev->msg, ev->code, &why);
        break;

    case TUNNEL_CTL_UNBIND:
        ngx_tunnel_unbind(ts, &ev->msg);
        break;

    default: /* TUNNEL_CTL_ERROR */
        if (ts->welcomed) {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL %s", ts->id, ev->why);

        } else {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: client %s", ev->why);
        }

        ngx_tunnel_refuse(ts, ev->code, ev->message);
        return NGX_ERROR;
    }

    return ts->closing ? NGX_ERROR : NGX_OK;
}


static void
ngx_tunnel_hello(ngx_tunnel_session_t *ts, tunnel_msg_t *m)
{
    u_char                      id[16];
    ngx_str_t                   client;
    tunnel_msg_t                w;
    ngx_connection_t           *c;
    ngx_tunnel_token_t         *token;
    ngx_tunnel_session_info_t   info;

    c = ts->connection;

    token = ngx_tunnel_token_find(ts->conf->tokens, (u_char *) m->token.data,
                                  m->token.len);
    if (token == NULL) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel: client %V refused: unknown token",
                      &c->addr_text);
        ngx_tunnel_refuse(ts, TUNNEL_E_AUTH, NULL);
        return;
    }

    ts->token = token;

    client.len = m->client_name.len + m->client_version.len + 1;
    client.data = ngx_pnalloc(c->pool, client.len);
    if (client.data == NULL) {
        ngx_tunnel_refuse(ts, TUNNEL_E_INTERNAL, NULL);
        return;
    }

    ngx_sprintf(client.data, "%*s/%*s",
                m->client_name.len, m->client_name.data,
                m->client_version.len, m->client_version.data);

    info.hash = token->hash;
    info.account = token->account;
    info.instance = ngx_tunnel_str(c->pool, &m->instance);
    info.addr = c->addr_text;
    info.client = client;
    info.grace = ts->conf->reconnect_grace;

    ts->sh = ngx_tunnel_registry_session_add(ts->zone, &info);
    if (ts->sh == NULL) {
        ngx_tunnel_refuse(ts, TUNNEL_E_INTERNAL,
                          "the server's tunnel_zone is full");
        return;
    }

    /* from now on the session is known by its registry id */
    ngx_rbtree_delete(&ngx_tunnel_worker->sessions, &ts->node);
    ts->id = ts->sh->id;
    ts->node.key = (ngx_rbtree_key_t) ts->id;
    ngx_rbtree_insert(&ngx_tunnel_worker->sessions, &ts->node);

    ts->welcomed = 1;
    c->log->action = "serving tunnels";

    tunnel_ctl_accept(ts->ctl, token->port_min, token->port_max);

    ngx_sprintf(id, "%016xL", ts->id);

    ngx_memzero(&w, sizeof(tunnel_msg_t));
    w.type = TUNNEL_WELCOME;
    w.version = TUNNEL_PROTO_VERSION;
    w.session_id.data = id;
    w.session_id.len = 16;
    w.heartbeat_ms = (uint32_t) ts->conf->heartbeat;
    w.max_streams = (uint32_t) ts->conf->max_streams;
    ngx_tunnel_send(ts, &w);

    /* the round trip, at once: window auto-tuning needs it */
    (void) yamux_ping(ts->mux, (uint32_t) ngx_current_msec);

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "tunnel: session %016xL from %V for account \"%V\" "
                  "(client \"%V\")", ts->id, &c->addr_text,
                  &token->account, &client);

    if (ts->timer.timer_set) {
        ngx_del_timer(&ts->timer);
    }

    ngx_add_timer(&ts->timer, ts->conf->heartbeat);
}


/* a bind that keeps the protocol's rules: the token's and ours remain */
static void
ngx_tunnel_bind(ngx_tunnel_session_t *ts, tunnel_ctl_event_t *ev)
{
    ngx_str_t             why, url;
    ngx_uint_t            code;
    ngx_pool_t           *pool;
    tunnel_msg_t          r, *m;
    ngx_tunnel_tunnel_t  *t;

    m = &ev->msg;
    ngx_str_null(&why);
    t = NULL;

    /* a pool of its own: a session may bind and unbind as long as it lives */
    pool = ngx_create_pool(NGX_TUNNEL_TUNNEL_POOL, ts->connection->log);
    if (pool == NULL) {
        code = TUNNEL_E_INTERNAL;
        goto failed;
    }

    t = ngx_pcalloc(pool, sizeof(ngx_tunnel_tunnel_t));
    if (t == NULL) {
        ngx_destroy_pool(pool);
        code = TUNNEL_E_INTERNAL;
        goto failed;
    }

    t->pool = pool;
    t->session = ts;
    t->kind = m->kind;
    t->id = ++ts->next_tunnel;

    if (t->kind == TUNNEL_KIND_TCP) {
        code = ngx_tunnel_bind_port(ts, t, ev, &why);

    } else {
        code = ngx_tunnel_bind_name(ts, t, ev);
    }

    if (code) {
        if (code == TUNNEL_E_LIMIT) {
            ngx_str_set(&why, "this token may not open more tunnels");
        }

        goto failed;
    }

    if (ngx_tunnel_url(ts, t, &url) != NGX_OK) {
        ngx_tunnel_tunnel_free(ts, t);
        t = NULL;
        code = TUNNEL_E_INTERNAL;
        goto failed;
    }

    ngx_tunnel_registry_set_url(ts->zone, t->member, &url);

    ngx_queue_insert_tail(&ts->tunnels, &t->queue);

    ngx_memzero(&r, sizeof(tunnel_msg_t));
    r.type = TUNNEL_BOUND;
    r.request_id = m->request_id;
    r.tunnel_id = t->id;
    r.kind = (uint32_t) t->kind;
    r.port = t->port;
    r.name.data = t->name.data;
    r.name.len = t->name.len;
    r.url.data = url.data;
    r.url.len = url.len;
    ngx_tunnel_send(ts, &r);

    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL (account \"%V\") bound %s "
                  "tunnel %V", ts->id, &ts->token->account,
                  tunnel_kind_name(t->kind), &url);
    return;

failed:

    ngx_tunnel_bind_refuse(ts, m, code, &why);

    if (t) {
        ngx_destroy_pool(t->pool);
    }
}


/* BIND_ERROR, and a line that shows the name as it was sent */
static void
ngx_tunnel_bind_refuse(ngx_tunnel_session_t *ts, tunnel_msg_t *m,
    ngx_uint_t code, ngx_str_t *why)
{
    u_char        *p;
    ngx_str_t      text;
    tunnel_msg_t   r;
    u_char         name[4 * NGX_TUNNEL_NAME_MAX];

    text = *why;

    if (text.len == 0) {
        text.data = (u_char *) tunnel_error_text(code);
        text.len = ngx_strlen(text.data);
    }

    /* the codec bounds it to NGX_TUNNEL_NAME_MAX */
    p = ngx_tunnel_escape(name, m->name.data,
                          ngx_min(m->name.len, NGX_TUNNEL_NAME_MAX));

    ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                  "tunnel: session %016xL (account \"%V\") refused %s "
                  "bind \"%*s\" port %uD: %V", ts->id, &ts->token->account,
                  tunnel_kind_name(m->kind), p - name, name, m->port, &text);

    ngx_memzero(&r, sizeof(tunnel_msg_t));
    r.type = TUNNEL_BIND_ERROR;
    r.request_id = m->request_id;
    r.code = (uint32_t) code;
    r.message.data = text.data;
    r.message.len = text.len;
    ngx_tunnel_send(ts, &r);
}


/* http, tls: the name, full and lowercase (tunnel_ctl); empty: a random one */
static ngx_uint_t
ngx_tunnel_bind_name(ngx_tunnel_session_t *ts, ngx_tunnel_tunnel_t *t,
    tunnel_ctl_event_t *ev)
{
    ngx_str_t                      name;
    ngx_uint_t                     code;
    ngx_stream_tunnel_srv_conf_t  *conf;

    conf = ts->conf;

    name.len = ev->name.len;
    name.data = ngx_pnalloc(t->pool, name.len + 1);
    if (name.data == NULL) {
        return TUNNEL_E_INTERNAL;
    }

    if (name.len) {
        ngx_memcpy(name.data, ev->name.data, name.len);

        if (ngx_tunnel_token_allows_name(ts->token, &name, &conf->domain)
            != NGX_OK)
        {
            return TUNNEL_E_NAME_FORBIDDEN;
        }
    }

    code = ngx_tunnel_registry_bind_name(ts->zone, ts->sh, t->kind, &name,
                                         &conf->domain, t->id,
                                         ts->token->max_tunnels, t->pool,
                                         &t->member);
    if (code) {
        return code;
    }

    t->name = name;

    return 0;
}


/* tcp: the port wanted (0: any) within the server's and the token's range */
static ngx_uint_t
ngx_tunnel_bind_port(ngx_tunnel_session_t *ts, ngx_tunnel_tunnel_t *t,
    tunnel_ctl_event_t *ev, ngx_str_t *why)
{
    in_port_t            lo, hi, want, *port;
    ngx_int_t            rc;
    ngx_uint_t           code, i, held;
    ngx_array_t          busy;
    ngx_tunnel_route_t   route;

    lo = ev->port_min;
    hi = ev->port_max;
    want = ev->port;

    if (ngx_array_init(&busy, t->pool, 4, sizeof(in_port_t))
        != NGX_OK)
    {
        return TUNNEL_E_INTERNAL;
    }

    /* held by a session that this client moves from: it hands us the port */
    held = want
           && ngx_tunnel_registry_route(ts->zone, TUNNEL_KIND_TCP, NULL, want,
                                        &route)
              == NGX_OK
           && route.session_id != ts->id;

    for (i = 0; i < NGX_TUNNEL_BIND_TRIES; i++) {

        code = ngx_tunnel_registry_bind_port(ts->zone, ts->sh, want, lo, hi,
                                             &busy, t->id,
                                             ts->token->max_tunnels,
                                             &t->member);
        if (code) {
            return code;
        }

        t->port = t->member->entry->port;

        rc = ngx_tunnel_tcp_listen(t);

        if (rc == NGX_OK) {
            return 0;
        }

        if (rc == NGX_BUSY && held && t->port == want
            && ngx_tunnel_tcp_wait(t) == NGX_OK)
        {
            return 0;
        }

        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: port %d is used by another program%s",
                          (int) t->port, want ? "" : ", trying another");
        }

        ngx_tunnel_registry_unbind(ts->zone, t->member);
        t->member = NULL;

        if (rc != NGX_BUSY) {
            return TUNNEL_E_INTERNAL;
        }

        if (want) {
            ngx_str_set(why, "the port is in use on the server");
            return TUNNEL_E_PORT_TAKEN;
        }

        port = ngx_array_push(&busy);
        if (port == NULL) {
            return TUNNEL_E_INTERNAL;
        }

        *port = t->port;
    }

    ngx_str_set(why, "no free port found in the server's range");

    return TUNNEL_E_PORTS_FULL;
}


static void
ngx_tunnel_unbind(ngx_tunnel_session_t *ts, tunnel_msg_t *m)
{
    ngx_queue_t          *q;
    ngx_tunnel_tunnel_t  *t;

    for (q = ngx_queue_head(&ts->tunnels);
         q != ngx_queue_sentinel(&ts->tunnels);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_tunnel_tunnel_t, queue);

        if (t->id == m->tunnel_id) {
            ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                          "tunnel: session %016xL unbound %s tunnel %uD",
                          ts->id, tunnel_kind_name(t->kind), t->id);

            if (ts->draining) {
                /*
                 * Its client has bound it in a new session.  Connections
                 * routed here before that may still come, handed over by
                 * other workers: they are served while the session lasts.
                 */
                ngx_tunnel_tunnel_release(ts, t);
                return;
            }

            ngx_queue_remove(q);
            ngx_tunnel_tunnel_free(ts, t);
            return;
        }
    }
}


static void
ngx_tunnel_tunnel_free(ngx_tunnel_session_t *ts, ngx_tunnel_tunnel_t *t)
{
    ngx_tunnel_tunnel_release(ts, t);
    ngx_destroy_pool(t->pool);
}


/* its port and its place in the registry go; the tunnel itself stays */
static void
ngx_tunnel_tunnel_release(ngx_tunnel_session_t *ts, ngx_tunnel_tunnel_t *t)
{
    ngx_queue_t          *q;
    ngx_tunnel_stream_t  *bs;

    ngx_tunnel_tcp_close(t);

    if (t->member) {
        /* its open connections go on, but count into the member no more */
        for (q = ngx_queue_head(&ts->streams);
             q != ngx_queue_sentinel(&ts->streams);
             q = ngx_queue_next(q))
        {
            bs = ngx_queue_data(q, ngx_tunnel_stream_t, queue);

            if (bs->member == t->member) {
                bs->member = NULL;
            }
        }

        ngx_tunnel_registry_unbind(ts->zone, t->member);
        t->member = NULL;
    }
}


ngx_tunnel_tunnel_t *
ngx_tunnel_session_tunnel(ngx_tunnel_session_t *ts, uint32_t id)
{
    ngx_queue_t          *q;
    ngx_tunnel_tunnel_t  *t;

    for (q = ngx_queue_head(&ts->tunnels);
         q != ngx_queue_sentinel(&ts->tunnels);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_tunnel_tunnel_t, queue);

        if (t->id == id) {
            return t;
        }
    }

    return NULL;
}


/* the public URL from the kind's template: $name, $port and $domain */
static ngx_int_t
ngx_tunnel_url(ngx_tunnel_session_t *ts, ngx_tunnel_tunnel_t *t,
    ngx_str_t *url)
{
    u_char     *p, *s, *end;
    size_t      len;
    ngx_str_t  *tpl, port;
    u_char      buf[NGX_INT_T_LEN];

    tpl = &ts->conf->urls[t->kind];

    port.data = buf;
    port.len = ngx_sprintf(buf, "%d", (int) t->port) - buf;

    len = tpl->len + t->name.len + port.len + ts->conf->domain.len;

    url->data = ngx_pnalloc(t->pool, len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = url->data;
    s = tpl->data;
    end = tpl->data + tpl->len;

    while (s < end) {
        if (*s == '$') {
            if (end - s >= 5 && ngx_strncmp(s, "$name", 5) == 0) {
                p = ngx_cpymem(p, t->name.data, t->name.len);
                s += 5;
                continue;
            }

            if (end - s >= 5 && ngx_strncmp(s, "$port", 5) == 0) {
                p = ngx_cpymem(p, port.data, port.len);
                s += 5;
                continue;
            }

            if (end - s >= 7 && ngx_strncmp(s, "$domain", 7) == 0) {
                p = ngx_cpymem(p, ts->conf->domain.data,
                               ts->conf->domain.len);
                s += 7;
                continue;
            }
        }

        *p++ = *s++;
    }

    url->len = p - url->data;

    return NGX_OK;
}


/* queues a control message; control is small and never waits for room */
static void
ngx_tunnel_send(ngx_tunnel_session_t *ts, tunnel_msg_t *m)
{
    size_t   n;
    ssize_t  rc;
    u_char   buf[NGX_TUNNEL_CTL_OUT];

    if (ts->ctl_id == 0 || ts->mux == NULL) {
        return;
    }

    n = tunnel_msg_encode(m, buf, sizeof(buf));
    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, ts->connection->log, 0,
                      "tunnel: cannot encode %s", tunnel_msg_type_name(m->type));
        return;
    }

    rc = yamux_stream_write(ts->mux, ts->ctl_id, buf, n);

    if (rc != (ssize_t) n) {
        ngx_log_error(NGX_LOG_INFO, ts->connection->log, 0,
                      "tunnel: session %016xL: control stream blocked (%s), "
                      "closing", ts->id,
                      rc < 0 ? yamux_strerror((int) rc) : "window full");
        ngx_tunnel_session_close(ts);
        return;
    }

    if (!ts->in_input) {
        ngx_post_event(ts->connection->write, &ngx_posted_events);
    }
}


/* says why in an error message, then ends the session */
static void
ngx_tunnel_refuse(ngx_tunnel_session_t *ts, ngx_uint_t code,
    const char *message)
{
    tunnel_msg_t  m;

    if (ts->ctl) {
        tunnel_ctl_close(ts->ctl);
    }

    ngx_memzero(&m, sizeof(tunnel_msg_t));
    m.type = TUNNEL_ERROR;
    m.code = (uint32_t) code;
    m.message = tunnel_str(message ? message : tunnel_error_text(code));

    ngx_tunnel_send(ts, &m);

    if (ts->mux) {
        (void) yamux_go_away(ts->mux, YAMUX_GOAWAY_NORMAL);
    }

    /*
     * No flush first: a failed send would end the session there, and this
     * close would end it again; the session's end sends what the socket
     * takes.
     */
    ngx_tunnel_session_close(ts);
}


static ngx_str_t
ngx_tunnel_str(ngx_pool_t *pool, tunnel_str_t *s)
{
    ngx_str_t  r;

    r.len = 0;
    r.data = NULL;

    if (s->len) {
        r.data = ngx_pnalloc(pool, s->len);
        if (r.data) {
            ngx_memcpy(r.data, s->data, s->len);
            r.len = s->len;
        }
    }

    return r;
}
