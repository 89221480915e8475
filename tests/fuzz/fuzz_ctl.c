/*
 * Copyright (C) ngx_tunnel developers
 *
 * libFuzzer target for the server's side of the control stream
 * (tunnel_ctl.h).  The input is
 *
 *     byte 0      the server: bits 0-1 its domain (none, "tun.test", "a.b",
 *                 239 bytes), bits 2-3 its tcp ports (none, 30000-30099,
 *                 1-65535, 7-7), bits 4-5 the token's (any, 30010-30019,
 *                 40000-40010, 30050-65535), bit 6 the token is refused
 *                 after HELLO, bit 7 it is accepted only after one more
 *                 feed (bytes pile up meanwhile)
 *     byte 1      bits 0-3: drain before that many events (15: never);
 *                 bits 4-7 and byte 2: how the bytes are cut (below)
 *     the rest    what a client sends on its control stream
 *
 * The bytes go in three times: in one piece, byte by byte, and cut in
 * pieces of random sizes.  Each time every event is checked against a
 * reference written from PROTOCOL.md, not from core/: the framing (the
 * message at the reference's offset, within 4 KiB, decodes), the state
 * (HELLO first and once, nothing while the token is checked, nothing after
 * ERROR), and for each request every rule (a HELLO's version and strings, a
 * BIND's kind, its full name or its port and range); each refusal has the
 * code the reference expects and a reason.  The three runs must give the
 * same events.  tunnel_name_check() is compared with the reference's name
 * rules on the raw input as well.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_ctl.h"


#define FZ_WHOLE        0
#define FZ_BYTES        1
#define FZ_RANDOM       2

#define FZ_NONE         0
#define FZ_REFUSED      1           /* an event the reference expects */


/* the reference's own view of the session */
typedef struct {
    const uint8_t      *stream;     /* everything the client sends */
    size_t              fed;        /* of it, taken by the ctl */
    size_t              off;        /* where the next message starts */

    int                 state;      /* TUNNEL_CTL_S_* as it should be */
    int                 draining;
    int                 refuse_token;
    int                 late_accept;
    int                 accept_due; /* a late accept, after the next feed */
    unsigned            drain_at;
    unsigned            events;

    tunnel_ctl_conf_t   conf;
    uint16_t            tok_min;
    uint16_t            tok_max;

    uint64_t            hash;       /* of the events, to compare runs */
} fz_ref_t;


/* what the reference expects of the next message */
typedef struct {
    int                 type;       /* TUNNEL_CTL_* */
    uint32_t            code;
    uint8_t             name[600];
    size_t              name_len;
    uint16_t            port;
    uint16_t            port_min;
    uint16_t            port_max;
} fz_expect_t;


static tunnel_ctl_t  fz_ctl;

static const char  fz_long_domain[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."
    "ddddddddddddddddddddddddddddddddddddddddddddddd";

static const char  *fz_domains[4] = { NULL, "tun.test", "a.b",
                                      fz_long_domain };

static const uint16_t  fz_server_ports[4][2] = {
    { 0, 0 }, { 30000, 30099 }, { 1, 65535 }, { 7, 7 }
};

static const uint16_t  fz_token_ports[4][2] = {
    { 0, 0 }, { 30010, 30019 }, { 40000, 40010 }, { 30050, 65535 }
};


static void
fz_hash(fz_ref_t *r, const void *p, size_t n)
{
    size_t          i;
    const uint8_t  *b = p;

    for (i = 0; i < n; i++) {
        r->hash = (r->hash ^ b[i]) * 0x100000001b3ULL;
    }

    r->hash = (r->hash ^ 0xff) * 0x100000001b3ULL;
}


static int
fz_printable(tunnel_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (!(s->data[i] >= ' ' && s->data[i] <= '~')) {
            return 0;
        }
    }

    return 1;
}


