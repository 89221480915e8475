/*
 * Copyright (C) ngx_tunnel developers
 *
 * Unit tests for the server's side of the control stream (tunnel_ctl.h):
 * byte vectors, written by hand from PROTOCOL.md, for each way a client's
 * message is taken or refused; the framing (the 4 KiB bound, messages cut
 * anywhere or several in one piece); the states (hello first and once, the
 * wait for the token, draining, closed); and the name syntax rules.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_ctl.h"
#include "check.h"


/* an integer field's size and value, as encoders write it */
#define I4(v)                                                                \
    0x00, 0x04, (uint8_t) ((v) >> 24), (uint8_t) ((v) >> 16),              \
    (uint8_t) ((v) >> 8), (uint8_t) (v)

#define FEED(ctl, vec)   feed_all(ctl, vec, sizeof(vec))


static tunnel_ctl_t        ctl;
static tunnel_ctl_event_t  ev;
static uint8_t             big[2 * TUNNEL_CTL_MSG_MAX];


/* PROTOCOL.md 3.6 */
static const uint8_t  hello[] = {
    0x00, 0x22, 0x01,
    0x01, I4(1),                                /* version 1 */
    0x10, 0x00, 0x03, 't', 'o', 'k',            /* token */
    0x11, 0x00, 0x06, 't', 'u', 'n', 'n', 'e', 'l',
    0x12, 0x00, 0x03, '1', '.', '0',
    0x19, 0x00, 0x02, 'i', '1'                  /* instance */
};

/* BIND {request_id 7, kind http, name "myapp"} */
static const uint8_t  bind_label[] = {
    0x00, 0x17, 0x04,
    0x04, I4(7),
    0x05, I4(1),
    0x15, 0x00, 0x05, 'm', 'y', 'a', 'p', 'p'
};

/* UNBIND {tunnel_id 3} */
static const uint8_t  unbind[] = {
    0x00, 0x08, 0x07,
    0x07, I4(3)
};


static void
conf_init(tunnel_ctl_conf_t *conf, const char *domain, uint16_t lo,
    uint16_t hi)
{
    memset(conf, 0, sizeof(tunnel_ctl_conf_t));
    conf->domain = tunnel_str(domain);
    conf->port_min = lo;
    conf->port_max = hi;
}


/* a fresh session on "tun.test" with tcp ports 30000-30099 */
static void
start(void)
{
    tunnel_ctl_conf_t  conf;

    conf_init(&conf, "tun.test", 30000, 30099);
    tunnel_ctl_init(&ctl, &conf);
}


static void
feed_all(tunnel_ctl_t *c, const uint8_t *p, size_t n)
{
    size_t  k;

    k = tunnel_ctl_feed(c, p, n);
    CHECK(k == n, "fed %zu of %zu bytes", k, n);
}


/* a session past its hello, its token accepted with "lo"-"hi" */
static void
open_session(uint16_t lo, uint16_t hi)
{
    start();
    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "hello taken");
    tunnel_ctl_accept(&ctl, lo, hi);
    CHECK(tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_OPEN, "open");
}


static int
str_is(tunnel_str_t s, const char *want)
{
    return s.len == strlen(want)
           && (s.len == 0 || memcmp(s.data, want, s.len) == 0);
}


/* the next event is an ERROR with "code", "message" and a "why" */
static void
expect_error(uint32_t code, const char *message, const char *why,
    const char *what)
{
    int                 rc;
    tunnel_ctl_event_t  after;

    rc = tunnel_ctl_next(&ctl, &ev);

    CHECK(rc == TUNNEL_CTL_ERROR && ev.type == rc && ev.code == code,
          "%s: ERROR %u, got event %d code %u", what, code, rc, ev.code);
    CHECK(ev.message && strcmp(ev.message, message) == 0,
          "%s: message \"%s\"", what, ev.message ? ev.message : "(null)");
    CHECK(ev.why && strcmp(ev.why, why) == 0,
          "%s: why \"%s\"", what, ev.why ? ev.why : "(null)");
    CHECK(tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_CLOSED,
          "%s: closed after it", what);
    CHECK(tunnel_ctl_next(&ctl, &after) == TUNNEL_CTL_AGAIN,
          "%s: nothing after it", what);
}


