/*
 * Copyright (C) ngx_tunnel developers
 *
 * The server's side of a client's control stream: see tunnel_ctl.h and
 * PROTOCOL.md.  One table says what each message does in each state; the
 * checks of HELLO and BIND follow the order in which a reader of the
 * protocol would make them, which is also the order of the refusals a
 * client sees when it breaks several rules at once.
 */

#include <stdio.h>
#include <string.h>

#include "tunnel_ctl.h"


/* what a message does in a state */
#define TUNNEL_CTL_TAKE          0
#define TUNNEL_CTL_NOT_HELLO     1       /* anything before HELLO */
#define TUNNEL_CTL_AGAIN_HELLO   2
#define TUNNEL_CTL_NOT_OURS      3       /* a message only a server sends */


/* the auth and closed states take no message: tunnel_ctl_next() says so */
static const uint8_t  tunnel_ctl_rules[TUNNEL_CTL_S_OPEN + 1]
                                      [TUNNEL_MSG_LAST + 1] =
{
    [TUNNEL_CTL_S_HELLO] = {
        [TUNNEL_HELLO] = TUNNEL_CTL_TAKE,
        [TUNNEL_WELCOME] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_ERROR] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_BIND] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_BOUND] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_BIND_ERROR] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_UNBIND] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_UNBOUND] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_NOTICE] = TUNNEL_CTL_NOT_HELLO,
        [TUNNEL_STREAM] = TUNNEL_CTL_NOT_HELLO,
    },

    [TUNNEL_CTL_S_OPEN] = {
        [TUNNEL_HELLO] = TUNNEL_CTL_AGAIN_HELLO,
        [TUNNEL_WELCOME] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_ERROR] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_BIND] = TUNNEL_CTL_TAKE,
        [TUNNEL_BOUND] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_BIND_ERROR] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_UNBIND] = TUNNEL_CTL_TAKE,
        [TUNNEL_UNBOUND] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_NOTICE] = TUNNEL_CTL_NOT_OURS,
        [TUNNEL_STREAM] = TUNNEL_CTL_NOT_OURS,
    },
};


static int tunnel_ctl_message(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);
static int tunnel_ctl_hello(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);
static int tunnel_ctl_bind(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);
static int tunnel_ctl_bind_name(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);
static int tunnel_ctl_bind_port(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev);
static int tunnel_ctl_refuse(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev,
    int type, uint32_t code, const char *message);
static int tunnel_ctl_printable(tunnel_str_t *s);


void
tunnel_ctl_init(tunnel_ctl_t *ctl, const tunnel_ctl_conf_t *conf)
{
    memset(ctl, 0, offsetof(tunnel_ctl_t, buf));

    ctl->conf = *conf;
    ctl->state = TUNNEL_CTL_S_HELLO;
}


size_t
tunnel_ctl_feed(tunnel_ctl_t *ctl, const uint8_t *p, size_t n)
{
    size_t  room;

    if (ctl->state == TUNNEL_CTL_S_CLOSED) {
        return n;
    }

    room = sizeof(ctl->buf) - ctl->last;

    if (room < n && ctl->pos) {
        memmove(ctl->buf, ctl->buf + ctl->pos, ctl->last - ctl->pos);
        ctl->last -= ctl->pos;
        ctl->pos = 0;
        room = sizeof(ctl->buf) - ctl->last;
    }

    if (n > room) {
        n = room;
    }

    if (n) {
        memcpy(ctl->buf + ctl->last, p, n);
        ctl->last += n;
    }

    return n;
}


int
tunnel_ctl_next(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    int          rc;
    size_t       avail, size, used;
    const char  *why;

    memset(ev, 0, sizeof(tunnel_ctl_event_t));

    if (ctl->state != TUNNEL_CTL_S_HELLO && ctl->state != TUNNEL_CTL_S_OPEN)
    {
        return TUNNEL_CTL_AGAIN;
    }

    avail = ctl->last - ctl->pos;

    /* a length we would never take is refused before its bytes come */
    if (avail >= 2) {
        size = 2 + ((size_t) ctl->buf[ctl->pos] << 8
                    | ctl->buf[ctl->pos + 1]);

        if (size > TUNNEL_CTL_MSG_MAX) {
            snprintf(ctl->why, sizeof(ctl->why), "sent a control message of "
                     "%zu bytes, at most %d are taken", size - 2,
                     TUNNEL_CTL_MSG_MAX - 2);

            return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                     TUNNEL_E_BAD_MESSAGE,
                                     "a control message longer than the "
                                     "server takes");
        }
    }

    rc = tunnel_msg_decode(&ev->msg, ctl->buf + ctl->pos, avail, &used,
                           &why);

    if (rc == TUNNEL_MSG_AGAIN) {
        if (ctl->last == ctl->pos) {
            ctl->pos = 0;
            ctl->last = 0;
        }

        return TUNNEL_CTL_AGAIN;
    }

    if (rc != TUNNEL_MSG_OK) {
        snprintf(ctl->message, sizeof(ctl->message), "%s", why);
        snprintf(ctl->why, sizeof(ctl->why), "sent a bad control message: "
                 "%s", ctl->message);

        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE, ctl->message);
    }

    /* the strings stay where they are until the next feed moves them */
    ctl->pos += used;

    return tunnel_ctl_message(ctl, ev);
}


