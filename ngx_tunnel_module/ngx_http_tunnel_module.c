
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The http side.  "tunnel_route <key>" in an upstream block is a balancer
 * whose peer is a tunnel: its get() gives the upstream an already connected
 * peer (NGX_DONE, as the keepalive module returns a cached connection).
 * When the session that owns the tunnel is in this worker, that is a new
 * stream of it (ngx_tunnel_peer.c); otherwise one end of a socketpair whose
 * other end is handed over to the owner's worker and carried there.  So
 * proxy_pass and every proxy_* directive work on tunnelled requests.  Idle
 * upstream connections are kept per tunnel, as "keepalive" would.
 *
 * "tunnel_status" shows the registry in JSON or Prometheus text.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


typedef struct {
    ngx_http_complex_value_t       key;
    ngx_uint_t                     keepalive;   /* idle connections kept */
    ngx_msec_t                     idle_timeout;
    ngx_queue_t                    cache;       /* most recent first */
    ngx_queue_t                    free;
} ngx_http_tunnel_upstream_conf_t;


typedef struct {
    ngx_queue_t                    queue;
    ngx_http_tunnel_upstream_conf_t *conf;
    ngx_connection_t              *connection;
    uint64_t                       session_id;
    uint32_t                       tunnel_id;
} ngx_http_tunnel_cache_t;


/* per request: what the balancer chose, also for the variables */
typedef struct {
    ngx_http_tunnel_upstream_conf_t *conf;
    ngx_http_request_t            *request;
    ngx_str_t                      key;
    ngx_tunnel_route_t             route;
    ngx_uint_t                     routed;
    ngx_uint_t                     tried;
    struct sockaddr_un             sockaddr;    /* for $upstream_addr */
    ngx_str_t                      name;
} ngx_http_tunnel_peer_t;


typedef struct {
    ngx_flag_t                     status;
} ngx_http_tunnel_loc_conf_t;


static ngx_int_t ngx_http_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tunnel_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_tunnel_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static ngx_connection_t *ngx_http_tunnel_cached(ngx_http_tunnel_peer_t *tp);
static void ngx_http_tunnel_idle_handler(ngx_event_t *ev);
static void ngx_http_tunnel_idle_close(ngx_http_tunnel_cache_t *item);
static void ngx_http_tunnel_dummy_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_tunnel_respond(ngx_http_tunnel_peer_t *tp,
    ngx_socket_t fd, ngx_uint_t status, ngx_str_t *body);
static void ngx_http_tunnel_responder_handler(ngx_event_t *ev);

