/*
 * Copyright (C) ngx_tunnel developers
 *
 * Interop driver: our yamux session (core/yamux.c) on a real TCP socket,
 * against hashicorp/yamux in tests/interop/peer.go.  One scenario per run:
 *
 *     driver -role client|server -scenario NAME -sync DIR [-port N]
 *
 * As server it listens on 127.0.0.1, an ephemeral port, and prints
 * "port N" first; as client it connects to 127.0.0.1:N.  When its checks
 * are done it creates DIR/c.done and keeps the session going until the Go
 * peer has created DIR/go.done, then closes.  It prints what passed and
 * exits 0, or says what failed and exits 1.
 *
 * Payload is a pattern both programs compute: byte "off" of stream "id"
 * written by side "dir" (0 us, 1 them), so every byte is checked.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "yamux.h"


#define MIB             (1024 * 1024)
#define STREAMS         128
#define IN_SIZE         (256 * 1024)
#define DEADLINE_MS     45000
#define ECHO_STREAMS    100
#define ECHO_BYTES      MIB


typedef struct {
    uint32_t          id;
    unsigned          used:1;
    unsigned          local:1;      /* we opened it */
    unsigned          echo:1;       /* send back what arrives */
    unsigned          blocked:1;    /* wait for stream_writable */
    unsigned          fin_after:1;  /* FIN once "to_write" is written */
    unsigned          fin_sent:1;
    unsigned          fin_seen:1;
    unsigned          closed:1;
    int               how;          /* yamux_close_e, once closed */
    int               expect_dir;   /* pattern of incoming data, -1: none */

    uint64_t          to_write;     /* pattern bytes to write in total */
    uint64_t          written;
    uint64_t          received;
    unsigned          hold:1;       /* credit nothing for now */
    uint64_t          unread;       /* received, not yet credited */

    uint8_t          *echo_buf;     /* received, not yet echoed */
    size_t            echo_len;
    size_t            echo_size;

    char              text[64];     /* the first bytes, for small tests */
    size_t            ntext;
} st_t;


static yamux_session_t  *mux;
static int               fd = -1;
static int               eof;
static int               failed;
static int               passed;
static int               client;
static const char       *scenario;
static const char       *sync_dir;
static uint32_t          window = 8 * MIB;
static st_t              streams[STREAMS];
static uint8_t           inbuf[IN_SIZE];
static size_t            in_pos, in_len;  /* unconsumed input */
static struct timespec   start;

/* events */
static uint32_t          pings[16];
static int               npings;
static int               go_away_seen = -1;
static int               peer_echo = 1;    /* for streams the peer opens */
static int               peer_expect = 1;
static int               peer_hold;
static int               reset_on_data;
static int               go_away_on_data;


static void
fail(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "driver %s %s: FAIL: ", client ? "client" : "server",
            scenario);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    failed++;
}


static void
pass(const char *fmt, ...)
{
    va_list  args;

    printf("driver %s %s: ok: ", client ? "client" : "server", scenario);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    putchar('\n');
    fflush(stdout);
    passed++;
}


static long
elapsed_ms(void)
{
    struct timespec  now;

    clock_gettime(CLOCK_MONOTONIC, &now);

    return (now.tv_sec - start.tv_sec) * 1000
           + (now.tv_nsec - start.tv_nsec) / 1000000;
}


static uint8_t
pattern(uint32_t id, int dir, uint64_t off)
{
    return (uint8_t) ((off * 131) ^ (off >> 9) ^ ((uint64_t) id * 29)
                      ^ ((uint64_t) dir * 0x5a));
}


static st_t *
st_find(uint32_t id)
{
    int  i;

    for (i = 0; i < STREAMS; i++) {
        if (streams[i].used && streams[i].id == id) {
            return &streams[i];
        }
    }

    return NULL;
}