/*
 * PROTOCOL.md 3.4, name_invalid: letters, digits and hyphens (lowercase
 * here), dot-separated labels of 1 to 63 that neither begin nor end with a
 * hyphen, 253 in all.
 */
static int
fz_name_ok(const uint8_t *p, size_t len)
{
    size_t          n;
    const uint8_t  *end, *dot;

    if (len == 0 || len > 253) {
        return 0;
    }

    end = p + len;

    while (p <= end) {
        dot = memchr(p, '.', end - p);
        n = (dot ? dot : end) - p;

        if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-') {
            return 0;
        }

        while (n--) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                  || *p == '-'))
            {
                return 0;
            }

            p++;
        }

        if (dot == NULL) {
            return 1;
        }

        p = dot + 1;
    }

    return 0;               /* a dot last: an empty label */
}


static uint8_t
fz_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


/* what a message that decodes should give, in the reference's state */
static void
fz_expect(fz_ref_t *r, tunnel_msg_t *m, fz_expect_t *x)
{
    size_t         i;
    uint16_t       lo, hi;
    tunnel_str_t  *d;

    memset(x, 0, sizeof(fz_expect_t));
    x->type = TUNNEL_CTL_ERROR;
    x->code = TUNNEL_E_BAD_MESSAGE;

    if (r->state == TUNNEL_CTL_S_HELLO) {
        if (m->type != TUNNEL_HELLO) {
            return;
        }

        if (m->version != 1) {
            x->code = TUNNEL_E_VERSION;
            return;
        }

        if (!fz_printable(&m->client_name)
            || !fz_printable(&m->client_version)
            || !fz_printable(&m->instance))
        {
            return;
        }

        x->type = TUNNEL_CTL_HELLO;
        x->code = 0;
        return;
    }

    /* open */

    if (m->type == TUNNEL_UNBIND) {
        x->type = TUNNEL_CTL_UNBIND;
        x->code = 0;
        return;
    }

    if (m->type != TUNNEL_BIND) {
        return;
    }

    x->type = TUNNEL_CTL_BIND_ERROR;

    if (r->draining) {
        x->code = TUNNEL_E_SHUTDOWN;
        return;
    }

    d = &r->conf.domain;

    switch (m->kind) {

    case TUNNEL_KIND_HTTP:
    case TUNNEL_KIND_TLS:
        x->code = TUNNEL_E_NAME_INVALID;

        if (m->name.len == 0) {
            if (d->len == 0) {
                return;
            }

            break;
        }

        for (i = 0; i < m->name.len; i++) {
            x->name[x->name_len++] = fz_lower(m->name.data[i]);
        }

        if (memchr(m->name.data, '.', m->name.len) == NULL) {
            if (d->len == 0) {
                return;
            }

            x->name[x->name_len++] = '.';

            for (i = 0; i < d->len; i++) {
                x->name[x->name_len++] = fz_lower(d->data[i]);
            }
        }

        if (!fz_name_ok(x->name, x->name_len)) {
            return;
        }

        break;

    case TUNNEL_KIND_TCP:
        x->code = TUNNEL_E_KIND;

        if (r->conf.port_min == 0) {
            return;
        }

        lo = r->conf.port_min;
        hi = r->conf.port_max;

        if (r->tok_min) {
            lo = r->tok_min > lo ? r->tok_min : lo;
            hi = r->tok_max < hi ? r->tok_max : hi;
        }

        x->code = TUNNEL_E_PORT_FORBIDDEN;

        if (lo > hi || (m->port && (m->port < lo || m->port > hi))) {
            return;
        }

        x->port = (uint16_t) m->port;
        x->port_min = lo;
        x->port_max = hi;
        break;

    default:
        x->code = TUNNEL_E_KIND;
        return;
    }

    x->type = TUNNEL_CTL_BIND;
    x->code = 0;
}


