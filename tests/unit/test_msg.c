/*
 * Copyright (C) ngx_tunnel developers
 *
 * Unit tests for the control message codec: byte-exact vectors written by
 * hand from PROTOCOL.md, a round trip for every message type, unknown
 * fields skipped, and every bound rejected with a reason.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_msg.h"
#include "check.h"


static uint8_t  buf[TUNNEL_MSG_MAX + 16];


static int
str_eq(tunnel_str_t a, tunnel_str_t b)
{
    if (a.data == NULL || b.data == NULL) {
        return a.data == b.data;
    }

    return a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
}


/* every value of "a" is in "b"; "b" may have 0 integers "a" left unset */
static int
msg_eq(const tunnel_msg_t *a, const tunnel_msg_t *b)
{
    return a->type == b->type
           && a->version == b->version
           && a->heartbeat_ms == b->heartbeat_ms
           && a->code == b->code
           && a->request_id == b->request_id
           && a->kind == b->kind
           && a->port == b->port
           && a->tunnel_id == b->tunnel_id
           && a->remote_port == b->remote_port
           && a->max_streams == b->max_streams
           && str_eq(a->token, b->token)
           && str_eq(a->client_name, b->client_name)
           && str_eq(a->client_version, b->client_version)
           && str_eq(a->session_id, b->session_id)
           && str_eq(a->message, b->message)
           && str_eq(a->name, b->name)
           && str_eq(a->url, b->url)
           && str_eq(a->remote_addr, b->remote_addr)
           && str_eq(a->server_name, b->server_name)
           && str_eq(a->instance, b->instance);
}


/* decode "len" bytes expecting success; returns the size used */
static size_t
decode_ok(tunnel_msg_t *m, const uint8_t *p, size_t len, const char *what)
{
    int          rc;
    size_t       used;
    const char  *why;

    used = 0;
    rc = tunnel_msg_decode(m, p, len, &used, &why);
    CHECK(rc == TUNNEL_MSG_OK, "%s decodes: rc %d (%s)", what, rc,
          why ? why : "");

    return used;
}


/* decode expecting a rejection whose reason contains "reason" */
static void
decode_bad(const uint8_t *p, size_t len, const char *reason,
    const char *what)
{
    int           rc;
    size_t        used;
    const char   *why;
    tunnel_msg_t  m;

    rc = tunnel_msg_decode(&m, p, len, &used, &why);
    CHECK(rc == TUNNEL_MSG_INVALID, "%s: rejected, rc %d", what, rc);
    CHECK(why != NULL && strstr(why, reason) != NULL,
          "%s: reason \"%s\" mentions \"%s\"", what, why ? why : "(none)",
          reason);
}


/* the encoding of "m" is "want", and it decodes back to "m" */
static void
vector(const tunnel_msg_t *m, const uint8_t *want, size_t wlen,
    const char *what)
{
    size_t        n, used;
    tunnel_msg_t  d;

    memset(buf, 0xee, sizeof(buf));
    n = tunnel_msg_encode(m, buf, sizeof(buf));
    CHECK(n == wlen, "%s: %zu bytes, expected %zu", what, n, wlen);
    CHECK_MEM(buf, want, wlen, what);
    CHECK(buf[wlen] == 0xee, "%s: nothing written past the message", what);

    used = decode_ok(&d, want, wlen, what);
    CHECK(used == wlen, "%s: used %zu of %zu", what, used, wlen);
    CHECK(msg_eq(m, &d), "%s: decodes to the same values", what);
}


