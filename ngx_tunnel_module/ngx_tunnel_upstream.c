
/*
 * Copyright (C) ngx_tunnel developers
 *
 * A tunnel as an upstream peer.  The balancer's get() makes a socketpair:
 * one end is given to nginx's upstream as a connected peer (NGX_DONE), the
 * other is carried into a stream of the session that owns the tunnel, in
 * this worker or, handed over, in its own.  The http balancer
 * (ngx_http_tunnel_module.c) and the stream one below share this.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


typedef struct {
    ngx_stream_tunnel_srv_conf_t  *conf;
    ngx_stream_session_t          *session;
    ngx_str_t                      key;
    struct sockaddr_un             sockaddr;    /* for $upstream_addr */
    ngx_str_t                      name;
} ngx_stream_tunnel_peer_t;


static ngx_int_t ngx_stream_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_tunnel_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us);
static ngx_int_t ngx_stream_tunnel_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_stream_tunnel_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);


/*
 * The upstream's end of a new socketpair, set up as ngx_event_connect_peer()
 * sets up a connected peer; the other end is returned in "fd".
 */
ngx_connection_t *
ngx_tunnel_socketpair(ngx_socket_t *fd, ngx_log_t *log)
{
    int                sv[2];
    ngx_connection_t  *c;

    if (socketpair(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0, sv)
        == -1)
    {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      "tunnel: socketpair() failed");
        return NULL;
    }

    c = ngx_get_connection(sv[0], log);
    if (c == NULL) {
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }

    c->type = SOCK_STREAM;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    /* unix sockets know no TCP options: the upstream must not set them */
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;

    c->read->log = log;
    c->write->log = log;
    c->write->ready = 1;

    if (ngx_add_conn(c) == NGX_ERROR) {
        ngx_close_connection(c);
        close(sv[1]);
        return NULL;
    }

    *fd = sv[1];

    return c;
}