static st_t *
st_new(uint32_t id)
{
    int  i;

    for (i = 0; i < STREAMS; i++) {
        if (!streams[i].used) {
            memset(&streams[i], 0, sizeof(st_t));
            streams[i].used = 1;
            streams[i].id = id;
            streams[i].expect_dir = -1;
            return &streams[i];
        }
    }

    fail("more than %d streams", STREAMS);
    return NULL;
}


static st_t *
st_open(void)
{
    int       rc;
    uint32_t  id;
    st_t     *st;

    rc = yamux_stream_open(mux, &id, NULL);
    if (rc != YAMUX_OK) {
        fail("open: %s", yamux_strerror(rc));
        return NULL;
    }

    st = st_new(id);
    if (st) {
        st->local = 1;
    }

    return st;
}


/* give the peer back what was received, above the "hold" mark */
static void
st_credit(st_t *st)
{
    if (st->closed || st->unread == 0 || st->hold) {
        return;
    }

    (void) yamux_stream_consumed(mux, st->id, (size_t) st->unread);
    st->unread = 0;
}


/* writes "text" and FIN; 0 if either is refused */
static int
st_write_fin(st_t *st, const char *text)
{
    size_t  n;

    n = strlen(text);

    if (yamux_stream_write(mux, st->id, (const uint8_t *) text, n)
        != (ssize_t) n
        || yamux_stream_close(mux, st->id) != YAMUX_OK)
    {
        return 0;
    }

    st->fin_sent = 1;
    return 1;
}


/* the stream's first bytes are "text", and no more */
static int
st_text_is(st_t *st, const char *text)
{
    return st->ntext == strlen(text) && memcmp(st->text, text, st->ntext) == 0;
}


static int
on_open(yamux_session_t *s, uint32_t id, void *ud)
{
    st_t  *st;

    (void) s;
    (void) ud;

    st = st_new(id);
    if (st == NULL) {
        return -1;
    }

    st->echo = peer_echo;
    st->expect_dir = peer_expect;
    st->hold = peer_hold;

    return 0;
}


static void
on_data(yamux_session_t *s, uint32_t id, void *sd, const uint8_t *p,
    size_t n)
{
    size_t  i, k;
    st_t   *st;

    (void) s;
    (void) sd;

    st = st_find(id);
    if (st == NULL) {
        fail("data for unknown stream %u", id);
        return;
    }

    if (st->ntext < sizeof(st->text) - 1) {
        k = sizeof(st->text) - 1 - st->ntext;
        k = n < k ? n : k;
        memcpy(st->text + st->ntext, p, k);
        st->ntext += k;
    }

    if (st->expect_dir >= 0) {
        for (i = 0; i < n; i++) {
            if (p[i] != pattern(id, st->expect_dir, st->received + i)) {
                fail("stream %u: byte %llu is 0x%02x, expected 0x%02x", id,
                     (unsigned long long) (st->received + i), p[i],
                     pattern(id, st->expect_dir, st->received + i));
                st->expect_dir = -1;
                break;
            }
        }
    }

    st->received += n;

    if (reset_on_data) {
        (void) yamux_stream_reset(mux, id);
        return;
    }

    if (go_away_on_data) {
        (void) yamux_go_away(mux, YAMUX_GOAWAY_NORMAL);
        go_away_on_data = 0;
    }

    if (st->echo) {
        if (st->echo_len + n > st->echo_size) {
            st->echo_size = (st->echo_len + n) * 2;
            st->echo_buf = realloc(st->echo_buf, st->echo_size);
            if (st->echo_buf == NULL) {
                fail("out of memory");
                exit(1);
            }
        }

        memcpy(st->echo_buf + st->echo_len, p, n);
        st->echo_len += n;

        /* credited once echoed: the peer never has more than a window */
        return;
    }

    st->unread += n;
    st_credit(st);
}


static void
on_fin(yamux_session_t *s, uint32_t id, void *sd)
{
    st_t  *st;

    (void) s;
    (void) sd;

    st = st_find(id);
    if (st) {
        st->fin_seen = 1;
    }
}


