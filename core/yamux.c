/*
 * Copyright (C) ngx_tunnel developers
 *
 * yamux session, sans-IO: see yamux.h for the contract.
 *
 * Output is two queues.  The FIFO holds frames whose order matters to the
 * peer: data, SYN (it must precede the stream's data) and FIN (it must follow
 * it), in blocks of config.block_size.  The control buffer "ctl" holds frames
 * that may overtake data: ACK, window updates, RST, pings and go-away.  It is
 * refilled from the pending state (per-stream flags, a small ring of session
 * frames, the go-away) only at a frame boundary of the FIFO, so control never
 * splits a data frame.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamux.h"


#define YAMUX_CTL_FRAMES     32      /* control frames sent in one go */
#define YAMUX_RING_SOFT      16      /* input pauses above this many */
#define YAMUX_RING_FRAMES    32      /* session frames: pings, refusals */
#define YAMUX_MIN_CHUNK      4096    /* smaller room: start a new block */
#define YAMUX_MAX_WINDOW     0x7fffffff


/* stream states; "acked" is kept apart as it is orthogonal to closing */
typedef enum {
    YAMUX_S_OPEN = 0,
    YAMUX_S_LOCAL_CLOSED,       /* our FIN is queued */
    YAMUX_S_REMOTE_CLOSED,      /* the peer's FIN arrived */
    YAMUX_S_CLOSED,             /* both; freed once our FIN is sent */
    YAMUX_S_RESET,              /* our RST is pending; freed once sent */
    YAMUX_S_NSTATES
} yamux_state_e;


typedef enum {
    YAMUX_EV_LOCAL_FIN = 0,
    YAMUX_EV_REMOTE_FIN,
    YAMUX_EV_LOCAL_RST,
    YAMUX_EV_NEVENTS
} yamux_event_e;


#define YAMUX_S_BAD          0xff    /* transition not allowed */
#define YAMUX_S_SAME         0xfe    /* allowed, nothing changes */


static const uint8_t  yamux_transitions[YAMUX_S_NSTATES][YAMUX_EV_NEVENTS] = {
    /*                        LOCAL_FIN            REMOTE_FIN
                              LOCAL_RST */
    [YAMUX_S_OPEN]          = { YAMUX_S_LOCAL_CLOSED, YAMUX_S_REMOTE_CLOSED,
                                YAMUX_S_RESET },
    [YAMUX_S_LOCAL_CLOSED]  = { YAMUX_S_BAD,          YAMUX_S_CLOSED,
                                YAMUX_S_RESET },
    [YAMUX_S_REMOTE_CLOSED] = { YAMUX_S_CLOSED,       YAMUX_S_BAD,
                                YAMUX_S_RESET },
    [YAMUX_S_CLOSED]        = { YAMUX_S_BAD,          YAMUX_S_BAD,
                                YAMUX_S_RESET },
    /* the peer's FIN may cross our RST on the wire */
    [YAMUX_S_RESET]         = { YAMUX_S_BAD,          YAMUX_S_SAME,
                                YAMUX_S_BAD },
};


typedef struct yamux_block_s   yamux_block_t;
typedef struct yamux_stream_s  yamux_stream_t;


struct yamux_block_s {
    yamux_block_t    *next;
    uint8_t          *pos;          /* first byte not yet sent */
    uint8_t          *last;         /* end of queued bytes */
    uint8_t          *end;
    uint8_t           data[];
};


typedef struct {
    yamux_stream_t   *prev;
    yamux_stream_t   *next;
} yamux_link_t;


struct yamux_stream_s {
    uint32_t          id;
    uint8_t           state;
    uint8_t           ctl;          /* ACK / RST to send */
    unsigned          local:1;      /* we opened it */
    unsigned          syn_sent:1;   /* our SYN left the queue */
    unsigned          acked:1;      /* our SYN was acknowledged */
    unsigned          fin_sent:1;   /* our FIN left the queue */
    unsigned          want_write:1; /* stream_writable is owed */
    unsigned          on_ctl:1;
    unsigned          on_wait:1;
    unsigned          notifying:1;  /* on s->notify, not s->wait_list */

    uint32_t          send_window;
    uint32_t          recv_window;  /* what the peer may still send */
    uint32_t          unread;       /* received, not yet consumed */
    uint32_t          credit;       /* consumed, not yet announced */
    uint32_t          window;       /* the receive window announced */
    uint64_t          update_at;    /* when credit was last announced */

    void             *data;
    yamux_stream_t   *hash_next;
    yamux_link_t      ctl_link;
    yamux_link_t      wait_link;
};


#define YAMUX_CTL_LINK   offsetof(yamux_stream_t, ctl_link)
#define YAMUX_WAIT_LINK  offsetof(yamux_stream_t, wait_link)


typedef struct {
    yamux_stream_t   *first;
    yamux_stream_t   *last;
} yamux_list_t;


struct yamux_session_s {
    yamux_config_t     conf;
    yamux_callbacks_t  cb;
    void              *ud;

    yamux_stream_t   **buckets;
    uint32_t           nbuckets;    /* a power of two */
    uint32_t           nstreams;
    uint32_t           next_id;
    uint32_t           last_peer_id;
    uint32_t           unacked;

    /* input: a header may arrive in pieces, payload is passed through */
    uint8_t            hdr[YAMUX_HEADER_SIZE];
    size_t             hdr_have;
    uint32_t           data_left;
    uint32_t           data_id;
    uint16_t           data_flags;  /* FIN/RST applied after the payload */
    yamux_stream_t    *data_stream; /* NULL: discard the payload */

    /* output */
    yamux_block_t     *head;
    yamux_block_t     *tail;
    size_t             queued;      /* FIFO bytes not yet sent */
    uint32_t           frame_left;  /* bytes of the FIFO's first frame */
    uint8_t            frame_hdr[YAMUX_HEADER_SIZE];
    int                reserved;    /* a reservation is outstanding */

    uint8_t            ctl[YAMUX_CTL_FRAMES * YAMUX_HEADER_SIZE];
    size_t             ctl_pos;
    size_t             ctl_len;

    uint8_t            ring[YAMUX_RING_FRAMES][YAMUX_HEADER_SIZE];
    unsigned           ring_head;
    unsigned           ring_count;