static ngx_int_t ngx_http_tunnel_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_tunnel_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_tunnel_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_tunnel_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_tunnel_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tunnel_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_tunnel_route(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tunnel_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_tunnel_commands[] = {

    { ngx_string("tunnel_route"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_tunnel_route,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tunnel_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tunnel_module_ctx = {
    ngx_http_tunnel_add_variables,         /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_tunnel_create_srv_conf,       /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tunnel_create_loc_conf,       /* create location configuration */
    ngx_http_tunnel_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_tunnel_module = {
    NGX_MODULE_V1,
    &ngx_http_tunnel_module_ctx,           /* module context */
    ngx_http_tunnel_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_tunnel_vars[] = {

    { ngx_string("tunnel_name"), NULL, ngx_http_tunnel_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tunnel_id"), NULL, ngx_http_tunnel_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tunnel_session"), NULL, ngx_http_tunnel_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tunnel_client_addr"), NULL, ngx_http_tunnel_variable,
      3, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_tunnel_not_found =
    ngx_string("Tunnel %V not found.\n\n"
               "No client is serving this name. If it is yours, start it "
               "with \"tunnel http <port>\".\n");

static ngx_str_t  ngx_http_tunnel_unavailable =
    ngx_string("Tunnel %V is not reachable right now.\n\n"
               "Its client is reconnecting or has too many connections "
               "open. Try again in a moment.\n");

/* the name is kept for a client whose connection broke */
static ngx_str_t  ngx_http_tunnel_reconnecting =
    ngx_string("Tunnel %V is reconnecting: its client lost its connection "
               "%M s ago.\n\n"
               "The name is kept for it for %M s more. Try again in a "
               "moment.\n");


/* the balancer */

static ngx_int_t
ngx_http_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                        i;
    ngx_http_tunnel_cache_t          *cached;
    ngx_http_tunnel_upstream_conf_t  *tucf;

    tucf = ngx_http_conf_upstream_srv_conf(us, ngx_http_tunnel_module);

    us->peer.init = ngx_http_tunnel_init_peer;

    ngx_queue_init(&tucf->cache);
    ngx_queue_init(&tucf->free);

    if (tucf->keepalive == 0) {
        return NGX_OK;
    }

    cached = ngx_pcalloc(cf->pool,
                         sizeof(ngx_http_tunnel_cache_t) * tucf->keepalive);
    if (cached == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < tucf->keepalive; i++) {
        cached[i].conf = tucf;
        ngx_queue_insert_head(&tucf->free, &cached[i].queue);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    u_char                           *p;
    ngx_http_tunnel_peer_t           *tp;
    ngx_http_tunnel_upstream_conf_t  *tucf;

    tucf = ngx_http_conf_upstream_srv_conf(us, ngx_http_tunnel_module);

    tp = ngx_http_get_module_ctx(r, ngx_http_tunnel_module);

    if (tp == NULL) {
        tp = ngx_pcalloc(r->pool, sizeof(ngx_http_tunnel_peer_t));
        if (tp == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, tp, ngx_http_tunnel_module);
    }

    tp->conf = tucf;
    tp->request = r;
    tp->routed = 0;
    tp->tried = 0;

    if (ngx_http_complex_value(r, &tucf->key, &tp->key) != NGX_OK) {
        return NGX_ERROR;
    }

    /* Host may carry a port and a trailing dot; names are lowercase */
    p = ngx_strlchr(tp->key.data, tp->key.data + tp->key.len, ':');
    if (p) {
        tp->key.len = p - tp->key.data;
    }

    if (tp->key.len && tp->key.data[tp->key.len - 1] == '.') {
        tp->key.len--;
    }

    p = ngx_pnalloc(r->pool, tp->key.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(p, tp->key.data, tp->key.len);
    tp->key.data = p;

    r->upstream->peer.data = tp;
    r->upstream->peer.get = ngx_http_tunnel_get_peer;
    r->upstream->peer.free = ngx_http_tunnel_free_peer;

    /*
     * One try per member of the pool, as round robin gives one per server;
     * the pool's size is known on the first get().  Until then, as many as
     * proxy_next_upstream_tries allows.
     */
    r->upstream->peer.tries = NGX_MAX_INT32_VALUE;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tunnel_peer_t *tp = data;

    u_char                *p;
    ngx_int_t              rc;
    ngx_str_t              body;
    ngx_uint_t             status;
    ngx_socket_t           fd;
    ngx_shm_zone_t        *zone;
    ngx_connection_t      *c, *client;
    ngx_tunnel_handoff_t   h;
    ngx_tunnel_session_t  *ts;
    u_char                 text[512];

    zone = ngx_tunnel_zone();

    tp->routed = 0;
    status = 0;

    if (zone == NULL) {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "tunnel_route needs a tunnel_zone in the stream "
                      "block");
        return NGX_ERROR;
    }

    rc = (tp->key.len == 0) ? NGX_DECLINED
                            : ngx_tunnel_registry_route(zone,
                                                        TUNNEL_KIND_HTTP,
                                                        &tp->key, 0,
                                                        &tp->route);

    if (rc == NGX_OK) {
        tp->routed = 1;

        /*
         * nginx adds a try itself when a kept connection fails, so a pool
         * of one retries only then: a timeout, or an error once the
         * request went, is not repeated on the same client.
         */
        if (!tp->tried && pc->tries > tp->route.nmembers) {
            pc->tries = ngx_max(tp->route.nmembers, 1);
        }

    } else if (rc == NGX_BUSY || rc == NGX_AGAIN) {
        status = NGX_HTTP_BAD_GATEWAY;

    } else {
        status = NGX_HTTP_NOT_FOUND;
    }

    tp->tried = 1;

    /* $upstream_addr says where the request went */
    tp->sockaddr.sun_family = AF_UNIX;
    p = ngx_snprintf((u_char *) tp->sockaddr.sun_path,
                     sizeof(tp->sockaddr.sun_path) - 1, "tunnel:%V",
                     &tp->key);
    *p = '\0';

    tp->name.data = (u_char *) tp->sockaddr.sun_path;
    tp->name.len = p - tp->name.data;

    pc->sockaddr = (struct sockaddr *) &tp->sockaddr;
    pc->socklen = sizeof(struct sockaddr_un);
    pc->name = &tp->name;

    if (tp->routed) {
        c = ngx_http_tunnel_cached(tp);

        if (c) {
            pc->connection = c;
            pc->cached = 1;
            return NGX_DONE;
        }
    }

    if (tp->routed) {
        ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
        h.kind = TUNNEL_KIND_HTTP;
        h.server_name = tp->key;

        /* the client's address as nginx sees it, after realip */
        client = tp->request->connection;

        if (client->socklen <= (socklen_t) sizeof(ngx_sockaddr_t)) {
            ngx_memcpy(&h.peer, client->sockaddr, client->socklen);
            h.peer_len = client->socklen;
        }

        /*
         * The session is here: the stream itself is the connection.  TLS
         * to the local service (proxy_pass https://) needs a socket, and
         * level-triggered event methods (select, poll) would try to remove
         * the connection's events.
         */
        ts = (tp->route.pid == ngx_pid && !tp->request->upstream->ssl
              && (ngx_event_flags & NGX_USE_CLEAR_EVENT))
             ? ngx_tunnel_session_find(tp->route.session_id) : NULL;

        if (ts) {
            c = ngx_tunnel_peer_open(ts, tp->route.tunnel_id, &h,
                                     client->log);
            if (c) {
                c->log_error = pc->log_error;
                pc->connection = c;
                return NGX_DONE;
            }

        } else {
            c = ngx_tunnel_socketpair(&fd, pc->log);
            if (c == NULL) {
                return NGX_ERROR;
            }

            c->log_error = pc->log_error;

            if (ngx_tunnel_carry(&tp->route, &h, fd, client->log) == NGX_OK)
            {
                pc->connection = c;
                return NGX_DONE;
            }

            ngx_close_connection(c);
        }

        /* its session went away, or its worker cannot take it */

        if (pc->tries > 1) {
            return NGX_DECLINED;
        }

        /* the last try: the upstream gets our 502 page, not nginx's */

        tp->routed = 0;
        status = NGX_HTTP_BAD_GATEWAY;
    }

    /* an answer of ours, through a socketpair */

    c = ngx_tunnel_socketpair(&fd, pc->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->log_error = pc->log_error;

    body.data = text;

    if (status == NGX_HTTP_NOT_FOUND) {
        ngx_log_error(NGX_LOG_INFO, tp->request->connection->log, 0,
                      "tunnel_route: no tunnel for \"%V\"", &tp->key);

        p = ngx_snprintf(text, sizeof(text),
                         (char *) ngx_http_tunnel_not_found.data, &tp->key);

    } else if (rc == NGX_AGAIN) {
        ngx_log_error(NGX_LOG_INFO, tp->request->connection->log, 0,
                      "tunnel_route: \"%V\" is reconnecting: its client "
                      "lost its connection %M ms ago", &tp->key,
                      tp->route.lost);

        /* rounded so that the two add up to the grace */
        p = ngx_snprintf(text, sizeof(text),
                         (char *) ngx_http_tunnel_reconnecting.data,
                         &tp->key, tp->route.lost / 1000,
                         (tp->route.grace_left + 999) / 1000);

    } else {
        ngx_log_error(NGX_LOG_INFO, tp->request->connection->log, 0,
                      "tunnel_route: tunnel unreachable for \"%V\"",
                      &tp->key);

        p = ngx_snprintf(text, sizeof(text),
                         (char *) ngx_http_tunnel_unavailable.data,
                         &tp->key);
    }

    body.len = p - text;

    if (ngx_http_tunnel_respond(tp, fd, status, &body) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    pc->connection = c;

    return NGX_DONE;
}


/* a kept connection to the same tunnel, if any */
static ngx_connection_t *
ngx_http_tunnel_cached(ngx_http_tunnel_peer_t *tp)
{
    ngx_queue_t              *q;
    ngx_connection_t         *c;
    ngx_http_tunnel_cache_t  *item;

    for (q = ngx_queue_head(&tp->conf->cache);
         q != ngx_queue_sentinel(&tp->conf->cache);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_http_tunnel_cache_t, queue);

        if (item->session_id != tp->route.session_id
            || item->tunnel_id != tp->route.tunnel_id)
        {
            continue;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&tp->conf->free, q);

        c = item->connection;

        c->idle = 0;
        c->sent = 0;
        c->data = NULL;
        c->log = tp->request->connection->log;
        c->read->log = c->log;
        c->write->log = c->log;
        c->pool->log = c->log;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "tunnel: reusing connection to \"%V\"", &tp->key);

        return c;
    }

    return NULL;
}


static void
ngx_http_tunnel_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_tunnel_peer_t *tp = data;

    ngx_queue_t              *q;
    ngx_connection_t         *c;
    ngx_http_upstream_t      *u;
    ngx_http_tunnel_cache_t  *item;

    u = tp->request->upstream;
    c = pc->connection;

    pc->tries--;

    if (c == NULL) {
        return;
    }

    /* keep a connection whose response ended cleanly, as keepalive does */
    if (!tp->routed
        || tp->conf->keepalive == 0
        || (state & NGX_PEER_FAILED)
        || c->read->eof
        || c->read->error
        || c->read->timedout
        || c->write->error
        || c->write->timedout
        || !u->keepalive
        || !u->request_body_sent
        || ngx_terminate
        || ngx_exiting
        || ngx_handle_read_event(c->read, 0) != NGX_OK)
    {
        /* nginx closes sockets; a stream of ours, only we do */
        if (ngx_tunnel_peer(c)) {
            pc->connection = NULL;
            ngx_tunnel_peer_close(c, !u->keepalive);
        }

        return;
    }

    if (ngx_queue_empty(&tp->conf->free)) {
        q = ngx_queue_last(&tp->conf->cache);
        ngx_queue_remove(q);
        item = ngx_queue_data(q, ngx_http_tunnel_cache_t, queue);
        ngx_http_tunnel_idle_close(item);

    } else {
        q = ngx_queue_head(&tp->conf->free);
        ngx_queue_remove(q);
        item = ngx_queue_data(q, ngx_http_tunnel_cache_t, queue);
    }

    ngx_queue_insert_head(&tp->conf->cache, q);

    item->connection = c;
    item->session_id = tp->route.session_id;
    item->tunnel_id = tp->route.tunnel_id;

    pc->connection = NULL;

    c->read->delayed = 0;
    ngx_add_timer(c->read, tp->conf->idle_timeout);

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->write->handler = ngx_http_tunnel_dummy_handler;
    c->read->handler = ngx_http_tunnel_idle_handler;
    c->data = item;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;

    if (c->read->ready) {
        ngx_http_tunnel_idle_handler(c->read);
    }
}


/* an idle kept connection: any byte or close from the tunnel ends it */
static void
ngx_http_tunnel_idle_handler(ngx_event_t *ev)
{
    char                      buf[1];
    ssize_t                   n;
    ngx_connection_t         *c;
    ngx_http_tunnel_cache_t  *item;

    c = ev->data;
    item = c->data;

    if (ngx_tunnel_peer(c)) {
        if (!ev->timedout && ngx_tunnel_peer_idle(c)) {
            ev->ready = 0;
            return;
        }

    } else if (!c->close && !ev->timedout) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            ev->ready = 0;

            if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
                return;
            }
        }
    }

    ngx_queue_remove(&item->queue);
    ngx_http_tunnel_idle_close(item);
    ngx_queue_insert_head(&item->conf->free, &item->queue);
}


static void
ngx_http_tunnel_idle_close(ngx_http_tunnel_cache_t *item)
{
    ngx_connection_t  *c;

    c = item->connection;
    item->connection = NULL;

    if (ngx_tunnel_peer(c)) {
        ngx_tunnel_peer_close(c, 0);
        return;
    }

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


static void
ngx_http_tunnel_dummy_handler(ngx_event_t *ev)
{
}


/*
 * No tunnel to go to: the upstream gets a short response from us instead,
 * so proxy_intercept_errors and error_page can replace it as any other.
 */
static ngx_int_t
ngx_http_tunnel_respond(ngx_http_tunnel_peer_t *tp, ngx_socket_t fd,
    ngx_uint_t status, ngx_str_t *body)
{
    u_char            *p;
    ssize_t            n;
    ngx_connection_t  *c;
    u_char             buf[1024];

    p = ngx_snprintf(buf, 512,
                     "HTTP/1.1 %ui %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %uz\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     status,
                     status == NGX_HTTP_NOT_FOUND ? "Not Found"
                                                  : "Bad Gateway",
                     body->len);

    p = ngx_cpymem(p, body->data, ngx_min(body->len, 512));

    /* a socketpair takes this much at once */
    n = send(fd, buf, p - buf, 0);

    if (n != p - buf) {
        close(fd);
        return NGX_ERROR;
    }

    /* read and drop the request until the upstream closes its end */
    c = ngx_tunnel_connection(fd, NULL, 0, ngx_cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->read->handler = ngx_http_tunnel_responder_handler;
    c->write->handler = ngx_http_tunnel_dummy_handler;

    return NGX_OK;
}


static void
ngx_http_tunnel_responder_handler(ngx_event_t *ev)
{
    ssize_t            n;
    ngx_connection_t  *c;
    u_char             buf[4096];

    c = ev->data;

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(ev, 0) != NGX_OK) {
                break;
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            break;
        }
    }

    ngx_tunnel_connection_close(c);
}


/* tunnel_status */

static ngx_int_t
ngx_http_tunnel_status_handler(ngx_http_request_t *r)
{
    ngx_int_t        rc;
    ngx_str_t        format;
    ngx_uint_t       prometheus;
    ngx_buf_t       *b;
    ngx_chain_t     *out, *cl;
    ngx_shm_zone_t  *zone;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    zone = ngx_tunnel_zone();
    if (zone == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        prometheus = (format.len == 10
                      && ngx_strncmp(format.data, "prometheus", 10) == 0);
    }

    out = ngx_tunnel_registry_status(zone, r->pool,
                                     prometheus
                                     ? NGX_TUNNEL_STATUS_PROMETHEUS
                                     : NGX_TUNNEL_STATUS_JSON);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;

    for (cl = out; cl; cl = cl->next) {
        r->headers_out.content_length_n += ngx_buf_size(cl->buf);
        b = cl->buf;
        b->last_buf = (cl->next == NULL);
        b->last_in_chain = (cl->next == NULL);
    }

    if (prometheus) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


/* variables */

static ngx_int_t
ngx_http_tunnel_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tunnel_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                  *p;
    ngx_http_tunnel_peer_t  *tp;

    tp = ngx_http_get_module_ctx(r, ngx_http_tunnel_module);

    if (tp == NULL || !tp->routed) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
        v->data = tp->key.data;
        v->len = tp->key.len;
        break;

    case 3:
        v->data = tp->route.addr;
        v->len = tp->route.addr_len;
        break;

    default:
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = (data == 1)
                 ? ngx_sprintf(p, "%uD", tp->route.tunnel_id) - p
                 : ngx_sprintf(p, "%016xL", tp->route.session_id) - p;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* configuration */

static void *
ngx_http_tunnel_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_upstream_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_upstream_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    return conf;
}


static void *
ngx_http_tunnel_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tunnel_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tunnel_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->status = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_tunnel_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tunnel_loc_conf_t *prev = parent;
    ngx_http_tunnel_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->status, prev->status, 0);

    return NGX_CONF_OK;
}


/* tunnel_route <key> [keepalive=<n>] [idle_timeout=<time>] */
static char *
ngx_http_tunnel_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_upstream_conf_t *tucf = conf;

    ngx_int_t                          n;
    ngx_str_t                         *value, s;
    ngx_uint_t                         i;
    ngx_http_upstream_server_t        *us;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_compile_complex_value_t   ccv;

    if (tucf->key.value.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &tucf->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tucf->keepalive = 32;
    tucf->idle_timeout = 60000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            tucf->keepalive = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "idle_timeout=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            tucf->idle_timeout = (ngx_msec_t) n;
            continue;
        }

        goto invalid;
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    uscf->peer.init_upstream = ngx_http_tunnel_init_upstream;

    /* the upstream block wants a server: the tunnel stands in for it */
    if (uscf->servers) {
        us = ngx_array_push(uscf->servers);
        if (us == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(us, sizeof(ngx_http_upstream_server_t));
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\": keepalive=<number> or "
                       "idle_timeout=<time> are expected", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_tunnel_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tunnel_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_tunnel_status_handler;

    return NGX_CONF_OK;
}