static void
on_writable(yamux_session_t *s, uint32_t id, void *sd)
{
    st_t  *st;

    (void) s;
    (void) sd;

    st = st_find(id);
    if (st) {
        st->blocked = 0;
    }
}


static void
on_closed(yamux_session_t *s, uint32_t id, void *sd, yamux_close_e how)
{
    st_t  *st;

    (void) s;
    (void) sd;

    st = st_find(id);
    if (st) {
        st->closed = 1;
        st->how = how;
    }
}


static void
on_ping(yamux_session_t *s, uint32_t opaque, void *ud)
{
    (void) s;
    (void) ud;

    if (npings < 16) {
        pings[npings++] = opaque;
    }
}


static void
on_go_away(yamux_session_t *s, uint32_t code, void *ud)
{
    (void) s;
    (void) ud;

    go_away_seen = (int) code;
}


static const yamux_callbacks_t  callbacks = {
    on_open, on_data, on_fin, on_writable, on_closed, on_ping, on_go_away
};


/* writes pattern and echo bytes while windows allow */
static void
step_streams(void)
{
    int       i, rc;
    size_t    n, k;
    uint8_t  *p;
    ssize_t   w;
    st_t     *st;

    for (i = 0; i < STREAMS; i++) {
        st = &streams[i];

        if (!st->used || st->closed || st->blocked) {
            continue;
        }

        if (st->echo && st->echo_len) {
            w = yamux_stream_write(mux, st->id, st->echo_buf, st->echo_len);

            if (w > 0) {
                memmove(st->echo_buf, st->echo_buf + w, st->echo_len - w);
                st->echo_len -= (size_t) w;
                (void) yamux_stream_consumed(mux, st->id, (size_t) w);

            } else if (w == YAMUX_EAGAIN) {
                st->blocked = 1;
                continue;

            } else if (w < 0) {
                continue;
            }

            if (st->echo_len) {
                st->blocked = 1;
                continue;
            }
        }

        if (st->echo && st->fin_seen && st->echo_len == 0 && !st->fin_sent) {
            if (yamux_stream_close(mux, st->id) == YAMUX_OK) {
                st->fin_sent = 1;
            }

            continue;
        }

        while (st->written < st->to_write) {
            n = st->to_write - st->written;
            p = yamux_stream_reserve(mux, st->id, &n, &rc);

            if (p == NULL) {
                if (rc == YAMUX_EAGAIN) {
                    st->blocked = 1;

                } else {
                    fail("stream %u: reserve: %s", st->id,
                         yamux_strerror(rc));
                    st->to_write = st->written;
                }

                break;
            }

            for (k = 0; k < n; k++) {
                p[k] = pattern(st->id, 0, st->written + k);
            }

            yamux_stream_commit(mux, st->id, n);
            st->written += n;
        }

        if (st->fin_after && st->written == st->to_write && !st->fin_sent) {
            if (yamux_stream_close(mux, st->id) == YAMUX_OK) {
                st->fin_sent = 1;
            }
        }
    }
}


static void
io_write(void)
{
    int           n;
    ssize_t       w;
    struct iovec  iov[64];

    for ( ;; ) {
        n = yamux_output(mux, iov, 64);
        if (n == 0) {
            return;
        }

        w = writev(fd, iov, n);

        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                eof = 1;
            }

            return;
        }

        yamux_output_advance(mux, (size_t) w);
    }
}


static void
io_read(void)
{
    ssize_t  n, rc;

    if (in_pos == in_len) {
        in_pos = 0;
        in_len = 0;

        n = read(fd, inbuf, sizeof(inbuf));

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            eof = 1;
            return;
        }

        if (n < 0) {
            return;
        }

        in_len = (size_t) n;
    }

    rc = yamux_input(mux, inbuf + in_pos, in_len - in_pos);

    if (rc < 0) {
        fail("protocol error: %s", yamux_error(mux));
        io_write();
        exit(1);
    }

    in_pos += (size_t) rc;
}


