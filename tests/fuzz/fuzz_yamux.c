/*
 * Copyright (C) ngx_tunnel developers
 *
 * libFuzzer target for the yamux core.  The input is a small program:
 *
 *     byte 0      setup: bit 0 client role, bit 1 two sessions (below),
 *                 bits 2-3 window, bits 4-5 max_streams, bit 6 small queue
 *     then ops    op = byte & 0x0f, arg = byte >> 4, some read more bytes
 *
 * One session: the program feeds raw bytes to a session (as they are, or
 * as frame headers it builds), and calls the stream API on the streams it
 * knows, while callbacks driven by the input call the API too.  The output
 * is parsed as a frame stream: control frames must never split a data frame.
 *
 * Two sessions: a client and a server back to back, driven only through the
 * API, their bytes moved in pieces of any size.  Neither may ever see a
 * protocol error, every payload byte must arrive as written, and at the end
 * every stream that was not reset has delivered all its data and its FIN.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "yamux.h"


#define FZ_IDS          32          /* streams a side remembers */
#define FZ_RECORDS      256         /* streams checked, two sessions */
#define FZ_FEED_MAX     65536       /* synthesized payload, per frame */


typedef struct {
    const uint8_t    *p;
    size_t            left;
} fz_input_t;


/* bytes on their way from one session to the other: a socket's buffers */
typedef struct {
    uint8_t          *buf;
    size_t            start;
    size_t            end;
    size_t            cap;
} fz_pipe_t;


typedef struct {
    uint32_t          id;
    uint64_t          written;      /* payload queued by this side */
    uint64_t          received;     /* payload delivered to this side */
    uint64_t          unread;       /* delivered, not yet consumed */
    unsigned          reset:1;      /* either side reset it */
    unsigned          fin_sent:1;
    unsigned          fin_seen:1;
    unsigned          closed:1;
} fz_record_t;


typedef struct {
    yamux_session_t  *s;
    int               side;         /* 0 client, 1 server */
    unsigned          behave;       /* callback behaviour bits */

    uint32_t          ids[FZ_IDS];
    unsigned          nids;

    fz_record_t       rec[FZ_RECORDS];
    unsigned          nrec;

    /* the output frame parser */
    uint8_t           hdr[YAMUX_HEADER_SIZE];
    size_t            hdr_have;
    uint32_t          data_left;
    uint32_t          max_frame;

    long              allocs;
    long              fail_in;      /* this many allocations on, one fails */
    int               two;          /* two-session mode: check payload */
} fz_side_t;


/* callback behaviour */
#define FZ_REFUSE        0x01
#define FZ_CONSUME       0x02
#define FZ_WRITE_ON_W    0x04
#define FZ_CLOSE_ON_FIN  0x08
#define FZ_RESET_ON_DATA 0x10
#define FZ_RESET_ON_OPEN 0x20
#define FZ_RESET_OTHER   0x40
#define FZ_ECHO          0x80
#define FZ_RESERVE_ON_C  0x0100     /* stream_closed: reserve elsewhere */
#define FZ_OPEN_ON_C     0x0200     /* stream_closed: open a stream */
#define FZ_WRITE_ON_FIN  0x0400
#define FZ_CLOSE_OTHER   0x0800     /* stream_data: close another */
#define FZ_RESET_ON_GA   0x1000     /* go_away: reset every stream */
#define FZ_CLOSE_ON_C    0x2000     /* stream_closed: close another */


static uint8_t   fz_zero[FZ_FEED_MAX];
static uint8_t   fz_buf[FZ_FEED_MAX];
static unsigned  fz_opens;      /* two sessions: streams opened, both */


static int
fz_byte(fz_input_t *in, uint8_t *b)
{
    if (in->left == 0) {
        return 0;
    }

    *b = *in->p++;
    in->left--;

    return 1;
}


static uint8_t
fz_pattern(uint32_t id, int side, uint64_t off)
{
    return (uint8_t) (id * 131 + side * 17 + off * 7 + (off >> 8));
}


static void *
fz_alloc(size_t size, void *ud)
{
    uint8_t    *h;
    fz_side_t  *fs;

    fs = ud;

    if (fs->fail_in > 0 && --fs->fail_in == 0) {
        return NULL;
    }

    h = malloc(16 + size);
    if (h == NULL) {
        return NULL;
    }

    /* the size in front: free() must be told the same */
    *(size_t *) h = size;
    fs->allocs++;

    return h + 16;
}


