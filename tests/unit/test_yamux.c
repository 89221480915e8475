/*
 * Copyright (C) ngx_tunnel developers
 *
 * Unit tests for the yamux core: byte-exact frames, stream lifecycle,
 * windows and back-pressure, control priority, every protocol error.
 * Two sessions are wired back to back in memory; "pump" moves the bytes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "yamux.h"
#include "check.h"


#define MAX_EVENTS  8192


typedef struct {
    char         what;      /* o open, d data, f fin, c closed, w writable,
                               p ping ack, g go-away */
    uint32_t     id;
    uint32_t     n;         /* bytes, close reason, ping opaque, code */
} event_t;


typedef struct {
    yamux_session_t  *s;
    event_t           ev[MAX_EVENTS];
    int               nev;
    int               refuse;       /* stream_open answers "no" */
    int               consume;      /* credit data as it arrives */
    uint32_t          reset_on_writable;  /* stream to reset from there */
    int               reset_then_refuse;  /* stream_open resets, refuses */
    uint32_t          reserve_on_closed;  /* stream_closed reserves here,
                                             then commits nothing */
    uint8_t           rx[1 << 20];  /* payload received, all streams */
    size_t            nrx;
    long              allocs;       /* live allocations */
    long              wrong_sizes;  /* frees told another size */
    int               no_memory;    /* allocations fail */
} peer_t;


static void
record(peer_t *p, char what, uint32_t id, uint32_t n)
{
    if (p->nev < MAX_EVENTS) {
        p->ev[p->nev].what = what;
        p->ev[p->nev].id = id;
        p->ev[p->nev].n = n;
        p->nev++;
    }
}


static int
count(peer_t *p, char what, uint32_t id)
{
    int  i, n;

    n = 0;

    for (i = 0; i < p->nev; i++) {
        if (p->ev[i].what == what && p->ev[i].id == id) {
            n++;
        }
    }

    return n;
}


static const event_t *
last(peer_t *p, char what)
{
    int  i;

    for (i = p->nev - 1; i >= 0; i--) {
        if (p->ev[i].what == what) {
            return &p->ev[i];
        }
    }

    return NULL;
}


static int
on_open(yamux_session_t *s, uint32_t id, void *ud)
{
    peer_t  *p = ud;

    record(p, 'o', id, 0);

    if (p->reset_then_refuse) {
        yamux_stream_reset(s, id);
        return -1;
    }

    return p->refuse ? -1 : 0;
}


static void
on_data(yamux_session_t *s, uint32_t id, void *sd, const uint8_t *d,
    size_t n)
{
    peer_t  *p = yamux_session_data(s);

    (void) sd;
    record(p, 'd', id, (uint32_t) n);

    if (p->nrx + n <= sizeof(p->rx)) {
        memcpy(p->rx + p->nrx, d, n);
        p->nrx += n;
    }

    if (p->consume) {
        yamux_stream_consumed(s, id, n);
    }
}


static void
on_fin(yamux_session_t *s, uint32_t id, void *sd)
{
    (void) sd;
    record(yamux_session_data(s), 'f', id, 0);
}


static void
on_writable(yamux_session_t *s, uint32_t id, void *sd)
{
    peer_t  *p = yamux_session_data(s);

    (void) sd;
    record(p, 'w', id, 0);

    if (p->reset_on_writable) {
        yamux_stream_reset(s, p->reset_on_writable);
        p->reset_on_writable = 0;
    }
}


static void
on_closed(yamux_session_t *s, uint32_t id, void *sd, yamux_close_e how)
{
    int      rc;
    size_t   n;
    peer_t  *p;

    (void) sd;

    p = yamux_session_data(s);
    record(p, 'c', id, how);

    if (p->reserve_on_closed) {
        n = 0;
        if (yamux_stream_reserve(s, p->reserve_on_closed, &n, &rc)) {
            yamux_stream_commit(s, p->reserve_on_closed, 0);
        }
    }
}


static void
on_ping(yamux_session_t *s, uint32_t opaque, void *ud)
{
    (void) s;
    record(ud, 'p', 0, opaque);
}


static void
on_go_away(yamux_session_t *s, uint32_t code, void *ud)
{
    (void) s;
    record(ud, 'g', 0, code);
}


static const yamux_callbacks_t  callbacks = {
    on_open, on_data, on_fin, on_writable, on_closed, on_ping, on_go_away
};


static void *
counting_alloc(size_t size, void *ud)
{
    peer_t   *p;
    uint8_t  *h;

    p = ud;

    if (p->no_memory) {
        return NULL;
    }

    h = malloc(16 + size);
    if (h == NULL) {
        return NULL;
    }

    /* the size in front, to check what free() is told */
    *(size_t *) h = size;
    p->allocs++;

    return h + 16;
}


static void
counting_free(void *ptr, size_t size, void *ud)
{
    peer_t   *p;
    uint8_t  *h;

    p = ud;
    h = (uint8_t *) ptr - 16;

    if (*(size_t *) h != size) {
        p->wrong_sizes++;
    }

    p->allocs--;
    free(h);
}


/* a session for "p" on "conf", "p" counting its allocations */
static void
peer_start(peer_t *p, yamux_config_t *conf)
{
    memset(p, 0, sizeof(peer_t));

    conf->allocator.alloc = counting_alloc;
    conf->allocator.free = counting_free;
    conf->allocator.ud = p;

    p->s = yamux_session_new(conf, &callbacks, p);
}


static void
peer_init(peer_t *p, int client, uint32_t window)
{
    yamux_config_t  conf;

    yamux_config_init(&conf, client);
    conf.window = window;

    peer_start(p, &conf);
    p->consume = 1;
}


static uint64_t  fake_now = 1000;


static uint64_t
fake_clock(void)
{
    return fake_now;
}


/* as peer_init, with window auto-tuning up to "max" on the fake clock */
static void
peer_init_tuned(peer_t *p, int client, uint32_t window, uint32_t max)
{
    yamux_config_t  conf;

    yamux_config_init(&conf, client);
    conf.window = window;
    conf.max_window = max;
    conf.clock = fake_clock;

    peer_start(p, &conf);
    p->consume = 1;
}


static void
peer_free(peer_t *p)
{
    yamux_session_free(p->s);
    CHECK(p->allocs == 0, "every allocation freed, %ld left", p->allocs);
    CHECK(p->wrong_sizes == 0, "every free told its size, %ld were not",
          p->wrong_sizes);
}


/* all queued output of "from", flattened; returns its length */
static size_t
take(peer_t *from, uint8_t *buf, size_t size)
{
    int           i, n;
    size_t        len;
    struct iovec  iov[64];

    len = 0;

    for ( ;; ) {
        n = yamux_output(from->s, iov, 64);
        if (n == 0) {
            break;
        }

        for (i = 0; i < n; i++) {
            if (len + iov[i].iov_len > size) {
                return len;
            }

            memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
            len += iov[i].iov_len;
            yamux_output_advance(from->s, iov[i].iov_len);
            break;      /* re-ask: advance may change what comes next */
        }
    }

    return len;
}


/* move everything from "a" to "b" and back until both are quiet */
static void
pump(peer_t *a, peer_t *b)
{
    static uint8_t  buf[4 << 20];
    size_t          n;
    ssize_t         rc;
    int             moved;

    do {
        moved = 0;

        n = take(a, buf, sizeof(buf));
        if (n) {
            rc = yamux_input(b->s, buf, n);
            CHECK(rc == (ssize_t) n, "b takes all %zu bytes, rc %zd (%s)",
                  n, rc, yamux_error(b->s));
            moved = 1;
        }

        n = take(b, buf, sizeof(buf));
        if (n) {
            rc = yamux_input(a->s, buf, n);
            CHECK(rc == (ssize_t) n, "a takes all %zu bytes, rc %zd (%s)",
                  n, rc, yamux_error(a->s));
            moved = 1;
        }
    } while (moved);
}


