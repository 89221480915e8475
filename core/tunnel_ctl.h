/*
 * Copyright (C) ngx_tunnel developers
 *
 * The server's side of a client's control stream, sans-IO: what the bytes
 * alone decide (PROTOCOL.md 3.3, 3.4 and 4).  The caller feeds what arrives
 * on the control stream to tunnel_ctl_feed() and takes events, in order,
 * from tunnel_ctl_next():
 *
 *   TUNNEL_CTL_HELLO, TUNNEL_CTL_BIND, TUNNEL_CTL_UNBIND
 *       a request that keeps every rule below: the caller serves it (the
 *       token, the registry and the ports in use are its part);
 *   TUNNEL_CTL_BIND_ERROR
 *       a bind to refuse: answer BIND_ERROR {request_id, code, message},
 *       and the session goes on;
 *   TUNNEL_CTL_ERROR
 *       the session is refused: answer ERROR {code, message}, go away and
 *       close.  Nothing follows it.
 *
 * The rules.  A message is at most TUNNEL_CTL_MSG_MAX bytes, which its two
 * length bytes tell at once, and it decodes (tunnel_msg.h).  The first
 * message is HELLO, and HELLO comes once; a client sends HELLO, BIND and
 * UNBIND only.  HELLO speaks TUNNEL_PROTO_VERSION and its client_name,
 * client_version and instance are printable ASCII (they go to logs as they
 * are).  After a HELLO nothing more is taken until the caller has checked
 * the token: tunnel_ctl_accept() or tunnel_ctl_close().  A BIND (in this
 * order) is refused while the session drains; its kind is http, tls or tcp;
 * for http and tls its name is a DNS name once lowercased (a label is a name
 * under the server's domain; no name asks for a random label there); for
 * tcp the server offers tcp, the token has ports in the server's range, and
 * the port is 0 (any) or one of them.
 *
 *     state     HELLO       BIND, UNBIND   a server's message
 *     hello     -> auth     ERROR          ERROR
 *     auth      (waits for tunnel_ctl_accept() or tunnel_ctl_close())
 *     open      ERROR       taken          ERROR
 *     closed    (input is dropped, no event)
 *
 * No allocation: the caller provides tunnel_ctl_t (its fields are private),
 * which holds one message's buffer.  Nothing is kept between calls but the
 * bytes fed and the state.
 */

#ifndef _TUNNEL_CTL_H_INCLUDED_
#define _TUNNEL_CTL_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "tunnel_msg.h"


/*
 * The longest message the server takes, with its length bytes: a client's
 * are under 1 KiB, and a session keeps no more than this.
 */
#define TUNNEL_CTL_MSG_MAX       4096

#define TUNNEL_NAME_MAX          253     /* a DNS name */
#define TUNNEL_LABEL_MAX         63


/* tunnel_ctl_next() */
#define TUNNEL_CTL_AGAIN         0       /* nothing until more is fed */
#define TUNNEL_CTL_HELLO         1
#define TUNNEL_CTL_BIND          2
#define TUNNEL_CTL_UNBIND        3
#define TUNNEL_CTL_BIND_ERROR    4
#define TUNNEL_CTL_ERROR         5


/* states */
#define TUNNEL_CTL_S_HELLO       0       /* waiting for HELLO */
#define TUNNEL_CTL_S_AUTH        1       /* HELLO given out, not answered */
#define TUNNEL_CTL_S_OPEN        2       /* welcomed: BIND, UNBIND */
#define TUNNEL_CTL_S_CLOSED      3       /* refused: input is dropped */


typedef struct {
    tunnel_str_t   domain;      /* labels and random names go under it;
                                   none: neither is offered.  Kept by
                                   reference */
    uint16_t       port_min;    /* tcp tunnels' ports; 0: no tcp */
    uint16_t       port_max;
} tunnel_ctl_conf_t;


typedef struct {
    int            type;        /* what tunnel_ctl_next() returned */

    /*
     * The message: every event but an ERROR for a length has one (type 0
     * then).  Its strings point into the tunnel_ctl_t, until the next
     * call of tunnel_ctl_feed() or tunnel_ctl_next().
     */
    tunnel_msg_t   msg;

    /* TUNNEL_CTL_BIND */
    tunnel_str_t   name;        /* http, tls: the full name, lowercase;
                                   empty: a random label under the domain */
    uint16_t       port;        /* tcp: 0 (any), or within: */
    uint16_t       port_min;    /* tcp: the ports the session may bind */
    uint16_t       port_max;

    /* TUNNEL_CTL_BIND_ERROR, TUNNEL_CTL_ERROR: never NULL nor empty */
    uint32_t       code;        /* TUNNEL_E_* */
    const char    *message;     /* for the client */
    const char    *why;         /* for the log, what the client did, as a
                                   predicate: "sent a second hello" */
} tunnel_ctl_event_t;


typedef struct {
    tunnel_ctl_conf_t  conf;
    unsigned           state;
    unsigned           draining;
    uint16_t           port_min;        /* the server's and the token's */
    uint16_t           port_max;
    size_t             pos;             /* buf[pos, last): not yet taken */
    size_t             last;
    char               why[128];
    char               message[96];
    uint8_t            name[TUNNEL_NAME_MAX];
    uint8_t            buf[TUNNEL_CTL_MSG_MAX];
} tunnel_ctl_t;


void tunnel_ctl_init(tunnel_ctl_t *ctl, const tunnel_ctl_conf_t *conf);

/*
 * Takes what fits of "n" bytes and returns how many: all of them but when
 * a whole message waits to be taken by tunnel_ctl_next() (in the auth
 * state, say).  In the closed state everything is taken and dropped.
 */
size_t tunnel_ctl_feed(tunnel_ctl_t *ctl, const uint8_t *p, size_t n);

/* the next event, also in "ev->type"; TUNNEL_CTL_AGAIN: none for now */
int tunnel_ctl_next(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);

/*
 * The HELLO's token is good: the session is open.  The token's tcp ports
 * (0, 0: any the server has) narrow the server's.
 */
void tunnel_ctl_accept(tunnel_ctl_t *ctl, uint16_t port_min,
    uint16_t port_max);

/* the session goes away: BINDs are refused (TUNNEL_E_SHUTDOWN) from now */
void tunnel_ctl_drain(tunnel_ctl_t *ctl);

/* the caller refused the session itself (the token, say): input is dropped */
void tunnel_ctl_close(tunnel_ctl_t *ctl);

unsigned tunnel_ctl_state(tunnel_ctl_t *ctl);


/* tunnel_name_check() */
#define TUNNEL_NAME_OK           0
#define TUNNEL_NAME_EMPTY        1       /* no bytes at all */
#define TUNNEL_NAME_LONG         2       /* over TUNNEL_NAME_MAX bytes */
#define TUNNEL_NAME_EMPTY_LABEL  3       /* a dot first, last or twice */
#define TUNNEL_NAME_LONG_LABEL   4       /* over TUNNEL_LABEL_MAX bytes */
#define TUNNEL_NAME_HYPHEN       5       /* a label begins or ends with '-' */
#define TUNNEL_NAME_CHAR         6       /* not a-z, 0-9, '-' or '.' */

/*
 * A lowercase DNS name, as the server takes it: labels of [a-z0-9-], 1 to
 * 63 bytes, neither beginning nor ending with '-', dot-separated, 253 bytes
 * in all.  Returns the first rule broken, reading from the left; "*at" (if
 * not NULL) is then where: the label's first byte, or the byte.
 */
int tunnel_name_check(const uint8_t *p, size_t len, size_t *at);


#endif /* _TUNNEL_CTL_H_INCLUDED_ */