static void
test_vectors(void)
{
    size_t        i;
    tunnel_msg_t  m;

    static const uint8_t  unbind[] = {
        0x00, 0x08,                             /* length 8 */
        0x07,                                   /* UNBIND */
        0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01  /* tunnel_id 1 */
    };

    static const uint8_t  notice[] = {
        0x00, 0x08, 0x09,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01  /* code 1 reconnect */
    };

    static const uint8_t  error[] = {
        0x00, 0x14, 0x03,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,  /* code 3 auth */
        0x14, 0x00, 0x09, 'b', 'a', 'd', ' ', 't', 'o', 'k', 'e', 'n'
    };

    static const uint8_t  hello[] = {
        0x00, 0x22, 0x01,
        0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,  /* version 1 */
        0x10, 0x00, 0x03, 't', 'o', 'k',          /* token */
        0x11, 0x00, 0x06, 't', 'u', 'n', 'n', 'e', 'l',
        0x12, 0x00, 0x03, '1', '.', '0',
        0x19, 0x00, 0x02, 'i', '1'                /* instance */
    };

    static const uint8_t  welcome[] = {
        0x00, 0x1b, 0x02,
        0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,  /* version */
        0x02, 0x00, 0x04, 0x00, 0x00, 0x27, 0x10,  /* heartbeat 10000 */
        0x09, 0x00, 0x04, 0x00, 0x00, 0x00, 0x64,  /* max_streams 100 */
        0x13, 0x00, 0x02, 's', '1'
    };

    static const uint8_t  bind[] = {
        0x00, 0x16, 0x04,
        0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05,  /* request_id 5 */
        0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,  /* kind tcp */
        0x06, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00   /* port: any */
    };

    static const uint8_t  stream[] = {
        0x00, 0x26, 0x0a,
        0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,  /* kind http */
        0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,  /* tunnel_id 7 */
        0x08, 0x00, 0x04, 0x00, 0x00, 0x12, 0x34,  /* remote_port */
        0x17, 0x00, 0x07, '1', '.', '2', '.', '3', '.', '4',
        0x18, 0x00, 0x03, 'a', '.', 'b'
    };

    struct {
        tunnel_msg_t    m;
        const uint8_t  *want;
        size_t          len;
        const char     *what;
    } vectors[] = {
        { { .type = TUNNEL_UNBIND, .tunnel_id = 1 },
          unbind, sizeof(unbind), "unbind vector" },
        { { .type = TUNNEL_NOTICE, .code = TUNNEL_NOTICE_RECONNECT },
          notice, sizeof(notice), "notice vector" },
        { { .type = TUNNEL_ERROR, .code = TUNNEL_E_AUTH,
            .message = tunnel_str("bad token") },
          error, sizeof(error), "error vector" },
        { { .type = TUNNEL_HELLO, .version = TUNNEL_PROTO_VERSION,
            .token = tunnel_str("tok"), .client_name = tunnel_str("tunnel"),
            .client_version = tunnel_str("1.0"),
            .instance = tunnel_str("i1") },
          hello, sizeof(hello), "hello vector" },
        { { .type = TUNNEL_WELCOME, .version = 1, .heartbeat_ms = 10000,
            .max_streams = 100, .session_id = tunnel_str("s1") },
          welcome, sizeof(welcome), "welcome vector" },
        { { .type = TUNNEL_BIND, .request_id = 5,
            .kind = TUNNEL_KIND_TCP },
          bind, sizeof(bind), "bind vector" },
        { { .type = TUNNEL_STREAM, .tunnel_id = 7, .kind = TUNNEL_KIND_HTTP,
            .remote_addr = tunnel_str("1.2.3.4"), .remote_port = 0x1234,
            .server_name = tunnel_str("a.b") },
          stream, sizeof(stream), "stream vector" },
    };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        vector(&vectors[i].m, vectors[i].want, vectors[i].len,
               vectors[i].what);
    }

    /* what decode reports present */
    decode_ok(&m, stream, sizeof(stream), "stream vector");
    CHECK(TUNNEL_HAS(&m, TUNNEL_T_SERVER_NAME)
          && TUNNEL_HAS(&m, TUNNEL_T_REMOTE_PORT)
          && !TUNNEL_HAS(&m, TUNNEL_T_TOKEN),
          "present bits: 0x%x", m.present);
}