static void
hdr(uint8_t *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    p[0] = 0;
    p[1] = type;
    p[2] = flags >> 8;
    p[3] = flags & 0xff;
    p[4] = id >> 24;
    p[5] = (id >> 16) & 0xff;
    p[6] = (id >> 8) & 0xff;
    p[7] = id & 0xff;
    p[8] = len >> 24;
    p[9] = (len >> 16) & 0xff;
    p[10] = (len >> 8) & 0xff;
    p[11] = len & 0xff;
}


static void
test_open_accept_exact_bytes(void)
{
    static peer_t    c, s;
    uint8_t   out[256], want[12];
    size_t    n;
    uint32_t  id;

    peer_init(&c, 1, 1024 * 1024);
    peer_init(&s, 0, 512 * 1024);

    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_OK, "open");
    CHECK(id == 1, "the client's first stream is 1, got %u", id);

    /* SYN: a window update announcing 1 MiB - 256 KiB */
    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 768 * 1024);
    CHECK(n == 12, "one SYN frame, got %zu bytes", n);
    CHECK_MEM(out, want, 12, "SYN frame");

    CHECK(yamux_input(s.s, out, n) == 12, "server takes the SYN");
    CHECK(count(&s, 'o', 1) == 1, "stream_open for 1");

    /* ACK announces the server's 512 KiB */
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 256 * 1024);
    CHECK(n == 12, "one ACK frame, got %zu bytes", n);
    CHECK_MEM(out, want, 12, "ACK frame");

    CHECK(yamux_input(c.s, out, n) == 12, "client takes the ACK");
    CHECK(yamux_stream_send_window(c.s, 1) == 512 * 1024,
          "client may send 512 KiB, window %u",
          yamux_stream_send_window(c.s, 1));
    CHECK(yamux_stream_send_window(s.s, 1) == 1024 * 1024,
          "server may send 1 MiB, window %u",
          yamux_stream_send_window(s.s, 1));

    /* the server's first stream is even */
    CHECK(yamux_stream_open(s.s, &id, NULL) == YAMUX_OK && id == 2,
          "server stream id 2, got %u", id);

    peer_free(&c);
    peer_free(&s);
}


static void
test_data_exact_bytes(void)
{
    static peer_t    c, s;
    uint8_t   out[256], want[12 + 5];
    size_t    n;
    uint32_t  id;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    CHECK(yamux_stream_write(c.s, id, (const uint8_t *) "hello", 5) == 5,
          "write 5 bytes");
    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_DATA, 0, 1, 5);
    memcpy(want + 12, "hello", 5);
    CHECK(n == 17, "one data frame of 17 bytes, got %zu", n);
    CHECK_MEM(out, want, 17, "data frame");

    /* the payload reaches the callback in pieces when fed byte by byte */
    for (size_t i = 0; i < n; i++) {
        CHECK(yamux_input(s.s, out + i, 1) == 1, "byte %zu taken", i);
    }

    CHECK(s.nrx == 5 && memcmp(s.rx, "hello", 5) == 0, "payload arrived");
    CHECK(count(&s, 'd', 1) == 5, "one data event per byte, got %d",
          count(&s, 'd', 1));

    peer_free(&c);
    peer_free(&s);
}


static void
test_half_close_both_ways(void)
{
    static peer_t    c, s;
    uint8_t   out[64], want[12];
    size_t    n;
    uint32_t  id;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    CHECK(yamux_stream_close(c.s, id) == YAMUX_OK, "client FIN");
    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
    CHECK(n == 12, "FIN is one frame, got %zu", n);
    CHECK_MEM(out, want, 12, "FIN frame");
    CHECK(yamux_input(s.s, out, n) == 12, "server takes the FIN");
    CHECK(count(&s, 'f', id) == 1, "server sees the FIN");

    CHECK(yamux_stream_close(c.s, id) == YAMUX_ECLOSED,
          "a second close is refused");

    /* the server can still write after the client's FIN */
    CHECK(yamux_stream_write(s.s, id, (const uint8_t *) "late", 4) == 4,
          "server writes after the peer's FIN");
    CHECK(yamux_stream_close(s.s, id) == YAMUX_OK, "server FIN");
    pump(&s, &c);

    CHECK(c.nrx == 4 && memcmp(c.rx, "late", 4) == 0,
          "client got the data sent after its FIN");
    CHECK(count(&c, 'f', id) == 1, "client sees the server's FIN");
    CHECK(count(&c, 'c', id) == 1 && last(&c, 'c')->n == YAMUX_CLOSED_NORMAL,
          "client stream closed normally");
    CHECK(count(&s, 'c', id) == 1 && last(&s, 'c')->n == YAMUX_CLOSED_NORMAL,
          "server stream closed normally");

    yamux_stats_t  st;
    yamux_stats(c.s, &st);
    CHECK(st.streams == 0, "no stream left on the client, %u", st.streams);
    yamux_stats(s.s, &st);
    CHECK(st.streams == 0, "no stream left on the server, %u", st.streams);

    peer_free(&c);
    peer_free(&s);
}


static void
test_reset(void)
{
    static peer_t    c, s;
    uint8_t   out[64], want[12];
    size_t    n;
    uint32_t  id, id2;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    yamux_stream_open(c.s, &id2, NULL);
    pump(&c, &s);

    CHECK(yamux_stream_reset(s.s, id) == YAMUX_OK, "server resets");
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
    CHECK(n == 12, "RST is one frame, got %zu", n);
    CHECK_MEM(out, want, 12, "RST frame");
    CHECK(count(&s, 'c', id) == 1
          && last(&s, 'c')->n == YAMUX_CLOSED_RESET_LOCAL,
          "server's stream closed once its RST was sent");

    CHECK(yamux_input(c.s, out, n) == 12, "client takes the RST");
    CHECK(count(&c, 'c', id) == 1
          && last(&c, 'c')->n == YAMUX_CLOSED_RESET_REMOTE,
          "client sees the reset");
    CHECK(yamux_stream_write(c.s, id, (const uint8_t *) "x", 1)
          == YAMUX_ECLOSED, "writing to a reset stream fails");

    /* the other stream is unaffected */
    CHECK(yamux_stream_write(c.s, id2, (const uint8_t *) "ok", 2) == 2,
          "the other stream writes");
    pump(&c, &s);
    CHECK(s.nrx == 2 && memcmp(s.rx, "ok", 2) == 0, "and its data arrives");

    /* data for the reset stream that crossed the RST is dropped quietly */
    hdr(out, YAMUX_DATA, 0, id, 3);
    memcpy(out + 12, "old", 3);
    CHECK(yamux_input(s.s, out, 15) == 15, "late data for a reset stream");
    CHECK(s.nrx == 2, "and it is dropped");

    peer_free(&c);
    peer_free(&s);
}


