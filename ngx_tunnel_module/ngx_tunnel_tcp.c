
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The public port of a tcp tunnel.  Only the worker that owns the session
 * listens on it, so its connections need no handoff.  The listener is not in
 * cycle->listening: nginx would close it at the start of a shutdown and
 * toggle it with the accept mutex; its accept handler is our own, because
 * ngx_event_accept() on EMFILE disables only the cycle's listeners and
 * would leave this one spinning.
 *
 * When a client moves to a new session (nginx reloads), the port moves with
 * it: the old session keeps listening until the client has bound the port
 * anew, then hands the listening socket itself to the new session's worker
 * (SCM_RIGHTS, ngx_tunnel_handoff.c), so that no connection is refused and
 * none waiting in its backlog is lost.  The new session waits for it, and
 * binds the port itself once it is free if it never comes.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel_session.h"


#define NGX_TUNNEL_ACCEPTS        64        /* per event */
#define NGX_TUNNEL_ACCEPT_RETRY   1000      /* ms after EMFILE */
#define NGX_TUNNEL_BIND_RETRY     50        /* ms, waiting for the socket */
#define NGX_TUNNEL_BIND_SLOW      1000      /*   after NGX_TUNNEL_BIND_WAIT */
#define NGX_TUNNEL_BIND_WAIT      5000


static ngx_socket_t ngx_tunnel_tcp_socket(ngx_tunnel_listener_t *ls,
    ngx_log_t *log, ngx_err_t *err);
static ngx_int_t ngx_tunnel_tcp_install(ngx_tunnel_listener_t *ls,
    ngx_socket_t fd, ngx_log_t *log);
static ngx_int_t ngx_tunnel_tcp_pass(ngx_shm_zone_t *zone, in_port_t port,
    ngx_socket_t fd, uint64_t from, ngx_log_t *log);
static void ngx_tunnel_tcp_bind_again(ngx_event_t *ev);
static void ngx_tunnel_tcp_accept(ngx_event_t *ev);
static void ngx_tunnel_tcp_retry(ngx_event_t *ev);
static void ngx_tunnel_tcp_connection(ngx_tunnel_listener_t *ls,
    ngx_socket_t fd, ngx_sockaddr_t *sa, socklen_t socklen);


ngx_int_t
ngx_tunnel_tcp_listen(ngx_tunnel_tunnel_t *t)
{
    ngx_err_t               err;
    ngx_log_t              *log;
    ngx_socket_t            fd;
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

    fd = ngx_tunnel_tcp_socket(ls, log, &err);

    if (fd == (ngx_socket_t) -1) {
        return (err == NGX_EADDRINUSE) ? NGX_BUSY : NGX_ERROR;
    }

    if (ngx_tunnel_tcp_install(ls, fd, log) != NGX_OK) {
        return NGX_ERROR;
    }

    t->listener = ls;

    return NGX_OK;
}


ngx_int_t
ngx_tunnel_tcp_wait(ngx_tunnel_tunnel_t *t)
{
    ngx_log_t              *log;
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
    ls->waiting = ngx_current_msec;

    ls->retry.handler = ngx_tunnel_tcp_bind_again;
    ls->retry.data = ls;
    ls->retry.log = log;
    ls->retry.cancelable = 1;

    t->listener = ls;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, log, 0,
                   "tunnel: waiting for the socket of port %d",
                   (int) t->port);

    ngx_add_timer(&ls->retry, NGX_TUNNEL_BIND_RETRY);

    return NGX_OK;
}


/* a new listening socket, or -1 and "err" */
static ngx_socket_t
ngx_tunnel_tcp_socket(ngx_tunnel_listener_t *ls, ngx_log_t *log,
    ngx_err_t *err)
{
    int           reuse;
    in_port_t     port;
    ngx_socket_t  fd;

    port = ls->tunnel->port;

    fd = socket(ls->sockaddr.sockaddr.sa_family,
                SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (fd == (ngx_socket_t) -1) {
        *err = ngx_socket_errno;
        ngx_log_error(NGX_LOG_ERR, log, *err,
                      "tunnel: socket() for port %d failed", (int) port);
        return fd;
    }

    reuse = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, (const void *) &reuse,
                   sizeof(int))
        == -1)
    {
        *err = ngx_socket_errno;
        ngx_log_error(NGX_LOG_ERR, log, *err,
                      "tunnel: setsockopt(SO_REUSEADDR) failed");
        ngx_close_socket(fd);
        return (ngx_socket_t) -1;
    }

    if (bind(fd, &ls->sockaddr.sockaddr, ls->socklen) == -1
        || listen(fd, NGX_LISTEN_BACKLOG) == -1)
    {
        *err = ngx_socket_errno;
        ngx_close_socket(fd);

        if (*err != NGX_EADDRINUSE) {
            ngx_log_error(NGX_LOG_ERR, log, *err,
                          "tunnel: cannot listen on port %d%s", (int) port,
                          *err == NGX_EACCES ? " (ports below 1024 need "
                                               "root; workers are not)"
                                             : "");
        }

        return (ngx_socket_t) -1;
    }

    return fd;
}


static ngx_int_t
ngx_tunnel_tcp_install(ngx_tunnel_listener_t *ls, ngx_socket_t fd,
    ngx_log_t *log)
{
    ngx_connection_t  *lc;

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

    return NGX_OK;
}