/* encode, decode, compare; then every cut of it asks for more bytes */
static void
round_trip(const tunnel_msg_t *m, const char *what)
{
    int           rc;
    size_t        n, k, used;
    const char   *why;
    tunnel_msg_t  d;

    n = tunnel_msg_encode(m, buf, sizeof(buf));
    CHECK(n > 3, "%s: encoded, %zu bytes", what, n);

    if (n == 0) {
        return;
    }

    CHECK((size_t) (buf[0] << 8 | buf[1]) == n - 2 && buf[2] == m->type,
          "%s: length prefix and type", what);

    used = decode_ok(&d, buf, n, what);
    CHECK(used == n, "%s: used %zu of %zu", what, used, n);
    CHECK(msg_eq(m, &d), "%s: same values after the round trip", what);

    for (k = 0; k < n; k++) {
        rc = tunnel_msg_decode(&d, buf, k, &used, &why);
        if (rc != TUNNEL_MSG_AGAIN) {
            CHECK(rc == TUNNEL_MSG_AGAIN, "%s: %zu of %zu bytes: more "
                  "needed, rc %d", what, k, n, rc);
            break;
        }
    }

    /* a buffer one byte short: refused, nothing written */
    memset(buf, 0xee, sizeof(buf));
    CHECK(tunnel_msg_encode(m, buf, n - 1) == 0, "%s: short buffer", what);
    CHECK(buf[0] == 0xee, "%s: nothing written to a short buffer", what);
}


static void
test_round_trips(void)
{
    size_t        i;
    tunnel_msg_t  m;
    static char   big[1025];

#define BIG(n)  { (const uint8_t *) big, (n) }

    struct {
        tunnel_msg_t  m;
        const char   *what;
    } trips[] = {
        { { .type = TUNNEL_HELLO, .version = TUNNEL_PROTO_VERSION,
            .token = tunnel_str("0123456789abcdef0123456789abcdef"),
            .client_name = tunnel_str("tunnel"),
            .client_version = tunnel_str("0.1.0"),
            .instance = tunnel_str("9f86d081884c7d65") }, "hello" },
        { { .type = TUNNEL_WELCOME, .version = TUNNEL_PROTO_VERSION,
            .session_id = tunnel_str("00000000000000a1"),
            .heartbeat_ms = 15000, .max_streams = 4096 }, "welcome" },
        { { .type = TUNNEL_ERROR, .code = TUNNEL_E_VERSION,
            .message = tunnel_str(tunnel_error_text(TUNNEL_E_VERSION)) },
          "error" },
        { { .type = TUNNEL_BIND, .request_id = 0xffffffffu,
            .kind = TUNNEL_KIND_HTTP, .name = tunnel_str("myapp") },
          "bind" },
        { { .type = TUNNEL_BOUND, .request_id = 1, .tunnel_id = 3,
            .kind = TUNNEL_KIND_TCP, .port = 30017,
            .url = tunnel_str("tcp://edge.example.com:30017") }, "bound" },
        { { .type = TUNNEL_BIND_ERROR, .request_id = 2,
            .code = TUNNEL_E_NAME_TAKEN,
            .message = tunnel_str("myapp is taken") }, "bind_error" },
        { { .type = TUNNEL_UNBIND, .tunnel_id = 3 }, "unbind" },
        { { .type = TUNNEL_UNBOUND, .tunnel_id = 3,
            .code = TUNNEL_E_REPLACED, .message = tunnel_str("") },
          "unbound, empty message" },
        { { .type = TUNNEL_NOTICE, .code = TUNNEL_NOTICE_INFO,
            .message = tunnel_str("maintenance at 10:00") }, "notice" },
        { { .type = TUNNEL_STREAM, .tunnel_id = 1, .kind = TUNNEL_KIND_TLS,
            .remote_addr = tunnel_str("2001:db8::1"), .remote_port = 65535,
            .server_name = tunnel_str("api.example.com") }, "stream" },

        /* every string at its longest */
        { { .type = TUNNEL_HELLO, .version = 1, .token = BIG(512),
            .client_name = BIG(64), .client_version = BIG(64),
            .instance = BIG(64) }, "hello at its bounds" },
        { { .type = TUNNEL_BOUND, .request_id = 1, .tunnel_id = 1,
            .kind = 1, .name = BIG(253), .url = BIG(1024) },
          "bound at its bounds" },
        { { .type = TUNNEL_STREAM, .tunnel_id = 1, .kind = 1,
            .remote_addr = BIG(128), .server_name = BIG(253) },
          "stream at its bounds" },
    };

    memset(big, 'x', sizeof(big) - 1);

    for (i = 0; i < sizeof(trips) / sizeof(trips[0]); i++) {
        round_trip(&trips[i].m, trips[i].what);
    }

    /* fields another type carries are not written */
    memset(&m, 0, sizeof(m));
    m.type = TUNNEL_UNBIND;
    m.tunnel_id = 4;
    m.token = tunnel_str("not sent");
    m.code = 99;
    CHECK(tunnel_msg_encode(&m, buf, sizeof(buf)) == 10,
          "unbind carries its tunnel id only");
}