/* the next event is a BIND_ERROR with "code", for "request_id" */
static void
expect_bind_error(uint32_t request_id, uint32_t code, const char *message,
    const char *what)
{
    int  rc;

    rc = tunnel_ctl_next(&ctl, &ev);

    CHECK(rc == TUNNEL_CTL_BIND_ERROR && ev.code == code
          && ev.msg.request_id == request_id,
          "%s: BIND_ERROR %u for %u, got event %d code %u id %u", what, code,
          request_id, rc, ev.code, ev.msg.request_id);
    CHECK(ev.message && strcmp(ev.message, message) == 0,
          "%s: message \"%s\"", what, ev.message ? ev.message : "(null)");
    CHECK(ev.why == ev.message, "%s: the log says the message", what);
    CHECK(tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_OPEN,
          "%s: the session goes on", what);
}


/*
 * BIND {request_id, kind, name (if not NULL), port (if not 0)}, encoded
 * here by hand, not by tunnel_msg_encode(): fields in the order given.
 */
static size_t
bind_msg(uint8_t *out, uint32_t request_id, uint32_t kind,
    const char *name, uint32_t port)
{
    size_t    n, len;
    uint8_t  *p;

    p = out + 2;
    *p++ = TUNNEL_BIND;

    *p++ = TUNNEL_T_REQUEST_ID;
    *p++ = 0; *p++ = 4;
    *p++ = request_id >> 24; *p++ = request_id >> 16;
    *p++ = request_id >> 8; *p++ = request_id;

    *p++ = TUNNEL_T_KIND;
    *p++ = 0; *p++ = 1;
    *p++ = (uint8_t) kind;

    if (name) {
        len = strlen(name);
        *p++ = TUNNEL_T_NAME;
        *p++ = (uint8_t) (len >> 8); *p++ = (uint8_t) len;
        memcpy(p, name, len);
        p += len;
    }

    if (port) {
        *p++ = TUNNEL_T_PORT;
        *p++ = 0; *p++ = 4;
        *p++ = port >> 24; *p++ = port >> 16; *p++ = port >> 8; *p++ = port;
    }

    n = p - out;
    out[0] = (uint8_t) ((n - 2) >> 8);
    out[1] = (uint8_t) (n - 2);

    return n;
}


static void
bind_name_ok(const char *name, const char *want, const char *what)
{
    size_t  n;

    n = bind_msg(big, 11, TUNNEL_KIND_TLS, name, 0);
    feed_all(&ctl, big, n);

    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && ev.msg.request_id == 11 && ev.msg.kind == TUNNEL_KIND_TLS
          && str_is(ev.name, want),
          "%s: bound as \"%.*s\", expected \"%s\"", what, (int) ev.name.len,
          ev.name.data ? (const char *) ev.name.data : "", want);
}


static void
bind_name_bad(const char *name, const char *message, const char *what)
{
    size_t  n;

    n = bind_msg(big, 12, TUNNEL_KIND_HTTP, name, 0);
    feed_all(&ctl, big, n);
    expect_bind_error(12, TUNNEL_E_NAME_INVALID, message, what);
}


static void
bind_port(uint32_t port, uint32_t code, const char *message,
    const char *what)
{
    int     rc;
    size_t  n;

    n = bind_msg(big, 21, TUNNEL_KIND_TCP, NULL, port);
    feed_all(&ctl, big, n);

    if (code) {
        expect_bind_error(21, code, message, what);
        return;
    }

    rc = tunnel_ctl_next(&ctl, &ev);
    CHECK(rc == TUNNEL_CTL_BIND && ev.port == port,
          "%s: bound port %u, got event %d port %u", what, port, rc,
          ev.port);
}


