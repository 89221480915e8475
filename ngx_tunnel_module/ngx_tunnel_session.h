
/*
 * Copyright (C) ngx_tunnel developers
 *
 * The registration session and the bridges it carries: private to
 * ngx_tunnel_session.c, ngx_tunnel_bridge.c and ngx_tunnel_tcp.c.
 */


#ifndef _NGX_TUNNEL_SESSION_H_INCLUDED_
#define _NGX_TUNNEL_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_stream.h>

#include "ngx_tunnel.h"


#define NGX_TUNNEL_CHUNK_SIZE     (64 * 1024)


extern ngx_module_t  ngx_stream_tunnel_module;


/* the registration server's configuration (a stream server) */
typedef struct {
    ngx_flag_t                    server;
    ngx_array_t                  *tokens;
    ngx_str_t                     tokens_file;
    ngx_str_t                     domain;
    in_port_t                     port_min;
    in_port_t                     port_max;
    ngx_addr_t                   *tcp_addr;     /* tcp tunnels listen here */
    ngx_str_t                     urls[TUNNEL_KIND_TCP + 1];
    ngx_msec_t                    handshake_timeout;
    ngx_msec_t                    heartbeat;
    ngx_msec_t                    drain_timeout;
    ngx_msec_t                    reconnect_grace;
    ngx_msec_t                    idle_timeout; /* of public connections */
    size_t                        window;
    size_t                        window_max;   /* auto-tuning bound */
    ngx_uint_t                    max_streams;

    ngx_stream_complex_value_t   *pass;         /* tunnel_pass */
    ngx_uint_t                    pass_kind;

    ngx_stream_complex_value_t   *route;        /* tunnel_route, upstream */
    ngx_uint_t                    route_kind;
} ngx_stream_tunnel_srv_conf_t;


typedef struct {
    ngx_shm_zone_t               *zone;
} ngx_stream_tunnel_main_conf_t;


typedef struct ngx_tunnel_tunnel_s  ngx_tunnel_tunnel_t;


/* the local side of a tcp tunnel's public port */
typedef struct {
    ngx_connection_t             *connection;   /* NULL: waiting for it */
    ngx_tunnel_tunnel_t          *tunnel;
    ngx_event_t                   retry;        /* re-arm after EMFILE, or
                                                   bind again */
    ngx_msec_t                    waiting;      /* since, for the socket */
    ngx_sockaddr_t                sockaddr;
    socklen_t                     socklen;
} ngx_tunnel_listener_t;


/* a bind of this session, as this worker knows it */
struct ngx_tunnel_tunnel_s {
    ngx_queue_t                   queue;        /* session->tunnels */
    ngx_pool_t                   *pool;         /* its own: freed on unbind */
    ngx_tunnel_session_t         *session;
    ngx_tunnel_member_t          *member;
    ngx_tunnel_listener_t        *listener;
    uint32_t                      id;
    ngx_uint_t                    kind;
    ngx_str_t                     name;
    in_port_t                     port;
};


typedef struct ngx_tunnel_stream_s  ngx_tunnel_stream_t;


/*
 * What a stream's events do: a bridge relays them to a socket
 * (ngx_tunnel_bridge.c), a peer hands them to nginx's upstream in this
 * worker (ngx_tunnel_peer.c).
 */
typedef struct {
    void                        (*data)(ngx_tunnel_stream_t *bs,
                                        const u_char *p, size_t n);
    void                        (*fin)(ngx_tunnel_stream_t *bs);
    void                        (*writable)(ngx_tunnel_stream_t *bs);
    void                        (*closed)(ngx_tunnel_stream_t *bs,
                                          yamux_close_e how);
    void                        (*abort)(ngx_tunnel_stream_t *bs);
} ngx_tunnel_stream_handler_t;


/* one public connection carried by one yamux stream */
struct ngx_tunnel_stream_s {
    ngx_queue_t                   queue;        /* session->streams */
    const ngx_tunnel_stream_handler_t *handler;
    ngx_tunnel_session_t         *session;
    ngx_tunnel_member_t          *member;
    ngx_connection_t             *connection;   /* the public side */
    void                         *data;         /* connection's data */
    ngx_tunnel_done_pt            done;
    uint32_t                      id;
    ngx_msec_t                    idle;         /* tunnel_idle_timeout, or
                                                   0 (a socketpair) */

    ngx_chain_t                  *out;          /* for the public side */
    ngx_chain_t                 **last_out;
    ngx_chain_t                  *free;         /* links and bufs of out,
                                                   their chunks freed */
    size_t                        buffered;

    u_char                       *preread;      /* not yet queued */
    size_t                        preread_len;

    unsigned                      eof:1;        /* public side sent EOF */
    unsigned                      fin:1;        /* tunnel side sent FIN */
    unsigned                      shut:1;       /* we shut public writes */
    unsigned                      closed:1;     /* yamux stream is gone */
    unsigned                      error:1;      /* peer: reset, aborted */
};


struct ngx_tunnel_session_s {
    ngx_rbtree_node_t             node;         /* key: id */
    ngx_connection_t             *connection;
    ngx_stream_session_t         *stream;
    ngx_stream_tunnel_srv_conf_t *conf;
    ngx_shm_zone_t               *zone;
    yamux_session_t              *mux;
    ngx_tunnel_shm_session_t     *sh;
    ngx_tunnel_token_t           *token;
    uint64_t                      id;

    ngx_queue_t                   streams;
    ngx_queue_t                   tunnels;
    ngx_uint_t                    nstreams;
    uint32_t                      next_tunnel;

    uint32_t                      ctl_id;       /* control stream */
    tunnel_ctl_t                 *ctl;          /* what it says */
    ngx_buf_t                    *stash;        /* input not yet taken */
    ngx_buf_t                     stash_buf;    /* stash points here */