    yamux_list_t       ctl_list;    /* streams with ACK/RST/credit to send */
    yamux_list_t       wait_list;   /* streams owed stream_writable */
    yamux_list_t       notify;      /* taken off wait_list, being woken */

    unsigned           local_go_away:1;
    unsigned           remote_go_away:1;
    unsigned           go_away_pending:1;
    unsigned           dead:1;
    uint32_t           go_away_code;
    uint32_t           remote_go_away_code;

    uint64_t           ping_at;     /* when our last ping was queued */
    uint32_t           ping_opaque;
    uint32_t           rtt;         /* ms, from the last answered ping */

    uint64_t           streams_total;
    uint64_t           streams_refused;
    uint64_t           bytes_in;
    uint64_t           bytes_dropped;
    uint64_t           bytes_out;

    char               error[160];
};


static void *yamux_default_alloc(size_t size, void *ud);
static void yamux_default_free(void *p, size_t size, void *ud);
static uint32_t yamux_window_grow(yamux_session_t *s, yamux_stream_t *st);
static void yamux_put_header(uint8_t *p, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len);
static yamux_stream_t *yamux_find(yamux_session_t *s, uint32_t id);
static int yamux_insert(yamux_session_t *s, yamux_stream_t *st);
static void yamux_remove(yamux_session_t *s, yamux_stream_t *st);
static yamux_stream_t *yamux_stream_new(yamux_session_t *s, uint32_t id);
static void yamux_stream_finalize(yamux_session_t *s, yamux_stream_t *st,
    yamux_close_e how);
static void yamux_list_add(yamux_list_t *l, yamux_stream_t *st,
    size_t off);
static void yamux_list_del(yamux_list_t *l, yamux_stream_t *st,
    size_t off);
