/*
 * Copyright (C) ngx_tunnel developers
 *
 * ngx_tunnel control messages and the stream header (PROTOCOL.md).
 *
 * A message is
 *
 *     u16 length | u8 type | fields...        length counts type + fields
 *     field:  u8 tag | u16 length | value     integers: 1-8 bytes, big-endian
 *
 * all big-endian.  Unknown tags are skipped, so fields can be added without a
 * new version.  Decoding does not copy: strings point into the input buffer.
 */

#ifndef _TUNNEL_MSG_H_INCLUDED_
#define _TUNNEL_MSG_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define TUNNEL_PROTO_VERSION     1
#define TUNNEL_MSG_MAX           (2 + 65535)  /* a whole message, in bytes */


/* message types */
#define TUNNEL_HELLO             1   /* client -> server, first message */
#define TUNNEL_WELCOME           2   /* server -> client */
#define TUNNEL_ERROR             3   /* server -> client, then go-away */
#define TUNNEL_BIND              4   /* client -> server */
#define TUNNEL_BOUND             5   /* server -> client */
#define TUNNEL_BIND_ERROR        6   /* server -> client */
#define TUNNEL_UNBIND            7   /* client -> server */
#define TUNNEL_UNBOUND           8   /* server -> client: tunnel taken away */
#define TUNNEL_NOTICE            9   /* server -> client */
#define TUNNEL_STREAM            10  /* server -> client, first on a stream */
#define TUNNEL_MSG_LAST          10


/* tunnel kinds */
#define TUNNEL_KIND_HTTP         1
#define TUNNEL_KIND_TLS          2
#define TUNNEL_KIND_TCP          3


/* error codes, in ERROR, BIND_ERROR and UNBOUND */
#define TUNNEL_E_BAD_MESSAGE     1   /* malformed or unexpected message */
#define TUNNEL_E_VERSION         2   /* protocol version not supported */
#define TUNNEL_E_AUTH            3   /* token not recognized */
#define TUNNEL_E_NAME_TAKEN      4   /* held by another token */
#define TUNNEL_E_NAME_FORBIDDEN  5   /* the token may not use this name */
#define TUNNEL_E_NAME_INVALID    6   /* not a valid DNS name */
#define TUNNEL_E_PORT_FORBIDDEN  7   /* the token may not use this port */
#define TUNNEL_E_PORT_TAKEN      8   /* the requested port is in use */
#define TUNNEL_E_PORTS_FULL      9   /* no free port left in the range */
#define TUNNEL_E_LIMIT           10  /* too many tunnels for the token */
#define TUNNEL_E_KIND            11  /* the server does not offer this kind */
#define TUNNEL_E_INTERNAL        12
#define TUNNEL_E_SHUTDOWN        13  /* the server is going away */
#define TUNNEL_E_TIMEOUT         14  /* hello did not arrive in time */
#define TUNNEL_E_REPLACED        15  /* a newer session took the name */
#define TUNNEL_E_LAST            15


/* notice codes */
#define TUNNEL_NOTICE_RECONNECT  1   /* open a new session now, then leave */
#define TUNNEL_NOTICE_INFO       2   /* text for the person running it */


/* decode results */
#define TUNNEL_MSG_OK            0
#define TUNNEL_MSG_AGAIN         1   /* need more bytes */
#define TUNNEL_MSG_INVALID       (-1)


typedef struct {
    const uint8_t  *data;
    size_t          len;
} tunnel_str_t;


typedef struct {
    uint8_t        type;
    uint32_t       present;         /* TUNNEL_HAS(tag) bits, after decode */

    uint32_t       version;         /* hello, welcome */
    uint32_t       heartbeat_ms;    /* welcome: ping interval expected */
    uint32_t       code;            /* error, bind_error, unbound, notice */
    uint32_t       request_id;      /* bind, bound, bind_error */
    uint32_t       kind;            /* bind, bound, stream */
    uint32_t       port;            /* bind: wanted (0: any), bound */
    uint32_t       tunnel_id;       /* bound, unbind, unbound, stream */
    uint32_t       remote_port;     /* stream: public peer's port */
    uint32_t       max_streams;     /* welcome: limit per session */

    tunnel_str_t   token;           /* hello */
    tunnel_str_t   client_name;     /* hello: "tunnel" */
    tunnel_str_t   client_version;  /* hello */
    tunnel_str_t   session_id;      /* welcome */
    tunnel_str_t   message;         /* error, bind_error, unbound, notice */
    tunnel_str_t   name;            /* bind: hostname or label; bound */
    tunnel_str_t   url;             /* bound: public URL */
    tunnel_str_t   remote_addr;     /* stream: public peer's address */
    tunnel_str_t   server_name;     /* stream: SNI or Host */
    tunnel_str_t   instance;        /* hello: one running client, the same
                                       across its reconnects */

    char           error[96];       /* why decoding failed */
} tunnel_msg_t;


/* field tags */
#define TUNNEL_T_VERSION         1
#define TUNNEL_T_HEARTBEAT_MS    2
#define TUNNEL_T_CODE            3
#define TUNNEL_T_REQUEST_ID      4
#define TUNNEL_T_KIND            5
#define TUNNEL_T_PORT            6
#define TUNNEL_T_TUNNEL_ID       7
#define TUNNEL_T_REMOTE_PORT     8
#define TUNNEL_T_MAX_STREAMS     9
#define TUNNEL_T_TOKEN           16
#define TUNNEL_T_CLIENT_NAME     17
#define TUNNEL_T_CLIENT_VERSION  18
#define TUNNEL_T_SESSION_ID      19
#define TUNNEL_T_MESSAGE         20
#define TUNNEL_T_NAME            21
#define TUNNEL_T_URL             22
#define TUNNEL_T_REMOTE_ADDR     23
#define TUNNEL_T_SERVER_NAME     24
#define TUNNEL_T_INSTANCE        25

#define TUNNEL_HAS(m, tag)       ((m)->present & (1u << ((tag) & 31)))


/*
 * Encode: every field the type carries is written, strings only when
 * "data" is set.  Returns the message size, or 0 when "size" is too small
 * or a field is over its bound.
 */
size_t tunnel_msg_encode(const tunnel_msg_t *m, uint8_t *buf, size_t size);

/*
 * Decode one message from the front of "buf".  On TUNNEL_MSG_OK "*used" is
 * its size.  TUNNEL_MSG_INVALID: unknown type, a field over its bound or of
 * the wrong size, a required field missing; "*why" then says which.
 */
int tunnel_msg_decode(tunnel_msg_t *m, const uint8_t *buf, size_t len,
    size_t *used, const char **why);

/* a C string as a tunnel_str_t (NULL stays unset) */
tunnel_str_t tunnel_str(const char *s);

const char *tunnel_msg_type_name(unsigned type);
const char *tunnel_kind_name(unsigned kind);     /* "http", "tls", "tcp" */
int tunnel_kind_parse(const char *s, size_t len); /* 0 if unknown */

/* a short sentence for an error code, for when "message" is empty */
const char *tunnel_error_text(unsigned code);


#endif /* _TUNNEL_MSG_H_INCLUDED_ */