static void
fz_free(void *p, size_t size, void *ud)
{
    uint8_t  *h;

    h = (uint8_t *) p - 16;

    if (*(size_t *) h != size) {
        __builtin_trap();
    }

    ((fz_side_t *) ud)->allocs--;
    free(h);
}


static fz_record_t *
fz_record(fz_side_t *fs, uint32_t id, int create)
{
    unsigned  i;

    for (i = 0; i < fs->nrec; i++) {
        if (fs->rec[i].id == id) {
            return &fs->rec[i];
        }
    }

    if (!create || fs->nrec == FZ_RECORDS) {
        return NULL;
    }

    memset(&fs->rec[fs->nrec], 0, sizeof(fz_record_t));
    fs->rec[fs->nrec].id = id;

    return &fs->rec[fs->nrec++];
}


static void
fz_remember(fz_side_t *fs, uint32_t id)
{
    if (fs->nids < FZ_IDS) {
        fs->ids[fs->nids++] = id;

    } else {
        fs->ids[id % FZ_IDS] = id;
    }

    (void) fz_record(fs, id, 1);
}


static uint32_t
fz_pick(fz_side_t *fs, unsigned arg)
{
    if (fs->nids == 0) {
        return 1 + arg;
    }

    return fs->ids[arg % fs->nids];
}


/* write "len" pattern bytes on a stream, through write or reserve */
static void
fz_write(fz_side_t *fs, uint32_t id, size_t len, int reserve)
{
    int           rc;
    size_t        i, n;
    ssize_t       w;
    uint8_t      *p;
    fz_record_t  *r;

    r = fz_record(fs, id, 0);

    if (reserve) {
        n = len;
        p = yamux_stream_reserve(fs->s, id, &n, &rc);
        if (p == NULL) {
            if (rc == YAMUX_OK) {
                abort();
            }

            return;
        }

        if (n == 0 || (len && n > len)) {
            abort();
        }

        /* commit only part of what was reserved, sometimes */
        if (len && len < n) {
            n = len;
        }

        for (i = 0; i < n; i++) {
            p[i] = r ? fz_pattern(id, fs->side, r->written + i) : 0;
        }

        yamux_stream_commit(fs->s, id, n);

        if (r) {
            r->written += n;
        }

        return;
    }

    if (len > sizeof(fz_buf)) {
        len = sizeof(fz_buf);
    }

    for (i = 0; i < len; i++) {
        fz_buf[i] = r ? fz_pattern(id, fs->side, r->written + i) : 0;
    }

    w = yamux_stream_write(fs->s, id, fz_buf, len);

    if (w > 0 && r) {
        r->written += (uint64_t) w;
    }

    if (w > (ssize_t) len) {
        abort();
    }
}


static int
fz_on_open(yamux_session_t *s, uint32_t id, void *ud)
{
    fz_side_t    *fs;
    fz_record_t  *r;

    fs = ud;

    if (fs->behave & FZ_RESET_ON_OPEN) {
        (void) yamux_stream_reset(s, id);
    }

    if (fs->behave & FZ_REFUSE) {
        return -1;
    }

    yamux_stream_set_data(s, id, fs);
    fz_remember(fs, id);

    if (fs->behave & FZ_RESET_ON_OPEN) {
        r = fz_record(fs, id, 0);
        if (r) {
            r->reset = 1;
        }
    }

    return 0;
}


