
/*
 * Copyright (C) ngx_tunnel developers
 *
 * Passing a public connection to the worker that owns its tunnel.
 *
 * Each worker listens on a unix SOCK_SEQPACKET socket with the Linux
 * abstract name "\0ngx_tunnel.<pid>": no file to clean up after a crash, no
 * permissions to set, no clash between nginx instances.  One message is one
 * connection: a header, the server name, the bytes already read, and the
 * descriptor itself (SCM_RIGHTS).  nginx's own channel cannot carry this: it
 * takes descriptors only for its own commands (NGINX-NOTES.md §2).
 *
 * The sockets are not in cycle->listening, so a quitting worker keeps
 * receiving connections for the sessions it still drains, and they are
 * marked "channel" so that nginx does not count them as open connections
 * when the worker exits.  Any local user could connect to an abstract name:
 * peers must run as our own user.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_tunnel.h"


#define NGX_TUNNEL_HANDOFF_MAGIC    0x4e544831      /* "NTH1" */
#define NGX_TUNNEL_HANDOFF_PREREAD  (64 * 1024)
#define NGX_TUNNEL_HANDOFF_NAME     256
#define NGX_TUNNEL_HANDOFF_PEERS    64
#define NGX_TUNNEL_HANDOFF_QUEUE    1024            /* per peer */


typedef struct {
    uint32_t                  magic;
    uint32_t                  kind;
    uint64_t                  session_id;
    uint32_t                  tunnel_id;
    uint32_t                  peer_len;
    uint32_t                  name_len;
    uint32_t                  preread_len;
    ngx_sockaddr_t            peer;
} ngx_tunnel_handoff_hdr_t;


#define NGX_TUNNEL_HANDOFF_MAX                                               \
    (sizeof(ngx_tunnel_handoff_hdr_t) + NGX_TUNNEL_HANDOFF_NAME              \
     + NGX_TUNNEL_HANDOFF_PREREAD)


/* a message that found the receiver's queue full, with its own fd */
typedef struct {
    ngx_queue_t               queue;
    ngx_socket_t              fd;
    size_t                    len;
    u_char                    data[1];
} ngx_tunnel_handoff_pending_t;


/* a connected socket to another worker */
typedef struct {
    ngx_pid_t                 pid;
    ngx_connection_t         *connection;
    ngx_queue_t               pending;
    ngx_uint_t                npending;
} ngx_tunnel_handoff_peer_t;


typedef struct {
    ngx_tunnel_handoff_pt     handler;
    ngx_connection_t         *listener;
    u_char                   *buf;          /* one received message */
    ngx_tunnel_handoff_peer_t peers[NGX_TUNNEL_HANDOFF_PEERS];
} ngx_tunnel_handoff_ctx_t;


static ngx_int_t ngx_tunnel_handoff_address(ngx_pid_t pid,
    struct sockaddr_un *sa, socklen_t *len);
static ngx_connection_t *ngx_tunnel_handoff_connection(ngx_socket_t fd,
    ngx_event_handler_pt read, ngx_log_t *log);
static void ngx_tunnel_handoff_accept(ngx_event_t *ev);
static void ngx_tunnel_handoff_read(ngx_event_t *ev);
static ngx_int_t ngx_tunnel_handoff_receive(ngx_connection_t *c);
static ngx_tunnel_handoff_peer_t *ngx_tunnel_handoff_peer(ngx_pid_t pid,
    ngx_log_t *log);
static ssize_t ngx_tunnel_handoff_sendmsg(ngx_socket_t s, u_char *data,
    size_t len, ngx_socket_t fd);
static void ngx_tunnel_handoff_write(ngx_event_t *ev);
static void ngx_tunnel_handoff_drop(ngx_tunnel_handoff_peer_t *peer);
static void ngx_tunnel_handoff_peer_read(ngx_event_t *ev);


static ngx_tunnel_handoff_ctx_t  *ngx_tunnel_handoff_ctx;