static void yamux_want_ctl(yamux_session_t *s, yamux_stream_t *st);
static void yamux_want_write(yamux_session_t *s, yamux_stream_t *st);
static void yamux_wait_del(yamux_session_t *s, yamux_stream_t *st);
static int yamux_transition(yamux_stream_t *st, yamux_event_e ev);
static int yamux_ring_push(yamux_session_t *s, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len);
static int yamux_fifo_frame(yamux_session_t *s, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len);
static yamux_block_t *yamux_block_new(yamux_session_t *s);
static void yamux_fill_ctl(yamux_session_t *s);
static void yamux_frame_sent(yamux_session_t *s, const uint8_t *hdr);
static void yamux_consume_fifo(yamux_session_t *s, size_t n);
static void yamux_notify_writable(yamux_session_t *s);
static int yamux_protocol_error(yamux_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int yamux_frame_needs_ring(const uint8_t *h);
static int yamux_header(yamux_session_t *s, const uint8_t *h);
static int yamux_stream_frame(yamux_session_t *s, uint8_t type,
    uint16_t flags, uint32_t id, uint32_t len);
static int yamux_incoming(yamux_session_t *s, uint32_t id,
    yamux_stream_t **stp);
static int yamux_flags_after(yamux_session_t *s, yamux_stream_t *st,
    uint16_t flags);


static uint32_t
yamux_get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


static void *
yamux_default_alloc(size_t size, void *ud)
{
    (void) ud;
    return malloc(size);
}


static void
yamux_default_free(void *p, size_t size, void *ud)
{
    (void) size;
    (void) ud;
    free(p);
}


void
yamux_config_init(yamux_config_t *conf, int client)
{
    memset(conf, 0, sizeof(yamux_config_t));

    conf->client = client;
    conf->window = 8 * 1024 * 1024;
    conf->max_streams = 4096;
    conf->syn_backlog = 256;
    conf->max_frame = 32 * 1024;
    conf->block_size = 64 * 1024;
    conf->max_queued = 512 * 1024;
}


yamux_session_t *
yamux_session_new(const yamux_config_t *conf, const yamux_callbacks_t *cb,
    void *ud)
{
    yamux_config_t    c;
    yamux_session_t  *s;

    c = *conf;

    if (c.allocator.alloc == NULL || c.allocator.free == NULL) {
        c.allocator.alloc = yamux_default_alloc;
        c.allocator.free = yamux_default_free;
    }

    if (c.window < YAMUX_INITIAL_WINDOW) {
        c.window = YAMUX_INITIAL_WINDOW;
    }

    if (c.window > YAMUX_MAX_WINDOW) {
        c.window = YAMUX_MAX_WINDOW;
    }

    if (c.max_window > YAMUX_MAX_WINDOW) {
        c.max_window = YAMUX_MAX_WINDOW;
    }

    if (c.max_window <= c.window || c.clock == NULL) {
        c.max_window = c.window;
    }

    if (c.block_size < 2 * YAMUX_MIN_CHUNK) {
        c.block_size = 2 * YAMUX_MIN_CHUNK;
    }

    if (c.max_frame == 0
        || c.max_frame > c.block_size - YAMUX_HEADER_SIZE
                         - sizeof(yamux_block_t))
    {
        c.max_frame = c.block_size - YAMUX_HEADER_SIZE
                      - sizeof(yamux_block_t);
    }

    if (c.max_streams == 0) {
        c.max_streams = 1;
    }

    if (c.syn_backlog == 0) {
        c.syn_backlog = 1;
    }

    if (c.max_queued == 0) {
        c.max_queued = c.block_size;
    }

    s = c.allocator.alloc(sizeof(yamux_session_t), c.allocator.ud);
    if (s == NULL) {
        return NULL;
    }

    memset(s, 0, sizeof(yamux_session_t));

    s->conf = c;
    s->cb = *cb;
    s->ud = ud;
    s->next_id = c.client ? 1 : 2;

    s->nbuckets = 16;
    s->buckets = c.allocator.alloc(s->nbuckets * sizeof(yamux_stream_t *),
                                   c.allocator.ud);
    if (s->buckets == NULL) {
        c.allocator.free(s, sizeof(yamux_session_t), c.allocator.ud);
        return NULL;
    }

    memset(s->buckets, 0, s->nbuckets * sizeof(yamux_stream_t *));

    return s;
}


void
yamux_session_free(yamux_session_t *s)
{
    uint32_t          i;
    yamux_block_t    *b;
    yamux_stream_t   *st;
    yamux_allocator_t a;

    if (s == NULL) {
        return;
    }

    a = s->conf.allocator;

    for (i = 0; i < s->nbuckets; i++) {
        while (s->buckets[i]) {
            st = s->buckets[i];
            s->buckets[i] = st->hash_next;
            a.free(st, sizeof(yamux_stream_t), a.ud);
        }
    }

    while (s->head) {
        b = s->head;
        s->head = b->next;
        a.free(b, s->conf.block_size, a.ud);
    }

    a.free(s->buckets, s->nbuckets * sizeof(yamux_stream_t *), a.ud);
    a.free(s, sizeof(yamux_session_t), a.ud);
}


void *
yamux_session_data(yamux_session_t *s)
{
    return s->ud;
}


static void
yamux_put_header(uint8_t *p, uint8_t type, uint16_t flags, uint32_t id,
    uint32_t len)
{
    p[0] = YAMUX_VERSION;
    p[1] = type;
    p[2] = (uint8_t) (flags >> 8);
    p[3] = (uint8_t) flags;
    p[4] = (uint8_t) (id >> 24);
    p[5] = (uint8_t) (id >> 16);
    p[6] = (uint8_t) (id >> 8);
    p[7] = (uint8_t) id;
    p[8] = (uint8_t) (len >> 24);
    p[9] = (uint8_t) (len >> 16);
    p[10] = (uint8_t) (len >> 8);
    p[11] = (uint8_t) len;
}


/* stream table: chained hash; ids of one side are sequential */

static yamux_stream_t *
yamux_find(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    for (st = s->buckets[(id >> 1) & (s->nbuckets - 1)];
         st;
         st = st->hash_next)
    {
        if (st->id == id) {
            return st;
        }
    }

    return NULL;
}


static int
yamux_insert(yamux_session_t *s, yamux_stream_t *st)
{
    uint32_t          i, n, b;
    yamux_stream_t  **nb, *next;

    if (s->nstreams >= s->nbuckets) {
        n = s->nbuckets * 2;
        nb = s->conf.allocator.alloc(n * sizeof(yamux_stream_t *),
                                     s->conf.allocator.ud);
        if (nb == NULL) {
            return YAMUX_ENOMEM;
        }

        memset(nb, 0, n * sizeof(yamux_stream_t *));

        for (i = 0; i < s->nbuckets; i++) {
            while (s->buckets[i]) {
                next = s->buckets[i]->hash_next;
                b = (s->buckets[i]->id >> 1) & (n - 1);
                s->buckets[i]->hash_next = nb[b];
                nb[b] = s->buckets[i];
                s->buckets[i] = next;
            }
        }

        s->conf.allocator.free(s->buckets,
                               s->nbuckets * sizeof(yamux_stream_t *),
                               s->conf.allocator.ud);
        s->buckets = nb;
        s->nbuckets = n;
    }

    b = (st->id >> 1) & (s->nbuckets - 1);
    st->hash_next = s->buckets[b];
    s->buckets[b] = st;
    s->nstreams++;

    return YAMUX_OK;
}


static void
yamux_remove(yamux_session_t *s, yamux_stream_t *st)
{
    yamux_stream_t  **pp;

    for (pp = &s->buckets[(st->id >> 1) & (s->nbuckets - 1)];
         *pp;
         pp = &(*pp)->hash_next)
    {
        if (*pp == st) {
            *pp = st->hash_next;
            s->nstreams--;
            return;
        }
    }
}


static yamux_stream_t *
yamux_stream_new(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    st = s->conf.allocator.alloc(sizeof(yamux_stream_t),
                                 s->conf.allocator.ud);
    if (st == NULL) {
        return NULL;
    }

    memset(st, 0, sizeof(yamux_stream_t));

    st->id = id;
    st->state = YAMUX_S_OPEN;
    st->send_window = YAMUX_INITIAL_WINDOW;
    st->recv_window = YAMUX_INITIAL_WINDOW;
    st->window = s->conf.window;        /* announced with SYN or ACK */

    if (yamux_insert(s, st) != YAMUX_OK) {
        s->conf.allocator.free(st, sizeof(yamux_stream_t),
                               s->conf.allocator.ud);
        return NULL;
    }

    s->streams_total++;

    return st;
}


static void
yamux_stream_finalize(yamux_session_t *s, yamux_stream_t *st,
    yamux_close_e how)
{
    void      *sd;
    uint32_t   id;

    if (st->local && !st->acked) {
        s->unacked--;
    }

    if (st->on_ctl) {
        yamux_list_del(&s->ctl_list, st, YAMUX_CTL_LINK);
        st->on_ctl = 0;
    }

    yamux_wait_del(s, st);

    if (s->data_stream == st) {
        s->data_stream = NULL;
    }

    yamux_remove(s, st);

    id = st->id;
    sd = st->data;
    s->conf.allocator.free(st, sizeof(yamux_stream_t),
                               s->conf.allocator.ud);

    if (s->cb.stream_closed) {
        s->cb.stream_closed(s, id, sd, how);
    }
}


#define yamux_link(st, off)  ((yamux_link_t *) ((uint8_t *) (st) + (off)))


/* "off" is offsetof() the link member: a stream sits on two lists */
static void
yamux_list_add(yamux_list_t *l, yamux_stream_t *st, size_t off)
{
    yamux_link(st, off)->next = NULL;
    yamux_link(st, off)->prev = l->last;

    if (l->last) {
        yamux_link(l->last, off)->next = st;

    } else {
        l->first = st;
    }

    l->last = st;
}


static void
yamux_list_del(yamux_list_t *l, yamux_stream_t *st, size_t off)
{
    yamux_link_t  *link;

    link = yamux_link(st, off);

    if (link->prev) {
        yamux_link(link->prev, off)->next = link->next;

    } else {
        l->first = link->next;
    }

    if (link->next) {
        yamux_link(link->next, off)->prev = link->prev;

    } else {
        l->last = link->prev;
    }

    link->prev = NULL;
    link->next = NULL;
}


static void
yamux_want_ctl(yamux_session_t *s, yamux_stream_t *st)
{
    if (!st->on_ctl) {
        yamux_list_add(&s->ctl_list, st, YAMUX_CTL_LINK);
        st->on_ctl = 1;
    }
}


static void
yamux_want_write(yamux_session_t *s, yamux_stream_t *st)
{
    st->want_write = 1;

    if (!st->on_wait) {
        yamux_list_add(&s->wait_list, st, YAMUX_WAIT_LINK);
        st->on_wait = 1;
    }
}


/*
 * A stream leaves the wait list, or the list yamux_notify_writable() is
 * working through: a stream_writable callback may close or reset another
 * stream still waiting there.
 */
static void
yamux_wait_del(yamux_session_t *s, yamux_stream_t *st)
{
    if (!st->on_wait) {
        return;
    }

    yamux_list_del(st->notifying ? &s->notify : &s->wait_list, st,
                   YAMUX_WAIT_LINK);
    st->on_wait = 0;
    st->notifying = 0;
}


/* returns 0, or -1 when the event is not allowed in the stream's state */
static int
yamux_transition(yamux_stream_t *st, yamux_event_e ev)
{
    uint8_t  next;

    next = yamux_transitions[st->state][ev];

    if (next == YAMUX_S_BAD) {
        return -1;
    }

    if (next != YAMUX_S_SAME) {
        st->state = next;
    }

    return 0;
}


static int
yamux_ring_push(yamux_session_t *s, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len)
{
    unsigned  i;

    if (s->ring_count == YAMUX_RING_FRAMES) {
        return YAMUX_EAGAIN;
    }

    i = (s->ring_head + s->ring_count) % YAMUX_RING_FRAMES;
    yamux_put_header(s->ring[i], type, flags, id, len);
    s->ring_count++;

    return YAMUX_OK;
}


static yamux_block_t *
yamux_block_new(yamux_session_t *s)
{
    yamux_block_t  *b;

    b = s->conf.allocator.alloc(s->conf.block_size, s->conf.allocator.ud);
    if (b == NULL) {
        return NULL;
    }

    b->next = NULL;
    b->pos = b->data;
    b->last = b->data;
    b->end = (uint8_t *) b + s->conf.block_size;

    if (s->tail) {
        s->tail->next = b;

    } else {
        s->head = b;
    }

    s->tail = b;

    return b;
}


/* a header-only frame whose place in the byte order matters: SYN, FIN */
static int
yamux_fifo_frame(yamux_session_t *s, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len)
{
    yamux_block_t  *b;

    b = s->tail;

    if (b == NULL || b->end - b->last < YAMUX_HEADER_SIZE) {
        b = yamux_block_new(s);
        if (b == NULL) {
            return YAMUX_ENOMEM;
        }
    }

    yamux_put_header(b->last, type, flags, id, len);
    b->last += YAMUX_HEADER_SIZE;
    s->queued += YAMUX_HEADER_SIZE;

    return YAMUX_OK;
}


static int
yamux_protocol_error(yamux_session_t *s, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, args);
    va_end(args);

    s->dead = 1;

    /* replaces a go-away(normal) not yet sent; follows one already sent */
    s->go_away_pending = 1;
    s->local_go_away = 1;
    s->go_away_code = YAMUX_GOAWAY_PROTOCOL;

    return YAMUX_EPROTO;
}


