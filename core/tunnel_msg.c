/*
 * Copyright (C) ngx_tunnel developers
 *
 * ngx_tunnel control messages: see tunnel_msg.h and PROTOCOL.md.
 *
 * One table describes every field (tag, integer or string, where it lives in
 * tunnel_msg_t, its bound) and one table every message type (the fields it
 * carries, those it requires); encoding and decoding both walk them.
 */

#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "tunnel_msg.h"


#define TUNNEL_INT               0
#define TUNNEL_STR               1

#define F(tag)                   (1u << (tag))


typedef struct {
    uint8_t       tag;
    uint8_t       type;          /* TUNNEL_INT or TUNNEL_STR */
    uint16_t      max;           /* strings: longest value */
    size_t        offset;
    const char   *name;
} tunnel_field_t;


typedef struct {
    const char   *name;
    uint32_t      fields;        /* F(tag) of the fields it carries */
    uint32_t      required;
} tunnel_type_t;


static const tunnel_field_t  tunnel_fields[] = {
    { TUNNEL_T_VERSION, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, version), "version" },
    { TUNNEL_T_HEARTBEAT_MS, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, heartbeat_ms), "heartbeat_ms" },
    { TUNNEL_T_CODE, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, code), "code" },
    { TUNNEL_T_REQUEST_ID, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, request_id), "request_id" },
    { TUNNEL_T_KIND, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, kind), "kind" },
    { TUNNEL_T_PORT, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, port), "port" },
    { TUNNEL_T_TUNNEL_ID, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, tunnel_id), "tunnel_id" },
    { TUNNEL_T_REMOTE_PORT, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, remote_port), "remote_port" },
    { TUNNEL_T_MAX_STREAMS, TUNNEL_INT, 0,
      offsetof(tunnel_msg_t, max_streams), "max_streams" },
    { TUNNEL_T_TOKEN, TUNNEL_STR, 512,
      offsetof(tunnel_msg_t, token), "token" },
    { TUNNEL_T_CLIENT_NAME, TUNNEL_STR, 64,
      offsetof(tunnel_msg_t, client_name), "client_name" },
    { TUNNEL_T_CLIENT_VERSION, TUNNEL_STR, 64,
      offsetof(tunnel_msg_t, client_version), "client_version" },
    { TUNNEL_T_SESSION_ID, TUNNEL_STR, 64,
      offsetof(tunnel_msg_t, session_id), "session_id" },
    { TUNNEL_T_MESSAGE, TUNNEL_STR, 1024,
      offsetof(tunnel_msg_t, message), "message" },
    { TUNNEL_T_NAME, TUNNEL_STR, 253,
      offsetof(tunnel_msg_t, name), "name" },
    { TUNNEL_T_URL, TUNNEL_STR, 1024,
      offsetof(tunnel_msg_t, url), "url" },
    { TUNNEL_T_REMOTE_ADDR, TUNNEL_STR, 128,
      offsetof(tunnel_msg_t, remote_addr), "remote_addr" },
    { TUNNEL_T_SERVER_NAME, TUNNEL_STR, 253,
      offsetof(tunnel_msg_t, server_name), "server_name" },
    { TUNNEL_T_INSTANCE, TUNNEL_STR, 64,
      offsetof(tunnel_msg_t, instance), "instance" },
};


#define TUNNEL_NFIELDS  (sizeof(tunnel_fields) / sizeof(tunnel_fields[0]))


/* fields each message carries; the required ones must be present */
static const tunnel_type_t  tunnel_types[TUNNEL_MSG_LAST + 1] = {
    [TUNNEL_HELLO] = { "hello",
        F(TUNNEL_T_VERSION) | F(TUNNEL_T_TOKEN) | F(TUNNEL_T_CLIENT_NAME)
        | F(TUNNEL_T_CLIENT_VERSION) | F(TUNNEL_T_INSTANCE),
        F(TUNNEL_T_VERSION) | F(TUNNEL_T_TOKEN) },

    [TUNNEL_WELCOME] = { "welcome",
        F(TUNNEL_T_VERSION) | F(TUNNEL_T_SESSION_ID)
        | F(TUNNEL_T_HEARTBEAT_MS) | F(TUNNEL_T_MAX_STREAMS),
        F(TUNNEL_T_VERSION) | F(TUNNEL_T_SESSION_ID) },

    [TUNNEL_ERROR] = { "error",
        F(TUNNEL_T_CODE) | F(TUNNEL_T_MESSAGE),
        F(TUNNEL_T_CODE) },

    [TUNNEL_BIND] = { "bind",
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_KIND) | F(TUNNEL_T_NAME)
        | F(TUNNEL_T_PORT),
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_KIND) },

    [TUNNEL_BOUND] = { "bound",
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_KIND)
        | F(TUNNEL_T_NAME) | F(TUNNEL_T_PORT) | F(TUNNEL_T_URL),
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_KIND)
        | F(TUNNEL_T_URL) },

    [TUNNEL_BIND_ERROR] = { "bind_error",
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_CODE) | F(TUNNEL_T_MESSAGE),
        F(TUNNEL_T_REQUEST_ID) | F(TUNNEL_T_CODE) },

    [TUNNEL_UNBIND] = { "unbind",
        F(TUNNEL_T_TUNNEL_ID),
        F(TUNNEL_T_TUNNEL_ID) },

    [TUNNEL_UNBOUND] = { "unbound",
        F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_CODE) | F(TUNNEL_T_MESSAGE),
        F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_CODE) },

    [TUNNEL_NOTICE] = { "notice",
        F(TUNNEL_T_CODE) | F(TUNNEL_T_MESSAGE),
        F(TUNNEL_T_CODE) },

    [TUNNEL_STREAM] = { "stream",
        F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_KIND) | F(TUNNEL_T_REMOTE_ADDR)
        | F(TUNNEL_T_REMOTE_PORT) | F(TUNNEL_T_SERVER_NAME),
        F(TUNNEL_T_TUNNEL_ID) | F(TUNNEL_T_KIND) },
};


