/*
 * Copyright (C) ngx_tunnel developers
 *
 * yamux session, sans-IO.
 *
 * Wire-compatible with hashicorp/yamux (spec.md there).  The caller owns the
 * socket and the clock: it feeds received bytes to yamux_input(), takes bytes
 * to send from yamux_output() and reports what the socket accepted with
 * yamux_output_advance().  Events reach the caller through callbacks, and
 * callbacks run only inside yamux_input() and yamux_output_advance(), never
 * inside the other calls, so the caller may call any other function from a
 * callback and never sees a callback re-enter its own call.  A callback must
 * not call yamux_input(), yamux_output_advance() or yamux_session_free().
 *
 * Data is never copied by the core on the receive path: stream_data points
 * into the buffer given to yamux_input().  On the send path the caller asks
 * for room in the session's output queue (yamux_stream_reserve), reads the
 * payload straight into it and commits; the frame header is written in front.
 *
 * Control frames (window updates, ACKs, pings, go-away, resets) leave ahead
 * of queued data, at the next frame boundary, so a busy stream never delays
 * a keep-alive by more than one data frame.  A SYN and a FIN keep their
 * place among the data, and so does a RST sent before its stream's SYN.
 */

#ifndef _YAMUX_H_INCLUDED_
#define _YAMUX_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>


#define YAMUX_VERSION            0
#define YAMUX_HEADER_SIZE        12
#define YAMUX_INITIAL_WINDOW     (256 * 1024)

/* frame types */
#define YAMUX_DATA               0
#define YAMUX_WINDOW_UPDATE      1
#define YAMUX_PING               2
#define YAMUX_GO_AWAY            3

/* frame flags */
#define YAMUX_SYN                0x1
#define YAMUX_ACK                0x2
#define YAMUX_FIN                0x4
#define YAMUX_RST                0x8

/* go-away codes */
#define YAMUX_GOAWAY_NORMAL      0
#define YAMUX_GOAWAY_PROTOCOL    1
#define YAMUX_GOAWAY_INTERNAL    2


/* return codes: 0 or a positive count on success */
typedef enum {
    YAMUX_OK = 0,
    YAMUX_EAGAIN = -1,      /* no window or queue room now: wait for writable */
    YAMUX_ECLOSED = -2,     /* no such stream, or it can no longer send */
    YAMUX_ELIMIT = -3,      /* stream limit, SYN backlog or ids exhausted */
    YAMUX_EGOAWAY = -4,     /* a go-away was sent or received: no new streams */
    YAMUX_ENOMEM = -5,
    YAMUX_EPROTO = -6,      /* the peer broke the protocol: session is over */
    YAMUX_ESESSION = -7     /* the session has ended (go-away, error) */
} yamux_rc_e;


/* why a stream went away, for the stream_closed callback */
typedef enum {
    YAMUX_CLOSED_NORMAL = 0,    /* both sides sent FIN */
    YAMUX_CLOSED_RESET_REMOTE,  /* the peer sent RST */
    YAMUX_CLOSED_RESET_LOCAL    /* our RST was sent (yamux_stream_reset) */
} yamux_close_e;


typedef struct yamux_session_s  yamux_session_t;


typedef struct {
    /*
     * The peer opened stream "id".  Return 0 to accept it (an ACK is sent),
     * anything else to refuse it (RST).  yamux_stream_set_data() may be
     * called here to attach the caller's object.
     */
    int   (*stream_open)(yamux_session_t *s, uint32_t id, void *ud);

    /* payload for a stream; "p" points into the yamux_input() buffer */
    void  (*stream_data)(yamux_session_t *s, uint32_t id, void *sd,
              const uint8_t *p, size_t n);

    /* the peer half-closed the stream (FIN): no more data will come */
    void  (*stream_fin)(yamux_session_t *s, uint32_t id, void *sd);

    /* the stream may accept data again (window or queue room opened) */
    void  (*stream_writable)(yamux_session_t *s, uint32_t id, void *sd);

    /* the stream is gone from the session; "sd" is not used again */
    void  (*stream_closed)(yamux_session_t *s, uint32_t id, void *sd,
              yamux_close_e how);

    /* a ping answer carrying "opaque" arrived */
    void  (*ping_ack)(yamux_session_t *s, uint32_t opaque, void *ud);

    /* the peer sent go-away with "code"; no new streams either way */
    void  (*go_away)(yamux_session_t *s, uint32_t code, void *ud);
} yamux_callbacks_t;


/*
 * Output blocks are all config.block_size bytes: an allocator may keep
 * freed ones for reuse ("size" says what is freed), which spares the page
 * faults of fresh memory on the data path.
 */
typedef struct {
    void  *(*alloc)(size_t size, void *ud);
    void   (*free)(void *p, size_t size, void *ud);
    void    *ud;
} yamux_allocator_t;