/* run the session until "done" says so; 0 on success */
static int
run_until(int (*done)(void), const char *what)
{
    int            rc;
    struct pollfd  pfd;

    for ( ;; ) {
        step_streams();
        io_write();

        if (done()) {
            return 0;
        }

        if (eof) {
            fail("the connection ended while waiting for %s", what);
            return -1;
        }

        if (elapsed_ms() > DEADLINE_MS) {
            fail("timed out waiting for %s", what);
            return -1;
        }

        pfd.fd = fd;
        pfd.events = 0;
        pfd.revents = 0;

        /* input not taken yet waits until our output drains */
        if (in_pos == in_len || yamux_output_pending(mux) == 0) {
            pfd.events |= POLLIN;
        }

        if (yamux_output_pending(mux)) {
            pfd.events |= POLLOUT;
        }

        rc = poll(&pfd, 1, 20);

        if (rc < 0 && errno != EINTR) {
            fail("poll: %s", strerror(errno));
            return -1;
        }

        if (pfd.revents & POLLOUT) {
            io_write();
        }

        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)
            || (in_pos < in_len && yamux_output_pending(mux) == 0))
        {
            io_read();
        }
    }
}


/* conditions */

static int  want;
static int  sleep_until;


static int
time_passed(void)
{
    return elapsed_ms() >= sleep_until;
}


static void
pause_ms(int ms)
{
    sleep_until = (int) elapsed_ms() + ms;
    (void) run_until(time_passed, "a pause");
}


/* at least "want" of the streams we opened ("local") or the peer did */
static int
closed_streams(unsigned local)
{
    int  i, n;

    n = 0;

    for (i = 0; i < STREAMS; i++) {
        if (streams[i].used && streams[i].local == local
            && streams[i].closed)
        {
            n++;
        }
    }

    return n >= want;
}


static int
all_local_closed(void)
{
    return closed_streams(1);
}


static int
all_peer_closed(void)
{
    return closed_streams(0);
}


static int
pings_answered(void)
{
    return npings >= want;
}


static int
go_away_arrived(void)
{
    return go_away_seen >= 0;
}


static int
peer_done(void)
{
    char  path[4096];

    snprintf(path, sizeof(path), "%s/go.done", sync_dir);

    return access(path, F_OK) == 0;
}


/* the streams we watch */
static st_t  *w1, *w2;


static int
w1_acked(void)
{
    yamux_stats_t  st;

    yamux_stats(mux, &st);

    return st.unacked_syns == 0 || w1->closed;
}


static int
w1_window_used(void)
{
    return w1->written == w1->to_write
           || (w1->blocked && yamux_stream_send_window(mux, w1->id) == 0
               && yamux_output_pending(mux) == 0);
}


static int
w1_closed(void)
{
    return w1->closed;
}


static int
w2_held(void)
{
    return w2 != NULL && w2->received >= 8 * MIB;
}


static int
w2_fin_seen(void)
{
    return w2->fin_seen;
}


static int
first_peer_stream(void)
{
    int  i;

    for (i = 0; i < STREAMS; i++) {
        if (streams[i].used && !streams[i].local) {
            w2 = &streams[i];
            return 1;
        }
    }

    return 0;
}


/* scenarios */

static void
check_closed_normally(st_t *st, const char *what)
{
    if (!st->closed || st->how != YAMUX_CLOSED_NORMAL) {
        fail("%s: stream %u not closed normally (closed %d, how %d)", what,
             st->id, st->closed, st->how);
    }
}


/*
 * Each stream carried ECHO_BYTES of the pattern of side "dir", had the
 * peer's FIN if "fin", and closed normally; says which did not, and
 * returns how many.
 */