/* input */

ssize_t
yamux_input(yamux_session_t *s, const uint8_t *buf, size_t len)
{
    int              rc;
    size_t           pos, n;
    const uint8_t   *h;
    yamux_stream_t  *st;

    if (s->dead) {
        return YAMUX_EPROTO;
    }

    pos = 0;

    while (pos < len) {

        if (s->data_left) {
            n = len - pos;
            if (n > s->data_left) {
                n = s->data_left;
            }

            st = s->data_stream;

            if (st && st->state != YAMUX_S_RESET) {
                st->unread += n;
                s->bytes_in += n;

                if (s->cb.stream_data) {
                    s->cb.stream_data(s, st->id, st->data, buf + pos, n);
                }

            } else {
                s->bytes_dropped += n;
            }

            pos += n;
            s->data_left -= n;

            if (s->data_left == 0 && s->data_stream) {
                rc = yamux_flags_after(s, s->data_stream, s->data_flags);
                s->data_stream = NULL;

                if (rc != YAMUX_OK) {
                    return rc;
                }
            }

            continue;
        }

        if (s->hdr_have == 0 && len - pos >= YAMUX_HEADER_SIZE) {
            h = buf + pos;
            n = YAMUX_HEADER_SIZE;

        } else {
            n = YAMUX_HEADER_SIZE - s->hdr_have;
            if (n > len - pos) {
                n = len - pos;
            }

            memcpy(s->hdr + s->hdr_have, buf + pos, n);

            if (s->hdr_have + n < YAMUX_HEADER_SIZE) {
                s->hdr_have += n;
                pos += n;
                break;
            }

            h = s->hdr;
        }

        if (s->ring_count >= YAMUX_RING_SOFT && yamux_frame_needs_ring(h)) {
            /*
             * Let the peer read our answers before more questions.  The
             * header's last bytes are left unconsumed (a header begun in an
             * earlier call stays in s->hdr), so that the caller feeds them
             * again once the output has drained.
             */
            return pos;
        }

        s->hdr_have = 0;
        pos += n;

        rc = yamux_header(s, h);
        if (rc != YAMUX_OK) {
            return rc;
        }
    }

    return pos;
}


/* would this frame add to the session ring: a ping or a refused SYN */
static int
yamux_frame_needs_ring(const uint8_t *h)
{
    uint16_t  flags;

    flags = (uint16_t) (h[2] << 8 | h[3]);

    if (h[1] == YAMUX_PING) {
        return (flags & YAMUX_SYN) != 0;
    }

    /* any SYN: the application, or memory, may refuse the stream */
    if (h[1] == YAMUX_DATA || h[1] == YAMUX_WINDOW_UPDATE) {
        return (flags & YAMUX_SYN) != 0;
    }

    return 0;
}