static void
fz_on_data(yamux_session_t *s, uint32_t id, void *sd, const uint8_t *p,
    size_t n)
{
    size_t        i;
    uint32_t      other;
    fz_side_t    *fs;
    fz_record_t  *r, *or;

    fs = yamux_session_data(s);

    if (sd != NULL && sd != fs) {
        abort();
    }

    if (n == 0) {
        abort();
    }

    r = fz_record(fs, id, 0);

    if (fs->two && r) {
        for (i = 0; i < n; i++) {
            if (p[i] != fz_pattern(id, !fs->side, r->received + i)) {
                abort();        /* a byte differs */
            }
        }
    }

    if (r) {
        r->received += n;
        r->unread += n;
    }

    if (fs->behave & FZ_CONSUME) {
        (void) yamux_stream_consumed(s, id, n);

        if (r) {
            r->unread -= n;
        }
    }

    if ((fs->behave & FZ_ECHO) && !fs->two) {
        (void) yamux_stream_write(s, id, p, n);
    }

    if ((fs->behave & FZ_CLOSE_OTHER) && fs->nids) {
        other = fs->ids[(id + p[0]) % fs->nids];

        if (yamux_stream_close(s, other) == YAMUX_OK) {
            or = fz_record(fs, other, 0);
            if (or) {
                or->fin_sent = 1;
            }
        }
    }

    if ((fs->behave & FZ_RESET_ON_DATA) && (p[0] & 0x3f) == 0x3f) {
        if (yamux_stream_reset(s, id) == YAMUX_OK && r) {
            r->reset = 1;
        }
    }
}


static void
fz_on_fin(yamux_session_t *s, uint32_t id, void *sd)
{
    fz_side_t    *fs;
    fz_record_t  *r;

    (void) sd;

    fs = yamux_session_data(s);
    r = fz_record(fs, id, 0);

    if (r) {
        if (r->fin_seen) {
            abort();            /* one FIN per stream */
        }

        r->fin_seen = 1;
    }

    if (fs->behave & FZ_WRITE_ON_FIN) {
        fz_write(fs, id, 300, 1);
    }

    if (fs->behave & FZ_CLOSE_ON_FIN) {
        if (yamux_stream_close(s, id) == YAMUX_OK && r) {
            r->fin_sent = 1;
        }
    }
}


static void
fz_on_writable(yamux_session_t *s, uint32_t id, void *sd)
{
    uint32_t      other;
    fz_side_t    *fs;
    fz_record_t  *r;

    (void) sd;

    fs = yamux_session_data(s);

    if (fs->behave & FZ_WRITE_ON_W) {
        fz_write(fs, id, 1000, 0);
    }

    if ((fs->behave & FZ_RESET_OTHER) && fs->nids) {
        other = fs->ids[id % fs->nids];

        if (yamux_stream_reset(s, other) == YAMUX_OK) {
            r = fz_record(fs, other, 0);
            if (r) {
                r->reset = 1;
            }
        }
    }
}


static void
fz_on_closed(yamux_session_t *s, uint32_t id, void *sd, yamux_close_e how)
{
    int           rc;
    size_t        n;
    uint32_t      other, nid;
    fz_side_t    *fs;
    fz_record_t  *r;

    (void) sd;

    fs = yamux_session_data(s);
    r = fz_record(fs, id, 0);

    if (r) {
        if (r->closed) {
            abort();            /* closed once */
        }

        r->closed = 1;

        if (how != YAMUX_CLOSED_NORMAL) {
            r->reset = 1;

        } else if (!r->fin_seen || !r->fin_sent) {
            abort();            /* a normal close is FIN both ways */
        }
    }

    /* the stream is gone: the API must say so */
    if (yamux_stream_data(s, id) != NULL
        || yamux_stream_send_window(s, id) != 0
        || yamux_stream_consumed(s, id, 1) != YAMUX_ECLOSED)
    {
        abort();
    }

    if (fs->nids == 0) {
        return;
    }

    other = fs->ids[id % fs->nids];

    /* a read into reserved room that found nothing, or a little */
    if (fs->behave & FZ_RESERVE_ON_C) {
        n = 0;
        if (yamux_stream_reserve(s, other, &n, &rc) != NULL) {
            yamux_stream_commit(s, other, 0);
        }

        if (id & 2) {
            fz_write(fs, other, 1, 1);
        }
    }

    if ((fs->behave & FZ_OPEN_ON_C) && !(fs->two && fz_opens >= FZ_RECORDS - 1)
        && yamux_stream_open(s, &nid, fs) == YAMUX_OK)
    {
        fz_remember(fs, nid);
        fz_opens++;
    }

    if (fs->behave & FZ_CLOSE_ON_C) {
        if (yamux_stream_close(s, other) == YAMUX_OK) {
            r = fz_record(fs, other, 0);
            if (r) {
                r->fin_sent = 1;
            }
        }
    }
}


static void
fz_on_ping(yamux_session_t *s, uint32_t opaque, void *ud)
{
    (void) s;
    (void) opaque;
    (void) ud;
}


