
/*
 * Copyright (C) ngx_tunnel developers
 *
 * What the parts of the module share: tokens, the shared registry, the
 * handoff of connections between workers, and the per-worker session table.
 * The stream module (registration server, tunnel_pass, tcp ports) and the
 * http module (tunnel_route balancer, tunnel_status) both build on it.
 */


#ifndef _NGX_TUNNEL_H_INCLUDED_
#define _NGX_TUNNEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "yamux.h"
#include "tunnel_msg.h"
#include "tunnel_ctl.h"


#define NGX_TUNNEL_VERSION        "0.1.0"

#define NGX_TUNNEL_HASH_LEN       32    /* SHA-256 */
#define NGX_TUNNEL_NAME_MAX       253   /* a DNS name */
#define NGX_TUNNEL_ACCOUNT_MAX    64
#define NGX_TUNNEL_INSTANCE_MAX   64
#define NGX_TUNNEL_ADDR_MAX       NGX_SOCKADDR_STRLEN
#define NGX_TUNNEL_URL_MAX        1024  /* a public URL, as "bound" says */


/* tokens: ngx_tunnel_tokens.c */

#define NGX_TUNNEL_RULE_EXACT     0     /* api.example.com */
#define NGX_TUNNEL_RULE_SUFFIX    1     /* *.example.com: one label or more */
#define NGX_TUNNEL_RULE_REGEX     2     /* ~^api-[a-z]+\.example\.com$ */


typedef struct {
    ngx_uint_t                 type;
    ngx_str_t                  name;    /* exact name, or the suffix with
                                           its leading dot */
    ngx_regex_t               *regex;
} ngx_tunnel_name_rule_t;


typedef struct {
    u_char                     hash[NGX_TUNNEL_HASH_LEN];
    ngx_str_t                  account;     /* id=..., for logs */
    ngx_array_t               *names;       /* ngx_tunnel_name_rule_t; NULL:
                                               names under tunnel_domain */
    in_port_t                  port_min;    /* 0: any tunnel_tcp_ports */
    in_port_t                  port_max;
    ngx_uint_t                 max_tunnels; /* 0: no limit */
    ngx_uint_t                 max_streams; /* 0: no limit */
} ngx_tunnel_token_t;


/*
 * Reads a token file at configuration time (format: README "Tokens").
 * Errors name the file and line through ngx_conf_log_error().  Only the
 * SHA-256 of each token is kept.
 */
ngx_array_t *ngx_tunnel_tokens_read(ngx_conf_t *cf, ngx_str_t *file);

/* constant time in the token and in which entry matches */
ngx_tunnel_token_t *ngx_tunnel_token_find(ngx_array_t *tokens, u_char *p,
    size_t len);

/*
 * What a peer sent, for a log line: bytes other than printable ASCII, '"'
 * and backslash become \xNN.  "buf" has room for 4 bytes per byte of "p";
 * returns the end of what was written.
 */
u_char *ngx_tunnel_escape(u_char *buf, const u_char *p, size_t len);

/*
 * NGX_OK if the token may bind "name" (a full name).  Without name rules
 * a token may bind any name directly under "domain".
 */
ngx_int_t ngx_tunnel_token_allows_name(ngx_tunnel_token_t *t,
    ngx_str_t *name, ngx_str_t *domain);

ngx_int_t ngx_tunnel_token_allows_port(ngx_tunnel_token_t *t,
    in_port_t port);


/* the shared registry: ngx_tunnel_registry.c */

typedef struct ngx_tunnel_member_s  ngx_tunnel_member_t;
typedef struct ngx_tunnel_entry_s   ngx_tunnel_entry_t;


/* one registration connection, as every worker sees it */
typedef struct {
    ngx_queue_t                queue;       /* sh->sessions */
    ngx_queue_t                members;     /* its bindings */
    uint64_t                   id;
    ngx_pid_t                  pid;         /* the owning worker */
    time_t                     since;
    ngx_uint_t                 tunnels;
    ngx_uint_t                 draining;    /* go-away sent */

    /*
     * A session whose connection broke (no go-away) keeps its names and
     * ports for its token until lost_at + grace: its client is
     * reconnecting.  ngx_current_msec is monotonic and the same in every
     * worker.
     */
    ngx_msec_t                 grace;       /* tunnel_reconnect_grace */
    ngx_uint_t                 lost;
    ngx_msec_t                 lost_at;
    time_t                     lost_since;  /* for status */

    ngx_atomic_t               streams;     /* open now */
    ngx_atomic_t               streams_total;
    ngx_atomic_t               bytes_in;    /* from public peers */
    ngx_atomic_t               bytes_out;   /* to public peers */

    u_char                     hash[NGX_TUNNEL_HASH_LEN];  /* token */
    size_t                     account_len;
    u_char                     account[NGX_TUNNEL_ACCOUNT_MAX];
    size_t                     instance_len;
    u_char                     instance[NGX_TUNNEL_INSTANCE_MAX];
    size_t                     addr_len;
    u_char                     addr[NGX_TUNNEL_ADDR_MAX];
    size_t                     client_len;  /* client name and version */
    u_char                     client[NGX_TUNNEL_ACCOUNT_MAX];
} ngx_tunnel_shm_session_t;