static int
yamux_header(yamux_session_t *s, const uint8_t *h)
{
    uint8_t   type;
    uint16_t  flags;
    uint32_t  id, len;

    type = h[1];
    flags = (uint16_t) (h[2] << 8 | h[3]);
    id = yamux_get32(h + 4);
    len = yamux_get32(h + 8);

    if (h[0] != YAMUX_VERSION) {
        return yamux_protocol_error(s,
                   "protocol version %u is not supported (expected %u)",
                   h[0], YAMUX_VERSION);
    }

    switch (type) {

    case YAMUX_DATA:
    case YAMUX_WINDOW_UPDATE:
        if (id == 0) {
            return yamux_protocol_error(s, "%s frame for stream 0",
                       type == YAMUX_DATA ? "data" : "window update");
        }

        return yamux_stream_frame(s, type, flags, id, len);

    case YAMUX_PING:
        if (id != 0) {
            return yamux_protocol_error(s, "ping on stream %u, not 0", id);
        }

        if (flags & YAMUX_SYN) {
            if (yamux_ring_push(s, YAMUX_PING, YAMUX_ACK, 0, len)
                != YAMUX_OK)
            {
                /* the ring is full: the peer does not read; drop it */
                return YAMUX_OK;
            }

            return YAMUX_OK;
        }

        if (flags & YAMUX_ACK) {
            if (s->ping_at && len == s->ping_opaque) {
                s->rtt = (uint32_t) (s->conf.clock() - s->ping_at);
                s->ping_at = 0;
            }

            if (s->cb.ping_ack) {
                s->cb.ping_ack(s, len, s->ud);
            }

            return YAMUX_OK;
        }

        return yamux_protocol_error(s, "ping with neither SYN nor ACK");

    case YAMUX_GO_AWAY:
        if (id != 0) {
            return yamux_protocol_error(s, "go-away on stream %u, not 0",
                                        id);
        }

        s->remote_go_away = 1;
        s->remote_go_away_code = len;

        if (s->cb.go_away) {
            s->cb.go_away(s, len, s->ud);
        }

        return YAMUX_OK;

    default:
        return yamux_protocol_error(s, "unknown frame type %u", type);
    }
}


static int
yamux_stream_frame(yamux_session_t *s, uint8_t type, uint16_t flags,
    uint32_t id, uint32_t len)
{
    int              rc;
    uint64_t         w;
    yamux_stream_t  *st;

    st = NULL;

    if (flags & YAMUX_SYN) {
        rc = yamux_incoming(s, id, &st);
        if (rc != YAMUX_OK) {
            return rc;
        }

    } else {
        st = yamux_find(s, id);

        if (st == NULL) {
            if ((id & 1) == (s->conf.client ? 1u : 0u)
                ? id >= s->next_id : id > s->last_peer_id)
            {
                return yamux_protocol_error(s,
                           "frame for stream %u, which was never opened",
                           id);
            }

            /* a stream we closed or refused: its data may be in flight,
             * but never more than the window it had */
            if (type == YAMUX_DATA && len > s->conf.max_window) {
                return yamux_protocol_error(s,
                           "%u bytes of data on closed stream %u exceed "
                           "any window", len, id);
            }
        }
    }

    if (st && (flags & YAMUX_ACK) && st->local && !st->acked) {
        st->acked = 1;
        s->unacked--;
    }

    if (type == YAMUX_WINDOW_UPDATE) {
        if (st && st->state != YAMUX_S_RESET) {
            w = (uint64_t) st->send_window + len;
            if (w > 0xffffffffu) {
                return yamux_protocol_error(s,
                           "window update of %u overflows the send window "
                           "of stream %u", len, id);
            }

            st->send_window = (uint32_t) w;

            if (st->want_write && st->send_window
                && s->queued < s->conf.max_queued
                && (st->state == YAMUX_S_OPEN
                    || st->state == YAMUX_S_REMOTE_CLOSED))
            {
                st->want_write = 0;
                yamux_wait_del(s, st);

                if (s->cb.stream_writable) {
                    s->cb.stream_writable(s, st->id, st->data);
                }
            }
        }

        return st ? yamux_flags_after(s, st, flags) : YAMUX_OK;
    }

    /* data */

    if (st && st->state != YAMUX_S_RESET) {
        if (len && (st->state == YAMUX_S_REMOTE_CLOSED
                    || st->state == YAMUX_S_CLOSED))
        {
            return yamux_protocol_error(s,
                       "data on stream %u after its FIN", id);
        }

        if (len > st->recv_window) {
            return yamux_protocol_error(s,
                       "%u bytes of data on stream %u exceed its receive "
                       "window of %u", len, id, st->recv_window);
        }

        st->recv_window -= len;
    }

    if (len == 0) {
        return st ? yamux_flags_after(s, st, flags) : YAMUX_OK;
    }

    s->data_left = len;
    s->data_id = id;
    s->data_flags = flags;
    s->data_stream = st;

    return YAMUX_OK;
}