static void
fz_on_go_away(yamux_session_t *s, uint32_t code, void *ud)
{
    unsigned      i;
    fz_side_t    *fs;
    fz_record_t  *r;

    (void) code;

    fs = ud;

    if (!(fs->behave & FZ_RESET_ON_GA)) {
        return;
    }

    for (i = 0; i < fs->nids; i++) {
        if (yamux_stream_reset(s, fs->ids[i]) == YAMUX_OK) {
            r = fz_record(fs, fs->ids[i], 0);
            if (r) {
                r->reset = 1;
            }
        }
    }
}


static const yamux_callbacks_t  fz_callbacks = {
    fz_on_open, fz_on_data, fz_on_fin, fz_on_writable, fz_on_closed,
    fz_on_ping, fz_on_go_away
};


/* the session's output must be a well-formed frame stream */
static void
fz_parse_output(fz_side_t *fs, const uint8_t *p, size_t n)
{
    size_t    k;
    uint32_t  len;

    while (n) {
        if (fs->data_left) {
            k = n < fs->data_left ? n : fs->data_left;
            fs->data_left -= (uint32_t) k;
            p += k;
            n -= k;
            continue;
        }

        k = YAMUX_HEADER_SIZE - fs->hdr_have;
        if (k > n) {
            k = n;
        }

        memcpy(fs->hdr + fs->hdr_have, p, k);
        fs->hdr_have += k;
        p += k;
        n -= k;

        if (fs->hdr_have < YAMUX_HEADER_SIZE) {
            break;
        }

        fs->hdr_have = 0;

        if (fs->hdr[0] != YAMUX_VERSION || fs->hdr[1] > YAMUX_GO_AWAY
            || fs->hdr[2] != 0 || (fs->hdr[3] & 0xf0))
        {
            abort();
        }

        len = (uint32_t) fs->hdr[8] << 24 | (uint32_t) fs->hdr[9] << 16
              | (uint32_t) fs->hdr[10] << 8 | fs->hdr[11];

        if (fs->hdr[1] == YAMUX_DATA) {
            if (len == 0 || len > fs->max_frame) {
                abort();
            }

            fs->data_left = len;
        }
    }
}


/* send up to "max" bytes of output, into "pipe" if there is one */
static size_t
fz_drain(fz_side_t *from, fz_pipe_t *pipe, size_t max)
{
    int           n, i;
    size_t        moved, k;
    struct iovec  iov[8];

    moved = 0;

    while (moved < max) {
        n = yamux_output(from->s, iov, 8);

        if (n == 0) {
            if (yamux_output_pending(from->s) != 0) {
                abort();
            }

            break;
        }

        if (n < 0 || n > 8 || yamux_output_pending(from->s) == 0) {
            abort();
        }

        for (i = 0; i < n; i++) {
            if (iov[i].iov_len == 0) {
                abort();
            }
        }

        k = iov[0].iov_len;
        if (k > max - moved) {
            k = max - moved;
        }

        if (pipe) {
            if (pipe->cap - pipe->end < k && pipe->start) {
                memmove(pipe->buf, pipe->buf + pipe->start,
                        pipe->end - pipe->start);
                pipe->end -= pipe->start;
                pipe->start = 0;
            }

            if (pipe->cap - pipe->end < k) {
                pipe->cap = (pipe->end + k) * 2;
                pipe->buf = realloc(pipe->buf, pipe->cap);
                if (pipe->buf == NULL) {
                    abort();
                }
            }

            memcpy(pipe->buf + pipe->end, iov[0].iov_base, k);
            pipe->end += k;
        }

        fz_parse_output(from, iov[0].iov_base, k);
        yamux_output_advance(from->s, k);
        moved += k;
    }

    return moved;
}


/*
 * Feed up to "max" bytes from "pipe" to a session, in pieces of "piece"
 * bytes (0: at once); stops where the session pauses.  Returns the count.
 */