ngx_int_t
ngx_tunnel_handoff_init(ngx_cycle_t *cycle, ngx_tunnel_handoff_pt handler)
{
    socklen_t                  len;
    ngx_socket_t               fd;
    struct sockaddr_un         sa;
    ngx_tunnel_handoff_ctx_t  *ctx;

    ctx = ngx_pcalloc(cycle->pool, sizeof(ngx_tunnel_handoff_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->handler = handler;

    ctx->buf = ngx_palloc(cycle->pool, NGX_TUNNEL_HANDOFF_MAX);
    if (ctx->buf == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_tunnel_handoff_address(ngx_pid, &sa, &len);

    fd = socket(AF_UNIX, SOCK_SEQPACKET|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "tunnel: socket() for the worker handoff failed");
        return NGX_ERROR;
    }

    if (bind(fd, (struct sockaddr *) &sa, len) == -1
        || listen(fd, NGX_LISTEN_BACKLOG) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "tunnel: cannot listen on \"@%s\" for the worker "
                      "handoff", sa.sun_path + 1);
        ngx_close_socket(fd);
        return NGX_ERROR;
    }

    ctx->listener = ngx_tunnel_handoff_connection(fd,
                                                  ngx_tunnel_handoff_accept,
                                                  cycle->log);
    if (ctx->listener == NULL) {
        return NGX_ERROR;
    }

    ngx_tunnel_handoff_ctx = ctx;

    return NGX_OK;
}


void
ngx_tunnel_handoff_exit(ngx_cycle_t *cycle)
{
    ngx_uint_t                 i;
    ngx_tunnel_handoff_ctx_t  *ctx;

    ctx = ngx_tunnel_handoff_ctx;
    if (ctx == NULL) {
        return;
    }

    for (i = 0; i < NGX_TUNNEL_HANDOFF_PEERS; i++) {
        if (ctx->peers[i].connection) {
            ngx_tunnel_handoff_drop(&ctx->peers[i]);
        }
    }

    ngx_close_connection(ctx->listener);
    ngx_tunnel_handoff_ctx = NULL;
}


static ngx_int_t
ngx_tunnel_handoff_address(ngx_pid_t pid, struct sockaddr_un *sa,
    socklen_t *len)
{
    u_char  *p;

    ngx_memzero(sa, sizeof(struct sockaddr_un));
    sa->sun_family = AF_UNIX;

    /* abstract: a leading NUL, and the length counts exactly the name */
    p = ngx_snprintf((u_char *) sa->sun_path + 1,
                     sizeof(sa->sun_path) - 2, "ngx_tunnel.%P", pid);

    *len = offsetof(struct sockaddr_un, sun_path) + (p - (u_char *)
                                                     sa->sun_path);

    return NGX_OK;
}


/* a unix socket of ours on the event loop, exempt from shutdown checks */
static ngx_connection_t *
ngx_tunnel_handoff_connection(ngx_socket_t fd, ngx_event_handler_pt read,
    ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        ngx_close_socket(fd);
        return NULL;
    }

    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->channel = 1;
    c->write->channel = 1;
    c->read->handler = read;
    c->write->handler = ngx_tunnel_handoff_write;

    if (read && ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NULL;
    }

    return c;
}


static void
ngx_tunnel_handoff_accept(ngx_event_t *ev)
{
    socklen_t          len;
    ngx_socket_t       fd;
    struct ucred       cred;
    ngx_connection_t  *lc;

    lc = ev->data;

    for ( ;; ) {
        fd = accept4(lc->fd, NULL, NULL, SOCK_NONBLOCK|SOCK_CLOEXEC);

        if (fd == (ngx_socket_t) -1) {
            if (ngx_socket_errno != NGX_EAGAIN) {
                ngx_log_error(NGX_LOG_ERR, ev->log, ngx_socket_errno,
                              "tunnel: accept4() on the worker handoff "
                              "socket failed");
            }

            return;
        }

        len = sizeof(struct ucred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1
            || cred.uid != geteuid())
        {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "tunnel: refused a handoff connection from pid %P "
                          "(uid %d): not an nginx worker of ours",
                          (ngx_pid_t) cred.pid, (int) cred.uid);
            ngx_close_socket(fd);
            continue;
        }

        (void) ngx_tunnel_handoff_connection(fd, ngx_tunnel_handoff_read,
                                             ev->log);
    }
}