static void
test_window_backpressure(void)
{
    static peer_t    c, s;
    int       rc;
    size_t    n, total;
    uint8_t  *p;
    uint32_t  id;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);
    s.consume = 0;

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    /* fill the window; the receiver consumes nothing */
    total = 0;

    for ( ;; ) {
        n = 0;
        p = yamux_stream_reserve(c.s, id, &n, &rc);
        if (p == NULL) {
            break;
        }

        memset(p, 'a', n);
        yamux_stream_commit(c.s, id, n);
        total += n;
        pump(&c, &s);
    }

    CHECK(rc == YAMUX_EAGAIN, "blocked with EAGAIN, got %d", rc);
    CHECK(total == YAMUX_INITIAL_WINDOW,
          "exactly one window sent before blocking: %zu", total);
    CHECK(s.nrx == YAMUX_INITIAL_WINDOW, "receiver holds %zu", s.nrx);

    /* more rounds change nothing: the sender stays blocked */
    pump(&c, &s);
    n = 0;
    CHECK(yamux_stream_reserve(c.s, id, &n, &rc) == NULL
          && rc == YAMUX_EAGAIN, "still blocked");

    /* consuming less than half the window sends no update */
    yamux_stream_consumed(s.s, id, 100 * 1024);
    pump(&s, &c);
    CHECK(count(&c, 'w', id) == 0, "no writable below half the window");

    yamux_stream_consumed(s.s, id, 28 * 1024);
    pump(&s, &c);
    CHECK(count(&c, 'w', id) == 1, "writable once half is consumed");
    CHECK(yamux_stream_send_window(c.s, id) == 128 * 1024,
          "window reopened by 128 KiB, %u",
          yamux_stream_send_window(c.s, id));

    peer_free(&c);
    peer_free(&s);
}


static void
test_queue_limit_and_memory(void)
{
    static peer_t          c, s;
    int             rc;
    size_t          n, queued;
    uint8_t        *p;
    uint32_t        id;
    yamux_config_t  conf;

    /* a small queue: the session's own limit blocks before the window */
    yamux_config_init(&conf, 1);
    conf.max_queued = 100 * 1024;
    peer_start(&c, &conf);
    peer_init(&s, 0, 8 * 1024 * 1024);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    queued = 0;

    for ( ;; ) {
        n = 0;
        p = yamux_stream_reserve(c.s, id, &n, &rc);
        if (p == NULL) {
            break;
        }

        yamux_stream_commit(c.s, id, n);
        queued += n;
    }

    CHECK(rc == YAMUX_EAGAIN, "queue full gives EAGAIN");
    CHECK(queued <= 100 * 1024 + 32 * 1024,
          "queued %zu stays within the limit plus one frame", queued);
    CHECK(c.allocs <= 5, "few blocks held: %ld allocations", c.allocs);

    pump(&c, &s);
    CHECK(count(&c, 'w', id) == 1, "writable after the queue drained");
    CHECK(yamux_output_pending(c.s) == 0, "nothing pending");
    /* session + buckets + stream: the blocks are gone */
    CHECK(c.allocs == 3, "blocks freed when drained: %ld", c.allocs);

    peer_free(&c);
    peer_free(&s);
}


static void
test_control_overtakes_data(void)
{
    static peer_t        c, s;
    int           n, i;
    size_t        at;
    uint8_t       big[64 * 1024], ping[12];
    uint32_t      id;
    struct iovec  iov[16];

    peer_init(&c, 1, 8 * 1024 * 1024);
    peer_init(&s, 0, 8 * 1024 * 1024);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    memset(big, 'b', sizeof(big));
    CHECK(yamux_stream_write(c.s, id, big, sizeof(big)) == sizeof(big),
          "64 KiB queued");

    /* send 100 bytes: the first frame is now half written */
    n = yamux_output(c.s, iov, 16);
    CHECK(n >= 1 && iov[0].iov_len >= 100, "output has data");
    CHECK(yamux_input(s.s, iov[0].iov_base, 100) == 100, "first 100 taken");
    yamux_output_advance(c.s, 100);

    yamux_ping(c.s, 0xabcdef01);
    n = yamux_output(c.s, iov, 16);
    CHECK(n >= 3, "rest of the frame, ping, more data: %d iovecs", n);

    /* the ping comes right after the current frame, before the next one */
    hdr(ping, YAMUX_PING, YAMUX_SYN, 0, 0xabcdef01);
    at = 0;

    for (i = 0; i < n; i++) {
        if (iov[i].iov_len == 12 && memcmp(iov[i].iov_base, ping, 12) == 0) {
            break;
        }

        at += iov[i].iov_len;
    }

    CHECK(i == 1, "ping is the second iovec, found at %d", i);
    CHECK(at == 12 + 32 * 1024 - 100,
          "ping after the rest of the first frame: offset %zu", at);

    pump(&c, &s);
    CHECK(s.nrx == sizeof(big), "all data arrived: %zu", s.nrx);
    CHECK(last(&c, 'p') && last(&c, 'p')->n == 0xabcdef01,
          "ping answered with its opaque value");

    peer_free(&c);
    peer_free(&s);
}


static void
test_ping_exact_and_flood(void)
{
    static peer_t    s;
    uint8_t   in[100 * 12], out[64 * 12], want[12];
    size_t    n, i;
    ssize_t   rc, fed;

    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    hdr(in, YAMUX_PING, YAMUX_SYN, 0, 7);
    CHECK(yamux_input(s.s, in, 12) == 12, "ping taken");
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_PING, YAMUX_ACK, 0, 7);
    CHECK(n == 12, "one answer, %zu bytes", n);
    CHECK_MEM(out, want, 12, "ping answer");

    /* a flood: input pauses until the answers are read */
    for (i = 0; i < 100; i++) {
        hdr(in + i * 12, YAMUX_PING, YAMUX_SYN, 0, (uint32_t) i);
    }

    rc = yamux_input(s.s, in, sizeof(in));
    CHECK(rc > 0 && rc < (ssize_t) sizeof(in),
          "input stops early under a ping flood: %zd", rc);

    fed = rc;
    n = 0;

    while (fed < (ssize_t) sizeof(in)) {
        rc = yamux_input(s.s, in + fed, sizeof(in) - fed);
        CHECK(rc >= 0, "no error");
        if (rc < 0) {
            break;
        }

        fed += rc;
        n += take(&s, out, sizeof(out));
    }

    CHECK(n == 100 * 12, "every ping answered in the end: %zu bytes", n);

    peer_free(&s);
}


static void
test_go_away(void)
{
    static peer_t    c, s;
    uint8_t   out[64], want[12], syn[12];
    size_t    n;
    uint32_t  id, id2;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    yamux_go_away(s.s, YAMUX_GOAWAY_NORMAL);
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_GO_AWAY, 0, 0, 0);
    CHECK(n == 12, "go-away is one frame");
    CHECK_MEM(out, want, 12, "go-away frame");
    yamux_input(c.s, out, n);
    CHECK(last(&c, 'g') && last(&c, 'g')->n == 0, "client sees go-away");

    CHECK(yamux_stream_open(c.s, &id2, NULL) == YAMUX_EGOAWAY,
          "no new stream after the peer's go-away");
    CHECK(yamux_stream_open(s.s, &id2, NULL) == YAMUX_OK,
          "our own go-away still lets us open streams (as hashicorp)");
    yamux_stream_reset(s.s, id2);

    /* the open stream still works both ways */
    yamux_stream_write(c.s, id, (const uint8_t *) "abc", 3);
    yamux_stream_write(s.s, id, (const uint8_t *) "xyz", 3);
    pump(&c, &s);
    CHECK(s.nrx == 3 && c.nrx == 3, "streams open before go-away go on");

    /* a SYN that crossed the go-away is refused with RST */
    hdr(syn, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
    CHECK(yamux_input(s.s, syn, 12) == 12, "late SYN taken");
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_RST, 3, 0);
    CHECK(n == 12, "answered with one frame");
    CHECK_MEM(out, want, 12, "RST for a SYN after go-away");

    peer_free(&c);
    peer_free(&s);
}