static const char  *tunnel_errors[TUNNEL_E_LAST + 1] = {
    [TUNNEL_E_BAD_MESSAGE] =
        "the other side sent a message this version does not understand",
    [TUNNEL_E_VERSION] =
        "the client and the server speak different protocol versions",
    [TUNNEL_E_AUTH] = "the server did not accept this token",
    [TUNNEL_E_NAME_TAKEN] = "this name is already in use by someone else",
    [TUNNEL_E_NAME_FORBIDDEN] = "this token may not use this name",
    [TUNNEL_E_NAME_INVALID] =
        "this is not a valid name (letters, digits and hyphens, "
        "dot-separated)",
    [TUNNEL_E_PORT_FORBIDDEN] = "this token may not use this port",
    [TUNNEL_E_PORT_TAKEN] = "this port is already in use",
    [TUNNEL_E_PORTS_FULL] = "the server has no free port left",
    [TUNNEL_E_LIMIT] = "this token has reached its limit",
    [TUNNEL_E_KIND] = "the server does not offer this kind of tunnel",
    [TUNNEL_E_INTERNAL] = "the server failed; its error log says why",
    [TUNNEL_E_SHUTDOWN] = "the server is shutting down",
    [TUNNEL_E_TIMEOUT] = "the client did not say hello in time",
    [TUNNEL_E_REPLACED] = "a newer session of this client took the name",
};


static const tunnel_field_t *
tunnel_field(unsigned tag)
{
    size_t  i;

    for (i = 0; i < TUNNEL_NFIELDS; i++) {
        if (tunnel_fields[i].tag == tag) {
            return &tunnel_fields[i];
        }
    }

    return NULL;
}


static uint8_t *
tunnel_put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;

    return p + 2;
}


size_t
tunnel_msg_encode(const tunnel_msg_t *m, uint8_t *buf, size_t size)
{
    size_t                 i, need, len;
    uint8_t               *p;
    uint32_t               v;
    const uint8_t         *base;
    const tunnel_str_t    *s;
    const tunnel_type_t   *t;
    const tunnel_field_t  *f;

    if (m->type == 0 || m->type > TUNNEL_MSG_LAST) {
        return 0;
    }

    t = &tunnel_types[m->type];
    base = (const uint8_t *) m;

    /* the size first, so nothing is written when it does not fit */
    need = 3;

    for (i = 0; i < TUNNEL_NFIELDS; i++) {
        f = &tunnel_fields[i];

        if (!(t->fields & F(f->tag))) {
            continue;
        }

        if (f->type == TUNNEL_INT) {
            need += 3 + 4;
            continue;
        }

        s = (const tunnel_str_t *) (base + f->offset);

        if (s->data == NULL) {
            continue;
        }

        if (s->len > f->max) {
            return 0;
        }

        need += 3 + s->len;
    }

    if (need > size || need - 2 > 0xffff) {
        return 0;
    }

    p = tunnel_put16(buf, (unsigned) (need - 2));
    *p++ = m->type;

    for (i = 0; i < TUNNEL_NFIELDS; i++) {
        f = &tunnel_fields[i];

        if (!(t->fields & F(f->tag))) {
            continue;
        }

        if (f->type == TUNNEL_INT) {
            memcpy(&v, base + f->offset, sizeof(uint32_t));
            *p++ = f->tag;
            p = tunnel_put16(p, 4);
            *p++ = (uint8_t) (v >> 24);
            *p++ = (uint8_t) (v >> 16);
            *p++ = (uint8_t) (v >> 8);
            *p++ = (uint8_t) v;
            continue;
        }

        s = (const tunnel_str_t *) (base + f->offset);

        if (s->data == NULL) {
            continue;
        }

        len = s->len;
        *p++ = f->tag;
        p = tunnel_put16(p, (unsigned) len);

        if (len) {
            memcpy(p, s->data, len);
            p += len;
        }
    }

    return need;
}