static void
fz_in_buf(tunnel_str_t *s)
{
    if (s->len && (s->data < fz_ctl.buf
                   || s->data + s->len > fz_ctl.buf + sizeof(fz_ctl.buf)))
    {
        abort();
    }
}


/* one event (or none) from tunnel_ctl_next(), checked */
static int
fz_next(fz_ref_t *r)
{
    int                  rc, want;
    size_t               avail, size, used;
    tunnel_msg_t         m;
    const char          *why;
    fz_expect_t          x;
    tunnel_ctl_event_t   ev;

    if (r->events == r->drain_at) {
        tunnel_ctl_drain(&fz_ctl);
        r->draining = 1;
    }

    rc = tunnel_ctl_next(&fz_ctl, &ev);

    if (rc != ev.type || tunnel_ctl_state(&fz_ctl) > TUNNEL_CTL_S_CLOSED) {
        abort();
    }

    /* nothing while the token is checked, nothing once closed */
    if (r->state == TUNNEL_CTL_S_AUTH || r->state == TUNNEL_CTL_S_CLOSED) {
        if (rc != TUNNEL_CTL_AGAIN
            || tunnel_ctl_state(&fz_ctl) != (unsigned) r->state)
        {
            abort();
        }

        return 0;
    }

    /* the framing: what the reference finds at its offset */
    memset(&m, 0, sizeof(tunnel_msg_t));
    memset(&x, 0, sizeof(fz_expect_t));
    avail = r->fed - r->off;
    want = TUNNEL_CTL_AGAIN;
    size = 0;

    if (avail >= 2) {
        size = 2 + ((size_t) r->stream[r->off] << 8 | r->stream[r->off + 1]);
    }

    if (size > 4096) {
        want = FZ_REFUSED;
        x.type = TUNNEL_CTL_ERROR;
        x.code = TUNNEL_E_BAD_MESSAGE;

    } else {
        switch (tunnel_msg_decode(&m, r->stream + r->off, avail, &used,
                                  &why))
        {
        case TUNNEL_MSG_AGAIN:
            break;

        case TUNNEL_MSG_OK:
            if (used != size) {
                abort();
            }

            fz_expect(r, &m, &x);
            want = FZ_REFUSED;
            break;

        default:
            want = FZ_REFUSED;
            x.type = TUNNEL_CTL_ERROR;
            x.code = TUNNEL_E_BAD_MESSAGE;
            size = 0;
        }
    }

    if (want == TUNNEL_CTL_AGAIN) {
        if (rc != TUNNEL_CTL_AGAIN) {
            abort();
        }

        return 0;
    }

    if (rc != x.type) {
        abort();
    }

    r->events++;
    fz_hash(r, &rc, sizeof(rc));

    switch (rc) {

    case TUNNEL_CTL_ERROR:
        if (ev.code != x.code || ev.message == NULL || ev.message[0] == '\0'
            || ev.why == NULL || ev.why[0] == '\0'
            || tunnel_ctl_state(&fz_ctl) != TUNNEL_CTL_S_CLOSED)
        {
            abort();
        }

        fz_hash(r, ev.message, strlen(ev.message));
        fz_hash(r, ev.why, strlen(ev.why));
        r->state = TUNNEL_CTL_S_CLOSED;
        return 1;

    case TUNNEL_CTL_BIND_ERROR:
        if (ev.code != x.code || ev.message == NULL || ev.message[0] == '\0'
            || ev.why == NULL || ev.why[0] == '\0'
            || ev.msg.type != TUNNEL_BIND
            || ev.msg.request_id != m.request_id)
        {
            abort();
        }

        fz_hash(r, ev.message, strlen(ev.message));
        fz_hash(r, &ev.code, sizeof(ev.code));
        break;

    case TUNNEL_CTL_HELLO:
        if (ev.msg.type != TUNNEL_HELLO || ev.msg.version != 1
            || !TUNNEL_HAS(&ev.msg, TUNNEL_T_TOKEN)
            || ev.msg.token.len != m.token.len
            || (m.token.len
                && memcmp(ev.msg.token.data, m.token.data, m.token.len)))
        {
            abort();
        }

        fz_in_buf(&ev.msg.token);
        fz_in_buf(&ev.msg.client_name);
        fz_in_buf(&ev.msg.client_version);
        fz_in_buf(&ev.msg.instance);

        fz_hash(r, ev.msg.token.data, ev.msg.token.len);
        r->state = TUNNEL_CTL_S_AUTH;
        break;

    case TUNNEL_CTL_BIND:
        if (ev.msg.type != TUNNEL_BIND || ev.msg.kind != m.kind
            || ev.msg.request_id != m.request_id
            || ev.name.len != x.name_len
            || (x.name_len
                && (ev.name.data != fz_ctl.name
                    || memcmp(ev.name.data, x.name, x.name_len) != 0))
            || ev.port != x.port || ev.port_min != x.port_min
            || ev.port_max != x.port_max)
        {
            abort();
        }

        /* never a name that breaks the rules, whatever the reference */
        if (ev.name.len
            && (ev.name.len > TUNNEL_NAME_MAX
                || tunnel_name_check(ev.name.data, ev.name.len, NULL)
                   != TUNNEL_NAME_OK))
        {
            abort();
        }

        if (ev.msg.kind == TUNNEL_KIND_TCP
            && (ev.port_min == 0 || ev.port_min > ev.port_max
                || (ev.port && (ev.port < ev.port_min
                                || ev.port > ev.port_max))))
        {
            abort();
        }

        fz_in_buf(&ev.msg.name);
        fz_hash(r, ev.name.data, ev.name.len);
        fz_hash(r, &ev.port, sizeof(ev.port));
        break;

    case TUNNEL_CTL_UNBIND:
        if (ev.msg.type != TUNNEL_UNBIND
            || ev.msg.tunnel_id != m.tunnel_id)
        {
            abort();
        }

        fz_hash(r, &ev.msg.tunnel_id, sizeof(ev.msg.tunnel_id));
        break;

    default:
        abort();
    }

    r->off += size;

    if (rc == TUNNEL_CTL_HELLO) {
        if (r->refuse_token) {
            tunnel_ctl_close(&fz_ctl);
            r->state = TUNNEL_CTL_S_CLOSED;

        } else if (r->late_accept) {
            r->accept_due = 1;

        } else {
            tunnel_ctl_accept(&fz_ctl, r->tok_min, r->tok_max);
            r->state = TUNNEL_CTL_S_OPEN;
        }
    }

    return 1;
}