static void
test_limits(void)
{
    static peer_t          c, s;
    uint8_t         in[12], out[64], want[12];
    size_t          n;
    uint32_t        id, i;
    yamux_config_t  conf;
    yamux_stats_t   st;

    /* max_streams: the peer's third stream is refused */
    memset(&s, 0, sizeof(s));
    yamux_config_init(&conf, 0);
    conf.max_streams = 2;
    s.s = yamux_session_new(&conf, &callbacks, &s);
    s.consume = 1;

    for (i = 0; i < 3; i++) {
        hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1 + 2 * i, 0);
        CHECK(yamux_input(s.s, in, 12) == 12, "SYN %u taken", i);
    }

    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_RST, 5, 0);
    CHECK(n == 36, "two ACKs and one RST: %zu bytes", n);
    CHECK(n >= 12 && memcmp(out, want, 12) == 0,
          "the RST for stream 5 leaves first");
    yamux_stats(s.s, &st);
    CHECK(st.streams == 2 && st.streams_refused == 1,
          "2 open, 1 refused: %u, %llu", st.streams,
          (unsigned long long) st.streams_refused);
    yamux_session_free(s.s);

    /* syn_backlog: opens beyond unacknowledged SYNs are refused */
    memset(&c, 0, sizeof(c));
    yamux_config_init(&conf, 1);
    conf.syn_backlog = 2;
    c.s = yamux_session_new(&conf, &callbacks, &c);
    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_OK, "SYN 1");
    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_OK, "SYN 2");
    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_ELIMIT,
          "SYN 3 waits for an ACK");

    hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 0);
    yamux_input(c.s, in, 12);
    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_OK,
          "an ACK frees a place");
    yamux_session_free(c.s);

    /* the application refuses a stream */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);
    s.refuse = 1;
    hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
    yamux_input(s.s, in, 12);
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
    CHECK(n == 12, "refusal is one frame");
    CHECK_MEM(out, want, 12, "RST for a refused stream");
    peer_free(&s);
}


/* each case: frames fed to a fresh server that already accepted stream 1 */
typedef struct {
    const char  *name;
    uint8_t      frames[3][12];
    int          nframes;
    const char  *why;       /* expected in yamux_error() */
} bad_case_t;


static void
test_protocol_errors(void)
{
    int         i, j;
    static peer_t      s;
    uint8_t     in[12], out[64], want[12];
    size_t      n;
    ssize_t     rc;
    bad_case_t  cases[20];

    memset(cases, 0, sizeof(cases));
    i = 0;

    cases[i].name = "bad version";
    hdr(cases[i].frames[0], YAMUX_PING, YAMUX_SYN, 0, 0);
    cases[i].frames[0][0] = 1;
    cases[i].nframes = 1;
    cases[i++].why = "version 1";

    cases[i].name = "unknown type";
    hdr(cases[i].frames[0], 4, 0, 0, 0);
    cases[i].nframes = 1;
    cases[i++].why = "type 4";

    cases[i].name = "unknown type 255";
    hdr(cases[i].frames[0], 0xff, 0, 1, 0);
    cases[i].nframes = 1;
    cases[i++].why = "type 255";

    cases[i].name = "data beyond the window";
    hdr(cases[i].frames[0], YAMUX_DATA, 0, 1, YAMUX_INITIAL_WINDOW + 1);
    cases[i].nframes = 1;
    cases[i++].why = "exceed its receive window";

    cases[i].name = "never opened stream";
    hdr(cases[i].frames[0], YAMUX_DATA, 0, 9, 1);
    cases[i].nframes = 1;
    cases[i++].why = "never opened";

    cases[i].name = "never opened stream of ours";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, 0, 4, 1);
    cases[i].nframes = 1;
    cases[i++].why = "never opened";

    cases[i].name = "duplicate SYN";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
    cases[i].nframes = 1;
    cases[i++].why = "duplicate SYN";

    cases[i].name = "wrong parity";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_SYN, 2, 0);
    cases[i].nframes = 1;
    cases[i++].why = "our parity";

    cases[i].name = "id reuse";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
    hdr(cases[i].frames[1], YAMUX_WINDOW_UPDATE, YAMUX_RST, 3, 0);
    hdr(cases[i].frames[2], YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
    cases[i].nframes = 3;
    cases[i++].why = "reopened stream 3";

    cases[i].name = "data after FIN";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
    hdr(cases[i].frames[1], YAMUX_DATA, 0, 1, 1);
    cases[i].nframes = 2;
    cases[i++].why = "after its FIN";

    cases[i].name = "second FIN";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
    hdr(cases[i].frames[1], YAMUX_WINDOW_UPDATE, YAMUX_FIN, 1, 0);
    cases[i].nframes = 2;
    cases[i++].why = "second FIN";

    cases[i].name = "window overflow";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, 0, 1, 0xffffffffu);
    cases[i].nframes = 1;
    cases[i++].why = "overflows";

    cases[i].name = "ping on a stream";
    hdr(cases[i].frames[0], YAMUX_PING, YAMUX_SYN, 1, 0);
    cases[i].nframes = 1;
    cases[i++].why = "ping on stream 1";

    cases[i].name = "ping without flags";
    hdr(cases[i].frames[0], YAMUX_PING, 0, 0, 0);
    cases[i].nframes = 1;
    cases[i++].why = "neither SYN nor ACK";

    cases[i].name = "data on stream 0";
    hdr(cases[i].frames[0], YAMUX_DATA, 0, 0, 0);
    cases[i].nframes = 1;
    cases[i++].why = "stream 0";

    cases[i].name = "oversized data for a closed stream";
    hdr(cases[i].frames[0], YAMUX_WINDOW_UPDATE, YAMUX_SYN, 3, 0);
    hdr(cases[i].frames[1], YAMUX_WINDOW_UPDATE, YAMUX_RST, 3, 0);
    hdr(cases[i].frames[2], YAMUX_DATA, 0, 3, 0x7fffffff);
    cases[i].nframes = 3;
    cases[i++].why = "exceed any window";

    for (j = 0; j < i; j++) {
        peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

        hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
        yamux_input(s.s, in, 12);
        take(&s, out, sizeof(out));

        rc = 0;

        for (int k = 0; k < cases[j].nframes && rc >= 0; k++) {
            rc = yamux_input(s.s, cases[j].frames[k], 12);
        }

        CHECK(rc == YAMUX_EPROTO, "%s: protocol error, got %zd",
              cases[j].name, rc);
        CHECK(strstr(yamux_error(s.s), cases[j].why) != NULL,
              "%s: reason \"%s\" mentions \"%s\"", cases[j].name,
              yamux_error(s.s), cases[j].why);

        /* the session ends with go-away(protocol error), after any RST */
        n = take(&s, out, sizeof(out));
        hdr(want, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
        CHECK(n >= 12 && memcmp(out + n - 12, want, 12) == 0,
              "%s: go-away(protocol error) sent", cases[j].name);

        CHECK(yamux_input(s.s, in, 12) == YAMUX_EPROTO,
              "%s: the session stays dead", cases[j].name);

        peer_free(&s);
    }
}