    ngx_event_t                   timer;        /* hello, pings, drain */
    ngx_msec_t                    last_input;

    ngx_msec_t                    flood_start;  /* this second's input: */
    off_t                         flood_received;   /* bytes at its start */
    uint64_t                      flood_payload;    /* of them, data */
    ngx_msec_t                    deadline;     /* drain ends here */

    unsigned                      welcomed:1;
    unsigned                      draining:1;
    unsigned                      closing:1;
    unsigned                      in_input:1;
    unsigned                      lost:1;       /* the connection broke */
};


/* the worker: its sessions and buffers (ngx_tunnel_session.c) */

ngx_int_t ngx_tunnel_worker_init(ngx_cycle_t *cycle, ngx_shm_zone_t *zone);
void ngx_tunnel_worker_exit(ngx_cycle_t *cycle);

/* a NGX_TUNNEL_CHUNK_SIZE buffer from the worker's cache */
void *ngx_tunnel_chunk_alloc(void);
void ngx_tunnel_chunk_free(void *p);

void ngx_tunnel_session_init(ngx_stream_session_t *s);
ngx_tunnel_tunnel_t *ngx_tunnel_session_tunnel(ngx_tunnel_session_t *ts,
    uint32_t id);
void ngx_tunnel_session_flush(ngx_tunnel_session_t *ts);
void ngx_tunnel_session_close(ngx_tunnel_session_t *ts);


/* streams and bridges (ngx_tunnel_bridge.c) */

ngx_connection_t *ngx_tunnel_connection(ngx_socket_t fd, struct sockaddr *sa,
    socklen_t socklen, ngx_log_t *log);
void ngx_tunnel_connection_close(ngx_connection_t *c);

/* a stream of the session's tunnel for "c", allocated in c->pool, its
   header waiting in bs->preread; NULL: refused (logged) */
ngx_tunnel_stream_t *ngx_tunnel_stream_open(ngx_tunnel_session_t *ts,
    uint32_t tunnel_id, ngx_connection_t *c, ngx_tunnel_handoff_t *h);
/* queues what bs->preread holds: NGX_AGAIN while some is left */
ngx_int_t ngx_tunnel_stream_preread(ngx_tunnel_stream_t *bs);
/* keeps "n" bytes in bs->out, in chunks */
ngx_int_t ngx_tunnel_stream_buffer(ngx_tunnel_stream_t *bs, const u_char *p,
    size_t n);
/* the first link of bs->out went out: its chunk back to the cache */
void ngx_tunnel_stream_sent(ngx_tunnel_stream_t *bs);
/* the stream leaves its session and yamux ("reset": with a RST) */
void ngx_tunnel_stream_detach(ngx_tunnel_stream_t *bs, ngx_uint_t reset);
void ngx_tunnel_stream_post_flush(ngx_tunnel_session_t *ts);


/* a stream as nginx's upstream connection (ngx_tunnel_peer.c) */

ngx_int_t ngx_tunnel_peer_init(ngx_cycle_t *cycle);
ngx_connection_t *ngx_tunnel_peer_open(ngx_tunnel_session_t *ts,
    uint32_t tunnel_id, ngx_tunnel_handoff_t *h, ngx_log_t *log);
/* is "c" one: then only ngx_tunnel_peer_close() may close it */
ngx_uint_t ngx_tunnel_peer(ngx_connection_t *c);
/* an idle kept one: may it serve another request? */
ngx_uint_t ngx_tunnel_peer_idle(ngx_connection_t *c);
/* "abort": the response did not end cleanly */
void ngx_tunnel_peer_close(ngx_connection_t *c, ngx_uint_t abort);


/* tunnels as upstream peers (ngx_tunnel_upstream.c) */

ngx_connection_t *ngx_tunnel_socketpair(ngx_socket_t *fd, ngx_log_t *log);
ngx_int_t ngx_tunnel_carry(ngx_tunnel_route_t *route,
    ngx_tunnel_handoff_t *h, ngx_socket_t fd, ngx_log_t *log);
ngx_shm_zone_t *ngx_tunnel_zone(void);
char *ngx_stream_tunnel_route(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* tcp tunnels' public ports (ngx_tunnel_tcp.c) */

/* a listening socket handed over with its port: ngx_tunnel_handoff_t.kind */
#define NGX_TUNNEL_HANDOFF_LISTENER  0x100
/* a flag in ngx_tunnel_handoff_t.kind: the descriptor is a balancer's end
   of a socketpair, not the public client's socket */
#define NGX_TUNNEL_HANDOFF_PAIR      0x200

/* NGX_BUSY: the port is taken by another program */
ngx_int_t ngx_tunnel_tcp_listen(ngx_tunnel_tunnel_t *t);
/* the port's socket is held by a session it moves from: wait for it */
ngx_int_t ngx_tunnel_tcp_wait(ngx_tunnel_tunnel_t *t);
/* closes the port, or hands its socket to the port's new owner */
void ngx_tunnel_tcp_close(ngx_tunnel_tunnel_t *t);
void ngx_tunnel_tcp_adopt(ngx_tunnel_handoff_t *h, ngx_socket_t fd,
    ngx_log_t *log);

#if (NGX_STREAM_SSL)
/* a session's TLS records, gathered: ngx_tunnel_tls.c */
ngx_int_t ngx_tunnel_tls_attach(ngx_connection_t *c);
ngx_int_t ngx_tunnel_tls_flush(ngx_connection_t *c);
size_t ngx_tunnel_tls_pending(ngx_connection_t *c);
void ngx_tunnel_tls_idle(ngx_connection_t *c);
#endif


#endif /* _NGX_TUNNEL_SESSION_H_INCLUDED_ */