static uint64_t
fz_run(fz_ref_t *proto, const uint8_t *data, size_t size, int how,
    uint32_t seed, unsigned bits)
{
    int       progress;
    size_t    pos, chunk, k;
    fz_ref_t  r;

    r = *proto;
    tunnel_ctl_init(&fz_ctl, &r.conf);

    pos = 0;

    for ( ;; ) {
        progress = 0;

        if (pos < size) {
            if (how == FZ_WHOLE) {
                chunk = size - pos;

            } else if (how == FZ_BYTES) {
                chunk = 1;

            } else {
                seed = seed * 1103515245 + 12345;
                chunk = 1 + (seed >> 8) % ((size_t) 1 << bits);
            }

            if (chunk > size - pos) {
                chunk = size - pos;
            }

            k = tunnel_ctl_feed(&fz_ctl, data + pos, chunk);

            if (k > chunk || (r.state == TUNNEL_CTL_S_CLOSED && k != chunk)) {
                abort();
            }

            pos += k;
            progress = (k > 0);

            if (r.state != TUNNEL_CTL_S_CLOSED) {
                r.fed += k;
            }
        }

        if (r.accept_due) {
            r.accept_due = 0;
            tunnel_ctl_accept(&fz_ctl, r.tok_min, r.tok_max);
            r.state = TUNNEL_CTL_S_OPEN;
            progress = 1;
        }

        while (fz_next(&r)) {
            progress = 1;
        }

        if (pos == size && !r.accept_due) {
            break;
        }

        /* a full buffer and no event: the ctl would wait forever */
        if (!progress) {
            abort();
        }
    }

    /* what was fed but not taken is less than a message, or waits */
    if (r.state == TUNNEL_CTL_S_OPEN || r.state == TUNNEL_CTL_S_HELLO) {
        if (r.fed - r.off >= 4096) {
            abort();
        }
    }

    fz_hash(&r, &r.events, sizeof(r.events));
    fz_hash(&r, &r.state, sizeof(r.state));

    return r.hash;
}