static int
tunnel_ctl_message(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    unsigned     type;
    const char  *name;

    type = ev->msg.type;
    name = tunnel_msg_type_name(type);

    switch (tunnel_ctl_rules[ctl->state][type]) {

    case TUNNEL_CTL_NOT_HELLO:
        snprintf(ctl->why, sizeof(ctl->why), "sent %s before hello", name);
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE,
                                 "the first message must be hello");

    case TUNNEL_CTL_AGAIN_HELLO:
        snprintf(ctl->why, sizeof(ctl->why), "sent a second hello");
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE, "a second hello");

    case TUNNEL_CTL_NOT_OURS:
        snprintf(ctl->why, sizeof(ctl->why), "sent %s, which only a server "
                 "sends", name);
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE,
                                 "this message is not for the server");
    }

    switch (type) {

    case TUNNEL_HELLO:
        return tunnel_ctl_hello(ctl, ev);

    case TUNNEL_BIND:
        return tunnel_ctl_bind(ctl, ev);

    default: /* TUNNEL_UNBIND: an id we never gave is the caller's to drop */
        ev->type = TUNNEL_CTL_UNBIND;
        return ev->type;
    }
}


static int
tunnel_ctl_hello(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    tunnel_msg_t  *m;

    m = &ev->msg;

    if (m->version != TUNNEL_PROTO_VERSION) {
        snprintf(ctl->why, sizeof(ctl->why), "speaks protocol version %u, "
                 "this server %d", (unsigned) m->version,
                 TUNNEL_PROTO_VERSION);
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR, TUNNEL_E_VERSION,
                                 "this server speaks protocol version 1: "
                                 "use a matching client");
    }

    /* they go to the server's log and status page as they are */
    if (!tunnel_ctl_printable(&m->client_name)
        || !tunnel_ctl_printable(&m->client_version))
    {
        snprintf(ctl->why, sizeof(ctl->why), "sent a hello with a client "
                 "name or version that is not printable ASCII");
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE,
                                 "the client name and version must be "
                                 "printable ASCII");
    }

    if (!tunnel_ctl_printable(&m->instance)) {
        snprintf(ctl->why, sizeof(ctl->why), "sent a hello with an instance "
                 "that is not printable ASCII");
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_ERROR,
                                 TUNNEL_E_BAD_MESSAGE,
                                 "the instance must be printable ASCII");
    }

    ctl->state = TUNNEL_CTL_S_AUTH;
    ev->type = TUNNEL_CTL_HELLO;

    return ev->type;
}


static int
tunnel_ctl_bind(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    /* a session that drains binds nothing, whatever it asks for */
    if (ctl->draining) {
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_SHUTDOWN, NULL);
    }

    switch (ev->msg.kind) {

    case TUNNEL_KIND_HTTP:
    case TUNNEL_KIND_TLS:
        return tunnel_ctl_bind_name(ctl, ev);

    case TUNNEL_KIND_TCP:
        return tunnel_ctl_bind_port(ctl, ev);

    default:
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_KIND, "unknown tunnel kind");
    }
}


static int
tunnel_ctl_bind_name(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    size_t         i, len;
    uint8_t       *p;
    tunnel_str_t  *name, *domain;

    name = &ev->msg.name;
    domain = &ctl->conf.domain;

    /* the codec's bound: this only says so should that bound grow */
    if (name->len > TUNNEL_NAME_MAX) {
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_NAME_INVALID,
                                 "the name is longer than 253 characters");
    }

    if (name->len == 0) {
        if (domain->len == 0) {
            return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                     TUNNEL_E_NAME_INVALID,
                                     "this server has no tunnel domain for "
                                     "random names: ask for a full "
                                     "hostname");
        }

        ev->type = TUNNEL_CTL_BIND;
        return ev->type;
    }

    len = name->len;

    if (memchr(name->data, '.', name->len) == NULL) {
        /* a label: under our domain */
        if (domain->len == 0) {
            return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                     TUNNEL_E_NAME_INVALID,
                                     "this server has no tunnel domain: "
                                     "ask for a full hostname");
        }

        len += 1 + domain->len;
    }

    if (len > TUNNEL_NAME_MAX) {
        goto invalid;
    }

    p = ctl->name;

    for (i = 0; i < name->len; i++) {
        *p++ = (name->data[i] >= 'A' && name->data[i] <= 'Z')
               ? name->data[i] | 0x20 : name->data[i];
    }

    if (len > name->len) {
        *p++ = '.';

        for (i = 0; i < domain->len; i++) {
            *p++ = (domain->data[i] >= 'A' && domain->data[i] <= 'Z')
                   ? domain->data[i] | 0x20 : domain->data[i];
        }
    }

    if (tunnel_name_check(ctl->name, len, NULL) != TUNNEL_NAME_OK) {
        goto invalid;
    }

    ev->name.data = ctl->name;
    ev->name.len = len;
    ev->type = TUNNEL_CTL_BIND;

    return ev->type;