/* a SYN: a new stream from the peer, accepted or refused */
static int
yamux_incoming(yamux_session_t *s, uint32_t id, yamux_stream_t **stp)
{
    yamux_stream_t  *st;

    *stp = NULL;

    if ((id & 1) == (s->conf.client ? 1u : 0u)) {
        return yamux_protocol_error(s,
                   "the peer opened stream %u, an id of our parity", id);
    }

    if (yamux_find(s, id)) {
        return yamux_protocol_error(s, "duplicate SYN for open stream %u",
                                    id);
    }

    if (id <= s->last_peer_id) {
        return yamux_protocol_error(s,
                   "the peer reopened stream %u (ids must grow)", id);
    }

    s->last_peer_id = id;

    if (s->local_go_away || s->nstreams >= s->conf.max_streams) {
        s->streams_refused++;
        (void) yamux_ring_push(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
        return YAMUX_OK;
    }

    st = yamux_stream_new(s, id);
    if (st == NULL) {
        s->streams_refused++;
        (void) yamux_ring_push(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
        return YAMUX_OK;
    }

    if (s->cb.stream_open && s->cb.stream_open(s, id, s->ud) != 0) {
        s->streams_refused++;

        /* the callback may have reset it, or waited for room on it */
        if (st->on_ctl) {
            yamux_list_del(&s->ctl_list, st, YAMUX_CTL_LINK);
        }

        yamux_wait_del(s, st);
        yamux_remove(s, st);
        s->conf.allocator.free(st, sizeof(yamux_stream_t),
                               s->conf.allocator.ud);
        (void) yamux_ring_push(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0);
        return YAMUX_OK;
    }

    /* the ACK carries our window above the initial one */
    st->ctl |= YAMUX_ACK;
    yamux_want_ctl(s, st);

    *stp = st;

    return YAMUX_OK;
}


/* FIN and RST of a frame, once its payload has been passed on */
static int
yamux_flags_after(yamux_session_t *s, yamux_stream_t *st, uint16_t flags)
{
    if (st->state == YAMUX_S_RESET) {
        return YAMUX_OK;
    }

    if (flags & YAMUX_RST) {
        yamux_stream_finalize(s, st, YAMUX_CLOSED_RESET_REMOTE);
        return YAMUX_OK;
    }

    if (flags & YAMUX_FIN) {
        if (yamux_transition(st, YAMUX_EV_REMOTE_FIN) != 0) {
            return yamux_protocol_error(s, "second FIN on stream %u",
                                        st->id);
        }

        if (s->cb.stream_fin) {
            s->cb.stream_fin(s, st->id, st->data);
        }

        if (st->state == YAMUX_S_CLOSED && st->fin_sent) {
            yamux_stream_finalize(s, st, YAMUX_CLOSED_NORMAL);
        }
    }

    return YAMUX_OK;
}


/* output */

static void
yamux_fill_ctl(yamux_session_t *s)
{
    uint8_t         *p, *end;
    uint16_t         flags;
    uint32_t         delta;
    yamux_stream_t  *st;

    p = s->ctl;
    end = s->ctl + sizeof(s->ctl);

    while (s->ring_count && p < end) {
        memcpy(p, s->ring[s->ring_head], YAMUX_HEADER_SIZE);
        s->ring_head = (s->ring_head + 1) % YAMUX_RING_FRAMES;
        s->ring_count--;
        p += YAMUX_HEADER_SIZE;
    }

    while (s->ctl_list.first && p < end) {
        st = s->ctl_list.first;
        yamux_list_del(&s->ctl_list, st, YAMUX_CTL_LINK);
        st->on_ctl = 0;

        flags = st->ctl;
        st->ctl = 0;
        delta = 0;

        if (flags & YAMUX_RST) {
            flags = YAMUX_RST;

        } else {
            if (flags & YAMUX_ACK) {
                /* the peer may have sent data already: add, not reset */
                delta = s->conf.window - YAMUX_INITIAL_WINDOW;
                st->recv_window += delta;
            }

            if (st->credit) {
                delta += yamux_window_grow(s, st);
            }

            delta += st->credit;
            st->recv_window += st->credit;
            st->credit = 0;
        }

        yamux_put_header(p, YAMUX_WINDOW_UPDATE, flags, st->id, delta);
        p += YAMUX_HEADER_SIZE;
    }

    if (s->go_away_pending && p < end) {
        yamux_put_header(p, YAMUX_GO_AWAY, 0, 0, s->go_away_code);
        s->go_away_pending = 0;
        p += YAMUX_HEADER_SIZE;
    }

    s->ctl_pos = 0;
    s->ctl_len = p - s->ctl;
}


int
yamux_output(yamux_session_t *s, struct iovec *iov, int niov)
{
    int             i;
    uint8_t        *p;
    yamux_block_t  *b;

    if (s->ctl_pos == s->ctl_len) {
        yamux_fill_ctl(s);
    }

    i = 0;
    b = s->head;
    p = b ? b->pos : NULL;

    if (s->frame_left && s->ctl_pos == 0 && i < niov) {
        /* the rest of a frame already begun; a frame is in one block */
        iov[i].iov_base = p;
        iov[i].iov_len = s->frame_left;
        p += s->frame_left;
        i++;
    }

    if (s->ctl_pos < s->ctl_len && i < niov) {
        iov[i].iov_base = s->ctl + s->ctl_pos;
        iov[i].iov_len = s->ctl_len - s->ctl_pos;
        i++;
    }

    while (b && i < niov) {
        if (p < b->last) {
            iov[i].iov_base = p;
            iov[i].iov_len = b->last - p;
            i++;
        }

        b = b->next;
        p = b ? b->pos : NULL;
    }

    return i;
}


size_t
yamux_output_pending(yamux_session_t *s)
{
    return s->queued + (s->ctl_len - s->ctl_pos)
           + (size_t) s->ring_count * YAMUX_HEADER_SIZE
           + (s->ctl_list.first ? YAMUX_HEADER_SIZE : 0)
           + (s->go_away_pending ? YAMUX_HEADER_SIZE : 0);
}


void
yamux_output_advance(yamux_session_t *s, size_t n)
{
    size_t  k, done;

    if (s->frame_left && s->ctl_pos == 0) {
        k = n < s->frame_left ? n : s->frame_left;
        yamux_consume_fifo(s, k);
        n -= k;
    }

    if (n && s->ctl_pos < s->ctl_len) {
        k = s->ctl_len - s->ctl_pos;
        if (k > n) {
            k = n;
        }

        /* control frames are whole headers: act on each one completed */
        done = s->ctl_pos / YAMUX_HEADER_SIZE;
        s->ctl_pos += k;
        n -= k;

        while (done < s->ctl_pos / YAMUX_HEADER_SIZE) {
            yamux_frame_sent(s, s->ctl + done * YAMUX_HEADER_SIZE);
            done++;
        }

        if (s->ctl_pos == s->ctl_len) {
            s->ctl_pos = 0;
            s->ctl_len = 0;
        }
    }

    if (n) {
        yamux_consume_fifo(s, n);
    }

    if (s->wait_list.first && s->queued <= s->conf.max_queued / 2) {
        yamux_notify_writable(s);
    }
}


static void
yamux_consume_fifo(yamux_session_t *s, size_t n)
{
    size_t          k;
    uint32_t        len;
    yamux_block_t  *b;

    while (n && s->head) {
        b = s->head;

        if (s->frame_left == 0) {
            memcpy(s->frame_hdr, b->pos, YAMUX_HEADER_SIZE);
            len = yamux_get32(b->pos + 8);
            s->frame_left = YAMUX_HEADER_SIZE
                            + (b->pos[1] == YAMUX_DATA ? len : 0);
        }

        k = n < s->frame_left ? n : s->frame_left;
        b->pos += k;
        s->frame_left -= k;
        s->queued -= k;
        n -= k;

        if (b->pos == b->last && !(b == s->tail && s->reserved)) {
            s->head = b->next;
            if (s->head == NULL) {
                s->tail = NULL;
            }

            s->conf.allocator.free(b, s->conf.block_size,
                                   s->conf.allocator.ud);
        }

        /*
         * Last: the stream_closed callback this may run can queue output
         * (and so allocate or free the tail block), so no block pointer is
         * kept across it.
         */
        if (s->frame_left == 0) {
            yamux_frame_sent(s, s->frame_hdr);
        }
    }
}


/* a frame has gone to the socket: finish what waited for it */
static void
yamux_frame_sent(yamux_session_t *s, const uint8_t *hdr)
{
    uint16_t         flags;
    yamux_stream_t  *st;

    if (hdr[1] != YAMUX_DATA && hdr[1] != YAMUX_WINDOW_UPDATE) {
        return;
    }

    flags = (uint16_t) (hdr[2] << 8 | hdr[3]);

    if (!(flags & (YAMUX_SYN | YAMUX_FIN | YAMUX_RST))) {
        return;
    }

    st = yamux_find(s, yamux_get32(hdr + 4));
    if (st == NULL) {
        return;
    }

    if (flags & YAMUX_SYN) {
        st->syn_sent = 1;
    }

    if (flags & YAMUX_RST) {
        if (st->state == YAMUX_S_RESET) {
            yamux_stream_finalize(s, st, YAMUX_CLOSED_RESET_LOCAL);
        }

        return;
    }

    st->fin_sent = 1;

    if (st->state == YAMUX_S_CLOSED) {
        yamux_stream_finalize(s, st, YAMUX_CLOSED_NORMAL);
    }
}


static void
yamux_notify_writable(yamux_session_t *s)
{
    yamux_stream_t  *st;

    /* streams that still cannot send re-add themselves to a fresh list */
    s->notify = s->wait_list;
    s->wait_list.first = NULL;
    s->wait_list.last = NULL;

    for (st = s->notify.first; st; st = st->wait_link.next) {
        st->notifying = 1;
    }

    while (s->notify.first) {
        st = s->notify.first;
        yamux_wait_del(s, st);

        if (!st->want_write) {
            continue;
        }

        if (st->send_window == 0) {
            yamux_list_add(&s->wait_list, st, YAMUX_WAIT_LINK);
            st->on_wait = 1;
            continue;
        }

        st->want_write = 0;

        if (s->cb.stream_writable) {
            s->cb.stream_writable(s, st->id, st->data);
        }
    }
}


/* streams */

int
yamux_stream_open(yamux_session_t *s, uint32_t *id, void *sd)
{
    yamux_stream_t  *st;

    if (s->dead) {
        return YAMUX_ESESSION;
    }

    /* as hashicorp: our own go-away only refuses the peer's new streams */
    if (s->remote_go_away) {
        return YAMUX_EGOAWAY;
    }

    if (s->nstreams >= s->conf.max_streams
        || s->unacked >= s->conf.syn_backlog
        || s->next_id > 0xffffffffu - 2)
    {
        return YAMUX_ELIMIT;
    }

    st = yamux_stream_new(s, s->next_id);
    if (st == NULL) {
        return YAMUX_ENOMEM;
    }

    if (yamux_fifo_frame(s, YAMUX_WINDOW_UPDATE, YAMUX_SYN, st->id,
                         s->conf.window - YAMUX_INITIAL_WINDOW)
        != YAMUX_OK)
    {
        yamux_remove(s, st);
        s->conf.allocator.free(st, sizeof(yamux_stream_t),
                               s->conf.allocator.ud);
        return YAMUX_ENOMEM;
    }

    s->next_id += 2;
    s->unacked++;

    st->local = 1;
    st->recv_window = s->conf.window;
    st->data = sd;
    *id = st->id;

    return YAMUX_OK;
}


void
yamux_stream_set_data(yamux_session_t *s, uint32_t id, void *sd)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);
    if (st) {
        st->data = sd;
    }
}


