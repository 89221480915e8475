
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The stream side: the registration server (tunnel_server), public
 * connections routed by a key such as the TLS server name (tunnel_pass), the
 * shared registry zone, and the worker's life (handoff socket, reaping).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#define NGX_TUNNEL_HOUSEKEEPING   1000      /* ms */


static ngx_int_t ngx_stream_tunnel_init_process(ngx_cycle_t *cycle);
static void ngx_stream_tunnel_exit_process(ngx_cycle_t *cycle);
static void ngx_stream_tunnel_housekeeping(ngx_event_t *ev);
static void ngx_stream_tunnel_handoff_handler(ngx_cycle_t *cycle,
    ngx_tunnel_handoff_t *h, ngx_socket_t fd);
static void ngx_stream_tunnel_pass_handler(ngx_stream_session_t *s);
static void ngx_stream_tunnel_pass_done(ngx_connection_t *c, ngx_int_t rc);
static ngx_int_t ngx_stream_tunnel_log_handler(ngx_stream_session_t *s);

static ngx_int_t ngx_stream_tunnel_init(ngx_conf_t *cf);

static void *ngx_stream_tunnel_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_tunnel_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_tunnel_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_stream_tunnel_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_domain(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_tcp_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_tcp_address(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_tunnel_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_tunnel_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static size_t ngx_stream_tunnel_url_max(ngx_str_t *tpl, ngx_str_t *domain);


static ngx_conf_num_bounds_t  ngx_stream_tunnel_streams_bounds = {
    ngx_conf_check_num_bounds, 1, 65536
};


static ngx_command_t  ngx_stream_tunnel_commands[] = {

    { ngx_string("tunnel_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_stream_tunnel_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_server"),
      NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_stream_tunnel_server,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, server),
      NULL },

    { ngx_string("tunnel_tokens"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_tokens,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_domain"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_domain,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_tcp_ports"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_tcp_ports,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_tcp_address"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_tcp_address,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_url"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE2,
      ngx_stream_tunnel_url,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_handshake_timeout"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, handshake_timeout),
      NULL },

    { ngx_string("tunnel_heartbeat"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, heartbeat),
      NULL },

    { ngx_string("tunnel_drain_timeout"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, drain_timeout),
      NULL },

    { ngx_string("tunnel_reconnect_grace"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_msec,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, reconnect_grace),
      NULL },

    { ngx_string("tunnel_idle_timeout"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_tunnel_msec,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, idle_timeout),
      NULL },

    { ngx_string("tunnel_window"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, window),
      NULL },

    { ngx_string("tunnel_window_max"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, window_max),
      NULL },

    { ngx_string("tunnel_max_streams"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_tunnel_srv_conf_t, max_streams),
      &ngx_stream_tunnel_streams_bounds },

    { ngx_string("tunnel_pass"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_tunnel_pass,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tunnel_route"),
      NGX_STREAM_UPS_CONF|NGX_CONF_TAKE12,
      ngx_stream_tunnel_route,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_tunnel_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_tunnel_init,                /* postconfiguration */

    ngx_stream_tunnel_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_tunnel_create_srv_conf,     /* create server configuration */
    ngx_stream_tunnel_merge_srv_conf       /* merge server configuration */
};


ngx_module_t  ngx_stream_tunnel_module = {
    NGX_MODULE_V1,
    &ngx_stream_tunnel_module_ctx,         /* module context */
    ngx_stream_tunnel_commands,            /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_stream_tunnel_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_tunnel_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_event_t  ngx_stream_tunnel_housekeeping_ev;


static ngx_int_t
ngx_stream_tunnel_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t                    *ev;
    ngx_stream_tunnel_main_conf_t  *tmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    tmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                 ngx_stream_tunnel_module);
    if (tmcf == NULL || tmcf->zone == NULL) {
        return NGX_OK;
    }

    if (ngx_tunnel_worker_init(cycle, tmcf->zone) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_tunnel_handoff_init(cycle, ngx_stream_tunnel_handoff_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* sessions of a worker that crashed are still in the registry */
    (void) ngx_tunnel_registry_reap(tmcf->zone, cycle->log);

    ev = &ngx_stream_tunnel_housekeeping_ev;
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = ngx_stream_tunnel_housekeeping;
    ev->data = tmcf;
    ev->log = cycle->log;

    /* or a quitting worker would wait for it */
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_TUNNEL_HOUSEKEEPING);

    return NGX_OK;
}


static void
ngx_stream_tunnel_exit_process(ngx_cycle_t *cycle)
{
    ngx_tunnel_worker_exit(cycle);
    ngx_tunnel_handoff_exit(cycle);
}


static void
ngx_stream_tunnel_housekeeping(ngx_event_t *ev)
{
    ngx_stream_tunnel_main_conf_t  *tmcf;

    tmcf = ev->data;

    (void) ngx_tunnel_registry_reap(tmcf->zone, ev->log);

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_TUNNEL_HOUSEKEEPING);
    }
}


/* a public connection another worker accepted for one of our sessions */
static void
ngx_stream_tunnel_handoff_handler(ngx_cycle_t *cycle, ngx_tunnel_handoff_t *h,
    ngx_socket_t fd)
{
    ngx_connection_t      *c;
    ngx_tunnel_session_t  *ts;

    if (h->kind == NGX_TUNNEL_HANDOFF_LISTENER) {
        ngx_tunnel_tcp_adopt(h, fd, cycle->log);
        return;
    }

    ts = ngx_tunnel_session_find(h->session_id);

    if (ts == NULL) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "tunnel: a connection was handed over for session "
                      "%016xL, which has ended", h->session_id);
        ngx_close_socket(fd);
        return;
    }

    /* a socketpair's connection has no peer address (AF_UNIX) */
    c = (h->kind & NGX_TUNNEL_HANDOFF_PAIR)
        ? ngx_tunnel_connection(fd, NULL, 0, ts->connection->log)
        : ngx_tunnel_connection(fd, &h->peer.sockaddr, h->peer_len,
                                ts->connection->log);
    if (c == NULL) {
        return;
    }

    if (ngx_tunnel_session_connect(ts, h->tunnel_id, c, h, NULL) != NGX_OK) {
        ngx_tunnel_connection_close(c);
    }
}