/* a name (http, tls) or a port (tcp) and the pool of tunnels serving it */
struct ngx_tunnel_entry_s {
    ngx_rbtree_node_t          node;        /* key: crc32 of kind + name,
                                               or the port */
    ngx_queue_t                members;     /* ngx_tunnel_member_t.link */
    ngx_uint_t                 nmembers;
    ngx_uint_t                 rr;          /* round robin position */
    u_char                     owner[NGX_TUNNEL_HASH_LEN];
    ngx_uint_t                 kind;        /* TUNNEL_KIND_* */
    in_port_t                  port;        /* tcp */
    size_t                     len;
    u_char                     name[1];     /* http, tls */
};


/*
 * A tunnel of a session.  It belongs to its session: only the owning worker
 * frees it (or the reaper, once that worker is dead), so the owner may keep
 * a pointer to it.  "entry" is NULL once another session of the same client
 * instance took the name over.
 */
struct ngx_tunnel_member_s {
    ngx_queue_t                link;        /* entry->members */
    ngx_queue_t                session_link;/* session->members */
    ngx_tunnel_entry_t        *entry;
    ngx_tunnel_shm_session_t  *session;
    uint32_t                   tunnel_id;
    ngx_uint_t                 kind;
    time_t                     since;

    ngx_atomic_t               conns;       /* open now */
    ngx_atomic_t               conns_total;
    ngx_atomic_t               bytes_in;
    ngx_atomic_t               bytes_out;

    u_char                    *url;         /* as "bound" told it, or
                                               NULL; slab memory */
    size_t                     url_len;

    in_port_t                  port;        /* tcp */
    size_t                     len;         /* http, tls: the name, kept */
    u_char                     name[1];     /* for status once replaced */
};


typedef struct {
    ngx_rbtree_t               names;
    ngx_rbtree_node_t          names_sentinel;
    ngx_rbtree_t               ports;
    ngx_rbtree_node_t          ports_sentinel;
    ngx_queue_t                sessions;
    ngx_uint_t                 nsessions;
    in_port_t                  port_cursor; /* next port to try */
    uint64_t                   next_session; /* under the mutex */
} ngx_tunnel_registry_sh_t;


typedef struct {
    ngx_tunnel_registry_sh_t  *sh;
    ngx_slab_pool_t           *shpool;
} ngx_tunnel_registry_t;


/* where a public connection should go */
typedef struct {
    ngx_pid_t                  pid;
    uint64_t                   session_id;
    uint32_t                   tunnel_id;
    ngx_uint_t                 kind;
    ngx_uint_t                 nmembers;    /* the pool's size */
    ngx_tunnel_member_t       *member;      /* only the owner may use it */
    ngx_msec_t                 lost;        /* NGX_AGAIN: ms since its
                                               client lost its connection */
    ngx_msec_t                 grace_left;  /*   and ms of grace left */
    size_t                     addr_len;    /* the tunnel client's address */
    u_char                     addr[NGX_TUNNEL_ADDR_MAX];
} ngx_tunnel_route_t;


/* what a session tells the registry about itself when it says welcome */
typedef struct {
    u_char                    *hash;        /* token */
    ngx_str_t                  account;
    ngx_str_t                  instance;
    ngx_str_t                  addr;
    ngx_str_t                  client;
    ngx_msec_t                 grace;       /* tunnel_reconnect_grace */
} ngx_tunnel_session_info_t;


/* the zone's init callback, for ngx_shared_memory_add(); keeps the data
 * of the previous cycle on reload */
ngx_int_t ngx_tunnel_registry_init_zone(ngx_shm_zone_t *zone, void *data);

ngx_tunnel_shm_session_t *ngx_tunnel_registry_session_add(
    ngx_shm_zone_t *zone, ngx_tunnel_session_info_t *info);

/* unbinds every member of the session and frees it */
void ngx_tunnel_registry_session_remove(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s);

/*
 * The session's connection broke without a go-away (the client was killed,
 * the network failed, no pong): its names and ports stay bound, routing
 * nowhere, for its grace, so that its client, reconnecting, finds them
 * again and no other token takes them meanwhile.  Any session of the same
 * token takes them over at once; the reaper frees the rest when the grace
 * ends.  NGX_OK if it is kept so, NGX_DECLINED if it was removed (no grace,
 * no tunnels).  The caller forgets "s" either way.
 */
ngx_int_t ngx_tunnel_registry_session_lose(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s);

/*
 * Binds a name for http or tls.  An empty "name" asks for a random label
 * under "domain"; the chosen full name is returned in "name" (allocated
 * from "pool").  The same token may take its name over from an older
 * session of the same client instance (the old member is detached) or join
 * it from another instance (a pool).  "max_tunnels" (0: none) is the
 * token's limit, over all its sessions.  Returns 0 or a TUNNEL_E_* code.
 */