/* carries "fd" into the route's tunnel; "fd" is ours either way */
ngx_int_t
ngx_tunnel_carry(ngx_tunnel_route_t *route, ngx_tunnel_handoff_t *h,
    ngx_socket_t fd, ngx_log_t *log)
{
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_tunnel_session_t  *ts;

    h->session_id = route->session_id;
    h->tunnel_id = route->tunnel_id;

    if (route->pid != ngx_pid) {
        h->kind |= NGX_TUNNEL_HANDOFF_PAIR;
        rc = ngx_tunnel_handoff_send(route->pid, fd, h, log);

        /* never in this worker's epoll: closing our copy is enough */
        close(fd);

        return (rc == NGX_OK) ? NGX_OK : NGX_ERROR;
    }

    ts = ngx_tunnel_session_find(route->session_id);
    if (ts == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    c = ngx_tunnel_connection(fd, NULL, 0, ts->connection->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;

    if (ngx_tunnel_session_connect(ts, route->tunnel_id, c, h, NULL)
        != NGX_OK)
    {
        ngx_tunnel_connection_close(c);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the registry zone, declared in the stream block, from anywhere */
ngx_shm_zone_t *
ngx_tunnel_zone(void)
{
    ngx_stream_tunnel_main_conf_t  *tmcf;

    if (ngx_stream_module.index == NGX_MODULE_UNSET_INDEX
        || ngx_cycle->conf_ctx[ngx_stream_module.index] == NULL)
    {
        return NULL;
    }

    tmcf = ngx_stream_cycle_get_module_main_conf(ngx_cycle,
                                                 ngx_stream_tunnel_module);

    return tmcf ? tmcf->zone : NULL;
}


/* the stream balancer: upstream x { tunnel_route <key> [tls|http]; } */

char *
ngx_stream_tunnel_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_int_t                            kind;
    ngx_str_t                           *value;
    ngx_stream_upstream_server_t        *us;
    ngx_stream_upstream_srv_conf_t      *uscf;
    ngx_stream_compile_complex_value_t   ccv;

    if (tscf->route) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tscf->route = ngx_palloc(cf->pool, sizeof(ngx_stream_complex_value_t));
    if (tscf->route == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_stream_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = tscf->route;

    if (ngx_stream_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tscf->route_kind = TUNNEL_KIND_TLS;

    if (cf->args->nelts == 3) {
        kind = tunnel_kind_parse((const char *) value[2].data, value[2].len);

        if (kind != TUNNEL_KIND_TLS && kind != TUNNEL_KIND_HTTP) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid tunnel_route kind \"%V\": "
                               "tls or http", &value[2]);
            return NGX_CONF_ERROR;
        }

        tscf->route_kind = (ngx_uint_t) kind;
    }

    uscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    uscf->peer.init_upstream = ngx_stream_tunnel_init_upstream;

    /* the upstream block wants a server: the tunnel stands in for it */
    if (uscf->servers) {
        us = ngx_array_push(uscf->servers);
        if (us == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(us, sizeof(ngx_stream_upstream_server_t));
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_stream_upstream_srv_conf_t *us)
{
    us->peer.init = ngx_stream_tunnel_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_tunnel_init_peer(ngx_stream_session_t *s,
    ngx_stream_upstream_srv_conf_t *us)
{
    u_char                        *p;
    ngx_stream_tunnel_peer_t      *tp;
    ngx_stream_tunnel_srv_conf_t  *tscf;

    tscf = ngx_stream_conf_upstream_srv_conf(us, ngx_stream_tunnel_module);

    tp = ngx_pcalloc(s->connection->pool, sizeof(ngx_stream_tunnel_peer_t));
    if (tp == NULL) {
        return NGX_ERROR;
    }

    tp->conf = tscf;
    tp->session = s;

    if (ngx_stream_complex_value(s, tscf->route, &tp->key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (tp->key.len && tp->key.data[tp->key.len - 1] == '.') {
        tp->key.len--;
    }

    p = ngx_pnalloc(s->connection->pool, tp->key.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(p, tp->key.data, tp->key.len);
    tp->key.data = p;

    s->upstream->peer.data = tp;
    s->upstream->peer.get = ngx_stream_tunnel_get_peer;
    s->upstream->peer.free = ngx_stream_tunnel_free_peer;
    s->upstream->peer.tries = 2;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_tunnel_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_stream_tunnel_peer_t *tp = data;

    u_char                *p;
    ngx_int_t              rc;
    ngx_socket_t           fd;
    ngx_shm_zone_t        *zone;
    ngx_connection_t      *c, *client;
    ngx_tunnel_route_t     route;
    ngx_tunnel_handoff_t   h;

    client = tp->session->connection;

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

    zone = ngx_tunnel_zone();

    rc = (zone == NULL || tp->key.len == 0)
         ? NGX_DECLINED
         : ngx_tunnel_registry_route(zone, tp->conf->route_kind, &tp->key,
                                     0, &route);

    if (rc == NGX_AGAIN) {
        ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                      "tunnel_route: %s tunnel \"%V\" is reconnecting: its "
                      "client lost its connection %M ms ago",
                      tunnel_kind_name(tp->conf->route_kind), &tp->key,
                      route.lost);
        return NGX_BUSY;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, pc->log, 0,
                      "tunnel_route: no %s tunnel is online for \"%V\"",
                      tunnel_kind_name(tp->conf->route_kind), &tp->key);
        return NGX_BUSY;
    }

    c = ngx_tunnel_socketpair(&fd, pc->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->log_error = pc->log_error;

    ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
    h.kind = tp->conf->route_kind;
    h.server_name = tp->key;

    if (client->socklen <= (socklen_t) sizeof(ngx_sockaddr_t)) {
        ngx_memcpy(&h.peer, client->sockaddr, client->socklen);
        h.peer_len = client->socklen;
    }

    if (ngx_tunnel_carry(&route, &h, fd, client->log) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_DECLINED;
    }

    pc->connection = c;

    return NGX_DONE;
}


static void
ngx_stream_tunnel_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    pc->tries--;
}