invalid:

    return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                             TUNNEL_E_NAME_INVALID,
                             "the name is not a valid DNS name (letters, "
                             "digits and hyphens, dot-separated)");
}


static int
tunnel_ctl_bind_port(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev)
{
    uint32_t  want;

    if (ctl->conf.port_min == 0) {
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_KIND,
                                 "this server does not offer TCP tunnels");
    }

    if (ctl->port_min > ctl->port_max) {
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_PORT_FORBIDDEN,
                                 "the token's ports are outside the "
                                 "server's range");
    }

    want = ev->msg.port;

    if (want && (want < ctl->port_min || want > ctl->port_max)) {
        return tunnel_ctl_refuse(ctl, ev, TUNNEL_CTL_BIND_ERROR,
                                 TUNNEL_E_PORT_FORBIDDEN, NULL);
    }

    ev->port = (uint16_t) want;
    ev->port_min = ctl->port_min;
    ev->port_max = ctl->port_max;
    ev->type = TUNNEL_CTL_BIND;

    return ev->type;
}


/* "message" NULL: the code's own sentence; a bind's "why" is its message */
static int
tunnel_ctl_refuse(tunnel_ctl_t *ctl, tunnel_ctl_event_t *ev, int type,
    uint32_t code, const char *message)
{
    ev->type = type;
    ev->code = code;
    ev->message = message ? message : tunnel_error_text(code);

    if (type == TUNNEL_CTL_ERROR) {
        ev->why = ctl->why;
        ctl->state = TUNNEL_CTL_S_CLOSED;

    } else {
        ev->why = ev->message;
    }

    return type;
}


static int
tunnel_ctl_printable(tunnel_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


void
tunnel_ctl_accept(tunnel_ctl_t *ctl, uint16_t port_min, uint16_t port_max)
{
    if (ctl->state != TUNNEL_CTL_S_AUTH) {
        return;
    }

    ctl->state = TUNNEL_CTL_S_OPEN;
    ctl->port_min = ctl->conf.port_min;
    ctl->port_max = ctl->conf.port_max;

    if (port_min) {
        if (port_min > ctl->port_min) {
            ctl->port_min = port_min;
        }

        if (port_max < ctl->port_max) {
            ctl->port_max = port_max;
        }
    }
}


void
tunnel_ctl_drain(tunnel_ctl_t *ctl)
{
    ctl->draining = 1;
}


void
tunnel_ctl_close(tunnel_ctl_t *ctl)
{
    ctl->state = TUNNEL_CTL_S_CLOSED;
}


unsigned
tunnel_ctl_state(tunnel_ctl_t *ctl)
{
    return ctl->state;
}


int
tunnel_name_check(const uint8_t *p, size_t len, size_t *at)
{
    size_t  i, label;

    if (at) {
        *at = 0;
    }

    if (len == 0) {
        return TUNNEL_NAME_EMPTY;
    }

    if (len > TUNNEL_NAME_MAX) {
        return TUNNEL_NAME_LONG;
    }

    label = 0;

    for (i = 0; i <= len; i++) {

        if (i == len || p[i] == '.') {
            if (at) {
                *at = label;
            }

            if (i == label) {
                return TUNNEL_NAME_EMPTY_LABEL;
            }

            if (i - label > TUNNEL_LABEL_MAX) {
                return TUNNEL_NAME_LONG_LABEL;
            }

            /* a label neither begins nor ends with a hyphen (RFC 952) */
            if (p[label] == '-' || p[i - 1] == '-') {
                return TUNNEL_NAME_HYPHEN;
            }

            label = i + 1;
            continue;
        }

        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')
            || p[i] == '-')
        {
            continue;
        }

        if (at) {
            *at = i;
        }

        return TUNNEL_NAME_CHAR;
    }

    if (at) {
        *at = 0;
    }

    return TUNNEL_NAME_OK;
}