typedef struct {
    int          client;        /* 1: odd stream ids (the dialer), 0: even */

    uint32_t     window;        /* receive window per stream; announced with
                                   SYN/ACK when above 256 KiB */
    uint32_t     max_streams;   /* open streams, both directions */
    uint32_t     syn_backlog;   /* our SYNs not yet acknowledged */
    uint32_t     max_frame;     /* largest data frame we send */
    size_t       block_size;    /* output queue allocation unit */
    size_t       max_queued;    /* output bytes queued before EAGAIN */

    /*
     * Window auto-tuning, as TCP's: a stream whose receiver consumes a
     * whole window within two round trips (measured with yamux_ping) gets
     * twice the window, up to "max_window".  Needs "clock" (milliseconds,
     * any origin); off when either is 0/NULL.  A stream that is not read
     * never grows: slow readers cost only "window".
     */
    uint32_t     max_window;
    uint64_t   (*clock)(void);

    yamux_allocator_t  allocator;  /* NULL alloc: malloc/free */
} yamux_config_t;


/* defaults: 8 MiB window (no auto-tuning), 4096 streams, backlog 256,
 * 32 KiB frames, 64 KiB blocks, 512 KiB queue */
void yamux_config_init(yamux_config_t *conf, int client);

yamux_session_t *yamux_session_new(const yamux_config_t *conf,
    const yamux_callbacks_t *cb, void *ud);

/* frees every stream without callbacks, and the queued output */
void yamux_session_free(yamux_session_t *s);

void *yamux_session_data(yamux_session_t *s);


/*
 * Feed received bytes.  Returns the number of bytes consumed, which is less
 * than "len" (perhaps 0) only when the control queue is full (a flood of
 * pings or of SYNs): send output, then feed the rest again.  Returns
 * YAMUX_EPROTO when the peer broke the protocol; a go-away(protocol error)
 * is then queued and yamux_error() says why.
 */
ssize_t yamux_input(yamux_session_t *s, const uint8_t *buf, size_t len);

/*
 * Bytes to send, as at most "niov" iovecs in order.  Returns the iovec
 * count, 0 when nothing is queued.  The iovecs stay valid until the next
 * yamux_output_advance().
 */
int yamux_output(yamux_session_t *s, struct iovec *iov, int niov);

/* "n" bytes from the start of yamux_output() were sent */
void yamux_output_advance(yamux_session_t *s, size_t n);

/* bytes waiting to be sent */
size_t yamux_output_pending(yamux_session_t *s);


/* open a stream; its id is stored in "id" */
int yamux_stream_open(yamux_session_t *s, uint32_t *id, void *sd);

void yamux_stream_set_data(yamux_session_t *s, uint32_t id, void *sd);
void *yamux_stream_data(yamux_session_t *s, uint32_t id);

/*
 * Room for up to "*len" payload bytes in the output queue, bounded by the
 * stream's send window, the frame size and the queue limit.  Returns NULL
 * with YAMUX_EAGAIN in "*rc" when there is none (stream_writable follows),
 * or with another code when the stream cannot send.
 */
uint8_t *yamux_stream_reserve(yamux_session_t *s, uint32_t id, size_t *len,
    int *rc);

/* "n" bytes were written at the reserved place; 0 cancels */
void yamux_stream_commit(yamux_session_t *s, uint32_t id, size_t n);

/* copies "len" bytes in; returns the count queued, or an error code */
ssize_t yamux_stream_write(yamux_session_t *s, uint32_t id,
    const uint8_t *data, size_t len);

/* the caller has delivered "n" received bytes: credit the peer's window */
int yamux_stream_consumed(yamux_session_t *s, uint32_t id, size_t n);

/* half-close: FIN after the data already queued */
int yamux_stream_close(yamux_session_t *s, uint32_t id);

/* abort: RST ahead of everything; queued data of the stream may still go */
int yamux_stream_reset(yamux_session_t *s, uint32_t id);

/* the stream's current send window (what may be sent before an update) */
uint32_t yamux_stream_send_window(yamux_session_t *s, uint32_t id);

/* the stream's receive window as announced (grows with auto-tuning) */
uint32_t yamux_stream_recv_window(yamux_session_t *s, uint32_t id);

/* the round trip time measured by the last answered ping, ms; 0: none */
uint32_t yamux_rtt(yamux_session_t *s);


/* send a ping carrying "opaque"; the answer comes through ping_ack */
int yamux_ping(yamux_session_t *s, uint32_t opaque);

/*
 * Tell the peer not to open new streams (its SYNs are refused from now on);
 * existing streams continue, and we may still open streams ourselves.
 */
int yamux_go_away(yamux_session_t *s, uint32_t code);


typedef struct {
    uint32_t     streams;           /* open now */
    uint32_t     unacked_syns;
    uint64_t     streams_total;     /* opened since the start, both ways */
    uint64_t     streams_refused;   /* SYNs we answered with RST */
    uint64_t     bytes_in;          /* stream payload received */
    uint64_t     bytes_dropped;     /* payload for streams already gone */
    uint64_t     bytes_out;         /* stream payload queued */
    int          local_go_away;
    int          remote_go_away;
    uint32_t     remote_go_away_code;
} yamux_stats_t;

void yamux_stats(yamux_session_t *s, yamux_stats_t *st);

/* after YAMUX_EPROTO: a sentence saying what the peer did wrong */
const char *yamux_error(yamux_session_t *s);

const char *yamux_strerror(int rc);


#endif /* _YAMUX_H_INCLUDED_ */