static void
test_hello(void)
{
    size_t  k;

    start();
    CHECK(tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_HELLO, "waits for hello");
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN, "nothing fed");

    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO
          && ev.msg.type == TUNNEL_HELLO && ev.msg.version == 1
          && str_is(ev.msg.token, "tok")
          && str_is(ev.msg.client_name, "tunnel")
          && str_is(ev.msg.client_version, "1.0")
          && str_is(ev.msg.instance, "i1"), "hello: its fields");
    CHECK(tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_AUTH, "hello: auth");

    /* until the token is checked, a bind waits */
    FEED(&ctl, bind_label);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN,
          "a bind waits for the token");
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN, "  still");

    tunnel_ctl_accept(&ctl, 0, 0);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && ev.msg.request_id == 7 && str_is(ev.name, "myapp.tun.test"),
          "  and is taken once it is good");

    /* accept is for the auth state only */
    tunnel_ctl_accept(&ctl, 1, 1);
    bind_port(30000, 0, NULL, "a second accept changes nothing");

    /* the token refused: the caller closes, input is dropped */
    start();
    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "hello again");
    tunnel_ctl_close(&ctl);
    k = tunnel_ctl_feed(&ctl, bind_label, sizeof(bind_label));
    CHECK(k == sizeof(bind_label)
          && tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN
          && tunnel_ctl_state(&ctl) == TUNNEL_CTL_S_CLOSED,
          "closed: input dropped, no event");

    /* a hello of empty strings, and of the printable bounds */
    {
        static const uint8_t  v[] = {
            0x00, 0x1a, 0x01,
            0x10, 0x00, 0x00,                       /* token "" */
            0x11, 0x00, 0x02, ' ', '~',             /* client_name */
            0x12, 0x00, 0x00,                       /* client_version "" */
            0x19, 0x00, 0x00,                       /* instance "" */
            0x01, I4(1),
            0xc8, 0x00, 0x01, 0xff                  /* unknown tag 200 */
        };

        start();
        FEED(&ctl, v);
        CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO
              && ev.msg.token.len == 0 && str_is(ev.msg.client_name, " ~"),
              "hello with empty strings, space and tilde");
    }
}


#define SPEAKS_1                                                             \
    "this server speaks protocol version 1: use a matching client"
#define NOT_PRINTABLE                                                        \
    "the client name and version must be printable ASCII"
#define NOT_PRINTABLE_WHY                                                    \
    "sent a hello with a client name or version that is not printable ASCII"


static void
test_hello_refused(void)
{
    static const uint8_t  version2[] = {
        0x00, 0x0e, 0x01,
        0x01, I4(2),
        0x10, 0x00, 0x03, 't', 'o', 'k'
    };

    /* 1-byte version 0 */
    static const uint8_t  version0[] = {
        0x00, 0x0b, 0x01,
        0x01, 0x00, 0x01, 0x00,
        0x10, 0x00, 0x03, 't', 'o', 'k'
    };

    static const uint8_t  name_newline[] = {
        0x00, 0x12, 0x01,
        0x01, I4(1),
        0x10, 0x00, 0x01, 't',
        0x11, 0x00, 0x03, 'a', '\n', 'b'
    };

    static const uint8_t  name_utf8[] = {
        0x00, 0x12, 0x01,
        0x01, I4(1),
        0x10, 0x00, 0x01, 't',
        0x11, 0x00, 0x03, 'c', 0xc3, 0xa9           /* "cé" */
    };

    static const uint8_t  version_del[] = {
        0x00, 0x12, 0x01,
        0x01, I4(1),
        0x10, 0x00, 0x01, 't',
        0x12, 0x00, 0x03, '1', 0x7f, '2'
    };

    static const uint8_t  instance_esc[] = {
        0x00, 0x12, 0x01,
        0x01, I4(1),
        0x10, 0x00, 0x01, 't',
        0x19, 0x00, 0x03, 0x1b, '[', 'J'
    };

    /* both wrong: the version is said first */
    static const uint8_t  version_and_name[] = {
        0x00, 0x0f, 0x01,
        0x01, I4(3),
        0x10, 0x00, 0x00,
        0x11, 0x00, 0x01, 0x00
    };

    start();
    FEED(&ctl, version2);
    expect_error(TUNNEL_E_VERSION, SPEAKS_1,
                 "speaks protocol version 2, this server 1", "version 2");

    start();
    FEED(&ctl, version0);
    expect_error(TUNNEL_E_VERSION, SPEAKS_1,
                 "speaks protocol version 0, this server 1", "version 0");

    start();
    FEED(&ctl, version_and_name);
    expect_error(TUNNEL_E_VERSION, SPEAKS_1,
                 "speaks protocol version 3, this server 1",
                 "version 3 and a NUL in the name");

    start();
    FEED(&ctl, name_newline);
    expect_error(TUNNEL_E_BAD_MESSAGE, NOT_PRINTABLE, NOT_PRINTABLE_WHY,
                 "a client name with a newline");

    start();
    FEED(&ctl, name_utf8);
    expect_error(TUNNEL_E_BAD_MESSAGE, NOT_PRINTABLE, NOT_PRINTABLE_WHY,
                 "a client name in UTF-8");

    start();
    FEED(&ctl, version_del);
    expect_error(TUNNEL_E_BAD_MESSAGE, NOT_PRINTABLE, NOT_PRINTABLE_WHY,
                 "a client version with DEL");

    start();
    FEED(&ctl, instance_esc);
    expect_error(TUNNEL_E_BAD_MESSAGE, "the instance must be printable ASCII",
                 "sent a hello with an instance that is not printable ASCII",
                 "an instance with ESC");
}