static size_t
fz_feed(fz_side_t *to, fz_pipe_t *pipe, size_t max, size_t piece)
{
    size_t   moved, m;
    ssize_t  rc;

    moved = 0;

    while (moved < max && pipe->start < pipe->end) {
        m = pipe->end - pipe->start;

        if (piece && m > piece) {
            m = piece;
        }

        if (m > max - moved) {
            m = max - moved;
        }

        rc = yamux_input(to->s, pipe->buf + pipe->start, m);

        if (rc < 0 || (size_t) rc > m) {
            abort();            /* two of ours never break the protocol */
        }

        if (rc == 0 && yamux_output_pending(to->s) == 0) {
            abort();            /* paused with nothing to send */
        }

        pipe->start += (size_t) rc;
        moved += (size_t) rc;

        if ((size_t) rc < m) {
            break;
        }
    }

    return moved;
}


static yamux_session_t *
fz_session(fz_side_t *fs, int client, uint8_t setup)
{
    static const uint32_t  windows[4] = {
        YAMUX_INITIAL_WINDOW, 512 * 1024, 8 * 1024 * 1024, 0
    };
    static const uint32_t  streams[4] = { 4096, 1, 4, 16 };

    yamux_config_t  conf;

    yamux_config_init(&conf, client);
    conf.window = windows[(setup >> 2) & 3];
    conf.max_streams = streams[(setup >> 4) & 3];
    conf.syn_backlog = 8;

    if (setup & 0x40) {
        conf.max_queued = 16 * 1024;
        conf.block_size = 16 * 1024;
        conf.max_frame = 3000;
    }

    conf.allocator.alloc = fz_alloc;
    conf.allocator.free = fz_free;
    conf.allocator.ud = fs;

    fs->side = client ? 0 : 1;
    fs->max_frame = conf.max_frame ? conf.max_frame : 32 * 1024;

    if (setup & 0x40) {
        fs->max_frame = 3000;
    }

    fs->s = yamux_session_new(&conf, &fz_callbacks, fs);

    return fs->s;
}


/* the API calls both modes share; returns 0 if "op" was not one of them */
static int
fz_api(fz_side_t *fs, unsigned op, unsigned arg, fz_input_t *in)
{
    int           rc;
    uint8_t       b;
    uint32_t      id;
    yamux_stats_t st;
    fz_record_t  *r;

    switch (op) {

    case 2:
        if (fs->two && fz_opens >= FZ_RECORDS - 1) {
            return 1;
        }

        rc = yamux_stream_open(fs->s, &id, fs);
        if (rc == YAMUX_OK) {
            fz_remember(fs, id);
            fz_opens++;
        }

        return 1;

    case 3:
    case 4:
        b = 0;
        (void) fz_byte(in, &b);
        fz_write(fs, fz_pick(fs, arg), (size_t) b * 37, op == 4);
        return 1;

    case 5:
        b = 0;
        (void) fz_byte(in, &b);
        id = fz_pick(fs, arg);
        r = fz_record(fs, id, 0);

        if (yamux_stream_consumed(fs->s, id, (size_t) b << 10) == YAMUX_OK
            && r)
        {
            r->unread -= r->unread < ((uint64_t) b << 10)
                         ? r->unread : (uint64_t) b << 10;
        }

        return 1;

    case 6:
        id = fz_pick(fs, arg);
        if (yamux_stream_close(fs->s, id) == YAMUX_OK) {
            r = fz_record(fs, id, 0);
            if (r) {
                r->fin_sent = 1;
            }
        }

        return 1;

    case 7:
        id = fz_pick(fs, arg);
        if (yamux_stream_reset(fs->s, id) == YAMUX_OK) {
            r = fz_record(fs, id, 0);
            if (r) {
                r->reset = 1;
            }
        }

        return 1;

    case 8:
        (void) yamux_ping(fs->s, arg * 0x01010101u);
        return 1;

    case 9:
        (void) yamux_go_away(fs->s, arg % 3);
        return 1;

    case 10:
        b = 0;
        (void) fz_byte(in, &b);
        fs->behave = b;
        b = 0;
        (void) fz_byte(in, &b);
        fs->behave |= (unsigned) b << 8;
        return 1;

    case 14:
        /* an allocation fails: "b" allocations from now */
        b = 0;
        (void) fz_byte(in, &b);
        fs->fail_in = b;
        return 1;

    case 11:
        yamux_stats(fs->s, &st);
        (void) yamux_strerror(-(int) arg);
        (void) yamux_error(fs->s);
        (void) yamux_stream_send_window(fs->s, fz_pick(fs, arg));
        (void) yamux_output_pending(fs->s);

        if (st.streams > 4096 || st.unacked_syns > st.streams) {
            abort();
        }

        return 1;
    }

    return 0;
}