/* tunnel_pass: route by a key, here or in the worker owning the tunnel */
static void
ngx_stream_tunnel_pass_handler(ngx_stream_session_t *s)
{
    u_char                         *p;
    ngx_int_t                       rc;
    ngx_str_t                       key;
    ngx_uint_t                      attempt;
    ngx_connection_t               *c;
    ngx_tunnel_route_t              route;
    ngx_tunnel_session_t           *ts;
    ngx_tunnel_handoff_t            h;
    ngx_stream_tunnel_srv_conf_t   *tscf;
    ngx_stream_tunnel_main_conf_t  *tmcf;

    c = s->connection;
    c->log->action = "routing to a tunnel";

    tscf = ngx_stream_get_module_srv_conf(s, ngx_stream_tunnel_module);
    tmcf = ngx_stream_get_module_main_conf(s, ngx_stream_tunnel_module);

    /* for the log handler: the connection came this far */
    ngx_stream_set_ctx(s, tscf, ngx_stream_tunnel_module);

    if (ngx_stream_complex_value(s, tscf->pass, &key) != NGX_OK) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (key.len && key.data[key.len - 1] == '.') {
        key.len--;
    }

    if (key.len == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel_pass: nothing to route by (a TLS handshake "
                      "without a server name?), connection closed");
        ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    p = ngx_pnalloc(c->pool, ngx_max(key.len, 4 * NGX_TUNNEL_NAME_MAX));
    if (p == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_strlow(p, key.data, key.len);

    /* a public client's bytes: no tunnel has a name that is not a DNS name */
    if (tunnel_name_check(p, key.len, NULL) != TUNNEL_NAME_OK) {
        key.len = ngx_tunnel_escape(p, key.data,
                                    ngx_min(key.len, NGX_TUNNEL_NAME_MAX))
                  - p;
        key.data = p;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel_pass: \"%V\" is not a valid server name, "
                      "connection closed", &key);
        ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    key.data = p;

    ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
    h.kind = tscf->pass_kind;
    h.server_name = key;

    if (c->socklen <= (socklen_t) sizeof(ngx_sockaddr_t)) {
        ngx_memcpy(&h.peer, c->sockaddr, c->socklen);
        h.peer_len = c->socklen;
    }

    if (c->buffer && c->buffer->pos < c->buffer->last) {
        h.preread.data = c->buffer->pos;
        h.preread.len = c->buffer->last - c->buffer->pos;
    }

    for (attempt = 0; attempt < 2; attempt++) {

        rc = ngx_tunnel_registry_route(tmcf->zone, h.kind, &key, 0, &route);

        if (rc == NGX_AGAIN) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel_pass: %s tunnel \"%V\" is reconnecting: "
                          "its client lost its connection %M ms ago, "
                          "connection closed", tunnel_kind_name(h.kind), &key,
                          route.lost);
            ngx_stream_finalize_session(s, NGX_STREAM_BAD_GATEWAY);
            return;
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel_pass: no %s tunnel is online for \"%V\"",
                          tunnel_kind_name(h.kind), &key);
            ngx_stream_finalize_session(s, NGX_STREAM_BAD_GATEWAY);
            return;
        }

        h.session_id = route.session_id;
        h.tunnel_id = route.tunnel_id;

        if (route.pid == ngx_pid) {
            ts = ngx_tunnel_session_find(route.session_id);

            if (ts != NULL
                && ngx_tunnel_session_connect(ts, route.tunnel_id, c, &h,
                                              ngx_stream_tunnel_pass_done)
                   == NGX_OK)
            {
                if (c->buffer) {
                    c->buffer->pos = c->buffer->last;
                }

                return;
            }

            ngx_stream_finalize_session(s, NGX_STREAM_BAD_GATEWAY);
            return;
        }

        rc = ngx_tunnel_handoff_send(route.pid, c->fd, &h, c->log);

        if (rc == NGX_OK) {
            ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                           "tunnel_pass: \"%V\" handed to its worker", &key);

            /*
             * The other worker has the socket now; this one forgets it, if
             * it ever watched it (without ssl_preread nothing has added it
             * to epoll yet, and EPOLL_CTL_DEL would fail).
             */
            if (ngx_del_conn && (c->read->active || c->write->active)) {
                (void) ngx_del_conn(c, 0);
            }

            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        if (rc != NGX_DECLINED) {
            break;
        }

        /* that worker is gone: forget its sessions and look again */
        (void) ngx_tunnel_registry_reap(tmcf->zone, c->log);
    }

    ngx_stream_finalize_session(s, NGX_STREAM_BAD_GATEWAY);
}