int
tunnel_msg_decode(tunnel_msg_t *m, const uint8_t *buf, size_t len,
    size_t *used, const char **why)
{
    size_t                 total, pos, flen, i;
    uint8_t                tag, type;
    uint32_t               missing;
    uint64_t               v;
    tunnel_str_t           s;
    const tunnel_type_t   *t;
    const tunnel_field_t  *f;

    memset(m, 0, sizeof(tunnel_msg_t));
    *why = NULL;

    if (len < 2) {
        return TUNNEL_MSG_AGAIN;
    }

    total = 2 + ((size_t) buf[0] << 8 | buf[1]);

    if (total < 3) {
        *why = "a message without a type";
        return TUNNEL_MSG_INVALID;
    }

    if (len < total) {
        return TUNNEL_MSG_AGAIN;
    }

    type = buf[2];

    if (type == 0 || type > TUNNEL_MSG_LAST) {
        snprintf(m->error, sizeof(m->error), "unknown message type %u", type);
        *why = m->error;
        return TUNNEL_MSG_INVALID;
    }

    t = &tunnel_types[type];
    m->type = type;

    for (pos = 3; pos < total; pos += flen) {

        if (total - pos < 3) {
            *why = "a field cut short at the end of the message";
            return TUNNEL_MSG_INVALID;
        }

        tag = buf[pos];
        flen = (size_t) buf[pos + 1] << 8 | buf[pos + 2];
        pos += 3;

        if (flen > total - pos) {
            snprintf(m->error, sizeof(m->error),
                     "field %u is longer than the message", tag);
            *why = m->error;
            return TUNNEL_MSG_INVALID;
        }

        f = tunnel_field(tag);

        /* fields this version does not know, or not of this type: skip */
        if (f == NULL || !(t->fields & F(tag))) {
            continue;
        }

        if (m->present & F(tag)) {
            snprintf(m->error, sizeof(m->error), "field '%s' appears twice",
                     f->name);
            *why = m->error;
            return TUNNEL_MSG_INVALID;
        }

        if (f->type == TUNNEL_INT) {
            if (flen < 1 || flen > 8) {
                snprintf(m->error, sizeof(m->error),
                         "field '%s' has %zu bytes, expected 1-8",
                         f->name, flen);
                *why = m->error;
                return TUNNEL_MSG_INVALID;
            }

            v = 0;

            for (i = 0; i < flen; i++) {
                v = v << 8 | buf[pos + i];
            }

            if (v > 0xffffffffu) {
                snprintf(m->error, sizeof(m->error),
                         "field '%s' is too large", f->name);
                *why = m->error;
                return TUNNEL_MSG_INVALID;
            }

            *(uint32_t *) ((uint8_t *) m + f->offset) = (uint32_t) v;

        } else {
            if (flen > f->max) {
                snprintf(m->error, sizeof(m->error),
                         "field '%s' has %zu bytes, at most %u allowed",
                         f->name, flen, f->max);
                *why = m->error;
                return TUNNEL_MSG_INVALID;
            }

            s.data = buf + pos;
            s.len = flen;
            memcpy((uint8_t *) m + f->offset, &s, sizeof(tunnel_str_t));
        }

        m->present |= F(tag);
    }

    missing = t->required & ~m->present;

    if (missing) {
        for (i = 0; i < TUNNEL_NFIELDS; i++) {
            if (missing & F(tunnel_fields[i].tag)) {
                break;
            }
        }

        snprintf(m->error, sizeof(m->error), "%s without its '%s' field",
                 t->name, tunnel_fields[i].name);
        *why = m->error;
        return TUNNEL_MSG_INVALID;
    }

    *used = total;

    return TUNNEL_MSG_OK;
}


tunnel_str_t
tunnel_str(const char *s)
{
    tunnel_str_t  r;

    r.data = (const uint8_t *) s;
    r.len = s ? strlen(s) : 0;

    return r;
}


const char *
tunnel_msg_type_name(unsigned type)
{
    if (type == 0 || type > TUNNEL_MSG_LAST) {
        return "unknown";
    }

    return tunnel_types[type].name;
}


const char *
tunnel_kind_name(unsigned kind)
{
    switch (kind) {
    case TUNNEL_KIND_HTTP:
        return "http";
    case TUNNEL_KIND_TLS:
        return "tls";
    case TUNNEL_KIND_TCP:
        return "tcp";
    default:
        return "unknown";
    }
}


int
tunnel_kind_parse(const char *s, size_t len)
{
    unsigned  kind;

    for (kind = TUNNEL_KIND_HTTP; kind <= TUNNEL_KIND_TCP; kind++) {
        if (strlen(tunnel_kind_name(kind)) == len
            && memcmp(s, tunnel_kind_name(kind), len) == 0)
        {
            return (int) kind;
        }
    }

    return 0;
}


const char *
tunnel_error_text(unsigned code)
{
    if (code == 0 || code > TUNNEL_E_LAST || tunnel_errors[code] == NULL) {
        return "an unknown error";
    }

    return tunnel_errors[code];
}