static int
bad_echoes(int dir, int fin)
{
    int    i, bad;
    st_t  *st;

    bad = 0;

    for (i = 0; i < STREAMS; i++) {
        st = &streams[i];

        if (!st->used) {
            continue;
        }

        if (st->received != ECHO_BYTES || st->expect_dir != dir
            || (fin && !st->fin_seen) || st->how != YAMUX_CLOSED_NORMAL)
        {
            fail("stream %u: %llu bytes back, fin %d, how %d", st->id,
                 (unsigned long long) st->received, st->fin_seen, st->how);
            bad++;
        }
    }

    return bad;
}


/* we open 100 streams, each sends 1 MiB and FIN; the peer echoes */
static void
scenario_echo_ours(void)
{
    int    i;
    st_t  *st;

    for (i = 0; i < ECHO_STREAMS; i++) {
        st = st_open();
        if (st == NULL) {
            return;
        }

        st->to_write = ECHO_BYTES;
        st->fin_after = 1;
        st->expect_dir = 0;
    }

    want = ECHO_STREAMS;
    if (run_until(all_local_closed, "100 echoes") != 0) {
        return;
    }

    if (bad_echoes(0, 1) == 0) {
        pass("100 concurrent streams each echoed 1 MiB, every byte the "
             "same, FIN both ways");
    }
}


/* the peer opens 100 streams and sends 1 MiB on each; we echo */
static void
scenario_echo_theirs(void)
{
    want = ECHO_STREAMS;
    if (run_until(all_peer_closed, "100 echo streams to end") != 0) {
        return;
    }

    if (bad_echoes(1, 0) == 0) {
        pass("echoed 1 MiB on each of the peer's 100 concurrent streams");
    }
}


/* we send 1 MiB and FIN, then receive 1 MiB after our FIN */
static void
scenario_halfclose_ours(void)
{
    w1 = st_open();
    if (w1 == NULL) {
        return;
    }

    w1->to_write = MIB;
    w1->fin_after = 1;
    w1->expect_dir = 1;

    if (run_until(w1_closed, "the stream to end") != 0) {
        return;
    }

    if (w1->received == MIB && w1->expect_dir == 1 && w1->fin_seen) {
        pass("after our FIN the peer sent 1 MiB, then its FIN");
    } else {
        fail("received %llu bytes after our FIN, fin %d",
             (unsigned long long) w1->received, w1->fin_seen);
    }

    check_closed_normally(w1, "half-close");
}


static int
w1_fin_seen(void)
{
    return w1->fin_seen;
}


/* the peer sends 1 MiB and FIN; we send 100 KiB after its FIN */
static void
scenario_halfclose_theirs(void)
{
    peer_echo = 0;

    if (run_until(first_peer_stream, "the peer's stream") != 0) {
        return;
    }

    w1 = w2;

    if (run_until(w1_fin_seen, "the peer's FIN") != 0) {
        return;
    }

    if (w1->received == MIB && w1->expect_dir == 1) {
        pass("received 1 MiB and the peer's FIN");
    } else {
        fail("received %llu bytes before the FIN",
             (unsigned long long) w1->received);
    }

    /* now write after the peer's FIN, then ours */
    w1->to_write = 100 * 1024;
    w1->fin_after = 1;

    if (run_until(w1_closed, "the stream to end") != 0) {
        return;
    }

    if (w1->written == 100 * 1024) {
        pass("sent 100 KiB after the peer's FIN, then FIN");
    }

    check_closed_normally(w1, "half-close");
}


static int
w2_closed(void)
{
    return w2->closed;
}


/*
 * The peer accepts one stream at a time (backlog 1) and accepts late: our
 * second SYN is refused with RST.  We reset our first stream after 64 KiB,
 * and reset the peer's stream when its data arrives.
 */