static void
ngx_stream_tunnel_pass_done(ngx_connection_t *c, ngx_int_t rc)
{
    ngx_stream_session_t  *s;

    s = c->data;

    ngx_stream_finalize_session(s, rc == NGX_OK ? NGX_STREAM_OK
                                                : NGX_STREAM_BAD_GATEWAY);
}


/*
 * A tunnel_pass connection that ends in the preread phase (ssl_preread
 * waiting for a whole ClientHello) never reaches tunnel_pass, and nginx
 * closes it without a word at preread_timeout or at the client's close:
 * say why here.
 */
static ngx_int_t
ngx_stream_tunnel_log_handler(ngx_stream_session_t *s)
{
    size_t                         n;
    ngx_connection_t              *c;
    ngx_stream_tunnel_srv_conf_t  *tscf;

    tscf = ngx_stream_get_module_srv_conf(s, ngx_stream_tunnel_module);

    if (tscf->pass == NULL
        || s->status != NGX_STREAM_OK
        || ngx_stream_get_module_ctx(s, ngx_stream_tunnel_module))
    {
        return NGX_OK;
    }

    c = s->connection;
    n = c->buffer ? (size_t) (c->buffer->last - c->buffer->start) : 0;

    if (c->read->timedout) {
        if (n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel_pass: the client sent nothing within "
                          "preread_timeout, connection closed");

        } else {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "tunnel_pass: no whole TLS ClientHello within "
                          "preread_timeout (%uz bytes), connection closed",
                          n);
        }

    } else if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel_pass: the client closed without sending "
                      "anything");

    } else {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "tunnel_pass: the client closed after %uz bytes, "
                      "before a whole TLS ClientHello", n);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_tunnel_init(ngx_conf_t *cf)
{
    ngx_stream_handler_pt        *h;
    ngx_stream_core_main_conf_t  *cmcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_tunnel_log_handler;

    return NGX_OK;
}