static void
test_order(void)
{
    static const uint8_t  welcome[] = {
        0x00, 0x0d, 0x02,
        0x01, I4(1),
        0x13, 0x00, 0x02, 's', '1'
    };

    static const uint8_t  error[] = {
        0x00, 0x08, 0x03,
        0x03, I4(3)
    };

    static const uint8_t  bound[] = {
        0x00, 0x20, 0x05,
        0x04, I4(1),
        0x05, I4(3),
        0x07, I4(1),
        0x16, 0x00, 0x07, 't', 'c', 'p', ':', '/', '/', 'x'
    };

    static const uint8_t  bind_error[] = {
        0x00, 0x0f, 0x06,
        0x04, I4(1),
        0x03, I4(4)
    };

    static const uint8_t  unbound[] = {
        0x00, 0x0f, 0x08,
        0x07, I4(1),
        0x03, I4(15)
    };

    static const uint8_t  notice[] = {
        0x00, 0x08, 0x09,
        0x03, I4(2)
    };

    static const uint8_t  stream[] = {
        0x00, 0x0f, 0x0a,
        0x07, I4(1),
        0x05, I4(3)
    };

    static const struct {
        const uint8_t  *p;
        size_t          n;
        const char     *name;
    } server[] = {
        { welcome, sizeof(welcome), "welcome" },
        { error, sizeof(error), "error" },
        { bound, sizeof(bound), "bound" },
        { bind_error, sizeof(bind_error), "bind_error" },
        { unbound, sizeof(unbound), "unbound" },
        { notice, sizeof(notice), "notice" },
        { stream, sizeof(stream), "stream" },
    };

    size_t  i;
    char    why[128];

    start();
    FEED(&ctl, bind_label);
    expect_error(TUNNEL_E_BAD_MESSAGE, "the first message must be hello",
                 "sent bind before hello", "bind before hello");

    start();
    FEED(&ctl, unbind);
    expect_error(TUNNEL_E_BAD_MESSAGE, "the first message must be hello",
                 "sent unbind before hello", "unbind before hello");

    for (i = 0; i < sizeof(server) / sizeof(server[0]); i++) {
        start();
        feed_all(&ctl, server[i].p, server[i].n);
        snprintf(why, sizeof(why), "sent %s before hello", server[i].name);
        expect_error(TUNNEL_E_BAD_MESSAGE, "the first message must be hello",
                     why, server[i].name);

        open_session(0, 0);
        feed_all(&ctl, server[i].p, server[i].n);
        snprintf(why, sizeof(why), "sent %s, which only a server sends",
                 server[i].name);
        expect_error(TUNNEL_E_BAD_MESSAGE,
                     "this message is not for the server", why,
                     server[i].name);
    }

    open_session(0, 0);
    FEED(&ctl, hello);
    expect_error(TUNNEL_E_BAD_MESSAGE, "a second hello",
                 "sent a second hello", "a second hello");

    /* what follows a refused message in the same piece is never seen */
    start();
    {
        uint8_t  v[sizeof(unbind) + sizeof(hello)];

        memcpy(v, unbind, sizeof(unbind));
        memcpy(v + sizeof(unbind), hello, sizeof(hello));
        FEED(&ctl, v);
        expect_error(TUNNEL_E_BAD_MESSAGE, "the first message must be hello",
                     "sent unbind before hello", "unbind, then hello");
    }

    open_session(0, 0);
    FEED(&ctl, unbind);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_UNBIND
          && ev.msg.tunnel_id == 3, "unbind taken, its id");
}