static void
scenario_reset(void)
{
    st_t  *g;

    w1 = st_open();
    w2 = st_open();
    if (w1 == NULL || w2 == NULL) {
        return;
    }

    if (run_until(w2_closed, "our second stream to be refused") != 0) {
        return;
    }

    if (w2->how == YAMUX_CLOSED_RESET_REMOTE) {
        pass("the peer refused our stream %u beyond its backlog with RST",
             w2->id);
    } else {
        fail("stream %u closed with %d, expected a reset", w2->id, w2->how);
    }

    /* 64 KiB on the first, then RST */
    w1->to_write = 64 * 1024;
    w1->expect_dir = -1;

    while (w1->written < w1->to_write && !w1->closed) {
        pause_ms(5);
    }

    if (yamux_stream_reset(mux, w1->id) != YAMUX_OK) {
        fail("reset of stream %u refused", w1->id);
        return;
    }

    if (run_until(w1_closed, "our RST to leave") != 0) {
        return;
    }

    if (w1->how == YAMUX_CLOSED_RESET_LOCAL) {
        pass("reset our stream %u after 64 KiB", w1->id);
    } else {
        fail("stream %u closed with %d, expected our reset", w1->id,
             w1->how);
    }

    /* the peer's stream: reset when its data arrives */
    reset_on_data = 1;
    peer_expect = -1;

    if (run_until(first_peer_stream, "the peer's stream") != 0) {
        return;
    }

    g = w2;
    w1 = g;
    if (run_until(w1_closed, "the peer's stream to be reset") != 0) {
        return;
    }

    if (g->how == YAMUX_CLOSED_RESET_LOCAL) {
        pass("reset the peer's stream %u when its data came", g->id);
    } else {
        fail("peer stream %u closed with %d", g->id, g->how);
    }
}


static void
scenario_ping(void)
{
    int       i, j;
    uint32_t  opaque[5] = { 0, 1, 0x01020304, 0x7fffffff, 0xffffffff };

    for (i = 0; i < 5; i++) {
        if (yamux_ping(mux, opaque[i]) != YAMUX_OK) {
            fail("ping %d not queued", i);
        }
    }

    want = 5;
    if (run_until(pings_answered, "5 ping answers") != 0) {
        return;
    }

    /* hashicorp answers each ping from its own goroutine: any order */
    for (i = 0; i < 5; i++) {
        for (j = 0; j < 5; j++) {
            if (pings[j] == opaque[i]) {
                pings[j] = 0x5a5a5a5a;
                break;
            }
        }

        if (j == 5) {
            fail("ping 0x%08x not answered with its opaque value",
                 opaque[i]);
            return;
        }
    }

    pass("5 pings answered, each with its opaque value");
}


/* the peer sends go-away while our stream is open */
static void
scenario_goaway_theirs(void)
{
    int       rc;
    uint32_t  id;

    w1 = st_open();
    if (w1 == NULL) {
        return;
    }


    if (yamux_stream_write(mux, w1->id, (const uint8_t *) "hello1", 6)
        != 6)
    {
        fail("write hello1");
        return;
    }

    if (run_until(go_away_arrived, "the peer's go-away") != 0) {
        return;
    }

    if (go_away_seen == YAMUX_GOAWAY_NORMAL) {
        pass("the peer's go-away(normal) arrived");
    } else {
        fail("go-away code %d", go_away_seen);
    }

    rc = yamux_stream_open(mux, &id, NULL);
    if (rc == YAMUX_EGOAWAY) {
        pass("no new stream after the peer's go-away");
    } else {
        fail("open after go-away: %s", yamux_strerror(rc));
    }

    if (!st_write_fin(w1, "hello2")) {
        fail("write hello2 after go-away");
        return;
    }

    if (run_until(w1_closed, "the stream to end") != 0) {
        return;
    }

    if (st_text_is(w1, "hello1hello2")) {
        pass("the open stream went on after go-away: echo and FIN");
    } else {
        fail("echo \"%.*s\"", (int) w1->ntext, w1->text);
    }

    check_closed_normally(w1, "go-away");
}