/* an unknown tag, a tag another type uses, an empty unknown field */
static const uint8_t  v_unknown[] = {
    0x00, 0x2b, 0x07,                           /* UNBIND */
    0xc8, 0x00, 0x06, 'f', 'u', 't', 'u', 'r', 'e',
    0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x09,   /* tunnel_id 9 */
    0x10, 0x00, 0x03, 't', 'o', 'k',            /* token: hello's */
    0x03, 0x00, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9,    /* code, 9 bytes */
    0x1f, 0x00, 0x00,
    0xff, 0x00, 0x02, 0xff, 0xff
};

/* integers of 1, 8 and 2 bytes */
static const uint8_t  v_ints[] = {
    0x00, 0x15, 0x04,                           /* BIND */
    0x04, 0x00, 0x01, 0x07,                     /* request_id */
    0x05, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 2,   /* kind */
    0x06, 0x00, 0x02, 0x01, 0xbb                /* port 443 */
};

static const uint8_t  v_max32[] = {
    0x00, 0x0c, 0x07,
    0x07, 0x00, 0x08, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff
};

/* two messages and the start of a third */
static const uint8_t  v_two[] = {
    0x00, 0x08, 0x07, 0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x08, 0x09, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02,
    0x00, 0x08
};


static void
test_unknown_fields_skipped(void)
{
    size_t        used;
    const char   *why;
    tunnel_msg_t  m;

    used = decode_ok(&m, v_unknown, sizeof(v_unknown), "unknown fields");
    CHECK(used == sizeof(v_unknown), "the whole message used, %zu", used);
    CHECK(m.type == TUNNEL_UNBIND && m.tunnel_id == 9,
          "tunnel_id 9 found among unknown fields, %u", m.tunnel_id);
    CHECK(m.token.data == NULL && m.code == 0,
          "fields of other types are ignored, not stored");
    CHECK(m.present == (1u << TUNNEL_T_TUNNEL_ID),
          "only tunnel_id present: 0x%x", m.present);

    decode_ok(&m, v_ints, sizeof(v_ints), "short and long integers");
    CHECK(m.request_id == 7 && m.kind == 2 && m.port == 443,
          "values %u %u %u", m.request_id, m.kind, m.port);

    decode_ok(&m, v_max32, sizeof(v_max32), "2^32-1 in 8 bytes");
    CHECK(m.tunnel_id == 0xffffffffu, "tunnel_id %u", m.tunnel_id);

    /* several messages back to back, each used in turn */
    used = decode_ok(&m, v_two, sizeof(v_two), "first of two");
    CHECK(used == 10 && m.type == TUNNEL_UNBIND, "first used %zu", used);
    used = decode_ok(&m, v_two + 10, sizeof(v_two) - 10, "second of two");
    CHECK(used == 10 && m.type == TUNNEL_NOTICE && m.code == 2,
          "second used %zu", used);
    CHECK(tunnel_msg_decode(&m, v_two + 20, 2, &used, &why)
          == TUNNEL_MSG_AGAIN, "the third is incomplete");
}