static void
test_framing(void)
{
    size_t  i, n, k;

    static const uint8_t  no_type[] = { 0x00, 0x00 };
    static const uint8_t  type99[] = { 0x00, 0x01, 0x63 };
    static const uint8_t  cut_field[] = {
        0x00, 0x03, 0x01, 0x10, 0x00
    };
    static const uint8_t  twice[] = {
        0x00, 0x0f, 0x07,
        0x07, I4(3),
        0x07, I4(4)
    };

    /* the longest length taken waits for its bytes; one more is refused */
    start();
    big[0] = 0x0f;
    big[1] = 0xfe;
    feed_all(&ctl, big, 1);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN, "one length byte");
    feed_all(&ctl, big + 1, 1);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN,
          "a length of 4094 waits");

    start();
    big[1] = 0xff;
    feed_all(&ctl, big, 2);
    expect_error(TUNNEL_E_BAD_MESSAGE,
                 "a control message longer than the server takes",
                 "sent a control message of 4095 bytes, at most 4094 are "
                 "taken", "a length of 4095, alone");
    CHECK(ev.msg.type == 0, "  no message with it");

    start();
    big[0] = 0xff;
    feed_all(&ctl, big, 2);
    expect_error(TUNNEL_E_BAD_MESSAGE,
                 "a control message longer than the server takes",
                 "sent a control message of 65535 bytes, at most 4094 are "
                 "taken", "a length of 65535");

    /* a hello of 4096 bytes in all: an unknown field fills it */
    start();
    memcpy(big, hello, sizeof(hello));
    n = TUNNEL_CTL_MSG_MAX - sizeof(hello) - 3;
    big[sizeof(hello)] = 0xfe;
    big[sizeof(hello) + 1] = (uint8_t) (n >> 8);
    big[sizeof(hello) + 2] = (uint8_t) n;
    memset(big + sizeof(hello) + 3, 'z', n);
    big[0] = (TUNNEL_CTL_MSG_MAX - 2) >> 8;
    big[1] = (uint8_t) (TUNNEL_CTL_MSG_MAX - 2);
    feed_all(&ctl, big, TUNNEL_CTL_MSG_MAX);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO
          && str_is(ev.msg.token, "tok"), "a hello of 4096 bytes is taken");

    /* the buffer is full and that hello not answered: no more is taken */
    start();
    feed_all(&ctl, big, TUNNEL_CTL_MSG_MAX);
    k = tunnel_ctl_feed(&ctl, unbind, sizeof(unbind));
    CHECK(k == 0, "a full buffer takes nothing more: %zu", k);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "  its hello");
    k = tunnel_ctl_feed(&ctl, bind_label, sizeof(bind_label));
    CHECK(k == sizeof(bind_label), "  then room again: %zu", k);
    tunnel_ctl_accept(&ctl, 0, 0);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && str_is(ev.name, "myapp.tun.test"), "  and the bind after it");

    /* decoding errors, with the codec's reason */
    start();
    FEED(&ctl, no_type);
    expect_error(TUNNEL_E_BAD_MESSAGE, "a message without a type",
                 "sent a bad control message: a message without a type",
                 "a length of 0");

    start();
    FEED(&ctl, type99);
    expect_error(TUNNEL_E_BAD_MESSAGE, "unknown message type 99",
                 "sent a bad control message: unknown message type 99",
                 "type 99");

    start();
    FEED(&ctl, cut_field);
    expect_error(TUNNEL_E_BAD_MESSAGE,
                 "a field cut short at the end of the message",
                 "sent a bad control message: a field cut short at the end "
                 "of the message", "a field header cut short");

    open_session(0, 0);
    FEED(&ctl, twice);
    expect_error(TUNNEL_E_BAD_MESSAGE, "field 'tunnel_id' appears twice",
                 "sent a bad control message: field 'tunnel_id' appears "
                 "twice", "a field twice");

    /* byte by byte: each event when its message's last byte is in */
    start();
    n = 0;
    memcpy(big, hello, sizeof(hello));
    n += sizeof(hello);
    memcpy(big + n, bind_label, sizeof(bind_label));
    n += sizeof(bind_label);
    memcpy(big + n, unbind, sizeof(unbind));
    n += sizeof(unbind);

    for (i = 0; i < n; i++) {
        int  rc, want;

        feed_all(&ctl, big + i, 1);
        rc = tunnel_ctl_next(&ctl, &ev);

        want = (i == sizeof(hello) - 1) ? TUNNEL_CTL_HELLO
               : (i == sizeof(hello) + sizeof(bind_label) - 1)
                 ? TUNNEL_CTL_BIND
                 : (i == n - 1) ? TUNNEL_CTL_UNBIND : TUNNEL_CTL_AGAIN;

        CHECK(rc == want, "byte %zu: event %d, expected %d", i, rc, want);

        if (rc == TUNNEL_CTL_HELLO) {
            tunnel_ctl_accept(&ctl, 0, 0);
        }

        if (rc == TUNNEL_CTL_BIND) {
            CHECK(str_is(ev.name, "myapp.tun.test"), "  its name");
        }

        CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN,
              "byte %zu: one event", i);
    }

    /* all three in one piece */
    start();
    feed_all(&ctl, big, n);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "one piece: hello");
    tunnel_ctl_accept(&ctl, 0, 0);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND, "  bind");
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_UNBIND, "  unbind");
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_AGAIN, "  nothing more");

    /* many messages through the buffer: it moves what is left */
    open_session(0, 0);

    for (i = 0; i < 3 * TUNNEL_CTL_MSG_MAX / sizeof(unbind); i++) {
        feed_all(&ctl, unbind, 5);
        feed_all(&ctl, unbind + 5, sizeof(unbind) - 5);

        if (tunnel_ctl_next(&ctl, &ev) != TUNNEL_CTL_UNBIND
            || ev.msg.tunnel_id != 3)
        {
            CHECK(0, "unbind %zu lost", i);
            break;
        }
    }

    CHECK(i == 3 * TUNNEL_CTL_MSG_MAX / sizeof(unbind),
          "%zu unbinds through the buffer", i);
}