/* we send go-away when the peer's first data arrives */
static void
scenario_goaway_ours(void)
{
    st_t  *g;

    go_away_on_data = 1;
    peer_expect = -1;

    if (run_until(first_peer_stream, "the peer's stream") != 0) {
        return;
    }

    g = w2;

    if (run_until(w2_closed, "the peer's stream to end") != 0) {
        return;
    }

    if (st_text_is(g, "hello1hello2")) {
        pass("after our go-away the peer's open stream went on");
    } else {
        fail("peer stream carried \"%.*s\"", (int) g->ntext, g->text);
    }

    check_closed_normally(g, "go-away");

    /* as hashicorp: our own go-away still lets us open streams */
    w1 = st_open();
    if (w1 == NULL) {
        return;
    }

    if (!st_write_fin(w1, "after")) {
        fail("write on a stream opened after our go-away");
        return;
    }

    if (run_until(w1_closed, "our late stream to end") != 0) {
        return;
    }

    if (st_text_is(w1, "after")) {
        pass("opened a stream after our own go-away, and it echoed");
    } else {
        fail("late stream echo \"%.*s\"", (int) w1->ntext, w1->text);
    }
}


/*
 * 8 MiB windows both ways.  Our stream: the peer's ACK raises our send
 * window to 8 MiB; the peer does not read until we are blocked, so we can
 * send exactly 8 MiB; then a second stream says "go" and we send 24 MiB in
 * all.  The peer's stream: its SYN gives us 8 MiB; we credit nothing until
 * 8 MiB have arrived, so the peer must have had our 8 MiB window.
 */
static void
scenario_window(void)
{
    uint32_t  w;
    st_t     *go;

    peer_echo = 0;
    peer_hold = 1;

    w1 = st_open();
    if (w1 == NULL) {
        return;
    }

    w1->expect_dir = -1;

    if (run_until(w1_acked, "the ACK") != 0) {
        return;
    }

    w = yamux_stream_send_window(mux, w1->id);
    if (w == 8 * MIB) {
        pass("the peer's ACK announced an 8 MiB window");
    } else {
        fail("send window after ACK: %u", w);
    }

    w1->to_write = 24 * MIB;
    w1->fin_after = 1;

    if (run_until(w1_window_used, "the window to fill") != 0) {
        return;
    }

    pause_ms(300);

    if (w1->written == 8 * MIB) {
        pass("sent exactly 8 MiB before the peer read anything");
    } else {
        fail("sent %llu bytes before the first window update",
             (unsigned long long) w1->written);
    }

    go = st_open();
    if (go == NULL) {
        return;
    }

    if (!st_write_fin(go, "go")) {
        fail("write go");
        return;
    }

    if (run_until(w1_closed, "24 MiB to go through") != 0) {
        return;
    }

    if (w1->written == 24 * MIB) {
        pass("24 MiB sent on an 8 MiB window");
    }

    check_closed_normally(w1, "window");

    /* the peer's stream */
    if (run_until(first_peer_stream, "the peer's stream") != 0) {
        return;
    }

    w = yamux_stream_send_window(mux, w2->id);
    if (w == 8 * MIB) {
        pass("the peer's SYN announced an 8 MiB window");
    } else {
        fail("send window after SYN: %u", w);
    }

    if (run_until(w2_held, "8 MiB from the peer") != 0) {
        return;
    }

    pause_ms(300);

    if (w2->received == 8 * MIB) {
        pass("the peer sent exactly 8 MiB before our first window update");
    } else {
        fail("the peer sent %llu bytes before our first window update",
             (unsigned long long) w2->received);
    }

    w2->hold = 0;
    st_credit(w2);

    if (run_until(w2_fin_seen, "16 MiB from the peer") != 0) {
        return;
    }

    if (yamux_stream_close(mux, w2->id) != YAMUX_OK
        || run_until(w2_closed, "the peer's stream to end") != 0)
    {
        fail("closing the peer's stream");
        return;
    }

    if (w2->received == 16 * MIB && w2->expect_dir == 1) {
        pass("received 16 MiB from the peer, every byte the same");
    } else {
        fail("received %llu bytes", (unsigned long long) w2->received);
    }
}