void *
yamux_stream_data(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);

    return st ? st->data : NULL;
}


uint8_t *
yamux_stream_reserve(yamux_session_t *s, uint32_t id, size_t *len, int *rc)
{
    size_t           n, room;
    yamux_block_t   *b;
    yamux_stream_t  *st;

    if (s->dead) {
        *rc = YAMUX_ESESSION;
        return NULL;
    }

    st = yamux_find(s, id);

    if (st == NULL
        || (st->state != YAMUX_S_OPEN && st->state != YAMUX_S_REMOTE_CLOSED))
    {
        *rc = YAMUX_ECLOSED;
        return NULL;
    }

    n = *len;
    if (n == 0 || n > s->conf.max_frame) {
        n = s->conf.max_frame;
    }

    if (n > st->send_window) {
        n = st->send_window;
    }

    if (n == 0 || s->queued >= s->conf.max_queued) {
        yamux_want_write(s, st);
        *rc = YAMUX_EAGAIN;
        return NULL;
    }

    b = s->tail;
    room = b ? (size_t) (b->end - b->last) : 0;

    if (room < YAMUX_HEADER_SIZE
        || room - YAMUX_HEADER_SIZE < (n < YAMUX_MIN_CHUNK ? n
                                                          : YAMUX_MIN_CHUNK))
    {
        b = yamux_block_new(s);
        if (b == NULL) {
            *rc = YAMUX_ENOMEM;
            return NULL;
        }

        room = b->end - b->last;
    }

    if (n > room - YAMUX_HEADER_SIZE) {
        n = room - YAMUX_HEADER_SIZE;
    }

    s->reserved = 1;
    *len = n;
    *rc = YAMUX_OK;

    return b->last + YAMUX_HEADER_SIZE;
}


void
yamux_stream_commit(yamux_session_t *s, uint32_t id, size_t n)
{
    yamux_block_t   *b;
    yamux_stream_t  *st;

    s->reserved = 0;
    b = s->tail;

    if (n == 0) {
        /* an unused block would stay at the tail for ever: drop it */
        if (b && b->pos == b->last && b == s->head) {
            s->conf.allocator.free(b, s->conf.block_size,
                                   s->conf.allocator.ud);
            s->head = NULL;
            s->tail = NULL;
        }

        return;
    }

    st = yamux_find(s, id);
    if (st == NULL || b == NULL) {
        return;
    }

    yamux_put_header(b->last, YAMUX_DATA, 0, id, (uint32_t) n);
    b->last += YAMUX_HEADER_SIZE + n;
    s->queued += YAMUX_HEADER_SIZE + n;
    st->send_window -= (uint32_t) n;
    s->bytes_out += n;
}