static const uint8_t  v_unbind[] = {
    0x00, 0x08, 0x07, 0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01
};

static const uint8_t  v_empty[] = { 0x00, 0x00 };
static const uint8_t  v_type0[] = { 0x00, 0x01, 0x00 };
static const uint8_t  v_type11[] = { 0x00, 0x01, 0x0b };
static const uint8_t  v_type255[] = { 0x00, 0x01, 0xff };

/* a field header cut by the message's end; a field longer than it */
static const uint8_t  v_cut[] = { 0x00, 0x03, 0x07, 0x07, 0x00 };
static const uint8_t  v_longer[] = {
    0x00, 0x05, 0x07, 0x07, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00
};

/* integers of 0 and 9 bytes, and one of 2^32 */
static const uint8_t  v_int0[] = { 0x00, 0x04, 0x07, 0x07, 0x00, 0x00 };
static const uint8_t  v_int9[] = {
    0x00, 0x0d, 0x07, 0x07, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1
};
static const uint8_t  v_int33[] = {
    0x00, 0x09, 0x07, 0x07, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00
};

static const uint8_t  v_twice[] = {
    0x00, 0x0f, 0x07,
    0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
    0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02
};


/* every required field of every type, and the others it needs */
static const struct {
    uint8_t      type;
    const char  *name;
    uint8_t      have[4];       /* the other required integer fields */
} required[] = {
    { TUNNEL_HELLO, "'version'", { 0 } },
    { TUNNEL_HELLO, "'token'", { TUNNEL_T_VERSION } },
    { TUNNEL_WELCOME, "'version'", { 0 } },
    { TUNNEL_WELCOME, "'session_id'", { TUNNEL_T_VERSION } },
    { TUNNEL_ERROR, "'code'", { 0 } },
    { TUNNEL_BIND, "'request_id'", { TUNNEL_T_KIND } },
    { TUNNEL_BIND, "'kind'", { TUNNEL_T_REQUEST_ID } },
    { TUNNEL_BOUND, "'request_id'", { TUNNEL_T_KIND, TUNNEL_T_TUNNEL_ID } },
    { TUNNEL_BOUND, "'kind'", { TUNNEL_T_REQUEST_ID, TUNNEL_T_TUNNEL_ID } },
    { TUNNEL_BOUND, "'tunnel_id'", { TUNNEL_T_REQUEST_ID, TUNNEL_T_KIND } },
    { TUNNEL_BOUND, "'url'",
      { TUNNEL_T_REQUEST_ID, TUNNEL_T_KIND, TUNNEL_T_TUNNEL_ID } },
    { TUNNEL_BIND_ERROR, "'request_id'", { TUNNEL_T_CODE } },
    { TUNNEL_BIND_ERROR, "'code'", { TUNNEL_T_REQUEST_ID } },
    { TUNNEL_UNBIND, "'tunnel_id'", { 0 } },
    { TUNNEL_UNBOUND, "'tunnel_id'", { TUNNEL_T_CODE } },
    { TUNNEL_UNBOUND, "'code'", { TUNNEL_T_TUNNEL_ID } },
    { TUNNEL_NOTICE, "'code'", { 0 } },
    { TUNNEL_STREAM, "'tunnel_id'", { TUNNEL_T_KIND } },
    { TUNNEL_STREAM, "'kind'", { TUNNEL_T_TUNNEL_ID } },
};