static int
connect_or_listen(int port)
{
    int                 s, c, one;
    socklen_t           len;
    struct sockaddr_in  sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t) port);

    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        perror("socket");
        return -1;
    }

    one = 1;

    if (client) {
        if (connect(s, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
            perror("connect");
            return -1;
        }

        c = s;

    } else {
        (void) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

        if (bind(s, (struct sockaddr *) &sin, sizeof(sin)) != 0
            || listen(s, 1) != 0)
        {
            perror("bind");
            return -1;
        }

        len = sizeof(sin);
        (void) getsockname(s, (struct sockaddr *) &sin, &len);
        printf("port %d\n", ntohs(sin.sin_port));
        fflush(stdout);

        c = accept(s, NULL, NULL);
        close(s);

        if (c < 0) {
            perror("accept");
            return -1;
        }
    }

    (void) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);

    return c;
}


int
main(int argc, char **argv)
{
    int             i, port;
    char            path[4096];
    FILE           *f;
    yamux_config_t  conf;

    port = 0;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-role") == 0) {
            client = strcmp(argv[i + 1], "client") == 0;

        } else if (strcmp(argv[i], "-scenario") == 0) {
            scenario = argv[i + 1];

        } else if (strcmp(argv[i], "-sync") == 0) {
            sync_dir = argv[i + 1];

        } else if (strcmp(argv[i], "-port") == 0) {
            port = atoi(argv[i + 1]);
        }
    }

    if (scenario == NULL || sync_dir == NULL || (client && port == 0)) {
        fprintf(stderr, "usage: driver -role client|server -scenario NAME "
                "-sync DIR [-port N]\n");
        return 2;
    }

    clock_gettime(CLOCK_MONOTONIC, &start);

    fd = connect_or_listen(port);
    if (fd < 0) {
        return 1;
    }

    yamux_config_init(&conf, client);

    if (strncmp(scenario, "echo", 4) == 0) {
        window = 1 * MIB;           /* the echo buffers stay small */
    }

    conf.window = window;

    mux = yamux_session_new(&conf, &callbacks, NULL);
    if (mux == NULL) {
        fail("out of memory");
        return 1;
    }

    if (strcmp(scenario, "echo-ours") == 0) {
        scenario_echo_ours();

    } else if (strcmp(scenario, "echo-theirs") == 0) {
        scenario_echo_theirs();

    } else if (strcmp(scenario, "halfclose-ours") == 0) {
        scenario_halfclose_ours();

    } else if (strcmp(scenario, "halfclose-theirs") == 0) {
        scenario_halfclose_theirs();

    } else if (strcmp(scenario, "reset") == 0) {
        scenario_reset();

    } else if (strcmp(scenario, "ping") == 0) {
        scenario_ping();

    } else if (strcmp(scenario, "goaway-theirs") == 0) {
        scenario_goaway_theirs();

    } else if (strcmp(scenario, "goaway-ours") == 0) {
        scenario_goaway_ours();

    } else if (strcmp(scenario, "window") == 0) {
        scenario_window();

    } else {
        fail("unknown scenario");
    }

    /* done: say so, and serve the peer until it is done too */
    snprintf(path, sizeof(path), "%s/c.done", sync_dir);
    f = fopen(path, "w");
    if (f) {
        fclose(f);
    }

    if (!failed) {
        (void) run_until(peer_done, "the peer to finish");
    }

    io_write();
    close(fd);
    yamux_session_free(mux);

    for (i = 0; i < STREAMS; i++) {
        free(streams[i].echo_buf);
    }

    if (failed || passed == 0) {
        fprintf(stderr, "driver %s %s: %d failed, %d passed\n",
                client ? "client" : "server", scenario, failed, passed);
        return 1;
    }

    return 0;
}