#define NOT_DNS                                                              \
    "the name is not a valid DNS name (letters, digits and hyphens, "        \
    "dot-separated)"


static void
test_bind_names(void)
{
    tunnel_ctl_conf_t  conf;
    char               name[300];

    static const uint8_t  no_name[] = {
        0x00, 0x0f, 0x04,
        0x04, I4(9),
        0x05, I4(1)
    };

    /* request_id 1, kind tls, name "App.Example.COM" as one vector */
    static const uint8_t  full[] = {
        0x00, 0x21, 0x04,
        0x04, I4(1),
        0x05, I4(2),
        0x15, 0x00, 0x0f, 'A', 'p', 'p', '.', 'E', 'x', 'a', 'm', 'p', 'l',
        'e', '.', 'C', 'O', 'M'
    };

    open_session(0, 0);

    FEED(&ctl, bind_label);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && ev.msg.request_id == 7 && ev.msg.kind == TUNNEL_KIND_HTTP
          && str_is(ev.msg.name, "myapp")
          && str_is(ev.name, "myapp.tun.test"),
          "a label goes under the domain");

    FEED(&ctl, full);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && str_is(ev.msg.name, "App.Example.COM")
          && str_is(ev.name, "app.example.com"),
          "a full name, lowercased; the message keeps it as sent");

    FEED(&ctl, no_name);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND
          && ev.msg.request_id == 9 && ev.name.len == 0,
          "no name: a random one");

    bind_name_ok("", "", "an empty name: a random one");
    bind_name_ok("API", "api.tun.test", "a label in capitals");
    bind_name_ok("a-b.c-d.e", "a-b.c-d.e", "hyphens inside labels");
    bind_name_ok("0.9", "0.9", "digits only");

    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    memset(name, 'a', 253);
    name[63] = '.';
    name[127] = '.';
    name[191] = '.';
    name[253] = '\0';
    bind_name_ok(name, name, "a name of 253 bytes");

    /* a label too long for a name under the domain: 245 + 9 > 253 */
    memset(name, 'b', 245);
    name[245] = '\0';
    bind_name_bad(name, NOT_DNS, "a label of 245 bytes");

    memset(name, 'b', 236);
    name[0] = 'x';
    name[1] = '.';
    name[60] = '-';
    name[64] = '.';
    name[128] = '.';
    name[192] = '.';
    name[236] = '\0';
    bind_name_ok(name, name, "a name of 236 bytes with a hyphen");

    memset(name, 'c', 64);
    name[64] = '\0';
    bind_name_bad(name, NOT_DNS, "a label of 64 bytes");

    bind_name_bad("a..tun.test", NOT_DNS, "an empty label");
    bind_name_bad(".a.b", NOT_DNS, "a dot first");
    bind_name_bad("a.b.", NOT_DNS, "a dot last");
    bind_name_bad("abc-", NOT_DNS, "a label that ends with a hyphen");
    bind_name_bad("-a.b", NOT_DNS, "a label that begins with a hyphen");
    bind_name_bad("a_b.c", NOT_DNS, "an underscore");
    bind_name_bad("caf\xc3\x28", NOT_DNS, "invalid UTF-8");
    bind_name_bad("a\n2020/01/01", NOT_DNS, "a newline");

    /* the session went on through all of that */
    FEED(&ctl, bind_label);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_BIND,
          "binds after refused names");

    /* a server without tunnel_domain */
    conf_init(&conf, NULL, 0, 0);
    tunnel_ctl_init(&ctl, &conf);
    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "no domain: hello");
    tunnel_ctl_accept(&ctl, 0, 0);

    bind_name_bad("myapp", "this server has no tunnel domain: ask for a full "
                  "hostname", "no domain: a label");
    bind_name_bad("", "this server has no tunnel domain for random names: "
                  "ask for a full hostname", "no domain: an empty name");
    bind_name_bad(NULL, "this server has no tunnel domain for random names: "
                  "ask for a full hostname", "no domain: no name");
    bind_name_ok("app.example.com", "app.example.com",
                 "no domain: a full name");
}