/* every string field and its bound */
static const struct {
    uint8_t      type;
    uint8_t      tag;
    uint16_t     max;
    size_t       offset;
} bounded[] = {
    { TUNNEL_HELLO, TUNNEL_T_TOKEN, 512, offsetof(tunnel_msg_t, token) },
    { TUNNEL_HELLO, TUNNEL_T_CLIENT_NAME, 64,
      offsetof(tunnel_msg_t, client_name) },
    { TUNNEL_HELLO, TUNNEL_T_CLIENT_VERSION, 64,
      offsetof(tunnel_msg_t, client_version) },
    { TUNNEL_HELLO, TUNNEL_T_INSTANCE, 64,
      offsetof(tunnel_msg_t, instance) },
    { TUNNEL_WELCOME, TUNNEL_T_SESSION_ID, 64,
      offsetof(tunnel_msg_t, session_id) },
    { TUNNEL_ERROR, TUNNEL_T_MESSAGE, 1024,
      offsetof(tunnel_msg_t, message) },
    { TUNNEL_BIND, TUNNEL_T_NAME, 253, offsetof(tunnel_msg_t, name) },
    { TUNNEL_BOUND, TUNNEL_T_URL, 1024, offsetof(tunnel_msg_t, url) },
    { TUNNEL_STREAM, TUNNEL_T_REMOTE_ADDR, 128,
      offsetof(tunnel_msg_t, remote_addr) },
    { TUNNEL_STREAM, TUNNEL_T_SERVER_NAME, 253,
      offsetof(tunnel_msg_t, server_name) },
};


static void
test_bounds(void)
{
    int              rc;
    char             what[64];
    size_t           used, n, i, j, len;
    uint8_t          in[64];
    const char      *why;
    tunnel_str_t     s;
    tunnel_msg_t     m;
    static uint8_t   over[2048];

    /* truncated: fewer bytes than the length says is "again", not bad */
    for (n = 0; n < sizeof(v_unbind); n++) {
        rc = tunnel_msg_decode(&m, v_unbind, n, &used, &why);
        CHECK(rc == TUNNEL_MSG_AGAIN, "%zu bytes: again, rc %d", n, rc);
    }

    decode_bad(v_empty, sizeof(v_empty), "without a type", "length 0");
    decode_bad(v_type0, sizeof(v_type0), "unknown message type 0",
               "type 0");
    decode_bad(v_type11, sizeof(v_type11), "unknown message type 11",
               "type 11");
    decode_bad(v_type255, sizeof(v_type255), "unknown message type 255",
               "type 255");
    decode_bad(v_cut, sizeof(v_cut), "cut short", "field header cut");
    decode_bad(v_longer, sizeof(v_longer), "longer than the message",
               "field past the end");
    decode_bad(v_int0, sizeof(v_int0), "expected 1-8", "0-byte integer");
    decode_bad(v_int9, sizeof(v_int9), "expected 1-8", "9-byte integer");
    decode_bad(v_int33, sizeof(v_int33), "too large", "integer of 2^32");
    decode_bad(v_twice, sizeof(v_twice), "appears twice",
               "tunnel_id twice");

    for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        len = 3;
        in[2] = required[i].type;

        for (j = 0; j < 4 && required[i].have[j]; j++) {
            in[len++] = required[i].have[j];
            in[len++] = 0;
            in[len++] = 1;
            in[len++] = 1;
        }

        in[0] = 0;
        in[1] = (uint8_t) (len - 2);

        snprintf(what, sizeof(what), "%s without %s",
                 tunnel_msg_type_name(required[i].type), required[i].name);
        decode_bad(in, len, required[i].name, what);
    }

    /* every string one byte over its bound, by the decoder and encoder */
    for (i = 0; i < sizeof(bounded) / sizeof(bounded[0]); i++) {
        len = bounded[i].max + 1;
        over[0] = (uint8_t) ((len + 4) >> 8);
        over[1] = (uint8_t) (len + 4);
        over[2] = bounded[i].type;
        over[3] = bounded[i].tag;
        over[4] = (uint8_t) (len >> 8);
        over[5] = (uint8_t) len;
        memset(over + 6, 'a', len);

        snprintf(what, sizeof(what), "%s field %u of %zu bytes",
                 tunnel_msg_type_name(bounded[i].type), bounded[i].tag, len);
        decode_bad(over, len + 6, "allowed", what);

        memset(&m, 0, sizeof(m));
        m.type = bounded[i].type;
        s.data = over + 6;
        s.len = len;
        memcpy((uint8_t *) &m + bounded[i].offset, &s, sizeof(s));
        CHECK(tunnel_msg_encode(&m, buf, sizeof(buf)) == 0,
              "%s: the encoder refuses it too", what);
    }

    /*
     * TUNNEL_MSG_MAX: the 16-bit length cannot say more, so the largest
     * message is 2 + 65535 bytes; one padded with an unknown field to
     * exactly that size decodes, and needs all of it.
     */
    memset(buf, 0, TUNNEL_MSG_MAX);
    buf[0] = 0xff;
    buf[1] = 0xff;
    buf[2] = TUNNEL_UNBIND;
    buf[3] = TUNNEL_T_TUNNEL_ID;
    buf[4] = 0;
    buf[5] = 4;
    buf[9] = 5;
    buf[10] = 0xfe;                             /* unknown tag */
    buf[11] = (uint8_t) ((TUNNEL_MSG_MAX - 13) >> 8);
    buf[12] = (uint8_t) (TUNNEL_MSG_MAX - 13);

    rc = tunnel_msg_decode(&m, buf, TUNNEL_MSG_MAX - 1, &used, &why);
    CHECK(rc == TUNNEL_MSG_AGAIN, "one byte short of the largest: again");
    rc = tunnel_msg_decode(&m, buf, TUNNEL_MSG_MAX + 16, &used, &why);
    CHECK(rc == TUNNEL_MSG_OK && used == TUNNEL_MSG_MAX && m.tunnel_id == 5,
          "the largest message decodes: rc %d, used %zu", rc, used);

    /* the encoder refuses unknown types */
    memset(&m, 0, sizeof(m));
    CHECK(tunnel_msg_encode(&m, buf, sizeof(buf)) == 0, "type 0 refused");
    m.type = TUNNEL_MSG_LAST + 1;
    CHECK(tunnel_msg_encode(&m, buf, sizeof(buf)) == 0, "type 11 refused");
}