static void
ngx_tunnel_handoff_read(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    for ( ;; ) {
        switch (ngx_tunnel_handoff_receive(c)) {

        case NGX_AGAIN:
            return;

        case NGX_DONE:
            ngx_close_connection(c);
            return;

        default:
            continue;
        }
    }
}


/* one message: NGX_OK, NGX_AGAIN when none is there, NGX_DONE at the end */
static ngx_int_t
ngx_tunnel_handoff_receive(ngx_connection_t *c)
{
    int                        *fds;
    size_t                      nfds;
    ssize_t                     n;
    ngx_err_t                   err;
    ngx_socket_t                fd;
    struct iovec                iov;
    struct msghdr               msg;
    struct cmsghdr             *cmsg;
    ngx_tunnel_handoff_t        h;
    ngx_tunnel_handoff_ctx_t   *ctx;
    ngx_tunnel_handoff_hdr_t    hdr;

    union {
        struct cmsghdr          cm;
        char                    space[CMSG_SPACE(4 * sizeof(int))];
    } cmsgbuf;

    ctx = ngx_tunnel_handoff_ctx;

    iov.iov_base = ctx->buf;
    iov.iov_len = NGX_TUNNEL_HANDOFF_MAX;

    ngx_memzero(&msg, sizeof(struct msghdr));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &cmsgbuf;
    msg.msg_controllen = sizeof(cmsgbuf);

    n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);

    if (n == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN || err == NGX_EINTR) {
            return NGX_AGAIN;
        }

        ngx_log_error(NGX_LOG_ERR, c->log, err,
                      "tunnel: recvmsg() on the worker handoff failed");
        return NGX_DONE;
    }

    if (n == 0) {
        return NGX_DONE;
    }

    fd = (ngx_socket_t) -1;
    nfds = 0;

    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET
            && cmsg->cmsg_type == SCM_RIGHTS)
        {
            fds = (int *) CMSG_DATA(cmsg);
            nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            /* keep the first, close any other: never leak one */
            while (nfds--) {
                if (fd == (ngx_socket_t) -1) {
                    fd = fds[nfds];

                } else {
                    ngx_close_socket(fds[nfds]);
                }
            }
        }
    }

    ngx_memcpy(&hdr, ctx->buf, ngx_min((size_t) n, sizeof(hdr)));

    if (fd == (ngx_socket_t) -1
        || (msg.msg_flags & (MSG_TRUNC|MSG_CTRUNC))
        || (size_t) n < sizeof(hdr)
        || hdr.magic != NGX_TUNNEL_HANDOFF_MAGIC
        || hdr.peer_len > sizeof(ngx_sockaddr_t)
        || hdr.name_len > NGX_TUNNEL_HANDOFF_NAME
        || hdr.preread_len > NGX_TUNNEL_HANDOFF_PREREAD
        || (size_t) n != sizeof(hdr) + hdr.name_len + hdr.preread_len)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "tunnel: malformed message on the worker handoff "
                      "(%z bytes, fd %d), dropped", n, fd);

        if (fd != (ngx_socket_t) -1) {
            ngx_close_socket(fd);
        }

        return NGX_OK;
    }

    ngx_memzero(&h, sizeof(ngx_tunnel_handoff_t));
    h.kind = hdr.kind;
    h.session_id = hdr.session_id;
    h.tunnel_id = hdr.tunnel_id;
    h.peer = hdr.peer;
    h.peer_len = hdr.peer_len;
    h.server_name.data = ctx->buf + sizeof(hdr);
    h.server_name.len = hdr.name_len;
    h.preread.data = h.server_name.data + hdr.name_len;
    h.preread.len = hdr.preread_len;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "tunnel handoff: received fd %d for session %016xL, "
                   "%uz bytes preread", fd, h.session_id, h.preread.len);

    ctx->handler((ngx_cycle_t *) ngx_cycle, &h, fd);

    return NGX_OK;
}