/* tunnel_name_check() against the reference, and where it says the fault is */
static void
fz_names(const uint8_t *p, size_t len)
{
    int     rc;
    size_t  at;

    rc = tunnel_name_check(p, len, &at);

    if ((rc == TUNNEL_NAME_OK) != fz_name_ok(p, len)) {
        abort();
    }

    switch (rc) {

    case TUNNEL_NAME_OK:
    case TUNNEL_NAME_EMPTY:
    case TUNNEL_NAME_LONG:
        if (at != 0 || (rc == TUNNEL_NAME_EMPTY) != (len == 0)
            || (rc == TUNNEL_NAME_LONG) != (len > 253))
        {
            abort();
        }

        break;

    case TUNNEL_NAME_CHAR:
        if (at >= len || p[at] == '.' || p[at] == '-'
            || (p[at] >= 'a' && p[at] <= 'z')
            || (p[at] >= '0' && p[at] <= '9'))
        {
            abort();
        }

        break;

    case TUNNEL_NAME_EMPTY_LABEL:
    case TUNNEL_NAME_LONG_LABEL:
    case TUNNEL_NAME_HYPHEN:
        /* "at" starts a label: the name's start or after a dot */
        if (at > len || (at > 0 && p[at - 1] != '.')) {
            abort();
        }

        if (rc == TUNNEL_NAME_EMPTY_LABEL
            && !(at == len || p[at] == '.'))
        {
            abort();
        }

        if (rc == TUNNEL_NAME_LONG_LABEL
            && (len - at <= 63 || memchr(p + at, '.', 64) != NULL))
        {
            abort();
        }

        break;

    default:
        abort();
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t   cfg;
    uint32_t  seed;
    uint64_t  whole, bytes, random;
    fz_ref_t  r;

    fz_names(data, size);

    if (size < 3) {
        return 0;
    }

    cfg = data[0];

    memset(&r, 0, sizeof(fz_ref_t));
    r.conf.domain = tunnel_str(fz_domains[cfg & 3]);
    r.conf.port_min = fz_server_ports[(cfg >> 2) & 3][0];
    r.conf.port_max = fz_server_ports[(cfg >> 2) & 3][1];
    r.tok_min = fz_token_ports[(cfg >> 4) & 3][0];
    r.tok_max = fz_token_ports[(cfg >> 4) & 3][1];
    r.refuse_token = (cfg >> 6) & 1;
    r.late_accept = (cfg >> 7) & 1;
    r.drain_at = (data[1] & 0x0f) == 0x0f ? (unsigned) -1 : data[1] & 0x0f;
    r.state = TUNNEL_CTL_S_HELLO;
    r.hash = 0xcbf29ce484222325ULL;

    seed = data[2];
    r.stream = data + 3;

    whole = fz_run(&r, data + 3, size - 3, FZ_WHOLE, 0, 0);
    bytes = fz_run(&r, data + 3, size - 3, FZ_BYTES, 0, 0);
    random = fz_run(&r, data + 3, size - 3, FZ_RANDOM, seed,
                    1 + (data[1] >> 4) % 13);

    if (whole != bytes || whole != random) {
        abort();
    }

    return 0;
}