/* one session, fed raw or synthesized frames */
static void
fz_one(fz_input_t *in, uint8_t setup)
{
    static fz_side_t  fs;
    uint8_t           b, h[YAMUX_HEADER_SIZE], t[8];
    size_t            len, piece, off, n, i;
    ssize_t           rc;
    unsigned          op, arg;
    uint32_t          id, flen;
    int               dead;

    memset(&fs, 0, sizeof(fz_side_t));

    if (fz_session(&fs, setup & 1, setup) == NULL) {
        return;
    }

    dead = 0;

    while (fz_byte(in, &b)) {
        op = b & 0x0f;
        arg = b >> 4;

        if (fz_api(&fs, op, arg, in)) {
            continue;
        }

        switch (op) {

        case 0:
            /* raw bytes, fed in pieces of "arg" (0: at once) */
            b = 0;
            (void) fz_byte(in, &b);
            len = b < in->left ? b : in->left;
            piece = arg ? arg : len;

            for (off = 0; off < len; off += (size_t) rc) {
                n = piece < len - off ? piece : len - off;
                rc = yamux_input(fs.s, in->p + off, n);

                if (rc == YAMUX_EPROTO) {
                    dead = 1;
                    break;
                }

                if (rc < 0 || (size_t) rc > n) {
                    abort();
                }

                if (rc == 0) {
                    if (yamux_output_pending(fs.s) == 0) {
                        abort();    /* paused with nothing to send */
                    }

                    fz_drain(&fs, NULL, (size_t) -1);
                }
            }

            in->p += len;
            in->left -= len;
            break;

        case 1:
            fz_drain(&fs, NULL, arg == 15 ? (size_t) -1 : (arg + 1) * 7);
            break;

        case 12:
        case 13:
            /*
             * A frame header built from the input: type, flags, a stream
             * (one we know, or a raw id), a length; data frames are
             * followed by that many zero bytes (op 12) or by input (13).
             */
            for (i = 0; i < 7; i++) {
                t[i] = 0;
                (void) fz_byte(in, &t[i]);
            }

            id = (t[2] & 0x80) ? (uint32_t) (t[2] & 0x7f) : fz_pick(&fs, t[2]);
            flen = (uint32_t) t[3] << 24 | (uint32_t) t[4] << 16
                   | (uint32_t) t[5] << 8 | t[6];

            h[0] = (arg & 8) ? (uint8_t) arg : YAMUX_VERSION;
            h[1] = t[0] & 0x87;
            h[2] = 0;
            h[3] = t[1];
            h[4] = (uint8_t) (id >> 24);
            h[5] = (uint8_t) (id >> 16);
            h[6] = (uint8_t) (id >> 8);
            h[7] = (uint8_t) id;
            h[8] = t[3];
            h[9] = t[4];
            h[10] = t[5];
            h[11] = t[6];

            for (off = 0; off < YAMUX_HEADER_SIZE; off += (size_t) rc) {
                rc = yamux_input(fs.s, h + off, YAMUX_HEADER_SIZE - off);

                if (rc == YAMUX_EPROTO) {
                    dead = 1;
                    break;
                }

                if (rc < 0) {
                    abort();
                }

                if (rc == 0) {
                    fz_drain(&fs, NULL, (size_t) -1);
                }
            }

            if (dead || h[1] != YAMUX_DATA) {
                break;
            }

            if (flen > FZ_FEED_MAX) {
                flen = FZ_FEED_MAX;
            }

            if (op == 13) {
                len = flen < in->left ? flen : in->left;
                rc = yamux_input(fs.s, in->p, len);
                in->p += len;
                in->left -= len;

            } else {
                rc = yamux_input(fs.s, fz_zero, flen);
            }

            if (rc == YAMUX_EPROTO) {
                dead = 1;
            }

            break;

        default:
            break;
        }
    }

    fz_drain(&fs, NULL, (size_t) -1);

    if (fs.data_left || fs.hdr_have) {
        abort();                /* the output ended inside a frame */
    }

    yamux_session_free(fs.s);

    if (fs.allocs != 0) {
        abort();
    }
}