static void
test_many_streams_random_split(void)
{
    static peer_t    c, s;
    int       i, j;
    size_t    n, off, k;
    uint8_t  *buf;
    uint32_t  ids[50];
    uint8_t   payload[1000];

    /* 50 streams interleaved, fed to the peer in random-sized pieces */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    for (i = 0; i < 50; i++) {
        yamux_stream_open(c.s, &ids[i], NULL);
    }

    for (j = 0; j < 10; j++) {
        for (i = 0; i < 50; i++) {
            memset(payload, 'A' + i % 26, sizeof(payload));
            yamux_stream_write(c.s, ids[i], payload, sizeof(payload));
        }
    }

    for (i = 0; i < 50; i++) {
        yamux_stream_close(c.s, ids[i]);
    }

    buf = malloc(1 << 20);
    n = take(&c, buf, 1 << 20);
    srand(7);

    for (off = 0; off < n; off += k) {
        k = 1 + rand() % 3000;
        if (k > n - off) {
            k = n - off;
        }

        CHECK(yamux_input(s.s, buf + off, k) == (ssize_t) k,
              "piece at %zu taken", off);
    }

    free(buf);

    CHECK(s.nrx == 50 * 10 * 1000, "all payload arrived: %zu", s.nrx);

    for (i = 0; i < 50; i++) {
        CHECK(count(&s, 'f', ids[i]) == 1, "FIN on stream %u", ids[i]);
    }

    peer_free(&c);
    peer_free(&s);
}


/* every 12-byte frame of "out" must equal the frames "want" */
static int
frames_equal(const uint8_t *out, size_t n, const uint8_t *want, size_t wn)
{
    return n == wn && memcmp(out, want, n) == 0;
}


static void
test_ack_after_early_data(void)
{
    static peer_t   s;
    static uint8_t  in[12 + YAMUX_INITIAL_WINDOW];
    int             round;
    uint8_t         out[64], want[12], h[12];
    size_t          n;
    ssize_t         rc;

    /*
     * The peer may send a whole initial window before our ACK leaves (as
     * hashicorp does); the ACK's window update adds to what is left of the
     * receive window, it does not start it again.
     */
    for (round = 0; round < 2; round++) {
        peer_init(&s, 0, 1024 * 1024);
        s.consume = 0;

        hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
        CHECK(yamux_input(s.s, in, 12) == 12, "SYN taken");

        hdr(in, YAMUX_DATA, 0, 1, YAMUX_INITIAL_WINDOW);
        memset(in + 12, 'e', YAMUX_INITIAL_WINDOW);
        rc = yamux_input(s.s, in, sizeof(in));
        CHECK(rc == (ssize_t) sizeof(in), "a full initial window before "
              "the ACK: rc %zd (%s)", rc, yamux_error(s.s));

        n = take(&s, out, sizeof(out));
        hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 768 * 1024);
        CHECK(frames_equal(out, n, want, 12), "ACK with 768 KiB, %zu bytes",
              n);

        if (round == 0) {
            hdr(h, YAMUX_DATA, 0, 1, 768 * 1024);
            CHECK(yamux_input(s.s, h, 12) == 12,
                  "768 KiB more fit the window: %s", yamux_error(s.s));

        } else {
            hdr(h, YAMUX_DATA, 0, 1, 768 * 1024 + 1);
            rc = yamux_input(s.s, h, 12);
            CHECK(rc == YAMUX_EPROTO
                  && strstr(yamux_error(s.s), "receive window"),
                  "768 KiB + 1 exceed the window: rc %zd", rc);
        }

        peer_free(&s);
    }
}


static void
test_ping_flood_bytewise(void)
{
    static peer_t   s;
    static uint8_t  got[64 * 12];
    uint8_t         in[40 * 12], want[40 * 12];
    size_t          i, fed, ngot;
    ssize_t         rc;
    int             stalls;

    /* pings that arrive a byte at a time are answered, every one */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    for (i = 0; i < 40; i++) {
        hdr(in + i * 12, YAMUX_PING, YAMUX_SYN, 0, 1000 + (uint32_t) i);
        hdr(want + i * 12, YAMUX_PING, YAMUX_ACK, 0, 1000 + (uint32_t) i);
    }

    ngot = 0;
    stalls = 0;

    for (fed = 0; fed < sizeof(in); fed += (size_t) rc) {
        rc = yamux_input(s.s, in + fed, 1);
        CHECK(rc == 0 || rc == 1, "one byte or none, rc %zd", rc);
        if (rc < 0) {
            break;
        }

        if (rc == 0) {
            /* the answers must be read before more questions */
            stalls++;
            ngot += take(&s, got + ngot, sizeof(got) - ngot);
            CHECK(stalls < 100, "input makes progress");
            if (stalls >= 100) {
                break;
            }
        }
    }

    ngot += take(&s, got + ngot, sizeof(got) - ngot);

    CHECK(stalls > 0, "input paused while answers were queued");
    CHECK(frames_equal(got, ngot, want, sizeof(want)),
          "40 answers in order, got %zu bytes", ngot);

    peer_free(&s);
}


static void
test_refused_syn_flood(void)
{
    static peer_t   s;
    static uint8_t  in[100 * 12], want[100 * 12], got[200 * 12];
    size_t          i, fed, ngot;
    ssize_t         rc;

    /* the application refuses every stream: each SYN gets its RST */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);
    s.refuse = 1;

    for (i = 0; i < 100; i++) {
        hdr(in + i * 12, YAMUX_WINDOW_UPDATE, YAMUX_SYN,
            1 + 2 * (uint32_t) i, 0);
        hdr(want + i * 12, YAMUX_WINDOW_UPDATE, YAMUX_RST,
            1 + 2 * (uint32_t) i, 0);
    }

    ngot = 0;

    for (fed = 0; fed < sizeof(in); fed += (size_t) rc) {
        rc = yamux_input(s.s, in + fed, sizeof(in) - fed);
        CHECK(rc >= 0, "no error, rc %zd", rc);
        if (rc < 0) {
            break;
        }

        ngot += take(&s, got + ngot, sizeof(got) - ngot);
    }

    CHECK(frames_equal(got, ngot, want, sizeof(want)),
          "100 RSTs in order, got %zu bytes", ngot);

    peer_free(&s);
}


static void
test_writable_callback_resets_other(void)
{
    static peer_t   c, s;
    int             rc;
    size_t          n;
    uint8_t        *p;
    uint32_t        a, b, x;
    yamux_config_t  conf;

    /*
     * Three streams wait for queue room; the first one's stream_writable
     * resets the third.  The wait list must stay whole: later waits are
     * still woken.
     */
    yamux_config_init(&conf, 1);
    conf.max_queued = 16 * 1024;
    peer_start(&c, &conf);
    c.consume = 1;
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &a, NULL);
    yamux_stream_open(c.s, &b, NULL);
    yamux_stream_open(c.s, &x, NULL);
    pump(&c, &s);

    n = 0;
    p = yamux_stream_reserve(c.s, a, &n, &rc);
    CHECK(p != NULL, "room for a");
    yamux_stream_commit(c.s, a, n);

    n = 0;
    CHECK(yamux_stream_reserve(c.s, a, &n, &rc) == NULL && rc == YAMUX_EAGAIN,
          "a waits for the queue");
    n = 0;
    CHECK(yamux_stream_reserve(c.s, b, &n, &rc) == NULL && rc == YAMUX_EAGAIN,
          "b waits for the queue");
    n = 0;
    CHECK(yamux_stream_reserve(c.s, x, &n, &rc) == NULL && rc == YAMUX_EAGAIN,
          "x waits for the queue");

    c.reset_on_writable = x;
    pump(&c, &s);

    CHECK(count(&c, 'w', a) == 1, "a woken");
    CHECK(count(&c, 'w', b) == 1, "b woken");
    CHECK(count(&c, 'w', x) == 0, "x, reset meanwhile, not woken");
    CHECK(count(&c, 'c', x) == 1, "x closed");

    /* wait again: the list still works */
    n = 0;
    p = yamux_stream_reserve(c.s, a, &n, &rc);
    CHECK(p != NULL, "room for a again");
    yamux_stream_commit(c.s, a, n);
    n = 0;
    CHECK(yamux_stream_reserve(c.s, a, &n, &rc) == NULL && rc == YAMUX_EAGAIN,
          "a waits again");
    pump(&c, &s);
    CHECK(count(&c, 'w', a) == 2, "a woken again, %d", count(&c, 'w', a));

    peer_free(&c);
    peer_free(&s);
}