static void *
ngx_stream_tunnel_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_tunnel_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_tunnel_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    return conf;
}


static void *
ngx_stream_tunnel_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_tunnel_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_tunnel_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->tokens = NULL;
     *     conf->domain = { 0, NULL };
     *     conf->port_min = 0;
     *     conf->port_max = 0;
     *     conf->tcp_addr = NULL;
     *     conf->urls = { { 0, NULL }, ... };
     *     conf->pass = NULL;
     */

    conf->server = NGX_CONF_UNSET;
    conf->handshake_timeout = NGX_CONF_UNSET_MSEC;
    conf->heartbeat = NGX_CONF_UNSET_MSEC;
    conf->drain_timeout = NGX_CONF_UNSET_MSEC;
    conf->reconnect_grace = NGX_CONF_UNSET_MSEC;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->window = NGX_CONF_UNSET_SIZE;
    conf->window_max = NGX_CONF_UNSET_SIZE;
    conf->max_streams = NGX_CONF_UNSET_UINT;
    conf->pass_kind = NGX_CONF_UNSET_UINT;
    conf->route_kind = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_stream_tunnel_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_tunnel_srv_conf_t *prev = parent;
    ngx_stream_tunnel_srv_conf_t *conf = child;

    u_char                         *p;
    ngx_int_t                       kind;
    ngx_str_t                       addr;
    ngx_stream_tunnel_main_conf_t  *tmcf;

    ngx_conf_merge_value(conf->server, prev->server, 0);
    ngx_conf_merge_ptr_value(conf->tokens, prev->tokens, NULL);
    ngx_conf_merge_str_value(conf->tokens_file, prev->tokens_file, "");
    ngx_conf_merge_str_value(conf->domain, prev->domain, "");
    ngx_conf_merge_msec_value(conf->handshake_timeout,
                              prev->handshake_timeout, 10000);
    ngx_conf_merge_msec_value(conf->heartbeat, prev->heartbeat, 10000);
    ngx_conf_merge_msec_value(conf->drain_timeout, prev->drain_timeout,
                              30000);
    ngx_conf_merge_msec_value(conf->reconnect_grace, prev->reconnect_grace,
                              10000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout,
                              600000);
    ngx_conf_merge_size_value(conf->window, prev->window, 8 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->window_max, prev->window_max,
                              ngx_max(conf->window, 64 * 1024 * 1024));
    ngx_conf_merge_uint_value(conf->max_streams, prev->max_streams, 4096);
    ngx_conf_merge_uint_value(conf->pass_kind, prev->pass_kind,
                              TUNNEL_KIND_TLS);

    if (conf->port_min == 0) {
        conf->port_min = prev->port_min;
        conf->port_max = prev->port_max;
    }

    if (conf->tcp_addr == NULL) {
        conf->tcp_addr = prev->tcp_addr;
    }

    if (conf->tcp_addr == NULL) {
        conf->tcp_addr = ngx_pcalloc(cf->pool, sizeof(ngx_addr_t));
        if (conf->tcp_addr == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&addr, "0.0.0.0");

        if (ngx_parse_addr(cf->pool, conf->tcp_addr, addr.data, addr.len)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_str_value(conf->urls[TUNNEL_KIND_HTTP],
                             prev->urls[TUNNEL_KIND_HTTP], "http://$name");
    ngx_conf_merge_str_value(conf->urls[TUNNEL_KIND_TLS],
                             prev->urls[TUNNEL_KIND_TLS], "https://$name");

    if (conf->urls[TUNNEL_KIND_TCP].data == NULL) {
        conf->urls[TUNNEL_KIND_TCP] = prev->urls[TUNNEL_KIND_TCP];
    }

    if (conf->urls[TUNNEL_KIND_TCP].data == NULL) {
        /* tcp://<tunnel_domain or the listen address>:<port> */
        p = ngx_pnalloc(cf->pool, sizeof("tcp://:$port") - 1
                                  + ngx_max(conf->domain.len,
                                            (size_t) NGX_SOCKADDR_STRLEN));
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->urls[TUNNEL_KIND_TCP].data = p;
        p = ngx_cpymem(p, "tcp://", 6);

        if (conf->domain.len) {
            p = ngx_cpymem(p, conf->domain.data, conf->domain.len);

        } else {
            p += ngx_sock_ntop(conf->tcp_addr->sockaddr,
                               conf->tcp_addr->socklen, p,
                               NGX_SOCKADDR_STRLEN, 0);
        }

        p = ngx_cpymem(p, ":$port", 6);
        conf->urls[TUNNEL_KIND_TCP].len = p - conf->urls[TUNNEL_KIND_TCP].data;
    }

    /* status keeps each URL whole */
    for (kind = TUNNEL_KIND_HTTP; kind <= TUNNEL_KIND_TCP; kind++) {
        if (ngx_stream_tunnel_url_max(&conf->urls[kind], &conf->domain)
            > NGX_TUNNEL_URL_MAX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "tunnel_url %s \"%V\" can make URLs longer "
                               "than %d bytes", tunnel_kind_name(kind),
                               &conf->urls[kind], NGX_TUNNEL_URL_MAX);
            return NGX_CONF_ERROR;
        }
    }

    if (conf->window < YAMUX_INITIAL_WINDOW || conf->window > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_window must be between 256k and 2047m");
        return NGX_CONF_ERROR;
    }

    if (conf->window_max < conf->window || conf->window_max > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_window_max must be between tunnel_window "
                           "(%uz) and 2047m", conf->window);
        return NGX_CONF_ERROR;
    }

    if (conf->server) {
        if (conf->tokens == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_server\" needs \"tunnel_tokens\": "
                               "clients must prove who they are");
            return NGX_CONF_ERROR;
        }

        tmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                    ngx_stream_tunnel_module);
        if (tmcf->zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_server\" needs \"tunnel_zone\" "
                               "in the stream block, before the servers");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->pass) {
        tmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                    ngx_stream_tunnel_module);
        if (tmcf->zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tunnel_pass\" needs \"tunnel_zone\" "
                               "in the stream block, before the servers");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* tunnel_zone <name> <size> */