/* two sessions back to back */
static void
fz_two(fz_input_t *in, uint8_t setup)
{
    static const size_t  pieces[4] = { 0, 1, 7, 100 };

    static fz_side_t  c, s;
    static fz_pipe_t  cs, sc;
    uint8_t           b;
    unsigned          op, arg, i, round;
    size_t            moved, max;
    fz_side_t        *fs, *to;
    fz_pipe_t        *pipe;
    fz_record_t      *r, *pr;

    memset(&c, 0, sizeof(fz_side_t));
    memset(&s, 0, sizeof(fz_side_t));
    cs.start = cs.end = 0;
    sc.start = sc.end = 0;
    fz_opens = 0;
    c.two = 1;
    s.two = 1;
    c.behave = FZ_CONSUME;
    s.behave = FZ_CONSUME;

    if (fz_session(&c, 1, setup) == NULL) {
        return;
    }

    if (fz_session(&s, 0, setup ^ 0x0c) == NULL) {
        yamux_session_free(c.s);
        return;
    }

    while (fz_byte(in, &b)) {
        op = b & 0x0f;
        arg = b >> 4;

        if (op < 2) {
            /*
             * op 0: arg bit 0 the direction (client to server, or back),
             * bit 1 send (into the pipe) or receive (from it), bits 2-3
             * the piece size; op 1: move everything both ways.
             */
            if (op == 1) {
                fz_drain(&c, &cs, (size_t) -1);
                fz_drain(&s, &sc, (size_t) -1);
                fz_feed(&s, &cs, (size_t) -1, 0);
                fz_feed(&c, &sc, (size_t) -1, 0);
                continue;
            }

            fs = (arg & 1) ? &s : &c;
            to = (arg & 1) ? &c : &s;
            pipe = (arg & 1) ? &sc : &cs;
            b = 0;
            (void) fz_byte(in, &b);
            max = (size_t) (b + 1) * 61;

            if (arg & 2) {
                fz_feed(to, pipe, max, pieces[(arg >> 2) & 3]);

            } else {
                fz_drain(fs, pipe, max);
            }

            continue;
        }

        fs = (arg & 8) ? &s : &c;

        /* no echo between two sessions: payload would not be checkable */
        fs->behave &= ~FZ_ECHO;
        (void) fz_api(fs, op, arg & 7, in);
        fs->behave &= ~FZ_ECHO;
    }

    /* let everything settle: consume all, move all */
    c.behave = FZ_CONSUME;
    s.behave = FZ_CONSUME;

    for (round = 0; round < 100000; round++) {
        for (i = 0; i < c.nrec; i++) {
            r = &c.rec[i];
            (void) yamux_stream_consumed(c.s, r->id, (size_t) r->unread);
            r->unread = 0;
        }

        for (i = 0; i < s.nrec; i++) {
            r = &s.rec[i];
            (void) yamux_stream_consumed(s.s, r->id, (size_t) r->unread);
            r->unread = 0;
        }

        moved = fz_drain(&c, &cs, (size_t) -1);
        moved += fz_drain(&s, &sc, (size_t) -1);
        moved += fz_feed(&s, &cs, (size_t) -1, 0);
        moved += fz_feed(&c, &sc, (size_t) -1, 0);

        if (moved == 0) {
            break;
        }
    }

    if (round == 100000 || cs.start != cs.end || sc.start != sc.end) {
        abort();
    }

    /* every byte of a stream that was not reset arrived, and its FIN */
    for (i = 0; i < c.nrec; i++) {
        r = &c.rec[i];
        pr = fz_record(&s, r->id, 0);

        if (pr == NULL || r->reset || pr->reset) {
            continue;
        }

        if (r->written != pr->received || pr->written != r->received) {
            abort();
        }

        if (r->fin_sent != pr->fin_seen || pr->fin_sent != r->fin_seen) {
            abort();
        }

        if ((r->fin_sent && pr->fin_sent) != r->closed
            || r->closed != pr->closed)
        {
            abort();
        }
    }

    yamux_session_free(c.s);
    yamux_session_free(s.s);

    if (c.allocs != 0 || s.allocs != 0) {
        abort();
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t     setup;
    fz_input_t  in;

    if (size == 0) {
        return 0;
    }

    setup = data[0];
    in.p = data + 1;
    in.left = size - 1;

    if (setup & 2) {
        fz_two(&in, setup);

    } else {
        fz_one(&in, setup);
    }

    return 0;
}