static void
test_bind_kinds(void)
{
    tunnel_ctl_conf_t  conf;
    size_t             n;

    /* BIND {request_id 4, kind 9} */
    static const uint8_t  kind9[] = {
        0x00, 0x0f, 0x04,
        0x04, I4(4),
        0x05, I4(9)
    };

    open_session(0, 0);

    FEED(&ctl, kind9);
    expect_bind_error(4, TUNNEL_E_KIND, "unknown tunnel kind", "kind 9");

    n = bind_msg(big, 5, 0, "x", 0);
    feed_all(&ctl, big, n);
    expect_bind_error(5, TUNNEL_E_KIND, "unknown tunnel kind", "kind 0");

    /* tcp */
    bind_port(0, 0, NULL, "tcp, any port");
    CHECK(ev.port_min == 30000 && ev.port_max == 30099,
          "  in the server's range: %u-%u", ev.port_min, ev.port_max);
    bind_port(30000, 0, NULL, "tcp, the first port");
    bind_port(30099, 0, NULL, "tcp, the last port");
    bind_port(29999, TUNNEL_E_PORT_FORBIDDEN,
              tunnel_error_text(TUNNEL_E_PORT_FORBIDDEN), "tcp, below");
    bind_port(30100, TUNNEL_E_PORT_FORBIDDEN,
              tunnel_error_text(TUNNEL_E_PORT_FORBIDDEN), "tcp, above");
    bind_port(70000, TUNNEL_E_PORT_FORBIDDEN,
              tunnel_error_text(TUNNEL_E_PORT_FORBIDDEN), "tcp, port 70000");
    bind_port(30000 + 65536, TUNNEL_E_PORT_FORBIDDEN,
              tunnel_error_text(TUNNEL_E_PORT_FORBIDDEN),
              "tcp, a port that is 30000 in 16 bits");

    /* the token's range narrows the server's */
    open_session(30010, 30019);
    bind_port(0, 0, NULL, "token 30010-30019, any port");
    CHECK(ev.port_min == 30010 && ev.port_max == 30019,
          "  in the token's range: %u-%u", ev.port_min, ev.port_max);
    bind_port(30010, 0, NULL, "token, its first port");
    bind_port(30009, TUNNEL_E_PORT_FORBIDDEN,
              tunnel_error_text(TUNNEL_E_PORT_FORBIDDEN),
              "token, the server's port below its range");

    open_session(29000, 30004);
    bind_port(0, 0, NULL, "token 29000-30004");
    CHECK(ev.port_min == 30000 && ev.port_max == 30004,
          "  the overlap: %u-%u", ev.port_min, ev.port_max);

    open_session(40000, 40010);
    bind_port(0, TUNNEL_E_PORT_FORBIDDEN, "the token's ports are outside "
              "the server's range", "a token with no port of the server's");
    bind_port(40000, TUNNEL_E_PORT_FORBIDDEN, "the token's ports are "
              "outside the server's range", "  even its own");

    /* a server without tunnel_tcp_ports: the kind first */
    conf_init(&conf, "tun.test", 0, 0);
    tunnel_ctl_init(&ctl, &conf);
    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO, "no tcp: hello");
    tunnel_ctl_accept(&ctl, 40000, 40010);
    bind_port(70000, TUNNEL_E_KIND, "this server does not offer TCP tunnels",
              "no tcp: a bind of port 70000");
    bind_port(0, TUNNEL_E_KIND, "this server does not offer TCP tunnels",
              "no tcp: any port");
}


