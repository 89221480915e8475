/*
 * Copyright (C) ngx_tunnel developers
 *
 * The tunnel client: what it was asked to do (options, tunnels) and what it
 * is doing (sessions, streams, counters).
 */

#ifndef _CLIENT_H_INCLUDED_
#define _CLIENT_H_INCLUDED_


#include <stdint.h>
#include <stddef.h>

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "loop.h"
#include "conn.h"
#include "yamux.h"
#include "tunnel_msg.h"


#define TUNNEL_CLIENT_VERSION   "0.1.0"

#define MAX_TUNNELS     32
#define MAX_REQUESTS    16          /* recent http requests kept per tunnel */


typedef enum {
    LOG_ERROR = 0,
    LOG_INFO,
    LOG_DEBUG
} log_level_e;


typedef enum {
    FORMAT_AUTO = 0,                /* the live view on a terminal */
    FORMAT_TEXT,
    FORMAT_JSON
} log_format_e;


/* what a tunnel forwards to */
typedef struct {
    char         text[300];         /* as given, for people */
    struct sockaddr_storage  addr;  /* resolved once, at the start */
    socklen_t    addrlen;
} target_t;


typedef struct {
    char         method[12];
    char         path[96];
    int          status;
    uint64_t     start;             /* ms */
    uint64_t     duration;          /* ms, once the response began */
} request_log_t;


typedef struct {
    /* configuration */
    char         label[64];         /* its name in the config file */
    unsigned     kind;              /* TUNNEL_KIND_* */
    target_t     target;
    char         name[254];         /* wanted: label or hostname */
    unsigned     remote_port;       /* tcp: wanted public port */
    char         host_header[256];  /* http: rewrite Host to this */
    int          proxy_protocol;    /* 0, 1 or 2 */

    /* what the server gave */
    int          bound;
    int          failed;            /* refused for good */
    char         url[1024];
    char         bound_name[254];   /* asked for again on reconnect */
    unsigned     bound_port;

    /* counters */
    uint64_t     conns_open;
    uint64_t     conns_total;
    uint64_t     bytes_in;          /* from the public side */
    uint64_t     bytes_out;

    request_log_t  requests[MAX_REQUESTS];
    unsigned       nrequests;       /* total; the last MAX are kept */
} tunnel_t;


typedef struct {
    char          server_host[256];
    char          server_port[8];
    char          token[513];
    char          cafile[1024];
    int           insecure;
    int           plain;            /* no TLS to the server */
    uint32_t      window;
    log_level_e   log_level;
    log_format_e  log_format;
    char          config_file[1024];

    tunnel_t      tunnels[MAX_TUNNELS];
    int           ntunnels;
} options_t;


typedef struct session_s  session_t;


typedef struct {
    options_t    *opt;
    loop_t       *loop;
    SSL_CTX      *tls;
    char          instance[17];     /* one running client, across sessions */

    session_t    *active;           /* the session that binds */
    session_t    *old;              /* a session on its way out */

    loop_timer_t  reconnect;
    unsigned      attempts;         /* since the last stable session */
    uint64_t      backoff;          /* ms, the last delay */

    loop_timer_t  redraw;
    int           quitting;
    int           exit_code;
    char          status[128];      /* for the view: "online", ... */
    uint64_t      rtt;              /* ms, last ping */
} client_t;


/* session.c */
void client_connect(client_t *cl);
void client_quit(client_t *cl, int code);
void session_go_away(session_t *s);
void session_free(session_t *s);

/* forward.c: the streams the server opens */
typedef struct fwd_s  fwd_t;

int fwd_open(session_t *s, uint32_t id);
void fwd_data(fwd_t *f, const uint8_t *p, size_t n);
void fwd_fin(fwd_t *f);
void fwd_writable(fwd_t *f);
void fwd_closed(fwd_t *f, yamux_close_e how);
void fwd_abort(fwd_t *f);

/* session.c, for forward.c */
yamux_session_t *session_mux(session_t *s);
client_t *session_client(session_t *s);
tunnel_t *session_tunnel(session_t *s, uint32_t tunnel_id);
void session_flush_later(session_t *s);
void session_fwd_done(session_t *s, fwd_t *f);
int session_fwd_add(session_t *s, fwd_t *f);

/* view.c */
void view_init(client_t *cl);
void view_event(client_t *cl, log_level_e level, const char *event,
    tunnel_t *t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void view_request(client_t *cl, tunnel_t *t, request_log_t *r);
void view_redraw(client_t *cl);
void view_done(client_t *cl);


#endif /* _CLIENT_H_INCLUDED_ */