static void
test_open_callback_resets_and_refuses(void)
{
    static peer_t  s;
    uint8_t        in[12], out[64], want[12];
    size_t         n;

    /* stream_open resets the stream, then refuses it: one RST, no more */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);
    s.reset_then_refuse = 1;

    hdr(in, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
    CHECK(yamux_input(s.s, in, 12) == 12, "SYN taken");
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
    CHECK(frames_equal(out, n, want, 12), "one RST, got %zu bytes", n);

    peer_free(&s);
}


static void
test_protocol_error_after_go_away(void)
{
    static peer_t  s;
    uint8_t        in[12], out[64], want[24];
    size_t         n;

    /* our go-away(normal) is still queued when the peer errs */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_go_away(s.s, YAMUX_GOAWAY_NORMAL);
    hdr(in, 9, 0, 0, 0);
    CHECK(yamux_input(s.s, in, 12) == YAMUX_EPROTO, "unknown type");

    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
    CHECK(n >= 12 && memcmp(out + n - 12, want, 12) == 0,
          "the last frame is go-away(protocol error), %zu bytes", n);
    peer_free(&s);

    /* once the normal one left, the error still gets its own */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_go_away(s.s, YAMUX_GOAWAY_NORMAL);
    n = take(&s, out, sizeof(out));
    CHECK(n == 12, "go-away(normal) sent");
    CHECK(yamux_input(s.s, in, 12) == YAMUX_EPROTO, "unknown type");
    n = take(&s, out, sizeof(out));
    CHECK(frames_equal(out, n, want, 12), "then go-away(protocol error)");

    peer_free(&s);
}


static void
test_syn_and_flags_on_data(void)
{
    static peer_t  s;
    uint8_t        in[64], out[64], want[12];
    size_t         n;
    uint32_t       id;
    yamux_stats_t  st;

    /* a data frame may open a stream (SYN) and carry FIN with payload */
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    hdr(in, YAMUX_DATA, YAMUX_SYN | YAMUX_FIN, 1, 3);
    memcpy(in + 12, "abc", 3);
    CHECK(yamux_input(s.s, in, 15) == 15, "SYN+FIN data frame taken");
    CHECK(count(&s, 'o', 1) == 1, "stream 1 opened by a data frame");
    CHECK(s.nrx == 3 && memcmp(s.rx, "abc", 3) == 0, "its payload arrived");
    CHECK(count(&s, 'f', 1) == 1, "and its FIN");
    CHECK(s.nev >= 2 && s.ev[s.nev - 1].what == 'f'
          && s.ev[s.nev - 2].what == 'd', "FIN reported after the data");

    /* the ACK also gives back the 3 bytes consumed meanwhile */
    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 3);
    CHECK(frames_equal(out, n, want, 12), "ACK for a data SYN");

    /* we may still send after the peer's FIN; our FIN ends the stream */
    CHECK(yamux_stream_write(s.s, 1, (const uint8_t *) "xy", 2) == 2,
          "write after the peer's FIN");
    CHECK(yamux_stream_close(s.s, 1) == YAMUX_OK, "our FIN");
    n = take(&s, out, sizeof(out));
    CHECK(n == 12 + 2 + 12, "data and FIN, %zu bytes", n);
    CHECK(count(&s, 'c', 1) == 1 && last(&s, 'c')->n == YAMUX_CLOSED_NORMAL,
          "closed once our FIN left");

    /* RST on a data frame: the payload is delivered, then the reset */
    hdr(in, YAMUX_DATA, YAMUX_SYN, 3, 2);
    memcpy(in + 12, "de", 2);
    hdr(in + 14, YAMUX_DATA, YAMUX_RST, 3, 2);
    memcpy(in + 26, "fg", 2);
    CHECK(yamux_input(s.s, in, 28) == 28, "data, then data with RST");
    CHECK(s.nrx == 7 && memcmp(s.rx + 3, "defg", 4) == 0,
          "both payloads arrived");
    CHECK(count(&s, 'c', 3) == 1
          && last(&s, 'c')->n == YAMUX_CLOSED_RESET_REMOTE,
          "then the stream was reset");

    peer_free(&s);

    /* ACK on a data frame acknowledges our SYN */
    peer_init(&s, 1, YAMUX_INITIAL_WINDOW);
    CHECK(yamux_stream_open(s.s, &id, NULL) == YAMUX_OK, "open");
    take(&s, out, sizeof(out));
    hdr(in, YAMUX_DATA, YAMUX_ACK, id, 1);
    in[12] = 'z';
    CHECK(yamux_input(s.s, in, 13) == 13, "ACK on data");
    yamux_stats(s.s, &st);
    CHECK(st.unacked_syns == 0, "SYN acknowledged, %u left",
          st.unacked_syns);
    CHECK(s.nrx == 1 && s.rx[0] == 'z', "and the payload arrived");

    peer_free(&s);
}


static void
test_half_close_server_first(void)
{
    static peer_t  c, s;
    uint32_t       id;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    /* the acceptor closes first; the opener keeps sending */
    CHECK(yamux_stream_close(s.s, id) == YAMUX_OK, "server FIN");
    pump(&s, &c);
    CHECK(count(&c, 'f', id) == 1, "client sees the FIN");
    CHECK(yamux_stream_write(s.s, id, (const uint8_t *) "x", 1)
          == YAMUX_ECLOSED, "no writing after our own FIN");

    CHECK(yamux_stream_write(c.s, id, (const uint8_t *) "more", 4) == 4,
          "client writes after the server's FIN");
    pump(&c, &s);
    CHECK(s.nrx == 4 && memcmp(s.rx, "more", 4) == 0,
          "server receives after its FIN");
    CHECK(count(&s, 'c', id) == 0 && count(&c, 'c', id) == 0,
          "half-closed: still open");

    CHECK(yamux_stream_close(c.s, id) == YAMUX_OK, "client FIN");
    pump(&c, &s);
    CHECK(count(&s, 'c', id) == 1 && last(&s, 'c')->n == YAMUX_CLOSED_NORMAL,
          "server closed normally");
    CHECK(count(&c, 'c', id) == 1 && last(&c, 'c')->n == YAMUX_CLOSED_NORMAL,
          "client closed normally");

    peer_free(&c);
    peer_free(&s);
}


