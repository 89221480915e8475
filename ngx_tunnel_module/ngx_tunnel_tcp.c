
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The public port of a tcp tunnel.  Only the worker that owns the session
 * listens on it, so its connections need no handoff.  The listener is not in
 * cycle->listening: nginx would close it at the start of a shutdown and
 * toggle it with the accept mutex; its accept handler is our own, because
 * ngx_event_accept() on EMFILE disables only the cycle's listeners and
 * would leave this one spinning.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#define NGX_TUNNEL_ACCEPTS        64        /* per event */
#define NGX_TUNNEL_ACCEPT_RETRY   1000      /* ms after EMFILE */


static void ngx_tunnel_tcp_accept(ngx_event_t *ev);
static void ngx_tunnel_tcp_retry(ngx_event_t *ev);
static void ngx_tunnel_tcp_connection(ngx_tunnel_listener_t *ls,
    ngx_socket_t fd, ngx_sockaddr_t *sa, socklen_t socklen);


ngx_int_t
ngx_tunnel_tcp_listen(ngx_tunnel_tunnel_t *t)
{
    int                     reuse;
    ngx_err_t               err;
    ngx_log_t              *log;
    ngx_socket_t            fd;
    ngx_connection_t       *lc;
    ngx_tunnel_session_t   *ts;
    ngx_tunnel_listener_t  *ls;

    ts = t->session;
    log = ts->connection->log;

    ls = ngx_pcalloc(t->pool, sizeof(ngx_tunnel_listener_t));
    if (ls == NULL) {
        return NGX_ERROR;
    }

    ls->socklen = ts->conf->tcp_addr->socklen;
    ngx_memcpy(&ls->sockaddr, ts->conf->tcp_addr->sockaddr, ls->socklen);
    ngx_inet_set_port(&ls->sockaddr.sockaddr, t->port);
    ls->tunnel = t;

    fd = socket(ls->sockaddr.sockaddr.sa_family,
                SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      "tunnel: socket() for port %d failed", (int) t->port);
        return NGX_ERROR;
    }

    reuse = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, (const void *) &reuse,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      "tunnel: setsockopt(SO_REUSEADDR) failed");
        ngx_close_socket(fd);
        return NGX_ERROR;
    }

    if (bind(fd, &ls->sockaddr.sockaddr, ls->socklen) == -1
        || listen(fd, NGX_LISTEN_BACKLOG) == -1)
    {
        err = ngx_socket_errno;
        ngx_close_socket(fd);

        if (err == NGX_EADDRINUSE) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "tunnel: port %d is used by another program, "
                          "trying another", (int) t->port);
            return NGX_BUSY;
        }

        ngx_log_error(NGX_LOG_ERR, log, err,
                      "tunnel: cannot listen on port %d%s", (int) t->port,
                      err == NGX_EACCES ? " (ports below 1024 need root; "
                                          "workers are not)" : "");
        return NGX_ERROR;
    }

    lc = ngx_get_connection(fd, log);
    if (lc == NULL) {
        ngx_close_socket(fd);
        return NGX_ERROR;
    }

    lc->data = ls;
    lc->log = log;
    lc->read->log = log;
    lc->read->handler = ngx_tunnel_tcp_accept;

    /* so a quitting worker does not report it as an open socket */
    lc->read->accept = 1;

    if (ngx_add_event(lc->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(lc);
        return NGX_ERROR;
    }

    ls->connection = lc;
    ls->retry.handler = ngx_tunnel_tcp_retry;
    ls->retry.data = ls;
    ls->retry.log = log;
    ls->retry.cancelable = 1;

    t->listener = ls;

    return NGX_OK;
}


void
ngx_tunnel_tcp_close(ngx_tunnel_tunnel_t *t)
{
    ngx_tunnel_listener_t  *ls;

    ls = t->listener;
    if (ls == NULL) {
        return;
    }

    if (ls->retry.timer_set) {
        ngx_del_timer(&ls->retry);
    }

    ngx_close_connection(ls->connection);
    t->listener = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, t->session->connection->log, 0,
                   "tunnel: closed port %d", (int) t->port);
}


static void
ngx_tunnel_tcp_accept(ngx_event_t *ev)
{
    socklen_t               socklen;
    ngx_err_t               err;
    ngx_uint_t              i;
    ngx_socket_t            fd;
    ngx_sockaddr_t          sa;
    ngx_connection_t       *lc;
    ngx_tunnel_listener_t  *ls;

    lc = ev->data;
    ls = lc->data;

    for (i = 0; i < NGX_TUNNEL_ACCEPTS; i++) {

        socklen = sizeof(ngx_sockaddr_t);
        fd = accept4(lc->fd, &sa.sockaddr, &socklen,
                     SOCK_NONBLOCK|SOCK_CLOEXEC);

        if (fd != (ngx_socket_t) -1) {
            ngx_tunnel_tcp_connection(ls, fd, &sa, socklen);
            continue;
        }

        err = ngx_socket_errno;

        if (err == NGX_EAGAIN) {
            return;
        }

        if (err == NGX_ECONNABORTED || err == NGX_EINTR) {
            continue;
        }

        ngx_log_error(NGX_LOG_CRIT, ev->log, err,
                      "tunnel: accept4() on port %d failed",
                      (int) ls->tunnel->port);

        if (err == NGX_EMFILE || err == NGX_ENFILE) {
            /* level-triggered: pause, or it would fire again at once */
            (void) ngx_del_event(lc->read, NGX_READ_EVENT, 0);
            ngx_add_timer(&ls->retry, NGX_TUNNEL_ACCEPT_RETRY);
        }

        return;
    }
}


static void
ngx_tunnel_tcp_retry(ngx_event_t *ev)
{
    ngx_tunnel_listener_t  *ls;

    ls = ev->data;

    if (ngx_add_event(ls->connection->read, NGX_READ_EVENT, 0) != NGX_OK) {
        return;
    }

    ngx_tunnel_tcp_accept(ls->connection->read);
}


static void
ngx_tunnel_tcp_connection(ngx_tunnel_listener_t *ls, ngx_socket_t fd,
    ngx_sockaddr_t *sa, socklen_t socklen)
{
    ngx_connection_t      *c;
    ngx_tunnel_tunnel_t   *t;
    ngx_tunnel_handoff_t   h;

    t = ls->tunnel;

    c = ngx_tunnel_connection(fd, &sa->sockaddr, socklen,
                              ls->connection->log);
    if (c == NULL) {
        return;
    }

    c->local_sockaddr = &ls->sockaddr.sockaddr;
    c->local_socklen = ls->socklen;
    c->log->action = "tunnelling a tcp connection";

    (void) ngx_tcp_nodelay(c);

    ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
    h.kind = TUNNEL_KIND_TCP;
    h.session_id = t->session->id;
    h.tunnel_id = t->id;
    ngx_memcpy(&h.peer, sa, socklen);
    h.peer_len = socklen;

    if (ngx_tunnel_session_connect(t->session, t->id, c, &h, NULL)
        != NGX_OK)
    {
        ngx_tunnel_connection_close(c);
    }
}