static void
test_names(void)
{
    unsigned  code;

    CHECK(strcmp(tunnel_msg_type_name(TUNNEL_HELLO), "hello") == 0
          && strcmp(tunnel_msg_type_name(TUNNEL_BIND_ERROR), "bind_error")
             == 0
          && strcmp(tunnel_msg_type_name(TUNNEL_STREAM), "stream") == 0
          && strcmp(tunnel_msg_type_name(0), "unknown") == 0
          && strcmp(tunnel_msg_type_name(11), "unknown") == 0,
          "type names");

    CHECK(strcmp(tunnel_kind_name(TUNNEL_KIND_HTTP), "http") == 0
          && strcmp(tunnel_kind_name(TUNNEL_KIND_TLS), "tls") == 0
          && strcmp(tunnel_kind_name(TUNNEL_KIND_TCP), "tcp") == 0
          && strcmp(tunnel_kind_name(4), "unknown") == 0, "kind names");

    CHECK(tunnel_kind_parse("http", 4) == TUNNEL_KIND_HTTP
          && tunnel_kind_parse("tls", 3) == TUNNEL_KIND_TLS
          && tunnel_kind_parse("tcp", 3) == TUNNEL_KIND_TCP
          && tunnel_kind_parse("tcpx", 4) == 0
          && tunnel_kind_parse("htt", 3) == 0
          && tunnel_kind_parse("", 0) == 0, "kind parse");

    for (code = 1; code <= TUNNEL_E_LAST; code++) {
        CHECK(strcmp(tunnel_error_text(code), "an unknown error") != 0,
              "error %u has a text", code);
    }

    CHECK(strcmp(tunnel_error_text(0), "an unknown error") == 0
          && strcmp(tunnel_error_text(TUNNEL_E_LAST + 1), "an unknown error")
             == 0, "unknown error codes");

    CHECK(tunnel_str(NULL).data == NULL && tunnel_str(NULL).len == 0
          && tunnel_str("abc").len == 3, "tunnel_str");
}


int
main(void)
{
    test_vectors();
    test_round_trips();
    test_unknown_fields_skipped();
    test_bounds();
    test_names();

    return check_done("test_msg");
}