static void
test_closed_stream_frames(void)
{
    static peer_t  c, s;
    uint8_t        in[64], out[64];
    uint32_t       id;
    ssize_t        rc;
    yamux_stats_t  st;

    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);
    yamux_stream_close(c.s, id);
    yamux_stream_close(s.s, id);
    pump(&c, &s);
    CHECK(count(&s, 'c', id) == 1, "closed normally");

    /* frames that crossed the close are dropped quietly */
    hdr(in, YAMUX_WINDOW_UPDATE, 0, id, 1000);
    hdr(in + 12, YAMUX_DATA, 0, id, 4);
    memcpy(in + 24, "late", 4);
    hdr(in + 28, YAMUX_WINDOW_UPDATE, YAMUX_FIN, id, 0);
    hdr(in + 40, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
    rc = yamux_input(s.s, in, 52);
    CHECK(rc == 52, "late frames for a closed stream taken: %zd (%s)", rc,
          yamux_error(s.s));
    CHECK(s.nrx == 0, "late data not delivered");
    CHECK(take(&s, out, sizeof(out)) == 0, "and nothing answered");

    /* but counted: a flood check weighs payload against frames */
    yamux_stats(s.s, &st);
    CHECK(st.bytes_dropped == 4 && st.bytes_in == 0,
          "late data counted as dropped: %llu, as received: %llu",
          (unsigned long long) st.bytes_dropped,
          (unsigned long long) st.bytes_in);

    /* the API says the stream is gone */
    CHECK(yamux_stream_write(s.s, id, (const uint8_t *) "x", 1)
          == YAMUX_ECLOSED, "write to a closed stream");
    CHECK(yamux_stream_close(s.s, id) == YAMUX_ECLOSED, "close it again");
    CHECK(yamux_stream_reset(s.s, id) == YAMUX_ECLOSED, "reset it");
    CHECK(yamux_stream_consumed(s.s, id, 1) == YAMUX_ECLOSED, "consume");
    CHECK(yamux_stream_send_window(s.s, id) == 0, "no window");
    CHECK(yamux_stream_data(s.s, id) == NULL, "no data pointer");
    CHECK(yamux_stream_write(s.s, 99, (const uint8_t *) "x", 1)
          == YAMUX_ECLOSED, "write to a stream never opened");

    /* but never more data than a window could have let through */
    hdr(in, YAMUX_DATA, 0, id, YAMUX_INITIAL_WINDOW + 1);
    rc = yamux_input(s.s, in, 12);
    CHECK(rc == YAMUX_EPROTO && strstr(yamux_error(s.s), "exceed any"),
          "too much data for a closed stream: %zd", rc);

    peer_free(&c);
    peer_free(&s);
}


static void
test_reset_before_syn_sent(void)
{
    static peer_t  c;
    uint8_t        out[64], want[24];
    size_t         n;
    uint32_t       id;

    /* reset before the SYN left: SYN, then RST, in that order */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);
    CHECK(yamux_stream_reset(c.s, id) == YAMUX_OK, "reset");
    CHECK(yamux_stream_reset(c.s, id) == YAMUX_ECLOSED, "only once");

    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
    hdr(want + 12, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
    CHECK(frames_equal(out, n, want, 24), "SYN then RST, %zu bytes", n);
    CHECK(count(&c, 'c', id) == 1
          && last(&c, 'c')->n == YAMUX_CLOSED_RESET_LOCAL,
          "closed as reset by us");

    peer_free(&c);
}


static void
test_go_away_codes(void)
{
    static peer_t  c;
    uint8_t        in[24];
    uint32_t       id;
    yamux_stats_t  st;

    /* go-away codes arrive as sent; the session itself goes on */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);

    hdr(in, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_INTERNAL);
    hdr(in + 12, YAMUX_PING, YAMUX_ACK, 0, 77);
    CHECK(yamux_input(c.s, in, 24) == 24, "go-away(internal error), ping");
    CHECK(last(&c, 'g') && last(&c, 'g')->n == YAMUX_GOAWAY_INTERNAL,
          "code 2 reported");
    CHECK(last(&c, 'p') && last(&c, 'p')->n == 77,
          "frames after a go-away still handled");

    yamux_stats(c.s, &st);
    CHECK(st.remote_go_away && st.remote_go_away_code == 2
          && !st.local_go_away, "stats: remote go-away, code 2");

    hdr(in, YAMUX_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL);
    CHECK(yamux_input(c.s, in, 12) == 12, "go-away(protocol error)");
    CHECK(last(&c, 'g')->n == YAMUX_GOAWAY_PROTOCOL, "code 1 reported");

    CHECK(yamux_stream_open(c.s, &id, NULL) == YAMUX_EGOAWAY,
          "no new stream");
    CHECK(yamux_go_away(c.s, YAMUX_GOAWAY_NORMAL) == YAMUX_OK,
          "we may answer with our own");
    yamux_stats(c.s, &st);
    CHECK(st.local_go_away, "stats: local go-away");

    peer_free(&c);
}


/*
 * Sends what the window allows, "rounds" times, "step" ms apart on the
 * fake clock; returns the bytes sent.
 */
static size_t
send_rounds(peer_t *c, peer_t *s, uint32_t id, int rounds, uint64_t step)
{
    int       rc, r;
    size_t    n, total;
    uint8_t  *p;

    total = 0;

    for (r = 0; r < rounds; r++) {
        for ( ;; ) {
            n = 0;
            p = yamux_stream_reserve(c->s, id, &n, &rc);
            if (p == NULL) {
                break;
            }

            yamux_stream_commit(c->s, id, n);
            total += n;
        }

        fake_now += step;
        pump(c, s);
    }

    return total;
}


static void
test_window_autotune(void)
{
    static peer_t  c, s;
    uint32_t       id;

    /* a 50 ms round trip, measured by a ping each way */
    peer_init_tuned(&c, 1, 256 * 1024, 4 * 1024 * 1024);
    peer_init_tuned(&s, 0, 256 * 1024, 4 * 1024 * 1024);

    yamux_ping(c.s, 1);
    yamux_ping(s.s, 2);

    {
        static uint8_t  buf[256];
        size_t          n1, n2;

        n1 = take(&c, buf, 128);
        n2 = take(&s, buf + 128, 128);
        fake_now += 25;
        yamux_input(s.s, buf, n1);
        yamux_input(c.s, buf + 128, n2);
        fake_now += 25;
        pump(&c, &s);
    }
    CHECK(yamux_rtt(c.s) == 50 && yamux_rtt(s.s) == 50,
          "round trip measured: %u and %u ms", yamux_rtt(c.s),
          yamux_rtt(s.s));

    /* a reader that keeps up, updates 10 ms apart: the window doubles */
    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);
    send_rounds(&c, &s, id, 40, 10);
    CHECK(yamux_stream_recv_window(s.s, id) == 4 * 1024 * 1024,
          "a fast stream's window grew to the maximum: %u",
          yamux_stream_recv_window(s.s, id));
    CHECK(yamux_stream_send_window(c.s, id) <= 4 * 1024 * 1024,
          "never beyond it: %u", yamux_stream_send_window(c.s, id));

    /* updates 200 ms apart (4 round trips): the reader is the limit */
    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);
    send_rounds(&c, &s, id, 10, 200);
    CHECK(yamux_stream_recv_window(s.s, id) == 256 * 1024,
          "a stream read slowly keeps its window: %u",
          yamux_stream_recv_window(s.s, id));

    /* a reader that does not read: nothing to announce, nothing grows */
    s.consume = 0;
    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);
    CHECK(send_rounds(&c, &s, id, 10, 1) == 256 * 1024,
          "an unread stream gets its window, once");
    CHECK(yamux_stream_recv_window(s.s, id) == 256 * 1024,
          "and it does not grow: %u", yamux_stream_recv_window(s.s, id));

    peer_free(&c);
    peer_free(&s);
}