ssize_t
yamux_stream_write(yamux_session_t *s, uint32_t id, const uint8_t *data,
    size_t len)
{
    int       rc;
    size_t    done, n;
    uint8_t  *p;

    done = 0;

    while (done < len) {
        n = len - done;
        p = yamux_stream_reserve(s, id, &n, &rc);
        if (p == NULL) {
            return done ? (ssize_t) done : rc;
        }

        memcpy(p, data + done, n);
        yamux_stream_commit(s, id, n);
        done += n;
    }

    return done;
}


int
yamux_stream_consumed(yamux_session_t *s, uint32_t id, size_t n)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);
    if (st == NULL) {
        return YAMUX_ECLOSED;
    }

    if (n > st->unread) {
        n = st->unread;
    }

    st->unread -= (uint32_t) n;
    st->credit += (uint32_t) n;

    /* as hashicorp: announce once half the window has been consumed */
    if (st->credit >= st->window / 2
        && st->state != YAMUX_S_REMOTE_CLOSED
        && st->state != YAMUX_S_CLOSED
        && st->state != YAMUX_S_RESET)
    {
        yamux_want_ctl(s, st);
    }

    return YAMUX_OK;
}


int
yamux_stream_close(yamux_session_t *s, uint32_t id)
{
    int              rc;
    yamux_stream_t  *st;

    if (s->dead) {
        return YAMUX_ESESSION;
    }

    st = yamux_find(s, id);
    if (st == NULL || yamux_transitions[st->state][YAMUX_EV_LOCAL_FIN]
                      == YAMUX_S_BAD)
    {
        return YAMUX_ECLOSED;
    }

    rc = yamux_fifo_frame(s, YAMUX_WINDOW_UPDATE, YAMUX_FIN, id, 0);
    if (rc != YAMUX_OK) {
        return rc;
    }

    (void) yamux_transition(st, YAMUX_EV_LOCAL_FIN);

    yamux_wait_del(s, st);

    st->want_write = 0;

    return YAMUX_OK;
}


int
yamux_stream_reset(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);
    if (st == NULL || st->state == YAMUX_S_RESET) {
        return YAMUX_ECLOSED;
    }

    if (st->local && !st->syn_sent) {
        /* the RST may not overtake the SYN still queued for the stream */
        if (yamux_fifo_frame(s, YAMUX_WINDOW_UPDATE, YAMUX_RST, id, 0)
            != YAMUX_OK)
        {
            /* nothing changed: the caller may try again */
            return YAMUX_ENOMEM;
        }

    } else {
        st->ctl = YAMUX_RST;
        yamux_want_ctl(s, st);
    }

    (void) yamux_transition(st, YAMUX_EV_LOCAL_RST);

    st->want_write = 0;

    yamux_wait_del(s, st);

    return YAMUX_OK;
}


uint32_t
yamux_stream_send_window(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);

    return st ? st->send_window : 0;
}


int
yamux_ping(yamux_session_t *s, uint32_t opaque)
{
    if (s->dead) {
        return YAMUX_ESESSION;
    }

    if (s->conf.clock) {
        /* the answer to this one measures the round trip */
        s->ping_at = s->conf.clock();
        s->ping_opaque = opaque;

        if (s->ping_at == 0) {
            s->ping_at = 1;
        }
    }

    return yamux_ring_push(s, YAMUX_PING, YAMUX_SYN, 0, opaque);
}


uint32_t
yamux_rtt(yamux_session_t *s)
{
    return s->rtt;
}


uint32_t
yamux_stream_recv_window(yamux_session_t *s, uint32_t id)
{
    yamux_stream_t  *st;

    st = yamux_find(s, id);

    return st ? st->window : 0;
}


/*
 * Credit is being announced: if the last announcement was less than two
 * round trips ago, the window, not the reader, is what limits the stream,
 * so the window doubles (up to max_window).  Returns the bytes added.
 */
static uint32_t
yamux_window_grow(yamux_session_t *s, yamux_stream_t *st)
{
    uint32_t  add;
    uint64_t  now, last;

    if (s->conf.max_window <= st->window) {
        return 0;
    }

    now = s->conf.clock();
    last = st->update_at;
    st->update_at = now;

    if (last == 0 || s->rtt == 0 || now - last >= 2 * (uint64_t) s->rtt) {
        return 0;
    }

    add = st->window;

    if (add > s->conf.max_window - st->window) {
        add = s->conf.max_window - st->window;
    }

    st->window += add;
    st->recv_window += add;

    return add;
}


int
yamux_go_away(yamux_session_t *s, uint32_t code)
{
    if (s->local_go_away) {
        return YAMUX_OK;
    }

    s->local_go_away = 1;
    s->go_away_pending = 1;
    s->go_away_code = code;

    return YAMUX_OK;
}


void
yamux_stats(yamux_session_t *s, yamux_stats_t *st)
{
    st->streams = s->nstreams;
    st->unacked_syns = s->unacked;
    st->streams_total = s->streams_total;
    st->streams_refused = s->streams_refused;
    st->bytes_in = s->bytes_in;
    st->bytes_dropped = s->bytes_dropped;
    st->bytes_out = s->bytes_out;
    st->local_go_away = s->local_go_away;
    st->remote_go_away = s->remote_go_away;
    st->remote_go_away_code = s->remote_go_away_code;
}


const char *
yamux_error(yamux_session_t *s)
{
    return s->error[0] ? s->error : "no error";
}


const char *
yamux_strerror(int rc)
{
    switch (rc) {
    case YAMUX_OK:
        return "ok";
    case YAMUX_EAGAIN:
        return "no window or queue room yet";
    case YAMUX_ECLOSED:
        return "the stream is closed";
    case YAMUX_ELIMIT:
        return "too many streams";
    case YAMUX_EGOAWAY:
        return "the session is going away";
    case YAMUX_ENOMEM:
        return "out of memory";
    case YAMUX_EPROTO:
        return "protocol error";
    case YAMUX_ESESSION:
        return "the session has ended";
    default:
        return "unknown error";
    }
}