ngx_uint_t ngx_tunnel_registry_bind_name(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s, ngx_uint_t kind, ngx_str_t *name,
    ngx_str_t *domain, uint32_t tunnel_id, ngx_uint_t max_tunnels,
    ngx_pool_t *pool, ngx_tunnel_member_t **member);

/*
 * Binds a tcp port: "want" if not 0, else a free one in [lo, hi] from a
 * rotating cursor, skipping those in "busy" (ports the caller found taken
 * by another program), within the token's "max_tunnels" as
 * ngx_tunnel_registry_bind_name() does.  Returns 0 or a TUNNEL_E_* code;
 * the port is in "(*member)->entry->port".
 */
ngx_uint_t ngx_tunnel_registry_bind_port(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s, in_port_t want, in_port_t lo, in_port_t hi,
    ngx_array_t *busy, uint32_t tunnel_id, ngx_uint_t max_tunnels,
    ngx_tunnel_member_t **member);

/* the public URL of "m" for status, at most NGX_TUNNEL_URL_MAX bytes */
void ngx_tunnel_registry_set_url(ngx_shm_zone_t *zone,
    ngx_tunnel_member_t *m, ngx_str_t *url);

/* the streams open now in every session of the token of "s" */
ngx_uint_t ngx_tunnel_registry_token_streams(ngx_shm_zone_t *zone,
    ngx_tunnel_shm_session_t *s);

/* frees a member of one of our own sessions */
void ngx_tunnel_registry_unbind(ngx_shm_zone_t *zone,
    ngx_tunnel_member_t *m);

/*
 * Picks the member to serve a name (kind http or tls) or a port (tcp,
 * name NULL), round robin over the pool, skipping members of dead workers,
 * of reconnecting sessions, and of draining sessions when another member
 * is there.  NGX_DECLINED if the name or port is not bound, NGX_AGAIN if
 * it is kept for a client that is reconnecting (route->lost and
 * route->grace_left say how long ago and for how long more), NGX_BUSY if no
 * member can serve it (their workers are gone).
 */
ngx_int_t ngx_tunnel_registry_route(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *name, in_port_t port, ngx_tunnel_route_t *route);

/*
 * Removes the sessions of workers that are gone (or keeps them for their
 * grace, as if their connection broke) and those whose grace has ended;
 * returns how many.
 */
ngx_uint_t ngx_tunnel_registry_reap(ngx_shm_zone_t *zone, ngx_log_t *log);

#define NGX_TUNNEL_STATUS_JSON        0
#define NGX_TUNNEL_STATUS_PROMETHEUS  1

/* the whole registry as text, for tunnel_status */
ngx_chain_t *ngx_tunnel_registry_status(ngx_shm_zone_t *zone,
    ngx_pool_t *pool, ngx_uint_t format);


/* handoff between workers: ngx_tunnel_handoff.c */

/* a public connection passed to the worker that owns its tunnel */
typedef struct {
    ngx_uint_t                 kind;        /* TUNNEL_KIND_* */
    uint64_t                   session_id;
    uint32_t                   tunnel_id;
    ngx_sockaddr_t             peer;        /* the public client */
    socklen_t                  peer_len;
    ngx_str_t                  server_name; /* SNI or Host */
    ngx_str_t                  preread;     /* bytes already read */
} ngx_tunnel_handoff_t;

/* called in the receiving worker; it owns "fd" from then on */
typedef void (*ngx_tunnel_handoff_pt)(ngx_cycle_t *cycle,
    ngx_tunnel_handoff_t *h, ngx_socket_t fd);

/* in init_process: the worker's own unix socket, named by its pid */
ngx_int_t ngx_tunnel_handoff_init(ngx_cycle_t *cycle,
    ngx_tunnel_handoff_pt handler);

void ngx_tunnel_handoff_exit(ngx_cycle_t *cycle);

/*
 * Sends "fd" with "h" to worker "pid".  On NGX_OK the receiver has a copy
 * and the caller closes its own, after ngx_del_conn(): the open file stays
 * registered in this worker's epoll otherwise.
 */
ngx_int_t ngx_tunnel_handoff_send(ngx_pid_t pid, ngx_socket_t fd,
    ngx_tunnel_handoff_t *h, ngx_log_t *log);


/* sessions of this worker: ngx_tunnel_session.c */

typedef struct ngx_tunnel_session_s  ngx_tunnel_session_t;

ngx_tunnel_session_t *ngx_tunnel_session_find(uint64_t id);

/*
 * Carries public connection "c" into a new stream of the session's tunnel:
 * the stream header first, then "preread", then both ways until either side
 * ends.  Takes "c" over (closes it when done) unless it returns NGX_ERROR.
 * "done", when set, is called instead of closing "c", so that a stream
 * session can finalize (and log) itself.
 */
typedef void (*ngx_tunnel_done_pt)(ngx_connection_t *c, ngx_int_t rc);

ngx_int_t ngx_tunnel_session_connect(ngx_tunnel_session_t *ts,
    uint32_t tunnel_id, ngx_connection_t *c, ngx_tunnel_handoff_t *h,
    ngx_tunnel_done_pt done);


#endif /* _NGX_TUNNEL_H_INCLUDED_ */