static void
test_large_window(void)
{
    static peer_t  c, s;
    int            rc, rounds;
    size_t         n, total;
    uint8_t       *p, out[64], want[12];
    uint32_t       id;

    /* 8 MiB both ways, announced with SYN and ACK */
    peer_init(&c, 1, 8 * 1024 * 1024);
    peer_init(&s, 0, 8 * 1024 * 1024);
    s.consume = 0;

    yamux_stream_open(c.s, &id, NULL);
    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 8 * 1024 * 1024 - 262144);
    CHECK(frames_equal(out, n, want, 12), "SYN announces 8 MiB");
    CHECK(yamux_input(s.s, out, n) == (ssize_t) n, "SYN taken");
    CHECK(yamux_stream_send_window(s.s, id) == 8 * 1024 * 1024,
          "the server may send 8 MiB at once");

    n = take(&s, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_ACK, 1, 8 * 1024 * 1024 - 262144);
    CHECK(frames_equal(out, n, want, 12), "ACK announces 8 MiB");
    CHECK(yamux_input(c.s, out, n) == (ssize_t) n, "ACK taken");
    CHECK(yamux_stream_send_window(c.s, id) == 8 * 1024 * 1024,
          "the client may send 8 MiB at once");

    /* the receiver does not consume: exactly 8 MiB go, then nothing */
    total = 0;

    for (rounds = 0; rounds < 1000; rounds++) {
        n = 0;
        p = yamux_stream_reserve(c.s, id, &n, &rc);
        if (p == NULL) {
            pump(&c, &s);
            n = 0;
            p = yamux_stream_reserve(c.s, id, &n, &rc);
            if (p == NULL) {
                break;
            }
        }

        yamux_stream_commit(c.s, id, n);
        total += n;
    }

    CHECK(rc == YAMUX_EAGAIN && total == 8 * 1024 * 1024,
          "blocked after exactly 8 MiB: %zu", total);
    CHECK(yamux_stream_send_window(c.s, id) == 0, "window used up");

    /* half consumed: the update gives back 4 MiB */
    yamux_stream_consumed(s.s, id, 4 * 1024 * 1024);
    pump(&s, &c);
    CHECK(yamux_stream_send_window(c.s, id) == 4 * 1024 * 1024,
          "4 MiB back: %u", yamux_stream_send_window(c.s, id));
    CHECK(count(&c, 'w', id) >= 1, "writable again");

    peer_free(&c);
    peer_free(&s);
}


static void
test_backpressure_memory_bounded(void)
{
    int             round;
    long            c_allocs, s_allocs;
    size_t          n;
    ssize_t         w;
    uint32_t        id;
    yamux_stats_t   st;
    static peer_t   c, s;
    static uint8_t  chunk[100 * 1024];

    /*
     * A sender that keeps trying, a receiver that never consumes: the
     * sender stays blocked at the window, the receiver holds nothing (the
     * core keeps no payload), and neither side's memory grows.
     */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);
    s.consume = 0;

    yamux_stream_open(c.s, &id, NULL);
    pump(&c, &s);

    c_allocs = 0;
    s_allocs = 0;
    n = 0;

    for (round = 0; round < 200; round++) {
        w = yamux_stream_write(c.s, id, chunk, sizeof(chunk));
        if (w > 0) {
            n += (size_t) w;
        }

        pump(&c, &s);

        if (round == 10) {
            c_allocs = c.allocs;
            s_allocs = s.allocs;
        }
    }

    CHECK(n == YAMUX_INITIAL_WINDOW, "sent one window in 200 rounds: %zu",
          n);
    CHECK(c.allocs == c_allocs && s.allocs == s_allocs,
          "allocations steady: client %ld then %ld, server %ld then %ld",
          c_allocs, c.allocs, s_allocs, s.allocs);
    CHECK(c.allocs <= 3 && s.allocs <= 3,
          "no buffers held: client %ld, server %ld", c.allocs, s.allocs);
    CHECK(yamux_output_pending(c.s) == 0, "nothing queued");

    yamux_stats(s.s, &st);
    CHECK(st.bytes_in == YAMUX_INITIAL_WINDOW, "received %llu",
          (unsigned long long) st.bytes_in);

    peer_free(&c);
    peer_free(&s);
}


static void
test_strerror(void)
{
    int  rc;

    for (rc = YAMUX_OK; rc >= YAMUX_ESESSION; rc--) {
        CHECK(strcmp(yamux_strerror(rc), "unknown error") != 0,
              "code %d has a text", rc);
    }

    CHECK(strcmp(yamux_strerror(-100), "unknown error") == 0,
          "unknown code");
}


static void
test_closed_callback_reserves(void)
{
    static peer_t  c, s;
    uint8_t        out[64];
    uint32_t       a, b;

    /*
     * Our FIN is the last byte of the output queue; once it is sent the
     * stream closes, and its stream_closed reserves room on another stream
     * and commits nothing (a read that found no data).  The queue's block
     * must survive the callback.
     */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);
    peer_init(&s, 0, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &a, NULL);
    yamux_stream_open(c.s, &b, NULL);
    pump(&c, &s);

    yamux_stream_close(s.s, a);
    pump(&s, &c);
    CHECK(count(&c, 'f', a) == 1, "the peer's FIN arrived");

    c.reserve_on_closed = b;
    yamux_stream_close(c.s, a);
    CHECK(take(&c, out, sizeof(out)) == 12, "our FIN sent");
    CHECK(count(&c, 'c', a) == 1, "stream closed");

    c.reserve_on_closed = 0;
    CHECK(yamux_stream_write(c.s, b, (const uint8_t *) "ok", 2) == 2,
          "the queue still works");
    pump(&c, &s);
    CHECK(s.nrx == 2 && memcmp(s.rx, "ok", 2) == 0, "and its data arrives");

    peer_free(&c);
    peer_free(&s);
}


static void
test_reset_without_memory(void)
{
    static peer_t  c;
    int            rc, i;
    size_t         n;
    uint8_t       *p;
    uint32_t       id;
    static uint8_t out[128 * 1024], want[24];

    /*
     * A reset before the SYN left needs room in the ordered queue; with
     * the last block full and no memory it fails, and must leave the
     * stream as it was, so that a later reset still sends the RST.
     */
    peer_init(&c, 1, YAMUX_INITIAL_WINDOW);

    yamux_stream_open(c.s, &id, NULL);

    for (i = 0; i < 2; i++) {
        n = 0;
        p = yamux_stream_reserve(c.s, id, &n, &rc);
        CHECK(p != NULL, "room %d", i);
        if (p) {
            memset(p, 'r', n);
            yamux_stream_commit(c.s, id, n);
        }
    }

    c.no_memory = 1;
    rc = yamux_stream_reset(c.s, id);
    CHECK(rc == YAMUX_ENOMEM, "no memory for the RST: %d", rc);
    c.no_memory = 0;

    CHECK(yamux_stream_reset(c.s, id) == YAMUX_OK, "the reset, again");
    n = take(&c, out, sizeof(out));
    hdr(want, YAMUX_WINDOW_UPDATE, YAMUX_SYN, 1, 0);
    hdr(want + 12, YAMUX_WINDOW_UPDATE, YAMUX_RST, 1, 0);
    CHECK(n > 24 && memcmp(out, want, 12) == 0
          && memcmp(out + n - 12, want + 12, 12) == 0,
          "SYN first, RST last: %zu bytes", n);
    CHECK(count(&c, 'c', id) == 1
          && last(&c, 'c')->n == YAMUX_CLOSED_RESET_LOCAL,
          "the stream closed once the RST left");

    peer_free(&c);
}


int
main(void)
{
    test_open_accept_exact_bytes();
    test_data_exact_bytes();
    test_half_close_both_ways();
    test_reset();
    test_window_backpressure();
    test_queue_limit_and_memory();
    test_control_overtakes_data();
    test_ping_exact_and_flood();
    test_go_away();
    test_limits();
    test_protocol_errors();
    test_many_streams_random_split();
    test_ack_after_early_data();
    test_ping_flood_bytewise();
    test_refused_syn_flood();
    test_writable_callback_resets_other();
    test_open_callback_resets_and_refuses();
    test_protocol_error_after_go_away();
    test_syn_and_flags_on_data();
    test_half_close_server_first();
    test_closed_stream_frames();
    test_reset_before_syn_sent();
    test_go_away_codes();
    test_large_window();
    test_window_autotune();
    test_backpressure_memory_bounded();
    test_strerror();
    test_closed_callback_reserves();
    test_reset_without_memory();

    return check_done("test_yamux");
}