static char *
ngx_stream_tunnel_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_main_conf_t *tmcf = conf;

    ssize_t          size;
    ngx_str_t       *value;
    ngx_shm_zone_t  *zone;

    if (tmcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid tunnel_zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_zone \"%V\" is too small: at least %uzk",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    zone = ngx_shared_memory_add(cf, &value[1], size,
                                 &ngx_stream_tunnel_module);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tunnel_zone \"%V\" is already defined",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    zone->init = ngx_tunnel_registry_init_zone;
    zone->data = ngx_pcalloc(cf->pool, sizeof(ngx_tunnel_registry_t));
    if (zone->data == NULL) {
        return NGX_CONF_ERROR;
    }

    tmcf->zone = zone;

    return NGX_CONF_OK;
}


static char *
ngx_stream_tunnel_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    char                        *rv;
    ngx_stream_core_srv_conf_t  *cscf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (tscf->server) {
        cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
        cscf->handler = ngx_tunnel_session_init;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_tunnel_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_str_t  *value;

    if (tscf->tokens) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tscf->tokens_file = value[1];
    tscf->tokens = ngx_tunnel_tokens_read(cf, &value[1]);

    if (tscf->tokens == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_tunnel_domain(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_str_t  *value;

    if (tscf->domain.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_strlow(value[1].data, value[1].data, value[1].len);

    if (tunnel_name_check(value[1].data, value[1].len, NULL)
        != TUNNEL_NAME_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid tunnel_domain \"%V\": a DNS name such "
                           "as tun.example.com is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    tscf->domain = value[1];

    return NGX_CONF_OK;
}


/* tunnel_tcp_ports <lo>-<hi> */
static char *
ngx_stream_tunnel_tcp_ports(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    u_char     *dash;
    ngx_int_t   lo, hi;
    ngx_str_t  *value;

    if (tscf->port_min) {
        return "is duplicate";
    }

    value = cf->args->elts;

    dash = ngx_strlchr(value[1].data, value[1].data + value[1].len, '-');

    if (dash) {
        lo = ngx_atoi(value[1].data, dash - value[1].data);
        hi = ngx_atoi(dash + 1, value[1].data + value[1].len - dash - 1);

    } else {
        lo = ngx_atoi(value[1].data, value[1].len);
        hi = lo;
    }

    if (lo == NGX_ERROR || hi == NGX_ERROR || lo > hi || hi > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid port range \"%V\": "
                           "\"30000-30999\" is an example", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (lo < 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "port range \"%V\" starts below 1024: worker "
                           "processes cannot listen there", &value[1]);
        return NGX_CONF_ERROR;
    }

    tscf->port_min = (in_port_t) lo;
    tscf->port_max = (in_port_t) hi;

    return NGX_CONF_OK;
}


static char *
ngx_stream_tunnel_tcp_address(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_str_t  *value;

    if (tscf->tcp_addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tscf->tcp_addr = ngx_pcalloc(cf->pool, sizeof(ngx_addr_t));
    if (tscf->tcp_addr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_parse_addr(cf->pool, tscf->tcp_addr, value[1].data,
                       value[1].len)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid tunnel_tcp_address \"%V\": an IP "
                           "address such as 0.0.0.0 is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* tunnel_url http|tls|tcp <template with $name, $port, $domain> */
static char *
ngx_stream_tunnel_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_int_t   kind;
    ngx_str_t  *value;

    value = cf->args->elts;

    kind = tunnel_kind_parse((const char *) value[1].data, value[1].len);

    if (kind == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid tunnel kind \"%V\": http, tls or tcp",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (tscf->urls[kind].data) {
        return "is duplicate";
    }

    tscf->urls[kind] = value[2];

    return NGX_CONF_OK;
}


/*
 * The longest URL a template can give: each $name a name of 253 bytes,
 * each $port 5 digits, as ngx_tunnel_url() expands them.
 */
static size_t
ngx_stream_tunnel_url_max(ngx_str_t *tpl, ngx_str_t *domain)
{
    u_char  *s, *end;
    size_t   len;

    len = 0;
    s = tpl->data;
    end = tpl->data + tpl->len;

    while (s < end) {
        if (end - s >= 5 && ngx_strncmp(s, "$name", 5) == 0) {
            len += NGX_TUNNEL_NAME_MAX;
            s += 5;

        } else if (end - s >= 5 && ngx_strncmp(s, "$port", 5) == 0) {
            len += sizeof("65535") - 1;
            s += 5;

        } else if (end - s >= 7 && ngx_strncmp(s, "$domain", 7) == 0) {
            len += domain->len;
            s += 7;

        } else {
            len++;
            s++;
        }
    }

    return len;
}


/* tunnel_reconnect_grace, tunnel_idle_timeout: a time, 0 for none */
static char *
ngx_stream_tunnel_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_msec_t  *msp;

    msp = (ngx_msec_t *) (p + cmd->offset);

    if (*msp != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_parse_time(&value[1], 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %V \"%V\": a time such as 10s or 5m is "
                           "expected, or 0 for none", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    *msp = (ngx_msec_t) n;

    return NGX_CONF_OK;
}


/* tunnel_pass <key> [http|tls] */
static char *
ngx_stream_tunnel_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_tunnel_srv_conf_t *tscf = conf;

    ngx_int_t                            kind;
    ngx_str_t                           *value;
    ngx_stream_core_srv_conf_t          *cscf;
    ngx_stream_compile_complex_value_t   ccv;

    if (tscf->pass) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tscf->pass = ngx_palloc(cf->pool, sizeof(ngx_stream_complex_value_t));
    if (tscf->pass == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_stream_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = tscf->pass;

    if (ngx_stream_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        kind = tunnel_kind_parse((const char *) value[2].data, value[2].len);

        if (kind != TUNNEL_KIND_TLS && kind != TUNNEL_KIND_HTTP) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid tunnel_pass kind \"%V\": "
                               "tls or http", &value[2]);
            return NGX_CONF_ERROR;
        }

        tscf->pass_kind = (ngx_uint_t) kind;
    }

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = ngx_stream_tunnel_pass_handler;

    return NGX_CONF_OK;
}