void
ngx_tunnel_tcp_close(ngx_tunnel_tunnel_t *t)
{
    ngx_connection_t       *lc;
    ngx_tunnel_listener_t  *ls;

    ls = t->listener;
    if (ls == NULL) {
        return;
    }

    if (ls->retry.timer_set) {
        ngx_del_timer(&ls->retry);
    }

    t->listener = NULL;
    lc = ls->connection;

    if (lc == NULL) {
        return;
    }

    if (ngx_tunnel_tcp_pass(t->session->zone, t->port, lc->fd, t->session->id,
                            t->session->connection->log)
        == NGX_OK)
    {
        /*
         * The socket lives on in another worker (or another connection
         * here): it must leave our epoll, which closing our descriptor
         * would not do.
         */
        if (lc->read->active) {
            (void) ngx_del_event(lc->read, NGX_READ_EVENT, 0);
        }
    }

    ngx_close_connection(lc);

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, t->session->connection->log, 0,
                   "tunnel: closed port %d", (int) t->port);
}


/*
 * The socket of a port goes to the session that owns the port now, one its
 * client has moved to (not "from", the session it leaves): NGX_DECLINED if
 * there is none.
 */
static ngx_int_t
ngx_tunnel_tcp_pass(ngx_shm_zone_t *zone, in_port_t port, ngx_socket_t fd,
    uint64_t from, ngx_log_t *log)
{
    ngx_int_t              rc;
    ngx_socket_t           dup;
    ngx_tunnel_route_t     route;
    ngx_tunnel_handoff_t   h;

    if (zone == NULL
        || ngx_tunnel_registry_route(zone, TUNNEL_KIND_TCP, NULL, port,
                                     &route)
           != NGX_OK
        || route.session_id == from)
    {
        return NGX_DECLINED;
    }

    ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
    h.kind = NGX_TUNNEL_HANDOFF_LISTENER;
    h.session_id = route.session_id;
    h.tunnel_id = route.tunnel_id;

    if (route.pid == ngx_pid) {
        dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup == -1) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "tunnel: dup() of port %d failed", (int) port);
            return NGX_ERROR;
        }

        ngx_tunnel_tcp_adopt(&h, dup, log);
        rc = NGX_OK;

    } else {
        rc = ngx_tunnel_handoff_send(route.pid, fd, &h, log);
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "tunnel: port %d handed over to session %016xL",
                      (int) port, route.session_id);
    }

    return rc;
}


/* the socket of a port, from the session its client has moved from */
void
ngx_tunnel_tcp_adopt(ngx_tunnel_handoff_t *h, ngx_socket_t fd,
    ngx_log_t *log)
{
    socklen_t               len;
    in_port_t               port;
    ngx_sockaddr_t          sa;
    ngx_tunnel_tunnel_t    *t;
    ngx_tunnel_session_t   *ts;
    ngx_tunnel_listener_t  *ls;

    len = sizeof(ngx_sockaddr_t);

    if (getsockname(fd, &sa.sockaddr, &len) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_socket_errno,
                      "tunnel: getsockname() of a port's socket failed");
        ngx_close_socket(fd);
        return;
    }

    port = ngx_inet_get_port(&sa.sockaddr);

    t = NULL;
    ts = ngx_tunnel_session_find(h->session_id);

    if (ts && !ts->closing) {
        t = ngx_tunnel_session_tunnel(ts, h->tunnel_id);
    }

    if (t == NULL
        || t->listener == NULL
        || t->listener->connection
        || t->port != port)
    {
        /*
         * The client moved on while the socket was on its way: it bound the
         * port in yet another session and left this one.  That session
         * gets it, or the connections in its backlog would be reset.
         */
        if (ngx_tunnel_tcp_pass(ngx_tunnel_zone(), port, fd, h->session_id,
                                log)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "tunnel: the socket of port %d came for tunnel "
                          "%uD of session %016xL, which does not wait for "
                          "it", (int) port, h->tunnel_id, h->session_id);
        }

        ngx_close_socket(fd);
        return;
    }

    ls = t->listener;
    log = ts->connection->log;

    if (ls->retry.timer_set) {
        ngx_del_timer(&ls->retry);
    }

    if (ngx_tunnel_tcp_install(ls, fd, log) != NGX_OK) {
        /* bind it once it is free */
        ngx_add_timer(&ls->retry, NGX_TUNNEL_BIND_RETRY);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "tunnel: session %016xL listens on port %d, handed over "
                  "after %M ms", ts->id, (int) t->port,
                  ngx_current_msec - ls->waiting);
}


/* no socket came yet: the port may be free by now */
static void
ngx_tunnel_tcp_bind_again(ngx_event_t *ev)
{
    ngx_err_t               err;
    ngx_msec_t              waited;
    ngx_socket_t            fd;
    ngx_tunnel_tunnel_t    *t;
    ngx_tunnel_listener_t  *ls;

    ls = ev->data;
    t = ls->tunnel;
    waited = ngx_current_msec - ls->waiting;

    fd = ngx_tunnel_tcp_socket(ls, ev->log, &err);

    if (fd != (ngx_socket_t) -1) {
        if (ngx_tunnel_tcp_install(ls, fd, ev->log) == NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "tunnel: session %016xL listens on port %d, "
                          "free again after %M ms", t->session->id,
                          (int) t->port, waited);
            return;
        }
    }

    if (waited < NGX_TUNNEL_BIND_WAIT) {
        ngx_add_timer(ev, NGX_TUNNEL_BIND_RETRY);
        return;
    }

    if (waited < NGX_TUNNEL_BIND_WAIT + NGX_TUNNEL_BIND_SLOW) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "tunnel: port %d is still held (by a worker that "
                      "quits, or by another program), trying every second",
                      (int) t->port);
    }

    ngx_add_timer(ev, NGX_TUNNEL_BIND_SLOW);
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