ngx_int_t
ngx_tunnel_handoff_send(ngx_pid_t pid, ngx_socket_t fd,
    ngx_tunnel_handoff_t *h, ngx_log_t *log)
{
    u_char                        *p;
    size_t                         len;
    ssize_t                        n;
    ngx_err_t                      err;
    ngx_tunnel_handoff_hdr_t       hdr;
    ngx_tunnel_handoff_peer_t     *peer;
    ngx_tunnel_handoff_pending_t  *pm;
    u_char                         buf[NGX_TUNNEL_HANDOFF_MAX];

    if (ngx_tunnel_handoff_ctx == NULL
        || h->server_name.len > NGX_TUNNEL_HANDOFF_NAME
        || h->preread.len > NGX_TUNNEL_HANDOFF_PREREAD)
    {
        return NGX_ERROR;
    }

    peer = ngx_tunnel_handoff_peer(pid, log);
    if (peer == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&hdr, sizeof(hdr));
    hdr.magic = NGX_TUNNEL_HANDOFF_MAGIC;
    hdr.kind = (uint32_t) h->kind;
    hdr.session_id = h->session_id;
    hdr.tunnel_id = h->tunnel_id;
    hdr.peer_len = h->peer_len;
    hdr.name_len = (uint32_t) h->server_name.len;
    hdr.preread_len = (uint32_t) h->preread.len;
    hdr.peer = h->peer;

    p = ngx_cpymem(buf, &hdr, sizeof(hdr));

    /* a socketpair from a balancer brings no preread bytes (data NULL) */
    if (h->server_name.len) {
        p = ngx_cpymem(p, h->server_name.data, h->server_name.len);
    }

    if (h->preread.len) {
        p = ngx_cpymem(p, h->preread.data, h->preread.len);
    }

    len = p - buf;

    n = -1;
    err = NGX_EAGAIN;

    /* keep the order: nothing overtakes what waits already */
    if (ngx_queue_empty(&peer->pending)) {
        n = ngx_tunnel_handoff_sendmsg(peer->connection->fd, buf, len, fd);
        err = ngx_socket_errno;
    }

    if (n == (ssize_t) len) {
        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, log, 0,
                       "tunnel handoff: sent fd %d to %P, %uz bytes "
                       "preread", fd, pid, h->preread.len);
        return NGX_OK;
    }

    if (n == -1 && err != NGX_EAGAIN) {
        ngx_log_error(NGX_LOG_INFO, log, err,
                      "tunnel: worker %P does not take connections, "
                      "it has probably exited", pid);
        ngx_tunnel_handoff_drop(peer);
        return NGX_DECLINED;
    }

    /* the receiver's queue is full: keep a copy of the message and of
     * the descriptor, and send it when the socket is writable */

    if (peer->npending >= NGX_TUNNEL_HANDOFF_QUEUE) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "tunnel: worker %P is not taking connections fast "
                      "enough (%ui waiting), connection dropped", pid,
                      peer->npending);
        return NGX_ERROR;
    }

    pm = ngx_alloc(sizeof(ngx_tunnel_handoff_pending_t) + len, log);
    if (pm == NULL) {
        return NGX_ERROR;
    }

    pm->fd = dup(fd);
    if (pm->fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "tunnel: dup() failed");
        ngx_free(pm);
        return NGX_ERROR;
    }

    pm->len = len;
    ngx_memcpy(pm->data, buf, len);

    ngx_queue_insert_tail(&peer->pending, &pm->queue);
    peer->npending++;

    if (ngx_handle_write_event(peer->connection->write, 0) != NGX_OK) {
        ngx_tunnel_handoff_drop(peer);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ssize_t
ngx_tunnel_handoff_sendmsg(ngx_socket_t s, u_char *data, size_t len,
    ngx_socket_t fd)
{
    struct iovec     iov;
    struct msghdr    msg;
    struct cmsghdr  *cmsg;

    union {
        struct cmsghdr  cm;
        char            space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    iov.iov_base = data;
    iov.iov_len = len;

    ngx_memzero(&msg, sizeof(struct msghdr));
    ngx_memzero(&cmsgbuf, sizeof(cmsgbuf));

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = &cmsgbuf;
    msg.msg_controllen = sizeof(cmsgbuf);

    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    ngx_memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

    return sendmsg(s, &msg, MSG_NOSIGNAL|MSG_DONTWAIT);
}


/* the connected socket to "pid", made on first use */
static ngx_tunnel_handoff_peer_t *
ngx_tunnel_handoff_peer(ngx_pid_t pid, ngx_log_t *log)
{
    socklen_t                   len;
    ngx_uint_t                  i;
    ngx_socket_t                s;
    struct sockaddr_un          sa;
    ngx_tunnel_handoff_ctx_t   *ctx;
    ngx_tunnel_handoff_peer_t  *peer, *empty;

    ctx = ngx_tunnel_handoff_ctx;
    empty = NULL;

    for (i = 0; i < NGX_TUNNEL_HANDOFF_PEERS; i++) {
        peer = &ctx->peers[i];

        if (peer->connection == NULL) {
            if (empty == NULL) {
                empty = peer;
            }

            continue;
        }

        if (peer->pid == pid) {
            return peer;
        }
    }

    if (empty == NULL) {
        /* more workers than places: make room, the others reconnect */
        empty = &ctx->peers[pid % NGX_TUNNEL_HANDOFF_PEERS];
        ngx_tunnel_handoff_drop(empty);
    }

    s = socket(AF_UNIX, SOCK_SEQPACKET|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      "tunnel: socket() for the worker handoff failed");
        return NULL;
    }

    (void) ngx_tunnel_handoff_address(pid, &sa, &len);

    if (connect(s, (struct sockaddr *) &sa, len) == -1) {
        ngx_log_error(NGX_LOG_INFO, log, ngx_socket_errno,
                      "tunnel: cannot reach worker %P, it has probably "
                      "exited", pid);
        ngx_close_socket(s);
        return NULL;
    }

    /* read events only tell us that the other worker went away */
    empty->connection = ngx_tunnel_handoff_connection(s,
                                             ngx_tunnel_handoff_peer_read,
                                             ngx_cycle->log);
    if (empty->connection == NULL) {
        return NULL;
    }

    empty->connection->data = empty;
    empty->pid = pid;
    empty->npending = 0;
    ngx_queue_init(&empty->pending);

    return empty;
}


static void
ngx_tunnel_handoff_write(ngx_event_t *ev)
{
    ssize_t                        n;
    ngx_err_t                      err;
    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_tunnel_handoff_peer_t     *peer;
    ngx_tunnel_handoff_pending_t  *pm;

    c = ev->data;
    peer = c->data;

    while (!ngx_queue_empty(&peer->pending)) {
        q = ngx_queue_head(&peer->pending);
        pm = ngx_queue_data(q, ngx_tunnel_handoff_pending_t, queue);

        n = ngx_tunnel_handoff_sendmsg(c->fd, pm->data, pm->len, pm->fd);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN) {
                (void) ngx_handle_write_event(ev, 0);
                return;
            }

            ngx_log_error(NGX_LOG_INFO, c->log, err,
                          "tunnel: worker %P went away with %ui "
                          "connections waiting for it", peer->pid,
                          peer->npending);
            ngx_tunnel_handoff_drop(peer);
            return;
        }

        ngx_queue_remove(q);
        peer->npending--;
        ngx_close_socket(pm->fd);
        ngx_free(pm);
    }
}


static void
ngx_tunnel_handoff_peer_read(ngx_event_t *ev)
{
    char                        b;
    ssize_t                     n;
    ngx_connection_t           *c;

    c = ev->data;

    n = recv(c->fd, &b, 1, MSG_DONTWAIT);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        return;
    }

    /* the receiver never writes: this is its end */
    ngx_tunnel_handoff_drop(c->data);
}


static void
ngx_tunnel_handoff_drop(ngx_tunnel_handoff_peer_t *peer)
{
    ngx_queue_t                   *q;
    ngx_tunnel_handoff_pending_t  *pm;

    if (peer->connection == NULL) {
        return;
    }

    while (!ngx_queue_empty(&peer->pending)) {
        q = ngx_queue_head(&peer->pending);
        ngx_queue_remove(q);
        pm = ngx_queue_data(q, ngx_tunnel_handoff_pending_t, queue);
        ngx_close_socket(pm->fd);
        ngx_free(pm);
    }

    peer->npending = 0;

    ngx_close_connection(peer->connection);
    peer->connection = NULL;
}