static void
test_drain(void)
{
    size_t  n;

    static const uint8_t  kind9[] = {
        0x00, 0x0f, 0x04,
        0x04, I4(4),
        0x05, I4(9)
    };

    open_session(0, 0);
    tunnel_ctl_drain(&ctl);

    FEED(&ctl, bind_label);
    expect_bind_error(7, TUNNEL_E_SHUTDOWN,
                      tunnel_error_text(TUNNEL_E_SHUTDOWN), "draining: bind");

    FEED(&ctl, kind9);
    expect_bind_error(4, TUNNEL_E_SHUTDOWN,
                      tunnel_error_text(TUNNEL_E_SHUTDOWN),
                      "draining: shutdown before the kind");

    n = bind_msg(big, 6, TUNNEL_KIND_HTTP, "a..b", 0);
    feed_all(&ctl, big, n);
    expect_bind_error(6, TUNNEL_E_SHUTDOWN,
                      tunnel_error_text(TUNNEL_E_SHUTDOWN),
                      "draining: shutdown before the name");

    FEED(&ctl, unbind);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_UNBIND,
          "draining: unbind taken");

    FEED(&ctl, hello);
    expect_error(TUNNEL_E_BAD_MESSAGE, "a second hello",
                 "sent a second hello", "draining: a second hello");

    /* drained before its hello came: its binds are refused once open */
    start();
    tunnel_ctl_drain(&ctl);
    FEED(&ctl, hello);
    CHECK(tunnel_ctl_next(&ctl, &ev) == TUNNEL_CTL_HELLO,
          "drained early: hello");
    tunnel_ctl_accept(&ctl, 0, 0);
    FEED(&ctl, bind_label);
    expect_bind_error(7, TUNNEL_E_SHUTDOWN,
                      tunnel_error_text(TUNNEL_E_SHUTDOWN),
                      "drained early: bind");
}


static void
name_rule(const char *name, int want, size_t want_at, const char *what)
{
    int     rc;
    size_t  at;

    at = 999;
    rc = tunnel_name_check((const uint8_t *) name, strlen(name), &at);
    CHECK(rc == want && at == want_at, "%s: rule %d at %zu, expected %d "
          "at %zu", what, rc, at, want, want_at);
}


static void
test_name_check(void)
{
    char  name[300];

    name_rule("a", TUNNEL_NAME_OK, 0, "one letter");
    name_rule("xn--caf-dma.example", TUNNEL_NAME_OK, 0, "punycode");
    name_rule("", TUNNEL_NAME_EMPTY, 0, "empty");
    name_rule(".", TUNNEL_NAME_EMPTY_LABEL, 0, "a dot");
    name_rule("a..b", TUNNEL_NAME_EMPTY_LABEL, 2, "two dots");
    name_rule("ab.", TUNNEL_NAME_EMPTY_LABEL, 3, "a dot last");
    name_rule("ab.-c", TUNNEL_NAME_HYPHEN, 3, "a hyphen first");
    name_rule("ab.c-", TUNNEL_NAME_HYPHEN, 3, "a hyphen last");
    name_rule("-", TUNNEL_NAME_HYPHEN, 0, "a hyphen alone");
    name_rule("ab.cD", TUNNEL_NAME_CHAR, 4, "a capital");
    name_rule("a b", TUNNEL_NAME_CHAR, 1, "a space");
    name_rule("a*.b", TUNNEL_NAME_CHAR, 1, "a star");

    /* from the left: the bad byte comes before the empty label */
    name_rule("a_..b", TUNNEL_NAME_CHAR, 1, "a byte, then two dots");
    name_rule("-a_", TUNNEL_NAME_CHAR, 2, "the byte before the hyphen");

    memset(name, 'a', 64);
    name[64] = '\0';
    name_rule(name, TUNNEL_NAME_LONG_LABEL, 0, "a label of 64");
    name[63] = '\0';
    name_rule(name, TUNNEL_NAME_OK, 0, "a label of 63");

    memset(name, 'a', 254);
    name[63] = '.';
    name[127] = '.';
    name[191] = '.';
    name[254] = '\0';
    name_rule(name, TUNNEL_NAME_LONG, 0, "254 bytes");
    name[253] = '\0';
    name_rule(name, TUNNEL_NAME_OK, 0, "253 bytes");

    /* the length is checked, not a terminating NUL */
    CHECK(tunnel_name_check((const uint8_t *) "ab\0c", 4, NULL)
          == TUNNEL_NAME_CHAR, "a NUL inside");
    CHECK(tunnel_name_check((const uint8_t *) "abc", 2, NULL)
          == TUNNEL_NAME_OK, "a prefix");
}


int
main(void)
{
    test_hello();
    test_hello_refused();
    test_order();
    test_framing();
    test_bind_names();
    test_bind_kinds();
    test_drain();
    test_name_check();

    return check_done("test_ctl");
}
